#include "model/resolve.hpp"

#include <filesystem>

namespace iclbench::model {

ModelSource ModelSource::resolve(const std::string& text, int input_dim, std::uint64_t seed) {
  ModelSource source;
  source.text_ = text;
  source.input_dim_ = input_dim;
  source.seed_ = seed;
  const bool is_file = text.ends_with(".safetensors") || text.find('/') != std::string::npos ||
                       std::filesystem::is_regular_file(text);
  if (!is_file) {
    source.recipe_ = parse_construction(text);
    source.config_ = construction_config(*source.recipe_, input_dim);
    return source;
  }
  source.config_ = read_model_config(io::SafetensorsReader(text));
  if (source.config_.input_dim > 0 && source.config_.input_dim != input_dim) {
    throw SpecError("model " + text +
                    " was built for d = " + std::to_string(source.config_.input_dim) +
                    ", but the data has d = " + std::to_string(input_dim));
  }
  return source;
}

Model ModelSource::build() const {
  if (recipe_) return construct(*recipe_, input_dim_, seed_);
  return load_model(text_);
}

}  // namespace iclbench::model
