#pragma once
// The files of a bounds run, from its points and their analysis: points.csv (one row per regime,
// learner, metric, d, k and N, with every quantile an n* or a k* is read from; its columns in
// docs/DESIGN.md), fits.json (n* tables and fits, with the theory's formulas),
// report.md (verdicts, n* tables, regime B) and the plots that scripts/plot_bounds.py draws from
// them.

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bounds/analysis.hpp"

namespace iclbench::bounds {

std::string points_csv(const BoundsConfig& config, const std::vector<PointResult>& points,
                       const Analysis& analysis);
nlohmann::ordered_json fits_json(const BoundsConfig& config, const Analysis& analysis);
// The report's "Verdicts" section (Markdown), and the whole report around it.
std::string verdicts_markdown(const BoundsConfig& config, const Analysis& analysis);
// With `plots` false (--no-plots) the Plots section says how to draw them instead of linking PNGs
// that were not drawn.
std::string report_markdown(const BoundsConfig& config, const Analysis& analysis, bool plots = true);

// Writes points.csv, fits.json and report.md into `dir` (each atomically), then, if asked, the
// plots (a failure to draw them is reported on stderr, not thrown). Returns the verdicts.
std::string write_report(const BoundsConfig& config, const std::vector<PointResult>& points,
                         const Analysis& analysis, const std::filesystem::path& dir,
                         bool make_plots);

}  // namespace iclbench::bounds
