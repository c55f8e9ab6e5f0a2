#pragma once
// ModelConfig: a stack of transformer layers over a residual stream of width D.
//
// One layer, read top to bottom:
//   h = attention_norm ? LayerNorm(x) : x
//   x = x + Attention(h) W_o + b_o              (unless attention == none)
//   h = mlp_norm ? LayerNorm(x) : x
//   x = x + act(h W_1 + b_1) W_2 + b_2           (unless mlp_hidden == 0)
// repeated `loop` times with the same weights.
//
// Attention per head, over the keys a token may see (its mask):
//   scores s_tk = scale * (q_t . k_k), divided by the number of visible keys if mean_over_keys
//   softmax: a = softmax_k(s)   linear: a = s   relu: a = max(s, 0)
//   out_t = sum_k a_tk v_k
// Masks: icl    - every token sees the first n tokens (the context), so queries never influence
//                 anything and any number of them costs one pass;
//        causal - token t sees tokens 0..t (interleaved GPT-2-style prompts).
//
// Shapes: T tokens per prompt (n context, then queries), D width, H heads, dk q/k width per head,
// dv value width per head, F MLP hidden width.

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/text.hpp"

namespace iclbench::model {

enum class AttentionKind { kNone, kSoftmax, kLinear, kRelu };
enum class Mask { kIcl, kCausal };
// kGelu is the exact (erf) form, as PyTorch's; kGeluTanh GPT-2's tanh approximation ("gelu_new").
enum class Activation { kNone, kRelu, kGelu, kGeluTanh };

std::string_view to_string(AttentionKind kind);
std::string_view to_string(Mask mask);
std::string_view to_string(Activation activation);

// (query, key) pairs one attention head scores in a forward over T tokens with n context
// tokens: T n under the icl mask (every row sees the n context keys; an encoder passes n = T),
// T (T + 1) / 2 under the causal mask (row t sees keys 0..t). FLOP counts use it: attention is
// credited with what its mask needs, not the T^2 a dense score matrix would hold (the fused
// kernel computes the visible pairs up to its block edges; the unfused path computes all T^2
// and masks them, and is credited with the same useful count).
double attended_pairs(Mask mask, std::int64_t tokens, std::int64_t context);

struct LayerConfig {
  bool attention_norm = false;
  AttentionKind attention = AttentionKind::kNone;
  int heads = 1;
  int qk_dim = 0;  // per head
  int v_dim = 0;   // per head
  float scale = 1.0f;
  bool mean_over_keys = false;  // linear and relu attention only
  Mask mask = Mask::kIcl;
  bool mlp_norm = false;
  int mlp_hidden = 0;  // 0 = no MLP
  Activation activation = Activation::kNone;
  int loop = 1;
  float norm_epsilon = 1e-5f;

  bool has_attention() const { return attention != AttentionKind::kNone; }
  bool has_mlp() const { return mlp_hidden > 0; }
  bool operator==(const LayerConfig&) const = default;
};

struct ModelConfig {
  std::string name;  // e.g. the construction spec it was built from
  int width = 0;     // D
  // Constructed models read a token layout (x, y, p, g, c) of input dimension `input_dim` and
  // predict with the residual slot `readout` of each query token; 0 / -1 when not applicable.
  int input_dim = 0;
  int readout = -1;
  std::vector<LayerConfig> layers;
  // A learned model's entry and exit (Garg et al. 2022's GPT-2 layout, model/garg.hpp); all off
  // for constructed models, whose tokens are already in the residual layout. With them,
  //   x_t     = token_t W_in + b_in + P_t         token_t in R^input_dim, W_in [input_dim, D]
  //   score_t = LayerNorm(x_t after the last layer) w_out + b_out     w_out [D, 1]
  bool read_in = false;
  int positions = 0;  // rows of the learned positional table P [positions, D]: the longest prompt
  bool read_out = false;
  float read_out_norm_epsilon = 1e-5f;

  // Every layer's mask must agree: a prompt is either an icl prompt or a causal one.
  Mask mask() const;
  std::int64_t parameter_count() const;
  // Multiply-adds of one forward pass over T tokens with n context tokens, counted as 2 FLOPs
  // each, for the association the engine uses (Q (K^T V) for linear icl attention unless
  // `explicit_linear`); (Q K^T) V over attended_pairs(mask, T, n) (query, key) pairs per head.
  double forward_flops(std::int64_t tokens, std::int64_t context, bool explicit_linear = false) const;
  bool operator==(const ModelConfig&) const = default;
};

// A configuration that cannot run, with the field that is wrong.
class ConfigError : public std::invalid_argument {
 public:
  // Escaped as util::ParameterError's: a NUL in user input must not cut what() short.
  explicit ConfigError(const std::string& message) : std::invalid_argument(util::escape_control(message)) {}
};
void validate(const ModelConfig& config);

inline constexpr std::string_view kModelFormat = "iclbench-model";
inline constexpr int kModelFormatVersion = 1;

nlohmann::json to_json(const ModelConfig& config);
// Throws ConfigError naming the first bad or missing field.
ModelConfig config_from_json(const nlohmann::json& json);

}  // namespace iclbench::model
