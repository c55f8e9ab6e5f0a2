#pragma once
// `iclbench bounds`: sweeps that measure the sample size an in-context learner needs and hold it
// against the bounds of arXiv 2506.08060.
//
// Regime A (full context, k = N): for each d and each N on a geometric grid, T tasks; per learner
// the error (the exact angle error where it applies, else Monte Carlo) and the disagreement with
// the reference head; n*(d, eps, delta) = the smallest N at which the (1 - delta)-quantile over
// tasks is <= eps, interpolated on the log grid, with a bootstrap interval; a fit
// log n* = a + b log d + c log(1/tan(pi eps)).
// Regime B (the context-constrained claim): a set S of examples per task, a context of k of
// them chosen by a policy (random, retrieve, ensemble); k*(eps, delta, d) = the smallest k at
// which the (1 - delta)-quantile of the disagreement with the reference trained on all of S is
// <= eps, and a fit log k* = a + b log(1/tan(pi eps)) + c log log(2/delta) + e log d.
// gd-hinge runs on its own regime A grid with a step rule that converges, its convergence
// reported per point.
//
// A run has three parts, each its own header: the sweep (sweep.hpp: one evaluation per point,
// saved so that a run resumes), the analysis (analysis.hpp: a pure function of the points) and
// the report (report.hpp: the files).

#include <filesystem>
#include <string>

#include "bounds/analysis.hpp"
#include "bounds/config.hpp"
#include "bounds/report.hpp"
#include "bounds/sweep.hpp"
#include "util/progress_callback.hpp"

namespace iclbench::bounds {

// Runs (or resumes) the sweep in `dir`, analyses it and writes points.csv, fits.json, report.md
// and the plots. Refuses a dir that holds a run with another config. Returns the report's
// verdict section. `runner` computes the points not saved (run_sweep()).
std::string run_bounds(const BoundsConfig& config, const std::filesystem::path& dir,
                       const util::ProgressCallback& progress, bool make_plots, const PointRunner& runner = {});

}  // namespace iclbench::bounds
