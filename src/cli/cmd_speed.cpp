// iclbench speed: throughput of one model's forward pass on random prompts.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "data_gen/task_generator.hpp"
#include "model/constructions.hpp"
#include "model/engine.hpp"
#include "model/garg.hpp"
#include "model/reference.hpp"
#include "model/resolve.hpp"
#include "ops/gemm_peak.hpp"
#include "runtime/memory.hpp"
#include "runtime/progress.hpp"
#include "runtime/system_info.hpp"
#include "runtime/threading.hpp"
#include "util/cpu_time.hpp"
#include "util/errors.hpp"
#include "util/philox.hpp"
#include "util/text.hpp"

namespace iclbench::cli {
namespace {

struct SpeedOptions {
  std::string model;
  int d = 32;
  std::int64_t n = 1024;
  std::int64_t queries = 1024;
  std::int64_t batch = 1;
  int repeats = 5;
  bool bf16 = false;
  bool explicit_linear = false;
  bool dense = false;
  bool unfused_attention = false;
  bool op_groups = false;
  bool reference = false;
  bool json = false;
};

// Prompts for the model: icl tokens of Gaussian tasks for constructed learners, Gaussian tokens
// for anything else. Returns tokens [B, T, D].
std::vector<float> make_prompts(const model::ModelConfig& config, const SpeedOptions& options,
                                std::uint64_t seed) {
  const std::int64_t tokens_per_prompt = options.n + options.queries;
  std::vector<float> tokens;
  tokens.reserve(static_cast<std::size_t>(options.batch * tokens_per_prompt * config.width));
  if (config.read_in) {
    // A learned GPT-2-layout model: interleaved prompts of n pairs and one query, [B, 2n + 1, d].
    data::TaskSpec spec;
    spec.dim = config.input_dim;
    spec.n_examples = options.n;
    spec.n_queries = 1;
    spec.n_tasks = options.batch;
    spec.seed = seed;
    data::validate(spec);
    const auto d = static_cast<std::size_t>(spec.dim);
    std::vector<float> x(options.n * d), y(options.n), w(d), xq(d), yq(1);
    for (std::int64_t task = 0; task < options.batch; ++task) {
      data::generate_task(spec, static_cast<std::uint32_t>(task), {x, y, w, xq, yq, {}});
      const std::vector<float> prompt = model::interleaved_tokens(x, y, xq, config.input_dim);
      tokens.insert(tokens.end(), prompt.begin(), prompt.end());
    }
  } else if (config.input_dim > 0) {
    data::TaskSpec spec;
    spec.dim = config.input_dim;
    spec.n_examples = options.n;
    spec.n_queries = std::max<std::int64_t>(options.queries, 1);
    spec.n_tasks = options.batch;
    spec.seed = seed;
    data::validate(spec);
    const auto d = static_cast<std::size_t>(spec.dim);
    std::vector<float> x(options.n * d), y(options.n), w(d), xq(spec.n_queries * d), yq(spec.n_queries);
    for (std::int64_t task = 0; task < options.batch; ++task) {
      data::generate_task(spec, static_cast<std::uint32_t>(task), {x, y, w, xq, yq, {}});
      const std::vector<float> prompt = model::icl_tokens(
          x, y, std::span(xq).first(static_cast<std::size_t>(options.queries) * d), config.input_dim);
      tokens.insert(tokens.end(), prompt.begin(), prompt.end());
    }
  } else {
    util::DrawSequence draws(seed, 0, 0, util::Stream::kContextInput);
    tokens.resize(static_cast<std::size_t>(options.batch * tokens_per_prompt * config.width));
    for (float& value : tokens) value = static_cast<float>(draws.normal());
  }
  return tokens;
}

// A duration with three significant digits in a unit that keeps it readable: a forward of a
// small model takes microseconds, which "%.4f s" printed as 0.0000.
std::string duration(double seconds) {
  const auto [scale, unit] = seconds >= 1     ? std::pair{1.0, "s"}
                             : seconds >= 1e-3 ? std::pair{1e3, "ms"}
                                               : std::pair{1e6, "\u00b5s"};
  char text[32];
  std::snprintf(text, sizeof text, "%.3g %s", seconds * scale, unit);
  return text;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const std::size_t mid = values.size() / 2;
  return values.size() % 2 ? values[mid] : 0.5 * (values[mid - 1] + values[mid]);
}

// How the FLOPs of `config`'s attention are counted, as ModelConfig::forward_flops and the engine
// count them: causal attention over the T (T + 1) / 2 (query, key) pairs it needs, not T^2;
// softmax and ReLU attention over the T x n pairs the icl mask shows (n = T for an encoder);
// linear icl attention as Q (K^T V), (n + T) dk dv multiply-adds per head, linear in T, unless
// --explicit-linear computes the T x n pairs. The reference computes those pairs but is credited
// with what the engine's default path needs (forward_flops without explicit_linear).
std::string attention_counting_text(const model::ModelConfig& config, bool explicit_linear,
                                    bool reference) {
  if (config.mask() == model::Mask::kCausal)
    return "causal: visible (query, key) pairs, T(T+1)/2 per head";
  bool pairs = false, keys_times_values = false;
  for (const model::LayerConfig& layer : config.layers) {
    if (!layer.has_attention()) continue;
    if (layer.attention == model::AttentionKind::kLinear && !explicit_linear) {
      keys_times_values = true;
    } else {
      pairs = true;
    }
  }
  std::string text;
  if (pairs) text = "all (query, key) pairs the icl mask shows: T x n per head";
  if (keys_times_values) {
    text += std::string(text.empty() ? "" : "; ") +
            "linear as Q (K^T V), no (query, key) pairs: (n + T) x dk x dv per head";
    if (reference)
      text += "; the reference computes the T x n pairs, credited with the engine's count";
  }
  return text.empty() ? "no attention" : text;
}

// What a timed engine forward writes, and the call that writes it. A model with a read-out is
// timed to its scores [B, T - n] (the read-out included), as a peer that returns the query's score
// is; others to the residual stream [B, T, D]. The throughput runs and the --op-groups runs share
// it, so both time the same call on buffers of the shape the engine expects.
struct ForwardOutputs {
  std::vector<float> stream, scores;
  bool read_out;
  ForwardOutputs(const model::ModelConfig& config, std::int64_t batch, std::int64_t tokens_per_prompt,
                 std::int64_t context)
      : stream(config.read_out ? 0 : static_cast<std::size_t>(batch * tokens_per_prompt * config.width)),
        scores(static_cast<std::size_t>(batch * (tokens_per_prompt - context))),
        read_out(config.read_out) {}
  void run(const model::Engine& engine, const std::vector<float>& tokens, std::int64_t batch,
           std::int64_t tokens_per_prompt, std::int64_t context) {
    if (read_out) {
      engine.query_scores(tokens, batch, tokens_per_prompt, context, scores);
    } else {
      engine.forward(tokens, batch, tokens_per_prompt, context, stream);
    }
  }
};

// --op-groups: the same forwards again on an engine that times every op by group, after the
// throughput runs (whose engine does not time). Per group: its share of the summed thread time,
// and its achieved fraction of the in-process single-thread GEMM peak (FLOPs over the group's
// thread-seconds, so the thread count cancels).
struct GroupRow {
  std::string name;
  double share = 0, gflops = 0, peak_fraction = 0;
  bool has_flops = false;
};
std::vector<GroupRow> time_op_groups(const model::Model& built, model::EngineOptions options,
                                     const std::vector<float>& tokens, const SpeedOptions& o,
                                     std::int64_t tokens_per_prompt, std::int64_t context,
                                     double peak_gflops) {
  options.time_op_groups = true;
  const model::Engine engine(built.config, built.weights, options);
  ForwardOutputs outputs(built.config, o.batch, tokens_per_prompt, context);
  outputs.run(engine, tokens, o.batch, tokens_per_prompt, context);  // builds the plan
  engine.take_op_group_times(tokens_per_prompt, context);             // forgets that run
  for (int run_index = 0; run_index < o.repeats; ++run_index) {
    outputs.run(engine, tokens, o.batch, tokens_per_prompt, context);
  }
  const model::OpGroupTimes times = engine.take_op_group_times(tokens_per_prompt, context);
  double total = 0;
  for (const double seconds : times.seconds) total += seconds;
  std::vector<GroupRow> rows;
  for (std::size_t group = 0; group < model::kOpGroupCount; ++group) {
    GroupRow row;
    row.name = model::to_string(static_cast<model::OpGroup>(group));
    const double seconds = times.seconds[group];
    row.share = total > 0 ? seconds / total : 0;
    row.has_flops = times.flops[group] > 0;
    row.gflops = seconds > 0 ? times.flops[group] / seconds / 1e9 : 0;
    row.peak_fraction = row.gflops / peak_gflops;
    rows.push_back(row);
  }
  return rows;
}

}  // namespace

Command add_speed_command(CLI::App& parent, const GlobalOptions& globals) {
  CLI::App* app = parent.add_subcommand(
      "speed", "throughput of a model's forward pass (prompts/s, tokens/s, GFLOP/s, median of "
               "--repeats timed runs after one warm-up)");
  auto options = std::make_shared<SpeedOptions>();
  app->add_option("--model", options->model,
                  "recipe (" + model::construction_names() + ") or model file")
      ->required()
      ->type_name(std::string("RECIPE|") + kPathType);
  app->add_option("--d", options->d, "input dimension d (constructed learners)")->capture_default_str();
  app->add_option("--n", options->n,
                  "context tokens n per prompt (an encoder attends all n + queries tokens)")
      ->capture_default_str();
  app->add_option("--queries", options->queries,
                  "query tokens per prompt (a garg-gpt2 model: one query per prompt, --queries "
                  "refused unless 1)")
      ->capture_default_str();
  app->add_option("--batch", options->batch, "prompts per forward call")->capture_default_str();
  app->add_option("--repeats", options->repeats, "timed runs")->capture_default_str();
  app->add_flag("--bf16", options->bf16, "bf16 matmuls (f32 accumulation, f32 residual stream)");
  app->add_flag("--explicit-linear", options->explicit_linear,
                "compute linear icl attention as (Q K^T) V instead of Q (K^T V)");
  app->add_flag("--dense", options->dense,
                "no plan-time weight structure: every projection a dense GEMM (for comparison)");
  app->add_flag("--unfused-attention", options->unfused_attention,
                "explicit-scores attention as separate scores, softmax and mix ops instead of the "
                "fused kernel (for comparison)");
  app->add_flag("--op-groups", options->op_groups,
                "also time each op group (projections, attention, softmax, MLP, LayerNorm) in "
                "extra runs and print its time share and fraction of the in-process GEMM peak");
  app->add_flag("--reference", options->reference,
                "time the plain Eigen reference forward (double, one thread) instead of the engine");
  app->add_flag("--json", options->json, "print one JSON object");

  auto run = [options, &globals, app] {
    const SpeedOptions& o = *options;
    // Counts that feed arithmetic (n + queries tokens, batch x tokens x width floats, repeats + 1
    // progress steps in an int) are bounded so that none of it can overflow; the memory check
    // below then refuses what is merely too large.
    auto in_range = [](const char* parameter, std::int64_t value, std::int64_t lowest, std::int64_t highest,
                       const char* highest_text) {
      util::require(value >= lowest && value <= highest, parameter,
                    "must be in [" + std::to_string(lowest) + ", " + highest_text + "], got " + std::to_string(value));
    };
    in_range("n", o.n, 1, 1'000'000'000, "10^9");
    in_range("queries", o.queries, 0, 1'000'000'000, "10^9");
    in_range("batch", o.batch, 1, 1'000'000'000, "10^9");
    in_range("repeats", o.repeats, 1, 1'000'000, "10^6");
    if (o.reference && o.op_groups) throw UsageError("--op-groups times the engine, not --reference");
    // The reference runs the dense maths in double on one thread and never builds the engine's
    // plan: the engine's settings would not change what is timed.
    for (const auto& [flag, given] : {std::pair{"--bf16", o.bf16}, std::pair{"--dense", o.dense},
                                      std::pair{"--unfused-attention", o.unfused_attention},
                                      std::pair{"--explicit-linear", o.explicit_linear}}) {
      if (o.reference && given) {
        throw UsageError(std::string(flag) + " sets how the engine runs; --reference times the "
                         "Eigen reference (f64, dense, one thread), which it does not change");
      }
    }
    // speed has no data: a model file built for another d is a matter of --d (the library's
    // message speaks of the data's d).
    if (const auto file = model::model_file_config(o.model); file && file->input_dim > 0 && file->input_dim != o.d) {
      throw UsageError("--model " + o.model + " was built for d = " + std::to_string(file->input_dim) + ", but --d is " +
                       std::to_string(o.d) + (app->count("--d") > 0 ? "" : " (the default)") + "; give --d " +
                       std::to_string(file->input_dim));
    }
    const model::ModelSource source = model::ModelSource::resolve(o.model, o.d, globals.seed);
    const model::ModelConfig& config = source.config();
    // A learned GPT-2-layout model reads n pairs and one query (2n + 1 tokens), as eval scores
    // it. Many queries in one causal pass would need a mask that keeps them from seeing each
    // other (and the same position for each), which the engine does not build, so a --queries
    // other than 1 is refused rather than silently ignored.
    if (config.read_in && app->count("--queries") > 0 && o.queries != 1) {
      throw UsageError("--queries " + std::to_string(o.queries) +
                       ": a garg-gpt2 model scores one query per prompt (x_1, y_1, ..., x_n, y_n, "
                       "x_q: 2n + 1 tokens); leave --queries out or give 1");
    }
    const std::int64_t tokens_per_prompt =
        config.read_in ? model::interleaved_prompt_tokens(o.n) : o.n + o.queries;
    // Encoders see every token; in-context learners see the n context tokens (under the causal
    // mask of a learned model the value only says where its query is).
    const std::int64_t context = config.read_in         ? tokens_per_prompt - 1
                                 : config.input_dim > 0 ? o.n
                                                        : tokens_per_prompt;
    if (config.positions > 0 && tokens_per_prompt > config.positions) {
      // Under the flag whether or not it was given (a ParameterError names the flag only when
      // the user typed it, and "n" alone reads as the model's own n).
      throw UsageError("--n " + std::to_string(o.n) + " needs " + std::to_string(tokens_per_prompt) +
                       " tokens, but the model has " + std::to_string(config.positions) + " positions");
    }
    model::EngineOptions engine_options;
    engine_options.bf16 = o.bf16;
    engine_options.explicit_linear_attention = o.explicit_linear;
    engine_options.dense = o.dense;
    engine_options.unfused_attention = o.unfused_attention;
    // What the run holds at its peak: the prompts (f32 tokens, the output stream and the scores),
    // the built model's f32 weights and the engine's own copy of them, and either the engine's
    // buffers for this shape (with its packed weights and what building its plan holds for a
    // moment) or, with --reference, one prompt in double and the reference forward's matrices
    // (the engine then never builds a plan). --op-groups times a second engine (weights and
    // buffers) while the first, its plan built, still lives.
    const double prompt_bytes = static_cast<double>(o.batch) *
                                (static_cast<double>(tokens_per_prompt) * config.width * 2 +
                                 static_cast<double>(tokens_per_prompt - context)) * 4;
    if (prompt_bytes > 1e15) throw UsageError("--batch x (--n + --queries) is far too large");
    const auto weight_bytes = static_cast<std::uint64_t>(config.parameter_count()) * 4;
    const std::uint64_t engine_buffers = model::Engine::working_bytes(
        config, engine_options, tokens_per_prompt, context, o.batch, runtime::active_threads());
    const std::uint64_t run_bytes =
        o.reference ? static_cast<std::uint64_t>(tokens_per_prompt) *
                              (config.read_in ? config.input_dim : config.width) * sizeof(double) +
                          model::reference_working_bytes(config, tokens_per_prompt)
                    : engine_buffers +
                          (o.op_groups ? weight_bytes + engine_buffers -
                                             model::Engine::plan_building_bytes(config, engine_options)
                                       : 0);
    const std::uint64_t total_bytes = static_cast<std::uint64_t>(prompt_bytes) + 2 * weight_bytes + run_bytes;
    // When the model's weights (its f32 copy and the engine's, a third under --op-groups) are most
    // of it, no flag of the run helps: say so instead of advising a smaller batch.
    const std::uint64_t model_bytes = (o.op_groups ? 3 : 2) * weight_bytes;
    const std::string remedy =
        2 * model_bytes > total_bytes
            ? "the model's weights take " + util::human_bytes(static_cast<double>(model_bytes)) +
                  " of it (" + std::to_string(config.parameter_count()) + " parameters): a smaller model is needed"
            : std::string("lower --batch, --n, --queries or --threads");
    runtime::check_memory(total_bytes, "speed", remedy, globals.memory_budget());
    const model::Model built = source.build();
    const model::Engine engine(built.config, built.weights, engine_options);
    const std::vector<float> tokens = make_prompts(built.config, o, globals.seed);
    ForwardOutputs outputs(built.config, o.reference ? 0 : o.batch, tokens_per_prompt, context);

    runtime::Progress progress("speed", "runs", o.repeats + 1, !globals.quiet);
    std::vector<double> seconds, cpu_seconds;
    const std::int64_t input_width = built.config.read_in ? built.config.input_dim : built.config.width;
    volatile double reference_sink = 0;  // keeps the reference's result (and its work) alive
    for (int run_index = 0; run_index <= o.repeats; ++run_index) {
      const auto start = std::chrono::steady_clock::now();
      const double cpu_start = util::process_cpu_seconds();
      if (o.reference) {
        for (std::int64_t b = 0; b < o.batch; ++b) {
          model::MatrixD prompt(tokens_per_prompt, input_width);
          for (std::int64_t i = 0; i < prompt.size(); ++i)
            prompt.data()[i] = tokens[b * tokens_per_prompt * input_width + i];
          const model::MatrixD out = model::reference_forward(built.config, built.weights, prompt, context);
          reference_sink = out(0, 0);
        }
      } else {
        outputs.run(engine, tokens, o.batch, tokens_per_prompt, context);
      }
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (run_index > 0) {  // run 0 builds the primitives
        seconds.push_back(elapsed);
        cpu_seconds.push_back(util::process_cpu_seconds() - cpu_start);
      }
      progress.update(run_index + 1);
    }
    progress.finish();
    static_cast<void>(reference_sink);
    const double best = median(seconds);
    // The fraction of the GEMM peak is a ratio of CPU-time rates (the peak is per CPU-second):
    // the forward's FLOPs per process CPU-second, which on a loaded host leaves out the time
    // the process waited for a CPU, and needs no thread count (the CPU seconds sum the threads').
    const double cpu_best = median(cpu_seconds);
    // What the engine executes (the reference runs the dense maths).
    const double flops_per_prompt =
        o.reference ? built.config.forward_flops(tokens_per_prompt, context, o.explicit_linear)
                    : engine.forward_flops(tokens_per_prompt, context);
    const double flops = flops_per_prompt * static_cast<double>(o.batch);
    const double prompts_per_second = static_cast<double>(o.batch) / best;
    const double tokens_per_second = static_cast<double>(o.batch * tokens_per_prompt) / best;
    const double gflops = flops / best / 1e9;
    const std::string attention_counting =
        attention_counting_text(built.config, o.explicit_linear, o.reference);
    const runtime::SystemInfo info = runtime::collect_system_info();
    double peak_gflops = 0;
    std::vector<GroupRow> groups;
    if (o.op_groups) {
      peak_gflops = ops::gemm_peak_gflops(o.bf16 ? ops::DType::kBF16 : ops::DType::kF32);
      groups = time_op_groups(built, engine_options, tokens, o, tokens_per_prompt, context, peak_gflops);
    }

    if (o.json) {
      nlohmann::ordered_json result = {
          {"model", built.config.name.empty() ? o.model : built.config.name},
          {"dtype", o.reference ? "eigen-reference-f64" : (o.bf16 ? "bf16" : "f32")},
          {"threads", o.reference ? 1 : info.tbb_threads},
          {"batch", o.batch},
          {"tokens_per_prompt", tokens_per_prompt},
          {"context", context},
          {"seconds_median", best},
          {"seconds", seconds},
          {"prompts_per_second", prompts_per_second},
          {"tokens_per_second", tokens_per_second},
          {"gflops_per_second", gflops},
          {"gflop_per_prompt", flops_per_prompt / 1e9},
          {"attention_flops", attention_counting},
          {"structure", o.reference ? nlohmann::json() : nlohmann::json(o.dense || o.bf16 ? "dense" : "structured")},
          {"kernels", o.reference ? nlohmann::json() : nlohmann::json(engine.implementations(tokens_per_prompt, context))},
          {"system", info.to_json()},
      };
      if (o.op_groups) {
        result["gemm_peak_gflops"] = peak_gflops;
        result["cpu_seconds_median"] = cpu_best;
        result["peak_fraction"] = flops / cpu_best / 1e9 / peak_gflops;
        nlohmann::ordered_json by_group = nlohmann::ordered_json::object();
        for (const GroupRow& row : groups) {
          by_group[row.name] = {{"time_share", row.share},
                                {"gflops_per_thread_second", row.has_flops ? nlohmann::json(row.gflops) : nlohmann::json()},
                                {"peak_fraction", row.has_flops ? nlohmann::json(row.peak_fraction) : nlohmann::json()}};
        }
        result["op_groups"] = by_group;
      }
      std::fprintf(output(), "%s\n", result.dump(2).c_str());
      return;
    }
    const std::string how =
        o.reference ? std::string("Eigen reference, f64, dense, 1 thread")
                    : std::string(o.bf16 ? "bf16" : (o.dense ? "f32, dense" : "f32, structured")) + ", " +
                          std::to_string(info.tbb_threads) + " thread" + (info.tbb_threads == 1 ? "" : "s") +
                          ", oneDNN " + info.onednn_isa;
    std::fprintf(output(), "model    %s  (%s)\n",
                util::escape_control(built.config.name.empty() ? o.model : built.config.name).c_str(), how.c_str());
    std::fprintf(output(), "prompts  %lld x %lld tokens (%lld context), %.3g GFLOP per prompt (attention %s)\n",
                static_cast<long long>(o.batch), static_cast<long long>(tokens_per_prompt),
                static_cast<long long>(context), flops / static_cast<double>(o.batch) / 1e9,
                attention_counting.c_str());
    std::fprintf(output(), "median   %s per forward (%d run%s: min %s, max %s)\n", duration(best).c_str(),
                o.repeats, o.repeats == 1 ? "" : "s",
                duration(*std::min_element(seconds.begin(), seconds.end())).c_str(),
                duration(*std::max_element(seconds.begin(), seconds.end())).c_str());
    std::fprintf(output(), "         %.4g prompts/s, %.4g tokens/s, %.3g GFLOP/s\n", prompts_per_second,
                tokens_per_second, gflops);
    if (!o.reference) {
      std::fprintf(output(), "kernels ");
      for (const auto& [op, implementation] : engine.implementations(tokens_per_prompt, context)) {
        std::fprintf(output(), " %s=%s", op.c_str(), implementation.c_str());
      }
      std::fprintf(output(), "\n");
    }
    if (o.op_groups) {
      // Fractions and rates in significant digits: a fixed "%.2f" printed a fraction under 0.005
      // as "0.00", as if the group did no arithmetic.
      std::fprintf(output(), "peak     %.1f GFLOP per CPU-second (in-process %s GEMM): this forward reaches %s of it\n",
                  peak_gflops, o.bf16 ? "bf16" : "f32",
                  util::format_number(flops / cpu_best / 1e9 / peak_gflops, 2).c_str());
      std::fprintf(output(), "         (%s CPU time per forward, median; fractions per CPU-second leave out waits for a CPU)\n",
                   duration(cpu_best).c_str());
      std::fprintf(output(), "op group     time share  GFLOP/s per thread  of peak\n");
      for (const GroupRow& row : groups) {
        if (row.has_flops) {
          std::fprintf(output(), "%-12s %9.1f%%  %18s  %7s\n", row.name.c_str(), 100 * row.share,
                       util::format_number(row.gflops, 3).c_str(),
                       util::format_number(row.peak_fraction, 2).c_str());
        } else {
          std::fprintf(output(), "%-12s %9.1f%%  %18s  %7s\n", row.name.c_str(), 100 * row.share, "-", "-");
        }
      }
    }
  };
  return {app, run};
}

}  // namespace iclbench::cli
