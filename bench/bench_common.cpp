#include "bench_common.hpp"

#include "ops/gemm_peak.hpp"

namespace iclbench::bench {

double gemm_peak_gflops(bool bf16) {
  return ops::gemm_peak_gflops(bf16 ? ops::DType::kBF16 : ops::DType::kF32);
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
