// iclbench bounds: validate the sample-size bounds with a resumable sweep.

#include <chrono>
#include <cstdio>
#include <memory>

#include "bounds/bounds.hpp"
#include "bounds/distribute.hpp"
#include "cli/commands.hpp"
#include "io/input_file.hpp"
#include "io/strict_json.hpp"
#include "runtime/memory.hpp"
#include "runtime/progress.hpp"
#include "runtime/threading.hpp"
#include "util/text.hpp"

namespace iclbench::cli {
namespace {

struct BoundsOptions {
  std::string preset;
  std::string config_file;
  std::vector<int> d_grid;
  std::vector<std::int64_t> n_grid, k_grid;
  std::vector<double> eps_grid;
  std::vector<std::string> models;
  std::string heads;
  std::string reference;
  std::vector<std::string> contexts;
  std::vector<double> b_deltas;
  std::int64_t s_size = 0, b_tasks = 0;
  std::int64_t tasks = 0, queries = 0;
  double delta = 0;
  int bootstrap = 0;
  std::string family;
  std::string out;
  bool no_plots = false;
  bool dense = false;
  bool plan = false;
  bool no_hinge = false;
};

bounds::BoundsConfig read_config_file(const std::string& path) {
  const std::string text = io::read_text_file(path);  // a directory or FIFO: one line naming it
  nlohmann::json json;
  try {
    json = io::parse_json_strict(text);  // a repeated key is refused, not "last one wins"
  } catch (const std::invalid_argument& error) {
    throw UsageError(path + ": " + error.what());
  }
  try {
    return bounds::BoundsConfig::from_json(json);
  } catch (const std::invalid_argument& error) {
    throw UsageError(path + ": " + error.what());
  }
}

// The preset or --config file, then every flag given on top of it, validated.
bounds::BoundsConfig sweep_config(const BoundsOptions& o, const CLI::App& app, const GlobalOptions& globals) {
  if (!o.config_file.empty() && !o.preset.empty()) throw UsageError("give --preset or --config, not both");
  bounds::BoundsConfig config = o.config_file.empty()
                                    ? bounds::preset_config(o.preset.empty() ? "quick" : o.preset)
                                    : read_config_file(o.config_file);
  auto given = [&app](const char* flag) { return app.get_option(flag)->count() > 0; };
  if (given("--d-grid")) config.d_grid = o.d_grid;
  if (given("--n-grid")) config.n_grid = o.n_grid;
  if (given("--eps-grid")) config.eps_grid = o.eps_grid;
  if (given("--k-grid")) config.k_grid = o.k_grid;
  if (given("--context")) config.regime_b_contexts = o.contexts;
  if (given("--s-size")) config.regime_b_s = o.s_size;
  if (given("--b-deltas")) config.regime_b_deltas = o.b_deltas;
  if (given("--b-tasks")) config.regime_b_tasks = o.b_tasks;
  if (given("--models")) config.models = o.models;
  if (given("--heads")) {
    // Split only, not heads::parse_heads: config.heads holds the texts as given, like a config
    // file's "heads" list, and config.json records them so. Canonical names there would change
    // the bytes of config.json for spellings such as "svm:C=1.0", and check_run_directory, which
    // compares those bytes, would then refuse to resume run directories written before.
    // BoundsConfig::validate parses the joined list with parse_heads, so the rules are eval's:
    // the last piece is kept even when empty, so that a trailing ',' is refused as there (an
    // empty --heads stays an empty list).
    config.heads.clear();
    std::string rest = o.heads;
    for (std::size_t comma; (comma = rest.find(',')) != std::string::npos; rest.erase(0, comma + 1)) {
      config.heads.push_back(rest.substr(0, comma));
    }
    if (!o.heads.empty()) config.heads.push_back(rest);
  }
  if (given("--reference")) config.reference = o.reference;
  if (given("--tasks")) config.tasks = o.tasks;
  if (given("--queries")) config.queries = o.queries;
  if (given("--delta")) config.delta = o.delta;
  if (given("--bootstrap")) config.bootstrap = o.bootstrap;
  if (given("--family")) config.family = o.family;
  if (given("--dense")) config.dense = true;
  if (o.no_hinge) config.hinge = {};
  // --seed sets the sweep's seed; a --config file keeps its own unless --seed is given.
  if (o.config_file.empty() || app.get_parent()->get_option("--seed")->count() > 0) {
    config.seed = globals.seed;
  }
  if (given("--d-grid") || given("--n-grid") || given("--eps-grid") || given("--k-grid") ||
      given("--models") || given("--heads") || given("--reference") || given("--tasks") || given("--queries") ||
      given("--context") || given("--s-size") || given("--b-deltas") || given("--b-tasks") || o.no_hinge) {
    if (config.preset != "custom") config.preset += "+overrides";
  }
  try {
    config.validate();
  } catch (const util::ParameterError& error) {
    // A flag's value under its flag, the rest (from a --config file or the preset) as named there.
    throw UsageError(under_flag(error, app).value_or((o.config_file.empty() ? "" : o.config_file + ": ") +
                                                      error.what()));
  }
  return config;
}

}  // namespace

Command add_bounds_command(CLI::App& parent, const GlobalOptions& globals) {
  CLI::App* app = parent.add_subcommand(
      "bounds", "sweeps over d, N, eps that measure the sample size n* an in-context learner needs and "
                "hold it against O(d/eps) and O((1/eps^2) log(1/delta)); resumable");
  auto o = std::make_shared<BoundsOptions>();
  app->add_option("--preset", o->preset, "quick (<= 90 s on 2 vCPUs) or full; the estimated wall time is printed before the sweep; flags below override it");
  app->add_option("--config", o->config_file, "JSON file with the sweep (as DIR/config.json of a run)")
      ->type_name(kPathType);
  app->add_option("--d-grid", o->d_grid, "input dimensions")->delimiter(',');
  app->add_option("--n-grid", o->n_grid, "dataset sizes N (increasing)")->delimiter(',');
  app->add_option("--eps-grid", o->eps_grid, "target errors eps")->delimiter(',');
  app->add_option("--k-grid", o->k_grid, "regime B context sizes k (none: regime A only)")->delimiter(',');
  app->add_option("--context", o->contexts, "regime B context policies, comma-separated: random, retrieve, ensemble")
      ->delimiter(',');
  app->add_option("--s-size", o->s_size, "regime B: examples in S (every k <= it)");
  app->add_option("--b-deltas", o->b_deltas, "regime B: delta levels of k* (decreasing)")->delimiter(',');
  app->add_option("--b-tasks", o->b_tasks, "regime B: tasks per d");
  app->add_option("--models", o->models, "transformers (recipes or files)")->delimiter(';');
  app->add_option("--heads", o->heads, "heads, comma-separated");
  app->add_option("--reference", o->reference,
                  "the head disagreement is measured against (default svm-hard, the ERM learner)");
  app->add_option("--tasks", o->tasks, "tasks per point");
  app->add_option("--queries", o->queries, "queries per task");
  app->add_option("--delta", o->delta, "quantile level: (1 - delta)-quantile over tasks");
  app->add_option("--bootstrap", o->bootstrap, "bootstrap replicates");
  app->add_option("--family", o->family, "task family");
  app->add_option("--out", o->out, "output directory (created; a rerun resumes it)")
      ->required()
      ->type_name(kPathType);
  app->add_flag("--no-plots", o->no_plots, "skip the PNG plots");
  app->add_flag("--plan", o->plan,
                "print each point's estimated seconds on one thread as JSON (the weights MPI ranks "
                "are balanced by) and exit; nothing is written");
  app->add_flag("--no-hinge", o->no_hinge, "leave out the preset's gd-hinge grid (its \"hinge\" block)");
  app->add_flag("--dense", o->dense,
                "no plan-time weight structure in the transformers (every projection a dense GEMM)");

  auto run = [o, &globals, app] {
    // Under mpirun: every rank gets here (same argv); the workers compute what rank 0 sends them
    // and end as rank 0 ends. Rank 0 alone reads the flags' files and claims --out.
    runtime::Cluster& cluster = *globals.cluster;
    cluster.enlist();
    if (!cluster.coordinator()) {
      bounds::serve_points(cluster);
      return;
    }
    const bounds::BoundsConfig config = sweep_config(*o, *app, globals);
    // A model file's limits and duplicate learners, before --plan and sizing: a plan is refused
    // as its run would be (`--models "X;X" --plan` exited 0).
    bounds::check_learners(config);
    if (o->plan) {
      bounds::check_run_directory(config, o->out);
      nlohmann::ordered_json plan = nlohmann::ordered_json::object();
      for (const bounds::PointKey& key : bounds::sweep_points(config)) {
        plan[key.id()] = bounds::estimate_point_seconds(config, key, 1);
      }
      std::fprintf(output(), "%s\n", plan.dump(1).c_str());
      return;
    }
    // Every refusal comes before the memory line is printed, and none leaves a directory behind.
    bounds::check_run_directory(config, o->out);
    runtime::check_memory(bounds::estimate_memory_bytes(config, runtime::active_threads()), "bounds",
                          "lower the tasks, queries, the largest n or --threads", globals.memory_budget());
    const auto directory_lock = bounds::claim_directory(config, o->out);
    const auto points = bounds::sweep_points(config);
    if (!globals.quiet) {
      const double sweep = bounds::estimate_seconds(config, runtime::active_threads());
      const double report = bounds::estimate_report_seconds(config, !o->no_plots);
      std::fprintf(stderr, "bounds: %zu points, estimated wall time %.0f s on %d threads: the sweep %.0f s, then "
                   "analysis%s %.0f s (points already saved under --out are reused)\n",
                   points.size(), sweep + report, runtime::active_threads(), sweep, o->no_plots ? "" : " and plots",
                   report);
      if (cluster.size() > 1) {
        std::fprintf(stderr, "bounds: spread over %d MPI ranks (%d threads on rank 0)\n", cluster.size(),
                     runtime::active_threads());
      }
    }
    runtime::Progress progress("bounds", "points", static_cast<std::int64_t>(points.size()), !globals.quiet);
    const auto start = std::chrono::steady_clock::now();
    const std::string verdicts = bounds::run_bounds(config, o->out, progress.callback(), !o->no_plots,
                                                     bounds::cluster_runner(cluster));
    progress.finish();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(output(), "%s\nwrote %s/{points.csv,fits.json,report.md%s} in %.1f s\n", verdicts.c_str(), util::escape_control(o->out).c_str(),
                o->no_plots ? "" : ",*.png", seconds);
    // The verdicts are read from the finished run, so they can only follow it.
    flush_output("; the run in " + util::escape_control(o->out) + " was written");
  };
  return {app, run};
}

}  // namespace iclbench::cli
