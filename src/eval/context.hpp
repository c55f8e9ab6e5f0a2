#pragma once
// Which examples of S a model sees in its context.
//   full        all N examples (k = N)
//   random:K    a fixed random subset of K examples per task (Philox of seed and task)
//   retrieve:K  per query, the K examples with the largest cosine similarity to it (found with
//               one matmul and a partial sort); every query then has a context of its own
//   ensemble:K  S cut into ceil(n/K) consecutive windows of K examples (the last one shorter
//               when K does not divide n), the transformer run on each window, its query
//               scores averaged with equal weights: a fixed context size that still uses every
//               example. A linear learner's ensemble is linear (the mean of the windows' w).
// The heads always train on all examples: they stand for a model fine-tuned on S, while the
// in-context learner sees what fits in its context.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "util/errors.hpp"

namespace iclbench::eval {

enum class ContextPolicy { kFull, kRandom, kRetrieve, kEnsemble };

struct ContextSpec {
  ContextPolicy policy = ContextPolicy::kFull;
  std::int64_t k = 0;
  std::string text = "full";
};

// A context text that names no policy, or a bad K (parameter "context").
class ContextError : public util::ParameterError {
 public:
  using util::ParameterError::ParameterError;
};
ContextSpec parse_context(std::string_view text);

// K distinct indices out of [0, n), increasing; a pure function of (seed, task).
std::vector<std::int64_t> random_subset(std::uint64_t seed, std::uint32_t task, std::int64_t n,
                                        std::int64_t k);

// For each query, the indices of the k examples with the largest cosine similarity, most similar
// first (ties by lower index). x: [n, d], queries: [m, d] -> [m, k].
std::vector<std::int64_t> nearest_by_cosine(std::span<const float> x, std::int64_t n,
                                            std::span<const float> queries, std::int64_t m,
                                            int d, std::int64_t k);

}  // namespace iclbench::eval
