#include "eval/evaluate.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <memory>
#include <set>
#include <span>
#include <string>

#include "eval/prompts.hpp"
#include "model/engine.hpp"
#include "model/garg.hpp"
#include "runtime/threading.hpp"
#include "util/errors.hpp"
#include "util/text.hpp"

namespace iclbench::eval {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}


std::vector<std::int64_t> prefix_grid(const EvalConfig& config, const data::TaskSpec& data) {
  return config.n_grid.empty() ? std::vector<std::int64_t>{data.n_examples} : config.n_grid;
}

Metric summarize_metric(std::vector<double> per_task, const EvalConfig& config) {
  Metric metric;
  metric.summary = summarize(per_task, config.delta, config.seed, config.bootstrap);
  metric.per_task = std::move(per_task);
  return metric;
}

// One head trained on the first n' examples of every task (in parallel over tasks): its query
// scores, and its weight vector per task ([T][d], empty for knn).
void run_head(const heads::HeadSpec& spec, const data::Dataset& dataset, std::int64_t n_prefix,
              PrefixResult& point, std::vector<std::vector<double>>& weights) {
  const int d = static_cast<int>(dataset.dim());
  const std::int64_t tasks = dataset.n_tasks(), m = dataset.n_queries();
  point.context = n_prefix;
  point.scores.assign(static_cast<std::size_t>(tasks * m), 0.0f);
  weights.assign(static_cast<std::size_t>(tasks), {});
  const bool erm = spec.kind == heads::HeadKind::kSvmHard;
  point.train_error.assign(erm ? static_cast<std::size_t>(tasks) : 0, 0.0);
  point.margin.assign(erm ? static_cast<std::size_t>(tasks) : 0, 0.0);
  tbb::parallel_for(
      tbb::blocked_range<std::int64_t>(0, tasks, 1),
      [&](const tbb::blocked_range<std::int64_t>& range) {
        for (std::int64_t task = range.begin(); task < range.end(); ++task) {
          const heads::TaskData data{dataset.x(task).first(static_cast<std::size_t>(n_prefix * d)),
                                     dataset.y(task).first(static_cast<std::size_t>(n_prefix)),
                                     dataset.w_star(task), d};
          heads::TrainedHead trained = heads::train(spec, data);
          heads::predict(
              spec, trained, data, dataset.x_query(task),
              std::span(point.scores)
                  .subspan(static_cast<std::size_t>(task * m), static_cast<std::size_t>(m)));
          weights[static_cast<std::size_t>(task)] = std::move(trained.w);
          if (erm) {
            point.train_error[static_cast<std::size_t>(task)] = trained.train_error;
            point.margin[static_cast<std::size_t>(task)] = trained.margin;
          }
        }
      });
}

// The metrics of one learner at one n' from its scores (and weight vectors, where it has them):
// per-task error, noisy error, exact error and disagreement with every head, then their summaries.
void add_metrics(PrefixResult& point, const std::vector<std::vector<double>>& weights,
                 std::span<const PrefixResult> head_points, const data::Dataset& dataset,
                 const EvalConfig& config, bool exact_applies) {
  const std::int64_t tasks = dataset.n_tasks(), m = dataset.n_queries();
  const auto task_scores = [m](const PrefixResult& p, std::int64_t task) {
    return std::span(p.scores).subspan(static_cast<std::size_t>(task * m),
                                       static_cast<std::size_t>(m));
  };
  const bool has_noisy = !dataset.y_query_noisy(0).empty();
  const bool linear_weights =
      !weights.empty() && !weights[0].empty() && point.linear.value_or(true);
  const bool exact_here = exact_applies && linear_weights;
  std::vector<double> err(static_cast<std::size_t>(tasks)), noisy, exact;
  if (has_noisy) noisy.resize(static_cast<std::size_t>(tasks));
  if (exact_here) exact.resize(static_cast<std::size_t>(tasks));
  for (std::int64_t task = 0; task < tasks; ++task) {
    const auto scores = task_scores(point, task);
    point.nonfinite_tasks +=
        std::any_of(scores.begin(), scores.end(), [](float s) { return !std::isfinite(s); });
    const auto t = static_cast<std::size_t>(task);
    err[t] = error_rate(scores, dataset.y_query(task));
    if (has_noisy) noisy[t] = error_rate(scores, dataset.y_query_noisy(task));
    if (exact_here) exact[t] = angle_error(weights[t], dataset.w_star(task));
  }
  point.err = summarize_metric(std::move(err), config);
  if (has_noisy) point.err_noisy = summarize_metric(std::move(noisy), config);
  if (exact_here) point.exact_err = summarize_metric(std::move(exact), config);
  for (std::size_t h = 0; h < head_points.size(); ++h) {
    std::vector<double> dis(static_cast<std::size_t>(tasks));
    for (std::int64_t task = 0; task < tasks; ++task) {
      dis[static_cast<std::size_t>(task)] =
          disagreement_rate(task_scores(point, task), task_scores(head_points[h], task));
    }
    point.dis.emplace_back(config.heads[h].name, summarize_metric(std::move(dis), config));
  }
}

}  // namespace

void validate(const EvalConfig& config, const data::TaskSpec& data,
              std::span<const model::ModelSource> models) {
  if (models.empty() && config.heads.empty()) {
    throw std::invalid_argument("nothing to evaluate: no models and no heads");
  }
  for (std::int64_t n : config.n_grid) {
    util::require(n >= 1 && n <= data.n_examples, "n_grid",
                  "entry " + std::to_string(n) +
                      " is outside [1, N = " + std::to_string(data.n_examples) + "]");
  }
  // Results are labelled by their position in the grid: an unsorted or repeated grid would
  // label one n' with another's scores.
  util::require(std::adjacent_find(config.n_grid.begin(), config.n_grid.end(),
                                   std::greater_equal<>()) == config.n_grid.end(),
                "n_grid", "must be strictly increasing");
  // A context of K examples out of fewer would be silently smaller than asked.
  if (config.context.policy != ContextPolicy::kFull) {
    const std::int64_t smallest = config.n_grid.empty() ? data.n_examples : config.n_grid.front();
    util::require(config.context.k <= smallest, "context",
                  config.context.text + ": K = " + std::to_string(config.context.k) +
                      " is larger than the smallest n' = " + std::to_string(smallest) +
                      " it would be drawn from");
  }
  // Likewise knn's k: heads::predict takes min(k, n'), so knn:k=9 on 8 examples scored as k=8.
  const std::int64_t smallest_prefix = config.n_grid.empty() ? data.n_examples : config.n_grid.front();
  for (const heads::HeadSpec& head : config.heads) {
    util::require(head.kind != heads::HeadKind::kKnn || head.k <= smallest_prefix, "heads",
                  head.name + ": k = " + std::to_string(head.k) + " is larger than the smallest n' = " +
                      std::to_string(smallest_prefix) + " it would vote among");
  }
  check_delta(config.delta);
  check_resamples(config.bootstrap);
  // Learners are keyed by name in the JSON and the predictions file: two of one name would lose
  // one learner and leave a hole in the file.
  std::set<std::string> names;
  for (const model::ModelSource& source : models) {
    const std::string name = source.config().name.empty() ? source.text() : source.config().name;
    if (!names.insert(name).second) throw std::invalid_argument("learner '" + name + "' is given twice");
  }
  for (const heads::HeadSpec& head : config.heads) {
    if (!names.insert(head.name).second) throw std::invalid_argument("learner '" + head.name + "' is given twice");
  }
  for (const model::ModelSource& source : models) {
    const model::ModelConfig& model_config = source.config();
    if ((model_config.readout < 0 && !model_config.read_out) ||
        model_config.input_dim != data.dim) {
      throw std::invalid_argument("model '" + source.text() + "' has no readout slot for d = " +
                                  std::to_string(data.dim) + " (eval needs an in-context learner)");
    }
    if (model_config.read_in && config.context.policy == ContextPolicy::kEnsemble) {
      throw std::invalid_argument("model '" + source.text() +
                                  "' reads interleaved prompts; ensemble:K needs a constructed-layout model");
    }
    if (model_config.read_in && model_config.positions > 0) {
      // The longest prompt, 2k + 1 tokens for k context pairs, must fit the positional table.
      const std::int64_t k_max = model::interleaved_max_context(model_config.positions);
      const std::vector<std::int64_t> grid = prefix_grid(config, data);
      for (std::int64_t n : grid) {
        const std::int64_t k =
            config.context.policy == ContextPolicy::kFull ? n : std::min(config.context.k, n);
        util::require(k <= k_max, "n_grid",
                      "entry " + std::to_string(n) + " needs " +
                          std::to_string(model::interleaved_prompt_tokens(k)) +
                          " tokens, but model '" + source.text() + "' has " +
                          std::to_string(model_config.positions) + " positions (at most " +
                          std::to_string(k_max) + " context pairs before a query)");
      }
    }
  }
}

std::string learner_name(const model::ModelSource& source) {
  // A name read from a model file, or a path, may hold any byte: it is written into one-line
  // places (the table, CSV rows, report.md, messages), so its control characters are escaped.
  return util::escape_control(source.config().name.empty() ? source.text() : source.config().name);
}

std::uint64_t estimate_memory_bytes(const data::TaskSpec& data,
                                    std::span<const model::ModelSource> models,
                                    const EvalConfig& config, int threads) {
  const std::int64_t tasks = data.n_tasks, m = data.n_queries, n_total = data.n_examples;
  const int d = static_cast<int>(data.dim);
  const std::vector<std::int64_t> grid = prefix_grid(config, data);
  const auto learners = static_cast<std::uint64_t>(models.size() + config.heads.size());
  const auto bytes = [](std::int64_t count, std::size_t size) {
    return static_cast<std::uint64_t>(count) * size;
  };
  // Kept to the end: every learner's scores and per-task metrics (error, noisy and exact error,
  // one disagreement per head) at every grid point.
  std::uint64_t total =
      grid.size() * learners * (bytes(tasks * m, 4) + bytes(tasks, 8) * (3 + config.heads.size()));
  // Every head's and learner's weight vectors at every grid point (PrefixResult::weights).
  total += grid.size() * learners * bytes(tasks * d, 8);
  // Engines live side by side; each keeps the buffers of its largest grid point (plans are
  // replaced, not accumulated) plus its weights. Token chunks are transient: one at a time.
  std::uint64_t transient = 0;
  for (const model::ModelSource& source : models) {
    const model::ModelConfig& model_config = source.config();
    model::EngineOptions options;
    options.bf16 = config.bf16;
    std::uint64_t engine_peak = 0;
    for (std::int64_t n_prefix : grid) {
      const PromptPlan plan =
          prompt_plan(config.context, std::clamp<std::int64_t>(n_prefix, 1, n_total), tasks, m, d,
                      model_config);
      const std::int64_t chunk = std::min(plan.per_chunk, plan.prompts);
      engine_peak =
          std::max(engine_peak, model::Engine::working_bytes(model_config, options, plan.tokens,
                                                             plan.context, chunk, threads));
      // The chunk's tokens, one prompt being assembled, and the chunk's scores.
      transient = std::max(transient, bytes(chunk * plan.tokens * model_config.width, 4) +
                                          bytes(plan.tokens * model_config.width, 4) +
                                          bytes(chunk * plan.scores, 4));
    }
    total += engine_peak + bytes(model_config.parameter_count(), 4 + (config.bf16 ? 2 : 4));
  }
  // Heads train per task on up to `threads` tasks at once; LIBLINEAR's copy of the examples
  // (16 bytes per value and per row end) and its solver vectors, or an Eigen matrix and its
  // decomposition, stay under 32 bytes per value.
  if (!config.heads.empty()) {
    const std::int64_t n_max = *std::max_element(grid.begin(), grid.end());
    transient = std::max(
        transient, static_cast<std::uint64_t>(std::max(threads, 1)) * bytes(n_max * (d + 1), 32));
  }
  return total + transient;
}

void check_scores_finite(const EvalResult& result) {
  const std::int64_t queries = result.data.n_queries;
  for (std::size_t l = 0; l < result.learners.size(); ++l) {
    const LearnerResult& learner = result.learners[l];
    const std::string given_as = l < result.models.size() ? result.models[l] : learner.name;
    for (const PrefixResult& point : learner.grid) {
      const auto bad = std::find_if(point.scores.begin(), point.scores.end(), [](float s) { return !std::isfinite(s); });
      if (bad == point.scores.end()) continue;
      const auto index = static_cast<std::int64_t>(bad - point.scores.begin());
      const std::string model = "model '" + learner.name + "'" + (given_as == learner.name ? "" : " (" + given_as + ")");
      throw std::invalid_argument(model + " gives a non-finite score (" + std::to_string(*bad) + ") at n' = " +
                                  std::to_string(point.n) + ", task " + std::to_string(index / queries) +
                                  ", query " + std::to_string(index % queries) +
                                  " (diverging, or weights that overflow float32): a predictions file holds "
                                  "finite scores only");
    }
  }
}

namespace {

// How evaluate_with() runs transformer e at prefix size n'.
using TransformerRunner =
    std::function<TransformerRun(const model::Engine& engine, std::size_t e, std::int64_t n_prefix)>;

EvalResult evaluate_with(const data::Dataset& dataset, std::span<const model::ModelSource> models,
                         const EvalConfig& config, const util::ProgressCallback& progress,
                         const TransformerRunner& run_model) {
  const auto start = Clock::now();
  validate(config, dataset.spec(), models);
  EvalResult result;
  result.data = dataset.spec();
  result.config = config;
  result.exact_applies = rotation_invariant(dataset.spec());
  result.threads = runtime::active_threads();
  result.grid = prefix_grid(config, dataset.spec());

  // Build every transformer first, so that a bad model file fails before any work.
  std::vector<std::unique_ptr<model::Engine>> engines;
  for (const model::ModelSource& source : models) {
    model::Model built = source.build();
    model::EngineOptions options;
    options.bf16 = config.bf16;
    options.dense = config.dense;
    std::string name = learner_name(source);
    engines.push_back(std::make_unique<model::Engine>(std::move(built.config),
                                                      std::move(built.weights), options));
    result.models.push_back(source.text());
    result.learners.push_back({name, true, {}, 0, 0, 0, 0});
  }
  for (const heads::HeadSpec& head : config.heads)
    result.learners.push_back({head.name, false, {}, 0, 0, 0, 0});

  const std::int64_t total_steps =
      static_cast<std::int64_t>(result.grid.size() * result.learners.size());
  std::int64_t steps = 0;
  const std::size_t first_head = engines.size();
  for (std::int64_t n_prefix : result.grid) {
    // Heads first: every learner's disagreement is measured against them.
    std::vector<std::vector<std::vector<double>>> weights(result.learners.size());
    std::vector<PrefixResult> points(result.learners.size());
    for (std::size_t h = 0; h < config.heads.size(); ++h) {
      const auto head_start = Clock::now();
      run_head(config.heads[h], dataset, n_prefix, points[first_head + h], weights[first_head + h]);
      result.learners[first_head + h].seconds += seconds_since(head_start);
      if (progress) progress(++steps, total_steps);
    }
    for (std::size_t e = 0; e < engines.size(); ++e) {
      const auto model_start = Clock::now();
      TransformerRun run = run_model(*engines[e], e, n_prefix);
      LearnerResult& learner = result.learners[e];
      learner.seconds += seconds_since(model_start);
      learner.prompts += run.prompts;
      learner.tokens += run.tokens;
      learner.flops += run.flops;
      points[e].context = run.context;
      points[e].scores = std::move(run.scores);
      points[e].linear = run.linear;
      points[e].probe_residual = run.probe_residual;
      weights[e] = std::move(run.probe_weights);
      if (progress) progress(++steps, total_steps);
    }
    const std::span<const PrefixResult> head_points = std::span(points).subspan(first_head);
    for (std::size_t l = 0; l < result.learners.size(); ++l) {
      points[l].n = n_prefix;
      add_metrics(points[l], weights[l], head_points, dataset, config, result.exact_applies);
    }
    // Only now: the disagreement of every learner above reads the heads' scores.
    for (std::size_t l = 0; l < result.learners.size(); ++l) {
      const bool linear = !weights[l].empty() && !weights[l][0].empty() && points[l].linear.value_or(true);
      if (linear) points[l].weights = std::move(weights[l]);
      result.learners[l].grid.push_back(std::move(points[l]));
    }
  }
  result.seconds = seconds_since(start);
  return result;
}

}  // namespace

EvalResult evaluate(const data::Dataset& dataset, std::span<const model::ModelSource> models,
                    const EvalConfig& config, const util::ProgressCallback& progress) {
  return evaluate_with(dataset, models, config, progress,
                       [&](const model::Engine& engine, std::size_t, std::int64_t n_prefix) {
                         return run_transformer(engine, dataset, config.context, config.seed, n_prefix);
                       });
}

std::vector<EvalResult> evaluate_retrieval(const data::Dataset& dataset,
                                           const model::ModelSource& model, const EvalConfig& config,
                                           std::span<const std::int64_t> k_grid) {
  // One n': the runs below are computed once, at the first n' the engine is asked for.
  util::require(config.n_grid.size() <= 1, "n_grid", "retrieval over a k grid takes one prefix size");
  std::vector<EvalResult> results;
  std::vector<TransformerRun> runs;  // every k's run, from the first k's engine
  for (std::size_t i = 0; i < k_grid.size(); ++i) {
    EvalConfig k_config = config;
    k_config.context = parse_context("retrieve:" + std::to_string(k_grid[i]));
    results.push_back(evaluate_with(
        dataset, std::span(&model, 1), k_config, {},
        [&](const model::Engine& engine, std::size_t, std::int64_t n_prefix) {
          if (runs.empty()) runs = run_transformer_retrieval(engine, dataset, k_grid, config.seed, n_prefix);
          return std::move(runs[i]);
        }));
  }
  return results;
}

bool rotation_invariant(const data::TaskSpec& spec) {
  return spec.bias == 0.0 &&
         (spec.family == data::Family::kGaussian || spec.family == data::Family::kSphere ||
          spec.family == data::Family::kScaled);
}

}  // namespace iclbench::eval
