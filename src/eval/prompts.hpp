#pragma once
// How a transformer reads a task set: its prompts at prefix size n', in the constructed token
// layout (model/constructions.hpp), cut into chunks for the engine; and the probe queries that
// test whether its query score is linear in x_q.
//
// Shapes: T tasks, N examples, M queries, d input dimension; k examples in a prompt's context;
// P = 2(d + 1) probe queries per prompt.

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "data_gen/dataset.hpp"
#include "eval/context.hpp"
#include "model/engine.hpp"

namespace iclbench::eval {

// How one grid point is cut into prompts: retrieve:k makes one prompt per query (its k nearest
// examples, then the query); full and random:k one per task (its context, the M queries, then
// the P probes, which cost nothing extra under the icl mask: queries never see each other).
// A learned GPT-2-layout model (read_in, model/garg.hpp) gets one interleaved prompt per query,
// x_1, y_1, ..., x_k, y_k, x_q (2k + 1 tokens of d values), under every policy, and no probes.
// Prompts go to the engine in chunks of about 64 MB of tokens.
struct PromptPlan {
  std::int64_t context = 0;    // k: examples in each prompt
  std::int64_t tokens = 0;     // tokens of each prompt
  std::int64_t prompts = 0;    // over all tasks
  std::int64_t scores = 0;     // query scores per prompt (with the probes)
  std::int64_t per_chunk = 0;  // prompts per engine call
};
PromptPlan prompt_plan(const ContextSpec& context, std::int64_t n_prefix, std::int64_t tasks,
                       std::int64_t queries, int d, const model::ModelConfig& model);

// A transformer's run over every task at one prefix size.
struct TransformerRun {
  std::int64_t context = 0;   // k
  std::vector<float> scores;  // [T, M]
  // Per task, the least-squares linear fit w of the score over the probes ([T][d]), whether every
  // task's score was linear in x_q (relative residual <= 1e-3) and the largest residual. Empty
  // and unset under retrieval, whose prompts hold one query each.
  std::vector<std::vector<double>> probe_weights;
  std::optional<bool> linear;
  double probe_residual = 0;
  double prompts = 0, tokens = 0, flops = 0;  // for throughput
};
// The engine's config must be a constructed-layout learner for the data set's d.
TransformerRun run_transformer(const model::Engine& engine, const data::Dataset& dataset,
                               const ContextSpec& context, std::uint64_t seed,
                               std::int64_t n_prefix);

// retrieve:k for every k of `k_grid` (increasing, in [1, n']) at once: each query's examples are
// ordered by nearest_by_cosine once, to the depth of the largest k, and every k's context is the
// first k of that order. Its runs are, bit for bit, run_transformer(engine, dataset, retrieve:k,
// seed, n_prefix) for each k (the same contexts: the order is a strict total order, so its
// prefix is the partial sort's; the same scores: the engine's do not depend on batching), at
// the cost of one neighbour search per query instead of one per query and k. Tasks are ordered
// in blocks of `tasks_per_block` (0: as many as fit about 64 MB of indices), each block run
// under every k before the next. Throws std::invalid_argument for a bad grid.
std::vector<TransformerRun> run_transformer_retrieval(const model::Engine& engine,
                                                      const data::Dataset& dataset,
                                                      std::span<const std::int64_t> k_grid,
                                                      std::uint64_t seed, std::int64_t n_prefix,
                                                      std::int64_t tasks_per_block = 0);

// What run_transformer_retrieval() (and evaluate_retrieval()'s results) hold beyond one
// retrieve:k run of the largest k: one block's orders and every k's scores and metrics, in bytes.
std::uint64_t retrieval_extra_bytes(std::int64_t tasks, std::int64_t queries,
                                    std::span<const std::int64_t> k_grid);

}  // namespace iclbench::eval
