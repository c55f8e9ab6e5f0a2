#include "eval/evaluate.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <chrono>
#include <cmath>

#include "eval/prompts.hpp"
#include "model/engine.hpp"
#include "model/resolve.hpp"
#include "runtime/threading.hpp"

namespace iclbench::eval {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

bool rotation_invariant(const data::TaskSpec& spec) {
  return spec.bias == 0.0 && (spec.family == data::Family::kGaussian ||
                              spec.family == data::Family::kSphere ||
                              spec.family == data::Family::kScaled);
}

// A non-finite score predicts nothing: it gets label 0, which matches no true label (+-1), so it
// counts as an error (and as a disagreement with every finite head).
float label_of(float score) { return std::isfinite(score) ? (score >= 0.0f ? 1.0f : -1.0f) : 0.0f; }

Metric summarize_metric(std::vector<double> per_task, const EvalConfig& config) {
  Metric metric;
  metric.summary = summarize(per_task, config.delta, config.seed, config.bootstrap);
  metric.per_task = std::move(per_task);
  return metric;
}

}  // namespace

std::uint64_t estimate_memory_bytes(const data::TaskSpec& data, const EvalConfig& config, int threads) {
  const std::int64_t tasks = data.n_tasks, m = data.n_queries, n_total = data.n_examples;
  const int d = static_cast<int>(data.dim);
  const std::vector<std::int64_t> grid = config.n_grid.empty() ? std::vector<std::int64_t>{n_total} : config.n_grid;
  const auto learners = static_cast<std::uint64_t>(config.models.size() + config.heads.size());
  const auto bytes = [](std::int64_t count, std::size_t size) { return static_cast<std::uint64_t>(count) * size; };
  // Kept to the end: every learner's scores and per-task metrics (error, noisy and exact error,
  // one disagreement per head) at every grid point.
  std::uint64_t total = grid.size() * learners *
                        (bytes(tasks * m, 4) + bytes(tasks, 8) * (3 + config.heads.size()));
  // Every head's and learner's weight vectors of one grid point.
  total += learners * bytes(tasks * d, 8);
  // Engines live side by side; each keeps the buffers of its largest grid point (plans are
  // replaced, not accumulated) plus its weights. Token chunks are transient: one at a time.
  std::uint64_t transient = 0;
  for (const std::string& spec : config.models) {
    // The config alone: sizing a run builds no weights.
    const model::ModelConfig model_config = model::ModelSource::resolve(spec, d, config.seed).config();
    model::EngineOptions options;
    options.bf16 = config.bf16;
    std::uint64_t engine_peak = 0;
    for (std::int64_t n_prefix : grid) {
      const PromptPlan plan = prompt_plan(config.context, std::clamp<std::int64_t>(n_prefix, 1, n_total),
                                          tasks, m, d, model_config.width);
      const std::int64_t chunk = std::min(plan.per_chunk, plan.prompts);
      engine_peak = std::max(engine_peak, model::Engine::working_bytes(model_config, options, plan.tokens,
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
    transient = std::max(transient, static_cast<std::uint64_t>(std::max(threads, 1)) * bytes(n_max * (d + 1), 32));
  }
  return total + transient;
}

EvalResult evaluate(const data::Dataset& dataset, const EvalConfig& config,
                    const util::ProgressCallback& progress) {
  const auto start = Clock::now();
  EvalResult result;
  result.data = dataset.spec();
  result.config = config;
  result.exact_applies = rotation_invariant(dataset.spec());
  result.threads = runtime::active_threads();
  const std::int64_t tasks = dataset.n_tasks(), m = dataset.n_queries(), n_total = dataset.n_examples();
  const int d = static_cast<int>(dataset.dim());
  result.grid = config.n_grid.empty() ? std::vector<std::int64_t>{n_total} : config.n_grid;
  for (std::int64_t n : result.grid) {
    if (n < 1 || n > n_total) {
      throw std::invalid_argument("--n-grid entry " + std::to_string(n) +
                                  " is outside [1, N = " + std::to_string(n_total) + "]");
    }
  }
  if (config.models.empty() && config.heads.empty()) {
    throw std::invalid_argument("nothing to evaluate: give --model and/or --heads");
  }
  if (!(config.delta > 0 && config.delta < 1)) {
    throw std::invalid_argument("--delta must be in (0, 1)");
  }

  // Build every transformer first, so that a bad spec fails before any work.
  std::vector<std::unique_ptr<model::Engine>> engines;
  for (const std::string& spec : config.models) {
    model::Model built = model::ModelSource::resolve(spec, d, config.seed).build();
    if (built.config.readout < 0 || built.config.input_dim != d) {
      throw std::invalid_argument("model '" + spec + "' has no readout slot for d = " +
                                  std::to_string(d) + " (eval needs an in-context learner)");
    }
    model::EngineOptions options;
    options.bf16 = config.bf16;
    std::string name = built.config.name.empty() ? spec : built.config.name;
    engines.push_back(std::make_unique<model::Engine>(std::move(built.config), std::move(built.weights), options));
    result.learners.push_back({name, true, {}, 0, 0, 0, 0});
  }
  for (const heads::HeadSpec& head : config.heads) result.learners.push_back({head.name, false, {}, 0, 0, 0, 0});

  const std::int64_t total_steps = static_cast<std::int64_t>(result.grid.size() * result.learners.size());
  std::int64_t steps = 0;
  for (std::int64_t n_prefix : result.grid) {
    // Heads first: every learner's disagreement is measured against them.
    std::vector<std::vector<std::vector<double>>> weights(result.learners.size());
    std::vector<PrefixResult> points(result.learners.size());
    for (std::size_t h = 0; h < config.heads.size(); ++h) {
      const heads::HeadSpec& spec = config.heads[h];
      const std::size_t index = engines.size() + h;
      PrefixResult& point = points[index];
      point.n = point.context = n_prefix;
      point.scores.assign(static_cast<std::size_t>(tasks * m), 0.0f);
      weights[index].assign(static_cast<std::size_t>(tasks), {});
      const auto head_start = Clock::now();
      tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, tasks, 1),
                        [&](const tbb::blocked_range<std::int64_t>& range) {
                          for (std::int64_t task = range.begin(); task < range.end(); ++task) {
                            const heads::TaskData data{
                                dataset.x(task).first(static_cast<std::size_t>(n_prefix * d)),
                                dataset.y(task).first(static_cast<std::size_t>(n_prefix)),
                                dataset.w_star(task), d};
                            heads::TrainedHead trained = heads::train(spec, data);
                            heads::predict(spec, trained, data, dataset.x_query(task),
                                           std::span(point.scores).subspan(static_cast<std::size_t>(task * m),
                                                                           static_cast<std::size_t>(m)));
                            weights[index][static_cast<std::size_t>(task)] = std::move(trained.w);
                          }
                        });
      result.learners[index].seconds += seconds_since(head_start);
      if (progress) progress(++steps, total_steps);
    }
    for (std::size_t e = 0; e < engines.size(); ++e) {
      const auto model_start = Clock::now();
      TransformerRun run = run_transformer(*engines[e], dataset, config.context, config.seed, n_prefix);
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

    // Metrics: per task, then summaries.
    for (std::size_t l = 0; l < result.learners.size(); ++l) {
      PrefixResult& point = points[l];
      point.n = n_prefix;
      std::vector<double> err(static_cast<std::size_t>(tasks)), noisy, exact;
      const bool has_noisy = !dataset.y_query_noisy(0).empty();
      if (has_noisy) noisy.resize(static_cast<std::size_t>(tasks));
      const bool linear_weights = !weights[l].empty() && !weights[l][0].empty() &&
                                  (!point.linear.has_value() || *point.linear);
      const bool exact_here = result.exact_applies && linear_weights;
      if (exact_here) exact.resize(static_cast<std::size_t>(tasks));
      for (std::int64_t task = 0; task < tasks; ++task) {
        const auto truth = dataset.y_query(task);
        const float* scores = point.scores.data() + task * m;
        std::int64_t wrong = 0, wrong_noisy = 0;
        bool nonfinite = false;
        for (std::int64_t q = 0; q < m; ++q) {
          nonfinite = nonfinite || !std::isfinite(scores[q]);
          wrong += label_of(scores[q]) != truth[static_cast<std::size_t>(q)];
          if (has_noisy) wrong_noisy += label_of(scores[q]) != dataset.y_query_noisy(task)[static_cast<std::size_t>(q)];
        }
        point.nonfinite_tasks += nonfinite;
        err[static_cast<std::size_t>(task)] = static_cast<double>(wrong) / static_cast<double>(m);
        if (has_noisy) noisy[static_cast<std::size_t>(task)] = static_cast<double>(wrong_noisy) / static_cast<double>(m);
        if (exact_here) {
          exact[static_cast<std::size_t>(task)] = angle_error(weights[l][static_cast<std::size_t>(task)], dataset.w_star(task));
        }
      }
      point.err = summarize_metric(std::move(err), config);
      if (has_noisy) point.err_noisy = summarize_metric(std::move(noisy), config);
      if (exact_here) point.exact_err = summarize_metric(std::move(exact), config);
      for (std::size_t h = 0; h < config.heads.size(); ++h) {
        const PrefixResult& head = points[engines.size() + h];
        std::vector<double> dis(static_cast<std::size_t>(tasks));
        for (std::int64_t task = 0; task < tasks; ++task) {
          std::int64_t differ = 0;
          for (std::int64_t q = 0; q < m; ++q) {
            const std::size_t at = static_cast<std::size_t>(task * m + q);
            differ += label_of(point.scores[at]) != label_of(head.scores[at]);
          }
          dis[static_cast<std::size_t>(task)] = static_cast<double>(differ) / static_cast<double>(m);
        }
        point.dis.emplace_back(config.heads[h].name, summarize_metric(std::move(dis), config));
      }
    }
    // Only now: the disagreement of every learner above reads the heads' scores.
    for (std::size_t l = 0; l < result.learners.size(); ++l) {
      result.learners[l].grid.push_back(std::move(points[l]));
    }
  }
  result.seconds = seconds_since(start);
  return result;
}

}  // namespace iclbench::eval
