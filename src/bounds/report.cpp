#include "bounds/report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include <unistd.h>

#include "heads/heads.hpp"
#include "io/atomic_file.hpp"
#include "io/process.hpp"
#include "util/text.hpp"

namespace iclbench::bounds {
namespace {

namespace fs = std::filesystem;

// Reports show three significant digits.
std::string g3(double value) { return util::format_number(value, 3); }

nlohmann::json finite_or_null(double value) {
  return std::isfinite(value) ? nlohmann::json(value) : nlohmann::json(nullptr);
}

nlohmann::ordered_json estimate_json(double estimate, const eval::Interval& ci) {
  return {{"estimate", finite_or_null(estimate)}, {"lo", finite_or_null(ci.lo)}, {"hi", finite_or_null(ci.hi)}};
}

// One (learner, metric) of regime A: its fit, verdicts and n* table. docs/DESIGN.md documents
// every field.
nlohmann::ordered_json table_json(const NStarTable& table, const BoundsConfig& config) {
  nlohmann::ordered_json n_stars = nlohmann::ordered_json::array();
  for (const auto& e : table.entries) {
    n_stars.push_back(
        {{"d", e.d},
         {"eps", e.eps},
         {"n_star", e.estimate.value ? nlohmann::json(*e.estimate.value) : nlohmann::json(nullptr)},
         {"below_grid", e.estimate.below_grid},
         {"undetermined", e.undetermined},
         {"ci", {finite_or_null(e.ci.lo), finite_or_null(e.ci.hi)}},
         {"pac_n", pac_sample_size(e.eps, config.delta, e.d)},
         {"hoeffding_n", hoeffding_sample_size(e.eps, config.delta)}});
  }
  const PowerFit& fit = table.fit;
  const RegimeAVerdict& v = table.verdict;
  nlohmann::ordered_json json = {{"fit_valid", fit.valid}, {"observations", fit.observations}};
  if (fit.valid) {
    json["intercept"] = fit.a;
    json["eps_slope"] = estimate_json(fit.c, fit.c_ci);
    json["d_slope"] = estimate_json(fit.b, fit.b_ci);
    json["theory_eps_slope"] = v.theory.source.empty() ? nlohmann::json(nullptr) : finite_or_null(v.theory.eps_slope);
    json["theory_d_slope"] = v.theory.source.empty() ? nlohmann::json(nullptr) : finite_or_null(v.theory.d_slope);
    json["theory_source"] = v.theory.source.empty() ? nlohmann::json(nullptr) : nlohmann::json(v.theory.source);
    json["theory_in_ci"] = v.theory.source.empty() ? nlohmann::json(nullptr) : nlohmann::json(v.theory_in_ci);
    json["trend"] = estimate_json(v.trend, v.trend_ci);
    json["c_const"] = v.c_const;
    json["upper_bound_holds"] = v.upper_bound_holds;
    json["rate"] = v.rate;
    json["linear_in_d"] = v.linear_in_d;
    json["not_reached"] = v.not_reached;
    json["undetermined"] = v.undetermined;
    json["pac"] = {{"max_ratio", v.worst_pac_ratio},
                   {"at_d", v.worst_d > 0 ? nlohmann::json(v.worst_d) : nlohmann::json(nullptr)},
                   {"at_eps", v.worst_d > 0 ? nlohmann::json(v.worst_eps) : nlohmann::json(nullptr)}};
  }
  json["n_star"] = n_stars;
  return json;
}

// The verdicts compare an interval's ends with 0 (a trend, a slope difference), 1 and 2 (the
// rates, an n* ratio): its ends are printed on the side of those marks they are on.
std::string interval_text(double estimate, const eval::Interval& ci) {
  auto bound = [](double value) {
    return std::isfinite(value) ? util::format_number_beside(value, 3, {0.0, 1.0, 2.0}) : std::string("?");
  };
  return g3(estimate) + " [" + bound(ci.lo) + ", " + bound(ci.hi) + "]";
}

// One learner's regime A verdict for one metric (`what`), as a list item: the fit and rate beside
// the learner's theory; the upper bound; and, on a line of its own, the PAC comparison.
std::string verdict_a(const std::string& learner, const std::string& what, const NStarTable& table,
                      const BoundsConfig& config, std::int64_t largest_n = 0) {
  std::ostringstream text;
  const PowerFit& fit = table.fit;
  text << "- **" << learner << "** (" << what << "): ";
  std::size_t undetermined = 0;
  for (const NStarEntry& e : table.entries) undetermined += e.undetermined;
  if (!fit.valid) {
    text << "too few n* inside the grid to fit (" << fit.observations << " reached";
    if (undetermined > 0) {
      text << ", " << undetermined
           << " undetermined by unconverged tasks); more steps (hinge.steps_per_log2_n) would settle those, a "
              "wider N or eps grid the rest.\n";
    } else {
      text << "); widen the N grid or the eps grid.\n";
    }
    return text.str();
  }
  const RegimeAVerdict& v = table.verdict;
  text << "ε-slope " << interval_text(fit.c, fit.c_ci);
  if (!v.theory.source.empty()) {
    text << " (theory " << g3(v.theory.eps_slope) << ": " << v.theory.source << "; "
         << (v.theory_in_ci ? "inside" : "outside") << " the interval)";
  }
  text << ", d-slope " << interval_text(fit.b, fit.b_ci) << ", " << fit.observations << " n*";
  const auto beyond = static_cast<std::size_t>(v.not_reached);
  if (beyond + undetermined > 0) {
    text << " (";
    if (beyond > 0) text << beyond << " not reached by N = " << (largest_n > 0 ? largest_n : config.n_grid.back());
    if (beyond > 0 && undetermined > 0) text << ", ";
    if (undetermined > 0) text << undetermined << " undetermined: unconverged tasks could move them";
    text << "; left out)";
  }
  text << ". Rate: `" << v.rate << "`";
  if (v.rate == "unresolved") text << " (the interval holds both 1 and 2)";
  if (v.rate == "neither") text << " (the interval holds neither 1 nor 2)";
  text << ". Upper bound: ";
  if (v.upper_bound_holds) {
    text << "O(d/ε) holds on this grid with constant C = max n*·ε/d = " << g3(v.c_const)
         << " (trend of n*·tan(πε)/d " << interval_text(v.trend, v.trend_ci) << ").";
  } else {
    text << "n*·ε/d grows as ε shrinks (trend " << (v.trend > 0 ? "+" : "")
         << interval_text(v.trend, v.trend_ci) << "): no constant covers this grid (max n*·ε/d = "
         << g3(v.c_const) << ").";
  }
  text << "\n  - PAC: ";
  if (v.worst_d == 0) {
    text << "no n* reached.\n";
  } else if (v.worst_pac_ratio <= 1) {
    text << "every n* reached is within the realizable PAC sample size N_A (largest n*/N_A = "
         << g3(v.worst_pac_ratio) << " at d=" << v.worst_d << ", ε=" << g3(v.worst_eps) << ").\n";
  } else {
    text << "n* exceeds N_A at d=" << v.worst_d << ", ε=" << g3(v.worst_eps)
         << " (n*/N_A = " << g3(v.worst_pac_ratio) << ").\n";
  }
  return text.str();
}

// Regime B: whether Hoeffding's N_B itself, not only its rate, bounds the measured k*: the k*
// inside the k grid against it, and the k* beyond the grid that are certain to exceed it.
std::string hoeffding_n_b_text(const KStarTable& table, std::int64_t largest_k) {
  const int beyond = table.hoeffding_exceeded_beyond_grid;
  if (table.hoeffding_compared == 0 && beyond == 0) return "";
  std::ostringstream text;
  text << " Against Hoeffding's N_B = ln(2/δ)/(2ε²) itself: ";
  if (table.hoeffding_compared > 0) {
    if (table.hoeffding_exceeded == 0) {
      text << "all " << table.hoeffding_compared << " k* inside the k grid are within it";
    } else {
      text << table.hoeffding_exceeded << " of the " << table.hoeffding_compared << " k* inside the k grid exceed it";
    }
    text << " (largest k*/N_B " << g3(table.hoeffding_max_ratio) << ")";
    if (beyond > 0) text << ", and ";
  }
  if (beyond > 0) {
    text << beyond << " k* not reached by k = " << largest_k << " exceed it for certain (their N_B is below "
         << largest_k << ")";
  }
  if (table.hoeffding_exceeded + beyond > 0)
    text << (table.fit.valid ? ": the rate allows a constant; N_B's own constant does not hold here"
                             : ": N_B's own constant does not hold here");
  text << ".";
  return text.str();
}

// Regime B: one learner and policy's k* fit, as a list item.
std::string verdict_k_star(const KStarTable& table, std::int64_t largest_k) {
  std::ostringstream text;
  text << "- **" << table.learner << "**, context `" << table.context << ":k`: ";
  const KStarFit& fit = table.fit;
  if (!fit.valid) {
    std::size_t below = 0;
    for (const KStarEntry& e : table.entries) below += e.estimate.below_grid;
    text << "no fit: " << fit.why_not << " inside the k grid (" << fit.observations << " inside, " << below
         << " already reached at the smallest k, " << table.not_reached
         << " not reached by k = S)";
    // Not a shortfall of the grid: for a learner whose score is linear in its context's y_i x_i
    // (averaging, gd-ls:L=1), the mean of the windows' scores is the score on all of S, so the
    // disagreement does not move with k.
    if (table.context == "ensemble" && fit.observations == 0)
      text << ". For a learner linear in its context (averaging, gd-ls:L=1) that is by construction: the mean of "
              "the windows' scores is its score on all of S, whatever k is";
    text << "." << hoeffding_n_b_text(table, largest_k) << "\n";
    return text.str();
  }
  text << "b (ε) " << interval_text(fit.b, fit.b_ci) << ", c (log log(2/δ)) " << interval_text(fit.c, fit.c_ci)
       << ", e (d) " << interval_text(fit.e, fit.e_ci) << "; " << fit.observations << " k*";
  if (table.not_reached > 0) text << " (" << table.not_reached << " not reached by k = S, left out)";
  text << ". Hoeffding's (2, 1, 0): b " << (table.hoeffding_b ? "holds 2" : "excludes 2") << ", c "
       << (table.hoeffding_c ? "holds 1" : "excludes 1") << ", e " << (table.hoeffding_e ? "holds 0" : "excludes 0")
       << ". d_independent: "
       << (table.d_independent ? (*table.d_independent ? "true (e's interval holds 0 and excludes 1)"
                                                        : "false (e's interval excludes 0: k* grows with d)")
                               : "null (e's interval holds both 0 and 1, or has no bounds)")
       << "." << hoeffding_n_b_text(table, largest_k) << "\n";
  return text.str();
}

nlohmann::ordered_json k_star_json(const KStarTable& table, const BoundsConfig& config) {
  nlohmann::ordered_json entries = nlohmann::ordered_json::array();
  for (const KStarEntry& e : table.entries) {
    entries.push_back(
        {{"d", e.d},
         {"eps", e.eps},
         {"delta", e.delta},
         {"k_star", e.estimate.value ? nlohmann::json(*e.estimate.value) : nlohmann::json(nullptr)},
         {"below_grid", e.estimate.below_grid},
         {"ci", {finite_or_null(e.ci.lo), finite_or_null(e.ci.hi)}},
         {"hoeffding_n", hoeffding_sample_size(e.eps, e.delta)}});
  }
  const KStarFit& fit = table.fit;
  nlohmann::ordered_json json = {{"learner", table.learner},
                                 {"context", table.context},
                                 {"s", config.regime_b_s},
                                 {"fit_valid", fit.valid},
                                 {"observations", fit.observations},
                                 {"not_reached", table.not_reached}};
  if (fit.valid) {
    json["intercept"] = fit.a;
    json["eps_slope"] = estimate_json(fit.b, fit.b_ci);
    json["log_delta_slope"] = estimate_json(fit.c, fit.c_ci);
    json["d_slope"] = estimate_json(fit.e, fit.e_ci);
    json["hoeffding"] = {{"eps_slope", 2}, {"log_delta_slope", 1}, {"d_slope", 0},
                         {"eps_slope_in_ci", table.hoeffding_b}, {"log_delta_slope_in_ci", table.hoeffding_c},
                         {"d_slope_in_ci", table.hoeffding_e}};
  }
  json["d_independent"] = table.d_independent ? nlohmann::json(*table.d_independent) : nlohmann::json(nullptr);
  json["hoeffding_n_b"] = {{"compared", table.hoeffding_compared},
                           {"exceeded", table.hoeffding_exceeded},
                           {"max_ratio", finite_or_null(table.hoeffding_max_ratio)},
                           {"exceeded_beyond_grid", table.hoeffding_exceeded_beyond_grid}};
  json["k_star"] = entries;
  return json;
}

// Regime A: one learner's n*(d, eps) table for the error.
std::string n_star_markdown(const std::string& learner, const NStarTable& table,
                            const BoundsConfig& config) {
  std::ostringstream tables;
  tables << "\n**" << learner
         << "**: n*(d, ε) [95% CI] for the error; N_A = realizable PAC bound\n\n| d |";
  for (double eps : config.eps_grid) tables << " ε=" << g3(eps) << " |";
  tables << "\n|---|";
  for (std::size_t i = 0; i < config.eps_grid.size(); ++i) tables << "---|";
  for (int d : config.d_grid) {
    tables << "\n| " << d << " |";
    for (const auto& e : table.entries) {
      if (e.d != d) continue;
      if (!e.estimate.value) {
        tables << " > " << config.n_grid.back() << " |";
      } else {
        tables << (e.estimate.below_grid ? " ≤ " : " ") << g3(*e.estimate.value) << " ["
               << g3(e.ci.lo) << ", " << (std::isfinite(e.ci.hi) ? g3(e.ci.hi) : "∞") << "] (N_A "
               << g3(pac_sample_size(e.eps, config.delta, d)) << ") |";
      }
    }
  }
  tables << "\n";
  return tables.str();
}

std::string regime_b_markdown(const Analysis& analysis, const BoundsConfig& config) {
  if (config.k_grid.empty()) return "";
  std::ostringstream text;
  text << "\n## Regime B: k*(ε, δ, d)\n\nS = " << config.regime_b_s << " examples per task, "
       << config.regime_b_tasks << " tasks per d; k from " << config.k_grid.front() << " to "
       << config.k_grid.back() << ". k* [95% CI] per δ (rows) and ε (columns); Hoeffding's N_B in "
       << "parentheses.\n";
  for (const KStarTable& table : analysis.regime_b) {
    text << "\n**" << table.learner << "**, `" << table.context << ":k`\n\n| d | δ |";
    for (double eps : config.eps_grid) text << " ε=" << g3(eps) << " |";
    text << "\n|---|---|";
    for (std::size_t i = 0; i < config.eps_grid.size(); ++i) text << "---|";
    for (std::size_t i = 0; i < table.entries.size(); ++i) {
      const KStarEntry& e = table.entries[i];
      if (i % config.eps_grid.size() == 0) text << "\n| " << e.d << " | " << g3(e.delta) << " |";
      if (!e.estimate.value) {
        text << " > " << config.k_grid.back() << " (" << g3(hoeffding_sample_size(e.eps, e.delta)) << ") |";
      } else {
        text << (e.estimate.below_grid ? " ≤ " : " ") << g3(*e.estimate.value) << " [" << g3(e.ci.lo) << ", "
             << (std::isfinite(e.ci.hi) ? g3(e.ci.hi) : "∞") << "] (" << g3(hoeffding_sample_size(e.eps, e.delta))
             << ") |";
      }
    }
    text << "\n";
  }
  return text.str();
}

std::string hinge_markdown(const HingeAnalysis& hinge, const BoundsConfig& config) {
  std::ostringstream text;
  text << "\n## gd-hinge on its own grid\n\n`" << hinge.learner << "`: at context size N the construction `"
       << config.hinge.model_at(config.hinge.n_grid.back()) << "` (N = " << config.hinge.n_grid.back()
       << "), i.e. η = " << g3(config.hinge.eta_per_n) << "·N and L = " << config.hinge.steps_per_log2_n
       << "·⌈log2 N⌉; " << config.hinge.tasks << " tasks per point, d ∈ {";
  for (std::size_t i = 0; i < config.hinge.d_grid.size(); ++i) text << (i ? ", " : "") << config.hinge.d_grid[i];
  text << "}, N from " << config.hinge.n_grid.front() << " to " << config.hinge.n_grid.back()
       << ". Convergence per point: the fraction of tasks whose N context examples are all at margin ≥ 1 "
          "under the transformer's own w, the smallest fraction of examples at margin ≥ 1, and the "
          "largest relative size |Δw|/|w| of the next GD step; a point is usable when its unconverged "
          "tasks cannot move the "
       << g3(1 - config.delta)
       << "-quantile (the same with their errors set to 0 and 1). An n* is kept where those two "
          "bracketing curves give the same n* (no unconverged task can move it), and is otherwise "
          "undetermined and left out.\n\n"
       << "| d | N | tasks converged | min fraction at margin ≥ 1 | max next-step |Δw|/|w| | usable |\n"
       << "|---|---|---|---|---|---|\n";
  for (const HingeColumn& c : hinge.columns) {
    text << "| " << c.d << " | " << c.n << " | " << g3(c.converged_tasks) << " | " << g3(c.min_margin_fraction)
         << " | " << g3(c.max_step_change) << " | " << (c.usable ? "yes" : "**no**") << " |\n";
  }
  text << "\nn*(gd-hinge)/n*(" << hinge.reference << ") on the same tasks [95% paired bootstrap CI]:\n\n| d |";
  for (double eps : config.hinge.eps_grid) text << " ε=" << g3(eps) << " |";
  text << "\n|---|";
  for (std::size_t i = 0; i < config.hinge.eps_grid.size(); ++i) text << "---|";
  for (std::size_t i = 0; i < hinge.agreement.size(); ++i) {
    const HingeAgreement& a = hinge.agreement[i];
    if (i % config.hinge.eps_grid.size() == 0) text << "\n| " << a.d << " |";
    const bool undetermined = hinge.hinge.entries[i].undetermined;
    text << " " << (std::isfinite(a.ratio) ? interval_text(a.ratio, a.ci) : std::string(undetermined ? "— (undetermined)" : "—")) << " |";
  }
  text << "\n";
  return text.str();
}

}  // namespace

std::string points_csv(const BoundsConfig& config, const std::vector<PointResult>& points,
                       const Analysis& analysis) {
  std::ostringstream csv;
  csv.precision(8);
  csv << "regime,learner,context,kind,metric,d,k,n,mean,quantile,quantile_lo,quantile_hi,theory_averaging,"
         "theory_averaging_quantile,pac_n_at_mean";
  // With a regime B, one more column per delta of regime_b_deltas (named as config.json spells
  // the delta): the disagreement's (1 - delta)-quantile over tasks that k*(eps, delta) is read
  // from, on regime B's dis rows; empty on every other row. Without one, the columns of a
  // regime-A-only run are unchanged.
  const std::vector<double> b_deltas = config.k_grid.empty() ? std::vector<double>{} : config.regime_b_deltas;
  for (double delta : b_deltas) csv << ",quantile_delta_" << nlohmann::json(delta).dump();
  csv << '\n';
  for (std::size_t p = 0; p < points.size(); ++p) {
    const PointResult& point = points[p];
    const bool regime_b = point.key.regime == 'B';
    for (std::size_t c = 0; c < point.curves.size(); ++c) {
      const Curve& curve = point.curves[c];
      for (const bool dis : {false, true}) {
        const MetricStats& stats = dis ? analysis.points[p][c].dis : analysis.points[p][c].err;
        for (std::size_t j = 0; j < point.n.size(); ++j) {
          const double mean = stats.mean[j];
          // Regime B runs along k with N = S; the averaging theory is that of k examples.
          const std::int64_t k = regime_b ? point.n[j] : 0, n = regime_b ? config.regime_b_s : point.n[j];
          const double examples = static_cast<double>(regime_b ? k : n);
          csv << point.key.regime << ',' << util::csv_field(curve.learner) << ',' << curve.context << ','
              << (curve.transformer ? "transformer" : "head") << ','
              << (dis ? "dis_" + config.evaluated_heads().front() : curve.metric) << ',' << point.key.d << ','
              << k << ',' << n << ',' << mean << ',' << stats.quantile[j] << ','
              << stats.quantile_ci[j].lo << ',' << stats.quantile_ci[j].hi << ','
              << averaging_error(point.key.d, examples) << ','
              << averaging_error_quantile(point.key.d, examples, config.delta) << ','
              << (mean > 0 && mean < 0.5 ? pac_sample_size(mean, config.delta, point.key.d) : NAN);
          const std::vector<MetricStats>& by_delta = analysis.points[p][c].dis_by_delta;
          for (std::size_t i = 0; i < b_deltas.size(); ++i) {
            csv << ',';
            if (regime_b && dis) csv << by_delta.at(i).quantile[j];
          }
          csv << '\n';
        }
      }
    }
  }
  return csv.str();
}

nlohmann::ordered_json fits_json(const BoundsConfig& config, const Analysis& analysis) {
  nlohmann::ordered_json fits = {{"format", "iclbench-bounds-fits"},
                                 {"format_version", 2},
                                 {"reference", config.evaluated_heads().front()},
                                 {"delta", config.delta},
                                 {"fit", "log n* = intercept + d_slope log d + eps_slope log(1/tan(pi eps))"}};
  nlohmann::ordered_json regime_a = nlohmann::ordered_json::object();
  for (const LearnerAnalysis& learner : analysis.learners) {
    nlohmann::ordered_json entry;
    entry["err"] = table_json(learner.err, config);
    if (learner.dis) entry["dis"] = table_json(*learner.dis, config);
    regime_a[learner.learner] = entry;
  }
  fits["regime_a"] = regime_a;
  nlohmann::ordered_json regime_b = nlohmann::ordered_json::array();
  for (const KStarTable& table : analysis.regime_b) regime_b.push_back(k_star_json(table, config));
  fits["regime_b_fit"] = "log k* = intercept + eps_slope log(1/tan(pi eps)) + log_delta_slope log log(2/delta) + d_slope log d";
  fits["regime_b_quantity"] =
      "k*: the smallest context size k at which the (1-delta)-quantile over tasks of the disagreement between the "
      "in-context learner (k examples chosen from S by the policy) and the reference trained on all of S is <= eps";
  fits["regime_b"] = regime_b;
  if (analysis.hinge) {
    const HingeAnalysis& hinge = *analysis.hinge;
    nlohmann::ordered_json columns = nlohmann::ordered_json::array();
    for (const HingeColumn& c : hinge.columns) {
      columns.push_back({{"d", c.d}, {"n", c.n}, {"converged_tasks", c.converged_tasks},
                         {"min_margin_fraction", c.min_margin_fraction}, {"max_step_change", c.max_step_change},
                         {"usable", c.usable}});
    }
    nlohmann::ordered_json agreement = nlohmann::ordered_json::array();
    for (const HingeAgreement& a : hinge.agreement) {
      agreement.push_back({{"d", a.d}, {"eps", a.eps}, {"ratio", finite_or_null(a.ratio)},
                           {"ci", {finite_or_null(a.ci.lo), finite_or_null(a.ci.hi)}}});
    }
    fits["hinge"] = {{"learner", hinge.learner},
                     {"rule", {{"eta_per_n", config.hinge.eta_per_n},
                               {"steps_per_log2_n", config.hinge.steps_per_log2_n},
                               {"tau", config.hinge.tau}}},
                     {"reference", hinge.reference},
                     {"err", table_json(hinge.hinge, config)},
                     {"reference_err", table_json(hinge.erm, config)},
                     {"convergence", columns},
                     {"n_star_ratio", agreement},
                     {"mean_ratio", estimate_json(hinge.mean_ratio, hinge.mean_ratio_ci)},
                     {"eps_slope_difference", estimate_json(hinge.slope_difference, hinge.slope_difference_ci)},
                     {"eps_slope_difference_holds_zero", hinge.difference_holds_zero},
                     {"agrees_with_reference", hinge.agrees},
                     {"same_constant", hinge.same_constant}};
  }
  fits["theory"] = {
      {"pac", "N_A = (4/eps)(d log2(12/eps) + log2(2/delta))"},
      {"hoeffding", "N_B = ln(2/delta)/(2 eps^2)"},
      {"averaging", "err = arctan(sqrt(pi c/(2n)))/pi, c = d-1 (mean), chi2_{d-1} (1-delta)-quantile (quantile)"},
      {"erm", "hard-margin SVM: tan(angle) ∝ d/n, eps-slope 1 in this link"}};
  return fits;
}

std::string verdicts_markdown(const BoundsConfig& config, const Analysis& analysis) {
  std::ostringstream verdicts;
  verdicts
      << "## Verdicts\n\nRegime A (full context): fits of log n* = a + b log d + c log(1/tan(πε)) on "
         "the "
      << g3(1 - config.delta)
      << "-quantile over tasks, 95% bootstrap intervals. The link log(1/tan(πε)) is the one in "
         "which averaging's closed form has slope 2 and hard-margin ERM slope 1 at every ε (with "
         "log(1/ε) they curve: 4πε/sin(2πε) for averaging); for small ε it is log(1/ε) + const. "
         "Rate: which of 1 (`d/eps`) and 2 (`d/eps^2`) the ε-slope's interval holds. Upper bound: "
         "O(d/ε) holds iff the trend of n*·tan(πε)/d against the link (= slope − 1) has an "
         "interval that does not lie above 0.\n\n";
  for (const LearnerAnalysis& learner : analysis.learners) {
    verdicts << verdict_a(learner.learner, "error", learner.err, config);
    if (learner.dis) {
      verdicts << verdict_a(learner.learner, "disagreement with " + config.evaluated_heads().front(),
                            *learner.dis, config);
    }
  }
  if (analysis.hinge) {
    const HingeAnalysis& hinge = *analysis.hinge;
    verdicts << "\ngd-hinge on its own grid (d ∈ {";
    for (std::size_t i = 0; i < config.hinge.d_grid.size(); ++i) verdicts << (i ? ", " : "") << config.hinge.d_grid[i];
    verdicts << "}, N ≤ " << config.hinge.n_grid.back() << ", " << config.hinge.tasks
             << " tasks; n* only where no unconverged task could move it, see below), against " << hinge.reference
             << " on the same tasks:\n\n"
             << verdict_a(hinge.learner, "error", hinge.hinge, config, config.hinge.n_grid.back())
             << verdict_a(hinge.reference + " (hinge grid)", "error", hinge.erm, config, config.hinge.n_grid.back());
    std::size_t unusable = 0;
    for (const HingeColumn& c : hinge.columns) unusable += !c.usable;
    // "ERM" when the reference is the ERM head (the default); another --reference is named as it is.
    const bool erm = hinge.reference == heads::kErmHead;
    const std::string against = erm ? "ERM" : hinge.reference;
    const auto rate_text = [](const NStarTable& table) {
      return table.fit.valid ? "`" + table.verdict.rate + "`" : std::string("— (no fit)");
    };
    verdicts << "- Agreement (rule fixed in advance: rate agreement iff the paired interval of the ε-slope "
                "difference holds 0 and both get the same resolved rate verdict; the constant is reported "
                "beside it): gd-hinge "
             << (hinge.agrees ? "**agrees with " : "**does not agree with ") << against << " in rate**"
             << ". ε-slope difference gd-hinge − " << hinge.reference << " on the same tasks and cells ";
    if (std::isfinite(hinge.slope_difference)) {
      verdicts << interval_text(hinge.slope_difference, hinge.slope_difference_ci)
               << ", paired bootstrap: " << (hinge.difference_holds_zero ? "holds" : "does not hold") << " 0";
    } else {
      verdicts << "— (no fit on the cells both reach)";
    }
    verdicts << "; rate verdicts: gd-hinge " << rate_text(hinge.hinge) << ", " << hinge.reference << " "
             << rate_text(hinge.erm) << ". Constant: n*(gd-hinge)/n*(" << hinge.reference << ") geometric mean ";
    if (std::isfinite(hinge.mean_ratio)) {
      verdicts << interval_text(hinge.mean_ratio, hinge.mean_ratio_ci) << " ("
               << (hinge.same_constant ? "holds" : "does not hold") << " 1"
               << (erm ? "; GD on the hinge stops at some separator with margins ≥ 1, not the maximum-margin one" : "")
               << ")";
    } else {
      verdicts << "— (no cell reached by both)";
    }
    verdicts << ". " << unusable << " of " << hinge.columns.size()
             << " (d, N) points have unconverged tasks that could move their quantile.\n";
  }
  if (!config.k_grid.empty()) {
    verdicts << "\nRegime B (context-constrained): the O((1/ε²)·log(1/δ)) bound is tested on k*(ε, δ, d), the "
                "smallest context size k at which the (1−δ)-quantile over tasks of the disagreement between "
                "the in-context learner (k examples chosen from S, |S| = "
             << config.regime_b_s << ", by the policy) and " << config.evaluated_heads().front()
             << " trained on all of S is ≤ ε. Fit log k* = a + b log(1/tan(πε)) + c log log(2/δ) + e log d "
                "(95% bootstrap intervals) against Hoeffding's (b, c, e) = (2, 1, 0).\n\n";
    for (const KStarTable& table : analysis.regime_b) verdicts << verdict_k_star(table, config.k_grid.back());
  }
  return verdicts.str();
}

std::string report_markdown(const BoundsConfig& config, const Analysis& analysis, bool plots) {
  std::ostringstream report;
  report << "# iclbench bounds report (preset: " << config.preset << ")\n\n"
         << "Validating the sample-size bounds of arXiv 2506.08060 on " << config.family
         << " tasks: d ∈ {";
  for (std::size_t i = 0; i < config.d_grid.size(); ++i)
    report << (i ? ", " : "") << config.d_grid[i];
  report << "}, N from " << config.n_grid.front() << " to " << config.n_grid.back() << ", "
         << config.tasks << " tasks per point, " << config.queries
         << " queries per task, δ = " << config.delta << ", seed " << config.seed << ".\n\n"
         << "Learners: transformers";
  for (const auto& model : config.models) report << " `" << model << "`";
  report << "; heads";
  for (const auto& head : config.heads) report << " `" << head << "`";
  report << " (disagreement against `" << config.evaluated_heads().front()
         << "`, the stand-in for the fine-tuned model).\n"
         << "Errors are exact (angle(w, w*)/π) where the inputs are rotation-invariant and the "
            "learner linear "
            "(transformers: checked with probe queries), Monte Carlo otherwise.\n\n"
         << verdicts_markdown(config, analysis) << "\n## Regime A: n*(d, ε)\n";
  for (const LearnerAnalysis& learner : analysis.learners)
    report << n_star_markdown(learner.learner, learner.err, config);
  if (analysis.hinge) report << hinge_markdown(*analysis.hinge, config);
  report << regime_b_markdown(analysis, config) << "\n## Plots\n\n";
  if (plots) {
    report << "![err vs N](err_vs_n.png)\n![n* vs d](nstar_vs_d.png)\n![n* vs 1/eps](nstar_vs_eps.png)\n";
    if (!config.k_grid.empty()) report << "![regime B](regime_b.png)\n";
    if (analysis.hinge) report << "![gd-hinge against " << analysis.hinge->reference << "](hinge.png)\n";
  } else {
    report << "Not drawn (`--no-plots`): `/usr/bin/python3 scripts/plot_bounds.py DIR` draws them from "
              "points.csv, fits.json and config.json.\n";
  }
  report << "\n## Reproduce\n\n```sh\niclbench bounds --config config.json --out DIR\n```\n\n"
         << "(`config.json` in this directory holds every parameter; points.csv and fits.json hold "
            "every number.)\n";
  return report.str();
}

namespace {

// Exit code of scripts/plot_bounds.py when /usr/bin/python3 has no matplotlib; it has then said
// so in one line.
constexpr int kPlotScriptNoMatplotlib = 3;

// The PNGs, drawn by scripts/plot_bounds.py from the files just written. Started without a shell
// (the directory is one argument, whatever characters it holds); a plot that cannot be drawn is
// a warning of one line, never a failure of the run.
void draw_plots(const fs::path& dir) {
  const fs::path script = fs::path(ICLBENCH_SOURCE_DIR) / "scripts" / "plot_bounds.py";
  // iclbench's pid: the script ties its life to this process (see io/process.hpp).
  const io::ChildStatus status =
      io::run_child({"/usr/bin/python3", script.string(), dir.string(), std::to_string(::getpid())});
  if (!status.started) {
    std::fprintf(stderr, "bounds: warning: plots were not drawn: cannot start /usr/bin/python3: %s\n",
                 std::strerror(status.start_error));
  } else if (status.exited && status.exit_code == kPlotScriptNoMatplotlib) {
    // plot_bounds.py printed its one line.
  } else if (!status.exited || status.exit_code != 0) {
    std::fprintf(stderr, "bounds: warning: plots were not drawn: %s %s %d\n", script.c_str(),
                 status.exited ? "exited with" : "was killed by signal",
                 status.exited ? status.exit_code : status.signal);
  }
}

}  // namespace

std::string write_report(const BoundsConfig& config, const std::vector<PointResult>& points,
                         const Analysis& analysis, const fs::path& dir, bool make_plots) {
  // All or nothing: the three files of one analysis appear together (a rerun replaces them).
  io::AtomicFile points_file(dir / "points.csv", io::Overwrite::kAllow);
  points_file.write_at(0, points_csv(config, points, analysis));
  io::AtomicFile fits_file(dir / "fits.json", io::Overwrite::kAllow);
  fits_file.write_at(0, fits_json(config, analysis).dump(2) + "\n");
  io::AtomicFile report_file(dir / "report.md", io::Overwrite::kAllow);
  report_file.write_at(0, report_markdown(config, analysis, make_plots));
  io::commit_together({&points_file, &fits_file, &report_file});
  if (make_plots) draw_plots(dir);
  return verdicts_markdown(config, analysis);
}

}  // namespace iclbench::bounds
