#include "bounds/bounds.hpp"

namespace iclbench::bounds {

std::string run_bounds(const BoundsConfig& config, const std::filesystem::path& dir,
                       const util::ProgressCallback& progress, bool make_plots, const PointRunner& runner) {
  config.validate();
  const std::vector<PointResult> points = run_sweep(config, dir, progress, runner);
  const Analysis analysis = analyse(config, points);
  return write_report(config, points, analysis, dir, make_plots);
}

}  // namespace iclbench::bounds
