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

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>

#include "model/config.hpp"
#include "model/weights.hpp"

namespace iclbench::model {

struct EnginePlan;  // primitives and buffers for one (T, n): model/engine_plan.hpp

struct EngineOptions {
  bool bf16 = false;  // bf16 matmuls (f32 accumulation); the residual stream stays f32
  // Linear attention under the icl mask uses Q (K^T V), O(T dk dv); this forces the explicit
  // (Q K^T) V with its T x n scores instead (for tests and benchmarks).
  bool explicit_linear_attention = false;
};

class Engine {
 public:
  Engine(ModelConfig config, Weights weights, EngineOptions options = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // tokens: [B, T, D] -> residual stream after the last layer: [B, T, D].
  void forward(std::span<const float> tokens, std::int64_t prompts, std::int64_t tokens_per_prompt,
               std::int64_t n_context, std::span<float> stream) const;
  // tokens: [B, T, D] -> slot `readout` of every query token: [B, T - n].
  void query_scores(std::span<const float> tokens, std::int64_t prompts,
                    std::int64_t tokens_per_prompt, std::int64_t n_context,
                    std::span<float> scores) const;

  // Bytes a forward of `prompts` prompts at (T, n) allocates on top of its inputs and outputs:
  // the group buffers (Q, K, V, O and the residual stream of the prompts, at most ~256 MB), the
  // per-thread scratch of `threads` threads (score tiles [H, R, n] dominate for long softmax
  // prompts), causal masks and packed weights. oneDNN's own scratchpads (kilobytes to a few MB
  // at these shapes) are not counted. Checked against the measured peak in engine_test.
  static std::uint64_t working_bytes(const ModelConfig& config, const EngineOptions& options,
                                     std::int64_t tokens_per_prompt, std::int64_t n_context,
                                     std::int64_t prompts, int threads);

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
