#pragma once
// Memory checks before large runs: a run whose estimated peak exceeds what the machine (or a
// limit the user set) allows is refused before it allocates, with the estimate in the message,
// rather than being killed by the OOM killer halfway through.

#include <cstdint>
#include <optional>
#include <string>

namespace iclbench::runtime {

// Bytes this process may still allocate: /proc/meminfo's MemAvailable, or the cgroup v2 limit
// minus its usage when that is lower. Empty when neither can be read.
std::optional<std::uint64_t> available_memory_bytes();

struct MemoryBudget {
  std::optional<std::uint64_t> limit;  // otherwise what is available
  std::string limit_name = "the memory limit";  // for the message: who set `limit`
  bool quiet = false;
};

// Makes the allocator hand every block of kLargeBlockBytes or more straight to the system (mmap)
// and back when it is freed. glibc's default raises that threshold to the largest block freed so
// far (up to 32 MB), after which large blocks come from the heap and stay resident after free: a
// run over an n-grid then holds the freed buffers of earlier shapes beside the live ones, which
// no estimate of live memory counts (the issue-15 eval run peaked 70 MB above its live memory).
// With a fixed threshold the peak is what is live, which is what the estimates count. Call once
// at program start; a no-op where the allocator is not glibc's.
inline constexpr int kLargeBlockBytes = 1 << 20;
void return_large_blocks_to_the_system();

// Throws std::invalid_argument (a bad-input error, exit 2) naming `what`, the estimate, the
// budget and `remedy` (which flags to lower) when `estimate` exceeds the budget. Prints the
// estimate to stderr for large runs (>= 1 GB) unless quiet.
void check_memory(std::uint64_t estimate, const std::string& what, const std::string& remedy,
                  const MemoryBudget& budget);

}  // namespace iclbench::runtime
