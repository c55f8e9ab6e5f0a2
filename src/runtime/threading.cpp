#include "runtime/threading.hpp"

#include <tbb/info.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "util/errors.hpp"

namespace iclbench::runtime {
namespace {
int resolve_threads(int requested) {
  if (requested < 0) {
    throw util::ParameterError("threads", "must be >= 0 (0 = all CPUs), got " + std::to_string(requested));
  }
  const int available = std::max(1, tbb::info::default_concurrency());
  return requested == 0 ? available : std::min(requested, available);
}
}  // namespace

ThreadLimit::ThreadLimit(int threads)
    : requested_(threads),
      threads_(resolve_threads(threads)),
      control_(tbb::global_control::max_allowed_parallelism, static_cast<std::size_t>(threads_)) {}

int active_threads() {
  return static_cast<int>(tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism));
}

}  // namespace iclbench::runtime
