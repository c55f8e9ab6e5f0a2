#pragma once
// How a transformer reads a task set: its prompts at prefix size n', in the constructed token
// layout (model/constructions.hpp), cut into chunks for the engine; and the probe queries that
// test whether its query score is linear in x_q.
//
// Shapes: T tasks, N examples, M queries, d input dimension; k examples in a prompt's context;
// P = 2(d + 1) probe queries per prompt.

#include <cstdint>
#include <optional>
#include <vector>

#include "data_gen/dataset.hpp"
#include "eval/context.hpp"
#include "model/engine.hpp"

namespace iclbench::eval {

// How one grid point is cut into prompts: retrieve:k makes one prompt per query (its k nearest
// examples, then the query); full and random:k one per task (its context, the M queries, then
// the P probes, which cost nothing extra under the icl mask: queries never see each other).
// Prompts go to the engine in chunks of about 64 MB of tokens.
struct PromptPlan {
  std::int64_t context = 0;    // k: examples in each prompt
  std::int64_t tokens = 0;     // tokens of each prompt
  std::int64_t prompts = 0;    // over all tasks
  std::int64_t scores = 0;     // query scores per prompt (with the probes)
  std::int64_t per_chunk = 0;  // prompts per engine call
};
PromptPlan prompt_plan(const ContextSpec& context, std::int64_t n_prefix, std::int64_t tasks,
                       std::int64_t queries, int d, std::int64_t width);

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

}  // namespace iclbench::eval
