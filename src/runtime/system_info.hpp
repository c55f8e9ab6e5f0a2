#pragma once
// What machine and libraries a run used: printed by `iclbench info` and stored with results so
// that numbers are never compared across machines unknowingly.

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace iclbench::runtime {

struct SystemInfo {
  std::string cpu_model;
  int logical_cpus = 0;
  std::vector<std::string> isa_flags;  // the ones relevant to the kernels, as /proc/cpuinfo names
  std::string onednn_version;
  std::string onednn_cpu_runtime;  // "OpenMP", "TBB", ...
  std::string onednn_isa;          // the ISA oneDNN dispatches to on this CPU
  std::string tbb_version;
  int tbb_threads = 0;  // the concurrency TBB allows in this process (--threads)
  std::string iclbench_version;
  std::string git_revision;
  std::string compiler;
  nlohmann::ordered_json to_json() const;
};

SystemInfo collect_system_info();

}  // namespace iclbench::runtime
