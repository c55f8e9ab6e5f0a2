#include "model/resolve.hpp"

#include <filesystem>

namespace iclbench::model {

namespace {

// A path when it looks like one or names anything that exists (lstat: a FIFO, a directory or a
// dangling symlink too), so that reading it gives the file's own error ("not a regular file")
// rather than "unknown model" from the recipe parser.
bool names_model_file(const std::string& text) {
  if (text.ends_with(".safetensors") || text.find('/') != std::string::npos) return true;
  std::error_code error;
  return !text.empty() && std::filesystem::symlink_status(text, error).type() !=
                              std::filesystem::file_type::not_found &&
         !error;
}

}  // namespace

std::optional<ModelConfig> model_file_config(const std::string& text) {
  if (!names_model_file(text)) return std::nullopt;
  return read_model_config(io::SafetensorsReader(text));
}

ModelSource ModelSource::resolve(const std::string& text, int input_dim, std::uint64_t seed) {
  ModelSource source;
  source.text_ = text;
  source.input_dim_ = input_dim;
  source.seed_ = seed;
  if (!names_model_file(text)) {
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
