// Built only by the tsan preset: two TBB tasks increment one plain int with no synchronisation.
// The ctest entry passes only if ThreadSanitizer reports the data race; if it did not, the
// sanitizer run of the threading tests would pass whatever they do.

#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <atomic>
#include <cstdio>

int main() {
  tbb::task_arena two_threads(2);
  int shared = 0;
  std::atomic<int> arrived{0};
  two_threads.execute([&] {
    tbb::parallel_for(0, 2, 1, [&](int) {
      // Both tasks wait for each other, so they surely run on two threads at the same time.
      arrived.fetch_add(1);
      while (arrived.load() < 2) {
      }
      ++shared;  // the race
    });
  });
  std::printf("shared = %d (no race reported: ThreadSanitizer is not watching TBB tasks)\n", shared);
  return 0;
}
