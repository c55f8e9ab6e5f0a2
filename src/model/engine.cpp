#include "model/engine.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "model/engine_forward.hpp"
#include "model/engine_plan.hpp"
#include "model/engine_schedule.hpp"
#include "runtime/threading.hpp"

namespace iclbench::model {

const char* to_string(OpGroup group) {
  switch (group) {
    case OpGroup::kProjections:
      return "projections";
    case OpGroup::kAttention:
      return "attention";
    case OpGroup::kSoftmax:
      return "softmax";
    case OpGroup::kMlp:
      return "mlp";
    case OpGroup::kLayerNorm:
      return "layer_norm";
    case OpGroup::kOther:
      return "other";
  }
  return "?";
}

Engine::Engine(ModelConfig config, Weights weights, EngineOptions options)
    : config_(std::move(config)), weights_(std::move(weights)), options_(options) {
  validate(config_);
  // Every tensor must have its shape: a model built by hand could be short. The shapes come
  // from the config alone: a zero_weights(config_) to compare with would be a third copy of the
  // weights at this point (the model's and this engine's are the other two), which was a wide
  // bf16 run's peak (issue 14: 1.22 GB against its 1.01 GB estimate).
  const auto given = weight_tensors(config_, weights_);
  for (const WeightTensor& tensor : given) {
    std::size_t expected = 1;
    for (const std::int64_t extent : tensor.shape) expected *= static_cast<std::size_t>(extent);
    if (tensor.values->size() != expected) {
      throw ConfigError("weights: " + tensor.name + " has " + std::to_string(tensor.values->size()) +
                        " values, expected " + std::to_string(expected));
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
  return group * shape.per_prompt_bytes +
         static_cast<std::uint64_t>(std::max(threads, 1)) * scratch + shape.mask_bytes +
         plan_weight_bytes(config, options);
}

std::uint64_t Engine::plan_building_bytes(const ModelConfig& config, const EngineOptions& options) {
  return plan_weight_bytes(config, options) -
         static_cast<std::uint64_t>(config.parameter_count()) * (options.bf16 ? 2 : 4);
}

std::array<double, kOpGroupCount> Engine::op_group_flops(const ModelConfig& config,
                                                         std::int64_t tokens_per_prompt,
                                                         std::int64_t n_context,
                                                         bool explicit_linear) {
  // The terms of ModelConfig::forward_flops, each in its group.
  std::array<double, kOpGroupCount> flops{};
  auto add = [&](OpGroup group, double value) { flops[static_cast<std::size_t>(group)] += value; };
  const double t = static_cast<double>(tokens_per_prompt), d = config.width;
  for (const LayerConfig& layer : config.layers) {
    const double passes = layer.loop;
    if (layer.has_attention()) {
      const double h = layer.heads, dk = layer.qk_dim, dv = layer.v_dim;
      const double key_rows = layer.mask == Mask::kIcl ? static_cast<double>(n_context) : t;
      add(OpGroup::kProjections,
          passes * (2 * t * d * h * dk + 2 * key_rows * d * h * (dk + dv) + 2 * t * h * dv * d));
      if (layer.attention == AttentionKind::kLinear && layer.mask == Mask::kIcl && !explicit_linear) {
        add(OpGroup::kAttention, passes * (2 * h * key_rows * dk * dv + 2 * h * t * dk * dv));
      } else {
        add(OpGroup::kAttention,
            passes * 2 * h * attended_pairs(layer.mask, tokens_per_prompt, n_context) * (dk + dv));
      }
    }
    if (layer.has_mlp()) add(OpGroup::kMlp, passes * 4 * t * d * layer.mlp_hidden);
  }
  return flops;
}

OpGroupTimes Engine::take_op_group_times(std::int64_t tokens_per_prompt,
                                         std::int64_t n_context) const {
  std::lock_guard lock(mutex_);
  OpGroupTimes times;
  if (!options_.time_op_groups) return times;
  EnginePlan& shape_plan = plan(tokens_per_prompt, config_.mask() == Mask::kIcl ? n_context : 0);
  for (OpGroupClock& clock : shape_plan.clocks) {
    for (std::size_t group = 0; group < kOpGroupCount; ++group) {
      times.seconds[group] += clock.seconds[group];
    }
    clock.seconds = {};
  }
  times.prompts = shape_plan.timed_prompts;
  shape_plan.timed_prompts = 0;
  auto flops = op_group_flops(config_, tokens_per_prompt, n_context,
                              options_.explicit_linear_attention);
  // A structured plan (model/weight_structure.hpp) executes fewer projection and MLP FLOPs than
  // the dense count: those two groups are credited with the FLOPs their ops execute, as
  // count_flops (engine_plan.cpp) adds them to EnginePlan::flops (per pass, on the real rows: T,
  // or the Tk key rows for [K V]; ops::SmallMlp's nonzero weights). For a dense plan these equal
  // the dense count.
  // Under the column-major sweep (ops::ColumnSweep) a looped layer's MLP runs inside the same
  // kernel as Q M, timed as attention: its FLOPs are credited there too, so that no group gets
  // FLOPs without their time (a rate of 98x the GEMM peak) or time without its FLOPs.
  double projections = 0, mlp = 0, mlp_in_attention = 0;
  const double t = static_cast<double>(shape_plan.tokens);
  for (const LayerPlan& layer : shape_plan.layers) {
    for (int pass = 0; pass < std::min(layer.passes, 2); ++pass) {
      const double times_run = pass == 0 ? 1.0 : layer.passes - 1.0;  // later passes are alike
      const auto per_row = [pass](const std::optional<Projection>& projection) {
        return projection ? projection->flops_per_row(pass) : 0.0;
      };
      if (const auto& attention = layer.attention) {
        projections += times_run * (t * per_row(attention->query) +
                                    static_cast<double>(attention->keys) * per_row(attention->key_value) +
                                    t * per_row(attention->output));
      }
      if (const auto& block = layer.mlp) {
        (layer.column_sweep ? mlp_in_attention : mlp) +=
            times_run * t *
            (block->small ? block->small->flops_per_row() : per_row(block->up) + per_row(block->down));
      }
    }
  }
  flops[static_cast<std::size_t>(OpGroup::kProjections)] = projections;
  flops[static_cast<std::size_t>(OpGroup::kMlp)] = mlp;
  flops[static_cast<std::size_t>(OpGroup::kAttention)] += mlp_in_attention;
  for (std::size_t group = 0; group < kOpGroupCount; ++group) {
    times.flops[group] = flops[group] * static_cast<double>(times.prompts);
  }
  return times;
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
  const std::int64_t width = config_.read_in ? config_.input_dim : config_.width;
  if (prompts < 0 || tokens_per_prompt < 1) {
    throw std::invalid_argument("forward: need at least one token per prompt");
  }
  if (config_.positions > 0 && tokens_per_prompt > config_.positions) {
    throw std::invalid_argument("forward: " + std::to_string(tokens_per_prompt) +
                                " tokens per prompt exceed the model's " +
                                std::to_string(config_.positions) + " positions");
  }
  if (config_.mask() == Mask::kIcl && (n_context < 1 || n_context > tokens_per_prompt)) {
    throw std::invalid_argument(
        "forward: the icl mask needs 1 <= n_context <= T, got n = " + std::to_string(n_context) +
        ", T = " + std::to_string(tokens_per_prompt));
  }
  if (static_cast<std::int64_t>(tokens.size()) != prompts * tokens_per_prompt * width) {
    throw std::invalid_argument("forward: tokens hold " + std::to_string(tokens.size()) +
                                " values, expected B * T * " + (config_.read_in ? "d" : "D") +
                                " = " + std::to_string(prompts * tokens_per_prompt * width));
  }
  std::lock_guard lock(mutex_);
  EnginePlan& shape_plan = plan(tokens_per_prompt, config_.mask() == Mask::kIcl ? n_context : 0);
  // Prompts run in groups whose activations fit the plan's group buffers.
  const std::int64_t group = std::min(shape_plan.shape.group, std::max<std::int64_t>(prompts, 1));
  shape_plan.reserve_group(group);
  if (shape_plan.time_op_groups) shape_plan.timed_prompts += prompts;
  const int threads = runtime::active_threads();
  const Rows stream = stream_rows(shape_plan);
  for (std::int64_t first = 0; first < prompts; first += group) {
    const std::int64_t count = std::min(group, prompts - first);
    forward_group(shape_plan, tokens.data() + first * tokens_per_prompt * width, count, threads);
    const auto* read_out = reinterpret_cast<const float*>(shape_plan.read_out_scores.data());
    for (std::int64_t prompt = 0; prompt < count; ++prompt) {
      sink(first + prompt, reinterpret_cast<const float*>(stream.at(prompt, 0)),
           read_out ? read_out + prompt * shape_plan.shape.padded_tokens : nullptr);
    }
  }
}

void Engine::forward(std::span<const float> tokens, std::int64_t prompts,
                     std::int64_t tokens_per_prompt, std::int64_t n_context,
                     std::span<float> stream) const {
  const std::int64_t width = config_.width;
  if (static_cast<std::int64_t>(stream.size()) != prompts * tokens_per_prompt * width) {
    throw std::logic_error("forward: output holds " + std::to_string(stream.size()) +
                           " values, expected B * T * D = " +
                           std::to_string(prompts * tokens_per_prompt * width));
  }
  run(tokens, prompts, tokens_per_prompt, n_context,
      [&](std::int64_t prompt, const float* result, const float*) {
        std::copy_n(result, tokens_per_prompt * width,
                    stream.data() + prompt * tokens_per_prompt * width);
      });
}

void Engine::query_scores(std::span<const float> tokens, std::int64_t prompts,
                          std::int64_t tokens_per_prompt, std::int64_t n_context,
                          std::span<float> scores) const {
  if (config_.readout < 0 && !config_.read_out)
    throw std::invalid_argument("query_scores: the model has no readout slot");
  if (n_context < 0 || n_context > tokens_per_prompt) {
    throw std::invalid_argument("query_scores: need 0 <= n_context <= T");
  }
  const std::int64_t queries = tokens_per_prompt - n_context;
  if (static_cast<std::int64_t>(scores.size()) != prompts * queries) {
    throw std::logic_error("query_scores: output holds " + std::to_string(scores.size()) +
                           " values, expected B * (T - n) = " + std::to_string(prompts * queries));
  }
  const std::int64_t width = config_.width;
  run(tokens, prompts, tokens_per_prompt, n_context,
      [&](std::int64_t prompt, const float* result, const float* read_out) {
        for (std::int64_t query = 0; query < queries; ++query) {
          scores[static_cast<std::size_t>(prompt * queries + query)] =
              read_out ? read_out[n_context + query]
                       : result[(n_context + query) * width + config_.readout];
        }
      });
}

double Engine::forward_flops(std::int64_t tokens_per_prompt, std::int64_t n_context) const {
  std::lock_guard lock(mutex_);
  return plan(tokens_per_prompt, config_.mask() == Mask::kIcl ? n_context : 0).flops;
}

std::map<std::string, std::string> Engine::implementations(std::int64_t tokens_per_prompt,
                                                           std::int64_t n_context) const {
  std::lock_guard lock(mutex_);
  const EnginePlan& shape_plan =
      plan(tokens_per_prompt, config_.mask() == Mask::kIcl ? n_context : 0);
  std::map<std::string, std::string> found;
  for (const LayerPlan& layer : shape_plan.layers) {
    if (const auto& attention = layer.attention) {
      // The layer's first projection that runs; "structured:view" when Q, K, V and O are all
      // views of x (AttentionPlan::small) and none runs.
      found["projection"] = "structured:view";
      for (const auto* projection :
           {&attention->output, &attention->key_value, &attention->query}) {
        if (*projection) found["projection"] = (*projection)->implementation();
      }
      if (attention->small) found["keys_times_values"] = "iclbench:linear_attention";
      // AttentionPlan::one_sweep: a looped layer reads the stream once per pass; with
      // LayerPlan::column_sweep, only its live slots, held column-major.
      if (attention->one_sweep) found["sweep"] = layer.column_sweep ? "column_major" : "one_per_pass";
      // The column sweep's MLP units whose loop-invariant part runs once, before the loop.
      if (layer.column_sweep && layer.column_sweep->hoisted_units() > 0) {
        found["sweep_hoisted_units"] = std::to_string(layer.column_sweep->hoisted_units());
      }
      if (attention->scores) found["scores"] = attention->scores->implementation();
      if (attention->mix) found["mix"] = attention->mix->implementation();
      if (attention->keys_times_values) {
        found["keys_times_values"] = attention->keys_times_values->implementation();
      }
      if (attention->softmax) found["softmax"] = attention->softmax->implementation();
      if (attention->fused) found["fused_attention"] = attention->fused->implementation();
      if (attention->norm) found["layer_norm"] = attention->norm->implementation();
      // The attention paths the layers take, in order of first use, joined by '+'.
      const std::string path = attention->path == AttentionPath::kFused ? "fused"
                               : attention->path == AttentionPath::kExplicitScores
                                   ? "explicit_scores"
                                   : "keys_times_values";
      std::string& paths = found["attention"];
      if (("+" + paths + "+").find("+" + path + "+") == std::string::npos) {
        paths += (paths.empty() ? "" : "+") + path;
      }
    }
    if (layer.mlp) {
      found["mlp"] = layer.mlp->small ? layer.mlp->small->implementation()
                                      : layer.mlp->up->implementation();
      if (layer.mlp->gelu) found["gelu"] = layer.mlp->gelu->implementation();
      if (layer.mlp->norm) found["layer_norm"] = layer.mlp->norm->implementation();
    }
  }
  return found;
}

}  // namespace iclbench::model
