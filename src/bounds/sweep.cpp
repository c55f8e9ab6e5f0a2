#include "bounds/sweep.hpp"

#include <algorithm>
#include <fstream>
#include <optional>

#include "data_gen/dataset.hpp"
#include "eval/evaluate.hpp"
#include "heads/heads.hpp"
#include "io/atomic_file.hpp"
#include "model/resolve.hpp"

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
  for (const auto& head : config.heads) joined += (joined.empty() ? "" : ",") + head;
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
  eval_config.seed = spec.seed;
  // The fewest resamples eval takes: its summaries are not used, the analysis bootstraps itself.
  eval_config.bootstrap = eval::kMinResamples;
  return inputs;
}

// A directory holds one configuration: resuming another would mix runs.
void prepare_directory(const BoundsConfig& config, const fs::path& dir) {
  fs::create_directories(dir / "points");
  const fs::path config_path = dir / "config.json";
  const std::string config_text = config.to_json().dump(2) + "\n";
  if (fs::exists(config_path)) {
    std::ifstream in(config_path);
    const std::string existing((std::istreambuf_iterator<char>(in)), {});
    if (existing != config_text) {
      throw io::IoError(dir.string() +
                        " holds a bounds run with another configuration (see its config.json); "
                        "use another directory or delete it");
    }
  } else {
    io::write_file_atomically(config_path, config_text, io::Overwrite::kRefuse);
  }
  // Temporary files of a killed run.
  for (const auto& entry : fs::directory_iterator(dir / "points")) {
    if (entry.path().filename().string().starts_with(".")) fs::remove(entry.path());
  }
}

// A point saved by an earlier run, if it is there and readable (else it is computed again).
std::optional<PointResult> read_saved_point(const fs::path& path) {
  if (!fs::exists(path)) return std::nullopt;
  try {
    std::ifstream in(path);
    return PointResult::from_json(nlohmann::json::parse(in));
  } catch (const std::exception&) {
    return std::nullopt;
  }
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

std::vector<PointResult> run_sweep(const BoundsConfig& config, const fs::path& dir,
                                   const util::ProgressCallback& progress) {
  prepare_directory(config, dir);
  const std::vector<PointKey> keys = sweep_points(config);
  std::vector<PointResult> points;
  std::int64_t done = 0;
  for (const PointKey& key : keys) {
    const fs::path path = dir / "points" / (key.id() + ".json");
    std::optional<PointResult> result = read_saved_point(path);
    if (!result) {
      result = run_point(config, key);
      io::write_file_atomically(path, result->to_json().dump() + "\n", io::Overwrite::kAllow);
    }
    points.push_back(std::move(*result));
    if (progress) progress(++done, static_cast<std::int64_t>(keys.size()));
  }
  return points;
}

}  // namespace iclbench::bounds
