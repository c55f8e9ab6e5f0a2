#pragma once
// Models named on the command line or in a bounds config.

#include <cstdint>
#include <optional>
#include <string>

#include "model/constructions.hpp"
#include "model/weights.hpp"

namespace iclbench::model {

// A model file (a path that exists, or that ends in .safetensors or holds a '/') or a recipe (a
// construction such as "gd-hinge:L=100,eta=1,tau=0.5", or "encoder:D=64,..."), resolved once for
// inputs of dimension d. The text is parsed and checked and the config known at once (from the
// recipe, or from the file's header); the weights are built or read only by build(), so that a
// run can be sized, and refused, before it allocates them.
class ModelSource {
 public:
  // Constructed learners are built for `input_dim`; a file's model must have been built for it
  // (or for none). An encoder's random weights come from `seed`. Throws SpecError,
  // util::ParameterError ("d"), ConfigError, io::FormatError or io::IoError.
  static ModelSource resolve(const std::string& text, int input_dim, std::uint64_t seed);

  const std::string& text() const { return text_; }  // as given
  const ModelConfig& config() const { return config_; }
  // The config and its weights (a file is read again, and every tensor checked).
  Model build() const;

 private:
  std::string text_;
  std::optional<ConstructionSpec> recipe_;  // empty for a file
  int input_dim_ = 0;
  std::uint64_t seed_ = 0;
  ModelConfig config_;
};

// The header config of a model file named by `text` (as resolve() tells a file from a recipe),
// whatever its d, so that a caller can check a whole grid against it before any work; nullopt
// for a recipe. Throws io::FormatError or io::IoError as resolve() does.
std::optional<ModelConfig> model_file_config(const std::string& text);

}  // namespace iclbench::model
