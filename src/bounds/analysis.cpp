#include "bounds/analysis.hpp"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <numbers>

#include "util/philox.hpp"

namespace iclbench::bounds {
namespace {

// Quantile (over tasks) of each grid N, for tasks resampled with `indices` (empty = as is).
std::vector<double> quantile_curve(const std::vector<std::vector<double>>& per_n, double delta,
                                   const std::vector<std::uint32_t>& indices) {
  std::vector<double> curve;
  std::vector<double> sample;
  for (const std::vector<double>& tasks : per_n) {
    if (indices.empty()) {
      sample = tasks;
    } else {
      sample.resize(indices.size());
      for (std::size_t i = 0; i < indices.size(); ++i) sample[i] = tasks[indices[i]];
    }
    curve.push_back(eval::upper_quantile(sample, delta));
  }
  return curve;
}

std::vector<std::uint32_t> bootstrap_indices(std::uint64_t seed, int replicate, std::size_t tasks) {
  util::DrawSequence draws(seed, static_cast<std::uint32_t>(replicate), 1,
                           util::Stream::kBootstrap);
  std::vector<std::uint32_t> indices(tasks);
  for (auto& index : indices) index = draws.below(static_cast<std::uint32_t>(tasks));
  return indices;
}

// per_n: [N][task]. Replicate r resamples the tasks with the same indices at every N.
MetricStats metric_stats(const std::vector<std::vector<double>>& per_n, const BoundsConfig& config,
                         std::uint64_t seed) {
  MetricStats stats;
  for (int r = 0; r < config.bootstrap; ++r) {
    stats.replicates.push_back(
        quantile_curve(per_n, config.delta, bootstrap_indices(seed, r, per_n.front().size())));
  }
  stats.quantile = quantile_curve(per_n, config.delta, {});
  for (std::size_t j = 0; j < per_n.size(); ++j) {
    double mean = 0;
    for (double value : per_n[j]) mean += value;
    stats.mean.push_back(mean / static_cast<double>(per_n[j].size()));
    std::vector<double> at_j;
    for (const auto& replicate : stats.replicates) at_j.push_back(replicate[j]);
    stats.quantile_ci.push_back(eval::percentile_interval(at_j));
  }
  return stats;
}

bool contains(const eval::Interval& interval, double value) {
  return interval.lo <= value && value <= interval.hi;
}

// The entries of one learner's table: regime A points, then eps.
std::vector<NStarEntry> n_star_entries(const BoundsConfig& config,
                                       const std::vector<PointResult>& points,
                                       const std::vector<std::vector<CurveStats>>& stats,
                                       const std::string& learner, bool disagreement) {
  std::vector<NStarEntry> entries;
  for (std::size_t p = 0; p < points.size(); ++p) {
    const PointResult& point = points[p];
    if (point.key.regime != 'A') continue;
    const MetricStats* metric = nullptr;
    for (std::size_t c = 0; c < point.curves.size(); ++c) {
      if (point.curves[c].learner == learner)
        metric = disagreement ? &stats[p][c].dis : &stats[p][c].err;
    }
    if (!metric) continue;
    for (double eps : config.eps_grid) {
      NStarEntry entry{point.key.d, eps, n_star(point.n, metric->quantile, eps), {NAN, NAN}, {}};
      std::vector<double> reached;
      for (const auto& replicate : metric->replicates) {
        const NStar value = n_star(point.n, replicate, eps);
        entry.replicates.push_back(value.value.value_or(NAN));
        if (value.value) reached.push_back(*value.value);
      }
      entry.ci = eval::percentile_interval(reached);
      // Replicates that never reach eps make the upper end unbounded.
      if (reached.size() < entry.replicates.size() * 39 / 40) entry.ci.hi = INFINITY;
      entries.push_back(std::move(entry));
    }
  }
  return entries;
}

// The fit over entries reached inside the grid, with bootstrap intervals for b and c (replicates
// in which some used entry is not reached are skipped).
PowerFit fit_entries(const std::vector<NStarEntry>& entries, int replicates) {
  std::vector<const NStarEntry*> used;
  for (const auto& entry : entries)
    if (entry.estimate.value && !entry.estimate.below_grid) used.push_back(&entry);
  std::vector<double> d, eps, values;
  for (const auto* entry : used) {
    d.push_back(entry->d);
    eps.push_back(entry->eps);
    values.push_back(*entry->estimate.value);
  }
  PowerFit fit = fit_power_law(d, eps, values);
  if (!fit.valid) return fit;
  std::vector<double> bs, cs;
  for (int r = 0; r < replicates; ++r) {
    std::vector<double> sample;
    bool complete = true;
    for (const auto* entry : used) {
      const double value = entry->replicates[static_cast<std::size_t>(r)];
      if (std::isnan(value)) complete = false;
      sample.push_back(value);
    }
    if (!complete) continue;
    const PowerFit replicate = fit_power_law(d, eps, sample);
    bs.push_back(replicate.b);
    cs.push_back(replicate.c);
  }
  fit.b_ci = eval::percentile_interval(bs);
  fit.c_ci = eval::percentile_interval(cs);
  return fit;
}

RegimeAVerdict regime_a_verdict(const NStarTable& table, const BoundsConfig& config) {
  RegimeAVerdict verdict;
  verdict.holds_one = contains(table.fit.c_ci, 1.0);
  verdict.holds_two = contains(table.fit.c_ci, 2.0);
  verdict.linear_in_d = contains(table.fit.b_ci, 1.0);
  verdict.o_d_over_eps_holds = table.fit.c_ci.lo <= 1.0;
  // The paper's bound, as the explicit realizable PAC sample size, on every grid point reached.
  for (const auto& entry : table.entries) {
    if (!entry.estimate.value) continue;
    const double ratio = *entry.estimate.value / pac_sample_size(entry.eps, config.delta, entry.d);
    verdict.largest_constant =
        std::max(verdict.largest_constant, *entry.estimate.value / (entry.d / entry.eps));
    if (ratio > verdict.worst_pac_ratio) {
      verdict.worst_pac_ratio = ratio;
      verdict.worst_d = entry.d;
      verdict.worst_eps = entry.eps;
    }
  }
  return verdict;
}

NStarTable n_star_table(const BoundsConfig& config, const std::vector<PointResult>& points,
                        const std::vector<std::vector<CurveStats>>& stats,
                        const std::string& learner, bool disagreement) {
  NStarTable table;
  table.entries = n_star_entries(config, points, stats, learner, disagreement);
  table.fit = fit_entries(table.entries, config.bootstrap);
  if (table.fit.valid) table.verdict = regime_a_verdict(table, config);
  return table;
}

}  // namespace

NStar n_star(const std::vector<std::int64_t>& n, const std::vector<double>& quantiles, double eps) {
  for (std::size_t j = 0; j < n.size(); ++j) {
    if (quantiles[j] > eps) continue;
    if (j == 0) return {static_cast<double>(n[0]), true};
    const double q0 = std::max(quantiles[j - 1], 1e-12), q1 = std::max(quantiles[j], 1e-12);
    const double x0 = std::log(static_cast<double>(n[j - 1])),
                 x1 = std::log(static_cast<double>(n[j]));
    const double t = (std::log(eps) - std::log(q0)) / (std::log(q1) - std::log(q0));
    return {std::exp(x0 + std::clamp(t, 0.0, 1.0) * (x1 - x0)), false};
  }
  return {std::nullopt, false};
}

PowerFit fit_power_law(const std::vector<double>& d, const std::vector<double>& eps,
                       const std::vector<double>& n_star_values) {
  PowerFit fit;
  const auto count = static_cast<Eigen::Index>(n_star_values.size());
  fit.observations = static_cast<int>(count);
  std::vector<double> ds(d), es(eps);
  std::sort(ds.begin(), ds.end());
  std::sort(es.begin(), es.end());
  const bool spread = std::unique(ds.begin(), ds.end()) - ds.begin() >= 2 &&
                      std::unique(es.begin(), es.end()) - es.begin() >= 2;
  if (count < 4 || !spread) return fit;
  Eigen::MatrixXd design(count, 3);
  Eigen::VectorXd target(count);
  for (Eigen::Index i = 0; i < count; ++i) {
    design(i, 0) = 1.0;
    design(i, 1) = std::log(d[static_cast<std::size_t>(i)]);
    design(i, 2) = std::log(1.0 / eps[static_cast<std::size_t>(i)]);
    target[i] = std::log(n_star_values[static_cast<std::size_t>(i)]);
  }
  const Eigen::Vector3d theta = design.colPivHouseholderQr().solve(target);
  fit.a = theta[0];
  fit.b = theta[1];
  fit.c = theta[2];
  fit.valid = true;
  return fit;
}

double pac_sample_size(double eps, double delta, double d) {
  return 4.0 / eps * (d * std::log2(12.0 / eps) + std::log2(2.0 / delta));
}
double hoeffding_sample_size(double eps, double delta) {
  return std::log(2.0 / delta) / (2 * eps * eps);
}
double averaging_error(double d, double n) {
  return std::sqrt((d - 1) / (2 * std::numbers::pi * n));
}

Analysis analyse(const BoundsConfig& config, const std::vector<PointResult>& points) {
  Analysis analysis;
  for (const PointResult& point : points) {
    const std::uint64_t seed = point_seed(config.seed, point.key);
    std::vector<CurveStats>& curves = analysis.points.emplace_back();
    for (const Curve& curve : point.curves) {
      curves.push_back(
          {metric_stats(curve.err, config, seed), metric_stats(curve.dis, config, seed)});
    }
  }
  for (const Curve& curve : points.front().curves) {
    LearnerAnalysis learner{
        curve.learner, n_star_table(config, points, analysis.points, curve.learner, false), {}};
    if (curve.learner != config.heads.front()) {
      learner.dis = n_star_table(config, points, analysis.points, curve.learner, true);
    }
    analysis.learners.push_back(std::move(learner));
  }
  for (const LearnerAnalysis& learner : analysis.learners) {
    std::optional<RegimeBFloors> floors;
    for (std::size_t p = 0; p < points.size(); ++p) {
      if (points[p].key.regime != 'B') continue;
      for (std::size_t c = 0; c < points[p].curves.size(); ++c) {
        if (points[p].curves[c].learner != learner.learner) continue;
        const std::vector<double>& q = analysis.points[p][c].err.quantile;
        RegimeBRow row{learner.learner, points[p].key.d, points[p].key.k, q.back(), {}};
        for (double eps : config.eps_grid) row.n_star.push_back(n_star(points[p].n, q, eps));
        if (!floors) floors = RegimeBFloors{learner.learner};
        floors->lowest = std::min(floors->lowest, row.floor);
        floors->highest = std::max(floors->highest, row.floor);
        analysis.regime_b.push_back(std::move(row));
      }
    }
    if (floors) analysis.floors.push_back(*floors);
  }
  return analysis;
}

}  // namespace iclbench::bounds
