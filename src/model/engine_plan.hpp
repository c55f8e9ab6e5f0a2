#pragma once
// Internal to the engine: the plan for one prompt shape (T, n). It holds every oneDNN primitive,
// built once when the shape is first seen and then only executed ("create once, execute many"),
// the ops each layer runs, and the buffers they run in.
//
// Shapes (letters as in engine.hpp): G prompts in a group, T tokens per prompt, padded to
// T_pad = tiles * R rows; R rows per tile; Tk keys (n under the icl mask, T under the causal
// one); D width; H heads; dk / dv per-head query-key / value widths; F MLP width.

#include <tbb/enumerable_thread_specific.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "model/config.hpp"
#include "model/engine.hpp"
#include "model/weight_structure.hpp"
#include "model/weights.hpp"
#include "ops/attention.hpp"
#include "ops/column_sweep.hpp"
#include "ops/dnnl_ops.hpp"
#include "ops/gelu.hpp"
#include "ops/linear_attention.hpp"
#include "ops/row_layer_norm.hpp"
#include "ops/row_softmax.hpp"
#include "ops/small_mlp.hpp"

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
  std::size_t max_scores = 0;        // elements of a thread's score tile [H, R, Tk] (unfused)
  std::size_t fused_scratch = 0;     // bytes of the largest ops::FusedAttention scratchpad
  std::size_t max_hidden = 0;        // elements of a thread's MLP hidden rows [R, F]
  std::size_t per_prompt_bytes = 0;  // group buffers per prompt
  std::int64_t group = 0;            // prompts per group
  std::size_t mask_bytes = 0;        // causal masks (unfused attention only)
  bool key_block_sums = false;       // room for [G, tiles, product_size] f32 block sums of K^T V
  // With key_block_sums, room for a column-major copy of a prompt's live slots
  // (ops::ColumnSweep): [G, column_count, column_stride] f32, column_stride = T_pad rounded up
  // to 16, column_count = ops::ColumnSweep::max_columns(D, F) over the looped layers.
  std::int64_t column_stride = 0, column_count = 0;
};
PlanShape plan_shape(const ModelConfig& config, const EngineOptions& options, std::int64_t tokens,
                     std::int64_t context);

// Where each part of a thread's scratch starts, in bytes: normed f32 [R, D], converted bf16
// [R, D], scores f32 [H, R, Tk], softmax weights in bf16 [H, R, Tk] (bf16 runs only: an f32
// softmax runs in place), MLP hidden [R, F], then the scratchpad shared by oneDNN's ops and
// ops::FusedAttention (at least shape.fused_scratch).
struct ScratchLayout {
  std::size_t normed = 0, converted = 0, scores = 0, weights = 0, hidden = 0, scratchpad = 0;
  std::size_t total = 0;
};
ScratchLayout scratch_layout(const PlanShape& shape, std::int64_t width,
                             std::size_t scratchpad_bytes);

// One thread's clock for EngineOptions::time_op_groups: lap(g) charges the time since the last
// start() or lap() to op group g, so one clock read per op times every op. Wall-clock time, not
// the thread's CPU time that ops::gemm_peak_gflops is timed in: a thread CPU clock read is a
// system call here (~2.6 us at load 11, against ~40 ns for steady_clock): ~1800 of them in a
// forward of the standard encoder would add over 10% to its ~35 ms, most of it to the short ops
// (layer_norm's share read 7% with them). So on a loaded host a slice the thread
// spent descheduled goes to the op it interrupted, and the groups' fractions of the peak are
// lower than the whole forward's CPU-time one.
struct OpGroupClock {
  std::array<double, kOpGroupCount> seconds{};
  std::chrono::steady_clock::time_point last;
  void start() { last = std::chrono::steady_clock::now(); }
  void lap(OpGroup group) {
    const auto now = std::chrono::steady_clock::now();
    seconds[static_cast<std::size_t>(group)] += std::chrono::duration<double>(now - last).count();
    last = now;
  }
};

// One thread's scratch for the row tile it works on (all row-major, R rows).
struct TileScratch {
  std::byte* normed = nullptr;          // LayerNorm(x): [R, D] f32
  std::byte* converted = nullptr;       // the matmul input in bf16: [R, D]
  std::byte* scores = nullptr;          // S: [H, R, Tk], f32 for softmax, else the act dtype
  std::byte* softmax_output = nullptr;  // A = softmax(S): [H, R, Tk] act dtype (== scores in f32)
  std::byte* hidden = nullptr;          // act(h W_1 + b_1): [R, F] act dtype
  std::byte* scratchpad = nullptr;      // oneDNN's or FusedAttention's, sized for the largest op
  OpGroupClock* clock = nullptr;        // this thread's, when timing op groups
  // Charges the time since the last lap to `group` (nothing when not timing).
  void lap(OpGroup group) const {
    if (clock) clock->lap(group);
  }
  void start_clock() const {
    if (clock) clock->start();
  }
};

// How a layer's attention turns Q, K and V into O.
enum class AttentionPath {
  // M = scale K^T V once per prompt, then O = Q M per row tile: linear attention under the icl
  // mask, O(T dk dv) per head instead of O(T n (dk + dv)).
  kKeysTimesValues,
  // S = scale Q K^T (masked), A = softmax(S) | S | ReLU(S), O = A V per row tile: softmax and
  // ReLU attention, every causal layer, and linear attention when
  // EngineOptions::explicit_linear_attention asks for it; with
  // EngineOptions::unfused_attention only.
  kExplicitScores,
  // The same maths in one ops::FusedAttention call per row tile (all heads): the default for
  // every layer kExplicitScores would serve.
  kFused,
};
// The path a layer's attention takes under `options`.
AttentionPath attention_path(const LayerConfig& layer, bool causal, const EngineOptions& options);

// The ops of one layer's attention block: x += Attention(norm(x)) W_o + b_o.
struct AttentionPlan {
  std::int64_t heads = 0, qk_dim = 0;  // H, dk
  std::int64_t query_width = 0;        // H dk
  std::int64_t key_value_width = 0;    // H (dk + dv): K and V side by side in one row
  std::int64_t attended_width = 0;     // H dv
  std::int64_t product_size = 0;       // H dk dv
  std::int64_t keys = 0;               // Tk: only the first Tk rows need K and V
  std::int64_t tile_rows = 0;          // R
  std::size_t head_qk_bytes = 0;       // bytes from one head's q (or k) to the next's: dk elements
  std::size_t values_offset = 0;       // bytes from a [K V] row to its V part: H dk elements

  // h = LayerNorm(x) [R, D] in the matmuls' dtype; without a norm, x in bf16 for bf16 matmuls.
  std::optional<ops::RowLayerNorm> norm;
  std::optional<ops::Convert> to_bf16;
  // Absent when the plan reads Q, or K and V, straight from x (see `small`).
  std::optional<Projection> query;      // Q = h W_q + b_q: [R, H dk]
  std::optional<Projection> key_value;  // [K V] = h [W_k W_v] + [b_k b_v]: [R, H (dk + dv)]

  AttentionPath path = AttentionPath::kExplicitScores;
  // kKeysTimesValues
  std::optional<ops::MatMul> keys_times_values;      // M = scale K^T V: [H, dk, dv] per prompt
  std::optional<ops::MatMul> queries_times_product;  // O = Q M: [H, R, dv]
  // kKeysTimesValues in an f32 plan with dv <= ops::LinearAttention::kMaxValueWidth: both
  // products by ops::LinearAttention instead of the two matmuls. With weight structure and no
  // attention norm, projections that only select slots of x (one weight 1 per column, no bias,
  // a head's columns consecutive) are not run: the kernel reads Q, or K and V, straight from
  // the residual stream, and adds O straight into it when W_o only selects (then `query`,
  // `key_value` or `output` is absent).
  std::optional<ops::LinearAttention> small;
  bool query_view = false, key_value_view = false, output_view = false;
  // One sweep per pass (a looped layer whose Q, K and V are all views of x): per row tile,
  // O = Q M, the output projection and the MLP, and then, while the tile is in cache, its block
  // sum of the next pass's K^T V (ops::LinearAttention::key_block_sum into the plan's
  // key_block_sums); the next pass's M is those block sums added in tile order
  // (combine_key_blocks). The tile partition is the plan's, whatever the thread count, and M's
  // blocks are the tiles in every path, so this gives the same bits as one sweep for M and one
  // for the rest, and reads the stream once per pass instead of twice.
  bool one_sweep = false;
  // kExplicitScores
  std::optional<ops::MatMul> scores;  // S = scale Q K^T (masked, ReLU for relu): [H, R, Tk]
  // Causal: one [R, Tk] call per head, `head_score_bytes` apart, with the 2-D mask tile.
  bool scores_per_head = false;
  std::size_t head_score_bytes = 0;
  const std::vector<float>* mask = nullptr;  // causal: [T_pad, Tk]; a tile reads its R rows
  std::optional<ops::RowSoftmax> softmax;    // A = softmax(S), softmax attention only
  std::optional<ops::MatMul> mix;            // O = A V: [H, R, dv]
  // kFused
  std::optional<ops::FusedAttention> fused;  // O = A(scale Q K^T) V: [R, H dv]

  std::optional<Projection> output;  // x += O W_o + b_o: [R, D] (absent with output_view)
};

// The ops of one layer's MLP block: x += act(norm(x) W_1 + b_1) W_2 + b_2.
struct MlpPlan {
  // h = LayerNorm(x) [R, D] in the matmuls' dtype; without a norm, x in bf16 for bf16 matmuls.
  std::optional<ops::RowLayerNorm> norm;
  std::optional<ops::Convert> to_bf16;
  // Dense: hidden [R, F]. Structured (model/weight_structure.hpp): only the F' live hidden units,
  // compact and column-major [F', R], each reading only the live input slots and writing only
  // the live outputs (the activation applied inside).
  std::optional<Projection> up;    // act(h W_1 + b_1): [R, F] or [F', R]
  // GELU as a pass of its own after a dense `up` (which then has no post-op and writes f32):
  // oneDNN's gelu_erf post-op costs more than the projection's GEMM plus this pass
  // (kernels_bench, projection/mlp_up_gelu). In place over the f32 hidden tile; to bf16 for
  // bf16 matmuls.
  std::optional<ops::Gelu> gelu;
  std::optional<Projection> down;  // x += hidden W_2 + b_2: [R, D]
  // Structured, no norm, few live inputs, units and outputs, ReLU or no activation: the whole
  // block in place on x by ops::SmallMlp over its nonzero weights only (then up and down are
  // absent).
  std::optional<ops::SmallMlp> small;
};

// A learned model's exit (ModelConfig::read_out): score = LayerNorm(x) w_out + b_out.
struct ReadOutPlan {
  std::optional<ops::RowLayerNorm> norm;  // LayerNorm(x) [R, D] in the matmuls' dtype
  std::optional<ops::Linear> project;   // [R, D] -> [R, 1] f32
};

// Which ops one layer runs: a block is absent when the layer has none.
struct LayerPlan {
  int passes = 1;  // the layer's `loop`: passes with the same weights
  // Multiply-adds executed per prompt, as 2 FLOPs each, by the first pass and by each later one
  // (they differ when weight structure computes pass-invariant columns once).
  double first_pass_flops = 0, later_pass_flops = 0;
  std::optional<AttentionPlan> attention;
  std::optional<MlpPlan> mlp;
  // A one-sweep layer (AttentionPlan::one_sweep) whose O is added straight into x and whose MLP,
  // if any, is an ops::SmallMlp: the loop runs on the live slots held column-major in the plan's
  // `columns` buffer (read-only slots transposed in before pass 0, written ones scattered back
  // after the last pass), by ops::ColumnSweep instead of attention->small and mlp->small.
  std::optional<ops::ColumnSweep> column_sweep;
};

// Everything for one (T, n): the layers' ops, causal masks, the group buffers and per-thread
// scratch.
struct EnginePlan {
  std::int64_t tokens = 0, context = 0;  // T, n
  std::int64_t width = 0;                // D
  PlanShape shape;
  ops::DType act = ops::DType::kF32;  // data type of Q, K, V, O, M and the bf16 copies
  std::vector<LayerPlan> layers;
  // FLOPs one prompt executes: every layer's passes (real rows, as ModelConfig::forward_flops
  // counts them; the padding rows of the last tile are not counted).
  double flops = 0;
  // A learned model's entry (ModelConfig::read_in): x = token W_in + b_in + P_t, the tokens
  // [R, input_width] f32 (staged zero-padded in the thread's `normed` scratch, as d <= D).
  std::int64_t input_width = 0;        // d with read_in, else D
  std::optional<ops::Linear> read_in;  // x += token W_in + b_in: [R, d] -> [R, D], always f32
  const std::vector<float>* positions = nullptr;  // P [positions, D], the engine's weights
  std::optional<ReadOutPlan> read_out;
  // Causal masks, one per (softmax?, mean over keys?) variant a layer needs: [T_pad, Tk].
  std::map<std::pair<bool, bool>, std::vector<float>> masks;

  // Group buffers, prompt-major: [G, T_pad, width] each (the widest layer's width), and the
  // K^T V products [G, H dk dv].
  Buffer stream, queries, keys_values, attended, products;
  Buffer key_block_sums;  // [G, tiles, H dk dv] f32, when shape.key_block_sums (one-sweep layers)
  Buffer columns;         // [G, column_count, column_stride] f32, when shape.column_stride (column sweeps)
  Buffer read_out_scores;            // [G, T_pad] f32, with read_out
  std::int64_t allocated_group = 0;  // prompts the group buffers hold now

  ScratchLayout scratch;
  mutable tbb::enumerable_thread_specific<Buffer> thread_scratch_buffers;
  // EngineOptions::time_op_groups: every thread's clock, summed by Engine::take_op_group_times.
  bool time_op_groups = false;
  mutable tbb::enumerable_thread_specific<OpGroupClock> clocks;
  std::int64_t timed_prompts = 0;

  // Sizes the group buffers for `prompts` prompts (grown on demand, so that a call with a few
  // prompts does not hold a full group's memory).
  void reserve_group(std::int64_t prompts);
  // The calling thread's scratch (allocated on its first use).
  TileScratch thread_scratch() const;
};

// The most that build_plan holds at once for the weights: the packed weights of the layers built
// so far plus, in an f32 plan with weight structure, the copies that structure analysis makes
// of the projection it reads (which it drops when the dense form stays the cheaper). At least
// the packed weights of the whole plan (parameter_count() elements of the act dtype).
std::uint64_t plan_weight_bytes(const ModelConfig& config, const EngineOptions& options);

// Builds every op of every layer for (T, n); n is 0 under the causal mask.
std::unique_ptr<EnginePlan> build_plan(const ModelConfig& config, const Weights& weights,
                                       const EngineOptions& options, std::int64_t tokens,
                                       std::int64_t context);

}  // namespace iclbench::model
