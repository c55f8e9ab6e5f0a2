#pragma once
// Models in the layout of Garg et al. 2022 ("What can transformers learn in-context?", public
// repository dtsip/in-context-learning, src/models.py TransformerModel): the garg-gpt2 safetensors
// format that scripts/train/garg_model.py writes, and the interleaved prompts such models read.
//
// The file: tensors named as that model's PyTorch state_dict, all F32 (d = n_dims,
// D = n_embd, P = n_positions, L = n_layer; Conv1D weights are [in, out], torch.nn.Linear's
// [out, in]):
//   _read_in.weight [D, d], _read_in.bias [D], _backbone.wpe.weight [2P, D]
//   _backbone.h.{i}.ln_1.weight/.bias [D], attn.c_attn.weight [D, 3D] (q | k | v columns, head j
//     at columns j dh .. (j+1) dh - 1 of each, dh = D / H), attn.c_attn.bias [3D],
//     attn.c_proj.weight [D, D], .bias [D], ln_2.weight/.bias [D], mlp.c_fc.weight [D, 4D],
//     .bias [4D], mlp.c_proj.weight [4D, D], .bias [D]                      for i < L
//   _backbone.ln_f.weight/.bias [D], _read_out.weight [1, D], _read_out.bias [1]
// and __metadata__ format "garg-gpt2", format_version 1, n_dims, n_positions, n_embd, n_layer,
// n_head (integers as strings), layer_norm_epsilon, activation_function "gelu_new".
//
// As a ModelConfig: read_in, positions = 2P, L pre-LayerNorm layers of causal softmax attention
// (H heads of width dh, scale 1/sqrt(dh)) and a GELU-tanh MLP of width 4D, then read_out
// (ln_f, _read_out). Each label token is (y, 0, ..., 0) in R^d; the prediction for a query is
// read at its token.

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "io/safetensors.hpp"
#include "model/weights.hpp"

namespace iclbench::model {

inline constexpr std::string_view kGargFormat = "garg-gpt2";
inline constexpr int kGargFormatVersion = 1;

bool is_garg_file(const io::SafetensorsReader& file);
// The config from __metadata__; throws io::FormatError naming the bad or missing key.
ModelConfig garg_config(const io::SafetensorsReader& file);
// Config and weights; throws io::FormatError naming the missing, extra, misshapen, non-F32 or
// non-finite tensor.
Model load_garg_model(const io::SafetensorsReader& file);

// The prompt x_1, y_1, ..., x_k, y_k, x_q as tokens [2k + 1, d]; the query's score is read at the
// last token (row 2k). x: [k, d], y: [k], x_query: [d].
std::vector<float> interleaved_tokens(std::span<const float> x, std::span<const float> y,
                                      std::span<const float> x_query, int d);
// Tokens of the prompt for k context pairs: 2k + 1.
inline std::int64_t interleaved_prompt_tokens(std::int64_t k) { return 2 * k + 1; }
// The most context pairs a model with `positions` positions can read before one query.
inline std::int64_t interleaved_max_context(std::int64_t positions) { return (positions - 1) / 2; }

}  // namespace iclbench::model
