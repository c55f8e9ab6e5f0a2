// libFuzzer target: any text as a ModelConfig JSON.

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>

#include "model/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const nlohmann::json json = nlohmann::json::parse(data, data + size, nullptr, false);
  if (json.is_discarded()) return 0;
  try {
    const iclbench::model::ModelConfig config = iclbench::model::config_from_json(json);
    // A valid config must survive its own round trip.
    if (!(iclbench::model::config_from_json(iclbench::model::to_json(config)) == config)) __builtin_trap();
    (void)config.parameter_count();
    (void)config.forward_flops(100, 50);
  } catch (const iclbench::model::ConfigError&) {
  }
  return 0;
}
