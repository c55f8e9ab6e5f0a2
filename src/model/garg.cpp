#include "model/garg.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <limits>
#include <optional>
#include <string>

#include "util/numbers.hpp"

namespace iclbench::model {
namespace {

constexpr std::uint64_t kHeaderStart = 8;  // the JSON header follows its 8-byte length

int metadata_integer(const io::SafetensorsReader& file, const std::string& key) {
  const std::string& text =
      file.required_metadata(key, "iclbench-readable garg-gpt2 model",
                             "export it with scripts/train/export.py or convert_garg.py");
  // Decimal digits only, and within int: "12.0", "1e3" and "0x10" are refused, not rounded.
  const std::optional<std::int64_t> value = util::parse_int64(text);
  if (!value || *value < 1 || *value > std::numeric_limits<int>::max()) {
    throw file.error_at(kHeaderStart,
                        "__metadata__ " + key + " must be a positive integer, got '" + text + "'");
  }
  return static_cast<int>(*value);
}

// Where one file tensor goes: `rows` x `cols` of the file, copied (transposed when `transpose`)
// into `columns` [first_column, first_column + width) of a row-major destination of `stride`
// columns. The split of c_attn into W_q, W_k, W_v is three such pieces of one tensor.
struct Piece {
  std::vector<float>* destination;
  std::int64_t first_column = 0, width = 0, stride = 0;
  bool transpose = false;
};
struct FileTensor {
  std::string name;
  std::vector<std::int64_t> shape;
  std::vector<Piece> pieces;
};

std::vector<FileTensor> file_tensors(const ModelConfig& config, Weights& weights) {
  const std::int64_t d = config.input_dim, width = config.width, positions = config.positions;
  std::vector<FileTensor> tensors;
  auto whole = [](std::vector<float>& destination, std::int64_t columns) {
    return std::vector<Piece>{{&destination, 0, columns, columns, false}};
  };
  // torch.nn.Linear's [out, in] becomes the engine's [in, out].
  tensors.push_back({"_read_in.weight", {width, d}, {{&weights.read_in_w, 0, d, width, true}}});
  tensors.push_back({"_read_in.bias", {width}, whole(weights.read_in_b, width)});
  tensors.push_back({"_backbone.wpe.weight", {positions, width}, whole(weights.positions, width)});
  for (std::size_t i = 0; i < config.layers.size(); ++i) {
    LayerWeights& w = weights.layers[i];
    const std::int64_t hidden = config.layers[i].mlp_hidden;
    const std::string prefix = "_backbone.h." + std::to_string(i) + ".";
    auto split = [&](std::vector<float>& q, std::vector<float>& k, std::vector<float>& v) {
      return std::vector<Piece>{{&q, 0, width, width, false},
                                {&k, width, width, width, false},
                                {&v, 2 * width, width, width, false}};
    };
    tensors.push_back({prefix + "ln_1.weight", {width}, whole(w.attention_norm_gamma, width)});
    tensors.push_back({prefix + "ln_1.bias", {width}, whole(w.attention_norm_beta, width)});
    tensors.push_back({prefix + "attn.c_attn.weight", {width, 3 * width}, split(w.wq, w.wk, w.wv)});
    tensors.push_back({prefix + "attn.c_attn.bias", {3 * width}, split(w.bq, w.bk, w.bv)});
    tensors.push_back({prefix + "attn.c_proj.weight", {width, width}, whole(w.wo, width)});
    tensors.push_back({prefix + "attn.c_proj.bias", {width}, whole(w.bo, width)});
    tensors.push_back({prefix + "ln_2.weight", {width}, whole(w.mlp_norm_gamma, width)});
    tensors.push_back({prefix + "ln_2.bias", {width}, whole(w.mlp_norm_beta, width)});
    tensors.push_back({prefix + "mlp.c_fc.weight", {width, hidden}, whole(w.w1, hidden)});
    tensors.push_back({prefix + "mlp.c_fc.bias", {hidden}, whole(w.b1, hidden)});
    tensors.push_back({prefix + "mlp.c_proj.weight", {hidden, width}, whole(w.w2, width)});
    tensors.push_back({prefix + "mlp.c_proj.bias", {width}, whole(w.b2, width)});
  }
  tensors.push_back({"_backbone.ln_f.weight", {width}, whole(weights.read_out_norm_gamma, width)});
  tensors.push_back({"_backbone.ln_f.bias", {width}, whole(weights.read_out_norm_beta, width)});
  // [1, D] row-major is [D, 1] row-major: the same values.
  tensors.push_back({"_read_out.weight", {1, width}, whole(weights.read_out_w, width)});
  tensors.push_back({"_read_out.bias", {1}, whole(weights.read_out_b, 1)});
  return tensors;
}

// Copies a file tensor [rows, cols] (a vector is one row) into its pieces' destinations.
void place(const FileTensor& tensor, std::span<const float> values) {
  const std::int64_t rows = tensor.shape.size() == 2 ? tensor.shape[0] : 1;
  const std::int64_t cols = tensor.shape.back();
  auto at = [&](std::int64_t r, std::int64_t c) {
    return values[static_cast<std::size_t>(r * cols + c)];
  };
  for (const Piece& piece : tensor.pieces) {
    std::vector<float>& destination = *piece.destination;
    for (std::int64_t r = 0; r < rows; ++r) {
      for (std::int64_t c = 0; c < piece.width; ++c) {
        // transpose: the file's [out, in] element (r, c) is the engine's [in, out] (c, r).
        const std::int64_t index = piece.transpose ? c * rows + r : r * piece.stride + c;
        destination[static_cast<std::size_t>(index)] = at(r, piece.first_column + c);
      }
    }
  }
}

}  // namespace

bool is_garg_file(const io::SafetensorsReader& file) {
  const auto found = file.metadata().find("format");
  return found != file.metadata().end() && found->second == kGargFormat;
}

ModelConfig garg_config(const io::SafetensorsReader& file) {
  const std::string& version =
      file.required_metadata("format_version", "iclbench-readable garg-gpt2 model",
                             "re-export it with scripts/train/export.py");
  if (version != std::to_string(kGargFormatVersion)) {
    throw file.error_at(kHeaderStart, "garg-gpt2 format_version '" + version +
                                          "' is not supported (this build reads version " +
                                          std::to_string(kGargFormatVersion) +
                                          "); re-export it with scripts/train/export.py");
  }
  const int n_dims = metadata_integer(file, "n_dims");
  const int n_positions = metadata_integer(file, "n_positions");
  const int n_embd = metadata_integer(file, "n_embd");
  const int n_layer = metadata_integer(file, "n_layer");
  const int n_head = metadata_integer(file, "n_head");
  // The metadata is only a claim. Before anything is allocated for it, the file must hold what
  // it implies: 12 tensors per block and at least the blocks' 12 n_embd^2 f32 weights. So a small
  // file that claims a huge model is refused at once (a trial's 836 KB file claiming 10^8 layers
  // grew to 5 GB before "missing tensor").
  std::uint64_t held_bytes = 0;
  for (const io::TensorInfo& info : file.tensors()) held_bytes += info.end - info.begin;
  const double needed_bytes = 4.0 * 12.0 * static_cast<double>(n_layer) * static_cast<double>(n_embd) *
                              static_cast<double>(n_embd);
  if (12.0 * static_cast<double>(n_layer) > static_cast<double>(file.tensors().size()) ||
      needed_bytes > static_cast<double>(held_bytes)) {
    throw file.error_at(kHeaderStart, "n_layer " + std::to_string(n_layer) + " and n_embd " + std::to_string(n_embd) +
                                          " need 12 tensors and 48 n_embd^2 bytes per block; the file holds " +
                                          std::to_string(file.tensors().size()) + " tensors of " +
                                          std::to_string(held_bytes) + " bytes");
  }
  if (n_embd % n_head != 0) {
    throw file.error_at(kHeaderStart, "n_embd " + std::to_string(n_embd) +
                                          " is not a multiple of n_head " + std::to_string(n_head));
  }
  if (n_dims > n_embd) {
    throw file.error_at(kHeaderStart, "n_dims " + std::to_string(n_dims) + " exceeds n_embd " +
                                          std::to_string(n_embd));
  }
  float epsilon = 1e-5f;
  if (const auto found = file.metadata().find("layer_norm_epsilon");
      found != file.metadata().end()) {
    // The whole text, in decimal: std::stof read "1e-5garbage" as 1e-5.
    const std::optional<double> value = util::parse_real(found->second);
    if (!value || !std::isfinite(*value) || !(*value > 0)) {
      throw file.error_at(kHeaderStart,
                          "layer_norm_epsilon '" + found->second + "' is not a positive finite number");
    }
    epsilon = static_cast<float>(*value);
  }
  if (const auto found = file.metadata().find("activation_function");
      found != file.metadata().end() && found->second != "gelu_new") {
    throw file.error_at(kHeaderStart, "activation_function '" + found->second +
                                          "' is not supported (only GPT-2's gelu_new)");
  }
  ModelConfig config;
  config.name = "garg-gpt2:D=" + std::to_string(n_embd) + ",L=" + std::to_string(n_layer) +
                ",H=" + std::to_string(n_head) + ",d=" + std::to_string(n_dims) +
                ",P=" + std::to_string(n_positions);
  config.width = n_embd;
  config.input_dim = n_dims;
  config.read_in = true;
  config.positions = 2 * n_positions;  // GPT2Config(n_positions = 2 * n_positions)
  config.read_out = true;
  config.read_out_norm_epsilon = epsilon;
  LayerConfig layer;
  layer.attention_norm = true;
  layer.attention = AttentionKind::kSoftmax;
  layer.heads = n_head;
  layer.qk_dim = layer.v_dim = n_embd / n_head;
  layer.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(layer.qk_dim)));
  layer.mask = Mask::kCausal;
  layer.mlp_norm = true;
  layer.mlp_hidden = 4 * n_embd;
  layer.activation = Activation::kGeluTanh;
  layer.norm_epsilon = epsilon;
  config.layers.assign(static_cast<std::size_t>(n_layer), layer);
  try {
    validate(config);
  } catch (const ConfigError& error) {
    throw file.error_at(kHeaderStart, std::string("garg-gpt2 config: ") + error.what());
  }
  return config;
}

Model load_garg_model(const io::SafetensorsReader& file) {
  Model model;
  model.config = garg_config(file);
  model.weights = zero_weights(model.config);
  const std::vector<FileTensor> expected = file_tensors(model.config, model.weights);
  std::map<std::string, const FileTensor*> by_name;
  for (const FileTensor& tensor : expected) by_name[tensor.name] = &tensor;
  // An extra tensor is an error (a file of another model, or one converted without dropping the
  // unused GPT-2 buffers): convert_garg.py says which to drop.
  for (const io::TensorInfo& info : file.tensors()) {
    if (!by_name.contains(info.name)) {
      throw file.error_at(info, "unexpected: not part of a garg-gpt2 model with " +
                                    std::to_string(model.config.layers.size()) + " layers");
    }
  }
  for (const FileTensor& tensor : expected) {
    const io::TensorInfo* info = file.find(tensor.name);
    if (info == nullptr) throw file.error_at(kHeaderStart, "missing tensor '" + tensor.name + "'");
    if (info->shape != tensor.shape) {
      io::TensorInfo wanted = *info;
      wanted.shape = tensor.shape;
      throw file.error_at(*info, "shape " + info->shape_string() +
                                     " does not match the config in __metadata__, which needs " +
                                     wanted.shape_string());
    }
    place(tensor, finite_f32(file, *info));
  }
  return model;
}

std::vector<float> interleaved_tokens(std::span<const float> x, std::span<const float> y,
                                      std::span<const float> x_query, int d) {
  const auto k = static_cast<std::int64_t>(y.size());
  std::vector<float> tokens(static_cast<std::size_t>(interleaved_prompt_tokens(k) * d), 0.0f);
  for (std::int64_t i = 0; i < k; ++i) {
    std::copy_n(x.begin() + i * d, d, tokens.begin() + 2 * i * d);
    tokens[static_cast<std::size_t>((2 * i + 1) * d)] = y[static_cast<std::size_t>(i)];
  }
  std::copy_n(x_query.begin(), d, tokens.begin() + 2 * k * d);
  return tokens;
}

}  // namespace iclbench::model
