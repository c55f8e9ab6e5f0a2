#include "eval/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>

#include "util/errors.hpp"
#include "util/philox.hpp"
#include "util/text.hpp"

namespace iclbench::eval {

double normal_quantile(double p) {
  // Acklam's rational approximation (relative error 1.15e-9), then one Halley step on erfc.
  static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                             1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00};
  static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                             6.680131188771972e+01, -1.328068155288572e+01};
  static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                             -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00};
  static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                             3.754408661907416e+00};
  double x;
  if (p < 0.02425) {
    const double q = std::sqrt(-2 * std::log(p));
    x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  } else if (p <= 1 - 0.02425) {
    const double q = p - 0.5, r = q * q;
    x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
  } else {
    const double q = std::sqrt(-2 * std::log(1 - p));
    x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  const double e = 0.5 * std::erfc(-x / std::sqrt(2.0)) - p;
  const double u = e * std::sqrt(2 * std::numbers::pi) * std::exp(x * x / 2);
  return x - u / (1 + x * u / 2);
}

Interval wilson_interval(std::int64_t successes, std::int64_t trials, double confidence) {
  if (trials <= 0) return {0.0, 1.0};
  const double z = normal_quantile(0.5 + confidence / 2);
  const double n = static_cast<double>(trials);
  const double p = static_cast<double>(successes) / n;
  const double denominator = 1 + z * z / n;
  const double centre = (p + z * z / (2 * n)) / denominator;
  const double half = z * std::sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator;
  return {std::max(0.0, centre - half), std::min(1.0, centre + half)};
}

double upper_quantile(std::vector<double> values, double delta) {
  if (values.empty()) return 0.0;
  const double level = 1.0 - delta;
  auto rank = static_cast<std::size_t>(std::ceil(level * static_cast<double>(values.size()) - 1e-9));
  rank = std::clamp<std::size_t>(rank, 1, values.size());
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(rank - 1), values.end());
  return values[rank - 1];
}

Summary summarize(std::span<const double> per_task, double delta, std::uint64_t seed,
                  int resamples, double confidence) {
  Summary summary;
  const std::size_t count = per_task.size();
  if (count == 0) return summary;
  double total = 0;
  for (double value : per_task) total += value;
  summary.mean = total / static_cast<double>(count);
  summary.quantile = upper_quantile({per_task.begin(), per_task.end()}, delta);

  std::vector<double> means(static_cast<std::size_t>(resamples)), quantiles(means.size());
  std::vector<double> sample(count);
  for (int r = 0; r < resamples; ++r) {
    util::DrawSequence draws(seed, static_cast<std::uint32_t>(r), 0, util::Stream::kBootstrap);
    double sum = 0;
    for (std::size_t i = 0; i < count; ++i) {
      sample[i] = per_task[draws.below(static_cast<std::uint32_t>(count))];
      sum += sample[i];
    }
    means[static_cast<std::size_t>(r)] = sum / static_cast<double>(count);
    quantiles[static_cast<std::size_t>(r)] = upper_quantile(sample, delta);
  }
  summary.mean_ci = percentile_interval(std::move(means), confidence);
  summary.quantile_ci = percentile_interval(std::move(quantiles), confidence);
  return summary;
}

void check_delta(double delta) {
  util::require(delta > 0 && delta < 1, "delta", "must be in (0, 1), got " + util::format_number(delta));
}

void check_resamples(int resamples) {
  util::require(resamples >= kMinResamples && resamples <= kMaxResamples, "bootstrap",
                "must be in [" + std::to_string(kMinResamples) + ", 10^5] resamples, got " +
                    std::to_string(resamples));
}

Interval percentile_interval(std::vector<double> values, double confidence) {
  if (values.empty()) return {NAN, NAN};
  std::sort(values.begin(), values.end());
  const auto at = [&](double level) {
    const double position = level * static_cast<double>(values.size() - 1);
    const auto below = static_cast<std::size_t>(std::floor(position));
    const auto above = std::min(below + 1, values.size() - 1);
    return values[below] + (position - static_cast<double>(below)) * (values[above] - values[below]);
  };
  const double tail = (1 - confidence) / 2;
  return {at(tail), at(1 - tail)};
}

double error_rate(std::span<const float> scores, std::span<const float> labels) {
  std::int64_t wrong = 0;
  for (std::size_t q = 0; q < scores.size(); ++q) wrong += predicted_label(scores[q]) != labels[q];
  return static_cast<double>(wrong) / static_cast<double>(scores.size());
}

double disagreement_rate(std::span<const float> a, std::span<const float> b) {
  std::int64_t differ = 0;
  for (std::size_t q = 0; q < a.size(); ++q) differ += predicted_label(a[q]) != predicted_label(b[q]);
  return static_cast<double>(differ) / static_cast<double>(a.size());
}

double angle_error(std::span<const double> w, std::span<const float> w_star) {
  double dot = 0, w_norm = 0, star_norm = 0;
  for (std::size_t j = 0; j < w.size(); ++j) {
    dot += w[j] * w_star[j];
    w_norm += w[j] * w[j];
    star_norm += static_cast<double>(w_star[j]) * w_star[j];
  }
  if (w_norm == 0 || star_norm == 0) return 0.5;
  const double cosine = std::clamp(dot / std::sqrt(w_norm * star_norm), -1.0, 1.0);
  return std::acos(cosine) / std::numbers::pi;
}

}  // namespace iclbench::eval
