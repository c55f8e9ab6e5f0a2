#pragma once
// The analysis of a bounds sweep: from the points' per-task errors to n*, fits and verdicts.
// Pure: a function of the configuration and the point results only (sweep.hpp), whichever
// process or order produced them.
//
// Per point, curve and metric (error, disagreement with the reference head): per N the mean and
// the (1 - delta)-quantile over tasks, with a percentile bootstrap interval over tasks resampled
// (seeded by the point). Regime A: n*(d, eps, delta) = the smallest N at which the quantile is
// <= eps, interpolated on the log grid, per bootstrap replicate too; a fit
// log n* = a + b log d + c log(1/eps) with bootstrap intervals for b and c; verdicts against
// O(d/eps), O(d/eps^2) and the realizable PAC sample size. Regime B: the floor of each curve (its
// quantile at the largest N) and N*_B, where it first reaches eps.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bounds/config.hpp"
#include "bounds/sweep.hpp"
#include "eval/metrics.hpp"

namespace iclbench::bounds {

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

// Theory printed next to every measurement:
//   the realizable PAC sample size N_A = (4/eps)(d log2(12/eps) + log2(2/delta)),
//   Hoeffding's N_B = ln(2/delta) / (2 eps^2),
//   the averaging estimator's error sqrt((d - 1) / (2 pi n)) on isotropic Gaussian inputs.
double pac_sample_size(double eps, double delta, double d);
double hoeffding_sample_size(double eps, double delta);
double averaging_error(double d, double n);

// One metric of one curve over tasks, per N of the point's grid.
struct MetricStats {
  std::vector<double> mean;
  std::vector<double> quantile;                 // the (1 - delta)-quantile over tasks
  std::vector<eval::Interval> quantile_ci;      // 95% percentile interval of the replicates
  std::vector<std::vector<double>> replicates;  // [bootstrap][N]: quantile curves, tasks resampled
};
struct CurveStats {
  MetricStats err, dis;
};

// One learner's n*(d, eps) over regime A for one metric, its fit and what they say.
struct NStarEntry {
  int d;
  double eps;
  NStar estimate;
  eval::Interval ci;  // upper end infinite when > 1/40 of the replicates never reach eps
  std::vector<double> replicates;  // per bootstrap replicate; NAN where not reached
};
struct RegimeAVerdict {
  bool holds_one = false, holds_two = false;  // c's interval holds 1 (d/eps), 2 (d/eps^2)
  bool linear_in_d = false;                   // b's interval holds 1
  bool o_d_over_eps_holds = false;            // c's interval reaches down to 1
  // Over the entries reached: the largest n*/N_A (and where: d = 0 if none was reached) and the
  // largest constant C = n*/(d/eps).
  double worst_pac_ratio = 0;
  int worst_d = 0;
  double worst_eps = 0;
  double largest_constant = 0;
};
struct NStarTable {
  std::vector<NStarEntry> entries;  // regime A points in sweep order, then eps in grid order
  PowerFit fit;                     // over the entries reached inside the grid
  RegimeAVerdict verdict;           // meaningful when fit.valid
};

struct LearnerAnalysis {
  std::string learner;
  NStarTable err;
  std::optional<NStarTable> dis;  // not for the reference head itself
};

// Regime B: one curve's floor and N*_B per eps of the grid.
struct RegimeBRow {
  std::string learner;
  int d;
  std::int64_t k;
  double floor;               // the quantile at the largest N
  std::vector<NStar> n_star;  // per eps of the grid
};
struct RegimeBFloors {
  std::string learner;
  double lowest = 1, highest = 0;  // over d and k
};

struct Analysis {
  std::vector<std::vector<CurveStats>> points;  // [point][curve], as the sweep's points
  std::vector<LearnerAnalysis> learners;        // in the order of the first point's curves
  std::vector<RegimeBRow> regime_b;             // per learner, then point, in sweep order
  std::vector<RegimeBFloors> floors;            // learners that run in regime B
};
Analysis analyse(const BoundsConfig& config, const std::vector<PointResult>& points);

}  // namespace iclbench::bounds
