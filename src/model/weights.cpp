#include "model/weights.hpp"

#include <cmath>

#include "io/safetensors.hpp"
#include "io/strict_json.hpp"
#include "model/garg.hpp"
#include "util/philox.hpp"

namespace iclbench::model {

std::vector<WeightTensor> weight_tensors(const ModelConfig& config, Weights& weights) {
  std::vector<WeightTensor> tensors;
  const std::int64_t d = config.width;
  if (config.read_in) {
    tensors.push_back({"read_in.weight", {config.input_dim, d}, &weights.read_in_w});
    tensors.push_back({"read_in.bias", {d}, &weights.read_in_b});
  }
  if (config.positions > 0)
    tensors.push_back({"positions", {config.positions, d}, &weights.positions});
  for (std::size_t i = 0; i < config.layers.size(); ++i) {
    const LayerConfig& layer = config.layers[i];
    LayerWeights& w = weights.layers.at(i);
    const std::string prefix = "layers." + std::to_string(i) + ".";
    auto add = [&](const std::string& name, std::vector<std::int64_t> shape,
                   std::vector<float>& values) {
      tensors.push_back({prefix + name, std::move(shape), &values});
    };
    if (layer.attention_norm) {
      add("attention_norm.gamma", {d}, w.attention_norm_gamma);
      add("attention_norm.beta", {d}, w.attention_norm_beta);
    }
    if (layer.has_attention()) {
      const std::int64_t qk = static_cast<std::int64_t>(layer.heads) * layer.qk_dim;
      const std::int64_t v = static_cast<std::int64_t>(layer.heads) * layer.v_dim;
      add("attention.wq", {d, qk}, w.wq);
      add("attention.bq", {qk}, w.bq);
      add("attention.wk", {d, qk}, w.wk);
      add("attention.bk", {qk}, w.bk);
      add("attention.wv", {d, v}, w.wv);
      add("attention.bv", {v}, w.bv);
      add("attention.wo", {v, d}, w.wo);
      add("attention.bo", {d}, w.bo);
    }
    if (layer.mlp_norm) {
      add("mlp_norm.gamma", {d}, w.mlp_norm_gamma);
      add("mlp_norm.beta", {d}, w.mlp_norm_beta);
    }
    if (layer.has_mlp()) {
      add("mlp.w1", {d, layer.mlp_hidden}, w.w1);
      add("mlp.b1", {layer.mlp_hidden}, w.b1);
      add("mlp.w2", {layer.mlp_hidden, d}, w.w2);
      add("mlp.b2", {d}, w.b2);
    }
  }
  if (config.read_out) {
    tensors.push_back({"read_out.norm.gamma", {d}, &weights.read_out_norm_gamma});
    tensors.push_back({"read_out.norm.beta", {d}, &weights.read_out_norm_beta});
    tensors.push_back({"read_out.weight", {d, 1}, &weights.read_out_w});
    tensors.push_back({"read_out.bias", {1}, &weights.read_out_b});
  }
  return tensors;
}

namespace {
std::size_t element_count(const std::vector<std::int64_t>& shape) {
  std::size_t count = 1;
  for (std::int64_t extent : shape) count *= static_cast<std::size_t>(extent);
  return count;
}
bool is_gain(const std::string& name) { return name.ends_with(".gamma"); }
}  // namespace

Weights zero_weights(const ModelConfig& config) {
  validate(config);
  Weights weights;
  weights.layers.resize(config.layers.size());
  for (const WeightTensor& tensor : weight_tensors(config, weights)) {
    tensor.values->assign(element_count(tensor.shape), is_gain(tensor.name) ? 1.0f : 0.0f);
  }
  return weights;
}

Weights random_weights(const ModelConfig& config, std::uint64_t seed) {
  Weights weights = zero_weights(config);
  std::uint32_t tensor_index = 0;
  for (const WeightTensor& tensor : weight_tensors(config, weights)) {
    ++tensor_index;
    if (is_gain(tensor.name) || tensor.name.ends_with(".beta")) continue;
    // Biases use the fan-in of their matrix, as torch.nn.Linear does.
    const std::int64_t fan_in = tensor.shape.size() == 2 ? tensor.shape[0] : -1;
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in > 0 ? fan_in : config.width));
    util::DrawSequence draws(seed, tensor_index, 0, util::Stream::kModelWeights);
    for (float& value : *tensor.values) {
      value = static_cast<float>(bound * (2.0 * draws.uniform() - 1.0));
    }
  }
  return weights;
}

void save_model(const std::filesystem::path& path, const ModelConfig& config,
                const Weights& weights, io::Overwrite overwrite) {
  validate(config);
  Weights copy = weights;  // weight_tensors hands out mutable pointers
  const std::vector<WeightTensor> tensors = weight_tensors(config, copy);
  std::vector<io::TensorToWrite> layout;
  for (const WeightTensor& tensor : tensors) {
    if (tensor.values->size() != element_count(tensor.shape)) {
      throw std::logic_error("save_model: " + tensor.name + " has the wrong size");
    }
    layout.push_back({tensor.name, io::DType::kF32, tensor.shape});
  }
  const std::map<std::string, std::string> metadata = {
      {"format", std::string(kModelFileFormat)},
      {"format_version", std::to_string(kModelFormatVersion)},
      {"config", to_json(config).dump()},
  };
  io::SafetensorsWriter writer(path, metadata, layout, overwrite);
  for (const WeightTensor& tensor : tensors) writer.write_f32(tensor.name, 0, *tensor.values);
  writer.commit();
}

Model load_model(const std::filesystem::path& path) { return load_model(io::SafetensorsReader(path)); }

namespace {
constexpr std::uint64_t kHeaderStart = 8;  // the JSON header follows its 8-byte length
}  // namespace

std::span<const float> finite_f32(const io::SafetensorsReader& file, const io::TensorInfo& info) {
  const std::span<const float> values = file.f32(info);
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) {
      throw file.error_at(info.begin + i * sizeof(float), "tensor '" + info.name + "' element " +
                                                              std::to_string(i) + " is not finite");
    }
  }
  return values;
}

ModelConfig read_model_config(const io::SafetensorsReader& file) {
  if (is_garg_file(file)) return garg_config(file);
  auto meta = [&](const std::string& key) -> const std::string& {
    return file.required_metadata(key, "iclbench model", "write models with `iclbench model --construct`");
  };
  if (meta("format") != kModelFileFormat) {
    throw file.error_at(kHeaderStart, "not an iclbench model: __metadata__ format is '" +
                                          meta("format") + "'");
  }
  // save_model() writes these three and nothing else; any other key is a file of another writer
  // or version, whose meaning this build would ignore.
  for (const auto& [key, value] : file.metadata()) {
    if (key != "format" && key != "format_version" && key != "config") {
      throw file.error_at(kHeaderStart, "__metadata__ key '" + key +
                                            "' is not one of an iclbench model's (format, format_version, config)");
    }
  }
  try {
    // Strictly: a repeated key is refused, not "last one wins".
    return config_from_json(io::parse_json_strict(meta("config")));
  } catch (const ConfigError& error) {
    throw file.error_at(kHeaderStart, std::string("model config: ") + error.what());
  } catch (const std::invalid_argument& error) {
    throw file.error_at(kHeaderStart, std::string("model config: ") + error.what());
  } catch (const nlohmann::json::exception& error) {
    throw file.error_at(kHeaderStart, std::string("model config: ") + error.what());
  }
}

Model load_model(const io::SafetensorsReader& file) {
  if (is_garg_file(file)) return load_garg_model(file);
  Model model;
  model.config = read_model_config(file);
  model.weights = zero_weights(model.config);
  const std::vector<WeightTensor> expected = weight_tensors(model.config, model.weights);
  if (file.tensors().size() != expected.size()) {
    throw file.error_at(kHeaderStart, "the file holds " + std::to_string(file.tensors().size()) +
                                          " tensors; its config needs " +
                                          std::to_string(expected.size()));
  }
  for (const WeightTensor& tensor : expected) {
    const io::TensorInfo* info = file.find(tensor.name);
    if (info == nullptr) {
      throw file.error_at(kHeaderStart, "missing tensor '" + tensor.name + "'");
    }
    if (info->shape != tensor.shape) {
      io::TensorInfo wanted = *info;
      wanted.shape = tensor.shape;
      throw file.error_at(*info, "shape " + info->shape_string() + " does not match the config, " +
                                     "which needs " + wanted.shape_string());
    }
    const std::span<const float> values = finite_f32(file, *info);
    tensor.values->assign(values.begin(), values.end());
  }
  return model;
}

}  // namespace iclbench::model
