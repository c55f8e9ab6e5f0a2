// libFuzzer target: any text as a model spec string ("gd-hinge:L=500,eta=1,tau=0.5").

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "model/constructions.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace iclbench::model;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const ConstructionSpec spec = parse_construction(text);
    // The canonical text parses to the same spec.
    if (parse_construction(spec.text).text != spec.text) __builtin_trap();
    // Build small models only: the weights' size is the spec's business, not the parser's. An
    // encoder layer holds 4 D^2 attention and 2 D F MLP weights (D = 10208, F = 1 was 400 MB and
    // timed out when only D F was bounded).
    const double encoder_weights = static_cast<double>(spec.layers) * spec.width *
                                   (4.0 * spec.width + 2.0 * spec.ffn);
    if (spec.kind != ConstructionKind::kEncoder || encoder_weights < 1e6) {
      (void)construct(spec, 3, 1);
    }
  } catch (const SpecError&) {
  }
  return 0;
}
