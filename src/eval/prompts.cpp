#include "eval/prompts.hpp"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <span>
#include <stdexcept>

#include "model/constructions.hpp"
#include "model/garg.hpp"
#include "util/philox.hpp"

namespace iclbench::eval {
namespace {

constexpr double kLinearResidual = 1e-3;  // f32 scores of a linear map fit to ~1e-5 or better
constexpr std::size_t kChunkBytes = 64u << 20;

// The probe queries of one task: [P, d], standard normal.
std::vector<float> probe_queries(std::uint64_t seed, std::uint32_t task, int d, int count) {
  std::vector<float> probes(static_cast<std::size_t>(count * d));
  util::DrawSequence draws(seed, task, 0, util::Stream::kProbe);
  for (float& value : probes) value = static_cast<float>(draws.normal());
  return probes;
}

// Least-squares fit score = w.z + b over the probes; returns w and the relative residual.
struct ProbeFit {
  std::vector<double> w;
  double residual = 0;
};
ProbeFit fit_linear(std::span<const float> probes, std::span<const float> scores, int d) {
  const auto count = static_cast<Eigen::Index>(scores.size());
  Eigen::MatrixXd design(count, d + 1);
  Eigen::VectorXd target(count);
  for (Eigen::Index i = 0; i < count; ++i) {
    for (int j = 0; j < d; ++j) design(i, j) = probes[static_cast<std::size_t>(i * d + j)];
    design(i, d) = 1.0;
    target[i] = scores[static_cast<std::size_t>(i)];
  }
  const Eigen::VectorXd theta = design.colPivHouseholderQr().solve(target);
  ProbeFit fit;
  fit.w.assign(theta.data(), theta.data() + d);
  const double scale = std::max(target.norm(), 1e-30);
  // A homogeneous linear score has no intercept: count it as residual.
  fit.residual =
      std::max((design * theta - target).norm(), std::abs(theta[d]) * std::sqrt(count)) / scale;
  return fit;
}

// tokens emptied, with room for `floats` (a chunk of prompts). When it must grow, its old block
// is freed first: reserve() would hold the old and the new block at once, and the memory
// estimate (estimate_memory_bytes) counts one chunk.
void reserve_chunk(std::vector<float>& tokens, std::size_t floats) {
  tokens.clear();
  if (tokens.capacity() < floats) tokens = std::vector<float>();
  tokens.reserve(floats);
}

// Every query its own prompt: its k context examples, then itself. Under retrieve:k they are the
// query's k nearest; for a learned GPT-2-layout model (read_in) they are chosen by any policy (the
// first n', or a random k per task, as the per-task prompts below) and the prompt is interleaved,
// x_1, y_1, ..., x_k, y_k, x_q (model/garg.hpp). One query per pass is the exact evaluation: under
// its causal mask a second query in the same prompt would see the first. Either way the query is
// the prompt's last token.
//
// The prompts of tasks [first_task, last_task) only; under retrieval `orders`, when given, holds
// each of those tasks' nearest-first orders ([m, depth] per task, depth >= k, from
// nearest_by_cosine), whose first k are the context, instead of a search per task. The engine's
// scores do not depend on how prompts are batched (model/engine.hpp), so running the tasks in
// ranges gives the bits of one run over all of them. `tokens`: the chunk's prompts, the caller's
// (as run_per_task's), so that retrieve:k's blocks and k reuse one buffer.
void run_per_query(const model::Engine& engine, const data::Dataset& dataset,
                   const ContextSpec& context, std::uint64_t seed, const PromptPlan& plan,
                   std::int64_t n_prefix, TransformerRun& run, std::int64_t first_task,
                   std::int64_t last_task, const std::vector<std::vector<std::int64_t>>* orders,
                   std::int64_t depth, std::vector<float>& tokens) {
  const int d = static_cast<int>(dataset.dim());
  const std::int64_t m = dataset.n_queries(), k = plan.context;
  const bool interleaved = engine.config().read_in;
  std::vector<float> scores;
  std::vector<float> cx(static_cast<std::size_t>(k * d)), cy(static_cast<std::size_t>(k));
  const std::int64_t begin = first_task * m, end = last_task * m;
  for (std::int64_t first = begin; first < end; first += plan.per_chunk) {
    const std::int64_t count = std::min(plan.per_chunk, end - first);
    // Reserved whole: grown by insert, the vector would briefly hold up to three times a chunk
    // while it reallocates (the old block and one twice its size); estimate_memory_bytes counts
    // one chunk.
    reserve_chunk(tokens, static_cast<std::size_t>(count * plan.tokens * (interleaved ? d : engine.config().width)));
    std::int64_t cached_task = -1;
    std::vector<std::int64_t> chosen;  // [k] per task, or [m, k] per query under retrieval
    for (std::int64_t prompt = first; prompt < first + count; ++prompt) {
      const std::int64_t task = prompt / m, q = prompt % m;
      const auto x = dataset.x(task), y = dataset.y(task), queries = dataset.x_query(task);
      if (task != cached_task && !(orders && context.policy == ContextPolicy::kRetrieve)) {
        if (context.policy == ContextPolicy::kRetrieve) {
          chosen = nearest_by_cosine(x, n_prefix, queries, m, d, k);
        } else if (context.policy == ContextPolicy::kRandom) {
          chosen = random_subset(seed, static_cast<std::uint32_t>(task), n_prefix, k);
        } else {
          chosen.clear();
        }
        cached_task = task;
      }
      const bool ordered = orders && context.policy == ContextPolicy::kRetrieve;
      const std::vector<std::int64_t>& from =
          ordered ? (*orders)[static_cast<std::size_t>(task - first_task)] : chosen;
      const std::int64_t offset =
          context.policy == ContextPolicy::kRetrieve ? q * (ordered ? depth : k) : 0;
      for (std::int64_t i = 0; i < k; ++i) {
        const std::int64_t source =
            from.empty() ? i : from[static_cast<std::size_t>(offset + i)];
        std::copy_n(x.begin() + source * d, d, cx.begin() + i * d);
        cy[static_cast<std::size_t>(i)] = y[static_cast<std::size_t>(source)];
      }
      const auto query =
          queries.subspan(static_cast<std::size_t>(q * d), static_cast<std::size_t>(d));
      const std::vector<float> prompt_tokens = interleaved
                                                   ? model::interleaved_tokens(cx, cy, query, d)
                                                   : model::icl_tokens(cx, cy, query, d);
      tokens.insert(tokens.end(), prompt_tokens.begin(), prompt_tokens.end());
    }
    scores.resize(static_cast<std::size_t>(count));
    engine.query_scores(tokens, count, plan.tokens, plan.tokens - 1, scores);
    std::copy(scores.begin(), scores.end(), run.scores.begin() + first);
  }
}

// Tasks per block of run_transformer_retrieval's orders: about kChunkBytes of indices, at least one task.
std::int64_t order_block_tasks(std::int64_t queries, std::int64_t depth) {
  const auto per_task = static_cast<std::size_t>(queries * depth) * sizeof(std::int64_t);
  return std::max<std::int64_t>(1, static_cast<std::int64_t>(kChunkBytes / std::max<std::size_t>(per_task, 1)));
}

// A run's counts for throughput: its prompts, tokens and forward FLOPs.
void count_work(const model::Engine& engine, const PromptPlan& plan, TransformerRun& run) {
  run.prompts = static_cast<double>(plan.prompts);
  run.tokens = static_cast<double>(plan.prompts * plan.tokens);
  run.flops = engine.forward_flops(plan.tokens, plan.context) * static_cast<double>(plan.prompts);
}

// One prompt per task: its context (the k examples from `offset` on, or a random k of the first
// n'), the queries, then the probes; each task's probe scores are fitted by a linear map.
// `tokens`: the chunk's prompts, the caller's so that ensemble:k's windows reuse one buffer (a
// fresh one per window is a fresh mapping of up to kChunkBytes, whose first touch page-faults:
// a third of the quick preset's faults).
void run_per_task(const model::Engine& engine, const data::Dataset& dataset,
                  const ContextSpec& context, std::uint64_t seed, const PromptPlan& plan,
                  std::int64_t n_prefix, std::int64_t offset, TransformerRun& run,
                  std::vector<float>& tokens) {
  const int d = static_cast<int>(dataset.dim());
  const std::int64_t tasks = dataset.n_tasks(), m = dataset.n_queries(), k = plan.context;
  const int probes = 2 * (d + 1);
  std::vector<float> scores;
  std::vector<float> cx(static_cast<std::size_t>(k * d)), cy(static_cast<std::size_t>(k));
  std::vector<float> all_queries(static_cast<std::size_t>((m + probes) * d));
  double worst_residual = 0;
  bool linear = true;
  run.probe_weights.assign(static_cast<std::size_t>(tasks), {});
  for (std::int64_t first = 0; first < tasks; first += plan.per_chunk) {
    const std::int64_t count = std::min(plan.per_chunk, tasks - first);
    reserve_chunk(tokens, static_cast<std::size_t>(count * plan.tokens * engine.config().width));
    for (std::int64_t task = first; task < first + count; ++task) {
      const auto x = dataset.x(task), y = dataset.y(task), queries = dataset.x_query(task);
      const std::vector<std::int64_t> chosen =
          context.policy == ContextPolicy::kRandom
              ? random_subset(seed, static_cast<std::uint32_t>(task), n_prefix, k)
              : std::vector<std::int64_t>();
      for (std::int64_t i = 0; i < k; ++i) {
        const std::int64_t source = chosen.empty() ? offset + i : chosen[static_cast<std::size_t>(i)];
        std::copy_n(x.begin() + source * d, d, cx.begin() + i * d);
        cy[static_cast<std::size_t>(i)] = y[static_cast<std::size_t>(source)];
      }
      std::copy(queries.begin(), queries.end(), all_queries.begin());
      const std::vector<float> probe =
          probe_queries(seed, static_cast<std::uint32_t>(task), d, probes);
      std::copy(probe.begin(), probe.end(), all_queries.begin() + m * d);
      const std::vector<float> prompt = model::icl_tokens(cx, cy, all_queries, d);
      tokens.insert(tokens.end(), prompt.begin(), prompt.end());
    }
    scores.resize(static_cast<std::size_t>(count * (m + probes)));
    engine.query_scores(tokens, count, plan.tokens, k, scores);
    for (std::int64_t b = 0; b < count; ++b) {
      const std::int64_t task = first + b;
      const float* row = scores.data() + b * (m + probes);
      std::copy_n(row, m, run.scores.begin() + task * m);
      const std::vector<float> probe =
          probe_queries(seed, static_cast<std::uint32_t>(task), d, probes);
      ProbeFit fit = fit_linear(probe, std::span(row + m, static_cast<std::size_t>(probes)), d);
      worst_residual = std::max(worst_residual, fit.residual);
      linear = linear && fit.residual <= kLinearResidual;
      run.probe_weights[static_cast<std::size_t>(task)] = std::move(fit.w);
    }
  }
  run.linear = linear;
  run.probe_residual = worst_residual;
}

// ensemble:k: the windows [j k, min((j + 1) k, n')) run one after another as full contexts;
// scores and probe fits are averaged with equal weights (the probe fit is linear in the scores,
// so the mean of the windows' fits is the fit of the mean score).
void run_ensemble(const model::Engine& engine, const data::Dataset& dataset,
                  const ContextSpec& context, std::uint64_t seed, std::int64_t n_prefix,
                  TransformerRun& run) {
  const int d = static_cast<int>(dataset.dim());
  const std::int64_t tasks = dataset.n_tasks(), m = dataset.n_queries();
  const std::int64_t windows = (n_prefix + context.k - 1) / context.k;
  std::vector<double> sum(run.scores.size(), 0.0);
  std::vector<std::vector<double>> weight_sum(static_cast<std::size_t>(tasks),
                                              std::vector<double>(static_cast<std::size_t>(d), 0.0));
  bool linear = true;
  std::vector<float> tokens;  // every window's chunks, one buffer
  for (std::int64_t j = 0; j < windows; ++j) {
    const std::int64_t offset = j * context.k, size = std::min(context.k, n_prefix - offset);
    const PromptPlan plan = prompt_plan(ContextSpec{}, size, tasks, m, d, engine.config());
    TransformerRun window;
    window.scores.assign(run.scores.size(), 0.0f);
    run_per_task(engine, dataset, ContextSpec{}, seed, plan, size, offset, window, tokens);
    for (std::size_t i = 0; i < sum.size(); ++i) sum[i] += window.scores[i];
    for (std::size_t t = 0; t < weight_sum.size(); ++t)
      for (std::size_t c = 0; c < weight_sum[t].size(); ++c) weight_sum[t][c] += window.probe_weights[t][c];
    linear = linear && window.linear.value_or(false);
    run.probe_residual = std::max(run.probe_residual, window.probe_residual);
    run.prompts += static_cast<double>(plan.prompts);
    run.tokens += static_cast<double>(plan.prompts * plan.tokens);
    run.flops += engine.forward_flops(plan.tokens, plan.context) * static_cast<double>(plan.prompts);
  }
  const double scale = 1.0 / static_cast<double>(windows);
  for (std::size_t i = 0; i < sum.size(); ++i) run.scores[i] = static_cast<float>(sum[i] * scale);
  for (auto& w : weight_sum)
    for (double& value : w) value *= scale;
  run.probe_weights = std::move(weight_sum);
  run.linear = linear;
  run.context = std::min(context.k, n_prefix);
}

}  // namespace

PromptPlan prompt_plan(const ContextSpec& context, std::int64_t n_prefix, std::int64_t tasks,
                       std::int64_t queries, int d, const model::ModelConfig& model) {
  PromptPlan plan;
  std::int64_t width = model.width;
  if (model.read_in) {
    plan.context =
        context.policy == ContextPolicy::kFull ? n_prefix : std::min(context.k, n_prefix);
    plan.tokens = model::interleaved_prompt_tokens(plan.context);
    plan.prompts = tasks * queries;
    plan.scores = 1;
    width = d;  // the engine embeds the tokens itself
  } else if (context.policy == ContextPolicy::kRetrieve) {
    plan.context = std::min(context.k, n_prefix);
    plan.tokens = plan.context + 1;
    plan.prompts = tasks * queries;
    plan.scores = 1;
  } else {
    // ensemble:k: one window's plan (the engine's buffers are a window's).
    plan.context =
        context.policy == ContextPolicy::kFull ? n_prefix : std::min(context.k, n_prefix);
    plan.scores = queries + 2 * (d + 1);
    plan.tokens = plan.context + plan.scores;
    plan.prompts = tasks;
  }
  plan.per_chunk = std::max<std::int64_t>(
      1,
      static_cast<std::int64_t>(kChunkBytes / static_cast<std::size_t>(plan.tokens * width * 4)));
  return plan;
}

TransformerRun run_transformer(const model::Engine& engine, const data::Dataset& dataset,
                               const ContextSpec& context, std::uint64_t seed,
                               std::int64_t n_prefix) {
  const int d = static_cast<int>(dataset.dim());
  const std::int64_t tasks = dataset.n_tasks(), m = dataset.n_queries();
  const PromptPlan plan = prompt_plan(context, n_prefix, tasks, m, d, engine.config());
  TransformerRun run;
  run.context = plan.context;
  run.scores.assign(static_cast<std::size_t>(tasks * m), 0.0f);
  if (engine.config().read_in || context.policy == ContextPolicy::kRetrieve) {
    std::vector<float> tokens;
    run_per_query(engine, dataset, context, seed, plan, n_prefix, run, 0, tasks, nullptr, 0, tokens);
  } else if (context.policy == ContextPolicy::kEnsemble) {
    run_ensemble(engine, dataset, context, seed, n_prefix, run);
    return run;
  } else {
    std::vector<float> tokens;
    run_per_task(engine, dataset, context, seed, plan, n_prefix, 0, run, tokens);
  }
  count_work(engine, plan, run);
  return run;
}

std::vector<TransformerRun> run_transformer_retrieval(const model::Engine& engine,
                                                      const data::Dataset& dataset,
                                                      std::span<const std::int64_t> k_grid,
                                                      std::uint64_t seed, std::int64_t n_prefix,
                                                      std::int64_t tasks_per_block) {
  const int d = static_cast<int>(dataset.dim());
  const std::int64_t tasks = dataset.n_tasks(), m = dataset.n_queries();
  if (k_grid.empty()) return {};
  if (!std::is_sorted(k_grid.begin(), k_grid.end()) || k_grid.front() < 1 || k_grid.back() > n_prefix)
    throw std::invalid_argument("run_transformer_retrieval: k grid must be increasing, in [1, n']");
  const std::int64_t depth = k_grid.back();
  std::vector<ContextSpec> contexts;
  std::vector<PromptPlan> plans;
  std::vector<TransformerRun> runs(k_grid.size());
  for (std::size_t i = 0; i < k_grid.size(); ++i) {
    contexts.push_back(parse_context("retrieve:" + std::to_string(k_grid[i])));
    plans.push_back(prompt_plan(contexts.back(), n_prefix, tasks, m, d, engine.config()));
    runs[i].context = plans.back().context;
    runs[i].scores.assign(static_cast<std::size_t>(tasks * m), 0.0f);
  }
  // Tasks in blocks whose orders take about kChunkBytes: each block is ordered once, then run
  // under every k (one engine plan per k and block; plans are rebuilt when the shape changes).
  const std::int64_t block = tasks_per_block > 0 ? tasks_per_block : order_block_tasks(m, depth);
  std::vector<std::vector<std::int64_t>> orders;
  std::vector<float> tokens;  // every block's and k's chunks, one buffer
  for (std::int64_t first = 0; first < tasks; first += block) {
    const std::int64_t last = std::min(tasks, first + block);
    orders.clear();
    for (std::int64_t task = first; task < last; ++task)
      orders.push_back(nearest_by_cosine(dataset.x(task), n_prefix, dataset.x_query(task), m, d, depth));
    for (std::size_t i = 0; i < k_grid.size(); ++i) {
      run_per_query(engine, dataset, contexts[i], seed, plans[i], n_prefix, runs[i], first, last,
                    &orders, depth, tokens);
      // While the engine still holds this k's plan (it keeps one shape at a time).
      if (first == 0) count_work(engine, plans[i], runs[i]);
    }
  }
  return runs;
}

std::uint64_t retrieval_extra_bytes(std::int64_t tasks, std::int64_t queries,
                                    std::span<const std::int64_t> k_grid) {
  if (k_grid.empty()) return 0;
  const std::int64_t depth = k_grid.back();
  const std::int64_t block = std::min(tasks, order_block_tasks(queries, depth));
  const auto orders = static_cast<std::uint64_t>(block * queries * depth) * sizeof(std::int64_t);
  // Every k's scores [T, M] twice (the runs, then the results built from them) and its per-task
  // metrics (error, exact error, one disagreement: 8 bytes each per task).
  const auto per_k = static_cast<std::uint64_t>(tasks * queries) * 4 * 2 + static_cast<std::uint64_t>(tasks) * 8 * 3;
  return orders + k_grid.size() * per_k;
}

}  // namespace iclbench::eval
