#pragma once
// The flags that define a task set, shared by `gen` and `eval`.

#include <CLI/CLI.hpp>
#include <string>

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
// The validated spec, with the family-dependent defaults filled in and the given seed.
data::TaskSpec resolve_task_flags(const TaskFlags& flags, std::uint64_t seed);
bool any_task_flag_given(const TaskFlags& flags);
std::string family_help();

}  // namespace iclbench::cli
