#include "bounds/distribute.hpp"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>

#include "io/atomic_file.hpp"
#include "io/safetensors.hpp"

namespace iclbench::bounds {
namespace {

// What a worker needs: the config (as its config.json) and the pending points, in order.
std::string sweep_payload(const BoundsConfig& config, const std::vector<PointKey>& pending) {
  nlohmann::ordered_json keys = nlohmann::ordered_json::array();
  for (const PointKey& key : pending) keys.push_back({std::string(1, key.regime), key.d, key.k});
  return nlohmann::ordered_json{{"config", config.to_json()}, {"pending", keys}}.dump();
}

}  // namespace

PointRunner cluster_runner(runtime::Cluster& cluster) {
  return [&cluster](const BoundsConfig& config, const std::vector<PointKey>& pending,
                    const std::function<void(std::size_t, PointResult)>& done) {
    std::vector<double> costs;
    for (const PointKey& key : pending) costs.push_back(estimate_point_seconds(config, key, 1));
    cluster.run_units(
        sweep_payload(config, pending), costs,
        [&](std::size_t unit) { return run_point(config, pending[unit]).to_json().dump(); },
        [&](std::size_t unit, const std::string& bytes) {
          // The same text run_sweep would write: the JSON of doubles round-trips exactly (as a
          // resumed run's points do).
          PointResult result = PointResult::from_json(nlohmann::json::parse(bytes));
          const PointKey& key = pending.at(unit);
          if (result.key.regime != key.regime || result.key.d != key.d || result.key.k != key.k) {
            throw std::runtime_error("a rank sent point " + result.key.id() + " for " + key.id());
          }
          // As strict as a point read back from DIR: a host whose model file at the same path
          // holds other weights computes another learner, and must not pass silently.
          // In one process the point was computed here, so a mismatch is iclbench's own error.
          if (const std::optional<std::string> mismatch = point_mismatch(result, config, key)) {
            if (cluster.size() == 1) {
              throw std::logic_error("the result computed for point " + key.id() +
                                     " does not match its configuration (" + *mismatch + ")");
            }
            throw std::invalid_argument("the result for point " + key.id() + " from rank 0 or another rank does not "
                                        "match this configuration (" + *mismatch +
                                        "): are the model files the same on every host?");
          }
          done(unit, std::move(result));
        });
  };
}

int serve_points(runtime::Cluster& cluster) {
  const std::optional<std::string> payload = cluster.wait_start();
  if (!payload) return *cluster.exit_code();
  const nlohmann::json sweep = nlohmann::json::parse(*payload);
  const BoundsConfig config = BoundsConfig::from_json(sweep.at("config"));
  std::vector<PointKey> pending;
  for (const auto& key : sweep.at("pending")) {
    pending.push_back({key.at(0).get<std::string>().at(0), key.at(1).get<int>(), key.at(2).get<std::int64_t>()});
  }
  return cluster.serve([&](std::size_t unit) {
    // A worker's input errors (a model file missing or damaged on its host) end the job with
    // exit 2, as they would in one process: Cluster::serve passes std::invalid_argument on as such.
    try {
      return run_point(config, pending.at(unit)).to_json().dump();
    } catch (const io::IoError& error) {
      throw std::invalid_argument(error.what());
    } catch (const io::FormatError& error) {
      throw std::invalid_argument(error.what());
    } catch (const std::filesystem::filesystem_error& error) {
      throw std::invalid_argument(error.what());
    }
  });
}

}  // namespace iclbench::bounds
