// iclbench gen: write a task set (safetensors) for a family of linear classification tasks.

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/task_flags.hpp"
#include "data_gen/dataset.hpp"
#include "runtime/progress.hpp"
#include "util/text.hpp"

namespace iclbench::cli {
namespace {

struct GenOptions {
  TaskFlags task;
  std::string out;
  bool force = false;
  bool json = false;
};

}  // namespace

Command add_gen_command(CLI::App& parent, const GlobalOptions& globals) {
  CLI::App* app = parent.add_subcommand(
      "gen", "generate a task set: T tasks, each N labelled context examples and M queries in d "
             "dimensions, written atomically as safetensors");
  auto options = std::make_shared<GenOptions>();
  add_task_flags(*app, options->task);
  app->add_option("--out", options->out, "output file (.safetensors)")->required()->type_name(kPathType);
  app->add_flag("--force", options->force, "replace an existing output file");
  app->add_flag("--json", options->json, "print the summary as one JSON object");
  app->footer(family_help());

  auto run = [options, &globals] {
    const data::TaskSpec spec = resolve_task_flags(options->task, globals.seed);

    const std::filesystem::path out = options->out;
    runtime::Progress progress("gen", "tasks", spec.n_tasks, !globals.quiet);
    data::WriteOptions write_options;
    write_options.overwrite = options->force ? io::Overwrite::kAllow : io::Overwrite::kRefuse;
    write_options.progress = progress.callback();

    const auto start = std::chrono::steady_clock::now();
    try {
      data::write_dataset(spec, out, write_options);
    } catch (const data::NoSpaceError& error) {
      throw no_space_error(error);
    }
    progress.finish();
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const std::uint64_t bytes = std::filesystem::file_size(out);
    // The summary reports the written file's size and time, so it can only follow the commit.
    const std::string was_written = "; " + util::escape_control(out.string()) + " was written";

    if (options->json) {
      nlohmann::ordered_json summary = {
          {"out", out.string()},
          {"bytes", bytes},
          {"seconds", seconds},
          {"seed", spec.seed},
          {"params", nlohmann::json::parse(data::spec_to_json(spec))},
      };
      std::fprintf(output(), "%s\n", summary.dump().c_str());
      flush_output(was_written);
      return;
    }
    std::fprintf(output(), "wrote %s: %s, %lld tasks x (%lld context + %lld queries), d = %lld, seed %llu\n",
                util::escape_control(out.string()).c_str(), std::string(data::family_name(spec.family)).c_str(), static_cast<long long>(spec.n_tasks),
                static_cast<long long>(spec.n_examples), static_cast<long long>(spec.n_queries),
                static_cast<long long>(spec.dim), static_cast<unsigned long long>(spec.seed));
    std::fprintf(output(), "%s in %.2f s (%.0f tasks/s)\n", util::human_bytes(static_cast<double>(bytes)).c_str(),
                seconds, static_cast<double>(spec.n_tasks) / seconds);
    flush_output(was_written);
  };
  return {app, run};
}

}  // namespace iclbench::cli
