#pragma once
// `iclbench bounds`: sweeps that measure the sample size an in-context learner needs and hold it
// against the bounds of arXiv 2506.08060.
//
// Regime A (full context, k = N): for each d and each N on a geometric grid, T tasks; per learner
// the error (the exact angle error where it applies, else Monte Carlo) and the disagreement with
// the reference head; n*(d, eps, delta) = the smallest N at which the (1 - delta)-quantile over
// tasks is <= eps, interpolated on the log grid, with a bootstrap interval; a fit
// log n* = a + b log d + c log(1/eps).
// Regime B (fixed context k, N grows; the k examples a random subset of S or the k nearest to the
// query): the same curves per k, their floor, and N*_B where it is reached.
//
// A "point" of the sweep is one (regime, d[, k]) with all N of the grid, evaluated on one task
// set whose seed is a pure function of (seed, point); its result is written atomically to
// DIR/points/, so that a killed run resumes where it stopped and ends with the same bytes.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/metrics.hpp"
#include "util/progress_callback.hpp"

namespace iclbench::bounds {

struct BoundsConfig {
  std::string preset = "custom";
  std::string family = "gaussian";
  std::vector<int> d_grid;
  std::vector<std::int64_t> n_grid;
  std::vector<double> eps_grid;
  std::vector<std::int64_t> k_grid;  // regime B context sizes; empty = regime A only
  std::string regime_b_context = "random";  // random | retrieve
  std::vector<std::string> models;
  std::vector<std::string> heads;  // the first is the reference for disagreement
  std::int64_t tasks = 100;
  std::int64_t queries = 256;
  double delta = 0.05;
  int bootstrap = 500;
  std::uint64_t seed = 0;

  nlohmann::ordered_json to_json() const;
  static BoundsConfig from_json(const nlohmann::json& json);  // throws std::invalid_argument
  void validate() const;
};

BoundsConfig preset_config(const std::string& name);  // "quick" or "full"

struct PointKey {
  char regime;  // 'A' or 'B'
  int d;
  std::int64_t k;  // 0 in regime A
  std::string id() const;  // "A-d8", "B-d8-k16"
};
std::vector<PointKey> sweep_points(const BoundsConfig& config);

// Per learner, per N of the grid, per task: the error and the disagreement with the reference.
struct Curve {
  std::string learner;
  bool transformer = false;
  std::string metric;  // "err_exact" or "err"
  std::vector<std::vector<double>> err;  // [N grid][task]
  std::vector<std::vector<double>> dis;  // [N grid][task]
};
struct PointResult {
  PointKey key;
  std::vector<std::int64_t> n;
  std::vector<Curve> curves;
  nlohmann::ordered_json to_json() const;
  static PointResult from_json(const nlohmann::json& json);
};

PointResult run_point(const BoundsConfig& config, const PointKey& key);
// Peak bytes of the sweep (its largest point) with `threads` TBB threads, for refusing a sweep
// that cannot fit before it starts.
std::uint64_t estimate_memory_bytes(const BoundsConfig& config, int threads);

// n*: the smallest N with quantile <= eps, interpolated linearly in (log N, log q) between the
// last grid point above eps and the first at or below it. nullopt if never reached; the first
// grid N (flagged `below_grid`) if already reached there.
struct NStar {
  std::optional<double> value;
  bool below_grid = false;
};
NStar n_star(const std::vector<std::int64_t>& n, const std::vector<double>& quantiles, double eps);

struct PowerFit {
  double a = 0, b = 0, c = 0;  // log n* = a + b log d + c log(1/eps)
  eval::Interval b_ci, c_ci;
  int observations = 0;
  bool valid = false;
};
// Least squares on (d, eps, n*) triples; needs >= 4 points, >= 2 distinct d and >= 2 distinct eps.
PowerFit fit_power_law(const std::vector<double>& d, const std::vector<double>& eps,
                       const std::vector<double>& n_star);

// Theory printed next to every measurement.
double pac_sample_size(double eps, double delta, double d);  // (4/eps)(d log2(12/eps) + log2(2/delta))
double hoeffding_sample_size(double eps, double delta);      // ln(2/delta) / (2 eps^2)
double averaging_error(double d, double n);                   // sqrt((d - 1) / (2 pi n))

// Runs (or resumes) the sweep in `dir`, then writes points.csv, fits.json, report.md and plots.
// Refuses a dir that holds a run with another config. Returns the report's verdict section.
std::string run_bounds(const BoundsConfig& config, const std::filesystem::path& dir,
                       const util::ProgressCallback& progress, bool make_plots);

}  // namespace iclbench::bounds
