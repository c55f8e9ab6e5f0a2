#include "model/config.hpp"

#include <cmath>

#include "io/strict_json.hpp"
#include "util/errors.hpp"

namespace iclbench::model {
namespace {

template <typename Enum, std::size_t N>
Enum parse_enum(const std::pair<Enum, std::string_view> (&table)[N], const std::string& text,
                const std::string& field) {
  std::string choices;
  for (const auto& [value, name] : table) {
    if (name == text) return value;
    choices += (choices.empty() ? "" : ", ") + std::string(name);
  }
  throw ConfigError(field + ": unknown value '" + text + "' (one of " + choices + ")");
}

constexpr std::pair<AttentionKind, std::string_view> kAttentionNames[] = {
    {AttentionKind::kNone, "none"},
    {AttentionKind::kSoftmax, "softmax"},
    {AttentionKind::kLinear, "linear"},
    {AttentionKind::kRelu, "relu"}};
constexpr std::pair<Mask, std::string_view> kMaskNames[] = {{Mask::kIcl, "icl"},
                                                            {Mask::kCausal, "causal"}};
constexpr std::pair<Activation, std::string_view> kActivationNames[] = {
    {Activation::kNone, "none"},
    {Activation::kRelu, "relu"},
    {Activation::kGelu, "gelu"},
    {Activation::kGeluTanh, "gelu_tanh"}};

template <typename Enum, std::size_t N>
std::string_view name_of(const std::pair<Enum, std::string_view> (&table)[N], Enum value) {
  for (const auto& [candidate, name] : table)
    if (candidate == value) return name;
  return "?";
}

}  // namespace

std::string_view to_string(AttentionKind kind) { return name_of(kAttentionNames, kind); }
std::string_view to_string(Mask mask) { return name_of(kMaskNames, mask); }
std::string_view to_string(Activation activation) {
  return name_of(kActivationNames, activation);
}

Mask ModelConfig::mask() const {
  for (const LayerConfig& layer : layers)
    if (layer.has_attention()) return layer.mask;
  return Mask::kIcl;
}

std::int64_t ModelConfig::parameter_count() const {
  const std::int64_t d = width;
  std::int64_t count = 0;
  for (const LayerConfig& layer : layers) {
    if (layer.attention_norm) count += 2 * d;
    if (layer.has_attention()) {
      const std::int64_t qk = static_cast<std::int64_t>(layer.heads) * layer.qk_dim;
      const std::int64_t v = static_cast<std::int64_t>(layer.heads) * layer.v_dim;
      count += (d + 1) * (2 * qk + v) + (v + 1) * d;
    }
    if (layer.mlp_norm) count += 2 * d;
    if (layer.has_mlp()) count += (d + 1) * layer.mlp_hidden + (layer.mlp_hidden + 1) * d;
  }
  if (read_in) count += (static_cast<std::int64_t>(input_dim) + 1) * d;
  count += static_cast<std::int64_t>(positions) * d;
  if (read_out) count += 2 * d + d + 1;
  return count;
}

double attended_pairs(Mask mask, std::int64_t tokens, std::int64_t context) {
  const double t = static_cast<double>(tokens);
  return mask == Mask::kCausal ? t * (t + 1) / 2 : t * static_cast<double>(context);
}

double ModelConfig::forward_flops(std::int64_t tokens, std::int64_t context,
                                  bool explicit_linear) const {
  const double t = static_cast<double>(tokens), d = width;
  double flops = 0;
  for (const LayerConfig& layer : layers) {
    double per_pass = 0;
    if (layer.has_attention()) {
      const double h = layer.heads, dk = layer.qk_dim, dv = layer.v_dim;
      // Keys and values come from the context rows only under the icl mask.
      const double key_rows = layer.mask == Mask::kIcl ? static_cast<double>(context) : t;
      per_pass += 2 * t * d * h * dk + 2 * key_rows * d * h * (dk + dv);
      if (layer.attention == AttentionKind::kLinear && layer.mask == Mask::kIcl && !explicit_linear) {
        per_pass += 2 * h * key_rows * dk * dv + 2 * h * t * dk * dv;  // Q (K^T V)
      } else {
        per_pass += 2 * h * attended_pairs(layer.mask, tokens, context) * (dk + dv);  // (Q K^T) V
      }
      per_pass += 2 * t * h * dv * d;
    }
    if (layer.has_mlp()) per_pass += 4 * t * d * layer.mlp_hidden;
    flops += per_pass * layer.loop;
  }
  if (read_in) flops += 2 * t * input_dim * d;
  if (read_out) flops += 2 * t * d;
  return flops;
}

void validate(const ModelConfig& config) {
  using util::require;
  require<ConfigError>(config.width >= 1 && config.width <= 65536,
          "width must be in [1, 65536], got " + std::to_string(config.width));
  require<ConfigError>(!config.layers.empty(), "a model needs at least one layer");
  require<ConfigError>(config.readout < config.width,
          "readout slot " + std::to_string(config.readout) + " is outside the width " +
              std::to_string(config.width));
  require<ConfigError>(config.input_dim >= 0 && config.input_dim <= config.width, "input_dim out of range");
  require<ConfigError>(!config.read_in || config.input_dim >= 1, "read_in needs input_dim >= 1");
  require<ConfigError>(config.positions >= 0 && config.positions <= (1 << 20),
                       "positions must be in [0, 2^20]");
  require<ConfigError>(
      !(config.read_out && config.readout >= 0),
      "a model reads out either a residual slot (readout) or through read_out, not both");
  require<ConfigError>(
      std::isfinite(config.read_out_norm_epsilon) && config.read_out_norm_epsilon > 0,
      "read_out_norm_epsilon must be > 0");
  bool mask_seen = false;
  Mask mask = Mask::kIcl;
  for (std::size_t i = 0; i < config.layers.size(); ++i) {
    const LayerConfig& layer = config.layers[i];
    const std::string where = "layer " + std::to_string(i) + ": ";
    if (layer.has_attention()) {
      require<ConfigError>(layer.heads >= 1 && layer.heads <= 1024, where + "heads must be in [1, 1024]");
      require<ConfigError>(layer.qk_dim >= 1 && layer.qk_dim <= 65536, where + "qk_dim must be >= 1");
      require<ConfigError>(layer.v_dim >= 1 && layer.v_dim <= 65536, where + "v_dim must be >= 1");
      require<ConfigError>(std::isfinite(layer.scale), where + "scale must be finite");
      require<ConfigError>(!layer.mean_over_keys || layer.attention != AttentionKind::kSoftmax,
              where + "mean_over_keys does not apply to softmax attention (it normalises)");
      require<ConfigError>(!mask_seen || layer.mask == mask,
              where + "mask differs from an earlier layer's; a prompt has one layout");
      mask_seen = true;
      mask = layer.mask;
    }
    require<ConfigError>(layer.mlp_hidden >= 0 && layer.mlp_hidden <= (1 << 20),
            where + "mlp_hidden must be in [0, 2^20]");
    require<ConfigError>(layer.has_mlp() || layer.activation == Activation::kNone,
            where + "an activation needs an MLP (mlp_hidden > 0)");
    require<ConfigError>(layer.loop >= 1 && layer.loop <= 1'000'000, where + "loop must be in [1, 10^6]");
    require<ConfigError>(std::isfinite(layer.norm_epsilon) && layer.norm_epsilon > 0,
            where + "norm_epsilon must be > 0");
  }
}

nlohmann::json to_json(const ModelConfig& config) {
  nlohmann::ordered_json layers = nlohmann::ordered_json::array();
  for (const LayerConfig& layer : config.layers) {
    layers.push_back({
        {"attention_norm", layer.attention_norm},
        {"attention", to_string(layer.attention)},
        {"heads", layer.heads},
        {"qk_dim", layer.qk_dim},
        {"v_dim", layer.v_dim},
        {"scale", layer.scale},
        {"mean_over_keys", layer.mean_over_keys},
        {"mask", to_string(layer.mask)},
        {"mlp_norm", layer.mlp_norm},
        {"mlp_hidden", layer.mlp_hidden},
        {"activation", to_string(layer.activation)},
        {"loop", layer.loop},
        {"norm_epsilon", layer.norm_epsilon},
    });
  }
  nlohmann::ordered_json json = {
      {"format", kModelFormat},   {"format_version", kModelFormatVersion},
      {"name", config.name},      {"width", config.width},
      {"input_dim", config.input_dim}, {"readout", config.readout},
      {"layers", layers},
  };
  // Written only when used, so that files of constructed models read as before.
  if (config.read_in) json["read_in"] = true;
  if (config.positions > 0) json["positions"] = config.positions;
  if (config.read_out) {
    json["read_out"] = true;
    json["read_out_norm_epsilon"] = config.read_out_norm_epsilon;
  }
  return json;
}

ModelConfig config_from_json(const nlohmann::json& json) {
  auto field = [](const nlohmann::json& object, const char* key, const std::string& where)
      -> const nlohmann::json& {
    if (!object.is_object() || !object.contains(key)) {
      throw ConfigError(where + "missing field '" + key + "'");
    }
    return object.at(key);
  };
  auto integer = [&](const nlohmann::json& object, const char* key, const std::string& where) {
    const auto& value = field(object, key, where);
    if (!value.is_number_integer()) throw ConfigError(where + "'" + key + "' must be an integer");
    const auto wide = value.get<std::int64_t>();
    if (wide < INT32_MIN || wide > INT32_MAX) throw ConfigError(where + "'" + key + "' too large");
    return static_cast<int>(wide);
  };
  auto number = [&](const nlohmann::json& object, const char* key, const std::string& where) {
    const auto& value = field(object, key, where);
    if (!value.is_number()) throw ConfigError(where + "'" + key + "' must be a number");
    return value.get<float>();
  };
  auto boolean = [&](const nlohmann::json& object, const char* key, const std::string& where) {
    const auto& value = field(object, key, where);
    if (!value.is_boolean()) throw ConfigError(where + "'" + key + "' must be true or false");
    return value.get<bool>();
  };
  auto text = [&](const nlohmann::json& object, const char* key, const std::string& where) {
    const auto& value = field(object, key, where);
    if (!value.is_string()) throw ConfigError(where + "'" + key + "' must be a string");
    return value.get<std::string>();
  };

  if (!json.is_object()) throw ConfigError("model config is not a JSON object");
  // Every key is one this version reads: a typo ("mlp_hiden") or a field of another version would
  // otherwise be ignored and the model run with a default.
  auto known_keys = [](const nlohmann::json& object, std::initializer_list<std::string_view> known,
                       const std::string& where) {
    try {
      io::require_known_keys(object, known);
    } catch (const util::ParameterError& error) {
      throw ConfigError(where + "'" + error.parameter() + "' " + error.problem());
    }
  };
  known_keys(json, {"format", "format_version", "name", "width", "input_dim", "readout", "layers", "read_in",
                    "positions", "read_out", "read_out_norm_epsilon"},
             "");
  if (text(json, "format", "") != kModelFormat) {
    throw ConfigError("not an iclbench model config (format is '" + text(json, "format", "") +
                      "')");
  }
  const int version = integer(json, "format_version", "");
  if (version != kModelFormatVersion) {
    throw ConfigError("model format version " + std::to_string(version) +
                      " is not supported (this build reads version " +
                      std::to_string(kModelFormatVersion) +
                      "); rebuild the model with `iclbench model --construct` or re-export it");
  }
  ModelConfig config;
  config.name = text(json, "name", "");
  config.width = integer(json, "width", "");
  config.input_dim = integer(json, "input_dim", "");
  config.readout = integer(json, "readout", "");
  if (json.contains("read_in")) config.read_in = boolean(json, "read_in", "");
  if (json.contains("positions")) config.positions = integer(json, "positions", "");
  if (json.contains("read_out")) config.read_out = boolean(json, "read_out", "");
  if (json.contains("read_out_norm_epsilon")) {
    config.read_out_norm_epsilon = number(json, "read_out_norm_epsilon", "");
  }
  const auto& layers = field(json, "layers", "");
  if (!layers.is_array()) throw ConfigError("'layers' must be an array");
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const std::string where = "layer " + std::to_string(i) + ": ";
    const auto& entry = layers[i];
    if (!entry.is_object()) throw ConfigError(where + "not a JSON object");
    known_keys(entry, {"attention_norm", "attention", "heads", "qk_dim", "v_dim", "scale", "mean_over_keys", "mask",
                       "mlp_norm", "mlp_hidden", "activation", "loop", "norm_epsilon"},
               where);
    LayerConfig layer;
    layer.attention_norm = boolean(entry, "attention_norm", where);
    layer.attention = parse_enum(kAttentionNames, text(entry, "attention", where), where + "attention");
    layer.heads = integer(entry, "heads", where);
    layer.qk_dim = integer(entry, "qk_dim", where);
    layer.v_dim = integer(entry, "v_dim", where);
    layer.scale = number(entry, "scale", where);
    layer.mean_over_keys = boolean(entry, "mean_over_keys", where);
    layer.mask = parse_enum(kMaskNames, text(entry, "mask", where), where + "mask");
    layer.mlp_norm = boolean(entry, "mlp_norm", where);
    layer.mlp_hidden = integer(entry, "mlp_hidden", where);
    layer.activation =
        parse_enum(kActivationNames, text(entry, "activation", where), where + "activation");
    layer.loop = integer(entry, "loop", where);
    layer.norm_epsilon = number(entry, "norm_epsilon", where);
    config.layers.push_back(layer);
  }
  validate(config);
  return config;
}

}  // namespace iclbench::model
