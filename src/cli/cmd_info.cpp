// iclbench info [--json]: the machine, the ISA oneDNN dispatches to, library versions.

#include <cstdio>
#include <memory>

#include "cli/commands.hpp"
#include "runtime/system_info.hpp"

namespace iclbench::cli {

Command add_info_command(CLI::App& parent, const GlobalOptions& /*globals*/) {
  CLI::App* app = parent.add_subcommand(
      "info", "CPU, ISA flags, oneDNN version/runtime/dispatched ISA, TBB version, threads");
  auto as_json = std::make_shared<bool>(false);
  app->add_flag("--json", *as_json, "print one JSON object instead of text");

  auto run = [as_json] {
    const runtime::SystemInfo info = runtime::collect_system_info();
    if (*as_json) {
      std::fprintf(output(), "%s\n", info.to_json().dump(2).c_str());
      return;
    }
    std::string flags;
    for (const auto& flag : info.isa_flags) flags += (flags.empty() ? "" : " ") + flag;
    std::fprintf(output(), "iclbench        %s (%s), %s\n", info.iclbench_version.c_str(),
                info.git_revision.c_str(), info.compiler.c_str());
    std::fprintf(output(), "cpu             %s, %d logical CPUs\n", info.cpu_model.c_str(), info.logical_cpus);
    std::fprintf(output(), "isa flags       %s\n", flags.c_str());
    std::fprintf(output(), "oneDNN          %s, CPU runtime %s, dispatches %s\n", info.onednn_version.c_str(),
                info.onednn_cpu_runtime.c_str(), info.onednn_isa.c_str());
    std::fprintf(output(), "oneTBB          %s\n", info.tbb_version.c_str());
    std::fprintf(output(), "threads         %d (TBB; oneDNN runs single-threaded inside TBB tasks)\n",
                info.tbb_threads);
  };
  return {app, run};
}

}  // namespace iclbench::cli
