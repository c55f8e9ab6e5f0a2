#include "data_gen/task_generator.hpp"

#include <array>
#include <cmath>
#include <limits>
#include <vector>

#include "util/errors.hpp"
#include "util/philox.hpp"
#include "util/text.hpp"

namespace iclbench::data {
namespace {

using util::DrawSequence;
using util::format_number;
using util::Stream;

struct FamilyEntry {
  Family family;
  std::string_view name;
  std::string_view description;
};
constexpr std::array<FamilyEntry, 10> kFamilies = {{
    {Family::kGaussian, "gaussian", "isotropic Gaussian inputs x ~ N(0, I)"},
    {Family::kSkewed, "skewed",
     "Gaussian with covariance eigenvalues geometric from 1 to 1/kappa, random rotation per task"},
    {Family::kSphere, "sphere", "uniform on the sphere of radius sqrt(d)"},
    {Family::kCube, "cube", "uniform in the cube [-sqrt(3), sqrt(3)]^d"},
    {Family::kGmm, "gmm",
     "two-component mixture x = y*mu + z, z ~ N(0, I), |mu| = scale, mu along w*"},
    {Family::kQuadrants, "quadrants",
     "context inputs in one random orthant per task, queries from N(0, I)"},
    {Family::kOrthogonal, "orthogonal",
     "context in a random floor(d/2)-dim subspace, queries in its orthogonal complement"},
    {Family::kOverlap, "overlap", "every query is a copy of a random context input"},
    {Family::kHalfSubspace, "half-subspace",
     "context and queries in one random floor(d/2)-dim subspace per task"},
    {Family::kScaled, "scaled", "Gaussian inputs multiplied by the scale parameter"},
}};

bool uses_rotation(Family family) {
  return family == Family::kSkewed || family == Family::kOrthogonal ||
         family == Family::kHalfSubspace;
}

// The generator does its own small linear algebra in plain loops rather than with Eigen: the
// summation order is then fixed by this source alone, not by the SIMD width a library picks for
// the CPU, so that the bytes are the same on every machine.
using Vector = std::vector<double>;

// A dense [rows, cols] matrix, row-major.
struct Matrix {
  int rows = 0, cols = 0;
  std::vector<double> values;
  double& operator()(int r, int c) { return values[static_cast<std::size_t>(r) * cols + c]; }
  double operator()(int r, int c) const { return values[static_cast<std::size_t>(r) * cols + c]; }
};

// out = columns [first, first + z.size()) of `matrix` times z.
void multiply_columns(const Matrix& matrix, int first, const Vector& z, Vector& out) {
  for (int r = 0; r < matrix.rows; ++r) {
    double sum = 0.0;
    for (std::size_t c = 0; c < z.size(); ++c) sum += matrix(r, first + static_cast<int>(c)) * z[c];
    out[r] = sum;
  }
}

double norm(const Vector& v) {
  double sum = 0.0;
  for (double value : v) sum += value * value;
  return std::sqrt(sum);
}

// Everything a task draws once: w* and the family's geometry.
struct TaskGeometry {
  Vector w_star;      // [d], unit norm, as stored (rounded to float)
  Matrix rotation;    // [d, d] Haar-distributed orthogonal matrix (rotation families)
  Vector axis_scale;  // [d] sqrt of the covariance eigenvalues (skewed)
  Vector orthant;     // [d] +-1 (quadrants)
  Vector mu;          // [d] mixture mean (gmm)
};

// Haar-distributed orthogonal matrix: Householder QR of a Gaussian matrix G = QR, with the signs
// of R's diagonal moved into Q (without that correction Q is not uniformly distributed).
Matrix haar_rotation(std::uint64_t seed, std::uint32_t task, int dim) {
  Matrix a{dim, dim, std::vector<double>(static_cast<std::size_t>(dim) * dim)};
  for (int col = 0; col < dim; ++col) {
    DrawSequence draws(seed, task, static_cast<std::uint32_t>(col), Stream::kTaskGeometry);
    for (int row = 0; row < dim; ++row) a(row, col) = draws.normal();
  }
  // Reflections H_k = I - 2 v_k v_k^T (v_k unit, zero above row k) reduce A to R.
  std::vector<Vector> reflections(dim);
  Vector r_diagonal(dim);
  for (int k = 0; k < dim; ++k) {
    Vector v(dim, 0.0);
    double length_squared = 0.0;
    for (int row = k; row < dim; ++row) {
      v[row] = a(row, k);
      length_squared += v[row] * v[row];
    }
    const double length = std::sqrt(length_squared);
    const double alpha = v[k] >= 0 ? -length : length;  // the sign that avoids cancellation
    r_diagonal[k] = alpha;
    v[k] -= alpha;
    const double v_norm = norm(v);
    if (v_norm > 0) {
      for (double& value : v) value /= v_norm;
      for (int col = k; col < dim; ++col) {
        double dot = 0.0;
        for (int row = k; row < dim; ++row) dot += v[row] * a(row, col);
        for (int row = k; row < dim; ++row) a(row, col) -= 2.0 * v[row] * dot;
      }
    }
    reflections[k] = std::move(v);
  }
  // Q = H_0 H_1 ... H_{d-1}, applied to the identity from the right-most reflection.
  Matrix q{dim, dim, std::vector<double>(static_cast<std::size_t>(dim) * dim, 0.0)};
  for (int i = 0; i < dim; ++i) q(i, i) = 1.0;
  for (int k = dim - 1; k >= 0; --k) {
    const Vector& v = reflections[k];
    for (int col = 0; col < dim; ++col) {
      double dot = 0.0;
      for (int row = k; row < dim; ++row) dot += v[row] * q(row, col);
      for (int row = k; row < dim; ++row) q(row, col) -= 2.0 * v[row] * dot;
    }
  }
  for (int col = 0; col < dim; ++col) {
    if (r_diagonal[col] < 0) {
      for (int row = 0; row < dim; ++row) q(row, col) = -q(row, col);
    }
  }
  return q;
}

TaskGeometry make_geometry(const TaskSpec& spec, std::uint32_t task) {
  const int dim = static_cast<int>(spec.dim);
  TaskGeometry geometry;
  {
    DrawSequence draws(spec.seed, task, 0, Stream::kWStar);
    Vector w(dim);
    for (int j = 0; j < dim; ++j) w[j] = draws.normal();
    const double length = norm(w);
    // The stored w* is what labels are computed from, so round it first.
    geometry.w_star.resize(dim);
    for (int j = 0; j < dim; ++j) geometry.w_star[j] = static_cast<float>(w[j] / length);
  }
  switch (spec.family) {
    case Family::kSkewed: {
      geometry.rotation = haar_rotation(spec.seed, task, dim);
      geometry.axis_scale.resize(dim);
      for (int j = 0; j < dim; ++j) {
        const double exponent = dim == 1 ? 0.0 : static_cast<double>(j) / (dim - 1);
        geometry.axis_scale[j] = std::sqrt(std::pow(spec.kappa, -exponent));
      }
      break;
    }
    case Family::kOrthogonal:
    case Family::kHalfSubspace:
      geometry.rotation = haar_rotation(spec.seed, task, dim);
      break;
    case Family::kQuadrants: {
      // Column index `dim` of the geometry stream is free (rotations use columns 0..dim-1).
      DrawSequence draws(spec.seed, task, static_cast<std::uint32_t>(dim), Stream::kTaskGeometry);
      geometry.orthant.resize(dim);
      for (int j = 0; j < dim; ++j) geometry.orthant[j] = (draws.bits() & 1u) ? 1.0 : -1.0;
      break;
    }
    case Family::kGmm:
      geometry.mu = geometry.w_star;
      for (double& value : geometry.mu) value *= spec.scale;
      break;
    default:
      break;
  }
  return geometry;
}

enum class Role { kContext, kQuery };

// One input x (before rounding to float) for the given role, example and rejection attempt.
// For gmm, `component` receives the example's mixture label.
void draw_input(const TaskSpec& spec, const TaskGeometry& geometry, Role role, std::uint32_t task,
                std::uint32_t example, std::uint32_t attempt, Vector& x,
                double& component) {
  const int dim = static_cast<int>(spec.dim);
  const Stream stream = role == Role::kContext ? Stream::kContextInput : Stream::kQueryInput;
  DrawSequence draws(spec.seed, task, example, stream, attempt);
  const int half = dim / 2;
  switch (spec.family) {
    case Family::kGaussian:
    case Family::kOverlap:  // queries of `overlap` never get here
      for (int j = 0; j < dim; ++j) x[j] = draws.normal();
      break;
    case Family::kScaled:
      for (int j = 0; j < dim; ++j) x[j] = spec.scale * draws.normal();
      break;
    case Family::kSkewed: {
      Vector z(dim);
      for (int j = 0; j < dim; ++j) z[j] = draws.normal() * geometry.axis_scale[j];
      multiply_columns(geometry.rotation, 0, z, x);
      break;
    }
    case Family::kSphere: {
      for (int j = 0; j < dim; ++j) x[j] = draws.normal();
      const double radius = std::sqrt(static_cast<double>(dim)) / norm(x);
      for (double& value : x) value *= radius;
      break;
    }
    case Family::kCube:
      for (int j = 0; j < dim; ++j) x[j] = std::sqrt(3.0) * (2.0 * draws.uniform() - 1.0);
      break;
    case Family::kGmm: {
      DrawSequence label_draw(spec.seed, task, example,
                              role == Role::kContext ? Stream::kMixtureLabel : Stream::kQueryMixtureLabel);
      component = (label_draw.bits() & 1u) ? 1.0 : -1.0;
      for (int j = 0; j < dim; ++j) x[j] = component * geometry.mu[j] + draws.normal();
      break;
    }
    case Family::kQuadrants:
      for (int j = 0; j < dim; ++j) {
        const double z = draws.normal();
        x[j] = role == Role::kContext ? geometry.orthant[j] * std::abs(z) : z;
      }
      break;
    case Family::kOrthogonal: {
      // Context in span(rotation[:, :half]); queries in span(rotation[:, half:]).
      const int first = role == Role::kContext ? 0 : half;
      const int count = role == Role::kContext ? half : dim - half;
      Vector z(count);
      for (int j = 0; j < count; ++j) z[j] = draws.normal();
      multiply_columns(geometry.rotation, first, z, x);
      break;
    }
    case Family::kHalfSubspace: {
      Vector z(half);
      for (int j = 0; j < half; ++j) z[j] = draws.normal();
      multiply_columns(geometry.rotation, 0, z, x);
      break;
    }
  }
}

// Draws an input, redrawing while it violates the margin; writes it, rounded, to `out` and
// returns its noiseless label.
float sample_example(const TaskSpec& spec, const TaskGeometry& geometry, Role role,
                     std::uint32_t task, std::uint32_t example, std::span<float> out,
                     Vector& scratch) {
  const int dim = static_cast<int>(spec.dim);
  for (std::uint32_t attempt = 0; attempt < kMaxMarginAttempts; ++attempt) {
    double component = 0.0;
    draw_input(spec, geometry, role, task, example, attempt, scratch, component);
    // Labels and the margin are decided on the stored (float) values, so that anyone reading
    // the file recomputes exactly the same labels.
    double score = spec.bias;
    double norm_squared = 0.0;
    for (int j = 0; j < dim; ++j) {
      out[j] = static_cast<float>(scratch[j]);
      score += geometry.w_star[j] * static_cast<double>(out[j]);
      norm_squared += static_cast<double>(out[j]) * static_cast<double>(out[j]);
    }
    if (spec.family == Family::kGmm) return static_cast<float>(component);
    if (spec.margin > 0.0 && std::abs(score) < spec.margin * std::sqrt(norm_squared)) continue;
    return score >= 0.0 ? 1.0f : -1.0f;
  }
  throw SpecError("margin", format_number(spec.margin) + " rejected " +
                                std::to_string(kMaxMarginAttempts) + " draws in a row for task " +
                                std::to_string(task) + " of family " +
                                std::string(family_name(spec.family)) + "; lower it");
}

bool flipped(std::uint64_t seed, std::uint32_t task, std::uint32_t example, Stream stream,
             double noise) {
  if (noise <= 0.0) return false;
  DrawSequence draws(seed, task, example, stream);
  return draws.uniform() < noise;
}

}  // namespace

std::string_view family_name(Family family) {
  for (const auto& entry : kFamilies)
    if (entry.family == family) return entry.name;
  return "?";
}

std::optional<Family> parse_family(std::string_view name) {
  for (const auto& entry : kFamilies)
    if (entry.name == name) return entry.family;
  return std::nullopt;
}

std::string family_names() {
  std::string names;
  for (const auto& entry : kFamilies) {
    if (!names.empty()) names += ", ";
    names += entry.name;
  }
  return names;
}

std::string_view family_description(Family family) {
  for (const auto& entry : kFamilies)
    if (entry.family == family) return entry.description;
  return "";
}

double default_scale(Family family) {
  // gmm: |mu| = 2 gives a Bayes error of Phi(-2) = 2.3%; scaled: the x2 shift of Garg et al.
  return family_uses_scale(family) ? 2.0 : 1.0;
}

bool family_uses_scale(Family family) {
  return family == Family::kGmm || family == Family::kScaled;
}

std::uint64_t TaskSpec::floats_per_task() const {
  const auto d = static_cast<std::uint64_t>(dim);
  const auto n = static_cast<std::uint64_t>(n_examples);
  const auto m = static_cast<std::uint64_t>(n_queries);
  return n * d + n + d + m * d + m + (noise > 0.0 ? m : 0);
}

std::uint64_t TaskSpec::dataset_bytes() const {
  return floats_per_task() * static_cast<std::uint64_t>(n_tasks) * sizeof(float);
}

void validate(const TaskSpec& spec) {
  using util::require;
  const std::string family = std::string(family_name(spec.family));
  require<SpecError>(spec.dim >= 1 && spec.dim <= kMaxDim, "d",
                     "must be in [1, " + std::to_string(kMaxDim) + "], got " + std::to_string(spec.dim));
  if (spec.family == Family::kOrthogonal || spec.family == Family::kHalfSubspace) {
    require<SpecError>(spec.dim >= 2, "d", "must be at least 2 for family " + family);
  }
  if (uses_rotation(spec.family)) {
    require<SpecError>(spec.dim <= kMaxRotationDim, "d",
                       "must be at most " + std::to_string(kMaxRotationDim) + " for family " + family +
                           " (it draws a d x d rotation per task), got " + std::to_string(spec.dim));
  }
  constexpr std::int64_t kMaxIndex = std::numeric_limits<std::int32_t>::max();
  const std::string index_range = "must be in [1, " + std::to_string(kMaxIndex) + "], got ";
  require<SpecError>(spec.n_examples >= 1 && spec.n_examples <= kMaxIndex, "n",
                     index_range + std::to_string(spec.n_examples));
  require<SpecError>(spec.n_queries >= 1 && spec.n_queries <= kMaxIndex, "queries",
                     index_range + std::to_string(spec.n_queries));
  require<SpecError>(spec.n_tasks >= 1 && spec.n_tasks <= kMaxIndex, "tasks",
                     index_range + std::to_string(spec.n_tasks));
  require<SpecError>(std::isfinite(spec.noise) && spec.noise >= 0.0 && spec.noise < 0.5, "noise",
                     "must be in [0, 0.5), got " + format_number(spec.noise));
  require<SpecError>(std::isfinite(spec.margin) && spec.margin >= 0.0 && spec.margin < 1.0, "margin",
                     "must be in [0, 1), got " + format_number(spec.margin));
  require<SpecError>(std::isfinite(spec.kappa) && spec.kappa >= 1.0, "kappa",
                     "must be a finite number >= 1, got " + format_number(spec.kappa));
  require<SpecError>(std::isfinite(spec.bias), "bias", "must be finite, got " + format_number(spec.bias));
  // Inputs are stored as f32 and must be finite and not flushed to zero: |x| <= scale * 9.5
  // (the polar method's normals from 32-bit uniforms have r^2 >= 2^-63, so |z| < sqrt(2 ln 2^63) = 9.4) plus
  // |mu| = scale for gmm, far inside [1.2e-38, 3.4e38] for any scale in [1e-30, 1e30].
  require<SpecError>(std::isfinite(spec.scale) && spec.scale >= 1e-30 && spec.scale <= 1e30, "scale",
                     "must be in [1e-30, 1e30], got " + format_number(spec.scale));
  if (spec.family != Family::kSkewed) {
    require<SpecError>(spec.kappa == 1.0, "kappa", "applies only to family skewed");
  }
  if (!family_uses_scale(spec.family)) {
    require<SpecError>(spec.scale == 1.0, "scale", "applies only to families gmm and scaled");
  }
  if (spec.family == Family::kGmm) {
    const std::string why = "does not apply to family gmm (its labels are mixture components)";
    require<SpecError>(spec.margin == 0.0, "margin", why);
    require<SpecError>(spec.bias == 0.0, "bias", why);
  }
  // Sizes: T * floats_per_task * 4 must fit in 64 bits (a task alone always does: n < 2^31 and
  // d <= 2^16).
  const auto d = static_cast<std::uint64_t>(spec.dim);
  std::uint64_t per_task = 0;
  std::uint64_t total = 0;
  const bool overflow =
      __builtin_mul_overflow(static_cast<std::uint64_t>(spec.n_examples) + 1, d + 1, &per_task) ||
      __builtin_mul_overflow(per_task + static_cast<std::uint64_t>(spec.n_queries) * (d + 2),
                             static_cast<std::uint64_t>(spec.n_tasks) * sizeof(float), &total);
  require<SpecError>(!overflow, "tasks",
                     "is too large for this task size: the data set would exceed 2^64 bytes");
}

void generate_task(const TaskSpec& spec, std::uint32_t task, const TaskView& out) {
  const auto dim = static_cast<std::size_t>(spec.dim);
  const auto n_examples = static_cast<std::uint32_t>(spec.n_examples);
  const auto n_queries = static_cast<std::uint32_t>(spec.n_queries);
  const TaskGeometry geometry = make_geometry(spec, task);
  for (std::size_t j = 0; j < dim; ++j) out.w_star[j] = static_cast<float>(geometry.w_star[j]);

  Vector scratch(dim);
  std::vector<float> truth(n_examples);  // noiseless context labels, for `overlap` queries
  for (std::uint32_t i = 0; i < n_examples; ++i) {
    truth[i] = sample_example(spec, geometry, Role::kContext, task, i,
                              out.x.subspan(i * dim, dim), scratch);
    const bool flip = flipped(spec.seed, task, i, Stream::kContextLabelNoise, spec.noise);
    out.y[i] = flip ? -truth[i] : truth[i];
  }
  for (std::uint32_t q = 0; q < n_queries; ++q) {
    std::span<float> x_query = out.x_query.subspan(q * dim, dim);
    if (spec.family == Family::kOverlap) {
      DrawSequence pick(spec.seed, task, q, Stream::kQueryCopy);
      const std::uint32_t source = pick.below(n_examples);
      std::copy_n(out.x.begin() + source * dim, dim, x_query.begin());
      out.y_query[q] = truth[source];
    } else {
      out.y_query[q] = sample_example(spec, geometry, Role::kQuery, task, q, x_query, scratch);
    }
    if (!out.y_query_noisy.empty()) {
      const bool flip = flipped(spec.seed, task, q, Stream::kQueryLabelNoise, spec.noise);
      out.y_query_noisy[q] = flip ? -out.y_query[q] : out.y_query[q];
    }
  }
}

}  // namespace iclbench::data
