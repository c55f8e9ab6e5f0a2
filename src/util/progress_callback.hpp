#pragma once
// How long work reports its progress: a callback told how many of how many steps are done.
// Called from the thread that runs the work, never concurrently. runtime::Progress prints it.

#include <cstdint>
#include <functional>

namespace iclbench::util {

using ProgressCallback = std::function<void(std::int64_t done, std::int64_t total)>;

}  // namespace iclbench::util
