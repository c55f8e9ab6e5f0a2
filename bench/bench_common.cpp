#include "bench_common.hpp"

#include "ops/gemm_peak.hpp"
#include "util/cpu_time.hpp"

namespace iclbench::bench {

double gemm_peak_gflops(bool bf16) {
  return ops::gemm_peak_gflops(bf16 ? ops::DType::kBF16 : ops::DType::kF32);
}

LoopCpuTime::LoopCpuTime() : start_(util::process_cpu_seconds()) {}

double LoopCpuTime::seconds() const { return util::process_cpu_seconds() - start_; }

void set_counters(benchmark::State& state, double flops, double tokens, double prompts, bool bf16,
                  double loop_cpu_seconds) {
  const auto iterations = static_cast<double>(state.iterations());
  state.counters["GFLOP/s"] = benchmark::Counter(flops * iterations / 1e9, benchmark::Counter::kIsRate);
  // Both rates per CPU-second (see bench_common.hpp).
  const double peak = gemm_peak_gflops(bf16);
  state.counters["peak_frac"] =
      loop_cpu_seconds > 0
          ? benchmark::Counter(flops * iterations / 1e9 / loop_cpu_seconds / peak)
          : benchmark::Counter(flops * iterations / 1e9 / peak, benchmark::Counter::kIsRate);
  if (tokens > 0) state.counters["tokens/s"] = benchmark::Counter(tokens * iterations, benchmark::Counter::kIsRate);
  if (prompts > 0) state.counters["prompts/s"] = benchmark::Counter(prompts * iterations, benchmark::Counter::kIsRate);
}

}  // namespace iclbench::bench
