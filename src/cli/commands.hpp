#pragma once
// Subcommands of `iclbench`. Each registers its flags on the CLI11 app and returns the function
// that runs it once the command line has parsed.

#include <CLI/CLI.hpp>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/cluster.hpp"
#include "runtime/memory.hpp"
#include "util/errors.hpp"

namespace iclbench::cli {

struct GlobalOptions {
  int threads = 0;  // 0 = every logical CPU
  std::uint64_t seed = 0;
  bool quiet = false;
  double max_memory_gb = 0;  // 0 = what the machine has available
  runtime::Cluster* cluster = nullptr;  // the MPI job (one process without a launcher); set by main

  runtime::MemoryBudget memory_budget() const {
    runtime::MemoryBudget budget;
    if (max_memory_gb > 0) budget.limit = static_cast<std::uint64_t>(max_memory_gb * 1e9);
    budget.limit_name = "--max-memory";
    budget.quiet = quiet;
    return budget;
  }
};

// A flag combination that parses but makes no sense; reported like a parse error (exit 2).
class UsageError : public std::invalid_argument {
 public:
  // Escaped as util::ParameterError's: a NUL in user input must not cut what() short.
  explicit UsageError(const std::string& message) : std::invalid_argument(util::escape_control(message)) {}
};

// The library names a bad parameter as its files do ("d", "n_grid"); the user typed a flag. The
// error under the flag that sets the parameter ("--d must be in ..."), if `app` has that flag and
// the user gave it; nothing otherwise (the value came from a default, a config file or a data
// set, and the library's name is the one to read).
std::optional<std::string> under_flag(const util::ParameterError& error, const CLI::App& app);

// The type name (CLI11's type_name) of a flag that names a file or directory: such a flag given
// as "" is refused ("empty path"), never taken as "not given".
inline constexpr const char* kPathType = "PATH";

// Makes every option of `app` and its subcommands strict, by its CLI11 type name, so that no
// command can forget one:
//   INT, UINT (also lists): decimal digits only, fitting the type: no "1e3", "4.7", "-1" for an
//     unsigned, "0x10", and no silent wrap at 2^64;
//   FLOAT: decimal notation (util::parse_real): no hexadecimal float ("0x1p-3"), no blanks;
//   containing PATH (kPathType): not empty.
// Call once every option is registered.
void make_flags_strict(CLI::App& app);
// CLI11 drops the empty elements of a delimited list ("--n-grid 4,,8" read as 4,8; "8," as 8).
// Throws CLI::ValidationError ("--n-grid: empty element in '4,,8'") for the first delimited flag
// of `app` or its parsed subcommand whose value in `args` (argv without the program name) has
// one. Call after a successful parse.
void refuse_empty_list_elements(const CLI::App& app, const std::vector<std::string>& args);
// A check for a real-valued option that must be > 0 and finite (CLI11's PositiveNumber lets nan
// through).
CLI::Validator positive_finite_number();

// iclbench's standard output belongs to the command's own results (JSON with --json, tables):
// claim_stdout() keeps a private descriptor of it and points descriptor 1 at standard error, so
// that whatever a library prints there (DNNL_VERBOSE=1 lines, a helper's chatter) lands on stderr
// and cannot break the JSON. Called once the command line has parsed (help and version still go
// to stdout); commands print to output().
void claim_stdout();
std::FILE* output();
// Flushes output() and throws io::IoError "cannot write to standard output<consequence>" if what
// was printed did not all reach it (/dev/full, a closed pipe). A command calls it before it commits
// its files, so that a lost result leaves no file either ("; nothing was written"); where the
// printout can only follow the files, `consequence` says that they were written.
void flush_output(const std::string& consequence);

struct Command {
  CLI::App* app;
  std::function<void()> run;
};

Command add_info_command(CLI::App& parent, const GlobalOptions& globals);
Command add_gen_command(CLI::App& parent, const GlobalOptions& globals);
Command add_model_command(CLI::App& parent, const GlobalOptions& globals);
Command add_speed_command(CLI::App& parent, const GlobalOptions& globals);
Command add_eval_command(CLI::App& parent, const GlobalOptions& globals);
Command add_bounds_command(CLI::App& parent, const GlobalOptions& globals);

}  // namespace iclbench::cli
