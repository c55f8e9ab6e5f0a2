#pragma once
// TBB owns all parallelism in iclbench. One ThreadLimit, made by the command line, caps TBB's
// concurrency for the whole process.

#include <tbb/global_control.h>

namespace iclbench::runtime {

class ThreadLimit {
 public:
  // threads == 0 means every logical CPU. Throws util::ParameterError ("threads") for negative
  // counts.
  explicit ThreadLimit(int threads);
  int threads() const { return threads_; }

 private:
  int threads_;
  tbb::global_control control_;
};

// The concurrency TBB allows in this process now (what a parallel run will use).
int active_threads();

}  // namespace iclbench::runtime
