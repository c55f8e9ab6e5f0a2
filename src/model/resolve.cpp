#include "model/resolve.hpp"

#include <filesystem>

#include "model/constructions.hpp"

namespace iclbench::model {

Model resolve_model(const std::string& text, int input_dim, std::uint64_t seed) {
  const bool is_file = text.ends_with(".safetensors") || text.find('/') != std::string::npos ||
                       std::filesystem::is_regular_file(text);
  if (!is_file) return construct(parse_construction(text), input_dim, seed);
  Model model = load_model(text);
  if (model.config.input_dim > 0 && model.config.input_dim != input_dim) {
    throw SpecError("model " + text + " was built for d = " +
                    std::to_string(model.config.input_dim) + ", but the data has d = " +
                    std::to_string(input_dim));
  }
  return model;
}

}  // namespace iclbench::model
