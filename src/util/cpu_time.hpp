#pragma once
// CPU time, for rates that should not count the time a thread waited for a CPU: on a shared host
// (this suite's 2-vCPU machine runs at load 10+ while others build) wall-clock rates halve while
// the work done per CPU-second does not. The GEMM peak, the engine's op-group clocks and
// forward_bench's peak_frac all use these, so their ratios compare like with like.

#include <time.h>

namespace iclbench::util {

// CPU seconds consumed by the calling thread so far (CLOCK_THREAD_CPUTIME_ID).
inline double thread_cpu_seconds() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) + 1e-9 * static_cast<double>(now.tv_nsec);
}

// CPU seconds consumed by all of the process's threads so far (CLOCK_PROCESS_CPUTIME_ID).
inline double process_cpu_seconds() {
  timespec now{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) + 1e-9 * static_cast<double>(now.tv_nsec);
}

}  // namespace iclbench::util
