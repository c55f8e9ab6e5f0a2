#include "eval/context.hpp"

#include <Eigen/Dense>
#include <algorithm>
#include <charconv>
#include <cmath>
#include <numeric>
#include <optional>

#include "util/numbers.hpp"
#include "util/philox.hpp"

namespace iclbench::eval {

ContextSpec parse_context(std::string_view text) {
  if (text == "full") return {};
  const std::size_t colon = text.find(':');
  const std::string_view name = text.substr(0, colon);
  ContextSpec spec;
  spec.text = std::string(text);
  if (name == "random") {
    spec.policy = ContextPolicy::kRandom;
  } else if (name == "retrieve") {
    spec.policy = ContextPolicy::kRetrieve;
  } else if (name == "ensemble") {
    spec.policy = ContextPolicy::kEnsemble;
  } else {
    throw ContextError("context", "'" + std::string(text) +
                                      "' is unknown; use full, random:K, retrieve:K or ensemble:K");
  }
  const std::string_view value = colon == std::string_view::npos ? "" : text.substr(colon + 1);
  const std::optional<std::int64_t> k = util::parse_int64(value);
  if (!k || *k < 1) throw ContextError("context", std::string(text) + ": K must be a positive integer");
  spec.k = *k;
  return spec;
}

std::vector<std::int64_t> random_subset(std::uint64_t seed, std::uint32_t task, std::int64_t n,
                                        std::int64_t k) {
  // Partial Fisher-Yates over [0, n): the first k positions are a uniform k-subset.
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  util::DrawSequence draws(seed, task, 0, util::Stream::kContextSubset);
  const std::int64_t take = std::min(k, n);
  for (std::int64_t i = 0; i < take; ++i) {
    const auto j = i + static_cast<std::int64_t>(draws.below(static_cast<std::uint32_t>(n - i)));
    std::swap(order[static_cast<std::size_t>(i)], order[static_cast<std::size_t>(j)]);
  }
  order.resize(static_cast<std::size_t>(take));
  std::sort(order.begin(), order.end());
  return order;
}

std::vector<std::int64_t> nearest_by_cosine(std::span<const float> x, std::int64_t n,
                                            std::span<const float> queries, std::int64_t m,
                                            int d, std::int64_t k) {
  using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const Eigen::Map<const RowMatrix> examples(x.data(), n, d);
  const Eigen::Map<const RowMatrix> points(queries.data(), m, d);
  // Cosine similarity up to the query's own norm, which does not change its ranking.
  const Eigen::VectorXf inverse_norms = examples.rowwise().norm().cwiseMax(1e-30f).cwiseInverse();
  const RowMatrix similarity = points * examples.transpose();  // [m, n]
  const std::int64_t take = std::min(k, n);
  std::vector<std::int64_t> nearest(static_cast<std::size_t>(m * take));
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  for (std::int64_t q = 0; q < m; ++q) {
    std::iota(order.begin(), order.end(), 0);
    auto score = [&](std::int64_t i) { return similarity(q, i) * inverse_norms[i]; };
    std::partial_sort(order.begin(), order.begin() + take, order.end(),
                      [&](std::int64_t a, std::int64_t b) {
                        const float sa = score(a), sb = score(b);
                        return sa > sb || (sa == sb && a < b);
                      });
    std::copy_n(order.begin(), take, nearest.begin() + q * take);
  }
  return nearest;
}

}  // namespace iclbench::eval
