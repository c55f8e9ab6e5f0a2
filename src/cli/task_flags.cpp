#include "cli/task_flags.hpp"

#include <cstdio>

namespace iclbench::cli {

void add_task_flags(CLI::App& app, TaskFlags& flags) {
  data::TaskSpec& spec = flags.spec;
  flags.all = {
      app.add_option("--family", flags.family, "task family: " + data::family_names())->capture_default_str(),
      app.add_option("--d", spec.dim, "input dimension d")->capture_default_str(),
      app.add_option("--n", spec.n_examples, "context examples N per task")->capture_default_str(),
      app.add_option("--queries", spec.n_queries, "queries M per task")->capture_default_str(),
      app.add_option("--tasks", spec.n_tasks, "tasks T")->capture_default_str(),
      app.add_option("--noise", spec.noise, "probability eta in [0, 0.5) of flipping a context label")
          ->capture_default_str(),
      app.add_option("--margin", spec.margin,
                     "redraw inputs with |w*.x + bias| < margin*|x|; margin in [0, 1)")
          ->capture_default_str(),
      flags.kappa = app.add_option("--kappa", spec.kappa,
                                   "condition number of the covariance (skewed; default 10)"),
      app.add_option("--bias", spec.bias, "label = sign(w*.x + bias): inhomogeneous halfspaces")
          ->capture_default_str(),
      flags.scale = app.add_option("--scale", spec.scale,
                                   "|mu| for gmm, the input scale for scaled (default 2 for both)"),
  };
}

bool any_task_flag_given(const TaskFlags& flags) {
  for (const CLI::Option* option : flags.all)
    if (option->count() > 0) return true;
  return false;
}

data::TaskSpec resolve_task_flags(const TaskFlags& flags, std::uint64_t seed) {
  data::TaskSpec spec = flags.spec;
  const auto family = data::parse_family(flags.family);
  if (!family) {
    throw UsageError("unknown --family '" + flags.family + "'; choose one of " + data::family_names());
  }
  spec.family = *family;
  spec.seed = seed;
  if (flags.kappa->count() == 0 && spec.family == data::Family::kSkewed) spec.kappa = 10.0;
  if (flags.scale->count() == 0) spec.scale = data::default_scale(spec.family);
  data::validate(spec);
  return spec;
}

UsageError no_space_error(const data::NoSpaceError& error) {
  return UsageError(error.message("lower --tasks, --n or --queries"));
}

std::string family_help() {
  std::string text = "Families:\n";
  for (const char* name : {"gaussian", "skewed", "sphere", "cube", "gmm", "quadrants", "orthogonal",
                           "overlap", "half-subspace", "scaled"}) {
    char line[200];
    std::snprintf(line, sizeof line, "  %-14s %s\n", name,
                  std::string(data::family_description(*data::parse_family(name))).c_str());
    text += line;
  }
  return text;
}

}  // namespace iclbench::cli
