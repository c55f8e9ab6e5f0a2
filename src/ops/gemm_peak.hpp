#pragma once
// The in-process GEMM peak: what one thread's oneDNN GEMM reaches on a large square problem here
// and now. Achieved fractions of peak (forward_bench's peak_frac, `speed --op-groups`) divide by
// it, so that a figure says how close an op runs to this machine's own roofline whatever its
// clock or load at the time. Timed in CPU seconds of the calling thread (util/cpu_time.hpp), so
// divide CPU-time rates by it: a wall-clock rate on a loaded host is lower by the time the
// process waited for a CPU.

#include "ops/dnnl_ops.hpp"

namespace iclbench::ops {

// GFLOP per CPU-second of a 1024 x 1024 x 1024 single-threaded Linear (f32, or bf16 inputs with
// f32 accumulation): the median of 5 timed runs after one warm-up, measured on the first call per
// dtype and cached for the process (~0.1-0.3 s). Call it from one thread at a time.
double gemm_peak_gflops(DType dtype);

}  // namespace iclbench::ops
