#include "model/engine_schedule.hpp"

#include "model/engine_forward.hpp"

namespace iclbench::model {

void forward_group(const EnginePlan& plan, const float* tokens, std::int64_t prompts, int threads) {
  if (prompts >= kPromptMajorPromptsPerThread * threads) {
    tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, prompts, 1),
                      [&](const tbb::blocked_range<std::int64_t>& range) {
                        const TileScratch scratch = plan.thread_scratch();
                        for (std::int64_t prompt = range.begin(); prompt < range.end(); ++prompt) {
                          model_forward(plan, tokens, Schedule::one_prompt(plan, prompt, scratch));
                        }
                      });
  } else {
    model_forward(plan, tokens, Schedule::all_prompts(plan, prompts));
  }
}

}  // namespace iclbench::model
