#include "model/constructions.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <optional>

#include "util/errors.hpp"
#include "util/numbers.hpp"
#include "util/text.hpp"

namespace iclbench::model {
namespace {

struct Entry {
  ConstructionKind kind;
  std::string_view name;
  std::vector<std::string_view> parameters;
};
const std::vector<Entry>& entries() {
  static const std::vector<Entry> table = {
      {ConstructionKind::kGdLeastSquares, "gd-ls", {"L", "eta"}},
      {ConstructionKind::kGdPlusPlus, "gd++", {"L", "eta", "gamma"}},
      {ConstructionKind::kGdHinge, "gd-hinge", {"L", "eta", "tau"}},
      {ConstructionKind::kGdLogistic, "gd-logistic", {"L", "eta", "K", "R"}},
      {ConstructionKind::kKernel, "kernel", {"beta"}},
      {ConstructionKind::kEncoder, "encoder", {"D", "H", "F", "layers"}},
  };
  return table;
}

double parse_number(std::string_view key, std::string_view text, std::string_view spec) {
  const std::optional<double> value = util::parse_real(text);
  if (!value || !std::isfinite(*value)) {
    throw SpecError("model spec '" + std::string(spec) + "': " + std::string(key) + "='" +
                    std::string(text) + "' is not a finite number");
  }
  return *value;
}

// A count is an integer in decimal digits: "1e3" and "3.0" are refused, not read as 1000 and 3.
int parse_count(std::string_view key, std::string_view text, std::string_view spec, int lowest, int highest) {
  const std::optional<std::int64_t> value = util::parse_int64(text);
  if (!value || *value < lowest || *value > highest) {
    throw SpecError("model spec '" + std::string(spec) + "': " + std::string(key) +
                    " must be an integer in [" + std::to_string(lowest) + ", " +
                    std::to_string(highest) + "] written in decimal digits, got '" + std::string(text) + "'");
  }
  return static_cast<int>(*value);
}

// A linear attention layer with identity queries and keys on the x slots.
LayerConfig icl_linear_attention(int d, int heads, int v_dim, float scale) {
  LayerConfig layer;
  layer.attention = AttentionKind::kLinear;
  layer.heads = heads;
  layer.qk_dim = d;
  layer.v_dim = v_dim;
  layer.scale = scale;
  layer.mean_over_keys = true;
  layer.mask = Mask::kIcl;
  return layer;
}

void set(std::vector<float>& matrix, int columns, int row, int column, double value) {
  matrix[static_cast<std::size_t>(row) * columns + column] = static_cast<float>(value);
}

// q_j = x_j and k_i = x_i for one head occupying columns [head*d, (head+1)*d).
void identity_queries_and_keys(LayerWeights& w, const Slots& s, int heads, int head) {
  for (int j = 0; j < s.d; ++j) {
    set(w.wq, heads * s.d, j, head * s.d + j, 1.0);
    set(w.wk, heads * s.d, j, head * s.d + j, 1.0);
  }
}

// The MLP that rewrites g with the loss derivative at the current score p:
//   g <- (1 + y)/2 - psi(p)   [logistic]      g <- y clamp((1 + tau - y p)/tau, 0, 1)   [hinge]
// Both are piecewise-linear in (y, p) with y in {-1, +1}, written with ReLUs of small weights
// only: no large gating constant, whose cancellation would cost ~B * 2^-24 of accuracy per step.
// The old g is removed by relu(g) - relu(-g) = g, and y enters as relu(y) - relu(-y).
// Query tokens (y = 0) get a bounded g that nothing reads: the icl mask takes values from
// context tokens only.
LayerConfig gradient_mlp_layer(int hidden) {
  LayerConfig layer;
  layer.mlp_hidden = hidden;
  layer.activation = Activation::kRelu;
  return layer;
}

void common_gradient_units(LayerWeights& w, const Slots& s, int hidden, int first_unit) {
  const int width = s.width();
  // unit first+0: relu(g), +1: relu(-g), +2: relu(y), +3: relu(-y)
  set(w.w1, hidden, s.g(), first_unit + 0, 1.0);
  set(w.w1, hidden, s.g(), first_unit + 1, -1.0);
  set(w.w1, hidden, s.y(), first_unit + 2, 1.0);
  set(w.w1, hidden, s.y(), first_unit + 3, -1.0);
  set(w.w2, width, first_unit + 0, s.g(), -1.0);
  set(w.w2, width, first_unit + 1, s.g(), 1.0);
  set(w.w2, width, first_unit + 2, s.g(), 0.5);
  set(w.w2, width, first_unit + 3, s.g(), -0.5);
  w.b2[s.g()] = 0.5f;  // with the y units: (1 + y)/2
}

void hinge_units(LayerWeights& w, const Slots& s, double tau) {
  // g = (1+y)/2 - relu((p + tau/2 - (1 + tau/2) y)/tau) + relu((p - tau/2 - (1 + tau/2) y)/tau)
  // On y = +1 this is 1 - clamp((p - 1)/tau, 0, 1); on y = -1 it is -clamp((p + 1 + tau)/tau, 0, 1):
  // both equal y clamp((1 + tau - y p)/tau, 0, 1).
  constexpr int kHidden = 6;
  const double slope_y = -(1.0 + tau / 2.0) / tau;
  set(w.w1, kHidden, s.p(), 0, 1.0 / tau);
  set(w.w1, kHidden, s.y(), 0, slope_y);
  w.b1[0] = 0.5f;
  set(w.w1, kHidden, s.p(), 1, 1.0 / tau);
  set(w.w1, kHidden, s.y(), 1, slope_y);
  w.b1[1] = -0.5f;
  set(w.w2, s.width(), 0, s.g(), -1.0);
  set(w.w2, s.width(), 1, s.g(), 1.0);
  common_gradient_units(w, s, kHidden, 2);
}

void logistic_units(LayerWeights& w, const Slots& s, int segments, double range) {
  // psi(p) = sigma(-R) + sum_k slope_change_k relu(p - knot_k); g = (1 + y)/2 - psi(p), the
  // logistic derivative y sigma(-y p) written as t - sigma(p) with t = (1 + y)/2.
  const int hidden = segments + 1 + 4;
  const double step = 2.0 * range / segments;
  auto sigma = [](double z) { return 1.0 / (1.0 + std::exp(-z)); };
  double previous_slope = 0.0;
  for (int k = 0; k <= segments; ++k) {
    const double knot = -range + step * k;
    const double slope =
        k < segments ? (sigma(knot + step) - sigma(knot)) / step : 0.0;
    set(w.w1, hidden, s.p(), k, 1.0);
    w.b1[k] = static_cast<float>(-knot);
    set(w.w2, s.width(), k, s.g(), -(slope - previous_slope));
    previous_slope = slope;
  }
  common_gradient_units(w, s, hidden, segments + 1);
  w.b2[s.g()] = static_cast<float>(0.5 - sigma(-range));
}

}  // namespace

std::string construction_names() {
  std::string names;
  for (const Entry& entry : entries()) {
    names += (names.empty() ? "" : ", ") + std::string(entry.name) + ":";
    for (std::size_t i = 0; i < entry.parameters.size(); ++i) {
      names += (i ? "," : "") + std::string(entry.parameters[i]);
    }
  }
  return names;
}

ConstructionSpec parse_construction(std::string_view text) {
  const std::size_t colon = text.find(':');
  const std::string_view name = text.substr(0, colon);
  const Entry* entry = nullptr;
  for (const Entry& candidate : entries())
    if (candidate.name == name) entry = &candidate;
  if (entry == nullptr) {
    throw SpecError("unknown model '" + std::string(name) + "'; constructions are " +
                    construction_names());
  }
  std::map<std::string, std::string, std::less<>> values;  // key -> its text, parsed as a count or a number
  if (colon != std::string_view::npos) {
    std::string_view rest = text.substr(colon + 1);
    if (rest.empty()) throw SpecError("model spec '" + std::string(text) + "': nothing after ':'");
    while (!rest.empty()) {
      const std::size_t comma = rest.find(',');
      const std::string_view item = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      if (comma != std::string_view::npos && rest.empty()) {
        throw SpecError("model spec '" + std::string(text) + "': trailing ','");
      }
      const std::size_t equals = item.find('=');
      if (equals == std::string_view::npos || equals == 0) {
        throw SpecError("model spec '" + std::string(text) + "': '" + std::string(item) +
                        "' is not key=value");
      }
      const std::string_view key = item.substr(0, equals);
      if (std::find(entry->parameters.begin(), entry->parameters.end(), key) ==
          entry->parameters.end()) {
        std::string known;
        for (auto parameter : entry->parameters) known += " " + std::string(parameter);
        throw SpecError("model spec '" + std::string(text) + "': " + std::string(name) +
                        " has no parameter '" + std::string(key) + "' (it takes" + known + ")");
      }
      if (values.count(key)) {
        throw SpecError("model spec '" + std::string(text) + "': " + std::string(key) +
                        " given twice");
      }
      values.emplace(std::string(key), std::string(item.substr(equals + 1)));
    }
  }
  ConstructionSpec spec;
  spec.kind = entry->kind;
  auto get = [&](const char* key, double fallback) {
    const auto found = values.find(key);
    return found == values.end() ? fallback : parse_number(key, found->second, text);
  };
  auto count = [&](const char* key, int fallback, int lowest, int highest) {
    const auto found = values.find(key);
    return found == values.end() ? fallback : parse_count(key, found->second, text, lowest, highest);
  };
  spec.steps = count("L", 1, 1, 1'000'000);
  spec.eta = get("eta", 1.0);
  spec.gamma = get("gamma", 0.0);
  spec.tau = get("tau", 0.5);
  spec.segments = count("K", 16, 1, 4096);
  spec.range = get("R", 8.0);
  spec.beta = get("beta", 1.0);
  spec.width = count("D", 64, 1, 65536);
  spec.heads = count("H", 4, 1, 1024);
  spec.ffn = count("F", 256, 1, 1 << 20);
  spec.layers = count("layers", 4, 1, 1024);
  if (spec.width % spec.heads != 0) {
    throw SpecError("model spec '" + std::string(text) + "': D must be a multiple of H");
  }
  auto positive = [&](const char* key, double value) {
    if (!(value > 0)) {
      throw SpecError("model spec '" + std::string(text) + "': " + key + " must be > 0, got " +
                      util::format_number(value));
    }
  };
  positive("eta", spec.eta);
  positive("tau", spec.tau);
  positive("R", spec.range);
  if (spec.gamma < 0) {
    throw SpecError("model spec '" + std::string(text) + "': gamma must be >= 0, got " +
                    util::format_number(spec.gamma));
  }
  // The weights are f32 and hold eta, gamma, beta, 1/tau and the knots -R..R: keep every one of
  // them, and the scores they make, far inside f32's range (found by fuzzing: eta = 2e98
  // became an infinite attention scale).
  auto bounded = [&](const char* key, double value, double lowest, double highest) {
    if (value != 0 && (std::abs(value) < lowest || std::abs(value) > highest)) {
      throw SpecError("model spec '" + std::string(text) + "': " + key + " must have magnitude in [" +
                      util::format_number(lowest) + ", " + util::format_number(highest) + "], got " +
                      util::format_number(value));
    }
  };
  bounded("eta", spec.eta, 1e-6, 1e6);
  bounded("gamma", spec.gamma, 1e-6, 1e6);
  bounded("tau", spec.tau, 1e-6, 1e6);
  bounded("R", spec.range, 1e-6, 1e4);
  bounded("beta", spec.beta, 1e-6, 1e6);
  // Canonical text: every parameter of the construction, in its documented order.
  const std::map<std::string_view, double> resolved = {
      {"L", spec.steps},       {"eta", spec.eta},   {"gamma", spec.gamma}, {"tau", spec.tau},
      {"K", spec.segments},    {"R", spec.range},   {"beta", spec.beta},
      {"D", spec.width},       {"H", spec.heads},   {"F", spec.ffn},       {"layers", spec.layers}};
  spec.text = std::string(name) + ":";
  for (std::size_t i = 0; i < entry->parameters.size(); ++i) {
    const std::string_view key = entry->parameters[i];
    spec.text += (i ? "," : "") + std::string(key) + "=" + util::format_number(resolved.at(key));
  }
  return spec;
}

double pl_sigmoid(double z, int segments, double range) {
  const double clamped = std::clamp(z, -range, range);
  const double step = 2.0 * range / segments;
  const int k = std::min(segments - 1, static_cast<int>(std::floor((clamped + range) / step)));
  const double left = -range + step * k;
  const auto sigma = [](double t) { return 1.0 / (1.0 + std::exp(-t)); };
  const double fraction = (clamped - left) / step;
  return sigma(left) + fraction * (sigma(left + step) - sigma(left));
}

bool is_constructed_learner(const ConstructionSpec& spec) {
  return spec.kind != ConstructionKind::kEncoder;
}

ModelConfig construction_config(const ConstructionSpec& spec, int input_dim) {
  ModelConfig config;
  config.name = spec.text;
  if (spec.kind == ConstructionKind::kEncoder) {
    config.width = spec.width;
    LayerConfig layer;
    layer.attention_norm = layer.mlp_norm = true;
    layer.attention = AttentionKind::kSoftmax;
    layer.heads = spec.heads;
    layer.qk_dim = layer.v_dim = spec.width / spec.heads;
    layer.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(layer.qk_dim)));
    layer.mask = Mask::kIcl;
    layer.mlp_hidden = spec.ffn;
    layer.activation = Activation::kGelu;
    config.layers.assign(static_cast<std::size_t>(spec.layers), layer);
    return config;
  }
  if (input_dim < 1 || input_dim > 65536) {
    throw util::ParameterError("d", "must be in [1, 65536] for a constructed model, got " +
                                        std::to_string(input_dim));
  }
  const Slots s{input_dim};
  const int d = input_dim;
  config.width = s.width();
  config.input_dim = d;
  config.readout = s.p();

  switch (spec.kind) {
    case ConstructionKind::kGdLeastSquares: {
      // p_j += (eta/n) sum_i (y_i - p_i)(x_i . x_j): q = k = x, v = y - p, written into p.
      LayerConfig layer = icl_linear_attention(d, 1, 1, static_cast<float>(spec.eta));
      layer.loop = spec.steps;
      config.layers = {layer};
      break;
    }
    case ConstructionKind::kGdPlusPlus: {
      // Two heads reading the same tokens, both divided by n: head 0 as gd-ls (eta in W_o),
      // head 1 x_j -= (gamma/n) sum_i x_i (x_i . x_j) (values v_i = x_i, -gamma in W_o).
      LayerConfig layer = icl_linear_attention(d, 2, d, 1.0f);
      layer.loop = spec.steps;
      config.layers = {layer};
      break;
    }
    case ConstructionKind::kGdHinge:
    case ConstructionKind::kGdLogistic: {
      // Layer 0 sets g from p = 0; layer 1, looped L times, takes one GD step
      // p_j += (eta/n) sum_i g_i (x_i . x_j) and then recomputes g at the new scores.
      const int hidden = spec.kind == ConstructionKind::kGdHinge ? 6 : spec.segments + 1 + 4;
      LayerConfig first = gradient_mlp_layer(hidden);
      LayerConfig step = gradient_mlp_layer(hidden);
      const LayerConfig attention = icl_linear_attention(d, 1, 1, static_cast<float>(spec.eta));
      step.attention = attention.attention;
      step.heads = attention.heads;
      step.qk_dim = attention.qk_dim;
      step.v_dim = attention.v_dim;
      step.scale = attention.scale;
      step.mean_over_keys = attention.mean_over_keys;
      step.loop = spec.steps;
      config.layers = {first, step};
      break;
    }
    case ConstructionKind::kKernel: {
      // p_j = sum_i softmax_i(beta x_i . x_j) y_i.
      LayerConfig layer;
      layer.attention = AttentionKind::kSoftmax;
      layer.heads = 1;
      layer.qk_dim = d;
      layer.v_dim = 1;
      layer.scale = static_cast<float>(spec.beta);
      layer.mask = Mask::kIcl;
      config.layers = {layer};
      break;
    }
    case ConstructionKind::kEncoder:
      break;  // handled above
  }
  return config;
}

Model construct(const ConstructionSpec& spec, int input_dim, std::uint64_t seed) {
  Model model{construction_config(spec, input_dim), {}};
  if (spec.kind == ConstructionKind::kEncoder) {
    model.weights = random_weights(model.config, seed);
    return model;
  }
  model.weights = zero_weights(model.config);
  const Slots s{input_dim};
  const int d = input_dim;
  switch (spec.kind) {
    case ConstructionKind::kGdLeastSquares: {
      LayerWeights& w = model.weights.layers[0];
      identity_queries_and_keys(w, s, 1, 0);
      set(w.wv, 1, s.y(), 0, 1.0);
      set(w.wv, 1, s.p(), 0, -1.0);
      set(w.wo, s.width(), 0, s.p(), 1.0);
      break;
    }
    case ConstructionKind::kGdPlusPlus: {
      LayerWeights& w = model.weights.layers[0];
      identity_queries_and_keys(w, s, 2, 0);
      identity_queries_and_keys(w, s, 2, 1);
      set(w.wv, 2 * d, s.y(), 0, 1.0);
      set(w.wv, 2 * d, s.p(), 0, -1.0);
      set(w.wo, s.width(), 0, s.p(), spec.eta);
      for (int j = 0; j < d; ++j) {
        set(w.wv, 2 * d, j, d + j, 1.0);
        set(w.wo, s.width(), d + j, j, -spec.gamma);
      }
      break;
    }
    case ConstructionKind::kGdHinge:
    case ConstructionKind::kGdLogistic: {
      for (LayerWeights& w : model.weights.layers) {
        if (spec.kind == ConstructionKind::kGdHinge) {
          hinge_units(w, s, spec.tau);
        } else {
          logistic_units(w, s, spec.segments, spec.range);
        }
      }
      LayerWeights& w = model.weights.layers[1];
      identity_queries_and_keys(w, s, 1, 0);
      set(w.wv, 1, s.g(), 0, 1.0);
      set(w.wo, s.width(), 0, s.p(), 1.0);
      break;
    }
    case ConstructionKind::kKernel: {
      LayerWeights& w = model.weights.layers[0];
      identity_queries_and_keys(w, s, 1, 0);
      set(w.wv, 1, s.y(), 0, 1.0);
      set(w.wo, s.width(), 0, s.p(), 1.0);
      break;
    }
    case ConstructionKind::kEncoder:
      break;  // handled above
  }
  return model;
}

std::vector<float> icl_tokens(std::span<const float> x, std::span<const float> y,
                              std::span<const float> x_query, int d) {
  const Slots s{d};
  const std::size_t n = y.size();
  const std::size_t m = x_query.size() / static_cast<std::size_t>(d);
  const auto width = static_cast<std::size_t>(s.width());
  std::vector<float> tokens((n + m) * width, 0.0f);
  for (std::size_t i = 0; i < n; ++i) {
    std::copy_n(x.begin() + i * d, d, tokens.begin() + i * width);
    tokens[i * width + s.y()] = y[i];
    tokens[i * width + s.c()] = 1.0f;
  }
  for (std::size_t q = 0; q < m; ++q) {
    std::copy_n(x_query.begin() + q * d, d, tokens.begin() + (n + q) * width);
  }
  return tokens;
}

}  // namespace iclbench::model
