#pragma once
// Shared pieces of the benchmark binaries: the in-process GEMM peak every GFLOP/s figure is
// divided by (the `peak_frac` counter), and counter helpers. Setup happens outside the timed
// loops; benchmarks that run threads use real time.

#include <benchmark/benchmark.h>

#include <cstdint>

namespace iclbench::bench {

// GFLOP/s of a large single-threaded oneDNN GEMM (f32 or bf16), measured once per process
// (ops::gemm_peak_gflops).
double gemm_peak_gflops(bool bf16);

// Sets GFLOP/s and peak_frac for `flops` per iteration, and tokens/s, prompts/s if nonzero.
void set_counters(benchmark::State& state, double flops, double tokens = 0, double prompts = 0,
                  bool bf16 = false, int threads = 1);

}  // namespace iclbench::bench
