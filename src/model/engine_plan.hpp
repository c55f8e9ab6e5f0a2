#pragma once
// Internal to the engine: the plan for one prompt shape (T, n). It holds every oneDNN primitive,
// built once when the shape is first seen and then only executed ("create once, execute many"),
// the ops each layer runs, and the buffers they run in.
//
// Shapes (letters as in engine.hpp): G prompts in a group, T tokens per prompt, padded to
// T_pad = tiles * R rows; R rows per tile; Tk keys (n under the icl mask, T under the causal
// one); D width; H heads; dk / dv per-head query-key / value widths; F MLP width.

#include <tbb/enumerable_thread_specific.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "model/config.hpp"
#include "model/engine.hpp"
#include "model/weights.hpp"
#include "ops/dnnl_ops.hpp"
#include "ops/row_softmax.hpp"

namespace iclbench::model {

inline constexpr std::size_t kBufferAlignment = 64;

// 64-byte aligned bytes (what oneDNN's kernels like best).
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(std::size_t bytes);
  std::byte* data() const { return data_.get(); }
  std::size_t size() const { return size_; }

 private:
  struct Free {
    void operator()(void* pointer) const;
  };
  std::unique_ptr<std::byte, Free> data_;
  std::size_t size_ = 0;
};

// The sizes of a plan for (T, n), known before any primitive exists: what the plan allocates and
// what Engine::working_bytes() reports both come from here, so the two cannot drift.
struct PlanShape {
  std::int64_t tile_rows = 0;      // R
  std::int64_t tiles = 0;          // T_pad / R
  std::int64_t padded_tokens = 0;  // T_pad
  std::int64_t keys = 0;           // Tk
  // Widest layer's Q, [K V] and O rows, and its K^T V product, in elements.
  std::int64_t query_width = 0, key_value_width = 0, attended_width = 0, product_size = 0;
  std::size_t act_size = 4;          // bytes per element of Q, K, V, O (f32 or bf16)
  std::size_t max_scores = 0;        // elements of a thread's score tile [H, R, Tk]
  std::size_t max_hidden = 0;        // elements of a thread's MLP hidden rows [R, F]
  std::size_t per_prompt_bytes = 0;  // group buffers per prompt
  std::int64_t group = 0;            // prompts per group
  std::size_t mask_bytes = 0;        // causal masks
};
PlanShape plan_shape(const ModelConfig& config, const EngineOptions& options, std::int64_t tokens,
                     std::int64_t context);

// Where each part of a thread's scratch starts, in bytes: normed f32 [R, D], converted bf16
// [R, D], scores f32 [H, R, Tk], softmax weights in bf16 [H, R, Tk] (bf16 runs only: an f32
// softmax runs in place), MLP hidden [R, F], then the oneDNN scratchpad.
struct ScratchLayout {
  std::size_t normed = 0, converted = 0, scores = 0, weights = 0, hidden = 0, scratchpad = 0;
  std::size_t total = 0;
};
ScratchLayout scratch_layout(const PlanShape& shape, std::int64_t width,
                             std::size_t scratchpad_bytes);

// One thread's scratch for the row tile it works on (all row-major, R rows).
struct TileScratch {
  std::byte* normed = nullptr;          // LayerNorm(x): [R, D] f32
  std::byte* converted = nullptr;       // the matmul input in bf16: [R, D]
  std::byte* scores = nullptr;          // S: [H, R, Tk], f32 for softmax, else the act dtype
  std::byte* softmax_output = nullptr;  // A = softmax(S): [H, R, Tk] act dtype (== scores in f32)
  std::byte* hidden = nullptr;          // act(h W_1 + b_1): [R, F] act dtype
  std::byte* scratchpad = nullptr;      // oneDNN's, sized for the largest op
};

// How a layer's attention turns Q, K and V into O. (A fused per-tile kernel would be one more
// path, with its own ops in AttentionPlan.)
enum class AttentionPath {
  // M = scale K^T V once per prompt, then O = Q M per row tile: linear attention under the icl
  // mask, O(T dk dv) per head instead of O(T n (dk + dv)).
  kKeysTimesValues,
  // S = scale Q K^T (masked), A = softmax(S) | S | ReLU(S), O = A V per row tile: softmax and
  // ReLU attention, every causal layer, and linear attention when
  // EngineOptions::explicit_linear_attention asks for it.
  kExplicitScores,
};

// The ops of one layer's attention block: x += Attention(norm(x)) W_o + b_o.
struct AttentionPlan {
  std::int64_t heads = 0, qk_dim = 0;  // H, dk
  std::int64_t query_width = 0;        // H dk
  std::int64_t key_value_width = 0;    // H (dk + dv): K and V side by side in one row
  std::int64_t attended_width = 0;     // H dv
  std::int64_t product_size = 0;       // H dk dv
  std::int64_t keys = 0;               // Tk: only the first Tk rows need K and V
  std::size_t head_qk_bytes = 0;       // bytes from one head's q (or k) to the next's: dk elements
  std::size_t values_offset = 0;       // bytes from a [K V] row to its V part: H dk elements

  std::optional<ops::LayerNorm> norm;    // h = LayerNorm(x) [R, D]
  std::optional<ops::Convert> to_bf16;   // h in bf16, for bf16 matmuls
  std::optional<ops::Linear> query;      // Q = h W_q + b_q: [R, H dk]
  std::optional<ops::Linear> key_value;  // [K V] = h [W_k W_v] + [b_k b_v]: [R, H (dk + dv)]

  AttentionPath path = AttentionPath::kExplicitScores;
  // kKeysTimesValues
  std::optional<ops::MatMul> keys_times_values;      // M = scale K^T V: [H, dk, dv] per prompt
  std::optional<ops::MatMul> queries_times_product;  // O = Q M: [H, R, dv]
  // kExplicitScores
  std::optional<ops::MatMul> scores;  // S = scale Q K^T (masked, ReLU for relu): [H, R, Tk]
  // Causal: one [R, Tk] call per head, `head_score_bytes` apart, with the 2-D mask tile.
  bool scores_per_head = false;
  std::size_t head_score_bytes = 0;
  const std::vector<float>* mask = nullptr;  // causal: [T_pad, Tk]; a tile reads its R rows
  std::optional<ops::RowSoftmax> softmax;    // A = softmax(S), softmax attention only
  std::optional<ops::MatMul> mix;            // O = A V: [H, R, dv]

  std::optional<ops::Linear> output;  // x += O W_o + b_o: [R, D]
};

// The ops of one layer's MLP block: x += act(norm(x) W_1 + b_1) W_2 + b_2.
struct MlpPlan {
  std::optional<ops::LayerNorm> norm;   // h = LayerNorm(x) [R, D]
  std::optional<ops::Convert> to_bf16;  // h in bf16, for bf16 matmuls
  std::optional<ops::Linear> up;        // act(h W_1 + b_1): [R, F]
  std::optional<ops::Linear> down;      // x += hidden W_2 + b_2: [R, D]
};

// Which ops one layer runs: a block is absent when the layer has none.
struct LayerPlan {
  int passes = 1;  // the layer's `loop`: passes with the same weights
  std::optional<AttentionPlan> attention;
  std::optional<MlpPlan> mlp;
};

// Everything for one (T, n): the layers' ops, causal masks, the group buffers and per-thread
// scratch.
struct EnginePlan {
  std::int64_t tokens = 0, context = 0;  // T, n
  std::int64_t width = 0;                // D
  PlanShape shape;
  ops::DType act = ops::DType::kF32;  // data type of Q, K, V, O, M and the bf16 copies
  std::vector<LayerPlan> layers;
  // Causal masks, one per (softmax?, mean over keys?) variant a layer needs: [T_pad, Tk].
  std::map<std::pair<bool, bool>, std::vector<float>> masks;

  // Group buffers, prompt-major: [G, T_pad, width] each (the widest layer's width), and the
  // K^T V products [G, H dk dv].
  Buffer stream, queries, keys_values, attended, products;
  std::int64_t allocated_group = 0;  // prompts the group buffers hold now

  ScratchLayout scratch;
  mutable tbb::enumerable_thread_specific<Buffer> thread_scratch_buffers;

  // Sizes the group buffers for `prompts` prompts (grown on demand, so that a call with a few
  // prompts does not hold a full group's memory).
  void reserve_group(std::int64_t prompts);
  // The calling thread's scratch (allocated on its first use).
  TileScratch thread_scratch() const;
};

// Builds every op of every layer for (T, n); n is 0 under the causal mask.
std::unique_ptr<EnginePlan> build_plan(const ModelConfig& config, const Weights& weights,
                                       const EngineOptions& options, std::int64_t tokens,
                                       std::int64_t context);

}  // namespace iclbench::model
