#include "bounds/sweep.hpp"

#include <algorithm>
#include <cstdio>
#include <optional>

#include "data_gen/dataset.hpp"
#include "eval/evaluate.hpp"
#include "heads/heads.hpp"
#include "io/atomic_file.hpp"
#include "io/input_file.hpp"
#include "io/output_directory.hpp"
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

PointInputs point_inputs(const BoundsConfig& config, const PointKey& key) {
  PointInputs inputs;
  data::TaskSpec& spec = inputs.spec;
  spec.family = *data::parse_family(config.family);
  spec.dim = key.d;
  spec.n_examples = config.n_grid.back();
  spec.n_queries = config.queries;
  spec.n_tasks = config.tasks;
  spec.seed = point_seed(config.seed, key);
  spec.scale = data::default_scale(spec.family);
  if (spec.family == data::Family::kSkewed) spec.kappa = 10.0;
  for (const std::string& text : config.models) {
    inputs.models.push_back(model::ModelSource::resolve(text, key.d, spec.seed));
  }
  eval::EvalConfig& eval_config = inputs.eval_config;
  std::string joined;
  for (const auto& head : config.evaluated_heads()) joined += (joined.empty() ? "" : ",") + head;
  eval_config.heads = heads::parse_heads(joined);
  eval_config.n_grid = config.n_grid;
  if (key.regime == 'B') {
    // Heads train on all N whatever k: regime A already has their curves, so only the
    // reference (for the disagreement) runs here.
    eval_config.heads.resize(1);
    // Only N >= k: below it the context cannot hold k examples.
    eval_config.n_grid.erase(std::remove_if(eval_config.n_grid.begin(), eval_config.n_grid.end(),
                                            [&](std::int64_t n) { return n < key.k; }),
                             eval_config.n_grid.end());
    eval_config.context =
        eval::parse_context(config.regime_b_context + ":" + std::to_string(key.k));
  }
  eval_config.delta = config.delta;
  eval_config.dense = config.dense;
  eval_config.seed = spec.seed;
  // The fewest resamples eval takes: its summaries are not used, the analysis bootstraps itself.
  eval_config.bootstrap = eval::kMinResamples;
  return inputs;
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
}

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
  if (point.n != inputs.eval_config.n_grid) return "its n grid differs from the config's";
  const std::size_t learners = inputs.models.size() + inputs.eval_config.heads.size();
  if (point.curves.size() != learners) {
    return "it has " + std::to_string(point.curves.size()) + " curves, not " + std::to_string(learners);
  }
  const auto tasks = static_cast<std::size_t>(config.tasks);
  for (std::size_t l = 0; l < learners; ++l) {
    const Curve& curve = point.curves[l];
    const bool transformer = l < inputs.models.size();
    const std::string expected = transformer ? eval::learner_name(inputs.models[l])
                                              : inputs.eval_config.heads[l - inputs.models.size()].name;
    if (curve.transformer != transformer || curve.learner != expected) {
      return "curve " + std::to_string(l) + " is not the config's learner";
    }
    if (curve.metric != "err" && curve.metric != "err_exact") return "curve " + std::to_string(l) + " has an unknown metric";
    for (const auto* table : {&curve.err, &curve.dis}) {
      if (table->size() != point.n.size()) return "curve " + std::to_string(l) + " has arrays of the wrong length";
      for (const std::vector<double>& per_task : *table) {
        if (per_task.size() != tasks) return "curve " + std::to_string(l) + " has arrays of the wrong length";
        for (const double rate : per_task) {
          if (!(rate >= 0.0 && rate <= 1.0)) return "curve " + std::to_string(l) + " has a value outside [0, 1]";
        }
      }
    }
  }
  return std::nullopt;
}

// A point saved by an earlier run, if it is there and is the point `config` asks for; otherwise
// nothing, and a file that was there but did not match gets one notice line on stderr (it is
// computed again and replaced).
std::optional<PointResult> read_saved_point(const fs::path& path, const BoundsConfig& config,
                                            const PointKey& key) {
  if (!fs::exists(path)) return std::nullopt;
  std::string problem;
  try {
    PointResult point = PointResult::from_json(nlohmann::json::parse(io::read_text_file(path)));
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

std::string PointKey::id() const {
  return std::string(1, regime) + "-d" + std::to_string(d) +
         (regime == 'B' ? "-k" + std::to_string(k) : "");
}

std::vector<PointKey> sweep_points(const BoundsConfig& config) {
  std::vector<PointKey> keys;
  for (int d : config.d_grid) keys.push_back({'A', d, 0});
  for (int d : config.d_grid)
    for (auto k : config.k_grid) keys.push_back({'B', d, k});
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
    curves_json.push_back({{"learner", curve.learner},
                           {"transformer", curve.transformer},
                           {"metric", curve.metric},
                           {"err", curve.err},
                           {"dis", curve.dis}});
  }
  return {{"format", "iclbench-bounds-point"},
          {"format_version", 1},
          {"regime", std::string(1, key.regime)},
          {"d", key.d},
          {"k", key.k},
          {"n", n},
          {"curves", curves_json}};
}

PointResult PointResult::from_json(const nlohmann::json& json) {
  if (json.value("format", "") != "iclbench-bounds-point" || json.value("format_version", 0) != 1) {
    throw std::invalid_argument("not an iclbench bounds point (or another format version)");
  }
  PointResult result;
  result.key = {json.at("regime").get<std::string>().at(0), json.at("d").get<int>(),
                json.at("k").get<std::int64_t>()};
  result.n = json.at("n").get<std::vector<std::int64_t>>();
  for (const auto& entry : json.at("curves")) {
    Curve curve;
    curve.learner = entry.at("learner").get<std::string>();
    curve.transformer = entry.at("transformer").get<bool>();
    curve.metric = entry.at("metric").get<std::string>();
    curve.err = entry.at("err").get<std::vector<std::vector<double>>>();
    curve.dis = entry.at("dis").get<std::vector<std::vector<double>>>();
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
    peak = std::max(peak, inputs.spec.dataset_bytes() +
                              eval::estimate_memory_bytes(inputs.spec, inputs.models,
                                                          inputs.eval_config, threads));
  }
  return peak;
}

double estimate_seconds(const BoundsConfig& config, int threads) {
  // estimate_point_seconds(): calibrated on this project's reference machine (2 vCPU AMD EPYC,
  // quiet) from the quick preset's own run (docs/DESIGN.md, "Bounds: cost model"): per task and
  // prefix N,
  //   transformers: forward FLOPs / kFlopsPerSecond (the engine on constructed models),
  //   svm-hard: kErmSeconds (working-set solves, nearly independent of N) + N d kScanSeconds,
  //   other LIBLINEAR heads: N d kLiblinearSeconds, the rest: N d kScanSeconds.
  // The sum of estimate_point_seconds() over the points.
  double seconds = 0;
  for (const PointKey& key : sweep_points(config)) seconds += estimate_point_seconds(config, key, 1);
  return seconds / std::max(1, threads);
}

double estimate_point_seconds(const BoundsConfig& config, const PointKey& key, int threads) {
  constexpr double kFlopsPerSecond = 2e9, kErmSeconds = 4e-3, kLiblinearSeconds = 5e-8,
                   kScanSeconds = 2e-9;
  double seconds = 0;
  {
    const PointInputs inputs = point_inputs(config, key);
    const auto tasks = static_cast<double>(config.tasks);
    for (const std::int64_t n : inputs.eval_config.n_grid) {
      const double context = key.regime == 'B' ? static_cast<double>(key.k) : static_cast<double>(n);
      const double nd = static_cast<double>(n) * key.d;
      for (const model::ModelSource& model : inputs.models) {
        seconds += tasks *
                   model.config().forward_flops(static_cast<std::int64_t>(context) + config.queries,
                                                static_cast<std::int64_t>(context)) /
                   kFlopsPerSecond;
      }
      for (const heads::HeadSpec& head : inputs.eval_config.heads) {
        if (head.kind == heads::HeadKind::kSvmHard) {
          seconds += tasks * (kErmSeconds + nd * kScanSeconds);
        } else if (head.kind == heads::HeadKind::kLogistic || head.kind == heads::HeadKind::kSvm) {
          seconds += tasks * nd * kLiblinearSeconds;
        } else {
          seconds += tasks * nd * kScanSeconds;
        }
      }
    }
  }
  return seconds / std::max(1, threads);
}

PointResult run_point(const BoundsConfig& config, const PointKey& key) {
  const PointInputs inputs = point_inputs(config, key);
  const data::Dataset dataset = data::Dataset::generate_unnamed(inputs.spec);
  const eval::EvalResult evaluated = eval::evaluate(dataset, inputs.models, inputs.eval_config);

  PointResult result;
  result.key = key;
  result.n = evaluated.grid;
  const std::string reference = inputs.eval_config.heads.front().name;
  for (const eval::LearnerResult& learner : evaluated.learners) {
    Curve curve;
    curve.learner = learner.name;
    curve.transformer = learner.is_model;
    // The exact error where it applies at every N, else Monte Carlo.
    const bool exact =
        std::all_of(learner.grid.begin(), learner.grid.end(),
                    [](const eval::PrefixResult& p) { return p.exact_err.has_value(); });
    curve.metric = exact ? "err_exact" : "err";
    for (const eval::PrefixResult& point : learner.grid) {
      curve.err.push_back(exact ? point.exact_err->per_task : point.err.per_task);
      for (const auto& [head, metric] : point.dis)
        if (head == reference) curve.dis.push_back(metric.per_task);
    }
    result.curves.push_back(std::move(curve));
  }
  return result;
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
    if (io::read_text_file(config_path) != config.to_json().dump(2) + "\n") {
      throw io::IoError(dir.string() +
                        " holds a bounds run with another configuration (see its config.json); "
                        "use another directory or delete it");
    }
  } else if (!fs::is_empty(dir)) {
    throw io::IoError(dir.string() + " is not empty and holds no bounds run (no config.json); "
                                     "give a new or empty directory");
  }
}

std::unique_ptr<io::DirectoryLock> claim_directory(const BoundsConfig& config, const fs::path& dir) {
  io::create_output_directory(dir);
  auto lock = std::make_unique<io::DirectoryLock>(dir);
  prepare_directory(config, dir);
  return lock;
}

std::vector<PointResult> run_sweep(const BoundsConfig& config, const fs::path& dir,
                                   const util::ProgressCallback& progress, const PointRunner& runner) {
  const std::vector<PointKey> keys = sweep_points(config);
  // Every point's learners must be able to read its task set (a model file's d, a learned
  // model's positions against the n grid) before a directory or a point is written.
  for (const PointKey& key : keys) {
    const PointInputs inputs = point_inputs(config, key);
    eval::validate(inputs.eval_config, inputs.spec, inputs.models);
  }
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
