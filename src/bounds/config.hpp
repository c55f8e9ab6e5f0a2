#pragma once
// The configuration of a bounds sweep: its grids, learners and sizes, as a JSON file (a run
// directory's config.json, or `iclbench bounds --config FILE`) and as presets.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace iclbench::bounds {

// Field names are the keys of the JSON file, and the names errors give the parameters.
struct BoundsConfig {
  std::string preset = "custom";
  std::string family = "gaussian";
  std::vector<int> d_grid;
  std::vector<std::int64_t> n_grid;
  std::vector<double> eps_grid;
  std::vector<std::int64_t> k_grid;         // regime B context sizes; empty = regime A only
  std::string regime_b_context = "random";  // random | retrieve
  std::vector<std::string> models;
  std::vector<std::string> heads;  // the first is the reference for disagreement
  std::int64_t tasks = 100;
  std::int64_t queries = 256;
  double delta = 0.05;
  int bootstrap = 500;
  std::uint64_t seed = 0;

  nlohmann::ordered_json to_json() const;
  // Throws std::invalid_argument (util::ParameterError for a bad field).
  static BoundsConfig from_json(const nlohmann::json& json);
  // Throws util::ParameterError naming the field, or heads::HeadError.
  void validate() const;
};

// "quick" or "full"; throws util::ParameterError ("preset") for any other name.
BoundsConfig preset_config(const std::string& name);

}  // namespace iclbench::bounds
