#include "bounds/report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>

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
    json["pac"] = {{"max_ratio", v.worst_pac_ratio},
                   {"at_d", v.worst_d > 0 ? nlohmann::json(v.worst_d) : nlohmann::json(nullptr)},
                   {"at_eps", v.worst_d > 0 ? nlohmann::json(v.worst_eps) : nlohmann::json(nullptr)}};
  }
  json["n_star"] = n_stars;
  return json;
}

std::string interval_text(double estimate, const eval::Interval& ci) {
  auto bound = [](double value) { return std::isfinite(value) ? g3(value) : std::string("?"); };
  return g3(estimate) + " [" + bound(ci.lo) + ", " + bound(ci.hi) + "]";
}

// One learner's regime A verdict for one metric (`what`), as a list item: the fit and rate beside
// the learner's theory; the upper bound; and, on a line of its own, the PAC comparison.
std::string verdict_a(const std::string& learner, const std::string& what, const NStarTable& table,
                      const BoundsConfig& config) {
  std::ostringstream text;
  const PowerFit& fit = table.fit;
  text << "- **" << learner << "** (" << what << "): ";
  if (!fit.valid) {
    text << "too few n* inside the grid to fit (" << fit.observations
         << " reached); widen the N grid or the eps grid.\n";
    return text.str();
  }
  const RegimeAVerdict& v = table.verdict;
  text << "ε-slope " << interval_text(fit.c, fit.c_ci);
  if (!v.theory.source.empty()) {
    text << " (theory " << g3(v.theory.eps_slope) << ": " << v.theory.source << "; "
         << (v.theory_in_ci ? "inside" : "outside") << " the interval)";
  }
  text << ", d-slope " << interval_text(fit.b, fit.b_ci) << ", " << fit.observations << " n*";
  if (v.not_reached > 0) text << " (" << v.not_reached << " not reached by N = " << config.n_grid.back() << ", left out)";
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

// Regime B: the floors of one learner, as a list item.
std::string verdict_b(const RegimeBFloors& floors, const BoundsConfig& config) {
  const std::string& learner = floors.learner;
  const bool transformer = learner.starts_with("gd-") || learner.starts_with("kernel") ||
                           learner.starts_with("garg-gpt2");
  std::string why;
  if (!transformer) {
    why = " (the reference head trains on all N examples, so it keeps improving).\n";
  } else if (config.regime_b_context == "random") {
    why =
        "; the transformer sees k random examples whatever N, so its error stays at the level of N "
        "= k: a "
        "fixed context caps accuracy, and N*_B exists only for ε above the floor.\n";
  } else {
    why = "; retrieval lets a larger S supply closer examples.\n";
  }
  return "- **" + learner + "**: floors between " + g3(floors.lowest) + " and " +
         g3(floors.highest) + " over d and k" + why;
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
  std::ostringstream table;
  table << "\n## Regime B\n\n| learner | d | k | floor (q" << g3(100 * (1 - config.delta)) << ") |";
  for (double eps : config.eps_grid) table << " N*_B ε=" << g3(eps) << " |";
  table << "\n|---|---|---|---|";
  for (std::size_t i = 0; i < config.eps_grid.size(); ++i) table << "---|";
  table << "\n";
  for (const RegimeBRow& row : analysis.regime_b) {
    table << "| " << row.learner << " | " << row.d << " | " << row.k << " | " << g3(row.floor)
          << " |";
    for (const NStar& value : row.n_star) {
      table << " "
            << (value.value ? (value.below_grid ? "≤ " : "") + g3(*value.value) : "not reached")
            << " |";
    }
    table << "\n";
  }
  return table.str();
}

}  // namespace

std::string points_csv(const BoundsConfig& config, const std::vector<PointResult>& points,
                       const Analysis& analysis) {
  std::ostringstream csv;
  csv.precision(8);
  csv << "regime,learner,kind,metric,d,k,n,mean,quantile,quantile_lo,quantile_hi,theory_averaging,"
         "theory_averaging_quantile,pac_n_at_mean\n";
  for (std::size_t p = 0; p < points.size(); ++p) {
    const PointResult& point = points[p];
    for (std::size_t c = 0; c < point.curves.size(); ++c) {
      const Curve& curve = point.curves[c];
      for (const bool dis : {false, true}) {
        const MetricStats& stats = dis ? analysis.points[p][c].dis : analysis.points[p][c].err;
        for (std::size_t j = 0; j < point.n.size(); ++j) {
          const double mean = stats.mean[j];
          csv << point.key.regime << ",\"" << curve.learner << "\","
              << (curve.transformer ? "transformer" : "head") << ','
              << (dis ? "dis_" + config.evaluated_heads().front() : curve.metric) << ',' << point.key.d << ','
              << point.key.k << ',' << point.n[j] << ',' << mean << ',' << stats.quantile[j] << ','
              << stats.quantile_ci[j].lo << ',' << stats.quantile_ci[j].hi << ','
              << averaging_error(point.key.d, static_cast<double>(point.n[j])) << ','
              << averaging_error_quantile(point.key.d, static_cast<double>(point.n[j]), config.delta) << ','
              << (mean > 0 && mean < 0.5 ? pac_sample_size(mean, config.delta, point.key.d) : NAN)
              << '\n';
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
  nlohmann::ordered_json floors = nlohmann::ordered_json::object();
  for (const RegimeBFloors& floor : analysis.floors)
    floors[floor.learner] = {{"lowest", floor.lowest}, {"highest", floor.highest}};
  fits["regime_b_floors"] = floors;
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
  if (!config.k_grid.empty()) {
    verdicts << "\nRegime B (context " << config.regime_b_context
             << ":k, N grows): the floor is the quantile at the largest N; N*_B the N at which it "
                "first reaches ε (Hoeffding N_B = ln(2/δ)/(2ε²) = "
             << g3(hoeffding_sample_size(config.eps_grid.back(), config.delta))
             << " at ε = " << g3(config.eps_grid.back()) << ").\n\n";
    for (const RegimeBFloors& floors : analysis.floors) verdicts << verdict_b(floors, config);
  }
  return verdicts.str();
}

std::string report_markdown(const BoundsConfig& config, const Analysis& analysis) {
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
  report << regime_b_markdown(analysis, config)
         << "\n## Plots\n\n![err vs N](err_vs_n.png)\n![n* vs d](nstar_vs_d.png)\n![n* vs "
            "1/eps](nstar_vs_eps.png)\n";
  if (!config.k_grid.empty()) report << "![regime B](regime_b.png)\n";
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
  const io::ChildStatus status = io::run_child({"/usr/bin/python3", script.string(), dir.string()});
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
  report_file.write_at(0, report_markdown(config, analysis));
  io::commit_together({&points_file, &fits_file, &report_file});
  if (make_plots) draw_plots(dir);
  return verdicts_markdown(config, analysis);
}

}  // namespace iclbench::bounds
