#pragma once
// CPU time, for rates that should not count the time a thread waited for a CPU: on a shared host
// (this suite's 2-vCPU machine runs at load 10+ while others build) wall-clock rates halve while
// the work done per CPU-second does not. The GEMM peak, forward_bench's peak_frac and `speed`'s
// whole-forward fraction use these, so their ratios compare like with like. (The engine's
// per-op clocks do not: a thread CPU clock read is a system call, model::OpGroupClock.)

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
