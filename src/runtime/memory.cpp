#include "runtime/memory.hpp"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

#include "util/text.hpp"

namespace iclbench::runtime {
namespace {

constexpr std::uint64_t kLargeRunBytes = 1000000000;  // 1 GB, in the units human_bytes prints

std::optional<std::uint64_t> read_number(const char* path) {
  std::ifstream file(path);
  std::string text;
  if (!(file >> text) || text == "max") return std::nullopt;
  try {
    return std::stoull(text);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace

std::optional<std::uint64_t> available_memory_bytes() {
  std::optional<std::uint64_t> available;
  std::ifstream meminfo("/proc/meminfo");
  for (std::string line; std::getline(meminfo, line);) {
    std::istringstream fields(line);
    std::string key;
    std::uint64_t kib = 0;
    if (fields >> key >> kib && key == "MemAvailable:") available = kib * 1024;
  }
  const auto limit = read_number("/sys/fs/cgroup/memory.max");
  const auto usage = read_number("/sys/fs/cgroup/memory.current");
  if (limit && usage) {
    const std::uint64_t cgroup_left = *limit > *usage ? *limit - *usage : 0;
    if (!available || cgroup_left < *available) available = cgroup_left;
  }
  return available;
}

void return_large_blocks_to_the_system() {
#if defined(__GLIBC__)
  // Setting M_MMAP_THRESHOLD also turns off its dynamic adjustment (mallopt(3)).
  mallopt(M_MMAP_THRESHOLD, kLargeBlockBytes);
#endif
}

void check_memory(std::uint64_t estimate, const std::string& what, const std::string& remedy,
                  const MemoryBudget& budget) {
  const std::optional<std::uint64_t> allowed = budget.limit ? budget.limit : available_memory_bytes();
  const std::string estimate_text = util::human_bytes(static_cast<double>(estimate));
  if (allowed && estimate > *allowed) {
    const std::string who = budget.limit ? " is allowed by " + budget.limit_name : " is available";
    throw std::invalid_argument(what + " needs an estimated " + estimate_text + " of memory, but " +
                                util::human_bytes(static_cast<double>(*allowed)) + who + "; " + remedy);
  }
  if (estimate >= kLargeRunBytes && !budget.quiet) {
    // A cap the user set is named as one: "1.1 GB available" read as a measure of the machine.
    const std::string allowed_text = allowed ? util::human_bytes(static_cast<double>(*allowed)) : "unknown";
    const std::string room =
        !budget.limit                          ? allowed_text + " available"
        : budget.limit_name.starts_with("--") ? "the " + budget.limit_name + " cap of " + allowed_text
                                               : allowed_text + " allowed by " + budget.limit_name;
    std::fprintf(stderr, "%s: memory estimate %s (%s)\n", what.c_str(), estimate_text.c_str(), room.c_str());
  }
}

}  // namespace iclbench::runtime
