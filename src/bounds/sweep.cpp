#include "bounds/sweep.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numbers>
#include <span>
#include <string_view>
#include <optional>

#include "data_gen/dataset.hpp"
#include "eval/evaluate.hpp"
#include "eval/metrics.hpp"
#include "eval/prompts.hpp"
#include "heads/heads.hpp"
#include "io/atomic_file.hpp"
#include "io/input_file.hpp"
#include "io/output_directory.hpp"
#include "io/strict_json.hpp"
#include "model/garg.hpp"
#include "model/resolve.hpp"
#include "util/text.hpp"

namespace iclbench::bounds {
namespace {

namespace fs = std::filesystem;

std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// The task set, the learners and the evaluation of one sweep point.
struct PointInputs {
  data::TaskSpec spec;
  std::vector<model::ModelSource> models;
  eval::EvalConfig eval_config;
};

// The learners of one point in the order of its curves (what run_point() writes).
struct ExpectedCurve {
  std::string learner;
  bool transformer;
  std::string context;
};

PointInputs point_inputs(const BoundsConfig& config, const PointKey& key) {
  PointInputs inputs;
  data::TaskSpec& spec = inputs.spec;
  spec.family = *data::parse_family(config.family);
  spec.dim = key.d;
  spec.n_examples = key.regime == 'A' ? config.n_grid.back()
                    : key.regime == 'B' ? config.regime_b_s
                                        : config.hinge.n_grid.back();
  spec.n_queries = config.queries;
  spec.n_tasks = key.regime == 'A' ? config.tasks
                 : key.regime == 'B' ? config.regime_b_tasks
                                     : config.hinge.tasks;
  spec.seed = point_seed(config.seed, key);
  spec.scale = data::default_scale(spec.family);
  if (spec.family == data::Family::kSkewed) spec.kappa = 10.0;
  if (key.regime == 'H') {
    // The largest N's construction: validation and the memory estimate see the costliest run.
    inputs.models.push_back(model::ModelSource::resolve(config.hinge.model_at(spec.n_examples), key.d, spec.seed));
  } else {
    for (const std::string& text : config.models) {
      inputs.models.push_back(model::ModelSource::resolve(text, key.d, spec.seed));
    }
  }
  eval::EvalConfig& eval_config = inputs.eval_config;
  std::string joined;
  for (const auto& head : config.evaluated_heads()) joined += (joined.empty() ? "" : ",") + head;
  eval_config.heads = heads::parse_heads(joined);
  eval_config.n_grid = key.regime == 'H' ? config.hinge.n_grid : config.n_grid;
  if (key.regime != 'A') eval_config.heads.resize(1);  // the reference only
  if (key.regime == 'B') {
    // The reference trains on all of S; the learners see k of it (the largest k here, for
    // validation and the memory estimate; run_point() runs every k and policy).
    eval_config.n_grid = {config.regime_b_s};
    eval_config.context = eval::parse_context(config.regime_b_contexts.front() + ":" +
                                              std::to_string(config.k_grid.back()));
  }
  eval_config.delta = config.delta;
  eval_config.dense = config.dense;
  eval_config.seed = spec.seed;
  // The fewest resamples eval takes: its summaries are not used, the analysis bootstraps itself.
  eval_config.bootstrap = eval::kMinResamples;
  return inputs;
}

std::vector<ExpectedCurve> expected_curves(const BoundsConfig& config, const PointKey& key,
                                           const PointInputs& inputs) {
  std::vector<ExpectedCurve> curves;
  if (key.regime == 'B') {
    for (const model::ModelSource& source : inputs.models)
      for (const std::string& context : config.regime_b_contexts)
        curves.push_back({eval::learner_name(source), true, context});
    return curves;
  }
  if (key.regime == 'H') {
    curves.push_back({config.hinge.learner_name(), true, ""});
  } else {
    for (const model::ModelSource& source : inputs.models) curves.push_back({eval::learner_name(source), true, ""});
  }
  for (const heads::HeadSpec& head : inputs.eval_config.heads) curves.push_back({head.name, false, ""});
  return curves;
}

// The grid a point's curves run along: N (regime A, H) or k (regime B).
std::vector<std::int64_t> point_grid(const BoundsConfig& config, const PointKey& key) {
  if (key.regime == 'A') return config.n_grid;
  if (key.regime == 'B') return config.k_grid;
  return config.hinge.n_grid;
}

// Writes DIR/config.json into a directory that check_run_directory() accepted, and removes the
// temporary files of a killed run.
void prepare_directory(const BoundsConfig& config, const fs::path& dir) {
  check_run_directory(config, dir);
  io::create_output_directory(dir);
  const fs::path config_path = dir / "config.json";
  if (!fs::exists(config_path)) {
    io::write_file_atomically(config_path, config.to_json().dump(2) + "\n", io::Overwrite::kRefuse);
  }
  io::create_output_directory(dir / "points");
  for (const auto& entry : fs::directory_iterator(dir / "points")) {
    if (entry.path().filename().string().starts_with(".")) fs::remove(entry.path());
  }
  // A point is saved by renaming a new file onto DIR/points/ID.json, which a FIFO, a directory or
  // a symbolic link there would refuse (or, for a link, be replaced by): such an entry is not a
  // point this tool wrote, so it is refused before any point is computed, not after its point.
  for (const PointKey& key : sweep_points(config)) {
    const fs::path path = dir / "points" / (key.id() + ".json");
    std::error_code error;
    const fs::file_status status = fs::symlink_status(path, error);
    if (fs::exists(status) && !fs::is_regular_file(status)) {
      throw io::IoError("cannot resume from " + path.string() + ": " +
                        (fs::is_symlink(status) ? "it is a symbolic link" : "not a regular file") +
                        "; remove it to recompute its point");
    }
  }
}

}  // namespace

// Why a saved point is not the one `config` asks for at `key`, or nothing if it is: every field
// is checked against what run_point() would write (the point, the N grid, one curve per learner
// in order, [N grid][task] arrays of rates in [0, 1]), so that a damaged or foreign file is
// recomputed rather than crashing or skewing the analysis.
std::optional<std::string> point_mismatch(const PointResult& point, const BoundsConfig& config,
                                          const PointKey& key) {
  const PointInputs inputs = point_inputs(config, key);
  if (point.key.regime != key.regime || point.key.d != key.d || point.key.k != key.k) {
    return "it holds point " + point.key.id();
  }
  if (point.n != point_grid(config, key)) return "its n grid differs from the config's";
  const std::vector<ExpectedCurve> expected = expected_curves(config, key, inputs);
  if (point.curves.size() != expected.size()) {
    return "it has " + std::to_string(point.curves.size()) + " curves, not " + std::to_string(expected.size());
  }
  const auto tasks = static_cast<std::size_t>(inputs.spec.n_tasks);
  for (std::size_t l = 0; l < expected.size(); ++l) {
    const Curve& curve = point.curves[l];
    if (curve.transformer != expected[l].transformer || curve.learner != expected[l].learner ||
        curve.context != expected[l].context) {
      return "curve " + std::to_string(l) + " is not the config's learner";
    }
    if (curve.metric != "err" && curve.metric != "err_exact") return "curve " + std::to_string(l) + " has an unknown metric";
    // The metric is what run_point() would choose: Monte Carlo ("err") wherever the exact angle
    // cannot apply (inputs not rotation-invariant, or a head without weights); where it can, it
    // depends on the run (a transformer's probe fit), but a Monte Carlo rate is a count of
    // disagreeing queries over M, so "err" on values off that lattice is a relabelled exact curve.
    const bool head_without_weights =
        !curve.transformer && std::any_of(inputs.eval_config.heads.begin(), inputs.eval_config.heads.end(),
                                          [&](const heads::HeadSpec& head) {
                                            return head.name == curve.learner && head.kind == heads::HeadKind::kKnn;
                                          });
    // The reference is the first head (run_regime_a reads it there); its weights are needed too.
    const bool reference_without_weights = inputs.eval_config.heads.front().kind == heads::HeadKind::kKnn;
    if (curve.metric == "err_exact" &&
        (!eval::rotation_invariant(inputs.spec) || head_without_weights || reference_without_weights)) {
      return "curve " + std::to_string(l) + " has metric err_exact where only err applies";
    }
    const bool hinge = key.regime == 'H' && l == 0;
    for (const auto* table : {&curve.err, &curve.dis, &curve.margin_fraction, &curve.step_change}) {
      if (!hinge && (table == &curve.margin_fraction || table == &curve.step_change)) {
        if (!table->empty()) return "curve " + std::to_string(l) + " has convergence data it should not have";
        continue;
      }
      if (table->size() != point.n.size()) return "curve " + std::to_string(l) + " has arrays of the wrong length";
      for (const std::vector<double>& per_task : *table) {
        if (per_task.size() != tasks) return "curve " + std::to_string(l) + " has arrays of the wrong length";
        for (const double rate : per_task) {
          // step_change is a ratio >= 0 (not a rate); the others are rates in [0, 1].
          const bool ok = table == &curve.step_change ? rate >= 0.0 : (rate >= 0.0 && rate <= 1.0);
          if (!ok) return "curve " + std::to_string(l) + " has a value outside its range";
          // A count over M <= 2^31 queries divided by M in double is within 2^-52 M of its
          // integer; 1e-6 is far outside that and far inside 1/2 (an exact angle lands on the
          // lattice with probability 0).
          const double count = rate * static_cast<double>(inputs.spec.n_queries);
          const bool rate_table = table == &curve.err || table == &curve.dis;
          if (rate_table && curve.metric == "err" && std::abs(count - std::round(count)) > 1e-6) {
            return "curve " + std::to_string(l) + " has metric err but rates that are not counts over the queries";
          }
        }
      }
    }
  }
  return std::nullopt;
}

namespace {

// A point saved by an earlier run, if it is there and is the point `config` asks for; otherwise
// nothing, and a file that was there but did not match gets one notice line on stderr (it is
// computed again and replaced).
std::optional<PointResult> read_saved_point(const fs::path& path, const BoundsConfig& config,
                                            const PointKey& key) {
  if (!fs::exists(path)) return std::nullopt;
  std::string problem;
  try {
    PointResult point = PointResult::from_json(io::parse_json_strict(io::read_text_file(path)));
    const std::optional<std::string> mismatch = point_mismatch(point, config, key);
    if (!mismatch) return point;
    problem = *mismatch;
  } catch (const std::exception& error) {
    problem = error.what();
  }
  std::fprintf(stderr, "bounds: notice: recomputing %s: %s\n", util::escape_control(path.string()).c_str(),
               util::escape_control(problem).c_str());
  return std::nullopt;
}

}  // namespace

std::string PointKey::id() const { return std::string(1, regime) + "-d" + std::to_string(d); }

std::vector<PointKey> sweep_points(const BoundsConfig& config) {
  std::vector<PointKey> keys;
  for (int d : config.d_grid) keys.push_back({'A', d, 0});
  if (!config.k_grid.empty())
    for (int d : config.d_grid) keys.push_back({'B', d, 0});
  for (int d : config.hinge.d_grid) keys.push_back({'H', d, 0});
  return keys;
}

std::uint64_t point_seed(std::uint64_t seed, const PointKey& key) {
  return mix(seed ^
             mix(static_cast<std::uint64_t>(key.regime) << 48 ^
                 static_cast<std::uint64_t>(key.d) << 24 ^ static_cast<std::uint64_t>(key.k)));
}

nlohmann::ordered_json PointResult::to_json() const {
  nlohmann::ordered_json curves_json = nlohmann::ordered_json::array();
  for (const Curve& curve : curves) {
    nlohmann::ordered_json entry = {{"learner", curve.learner},
                                    {"transformer", curve.transformer},
                                    {"context", curve.context},
                                    {"metric", curve.metric},
                                    {"err", curve.err},
                                    {"dis", curve.dis}};
    if (!curve.margin_fraction.empty()) {
      entry["margin_fraction"] = curve.margin_fraction;
      entry["step_change"] = curve.step_change;
    }
    curves_json.push_back(std::move(entry));
  }
  return {{"format", "iclbench-bounds-point"},
          {"format_version", 2},
          {"regime", std::string(1, key.regime)},
          {"d", key.d},
          {"k", key.k},
          {"n", n},
          {"curves", curves_json}};
}

PointResult PointResult::from_json(const nlohmann::json& json) {
  // Read as strictly as a config (what to_json() writes and nothing else): integers as integers,
  // no unknown keys; parse_json_strict has already refused duplicate keys and NUL bytes.
  util::require(json.is_object(), "point", "must be a JSON object");
  io::require_known_keys(json, {"format", "format_version", "regime", "d", "k", "n", "curves"});
  if (json.value("format", "") != "iclbench-bounds-point" ||
      io::integer_at<std::int64_t>(json, "format_version", 0) != 2) {
    throw std::invalid_argument("not an iclbench bounds point (or another format version)");
  }
  PointResult result;
  const std::string regime = json.at("regime").get<std::string>();
  util::require(regime.size() == 1, "regime", "must be one letter");
  result.key = {regime[0], io::integer_value<int>(json.at("d"), "d"),
                io::integer_value<std::int64_t>(json.at("k"), "k")};
  result.n = io::integer_list<std::int64_t>(json, "n");
  util::require(json.at("curves").is_array(), "curves", "must be a list");
  for (const auto& entry : json.at("curves")) {
    util::require(entry.is_object(), "curves", "must hold objects");
    io::require_known_keys(entry, {"learner", "transformer", "context", "metric", "err", "dis",
                                   "margin_fraction", "step_change"});
    Curve curve;
    curve.learner = entry.at("learner").get<std::string>();
    curve.transformer = entry.at("transformer").get<bool>();
    curve.context = entry.at("context").get<std::string>();
    curve.metric = entry.at("metric").get<std::string>();
    curve.err = entry.at("err").get<std::vector<std::vector<double>>>();
    curve.dis = entry.at("dis").get<std::vector<std::vector<double>>>();
    if (entry.contains("margin_fraction")) {
      curve.margin_fraction = entry.at("margin_fraction").get<std::vector<std::vector<double>>>();
      curve.step_change = entry.at("step_change").get<std::vector<std::vector<double>>>();
    }
    result.curves.push_back(std::move(curve));
  }
  return result;
}

std::uint64_t estimate_memory_bytes(const BoundsConfig& config, int threads) {
  // Points run one after another, so the peak is the largest point's: its task set (generated
  // into the page cache) and its evaluation.
  std::uint64_t peak = 0;
  for (const PointKey& key : sweep_points(config)) {
    const PointInputs inputs = point_inputs(config, key);
    const bool retrieval = key.regime == 'B' && std::find(config.regime_b_contexts.begin(), config.regime_b_contexts.end(),
                                                          "retrieve") != config.regime_b_contexts.end();
    peak = std::max(peak, inputs.spec.dataset_bytes() +
                              eval::estimate_memory_bytes(inputs.spec, inputs.models,
                                                          inputs.eval_config, threads) +
                              (retrieval ? eval::retrieval_extra_bytes(inputs.spec.n_tasks, inputs.spec.n_queries,
                                                                       config.k_grid)
                                         : 0));
  }
  return peak;
}

namespace {

// The cost model of estimate_seconds(), in CPU seconds per task (docs/DESIGN.md, "Bounds: cost
// model"):
//   a transformer prompt of T tokens and L executed layers: T (kTokenSeconds + L kTokenLayerSeconds)
//   (kTokenSeconds: building the tokens, the probe fit and the metrics; the constructed
//   models' attention is linear in T under plan-time weight structure),
//   svm-hard: kErmSeconds + N d kErmScanSeconds (active-set solves on working sets, each round
//   an O(N d) scan),
//   other LIBLINEAR heads N d kLiblinearSeconds, the rest N d kScanSeconds,
//   generating a task set: N d kGenerateSeconds per task.
// Calibrated in CPU time (user + sys), so that the machine's load does not enter, on the
// reference machine (2 vCPU AMD EPYC): kTokenLayerSeconds (per executed layer: a looped
// layer counts once per pass) refitted on 2026-12-01 to the structured engine's gd-hinge points
// of the quick preset (12.7 CPU s at one thread, N to 4096), kTokenSeconds from the quick
// preset's own run (33.6 CPU s, shared among its regimes by their points' times: regime A
// ~20 s, then nearly all the old squared-hinge svm-hard's 5100 solves; regime B ~10 s, nearly all the ~9e7 tokens of
// ensemble:k's windows; raised by 1e-8 when the layer constant fell, to keep a one-layer
// model's token cost). svm-hard's two constants were refitted for its exact solver to per-solve
// CPU times at d = 4, 16, 32 and N = 64, 1024, 4096 (0.03-7 ms; within 2.5x of the model at each);
// on the quick preset's grid its mean is 0.5-0.6 ms a solve, 0.10x the squared-hinge solver it
// replaced (5.3-5.7 ms, same runs).
// retrieve:k adds, per prompt (one per query and k), kRetrievePromptSeconds and T d
// kRetrieveValueSeconds for assembling its T = k + 1 tokens one prompt at a time, and once per
// query (for the whole k grid: eval::evaluate_retrieval) S kNeighbourSeconds for ordering S.
// Fitted to three `--threads 1` runs of regime B with retrieve alone (d = 4, 16 at S = 2048;
// d = 4 at S = 8192; 10 tasks) and checked on a fourth (d = 4, 100 tasks): the search grows
// with S, hardly with d; the rest with k d (docs/DESIGN.md, "Bounds: cost model").
constexpr double kTokenSeconds = 1.1e-7, kTokenLayerSeconds = 2.7e-9, kErmSeconds = 1e-4,
                 kErmScanSeconds = 6e-8,
                 kLiblinearSeconds = 5e-8, kScanSeconds = 2e-9, kGenerateSeconds = 3e-8,
                 kRetrievePromptSeconds = 8e-5, kRetrieveValueSeconds = 2.1e-8, kNeighbourSeconds = 4e-8;

double transformer_seconds(const model::ModelSource& model, const eval::ContextSpec& context,
                           std::int64_t n, const data::TaskSpec& spec) {
  const model::ModelConfig& config = model.config();
  // Layers executed: a looped layer (gd-hinge's step, L times) counts once per pass.
  double layers = 0;
  for (const model::LayerConfig& layer : config.layers) layers += layer.loop;
  std::int64_t windows = 1;
  eval::ContextSpec one = context;
  if (context.policy == eval::ContextPolicy::kEnsemble) {
    windows = (n + context.k - 1) / context.k;
    one = {};
    n = std::min(n, context.k);
  }
  const eval::PromptPlan plan = eval::prompt_plan(one, n, spec.n_tasks, spec.n_queries,
                                                  static_cast<int>(spec.dim), config);
  // retrieve:k's neighbour search is charged once per query by retrieval_search_seconds().
  const double retrieval =
      context.policy == eval::ContextPolicy::kRetrieve
          ? kRetrievePromptSeconds + static_cast<double>(plan.tokens * spec.dim) * kRetrieveValueSeconds
          : 0.0;
  return static_cast<double>(windows * plan.prompts) *
         (static_cast<double>(plan.tokens) * (kTokenSeconds + layers * kTokenLayerSeconds) + retrieval);
}

// retrieve:k's search of S: once per query for the whole k grid (eval::evaluate_retrieval).
double retrieval_search_seconds(std::int64_t s, const data::TaskSpec& spec) {
  return static_cast<double>(spec.n_tasks * spec.n_queries) * static_cast<double>(s) * kNeighbourSeconds;
}

double head_seconds(const heads::HeadSpec& head, std::int64_t n, const data::TaskSpec& spec) {
  const double tasks = static_cast<double>(spec.n_tasks), nd = static_cast<double>(n * spec.dim);
  if (head.kind == heads::HeadKind::kSvmHard) return tasks * (kErmSeconds + nd * kErmScanSeconds);
  if (head.kind == heads::HeadKind::kLogistic || head.kind == heads::HeadKind::kSvm)
    return tasks * nd * kLiblinearSeconds;
  return tasks * nd * kScanSeconds;
}

}  // namespace

double estimate_seconds(const BoundsConfig& config, int threads) {
  // The sum of estimate_point_seconds() over the points (the cost model above).
  double seconds = 0;
  for (const PointKey& key : sweep_points(config)) seconds += estimate_point_seconds(config, key, 1);
  return seconds / std::max(1, threads);
}

double estimate_report_seconds(const BoundsConfig& config, bool plots) {
  // Resampled values: per point, curve and metric (err, dis; regime B's dis once per delta too),
  // bootstrap x tasks x grid. Fitted to the quick preset's analysis alone (a resumed run with
  // every point saved, --no-plots: 1.1 s for 6.0e7 values, 2026-12-01); its plots took 2.8 s.
  constexpr double kResampleSeconds = 1.8e-8, kPlotSeconds = 3.0;
  double values = 0;
  for (const PointKey& key : sweep_points(config)) {
    const PointInputs inputs = point_inputs(config, key);
    const auto curves = static_cast<double>(expected_curves(config, key, inputs).size());
    const double metrics = key.regime == 'B' ? 2.0 + static_cast<double>(config.regime_b_deltas.size()) : 2.0;
    const auto grid = static_cast<double>(key.regime == 'A' ? config.n_grid.size()
                                          : key.regime == 'B' ? config.k_grid.size()
                                                              : config.hinge.n_grid.size());
    values += curves * metrics * grid * static_cast<double>(inputs.spec.n_tasks) * config.bootstrap;
  }
  return values * kResampleSeconds + (plots ? kPlotSeconds : 0.0);
}

double estimate_point_seconds(const BoundsConfig& config, const PointKey& key, int threads) {
  const PointInputs inputs = point_inputs(config, key);
  const data::TaskSpec& spec = inputs.spec;
  double seconds = static_cast<double>(spec.n_tasks * spec.n_examples * spec.dim) * kGenerateSeconds;
  if (key.regime == 'B') {
    seconds += head_seconds(inputs.eval_config.heads.front(), config.regime_b_s, spec);
    for (const model::ModelSource& model : inputs.models)
      for (const std::string& policy : config.regime_b_contexts) {
        if (policy == "retrieve") seconds += retrieval_search_seconds(config.regime_b_s, spec);
        for (const std::int64_t k : config.k_grid)
          seconds += transformer_seconds(model, eval::parse_context(policy + ":" + std::to_string(k)),
                                         config.regime_b_s, spec);
      }
  } else {
    for (const std::int64_t n : inputs.eval_config.n_grid) {
      if (key.regime == 'H') {
        const model::ModelSource model = model::ModelSource::resolve(config.hinge.model_at(n), key.d, spec.seed);
        seconds += transformer_seconds(model, {}, n, spec);
      } else {
        for (const model::ModelSource& model : inputs.models) seconds += transformer_seconds(model, {}, n, spec);
      }
      for (const heads::HeadSpec& head : inputs.eval_config.heads) seconds += head_seconds(head, n, spec);
    }
  }
  // CPU seconds over the threads: the wall time of a quiet machine (tasks run in parallel).
  return seconds / std::max(1, threads);
}

namespace {

// The angle between two weight vectors over pi: the exact disagreement rate of their linear
// predictors on rotation-invariant inputs. 2 atan2(|a - b|, |a + b|) of the unit vectors keeps
// full relative precision at small angles, where acos of the cosine loses half the digits.
double angle_over_pi(const std::vector<double>& a, const std::vector<double>& b) {
  double na = 0, nb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  na = std::sqrt(na);
  nb = std::sqrt(nb);
  if (!(na > 0) || !(nb > 0)) return 0.5;  // a zero predictor agrees with nothing in particular
  double minus = 0, plus = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double u = a[i] / na, v = b[i] / nb;
    minus += (u - v) * (u - v);
    plus += (u + v) * (u + v);
  }
  return 2 * std::atan2(std::sqrt(minus), std::sqrt(plus)) / std::numbers::pi;
}

// Per task, a learner's error and disagreement with the reference at one grid entry: exact
// angles where the inputs are rotation-invariant and both are linear (weights known), else the
// Monte Carlo rates over the queries. `exact` says which the caller uses for the whole curve.
void append_rates(Curve& curve, const eval::PrefixResult& point, const eval::PrefixResult& reference,
                  bool exact, std::int64_t queries) {
  curve.err.push_back(exact ? point.exact_err->per_task : point.err.per_task);
  std::vector<double> dis(curve.err.back().size());
  for (std::size_t t = 0; t < dis.size(); ++t) {
    if (exact) {
      dis[t] = angle_over_pi(point.weights[t], reference.weights[t]);
    } else {
      const auto m = static_cast<std::size_t>(queries);
      dis[t] = eval::disagreement_rate(std::span(point.scores).subspan(t * m, m),
                                       std::span(reference.scores).subspan(t * m, m));
    }
  }
  curve.dis.push_back(std::move(dis));
}

bool has_exact(const eval::PrefixResult& point) {
  return point.exact_err.has_value() && !point.weights.empty();
}

// Regime A: every learner on the prefixes of one task set.
PointResult run_regime_a(const BoundsConfig& config, const PointKey& key, const PointInputs& inputs) {
  const data::Dataset dataset = data::Dataset::generate_unnamed(inputs.spec);
  const eval::EvalResult evaluated = eval::evaluate(dataset, inputs.models, inputs.eval_config);
  PointResult result;
  result.key = key;
  result.n = evaluated.grid;
  const eval::LearnerResult& reference = evaluated.learners[inputs.models.size()];
  for (const eval::LearnerResult& learner : evaluated.learners) {
    Curve curve;
    curve.learner = learner.name;
    curve.transformer = learner.is_model;
    // Exact where it applies at every N (to the learner and the reference), else Monte Carlo.
    bool exact = true;
    for (std::size_t j = 0; j < learner.grid.size(); ++j)
      exact = exact && has_exact(learner.grid[j]) && has_exact(reference.grid[j]);
    curve.metric = exact ? "err_exact" : "err";
    for (std::size_t j = 0; j < learner.grid.size(); ++j)
      append_rates(curve, learner.grid[j], reference.grid[j], exact, config.queries);
    result.curves.push_back(std::move(curve));
  }
  return result;
}

// Regime B: the reference trained once on all of S; every model under every policy and k.
PointResult run_regime_b(const BoundsConfig& config, const PointKey& key, const PointInputs& inputs) {
  const data::Dataset dataset = data::Dataset::generate_unnamed(inputs.spec);
  eval::EvalConfig reference_config = inputs.eval_config;
  reference_config.context = {};
  const eval::EvalResult reference_run = eval::evaluate(dataset, {}, reference_config);
  const eval::PrefixResult& reference = reference_run.learners.front().grid.front();
  PointResult result;
  result.key = key;
  result.n = config.k_grid;
  for (const model::ModelSource& source : inputs.models) {
    for (const std::string& policy : config.regime_b_contexts) {
      Curve curve;
      curve.learner = eval::learner_name(source);
      curve.transformer = true;
      curve.context = policy;
      std::vector<eval::PrefixResult> runs;
      bool exact = has_exact(reference);
      eval::EvalConfig learner_config = inputs.eval_config;
      learner_config.heads.clear();
      // retrieve:k orders each query's neighbours once for the whole k grid (the same contexts
      // and bytes as one evaluate() per k, without a search of S per query and k).
      std::vector<eval::EvalResult> retrieved;
      if (policy == "retrieve") retrieved = eval::evaluate_retrieval(dataset, source, learner_config, config.k_grid);
      for (std::size_t i = 0; i < config.k_grid.size(); ++i) {
        eval::EvalResult run;
        if (policy == "retrieve") {
          run = std::move(retrieved[i]);
        } else {
          learner_config.context = eval::parse_context(policy + ":" + std::to_string(config.k_grid[i]));
          run = eval::evaluate(dataset, std::span(&source, 1), learner_config);
        }
        runs.push_back(std::move(run.learners.front().grid.front()));
        exact = exact && has_exact(runs.back());
      }
      curve.metric = exact ? "err_exact" : "err";
      for (const eval::PrefixResult& run : runs)
        append_rates(curve, run, reference, exact, config.queries);
      result.curves.push_back(std::move(curve));
    }
  }
  return result;
}

// Regime H: gd-hinge with the rule's eta(N) and L(N), one construction per N of its grid, and
// the reference on the same prefixes; per task the convergence of the transformer's own w.
PointResult run_regime_h(const BoundsConfig& config, const PointKey& key, const PointInputs& inputs) {
  const data::Dataset dataset = data::Dataset::generate_unnamed(inputs.spec);
  PointResult result;
  result.key = key;
  result.n = config.hinge.n_grid;
  Curve hinge{config.hinge.learner_name(), true, "", "err_exact", {}, {}, {}, {}};
  Curve reference_curve{inputs.eval_config.heads.front().name, false, "", "err_exact", {}, {}, {}, {}};
  std::vector<eval::PrefixResult> hinge_runs, reference_runs;
  bool exact = true;
  for (const std::int64_t n : config.hinge.n_grid) {
    eval::EvalConfig eval_config = inputs.eval_config;
    eval_config.n_grid = {n};
    const model::ModelSource source = model::ModelSource::resolve(config.hinge.model_at(n), key.d, inputs.spec.seed);
    eval::EvalResult run = eval::evaluate(dataset, std::span(&source, 1), eval_config);
    hinge_runs.push_back(std::move(run.learners[0].grid.front()));
    reference_runs.push_back(std::move(run.learners[1].grid.front()));
    exact = exact && has_exact(hinge_runs.back()) && has_exact(reference_runs.back());
  }
  hinge.metric = reference_curve.metric = exact ? "err_exact" : "err";
  const int d = key.d;
  for (std::size_t j = 0; j < hinge_runs.size(); ++j) {
    append_rates(hinge, hinge_runs[j], reference_runs[j], exact, config.queries);
    append_rates(reference_curve, reference_runs[j], reference_runs[j], exact, config.queries);
    // Convergence, from the transformer's w (its probe fit; without it, nothing is known and
    // the point counts as not converged): margins y_i w.x_i over the n context examples and the
    // next GD step eta/n sum_i g_i x_i, g_i = y_i clamp((1 + tau - y_i w.x_i)/tau, 0, 1).
    const std::int64_t n = config.hinge.n_grid[j];
    const double eta = config.hinge.eta_per_n * static_cast<double>(n), tau = config.hinge.tau;
    std::vector<double> fraction(static_cast<std::size_t>(inputs.spec.n_tasks), 0.0);
    std::vector<double> change(fraction.size(), 1.0);
    for (std::size_t t = 0; t < fraction.size() && !hinge_runs[j].weights.empty(); ++t) {
      const std::vector<double>& w = hinge_runs[j].weights[t];
      const auto x = dataset.x(static_cast<std::int64_t>(t));
      const auto y = dataset.y(static_cast<std::int64_t>(t));
      std::vector<double> step(static_cast<std::size_t>(d), 0.0);
      std::int64_t at_margin = 0;
      for (std::int64_t i = 0; i < n; ++i) {
        double score = 0;
        for (int c = 0; c < d; ++c) score += w[static_cast<std::size_t>(c)] * x[static_cast<std::size_t>(i * d + c)];
        const double label = y[static_cast<std::size_t>(i)];
        at_margin += label * score >= 1.0;
        const double g = label * std::clamp((1 + tau - label * score) / tau, 0.0, 1.0);
        for (int c = 0; c < d; ++c) step[static_cast<std::size_t>(c)] += g * x[static_cast<std::size_t>(i * d + c)];
      }
      double step_norm = 0, w_norm = 0;
      for (int c = 0; c < d; ++c) {
        step_norm += step[static_cast<std::size_t>(c)] * step[static_cast<std::size_t>(c)];
        w_norm += w[static_cast<std::size_t>(c)] * w[static_cast<std::size_t>(c)];
      }
      fraction[t] = static_cast<double>(at_margin) / static_cast<double>(n);
      change[t] = w_norm > 0 ? eta / static_cast<double>(n) * std::sqrt(step_norm / w_norm) : 1.0;
    }
    hinge.margin_fraction.push_back(std::move(fraction));
    hinge.step_change.push_back(std::move(change));
  }
  result.curves.push_back(std::move(hinge));
  result.curves.push_back(std::move(reference_curve));
  return result;
}

}  // namespace

PointResult run_point(const BoundsConfig& config, const PointKey& key) {
  const PointInputs inputs = point_inputs(config, key);
  if (key.regime == 'B') return run_regime_b(config, key, inputs);
  if (key.regime == 'H') return run_regime_h(config, key, inputs);
  return run_regime_a(config, key, inputs);
}

// A directory holds one configuration: resuming another would mix runs, and a directory that
// holds no run at all holds the user's own files, which a run would overwrite.
void check_run_directory(const BoundsConfig& config, const fs::path& dir) {
  if (dir.empty()) throw io::IoError("output directory path is empty");
  std::error_code error;
  const fs::file_status status = fs::status(dir, error);
  if (!fs::exists(status)) return;  // created by the run
  if (!fs::is_directory(status)) throw io::IoError("cannot write into " + dir.string() + ": not a directory");
  const fs::path config_path = dir / "config.json";
  if (fs::exists(config_path)) {
    const std::string saved = io::read_text_file(config_path);
    if (saved != config.to_json().dump(2) + "\n") {
      // A config.json of an older format (before "reference", regime B's k* and the hinge grid)
      // is not a different choice of the user's but of the tool's: say so.
      nlohmann::json json;
      try {
        json = nlohmann::json::parse(saved);
      } catch (const nlohmann::json::exception&) {
      }
      if (json.is_object() && json.value("format", "") == "iclbench-bounds-config" &&
          json.value("format_version", 0) != config.to_json()["format_version"].get<int>()) {
        throw io::IoError(dir.string() + " holds a bounds run made by an older version of iclbench (config "
                                         "format_version " + json.value("format_version", nlohmann::json(0)).dump() +
                          "); its points cannot be reused: give another --out directory, or delete this one to "
                          "rerun it");
      }
      throw io::IoError(dir.string() +
                        " holds a bounds run with another configuration (see its config.json); "
                        "use another directory or delete it");
    }
  } else if (!fs::is_empty(dir)) {
    throw io::IoError(dir.string() + " is not empty and holds no bounds run (no config.json); "
                                     "give a new or empty directory");
  }
  // Every output the run writes into DIR, checked now rather than after the work (a directory
  // named report.md was refused only once every point had been computed): each is replaced by
  // renaming a new file onto it, which a directory refuses and which would replace a symbolic
  // link (to a user's file, or /dev/null) by a regular file. Such an entry is not this tool's.
  for (const char* name : {"config.json", "points.csv", "fits.json", "report.md", "err_vs_n.png",
                           "nstar_vs_d.png", "nstar_vs_eps.png", "regime_b.png", "hinge.png", "points"}) {
    const fs::path path = dir / name;
    const fs::file_status entry = fs::symlink_status(path, error);
    if (!fs::exists(entry)) continue;
    const bool want_directory = std::string_view(name) == "points";
    if (fs::is_symlink(entry)) {
      throw io::IoError("cannot write " + path.string() + ": it is a symbolic link; remove it or give another --out");
    }
    if (want_directory ? !fs::is_directory(entry) : !fs::is_regular_file(entry)) {
      throw io::IoError("cannot write " + path.string() + ": " +
                        (want_directory ? "not a directory" : fs::is_directory(entry) ? "it is a directory" : "not a regular file") +
                        "; remove it or give another --out");
    }
  }
}

void check_learners(const BoundsConfig& config) {
  check_learned_models(config);
  for (const PointKey& key : sweep_points(config)) {
    const PointInputs inputs = point_inputs(config, key);
    eval::validate(inputs.eval_config, inputs.spec, inputs.models);
  }
}

// A model file (a learned, garg-gpt2 layout) can do less than the constructed learners: one d,
// prompts of at most its positions, no ensemble:k (eval refuses it for interleaved prompts).
// ParameterError carries the config's field name, which the CLI turns into the flag when it was
// given; the hint in the text names the flag either way (a default grid was not given).
void check_learned_models(const BoundsConfig& config) {
  for (const std::string& text : config.models) {
    const std::optional<model::ModelConfig> file = model::model_file_config(text);
    if (!file) continue;
    std::vector<std::string> problems, fixes;  // all of them in one line: one corrected command
    if (file->input_dim > 0) {
      std::string others;
      for (int d : config.d_grid) {
        if (d != file->input_dim) others += (others.empty() ? "" : ", ") + std::to_string(d);
      }
      if (!others.empty()) {
        problems.push_back("d_grid holds " + others);
        fixes.push_back("--d-grid " + std::to_string(file->input_dim));
      }
    }
    const std::int64_t k_max = file->read_in && file->positions > 0
                                   ? model::interleaved_max_context(file->positions)
                                   : std::numeric_limits<std::int64_t>::max();
    if (file->read_in && !config.k_grid.empty()) {
      std::string kept;
      bool ensemble = false;
      for (const std::string& policy : config.regime_b_contexts) {
        if (policy == "ensemble") ensemble = true;
        else kept += (kept.empty() ? "" : ",") + policy;
      }
      if (ensemble) {
        problems.push_back("the regime B contexts hold ensemble (ensemble:k needs a constructed-layout model)");
        fixes.push_back("--context " + (kept.empty() ? std::string("random,retrieve") : kept));
      }
    }
    if (!config.n_grid.empty() && config.n_grid.back() > k_max) {
      problems.push_back("n_grid reaches " + std::to_string(config.n_grid.back()));
      fixes.push_back("--n-grid");
    }
    if (!config.k_grid.empty() && config.k_grid.back() > k_max) {
      problems.push_back("k_grid reaches " + std::to_string(config.k_grid.back()));
      fixes.push_back("--k-grid");
    }
    if (problems.empty()) continue;
    std::string line = text + " (d = " + std::to_string(file->input_dim);
    if (k_max != std::numeric_limits<std::int64_t>::max()) {
      line += ", " + std::to_string(file->positions) + " positions: at most " + std::to_string(k_max) +
              " context pairs before a query, interleaved prompts";
    }
    line += ") cannot run this sweep:";
    for (std::size_t i = 0; i < problems.size(); ++i) line += (i ? "; " : " ") + problems[i];
    line += "; give";
    for (const std::string& fix : fixes) {
      line += " " + fix;
      if (fix == "--n-grid" || fix == "--k-grid") line += " (entries <= " + std::to_string(k_max) + ")";
    }
    throw util::ParameterError("models", line);
  }
}

std::unique_ptr<io::DirectoryLock> claim_directory(const BoundsConfig& config, const fs::path& dir) {
  check_learners(config);
  io::create_output_directory(dir);
  auto lock = std::make_unique<io::DirectoryLock>(dir);
  prepare_directory(config, dir);
  return lock;
}

std::vector<PointResult> run_sweep(const BoundsConfig& config, const fs::path& dir,
                                   const util::ProgressCallback& progress, const PointRunner& runner) {
  const std::vector<PointKey> keys = sweep_points(config);
  check_learners(config);
  prepare_directory(config, dir);
  std::vector<std::optional<PointResult>> found(keys.size());
  std::vector<PointKey> pending;
  std::vector<std::size_t> pending_index;  // where each pending point goes in `found`
  std::int64_t done = 0;
  auto save = [&](std::size_t index, PointResult result, bool write) {
    if (write) {
      const fs::path path = dir / "points" / (keys[index].id() + ".json");
      io::write_file_atomically(path, result.to_json().dump() + "\n", io::Overwrite::kAllow);
    }
    found[index] = std::move(result);
    if (progress) progress(++done, static_cast<std::int64_t>(keys.size()));
  };
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const fs::path path = dir / "points" / (keys[i].id() + ".json");
    if (std::optional<PointResult> saved = read_saved_point(path, config, keys[i])) {
      save(i, std::move(*saved), false);
    } else {
      pending.push_back(keys[i]);
      pending_index.push_back(i);
    }
  }
  auto done_pending = [&](std::size_t i, PointResult result) { save(pending_index.at(i), std::move(result), true); };
  if (runner) {
    runner(config, pending, done_pending);
  } else {
    for (std::size_t i = 0; i < pending.size(); ++i) done_pending(i, run_point(config, pending[i]));
  }
  std::vector<PointResult> points;
  for (std::optional<PointResult>& point : found) {
    if (!point) throw std::logic_error("bounds: the point runner left a point out");
    points.push_back(std::move(*point));
  }
  return points;
}

}  // namespace iclbench::bounds
