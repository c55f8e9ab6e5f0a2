#pragma once
// The transformer forward pass on oneDNN primitives, parallelised with TBB. The parts, each in
// its own file: the plan for one prompt shape, with every primitive built once
// (engine_plan.hpp); the forward pass read top to bottom, a layer at a time (engine_forward.hpp);
// which thread runs which piece (engine_schedule.hpp).
//
// Shapes: B prompts of T tokens (the first n are context, the rest queries), D width, H heads,
// dk / dv per-head widths, F MLP width, R rows per tile.
//
// Work is cut into pieces whose shapes depend only on (T, n), never on B or the thread count:
// row tiles of R tokens of one prompt (norms, projections, MLP), and (prompt, row tile) pieces of
// attention. Every piece runs single-threaded, so each number is computed by the same kernel in
// the same order however the prompts are batched and however many threads share the work:
// results are bit-identical across thread counts and batchings. TBB spreads the pieces, so a
// single long prompt still uses every thread.

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>

#include "model/config.hpp"
#include "model/weights.hpp"

namespace iclbench::model {

struct EnginePlan;  // primitives and buffers for one (T, n): model/engine_plan.hpp

struct EngineOptions {
  bool bf16 = false;  // bf16 matmuls (f32 accumulation); the residual stream stays f32
  // Linear attention under the icl mask uses Q (K^T V), O(T dk dv); this forces the explicit
  // (Q K^T) V with its T x n scores instead (for tests and benchmarks).
  bool explicit_linear_attention = false;
  // Turns off plan-time weight structure (model/weight_structure.hpp: selection columns as
  // copies, zero blocks skipped, pass-invariant columns of looped layers computed once): every
  // projection is then a dense GEMM, for comparison. bf16 plans are always dense.
  bool dense = false;
  // Explicit-scores attention (softmax, ReLU, causal linear) runs fused per head and row tile
  // (ops::FusedAttention: no score tile, no mask); this runs it as the three ops it replaced,
  // scores and mix as oneDNN matmuls and softmax as ops::RowSoftmax (for tests and benchmarks).
  bool unfused_attention = false;
  // Times every op by its group (a clock read after each op, per thread) for
  // Engine::take_op_group_times; off, the forward pass only tests a null pointer per op.
  bool time_op_groups = false;
};

// Where a forward pass spends its time. kAttention is Q K^T, the weights and the mix (the fused
// kernel's softmax included; kSoftmax is the unfused path's separate softmax); kOther is loading
// the tokens and converting to bf16.
enum class OpGroup { kProjections, kAttention, kSoftmax, kMlp, kLayerNorm, kOther };
inline constexpr std::size_t kOpGroupCount = 6;
const char* to_string(OpGroup group);

// Per op group: thread-seconds spent, and the useful FLOPs done (ModelConfig::forward_flops split
// by group; 0 for softmax, LayerNorm and the rest).
struct OpGroupTimes {
  std::array<double, kOpGroupCount> seconds{};
  std::array<double, kOpGroupCount> flops{};
  std::int64_t prompts = 0;  // prompts forwarded while timing
};

class Engine {
 public:
  Engine(ModelConfig config, Weights weights, EngineOptions options = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // tokens: [B, T, D] ([B, T, d] with read_in) -> residual stream after the last layer (before
  // the read-out's norm): [B, T, D]. T is at most the model's positions, if it has any. Bad
  // (T, n) or tokens throw std::invalid_argument; an output of another size is the caller's
  // own inconsistency (it sized the buffer), so std::logic_error, as in query_scores.
  void forward(std::span<const float> tokens, std::int64_t prompts, std::int64_t tokens_per_prompt,
               std::int64_t n_context, std::span<float> stream) const;
  // tokens: [B, T, D] ([B, T, d] with read_in) -> slot `readout` of every query token, or its
  // read_out score: [B, T - n]. Under the causal mask n only says which rows are queries.
  void query_scores(std::span<const float> tokens, std::int64_t prompts,
                    std::int64_t tokens_per_prompt, std::int64_t n_context,
                    std::span<float> scores) const;

  // Bytes a forward of `prompts` prompts at (T, n) allocates on top of its inputs and outputs:
  // the group buffers (Q, K, V, O and the residual stream of the prompts, at most ~256 MB), the
  // per-thread scratch of `threads` threads (with unfused_attention, score tiles [H, R, n]
  // dominate for long softmax prompts; the fused kernel's scratch is a few tens of KB), causal
  // masks (unfused only) and packed weights, with what building the plan holds for a moment
  // beside them (plan_weight_bytes in engine_plan.hpp: an f32 plan's weight-structure analysis
  // copies a wide MLP's matrices). oneDNN's own scratchpads (kilobytes to a few MB at
  // these shapes) are not counted. Checked against the measured peak in engine_test.
  static std::uint64_t working_bytes(const ModelConfig& config, const EngineOptions& options,
                                     std::int64_t tokens_per_prompt, std::int64_t n_context,
                                     std::int64_t prompts, int threads);
  // The part of working_bytes that building the plan holds only for a moment (its weight
  // analysis beyond the packed weights): what an engine whose plan is built no longer holds.
  static std::uint64_t plan_building_bytes(const ModelConfig& config, const EngineOptions& options);

  // FLOPs one prompt of T tokens (n context) executes, multiply-adds counted as 2 (a structured
  // projection's copy: its multiply, and its add into x; ops::StructuredLinear): what the plan
  // runs, so structure that is skipped is not counted (equal to ModelConfig::forward_flops for a
  // dense plan). Builds the plan for (T, n) if it is not the cached one.
  double forward_flops(std::int64_t tokens_per_prompt, std::int64_t n_context) const;
  // FLOPs of one prompt's forward by op group; they add up to ModelConfig::forward_flops.
  static std::array<double, kOpGroupCount> op_group_flops(const ModelConfig& config,
                                                          std::int64_t tokens_per_prompt,
                                                          std::int64_t n_context,
                                                          bool explicit_linear);
  // With EngineOptions::time_op_groups: the times of the forward calls at (T, n) since the plan
  // was built or this was last called (then they restart from 0). All zero without. The FLOPs
  // are what the plan executes (the projections' and MLP's executed FLOPs under weight
  // structure, the attention products as op_group_flops counts them).
  OpGroupTimes take_op_group_times(std::int64_t tokens_per_prompt, std::int64_t n_context) const;

  const ModelConfig& config() const { return config_; }
  const EngineOptions& options() const { return options_; }
  // The oneDNN implementation chosen for each kind of op at this shape (for `info` and reports).
  std::map<std::string, std::string> implementations(std::int64_t tokens_per_prompt,
                                                     std::int64_t n_context) const;

 private:
  EnginePlan& plan(std::int64_t tokens_per_prompt, std::int64_t n_context) const;
  // Runs every prompt and hands each finished prompt's stream [T_pad, D] to `sink`.
  template <typename Sink>
  void run(std::span<const float> tokens, std::int64_t prompts, std::int64_t tokens_per_prompt,
           std::int64_t n_context, Sink&& sink) const;

  ModelConfig config_;
  Weights weights_;
  EngineOptions options_;
  mutable std::mutex mutex_;  // forward calls share the cached plans and their buffers
  mutable std::map<std::pair<std::int64_t, std::int64_t>, std::unique_ptr<EnginePlan>> plans_;
};

}  // namespace iclbench::model
