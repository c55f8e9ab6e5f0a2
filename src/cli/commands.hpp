#pragma once
// Subcommands of `iclbench`. Each registers its flags on the CLI11 app and returns the function
// that runs it once the command line has parsed.

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <stdexcept>

#include "runtime/memory.hpp"

namespace iclbench::cli {

struct GlobalOptions {
  int threads = 0;  // 0 = every logical CPU
  std::uint64_t seed = 0;
  bool quiet = false;
  double max_memory_gb = 0;  // 0 = what the machine has available

  runtime::MemoryBudget memory_budget() const {
    runtime::MemoryBudget budget;
    if (max_memory_gb > 0) budget.limit = static_cast<std::uint64_t>(max_memory_gb * 1e9);
    budget.quiet = quiet;
    return budget;
  }
};

// A flag combination that parses but makes no sense; reported like a parse error (exit 2).
class UsageError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

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
