#pragma once
// The sweep of a bounds run: its points, one evaluation each, saved so that a run resumes.
//
// A point is one (regime, d) with its whole grid, evaluated on one task set whose seed is
// a pure function of (seed, point): a point's result depends on nothing else, not on which other
// points the sweep has, nor on where or in which order they run. Each result is written
// atomically to DIR/points/, so that a killed run resumes where it stopped and ends with the
// same bytes.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "bounds/config.hpp"
#include "io/output_directory.hpp"
#include "util/progress_callback.hpp"

namespace iclbench::bounds {

// Regime A: one point per d, all N of the grid. Regime B: one point per d, every k of the k grid
// (the "n" axis of its curves is k) and every context policy, on a set S of regime_b_s examples.
// Regime H: gd-hinge's own regime A grid (config.hinge), one point per d of it.
struct PointKey {
  char regime;  // 'A', 'B' or 'H'
  int d;
  std::int64_t k;          // 0 (kept for the point files' format)
  std::string id() const;  // "A-d8", "B-d8", "H-d4"
};
std::vector<PointKey> sweep_points(const BoundsConfig& config);

// The seed of a point's task set and of its bootstrap resamples: splitmix64 of the run's seed
// and the point.
std::uint64_t point_seed(std::uint64_t seed, const PointKey& key);

// Per learner, per N of the grid (k in regime B), per task: the error and the disagreement
// with the reference.
struct Curve {
  std::string learner;
  bool transformer = false;
  std::string context;                   // regime B: random | retrieve | ensemble; else empty
  std::string metric;                    // "err_exact" (err and dis exact angles) or "err"
  std::vector<std::vector<double>> err;  // [N grid][task]
  std::vector<std::vector<double>> dis;  // [N grid][task]
  // gd-hinge only (empty otherwise), [N grid][task]: the fraction of the N context examples at
  // margin y_i w.x_i >= 1 under the transformer's own w, and the relative size |dw|/|w| of the
  // GD step the construction would take next from that w (0 exactly at a fixed point: every
  // example at margin >= 1 + tau).
  std::vector<std::vector<double>> margin_fraction, step_change;
};
struct PointResult {
  PointKey key;
  std::vector<std::int64_t> n;  // the N grid (regime B: the k grid)
  std::vector<Curve> curves;
  nlohmann::ordered_json to_json() const;
  static PointResult from_json(const nlohmann::json& json);
};

// Generates the point's task set and evaluates every learner on it. Pure: the same config and
// key give the same result.
PointResult run_point(const BoundsConfig& config, const PointKey& key);
// Peak bytes of the sweep (its largest point) with `threads` TBB threads, for refusing a sweep
// that cannot fit before it starts. From the models' configs: nothing is built.
std::uint64_t estimate_memory_bytes(const BoundsConfig& config, int threads);

// Why `point` is not the one `config` asks for at `key` (its key, N grid, curves, learners and
// [N][task] arrays checked against what run_point() writes), or nothing if it is. Used on
// points read back from DIR/points/ and on points a rank sends over MPI.
std::optional<std::string> point_mismatch(const PointResult& point, const BoundsConfig& config,
                                          const PointKey& key);

// Estimated wall seconds of the whole sweep with `threads` threads on a quiet machine, printed
// before it starts: a cost model in CPU seconds (tokens and layers of the transformers' prompts,
// head solves, task generation) calibrated on the reference machine, over the threads. A
// machine busy with other work takes longer in proportion.
double estimate_seconds(const BoundsConfig& config, int threads);
// Estimated wall seconds of what follows the sweep, on one thread: the analysis (bootstrap
// quantile curves: every curve's [N][task] array resampled `bootstrap` times per metric) and,
// with `plots`, the plot script. Printed beside estimate_seconds().
double estimate_report_seconds(const BoundsConfig& config, bool plots);
// The same cost model for one point (its share of estimate_seconds), in seconds on `threads`
// threads: the weight by which bounds/distribute.hpp balances points over MPI ranks.
double estimate_point_seconds(const BoundsConfig& config, const PointKey& key, int threads);

// Throws io::IoError naming `dir` unless a run of `config` may write it: it is missing, empty,
// or holds a run of the same configuration (its config.json). Changes nothing on disk.
// Every output path under DIR (config.json, points.csv, fits.json, report.md, the PNGs: a regular
// file if present; points/: a directory) is checked too, so that nothing is refused after the work.
void check_run_directory(const BoundsConfig& config, const std::filesystem::path& dir);

// Every point's learners must be able to read its task set (a model file's d, a learned model's
// positions against the n grid; no two learners of one name) before a directory or a point is
// written: a refused run leaves nothing that would block the corrected command. `bounds --plan`
// runs it too, so that a plan is refused as the run would be.
void check_learners(const BoundsConfig& config);

// Refuses, as util::ParameterError naming the flag to give, a config that a model file among its
// models cannot run: a d other than the file's, a regime A or B context longer than its
// positions, ensemble:k for an interleaved-prompt (garg-gpt2) model. Reads file headers only.
// claim_directory() and run_sweep() call it; the CLI calls it first, before --plan and sizing.
void check_learned_models(const BoundsConfig& config);

// Makes `dir` the run directory of `config` and locks it against other runs for the lock's
// lifetime: creates it, or checks that it holds a run of the same configuration, or is empty (a
// directory of other files is refused), all as io::IoError naming the path. Call before any work.
std::unique_ptr<io::DirectoryLock> claim_directory(const BoundsConfig& config,
                                                   const std::filesystem::path& dir);

// Runs the sweep in `dir`, or resumes it: points already in DIR/points/ are read back, the others
// run and are saved. Writes DIR/config.json on the first run and refuses (io::IoError) a
// directory that holds a run of another configuration. A saved point that does not match the
// config in every field is computed again (one notice line on stderr). `progress` hears of each
// point. `runner` computes the points not saved (default: run_point() on each, in order, here);
// each is saved as soon as the runner hands it back.
//
// A PointRunner computes `pending` and calls `done(index into pending, result)` once per point,
// on the calling thread, in any order. bounds/distribute.hpp has one that spreads them over MPI
// ranks.
using PointRunner = std::function<void(const BoundsConfig& config, const std::vector<PointKey>& pending,
                                       const std::function<void(std::size_t, PointResult)>& done)>;
std::vector<PointResult> run_sweep(const BoundsConfig& config, const std::filesystem::path& dir,
                                   const util::ProgressCallback& progress, const PointRunner& runner = {});

}  // namespace iclbench::bounds
