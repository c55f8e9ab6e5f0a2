// libFuzzer target: any text as a `bounds` grid/preset JSON (--config FILE).

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "bounds/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const nlohmann::json json = nlohmann::json::parse(data, data + size, nullptr, false);
  if (json.is_discarded()) return 0;
  try {
    const iclbench::bounds::BoundsConfig config = iclbench::bounds::BoundsConfig::from_json(json);
    (void)iclbench::bounds::BoundsConfig::from_json(config.to_json());
  } catch (const std::invalid_argument&) {
  }
  return 0;
}
