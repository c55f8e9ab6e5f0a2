#pragma once
// Shared pieces of the benchmark binaries: the in-process GEMM peak every GFLOP/s figure is
// divided by (the `peak_frac` counter), and counter helpers. Setup happens outside the timed
// loops; benchmarks that run threads use real time.
//
// peak_frac is a ratio of CPU-time rates throughout: the peak is GFLOP per CPU-second of its
// thread (ops::gemm_peak_gflops), a single-threaded benchmark timed in CPU time divides its
// FLOPs by that CPU time, and one timed in real time (threads) passes the process CPU seconds
// of its timed loop (LoopCpuTime). So on a loaded host, where wall-clock rates drop by the time
// the process waited for a CPU, the fraction still says how close the work runs to the peak;
// GFLOP/s, tokens/s and prompts/s stay rates of the benchmark's own clock.

#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>

namespace iclbench::bench {

// Checks Google Benchmark 1.7's flags in argv[1, argc), and the BENCHMARK_* environment variables
// it reads as their defaults, before benchmark::Initialize, which does not: it runs
// --benchmark_min_time=nan for ever, aborts on --benchmark_repetitions=-1 (std::length_error),
// prints its help and exits 0 on --benchmark_format=xml, and leaves a value it cannot parse in
// argv as an unrecognised flag (exit 1). Returns "" if every flag is usable or --help is among
// them (Initialize then prints the help and exits 0), else one line naming the flag and what it
// takes. The numbers: --benchmark_min_time seconds in (0, 3600], --benchmark_min_warmup_time
// seconds in [0, 3600], both plain decimals (1.7 takes no "s" or "x" suffix: that is 1.8),
// --benchmark_repetitions an integer in [1, 1000], --v an integer >= 0. The caller prints the
// line and exits 2. --benchmark_filter is left to RunSpecifiedBenchmarks, which returns 0 (and
// says why on stderr) if its regex does not compile or selects no benchmark.
std::string check_benchmark_flags(int argc, const char* const* argv);

// GFLOP/s of a large single-threaded oneDNN GEMM (f32 or bf16), measured once per process
// (ops::gemm_peak_gflops).
double gemm_peak_gflops(bool bf16);

// The process CPU seconds since construction (all threads): start one just before a timed loop.
class LoopCpuTime {
 public:
  LoopCpuTime();
  double seconds() const;

 private:
  double start_ = 0;
};

// Sets GFLOP/s and peak_frac for `flops` per iteration, and tokens/s, prompts/s if nonzero.
// peak_frac: with `loop_cpu_seconds` (> 0, a LoopCpuTime's reading after the loop), FLOPs per
// process CPU-second over the peak, whatever the thread count (the CPU seconds sum the
// threads'); without it the benchmark must be timed in CPU time on one thread.
void set_counters(benchmark::State& state, double flops, double tokens = 0, double prompts = 0,
                  bool bf16 = false, double loop_cpu_seconds = 0);

}  // namespace iclbench::bench
