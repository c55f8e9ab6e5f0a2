// The process never runs more threads than TBB's concurrency plus a constant: oneDNN, built on
// OpenMP here, must not start OpenMP teams inside TBB's tasks.
//
// A program of its own (not a GoogleTest binary) so that the count starts from a process with
// exactly one thread, before any library has run anything. Prints "N passed, M failed".

#include <dirent.h>
#include <tbb/global_control.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "model/engine.hpp"
#include "util/philox.hpp"

namespace {

// ThreadSanitizer's runtime starts one background thread of its own at the first
// pthread_create (it flushes shadow memory); it belongs to neither TBB nor OpenMP.
#if defined(__SANITIZE_THREAD__)
constexpr int kSanitizerThreads = 1;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
constexpr int kSanitizerThreads = 1;
#else
constexpr int kSanitizerThreads = 0;
#endif
#else
constexpr int kSanitizerThreads = 0;
#endif

int thread_count() {
  int count = 0;
  if (DIR* dir = opendir("/proc/self/task")) {
    while (dirent* entry = readdir(dir)) count += entry->d_name[0] != '.';
    closedir(dir);
  }
  return count;
}

}  // namespace

int main() {
  using namespace iclbench::model;
  const int at_start = thread_count();
  int failed = 0;
  for (int threads : {1, 2}) {
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
    // GEMMs large enough (256-row tiles, D = 256, F = 1024) that oneDNN would split them over an
    // OpenMP team of its own if it were allowed one.
    ModelConfig config;
    config.width = 256;
    LayerConfig layer;
    layer.attention_norm = layer.mlp_norm = true;
    layer.attention = AttentionKind::kSoftmax;
    layer.heads = 4;
    layer.qk_dim = layer.v_dim = 64;
    layer.scale = 0.125f;
    layer.mask = Mask::kCausal;
    layer.mlp_hidden = 1024;
    layer.activation = Activation::kGelu;
    config.layers = {layer, layer};
    const Engine engine(config, random_weights(config, 1));
    std::vector<float> tokens(4 * 512 * 256);
    iclbench::util::DrawSequence draws(1, 0, 0, iclbench::util::Stream::kContextInput);
    for (float& value : tokens) value = static_cast<float>(draws.normal());
    std::vector<float> out(tokens.size());

    std::atomic<bool> done{false};
    std::atomic<int> peak{0};
    std::thread monitor([&] {
      while (!done) {
        peak = std::max(peak.load(), thread_count());
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    });
    for (int i = 0; i < 3; ++i) engine.forward(tokens, 4, 512, 1, out);
    done = true;
    monitor.join();
    // The main thread, the monitor, and at most (threads - 1) TBB workers: the calling thread is
    // the other. (Limits run in increasing order, so no worker is left from a larger one.)
    // An OpenMP team started by oneDNN would add threads on top.
    const int allowed = at_start + kSanitizerThreads + 1 + (threads - 1);
    const int after = thread_count();
    const bool ok =
        peak.load() <= allowed && after <= at_start + kSanitizerThreads + (threads - 1);
    std::printf("threads=%d: at start %d, peak %d (allowed %d), after %d: %s\n", threads, at_start,
                peak.load(), allowed, after, ok ? "ok" : "TOO MANY THREADS");
    failed += ok ? 0 : 1;
  }
  std::printf("%d passed, %d failed\n", 2 - failed, failed);
  return failed == 0 ? 0 : 1;
}
