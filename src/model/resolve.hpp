#pragma once
// Models named on the command line.

#include <cstdint>
#include <string>

#include "model/weights.hpp"

namespace iclbench::model {

// `text` is a model file (a path that exists, or that ends in .safetensors) or a recipe string
// (a construction such as "gd-hinge:L=100,eta=1,tau=0.5", or "encoder:D=64,..."). Constructed
// learners are built for input dimension `input_dim`; a file's model must have been built for
// it (or for none). Throws SpecError, ConfigError, io::FormatError or io::IoError.
Model resolve_model(const std::string& text, int input_dim, std::uint64_t seed);

}  // namespace iclbench::model
