#pragma once
// Weights of a ModelConfig, and model files (safetensors with the config as JSON in
// __metadata__, so that a model trained elsewhere can be exported and run here).
//
// Matrices are row-major [in, out]: a layer computes x W + b.

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "io/atomic_file.hpp"
#include "io/safetensors.hpp"
#include "model/config.hpp"

namespace iclbench::model {

struct LayerWeights {
  std::vector<float> attention_norm_gamma, attention_norm_beta;  // [D]
  std::vector<float> wq, bq;  // [D, H*dk], [H*dk]
  std::vector<float> wk, bk;  // [D, H*dk], [H*dk]
  std::vector<float> wv, bv;  // [D, H*dv], [H*dv]
  std::vector<float> wo, bo;  // [H*dv, D], [D]
  std::vector<float> mlp_norm_gamma, mlp_norm_beta;  // [D]
  std::vector<float> w1, b1;  // [D, F], [F]
  std::vector<float> w2, b2;  // [F, D], [D]
};

struct Weights {
  std::vector<LayerWeights> layers;
};

// One named tensor of a layer, as it is stored in a model file.
struct WeightTensor {
  std::string name;  // "layers.3.attention.wq"
  std::vector<std::int64_t> shape;
  std::vector<float>* values;
};
// The tensors a layer of this config has, in file order (absent parts have none).
std::vector<WeightTensor> weight_tensors(const ModelConfig& config, Weights& weights);

// Every tensor allocated with its shape: zeros, LayerNorm gains one.
Weights zero_weights(const ModelConfig& config);
// Random weights like PyTorch's default initialisation (uniform in +-1/sqrt(fan_in)), from
// counter-based draws: the same seed gives the same weights on any machine.
Weights random_weights(const ModelConfig& config, std::uint64_t seed);

inline constexpr std::string_view kModelFileFormat = "iclbench-model";

void save_model(const std::filesystem::path& path, const ModelConfig& config,
                const Weights& weights, io::Overwrite overwrite);

struct Model {
  ModelConfig config;
  Weights weights;
};
// Validates the file (format, config, every tensor's presence, shape and finiteness); throws
// io::FormatError naming the file and byte offset.
Model load_model(const std::filesystem::path& path);
Model load_model(const io::SafetensorsReader& file);  // an already parsed (or in-memory) file
// Only the file's format and config, checked as load_model() checks them; no tensor is read.
ModelConfig read_model_config(const io::SafetensorsReader& file);

}  // namespace iclbench::model
