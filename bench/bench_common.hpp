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

namespace iclbench::bench {

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
