#include "bounds/config.hpp"

#include <algorithm>
#include <string>

#include "data_gen/task_generator.hpp"
#include "eval/metrics.hpp"
#include "heads/heads.hpp"
#include "io/strict_json.hpp"
#include "util/errors.hpp"
#include "util/text.hpp"

// The sweep's configuration: JSON round trip, validation and presets. Separate from the sweep
// so that the parser can be fuzzed on its own.

namespace iclbench::bounds {
namespace {

template <typename T>
std::vector<T> read_list(const nlohmann::json& json, const char* key) {
  util::require(json.contains(key), key, "is missing");
  util::require(json.at(key).is_array(), key, "must be a list");
  return json.at(key).get<std::vector<T>>();
}

}  // namespace

nlohmann::ordered_json BoundsConfig::to_json() const {
  return {{"format", "iclbench-bounds-config"}, {"format_version", 1}, {"preset", preset},
          {"family", family},     {"d_grid", d_grid},     {"n_grid", n_grid},
          {"eps_grid", eps_grid}, {"k_grid", k_grid},     {"regime_b_context", regime_b_context},
          {"models", models},     {"heads", heads},       {"tasks", tasks},
          {"queries", queries},   {"delta", delta},       {"bootstrap", bootstrap},
          {"seed", seed}};
}

BoundsConfig BoundsConfig::from_json(const nlohmann::json& json) {
  if (!json.is_object()) throw std::invalid_argument("bounds config is not a JSON object");
  // Every key is known and every count an integer: a typo or "tasks": 10.9 is refused, not run
  // as the default or as 10.
  io::require_known_keys(json, {"format", "format_version", "preset", "family", "d_grid", "n_grid",
                                "eps_grid", "k_grid", "regime_b_context", "models", "heads", "tasks",
                                "queries", "delta", "bootstrap", "seed"});
  BoundsConfig config;
  try {
    config.preset = json.value("preset", std::string("custom"));
    config.family = json.value("family", std::string("gaussian"));
    config.d_grid = io::integer_list<int>(json, "d_grid");
    config.n_grid = io::integer_list<std::int64_t>(json, "n_grid");
    config.eps_grid = read_list<double>(json, "eps_grid");
    config.k_grid = json.contains("k_grid") ? io::integer_list<std::int64_t>(json, "k_grid") : std::vector<std::int64_t>{};
    config.regime_b_context = json.value("regime_b_context", std::string("random"));
    config.models = read_list<std::string>(json, "models");
    config.heads = read_list<std::string>(json, "heads");
    config.tasks = io::integer_at<std::int64_t>(json, "tasks", 100);
    config.queries = io::integer_at<std::int64_t>(json, "queries", 256);
    config.delta = json.value("delta", 0.05);
    config.bootstrap = io::integer_at<int>(json, "bootstrap", 500);
    config.seed = io::integer_at<std::uint64_t>(json, "seed", 0);
  } catch (const nlohmann::json::exception& error) {
    throw std::invalid_argument(std::string("bounds config: ") + error.what());
  }
  config.validate();
  return config;
}

void BoundsConfig::validate() const {
  using util::require;
  require(!d_grid.empty(), "d_grid", "must not be empty");
  require(!n_grid.empty(), "n_grid", "must not be empty");
  require(!eps_grid.empty(), "eps_grid", "must not be empty");
  require(std::is_sorted(n_grid.begin(), n_grid.end()) && std::adjacent_find(n_grid.begin(), n_grid.end()) == n_grid.end(),
          "n_grid", "must be strictly increasing");
  for (int d : d_grid) {
    require(d >= 2 && d <= 4096, "d_grid", "entries must be in [2, 4096], got " + std::to_string(d));
  }
  for (auto n : n_grid) {
    require(n >= 1 && n <= 1'000'000, "n_grid", "entries must be in [1, 10^6], got " + std::to_string(n));
  }
  for (double eps : eps_grid) {
    require(eps > 0 && eps < 0.5, "eps_grid", "entries must be in (0, 0.5), got " + util::format_number(eps));
  }
  for (auto k : k_grid) {
    require(k >= 1 && k <= n_grid.back(), "k_grid",
            "entries must be in [1, the largest N], got " + std::to_string(k));
  }
  require(regime_b_context == "random" || regime_b_context == "retrieve", "regime_b_context",
          "must be random or retrieve, got '" + regime_b_context + "'");
  require(!heads.empty(), "heads", "must name at least the reference head (the first)");
  require(tasks >= 10 && tasks <= 100000, "tasks", "must be in [10, 10^5], got " + std::to_string(tasks));
  require(queries >= 1 && queries <= 1'000'000, "queries",
          "must be in [1, 10^6], got " + std::to_string(queries));
  eval::check_delta(delta);
  eval::check_resamples(bootstrap);
  require(data::parse_family(family).has_value(), "family",
          "'" + family + "' is unknown; choose one of " + data::family_names());
  heads::parse_heads([&] {
    std::string joined;
    for (const auto& head : heads) joined += (joined.empty() ? "" : ",") + head;
    return joined;
  }());
}

BoundsConfig preset_config(const std::string& name) {
  BoundsConfig config;
  config.preset = name;
  config.heads = {"logistic", "svm", "avg"};
  if (name == "quick") {
    // <= 3 minutes on 2 vCPUs, and still two clearly different eps-slopes: the averaging
    // estimator (gd-ls:L=1) against hinge GD, an ERM-like learner.
    config.d_grid = {4, 8, 16};
    config.n_grid = {8, 16, 32, 64, 128, 256, 512, 1024};
    config.eps_grid = {0.3, 0.2, 0.15, 0.1};
    config.k_grid = {16, 64};
    config.models = {"gd-ls:L=1", "gd-hinge:L=500,eta=2,tau=0.5"};
    config.tasks = 100;
    config.queries = 256;
    config.bootstrap = 500;
  } else if (name == "full") {
    config.d_grid = {4, 8, 16, 32, 64};
    config.n_grid = {8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384};
    config.eps_grid = {0.3, 0.2, 0.15, 0.1, 0.07, 0.05, 0.03};
    config.k_grid = {16, 64, 256};
    config.models = {"gd-ls:L=1", "gd-hinge:L=2000,eta=2,tau=0.5", "gd-logistic:L=2000,eta=2,K=16,R=8"};
    config.heads = {"logistic", "svm", "ls", "avg", "perceptron"};
    config.tasks = 500;
    config.queries = 1024;
    config.bootstrap = 1000;
  } else {
    throw util::ParameterError("preset", "'" + name + "' is unknown (quick or full)");
  }
  return config;
}

}  // namespace iclbench::bounds
