#include "runtime/system_info.hpp"

#include <oneapi/dnnl/dnnl.hpp>
#include <tbb/global_control.h>
#include <tbb/version.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <thread>

#include "iclbench/version.hpp"

namespace iclbench::runtime {
namespace {

// The instruction-set extensions that decide which kernels oneDNN can use.
constexpr const char* kRelevantFlags[] = {
    "avx",         "avx2",        "fma",           "f16c",        "avx512f",
    "avx512bw",    "avx512vl",    "avx512dq",      "avx512_vnni", "avx512_bf16",
    "avx512_fp16", "avx_vnni",    "amx_tile",      "amx_bf16",    "amx_int8",
};

std::string onednn_runtime_name(unsigned runtime) {
  switch (runtime) {
    case DNNL_RUNTIME_SEQ: return "sequential";
    case DNNL_RUNTIME_OMP: return "OpenMP";
    case DNNL_RUNTIME_TBB: return "TBB";
    case DNNL_RUNTIME_THREADPOOL: return "threadpool";
    default: return "unknown (" + std::to_string(runtime) + ")";
  }
}

std::string onednn_isa_name(dnnl::cpu_isa isa) {
  switch (isa) {
    case dnnl::cpu_isa::sse41: return "sse41";
    case dnnl::cpu_isa::avx: return "avx";
    case dnnl::cpu_isa::avx2: return "avx2";
    case dnnl::cpu_isa::avx2_vnni: return "avx2_vnni";
    case dnnl::cpu_isa::avx512_core: return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
    case dnnl::cpu_isa::all: return "all";
    default: return "other (" + std::to_string(static_cast<int>(isa)) + ")";
  }
}

}  // namespace

SystemInfo collect_system_info() {
  SystemInfo info;
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  std::vector<std::string> flags;
  while (std::getline(cpuinfo, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon);
    key.erase(key.find_last_not_of(" \t") + 1);
    const std::string value = colon + 2 <= line.size() ? line.substr(colon + 2) : "";
    if (key == "model name" && info.cpu_model.empty()) info.cpu_model = value;
    if (key == "flags" && flags.empty()) {
      std::istringstream words(value);
      for (std::string word; words >> word;) flags.push_back(word);
    }
  }
  for (const char* flag : kRelevantFlags) {
    if (std::find(flags.begin(), flags.end(), flag) != flags.end()) info.isa_flags.push_back(flag);
  }
  info.logical_cpus = static_cast<int>(std::thread::hardware_concurrency());

  const dnnl::version_t* version = dnnl::version();
  info.onednn_version = std::to_string(version->major) + "." + std::to_string(version->minor) +
                        "." + std::to_string(version->patch);
  if (version->hash != nullptr && *version->hash != '\0') {
    info.onednn_version += std::string(" (") + version->hash + ")";
  }
  info.onednn_cpu_runtime = onednn_runtime_name(version->cpu_runtime);
  info.onednn_isa = onednn_isa_name(dnnl::get_effective_cpu_isa());

  info.tbb_version = TBB_runtime_version();
  info.tbb_threads = static_cast<int>(
      tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism));
  info.iclbench_version = kVersion;
  info.git_revision = kGitRevision;
#if defined(__clang__)
  info.compiler = "clang " __clang_version__;
#elif defined(__GNUC__)
  info.compiler = "gcc " __VERSION__;
#else
  info.compiler = "unknown";
#endif
  return info;
}

nlohmann::ordered_json SystemInfo::to_json() const {
  return {
      {"cpu_model", cpu_model},
      {"logical_cpus", logical_cpus},
      {"isa_flags", isa_flags},
      {"onednn_version", onednn_version},
      {"onednn_cpu_runtime", onednn_cpu_runtime},
      {"onednn_isa", onednn_isa},
      {"tbb_version", tbb_version},
      {"tbb_threads", tbb_threads},
      {"iclbench_version", iclbench_version},
      {"git_revision", git_revision},
      {"compiler", compiler},
  };
}

}  // namespace iclbench::runtime
