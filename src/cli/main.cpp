// iclbench: in-context learning against trained linear heads, on oneDNN + TBB.
//
// Exit codes: 0 success; 2 bad input (flags, sizes, files, an unwritable output) with one line
// on stderr; 1 an internal error.

#include <CLI/CLI.hpp>
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "iclbench/version.hpp"
#include "io/atomic_file.hpp"
#include "io/safetensors.hpp"
#include "runtime/memory.hpp"
#include "runtime/threading.hpp"
#include "util/errors.hpp"
#include "util/text.hpp"

namespace {

const iclbench::runtime::Cluster* mpi_job = nullptr;

// The one line of a failure. Messages echo user input (flag values, paths, names read from
// files), so control characters are escaped: a newline in a value cannot make a second line.
// Under mpirun every rank parses the same argv and meets the same usage errors, so only rank 0
// says them; a worker says only what is its own (after it enlisted), naming its rank.
int fail(const std::string& command, const std::string& message, int code) {
  const bool worker = mpi_job != nullptr && !mpi_job->coordinator();
  if (worker && !mpi_job->enlisted()) return code;
  const std::string rank = worker ? "rank " + std::to_string(mpi_job->rank()) + ": " : "";
  std::fprintf(stderr, "iclbench%s%s: error: %s%s\n", command.empty() ? "" : " ",
               iclbench::util::escape_control(command).c_str(), rank.c_str(),
               iclbench::util::escape_control(message).c_str());
  return code;
}

int run(int argc, char** argv, iclbench::runtime::Cluster& cluster);

}  // namespace

int main(int argc, char** argv) {
  using namespace iclbench;
  io::install_signal_cleanup();
  // A file-size limit (ulimit -f) then makes a write fail with EFBIG, which is reported with its
  // path and exit 2 and cleans up its temporaries, instead of SIGXFSZ killing the process.
  std::signal(SIGXFSZ, SIG_IGN);
  runtime::return_large_blocks_to_the_system();  // so that the peak is what the estimates count
  std::optional<runtime::Cluster> cluster;
  try {
    cluster.emplace(argc, argv);  // MPI only under a launcher (mpirun)
  } catch (const std::exception& error) {
    return fail("", error.what(), 1);
  }
  mpi_job = &*cluster;
  int code = run(argc, argv, *cluster);
  // Results printed to standard output that did not reach it (/dev/full, a full disk, a closed
  // pipe) are lost like an unwritten file: say so, exit 2.
  if ((std::fflush(cli::output()) != 0 || std::ferror(cli::output()) != 0) && code == 0) {
    code = fail("", "cannot write to standard output", 2);
  }
  // Rank 0 tells the workers how the job ended; they end the same way.
  if (cluster->coordinator()) cluster->finish(code);
  return cluster->coordinator() ? code : cluster->exit_code().value_or(code);
}

namespace {

int run(int argc, char** argv, iclbench::runtime::Cluster& cluster) {
  using namespace iclbench;

  CLI::App app{"iclbench: how well a transformer doing in-context learning matches trained linear "
               "heads on d-dimensional linear classification, and how fast it runs on a CPU.",
               "iclbench"};
  app.set_version_flag("--version", std::string(kVersion) + " (" + kGitRevision + ")");
  app.require_subcommand(1);
  // Global options may also follow the subcommand: `iclbench gen --seed 3 ...`.
  app.fallthrough();

  cli::GlobalOptions globals;
  globals.cluster = &cluster;
  app.add_option("--threads", globals.threads, "TBB threads (0 = all logical CPUs)")
      ->default_val(0);
  app.add_option("--seed", globals.seed, "seed of every random draw (results depend on nothing else)")
      ->default_val(0);
  app.add_flag("--quiet", globals.quiet, "no progress on stderr");
  app.add_option("--max-memory", globals.max_memory_gb,
                 "refuse runs whose estimated memory exceeds this many GB (default: what is available)")
      ->check(cli::positive_finite_number());

  std::vector<cli::Command> commands = {
      cli::add_info_command(app, globals),
      cli::add_gen_command(app, globals),
      cli::add_model_command(app, globals),
      cli::add_speed_command(app, globals),
      cli::add_eval_command(app, globals),
      cli::add_bounds_command(app, globals),
  };

  cli::make_flags_strict(app);

  std::string command_name;
  try {
    app.parse(argc, argv);
    cli::refuse_empty_list_elements(app, std::vector<std::string>(argv + std::min(argc, 1), argv + argc));
  } catch (const CLI::Success& help_or_version) {
    // --help and --version: under mpirun every rank parses the same argv; rank 0 alone prints.
    if (!cluster.coordinator()) return 0;
    return app.exit(help_or_version);
  } catch (const CLI::ParseError& error) {
    for (const auto& parsed : app.get_subcommands()) command_name = parsed->get_name();
    const std::vector<std::string> unparsed = app.remaining();
    if (command_name.empty() && !unparsed.empty()) {
      std::string names;
      for (const cli::Command& command : commands) names += " " + command.app->get_name();
      return fail("", "unknown command '" + unparsed.front() + "'; commands:" + names, 2);
    }
    return fail(command_name, std::string(error.what()) + " (see --help)", 2);
  }

  cli::claim_stdout();
  const cli::Command* running = nullptr;
  try {
    // Only `bounds` spreads its work over MPI ranks; K copies of another command would race.
    for (const cli::Command& command : commands) {
      if (cluster.size() > 1 && command.app->parsed() && command.app->get_name() != "bounds") {
        command_name = command.app->get_name();
        throw cli::UsageError("only `bounds` runs under mpirun with more than one process");
      }
    }
    // Under mpirun, "all CPUs" is this rank's share of its host.
    const runtime::ThreadLimit thread_limit(globals.threads == 0 ? cluster.thread_share() : globals.threads);
    if (thread_limit.capped() && !globals.quiet && cluster.coordinator()) {
      std::fprintf(stderr, "iclbench: note: --threads %d capped to %d, the logical CPUs this process may use\n",
                   thread_limit.requested(), thread_limit.threads());
    }
    for (const cli::Command& command : commands) {
      if (command.app->parsed()) {
        command_name = command.app->get_name();
        running = &command;
        command.run();
      }
    }
  } catch (const util::ParameterError& error) {
    // Under the flag the user typed, the command's own or a global one (--threads).
    std::optional<std::string> message = running ? cli::under_flag(error, *running->app) : std::nullopt;
    if (!message) message = cli::under_flag(error, app);
    return fail(command_name, message.value_or(error.what()), 2);
  } catch (const std::invalid_argument& error) {
    // Every bad-input error of the suite (usage, task spec, model spec or config, head, context)
    // derives from std::invalid_argument.
    return fail(command_name, error.what(), 2);
  } catch (const io::FormatError& error) {
    return fail(command_name, error.what(), 2);
  } catch (const io::OutputExistsError& error) {
    const bool can_force = running && running->app->get_option_no_throw("--force") != nullptr;
    return fail(command_name, error.what() + std::string(can_force ? " (pass --force to replace it)" : ""), 2);
  } catch (const io::IoError& error) {
    return fail(command_name, error.what(), 2);
  } catch (const std::filesystem::filesystem_error& error) {
    // A path in the user's file system that cannot be used (a file where a directory is
    // needed, a read-only file system, no permission): the user's to fix, so exit 2.
    std::string paths = error.path1().string();
    if (!error.path2().empty()) paths += ", " + error.path2().string();
    return fail(command_name, paths + ": " + error.code().message(), 2);
  } catch (const std::bad_alloc&) {
    return fail(command_name, "out of memory", 2);
  } catch (const std::exception& error) {
    return fail(command_name, std::string("internal error: ") + error.what(), 1);
  }
  return 0;
}

}  // namespace
