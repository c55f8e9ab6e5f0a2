#pragma once
// Internal to the engine: who runs the pieces of each step of the forward pass, on which thread.
//
// A piece is a row tile (R rows of one prompt) or, for steps that need a whole prompt (K^T V),
// one prompt. Every piece runs single-threaded on its thread's scratch, and the same op computes
// it from the same inputs whoever runs it, so both schedules give bit-identical results:
//   prompt-major (enough prompts to keep every thread busy): one TBB task per prompt runs all
//     its layers back to back, so the prompt's activations stay in this core's cache;
//   stage-major (few, long prompts): each step of each layer is spread over all the group's
//     pieces, so a single long prompt still uses every thread.
// The maths (engine_forward) sees only Schedule::each_tile / each_prompt.

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <cstdint>

#include "model/engine_plan.hpp"

namespace iclbench::model {

// The row tile [first_row, first_row + R) of prompt `prompt` of the group.
struct RowTile {
  std::int64_t prompt = 0;
  std::int64_t first_row = 0;
};

class Schedule {
 public:
  // Prompt-major: every piece of prompt `prompt`, on the calling thread with its `scratch`.
  static Schedule one_prompt(const EnginePlan& plan, std::int64_t prompt,
                             const TileScratch& scratch) {
    return Schedule(plan, prompt, prompt + 1, false, scratch);
  }
  // Stage-major: every piece of prompts [0, prompts), spread over TBB's threads.
  static Schedule all_prompts(const EnginePlan& plan, std::int64_t prompts) {
    return Schedule(plan, 0, prompts, true, {});
  }

  // Calls body(RowTile, const TileScratch&) for every row tile; returns when all are done.
  template <typename Body>
  void each_tile(const Body& body) const {
    const std::int64_t tiles = plan_->shape.tiles, rows = plan_->shape.tile_rows;
    if (!spread_) {
      for (std::int64_t prompt = first_prompt_; prompt < end_prompt_; ++prompt) {
        for (std::int64_t tile = 0; tile < tiles; ++tile) {
          body(RowTile{prompt, tile * rows}, scratch_);
        }
      }
      return;
    }
    tbb::parallel_for(
        tbb::blocked_range<std::int64_t>(first_prompt_ * tiles, end_prompt_ * tiles, 1),
        [&](const tbb::blocked_range<std::int64_t>& pieces) {
          const TileScratch scratch = plan_->thread_scratch();
          for (std::int64_t piece = pieces.begin(); piece < pieces.end(); ++piece) {
            body(RowTile{piece / tiles, (piece % tiles) * rows}, scratch);
          }
        });
  }

  // Calls body(prompt, const TileScratch&) for every prompt; returns when all are done.
  template <typename Body>
  void each_prompt(const Body& body) const {
    if (!spread_) {
      for (std::int64_t prompt = first_prompt_; prompt < end_prompt_; ++prompt) {
        body(prompt, scratch_);
      }
      return;
    }
    tbb::parallel_for(tbb::blocked_range<std::int64_t>(first_prompt_, end_prompt_, 1),
                      [&](const tbb::blocked_range<std::int64_t>& prompts) {
                        const TileScratch scratch = plan_->thread_scratch();
                        for (std::int64_t prompt = prompts.begin(); prompt < prompts.end();
                             ++prompt) {
                          body(prompt, scratch);
                        }
                      });
  }

 private:
  Schedule(const EnginePlan& plan, std::int64_t first_prompt, std::int64_t end_prompt, bool spread,
           const TileScratch& scratch)
      : plan_(&plan),
        first_prompt_(first_prompt),
        end_prompt_(end_prompt),
        spread_(spread),
        scratch_(scratch) {}

  const EnginePlan* plan_;
  std::int64_t first_prompt_, end_prompt_;
  bool spread_;          // stage-major: TBB spreads the pieces, each on its thread's scratch
  TileScratch scratch_;  // prompt-major: the calling thread's
};

// Runs the whole forward pass over the group's `prompts` prompts, whose tokens [G, T, D] start at
// `tokens`, leaving the residual stream in plan.stream: prompt-major when there are at least
// kPromptMajorPromptsPerThread prompts per thread, stage-major otherwise.
inline constexpr std::int64_t kPromptMajorPromptsPerThread = 4;
void forward_group(const EnginePlan& plan, const float* tokens, std::int64_t prompts, int threads);

}  // namespace iclbench::model
