#include "model/engine.hpp"

#include <algorithm>
#include <stdexcept>

#include "model/engine_forward.hpp"
#include "model/engine_plan.hpp"
#include "model/engine_schedule.hpp"
#include "runtime/threading.hpp"

namespace iclbench::model {

Engine::Engine(ModelConfig config, Weights weights, EngineOptions options)
    : config_(std::move(config)), weights_(std::move(weights)), options_(options) {
  validate(config_);
  // Every tensor must have its shape: a model built by hand could be short.
  Weights expected = zero_weights(config_);
  const auto shapes = weight_tensors(config_, expected);
  const auto given = weight_tensors(config_, weights_);
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    if (given[i].values->size() != shapes[i].values->size()) {
      throw ConfigError("weights: " + shapes[i].name + " has " +
                        std::to_string(given[i].values->size()) + " values, expected " +
                        std::to_string(shapes[i].values->size()));
    }
  }
}

Engine::~Engine() = default;

std::uint64_t Engine::working_bytes(const ModelConfig& config, const EngineOptions& options,
                                    std::int64_t tokens_per_prompt, std::int64_t n_context,
                                    std::int64_t prompts, int threads) {
  const PlanShape shape =
      plan_shape(config, options, tokens_per_prompt, config.mask() == Mask::kIcl ? n_context : 0);
  const auto group =
      static_cast<std::uint64_t>(std::min(shape.group, std::max<std::int64_t>(prompts, 1)));
  const std::uint64_t scratch = scratch_layout(shape, config.width, 0).total;
  const auto packed_weights = static_cast<std::uint64_t>(config.parameter_count()) * shape.act_size;
  return group * shape.per_prompt_bytes +
         static_cast<std::uint64_t>(std::max(threads, 1)) * scratch + shape.mask_bytes +
         packed_weights;
}

EnginePlan& Engine::plan(std::int64_t tokens, std::int64_t context) const {
  const std::pair key{tokens, context};
  auto& slot = plans_[key];
  if (slot) return *slot;
  // One plan at a time: an n-grid or a bounds sweep visits many shapes once each, and keeping
  // every plan's buffers would add up to gigabytes. Callers hold mutex_, so nothing else uses them.
  std::erase_if(plans_, [&](const auto& entry) { return entry.first != key; });
  slot = build_plan(config_, weights_, options_, tokens, context);
  return *slot;
}

template <typename Sink>
void Engine::run(std::span<const float> tokens, std::int64_t prompts,
                 std::int64_t tokens_per_prompt, std::int64_t n_context, Sink&& sink) const {
  const std::int64_t width = config_.width;
  if (prompts < 0 || tokens_per_prompt < 1) {
    throw std::invalid_argument("forward: need at least one token per prompt");
  }
  if (config_.mask() == Mask::kIcl && (n_context < 1 || n_context > tokens_per_prompt)) {
    throw std::invalid_argument(
        "forward: the icl mask needs 1 <= n_context <= T, got n = " + std::to_string(n_context) +
        ", T = " + std::to_string(tokens_per_prompt));
  }
  if (static_cast<std::int64_t>(tokens.size()) != prompts * tokens_per_prompt * width) {
    throw std::invalid_argument(
        "forward: tokens hold " + std::to_string(tokens.size()) +
        " values, expected B * T * D = " + std::to_string(prompts * tokens_per_prompt * width));
  }
  std::lock_guard lock(mutex_);
  EnginePlan& shape_plan = plan(tokens_per_prompt, config_.mask() == Mask::kIcl ? n_context : 0);
  // Prompts run in groups whose activations fit the plan's group buffers.
  const std::int64_t group = std::min(shape_plan.shape.group, std::max<std::int64_t>(prompts, 1));
  shape_plan.reserve_group(group);
  const int threads = runtime::active_threads();
  const Rows stream = stream_rows(shape_plan);
  for (std::int64_t first = 0; first < prompts; first += group) {
    const std::int64_t count = std::min(group, prompts - first);
    forward_group(shape_plan, tokens.data() + first * tokens_per_prompt * width, count, threads);
    for (std::int64_t prompt = 0; prompt < count; ++prompt) {
      sink(first + prompt, reinterpret_cast<const float*>(stream.at(prompt, 0)));
    }
  }
}

void Engine::forward(std::span<const float> tokens, std::int64_t prompts,
                     std::int64_t tokens_per_prompt, std::int64_t n_context,
                     std::span<float> stream) const {
  const std::int64_t width = config_.width;
  if (static_cast<std::int64_t>(stream.size()) != prompts * tokens_per_prompt * width) {
    throw std::invalid_argument("forward: output holds " + std::to_string(stream.size()) +
                                " values, expected B * T * D");
  }
  run(tokens, prompts, tokens_per_prompt, n_context, [&](std::int64_t prompt, const float* result) {
    std::copy_n(result, tokens_per_prompt * width,
                stream.data() + prompt * tokens_per_prompt * width);
  });
}

void Engine::query_scores(std::span<const float> tokens, std::int64_t prompts,
                          std::int64_t tokens_per_prompt, std::int64_t n_context,
                          std::span<float> scores) const {
  if (config_.readout < 0)
    throw std::invalid_argument("query_scores: the model has no readout slot");
  const std::int64_t queries = tokens_per_prompt - n_context;
  if (static_cast<std::int64_t>(scores.size()) != prompts * queries) {
    throw std::invalid_argument("query_scores: output holds " + std::to_string(scores.size()) +
                                " values, expected B * (T - n)");
  }
  const std::int64_t width = config_.width;
  run(tokens, prompts, tokens_per_prompt, n_context, [&](std::int64_t prompt, const float* result) {
    for (std::int64_t query = 0; query < queries; ++query) {
      scores[static_cast<std::size_t>(prompt * queries + query)] =
          result[(n_context + query) * width + config_.readout];
    }
  });
}

std::map<std::string, std::string> Engine::implementations(std::int64_t tokens_per_prompt,
                                                           std::int64_t n_context) const {
  std::lock_guard lock(mutex_);
  const EnginePlan& shape_plan =
      plan(tokens_per_prompt, config_.mask() == Mask::kIcl ? n_context : 0);
  std::map<std::string, std::string> found;
  for (const LayerPlan& layer : shape_plan.layers) {
    if (const auto& attention = layer.attention) {
      found["projection"] = attention->query->implementation();
      if (attention->scores) found["scores"] = attention->scores->implementation();
      if (attention->mix) found["mix"] = attention->mix->implementation();
      if (attention->keys_times_values) {
        found["keys_times_values"] = attention->keys_times_values->implementation();
      }
      if (attention->softmax) found["softmax"] = attention->softmax->implementation();
    }
    if (layer.mlp) found["mlp"] = layer.mlp->up->implementation();
  }
  return found;
}

}  // namespace iclbench::model
