#pragma once
// Progress of long runs on stderr: "label: done/total unit (pct), rate, ETA". Silent for the
// first two seconds so that quick runs print nothing; on a terminal the line is redrawn in place,
// otherwise (logs, CI) a line is printed every ten seconds. The work itself only calls a
// util::ProgressCallback, which callback() gives.

#include <chrono>
#include <cstdint>
#include <string>

#include "util/progress_callback.hpp"

namespace iclbench::runtime {

class Progress {
 public:
  Progress(std::string label, std::string unit, std::int64_t total, bool enabled);
  ~Progress();
  void update(std::int64_t done);
  // update(done) as the callback long work takes; valid while this object lives.
  util::ProgressCallback callback();
  void finish();  // ends a redrawn line; called by the destructor too

 private:
  using Clock = std::chrono::steady_clock;
  void print(std::int64_t done, double elapsed_seconds);

  std::string label_;
  std::string unit_;
  std::int64_t total_;
  bool enabled_;
  bool terminal_;
  bool printed_ = false;
  Clock::time_point start_;
  Clock::time_point last_print_;
};

}  // namespace iclbench::runtime
