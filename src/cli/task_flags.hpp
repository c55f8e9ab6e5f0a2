#pragma once
// The flags that define a task set, shared by `gen` and `eval`.

#include <CLI/CLI.hpp>
#include <string>

#include "cli/commands.hpp"
#include "data_gen/dataset.hpp"
#include "data_gen/task_generator.hpp"

namespace iclbench::cli {

struct TaskFlags {
  std::string family = "gaussian";
  data::TaskSpec spec;
  CLI::Option* kappa = nullptr;
  CLI::Option* scale = nullptr;
  std::vector<CLI::Option*> all;  // to tell whether any was given
};

// Registers --family --d --n --queries --tasks --noise --margin --kappa --bias --scale.
void add_task_flags(CLI::App& app, TaskFlags& flags);
// The validated spec, with the family-dependent defaults filled in and the given seed. A bad
// parameter is a data::SpecError (reported under its flag by main()).
data::TaskSpec resolve_task_flags(const TaskFlags& flags, std::uint64_t seed);
// A data set too large for its file system, with the flags that make it smaller.
UsageError no_space_error(const data::NoSpaceError& error);
bool any_task_flag_given(const TaskFlags& flags);
std::string family_help();

}  // namespace iclbench::cli
