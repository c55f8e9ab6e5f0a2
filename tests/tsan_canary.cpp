// Built only by the tsan preset: two TBB tasks write one plain int with no synchronisation.
// The ctest entry passes only if ThreadSanitizer reports the data race; if it did not, the
// sanitizer run of the threading tests would pass whatever they do.
//
// The two writes are ordered in time but not by the memory model: task 0 writes, then raises a
// relaxed flag; task 1 waits for the flag, then writes. Relaxed atomics create no
// happens-before edge, so the race is real, and because the writes never overlap in time,
// ThreadSanitizer sees the first one in its shadow memory when it checks the second. (Two
// writes at the same instant, as in an earlier version, can both pass the shadow check before
// either is recorded, and TSan then misses the race: the canary failed once in CI that way.)

#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>
#include <tbb/task_arena.h>

#include <atomic>
#include <cstdio>

int main() {
  tbb::task_arena two_threads(2);
  int shared = 0;
  std::atomic<int> arrived{0};
  std::atomic<bool> first_written{false};
  two_threads.execute([&] {
    tbb::parallel_for(
        0, 2, 1,
        [&](int task) {
          // Both tasks wait for each other, so they surely run on two threads at once.
          arrived.fetch_add(1);
          while (arrived.load() < 2) {
          }
          if (task == 0) {
            shared = 1;  // the race, first write
            first_written.store(true, std::memory_order_relaxed);
          } else {
            while (!first_written.load(std::memory_order_relaxed)) {
            }
            shared = 2;  // the race, second write
          }
        },
        tbb::simple_partitioner{});
  });
  std::printf("shared = %d (no race reported: ThreadSanitizer is not watching TBB tasks)\n", shared);
  return 0;
}
