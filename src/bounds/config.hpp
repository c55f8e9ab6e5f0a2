#pragma once
// The configuration of a bounds sweep: its grids, learners and sizes, as a JSON file (a run
// directory's config.json, or `iclbench bounds --config FILE`) and as presets.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace iclbench::bounds {

// gd-hinge's own regime A grid (its cost grows as L N per prompt, so it gets smaller d, N and
// task counts than the linear learners), with the step-size and step-count rule
//   eta(N) = eta_per_n * N,  L(N) = steps_per_log2_n * ceil(log2 N)
// (docs/DESIGN.md, "gd-hinge: a rule that converges"). Empty d_grid: no hinge points. The ERM
// reference runs on the same tasks and grid, so that agreement is measured task by task.
struct HingeGrid {
  std::vector<int> d_grid;
  std::vector<std::int64_t> n_grid;
  std::vector<double> eps_grid;
  std::int64_t tasks = 50;
  double eta_per_n = 4;
  int steps_per_log2_n = 32;
  double tau = 0.5;
  bool empty() const { return d_grid.empty(); }
  // The construction run at context size n, e.g. "gd-hinge:L=384,eta=16384,tau=0.5" at n = 4096.
  std::string model_at(std::int64_t n) const;
  // The learner's name in reports: the rule, e.g. "gd-hinge:L=32log2N,eta=4N,tau=0.5".
  std::string learner_name() const;
};

// Field names are the keys of the JSON file, and the names errors give the parameters.
struct BoundsConfig {
  std::string preset = "custom";
  std::string family = "gaussian";
  std::vector<int> d_grid;
  std::vector<std::int64_t> n_grid;
  std::vector<double> eps_grid;
  // Regime B (the context-constrained claim): a set S of regime_b_s examples per task; every
  // learner sees a context of k examples chosen from S by each policy of regime_b_contexts
  // (random, retrieve, ensemble; eval/context.hpp); disagreement with the reference trained on
  // all of S, (1 - delta)-quantile over regime_b_tasks tasks for each delta of regime_b_deltas.
  // Empty k_grid = regime A only.
  std::vector<std::int64_t> k_grid;
  std::vector<std::string> regime_b_contexts = {"random", "retrieve", "ensemble"};
  std::int64_t regime_b_s = 4096;
  std::vector<double> regime_b_deltas = {0.2, 0.1, 0.05, 0.01};
  std::int64_t regime_b_tasks = 100;
  HingeGrid hinge;
  std::vector<std::string> models;
  std::vector<std::string> heads;
  // The head every learner's disagreement is measured against (the stand-in for the fine-tuned
  // model); trained on all of S. Evaluated whether or not `heads` lists it.
  std::string reference = "svm-hard";
  std::int64_t tasks = 100;
  std::int64_t queries = 256;
  double delta = 0.05;
  int bootstrap = 500;
  std::uint64_t seed = 0;
  // model::EngineOptions::dense: no plan-time weight structure in the transformers. Written to
  // the JSON only when set, so that the config files of earlier runs still match (and resume).
  bool dense = false;

  nlohmann::ordered_json to_json() const;
  // Throws std::invalid_argument (util::ParameterError for a bad field).
  static BoundsConfig from_json(const nlohmann::json& json);
  // Throws util::ParameterError naming the field, or heads::HeadError. Grids must be strictly
  // monotone, without duplicates: d_grid, n_grid and k_grid increasing, eps_grid decreasing (the
  // order of the report's tables); a repeated entry would weigh a point twice in the fits.
  void validate() const;
  // The heads the sweep evaluates: the reference first, then `heads` without it.
  std::vector<std::string> evaluated_heads() const;
};

// "quick" or "full"; throws util::ParameterError ("preset") for any other name.
BoundsConfig preset_config(const std::string& name);

}  // namespace iclbench::bounds
