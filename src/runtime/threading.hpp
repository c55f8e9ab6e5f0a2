#pragma once
// TBB owns all parallelism in iclbench. One ThreadLimit, made by the command line, caps TBB's
// concurrency for the whole process.

#include <tbb/global_control.h>

namespace iclbench::runtime {

class ThreadLimit {
 public:
  // threads == 0 means every logical CPU this process may run on (its affinity mask); more
  // than that is capped to it, since TBB would never run more at once and a memory estimate
  // for the requested count would refuse runs that fit. Throws util::ParameterError ("threads")
  // for negative counts.
  explicit ThreadLimit(int threads);
  int threads() const { return threads_; }      // the effective concurrency
  int requested() const { return requested_; }  // as given (0 = all)
  bool capped() const { return requested_ > threads_; }

 private:
  int requested_;
  int threads_;
  tbb::global_control control_;
};

// The concurrency TBB allows in this process now (what a parallel run will use).
int active_threads();

}  // namespace iclbench::runtime
