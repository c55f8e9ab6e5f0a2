#pragma once
// Task families: a hidden unit vector w*, an input distribution D_x and a label rule, generated
// as a pure function of (TaskSpec, task index). Knows nothing of models or files.
//
// Shapes: N context examples, M queries, d input dimension.

#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

#include "util/errors.hpp"

namespace iclbench::data {

enum class Family {
  kGaussian,      // x ~ N(0, I)
  kSkewed,        // x ~ N(0, R diag(lambda) R^T), lambda geometric from 1 to 1/kappa, R Haar
  kSphere,        // x uniform on the sphere of radius sqrt(d)  (so E[x x^T] = I)
  kCube,          // x uniform in [-sqrt 3, sqrt 3]^d            (so E[x x^T] = I)
  kGmm,           // x = y mu + z, z ~ N(0, I), mu = scale * w*, y = +-1 equally likely
  kQuadrants,     // context in one random orthant, queries ~ N(0, I)   (Garg et al. 2022)
  kOrthogonal,    // context in a random floor(d/2)-dim subspace, queries in its complement
  kOverlap,       // each query is a copy of a random context input
  kHalfSubspace,  // context and queries in one random floor(d/2)-dim subspace
  kScaled,        // x ~ N(0, scale^2 I)
};

std::string_view family_name(Family family);
std::optional<Family> parse_family(std::string_view name);
std::string family_names();  // "gaussian, skewed, ..." for help and errors
std::string_view family_description(Family family);

// Everything that defines a task set. Field comments give each parameter's name: its key in a
// data set's `params` metadata, and the name errors give it.
struct TaskSpec {
  Family family = Family::kGaussian;
  std::int64_t dim = 16;          // d
  std::int64_t n_examples = 256;  // n        context examples per task (N)
  std::int64_t n_queries = 64;    // queries  per task (M)
  std::int64_t n_tasks = 100;     // tasks    (T)
  double noise = 0.0;   // noise   probability that a context label is flipped
  double margin = 0.0;  // margin  inputs with |w*.x + bias| < margin * |x| are redrawn
  double kappa = 1.0;   // kappa   condition number (skewed)
  double bias = 0.0;    // bias    label = sign(w*.x + bias)
  double scale = 1.0;   // scale   |mu| (gmm) or the input scale (scaled)
  std::uint64_t seed = 0;

  // Tensor sizes in floats, and the whole data set in bytes (checked against overflow by
  // validate(); call it first).
  std::uint64_t floats_per_task() const;
  std::uint64_t dataset_bytes() const;
};

// The defaults that depend on the family (so that `scale` means something sensible unasked).
double default_scale(Family family);
bool family_uses_scale(Family family);

// A parameter out of its domain, named as in TaskSpec's comments ("d must be in [1, 65536]").
class SpecError : public util::ParameterError {
 public:
  using util::ParameterError::ParameterError;
};
void validate(const TaskSpec& spec);

// Largest d for the families that draw a d x d random rotation per task (O(d^3) per task).
inline constexpr std::int64_t kMaxRotationDim = 4096;
inline constexpr std::int64_t kMaxDim = 1 << 16;
// Rejection sampling for a margin gives up after this many draws for one input.
inline constexpr std::uint32_t kMaxMarginAttempts = 100'000;

// One task's slices of the output tensors.
struct TaskView {
  std::span<float> x;              // [N, d]
  std::span<float> y;              // [N]     +-1, noisy when noise > 0
  std::span<float> w_star;         // [d]     unit norm
  std::span<float> x_query;        // [M, d]
  std::span<float> y_query;        // [M]     the noiseless truth
  std::span<float> y_query_noisy;  // [M]     flipped with probability noise; empty if noise == 0
};

// Fills `out` with task `task_index` of `spec`. Pure: the same arguments give the same bits,
// whichever thread calls it and whatever else it generated before.
void generate_task(const TaskSpec& spec, std::uint32_t task_index, const TaskView& out);

}  // namespace iclbench::data
