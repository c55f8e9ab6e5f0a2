#pragma once
// Error, disagreement and their uncertainty.
//
// Per task, from its M query scores: the error against the labels and the disagreement between
// two learners (a non-finite score is always wrong), a proportion's Wilson score interval, and
// for linear learners on rotation-invariant inputs the exact error. Across T tasks: the mean and
// the (1 - delta)-quantile, each with a percentile bootstrap interval over tasks (resampling
// tasks with replacement; draws from Philox, so seeded and thread-independent).

#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

namespace iclbench::eval {

struct Interval {
  double lo = 0, hi = 0;
};

// Standard normal quantile (inverse CDF), |error| < 1e-12 on (1e-300, 1 - 1e-16).
double normal_quantile(double p);

// Wilson score interval for a binomial proportion at the given two-sided confidence.
Interval wilson_interval(std::int64_t successes, std::int64_t trials, double confidence = 0.95);

// The (1 - delta)-quantile of `values` as the order statistic of rank ceil((1 - delta) T): the
// smallest value that at least a (1 - delta) fraction of tasks do not exceed.
double upper_quantile(std::vector<double> values, double delta);

// The central `confidence` interval of a bootstrap distribution (linear interpolation between
// order statistics). Empty input gives NaNs.
Interval percentile_interval(std::vector<double> values, double confidence = 0.95);

struct Summary {
  double mean = 0;
  Interval mean_ci;
  double quantile = 0;  // (1 - delta)-quantile over tasks
  Interval quantile_ci;
};
Summary summarize(std::span<const double> per_task, double delta, std::uint64_t seed,
                  int resamples = 1000, double confidence = 0.95);

// The domains of summarize()'s parameters, checked here for every configuration that passes them
// on (eval's and the bounds sweep's); both throw util::ParameterError.
//   delta ("delta") in (0, 1): the (1 - delta)-quantile must be a quantile.
//   resamples ("bootstrap") in [50, 10^5]: the 95% percentile interval reads the resamples at
//   ranks 0.025 (B - 1) and 0.975 (B - 1); from B = 41 on, at least one resample lies beyond each
//   end (below that the interval is little more than the resamples' range), and 50 is the round
//   number above. At 10^5, 2500 resamples lie beyond each end, a relative error of about 2% on
//   the tail probability, far below what a report shows, while the cost keeps growing (each
//   summary resamples T tasks B times; a bounds point keeps B quantile curves).
inline constexpr int kMinResamples = 50;
inline constexpr int kMaxResamples = 100'000;
void check_delta(double delta);
void check_resamples(int resamples);

// The label a score predicts: sign(score), +1 for a score of 0. A non-finite score predicts
// nothing (0), which matches no label (+-1): it counts as an error, and as a disagreement with
// every finite score.
inline float predicted_label(float score) {
  return std::isfinite(score) ? (score >= 0.0f ? 1.0f : -1.0f) : 0.0f;
}
// One task's error: the fraction of its queries whose predicted label is not `labels`' (+-1).
// scores, labels: [M]
double error_rate(std::span<const float> scores, std::span<const float> labels);
// One task's disagreement: the fraction of queries on which two learners predict different
// labels. a, b: [M]
double disagreement_rate(std::span<const float> a, std::span<const float> b);

// angle(w, w*) / pi: the exact error of sign(w.x) against sign(w*.x) when x is rotation
// invariant (isotropic Gaussian, uniform on a sphere). A zero w errs half the time.
double angle_error(std::span<const double> w, std::span<const float> w_star);

}  // namespace iclbench::eval
