// iclbench gen: write a task set (safetensors) for a family of linear classification tasks.

#include <sys/statvfs.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/task_flags.hpp"
#include "data_gen/dataset.hpp"
#include "runtime/progress.hpp"

namespace iclbench::cli {
namespace {

struct GenOptions {
  TaskFlags task;
  std::string out;
  bool force = false;
  bool json = false;
};

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  int unit = 0;
  while (bytes >= 1000.0 && unit < 4) {
    bytes /= 1000.0;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, "%.3g %s", bytes, units[unit]);
  return text;
}

// Refuses before any work when the file cannot fit on its file system.
void check_free_space(const std::filesystem::path& out, std::uint64_t bytes) {
  const std::filesystem::path dir = out.has_parent_path() ? out.parent_path() : ".";
  struct statvfs fs {};
  if (::statvfs(dir.c_str(), &fs) != 0) return;  // AtomicFile reports a missing directory
  const std::uint64_t available = static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize;
  if (bytes > available) {
    throw UsageError("the data set needs " + human_bytes(static_cast<double>(bytes)) + " but " +
                     dir.string() + " has " + human_bytes(static_cast<double>(available)) +
                     " free; lower --tasks, --n or --queries");
  }
}

}  // namespace

Command add_gen_command(CLI::App& parent, const GlobalOptions& globals) {
  CLI::App* app = parent.add_subcommand(
      "gen", "generate a task set: T tasks, each N labelled context examples and M queries in d "
             "dimensions, written atomically as safetensors");
  auto options = std::make_shared<GenOptions>();
  add_task_flags(*app, options->task);
  app->add_option("--out", options->out, "output file (.safetensors)")->required();
  app->add_flag("--force", options->force, "replace an existing output file");
  app->add_flag("--json", options->json, "print the summary as one JSON object");
  app->footer(family_help());

  auto run = [options, &globals] {
    const data::TaskSpec spec = resolve_task_flags(options->task, globals.seed);

    const std::filesystem::path out = options->out;
    check_free_space(out, spec.dataset_bytes());
    runtime::Progress progress("gen", "tasks", spec.n_tasks, !globals.quiet);
    data::WriteOptions write_options;
    write_options.overwrite = options->force ? io::Overwrite::kAllow : io::Overwrite::kRefuse;
    write_options.progress = [&progress](std::int64_t done, std::int64_t) { progress.update(done); };

    const auto start = std::chrono::steady_clock::now();
    data::write_dataset(spec, out, write_options);
    progress.finish();
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const std::uint64_t bytes = std::filesystem::file_size(out);

    if (options->json) {
      nlohmann::ordered_json summary = {
          {"out", out.string()},
          {"bytes", bytes},
          {"seconds", seconds},
          {"seed", spec.seed},
          {"params", nlohmann::json::parse(data::spec_to_json(spec))},
      };
      std::printf("%s\n", summary.dump().c_str());
      return;
    }
    std::printf("wrote %s: %s, %lld tasks x (%lld context + %lld queries), d = %lld, seed %llu\n",
                out.c_str(), std::string(data::family_name(spec.family)).c_str(), static_cast<long long>(spec.n_tasks),
                static_cast<long long>(spec.n_examples), static_cast<long long>(spec.n_queries),
                static_cast<long long>(spec.dim), static_cast<unsigned long long>(spec.seed));
    std::printf("%s in %.2f s (%.0f tasks/s)\n", human_bytes(static_cast<double>(bytes)).c_str(),
                seconds, static_cast<double>(spec.n_tasks) / seconds);
  };
  return {app, run};
}

}  // namespace iclbench::cli
