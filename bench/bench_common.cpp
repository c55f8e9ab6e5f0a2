#include "bench_common.hpp"

#include <chrono>
#include <vector>

#include "ops/dnnl_ops.hpp"

namespace iclbench::bench {

double gemm_peak_gflops(bool bf16) {
  static double peak[2] = {0, 0};
  double& cached = peak[bf16 ? 1 : 0];
  if (cached > 0) return cached;
  // 1024 x 1024 x 1024: large enough to reach the kernel's steady state, small enough to time
  // in a fraction of a second. The median of 5 timed repetitions after one warm-up.
  constexpr std::int64_t kSize = 1024;
  const ops::DType dtype = bf16 ? ops::DType::kBF16 : ops::DType::kF32;
  std::vector<float> weights(kSize * kSize, 0.01f), bias(kSize, 0.0f), dst(kSize * kSize);
  std::vector<std::uint16_t> src_bf16(kSize * kSize, 0x3c00);
  std::vector<float> src_f32(kSize * kSize, 0.5f);
  const ops::Linear gemm(ops::Layout::rows(kSize, kSize, kSize, dtype), weights, bias,
                         ops::Layout::rows(kSize, kSize, kSize, ops::DType::kF32),
                         ops::PostActivation::kNone, false);
  std::vector<std::byte> scratch(gemm.scratchpad_bytes() + 64);
  const void* src = bf16 ? static_cast<const void*>(src_bf16.data()) : src_f32.data();
  std::vector<double> seconds;
  for (int run = 0; run < 6; ++run) {
    const auto start = std::chrono::steady_clock::now();
    gemm.execute(src, dst.data(), scratch.data());
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (run > 0) seconds.push_back(elapsed);
  }
  std::sort(seconds.begin(), seconds.end());
  cached = 2.0 * kSize * kSize * kSize / seconds[seconds.size() / 2] / 1e9;
  return cached;
}

void set_counters(benchmark::State& state, double flops, double tokens, double prompts, bool bf16,
                  int threads) {
  const auto iterations = static_cast<double>(state.iterations());
  state.counters["GFLOP/s"] = benchmark::Counter(flops * iterations / 1e9, benchmark::Counter::kIsRate);
  // The fraction of what this many threads could do at the single-thread GEMM peak.
  state.counters["peak_frac"] = benchmark::Counter(
      flops * iterations / 1e9 / (gemm_peak_gflops(bf16) * threads), benchmark::Counter::kIsRate);
  if (tokens > 0) state.counters["tokens/s"] = benchmark::Counter(tokens * iterations, benchmark::Counter::kIsRate);
  if (prompts > 0) state.counters["prompts/s"] = benchmark::Counter(prompts * iterations, benchmark::Counter::kIsRate);
}

}  // namespace iclbench::bench
