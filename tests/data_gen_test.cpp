// Task families against their definitions, and determinism of the generator.
//
// Statistical checks compare a sample mean with its expectation using a bound of kZ standard
// errors, computed from the exact variance of the quantity under the family's definition.
// With kZ = 6 a correct generator fails one check with probability ~2e-9 (the seeds are fixed,
// so in practice never), while the bugs they target (wrong scale, wrong covariance, a missed
// flip) move the mean by tens or hundreds of standard errors.

#include <gtest/gtest.h>
#include <unistd.h>
#include <tbb/global_control.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <vector>

#include "data_gen/dataset.hpp"
#include "data_gen/task_generator.hpp"
#include "io/atomic_file.hpp"
#include "util/philox.hpp"

namespace iclbench::data {
namespace {

namespace fs = std::filesystem;
using util::DrawSequence;
using util::Stream;
constexpr double kZ = 6.0;

// All tasks of a spec, generated in memory.
struct Generated {
  TaskSpec spec;
  std::vector<float> x, y, w_star, x_query, y_query, y_query_noisy;

  explicit Generated(const TaskSpec& s) : spec(s) {
    validate(spec);
    const auto t = static_cast<std::size_t>(spec.n_tasks), n = static_cast<std::size_t>(spec.n_examples),
               m = static_cast<std::size_t>(spec.n_queries), d = static_cast<std::size_t>(spec.dim);
    x.resize(t * n * d);
    y.resize(t * n);
    w_star.resize(t * d);
    x_query.resize(t * m * d);
    y_query.resize(t * m);
    y_query_noisy.resize(spec.noise > 0 ? t * m : 0);
    for (std::size_t task = 0; task < t; ++task) {
      generate_task(spec, static_cast<std::uint32_t>(task),
                    {std::span(x).subspan(task * n * d, n * d), std::span(y).subspan(task * n, n),
                     std::span(w_star).subspan(task * d, d),
                     std::span(x_query).subspan(task * m * d, m * d),
                     std::span(y_query).subspan(task * m, m),
                     spec.noise > 0 ? std::span(y_query_noisy).subspan(task * m, m)
                                    : std::span<float>()});
    }
  }
  int d() const { return static_cast<int>(spec.dim); }
  int n() const { return static_cast<int>(spec.n_examples); }
  int m() const { return static_cast<int>(spec.n_queries); }
  int tasks() const { return static_cast<int>(spec.n_tasks); }
  // Context inputs of one task as a [N, d] matrix (double).
  Eigen::MatrixXd context(int task) const {
    return Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
               x.data() + static_cast<std::size_t>(task) * n() * d(), n(), d())
        .cast<double>();
  }
  Eigen::MatrixXd queries(int task) const {
    return Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
               x_query.data() + static_cast<std::size_t>(task) * m() * d(), m(), d())
        .cast<double>();
  }
  Eigen::VectorXd w(int task) const {
    return Eigen::Map<const Eigen::VectorXf>(w_star.data() + task * d(), d()).cast<double>();
  }
  float label(int task, int i) const { return y[static_cast<std::size_t>(task) * n() + i]; }
  float query_label(int task, int q) const { return y_query[static_cast<std::size_t>(task) * m() + q]; }
};

// The label rule, recomputed independently from the stored floats.
float truth(const Eigen::VectorXd& w, const Eigen::VectorXd& x, double bias = 0.0) {
  return w.dot(x) + bias >= 0.0 ? 1.0f : -1.0f;
}

// sample mean of n values with per-value standard deviation sd is within kZ*sd/sqrt(n).
void expect_mean(double mean, double expected, double sd, double count, const std::string& what) {
  const double bound = kZ * sd / std::sqrt(count);
  EXPECT_NEAR(mean, expected, bound) << what << " (bound " << kZ << " standard errors)";
}

// Pooled first and second moments of the rows of all tasks' context (or query) inputs, with
// the exact-expectation checks E[x] = 0 and E[x x^T] = sigma2 * I for families that claim them.
void expect_isotropic(const Generated& g, bool queries, double sigma2, double fourth_moment,
                      const std::string& what) {
  const int d = g.d();
  Eigen::VectorXd sum = Eigen::VectorXd::Zero(d);
  Eigen::MatrixXd second = Eigen::MatrixXd::Zero(d, d);
  double count = 0;
  for (int task = 0; task < g.tasks(); ++task) {
    const Eigen::MatrixXd rows = queries ? g.queries(task) : g.context(task);
    sum += rows.colwise().sum().transpose();
    second += rows.transpose() * rows;
    count += static_cast<double>(rows.rows());
  }
  for (int j = 0; j < d; ++j) {
    expect_mean(sum[j] / count, 0.0, std::sqrt(sigma2), count, what + " mean of coordinate " + std::to_string(j));
    for (int k = 0; k < d; ++k) {
      // Var(x_j x_k) = E x^4 - sigma^4 on the diagonal, sigma^4 off it (independent coordinates
      // or, for the sphere, a smaller value: the bound is conservative).
      const double sd = j == k ? std::sqrt(fourth_moment - sigma2 * sigma2) : sigma2;
      expect_mean(second(j, k) / count, j == k ? sigma2 : 0.0, sd, count,
                  what + " second moment (" + std::to_string(j) + "," + std::to_string(k) + ")");
    }
  }
}

// Every label equals sign(w*.x + bias): context (noise-free specs) and queries.
void expect_labels_follow_rule(const Generated& g, double bias = 0.0) {
  int mismatches = 0;
  for (int task = 0; task < g.tasks(); ++task) {
    const Eigen::VectorXd w = g.w(task);
    EXPECT_NEAR(w.norm(), 1.0, 1e-6);
    const Eigen::MatrixXd context = g.context(task), queries = g.queries(task);
    for (int i = 0; i < g.n(); ++i)
      mismatches += g.label(task, i) != truth(w, context.row(i).transpose(), bias);
    for (int q = 0; q < g.m(); ++q)
      mismatches += g.query_label(task, q) != truth(w, queries.row(q).transpose(), bias);
  }
  EXPECT_EQ(mismatches, 0);
}

double fraction_positive(const std::vector<float>& labels) {
  return static_cast<double>(std::count(labels.begin(), labels.end(), 1.0f)) /
         static_cast<double>(labels.size());
}

double normal_cdf(double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); }

TaskSpec spec_of(Family family, int d, int n, int m, int tasks, std::uint64_t seed = 7) {
  TaskSpec spec;
  spec.family = family;
  spec.dim = d;
  spec.n_examples = n;
  spec.n_queries = m;
  spec.n_tasks = tasks;
  spec.seed = seed;
  spec.scale = default_scale(family);
  return spec;
}

TEST(Philox, DrawsArePureFunctionsOfTheirAddress) {
  DrawSequence a(42, 3, 5, Stream::kContextInput), b(42, 3, 5, Stream::kContextInput);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.bits(), b.bits());
  DrawSequence other_stream(42, 3, 5, Stream::kQueryInput), other_seed(43, 3, 5, Stream::kContextInput),
      other_attempt(42, 3, 5, Stream::kContextInput, 1);
  DrawSequence reference(42, 3, 5, Stream::kContextInput);
  const auto first = reference.bits();
  EXPECT_NE(first, other_stream.bits());
  EXPECT_NE(first, other_seed.bits());
  EXPECT_NE(first, other_attempt.bits());
}

TEST(Philox, UniformAndNormalMoments) {
  const int count = 400000;
  double u_sum = 0, u_sq = 0, z_sum = 0, z_sq = 0, z_four = 0;
  DrawSequence draws(1, 0, 0, Stream::kWStar);
  for (int i = 0; i < count; ++i) {
    const double u = draws.uniform();
    ASSERT_GT(u, 0.0);
    ASSERT_LT(u, 1.0);
    u_sum += u;
    u_sq += u * u;
    const double z = draws.normal();
    z_sum += z;
    z_sq += z * z;
    z_four += z * z * z * z;
  }
  expect_mean(u_sum / count, 0.5, std::sqrt(1.0 / 12), count, "uniform mean");
  expect_mean(u_sq / count, 1.0 / 3, std::sqrt(1.0 / 5 - 1.0 / 9), count, "uniform E[u^2]");
  expect_mean(z_sum / count, 0.0, 1.0, count, "normal mean");
  expect_mean(z_sq / count, 1.0, std::sqrt(2.0), count, "normal variance");
  expect_mean(z_four / count, 3.0, std::sqrt(105.0 - 9.0), count, "normal fourth moment");
  // below(): every value of a small range, equally often.
  std::vector<int> hits(7);
  for (int i = 0; i < 70000; ++i) ++hits[draws.below(7)];
  for (int h : hits) expect_mean(h / 70000.0, 1.0 / 7, std::sqrt(1.0 / 7 * 6 / 7), 70000, "below(7)");
}

TEST(Families, GaussianIsIsotropicWithBalancedLabels) {
  const Generated g(spec_of(Family::kGaussian, 8, 2000, 500, 20));
  expect_isotropic(g, false, 1.0, 3.0, "gaussian context");
  expect_isotropic(g, true, 1.0, 3.0, "gaussian queries");
  expect_labels_follow_rule(g);
  expect_mean(fraction_positive(g.y), 0.5, 0.5, g.y.size(), "label balance");
}

TEST(Families, WStarIsUniformOnTheSphere) {
  const Generated g(spec_of(Family::kGaussian, 5, 1, 1, 4000));
  Eigen::VectorXd mean = Eigen::VectorXd::Zero(5);
  Eigen::MatrixXd second = Eigen::MatrixXd::Zero(5, 5);
  for (int task = 0; task < g.tasks(); ++task) {
    mean += g.w(task);
    second += g.w(task) * g.w(task).transpose();
  }
  // For w uniform on S^{d-1}: E w = 0, E w w^T = I/d, Var(w_j) = 1/d, Var(w_j^2) < 3/d^2.
  for (int j = 0; j < 5; ++j) {
    expect_mean(mean[j] / g.tasks(), 0.0, std::sqrt(1.0 / 5), g.tasks(), "w* mean");
    expect_mean(second(j, j) / g.tasks(), 0.2, std::sqrt(3.0) / 5, g.tasks(), "w* second moment");
  }
}

TEST(Families, SkewedHasTheRequestedSpectrumAndARandomRotation) {
  TaskSpec spec = spec_of(Family::kSkewed, 4, 1 << 17, 64, 2);
  spec.kappa = 10.0;
  const Generated g(spec);
  std::vector<Eigen::MatrixXd> covariances;
  for (int task = 0; task < 2; ++task) {
    const Eigen::MatrixXd x = g.context(task);
    const Eigen::MatrixXd covariance = x.transpose() * x / x.rows();
    covariances.push_back(covariance);
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> solver(covariance);
    const Eigen::VectorXd found = solver.eigenvalues().reverse();  // descending
    for (int j = 0; j < 4; ++j) {
      const double expected = std::pow(10.0, -j / 3.0);
      // Sample eigenvalues of well-separated population eigenvalues are asymptotically normal
      // with standard deviation lambda * sqrt(2/N).
      EXPECT_NEAR(found[j], expected, kZ * expected * std::sqrt(2.0 / x.rows())) << "eigenvalue " << j;
    }
    EXPECT_NEAR(found[0] / found[3], 10.0, 10.0 * kZ * 2 * std::sqrt(2.0 / x.rows()));
    // A rotation, not the axes: the largest off-diagonal entry is far from zero.
    const Eigen::MatrixXd off = covariance - Eigen::MatrixXd(covariance.diagonal().asDiagonal());
    EXPECT_GT(off.cwiseAbs().maxCoeff(), 0.02);
  }
  // Each task has its own rotation.
  EXPECT_GT((covariances[0] - covariances[1]).cwiseAbs().maxCoeff(), 0.05);
  expect_labels_follow_rule(g);
}

TEST(Families, SphereIsOnTheRadiusSqrtDSphereWithIdentitySecondMoment) {
  const Generated g(spec_of(Family::kSphere, 6, 3000, 100, 10));
  for (int task = 0; task < g.tasks(); ++task) {
    const Eigen::MatrixXd x = g.context(task);
    for (int i = 0; i < x.rows(); ++i) ASSERT_NEAR(x.row(i).squaredNorm(), 6.0, 6.0 * 1e-5);
  }
  // On the sphere of radius sqrt(d): E x_j^4 = 3d/(d+2).
  expect_isotropic(g, false, 1.0, 3.0 * 6 / 8, "sphere");
  expect_labels_follow_rule(g);
}

TEST(Families, CubeIsUniformInTheCube) {
  const Generated g(spec_of(Family::kCube, 5, 4000, 100, 10));
  const double half_width = std::sqrt(3.0);
  double abs_sum = 0;
  for (float value : g.x) {
    ASSERT_LE(std::abs(value), half_width + 1e-6);
    abs_sum += std::abs(value);
  }
  // Uniform on [-a, a], a = sqrt 3: E x^2 = 1, E x^4 = 9/5, E|x| = a/2, Var|x| = a^2/12.
  expect_isotropic(g, false, 1.0, 9.0 / 5, "cube");
  expect_mean(abs_sum / g.x.size(), half_width / 2, half_width / std::sqrt(12.0), g.x.size(), "cube E|x|");
  expect_labels_follow_rule(g);
}

TEST(Families, GmmSeparatesTheComponentsByScale) {
  const Generated g(spec_of(Family::kGmm, 6, 20000, 2000, 4));  // scale 2
  for (int task = 0; task < g.tasks(); ++task) {
    const Eigen::MatrixXd x = g.context(task);
    const Eigen::VectorXd w = g.w(task);
    Eigen::VectorXd signed_mean = Eigen::VectorXd::Zero(g.d());
    int disagree = 0;
    for (int i = 0; i < g.n(); ++i) {
      signed_mean += g.label(task, i) * x.row(i).transpose();
      disagree += g.label(task, i) != truth(w, x.row(i).transpose());
    }
    signed_mean /= g.n();
    // E[y x] = mu = scale * w*, per coordinate sd 1.
    for (int j = 0; j < g.d(); ++j) expect_mean(signed_mean[j], 2.0 * w[j], 1.0, g.n(), "E[y x]");
    // Bayes error of the mixture: P(y != sign(w*.x)) = Phi(-scale).
    const double p = normal_cdf(-2.0);
    expect_mean(static_cast<double>(disagree) / g.n(), p, std::sqrt(p * (1 - p)), g.n(), "gmm overlap");
  }
  expect_mean(fraction_positive(g.y), 0.5, 0.5, g.y.size(), "gmm label balance");
  expect_mean(fraction_positive(g.y_query), 0.5, 0.5, g.y_query.size(), "gmm query balance");
}

TEST(Families, QuadrantsKeepsTheContextInOneOrthant) {
  const Generated g(spec_of(Family::kQuadrants, 6, 500, 500, 20));
  std::set<std::vector<int>> orthants;
  for (int task = 0; task < g.tasks(); ++task) {
    const Eigen::MatrixXd x = g.context(task), q = g.queries(task);
    std::vector<int> orthant(g.d());
    for (int j = 0; j < g.d(); ++j) {
      orthant[j] = x(0, j) > 0 ? 1 : -1;
      for (int i = 0; i < g.n(); ++i) ASSERT_EQ(x(i, j) > 0 ? 1 : -1, orthant[j]);
      // Queries are not restricted: both signs in every coordinate.
      EXPECT_GT((q.col(j).array() > 0).count(), 150);
      EXPECT_GT((q.col(j).array() < 0).count(), 150);
    }
    orthants.insert(orthant);
  }
  EXPECT_GT(orthants.size(), 10u);  // 20 tasks over 64 orthants
  // |x_j| is half-normal: E x^2 = 1.
  double second = 0;
  for (float value : g.x) second += static_cast<double>(value) * value;
  expect_mean(second / g.x.size(), 1.0, std::sqrt(2.0), g.x.size(), "quadrants E x^2");
  expect_labels_follow_rule(g);
}

TEST(Families, OrthogonalQueriesAreOrthogonalToTheContext) {
  const Generated g(spec_of(Family::kOrthogonal, 7, 200, 50, 5));
  for (int task = 0; task < g.tasks(); ++task) {
    const Eigen::MatrixXd x = g.context(task), q = g.queries(task);
    // Inner products of float vectors built from an orthonormal basis: rounding only,
    // |x.q| <= c * eps_f32 * |x| |q| with c ~ d.
    const Eigen::MatrixXd inner = x * q.transpose();
    for (int i = 0; i < x.rows(); ++i)
      for (int k = 0; k < q.rows(); ++k)
        ASSERT_LE(std::abs(inner(i, k)), 8 * 7 * 6e-8 * x.row(i).norm() * q.row(k).norm());
    Eigen::JacobiSVD<Eigen::MatrixXd> context_svd(x), query_svd(q);
    const auto& s = context_svd.singularValues();
    EXPECT_GT(s[2], 0.1 * s[0]);       // floor(7/2) = 3 dimensions ...
    EXPECT_LT(s[3], 1e-5 * s[0]);      // ... and no more
    EXPECT_GT(query_svd.singularValues()[3], 0.1 * query_svd.singularValues()[0]);  // 4 = 7 - 3
  }
  expect_labels_follow_rule(g);
}

TEST(Families, OverlapQueriesCopyContextInputs) {
  const Generated g(spec_of(Family::kOverlap, 5, 100, 300, 5));
  for (int task = 0; task < g.tasks(); ++task) {
    const Eigen::MatrixXd x = g.context(task), q = g.queries(task);
    std::set<int> sources;
    for (int k = 0; k < g.m(); ++k) {
      int source = -1;
      for (int i = 0; i < g.n() && source < 0; ++i)
        if (x.row(i) == q.row(k)) source = i;
      ASSERT_GE(source, 0) << "query " << k << " copies no context input";
      EXPECT_EQ(g.query_label(task, k), g.label(task, source));
      sources.insert(source);
    }
    // 300 uniform picks out of 100 hit about 100(1 - e^-3) = 95 distinct inputs.
    EXPECT_GT(sources.size(), 80u);
  }
  expect_labels_follow_rule(g);
}

TEST(Families, HalfSubspaceLivesInAHalfDimensionalSubspace) {
  const Generated g(spec_of(Family::kHalfSubspace, 7, 100, 100, 4));
  for (int task = 0; task < g.tasks(); ++task) {
    Eigen::MatrixXd all(g.n() + g.m(), g.d());
    all << g.context(task), g.queries(task);
    Eigen::JacobiSVD<Eigen::MatrixXd> svd(all);
    const auto& s = svd.singularValues();
    EXPECT_GT(s[2], 0.1 * s[0]);
    EXPECT_LT(s[3], 1e-5 * s[0]);
  }
  expect_labels_follow_rule(g);
}

TEST(Families, ScaledMultipliesTheInputs) {
  TaskSpec spec = spec_of(Family::kScaled, 4, 5000, 500, 4);
  spec.scale = 3.0;
  const Generated g(spec);
  expect_isotropic(g, false, 9.0, 3.0 * 81, "scaled context");
  expect_isotropic(g, true, 9.0, 3.0 * 81, "scaled queries");
  expect_labels_follow_rule(g);
}

TEST(Modifiers, NoiseFlipsContextLabelsAtTheRequestedRate) {
  // 160,000 draws: 6 standard errors = 0.006, so even a 5% relative error in the rate fails.
  TaskSpec spec = spec_of(Family::kGaussian, 6, 20000, 20000, 8);
  spec.noise = 0.2;
  const Generated g(spec);
  int flipped = 0, query_flipped = 0;
  for (int task = 0; task < g.tasks(); ++task) {
    const Eigen::VectorXd w = g.w(task);
    const Eigen::MatrixXd x = g.context(task), q = g.queries(task);
    for (int i = 0; i < g.n(); ++i) flipped += g.label(task, i) != truth(w, x.row(i).transpose());
    for (int k = 0; k < g.m(); ++k) {
      ASSERT_EQ(g.query_label(task, k), truth(w, q.row(k).transpose())) << "queries stay noiseless";
      query_flipped += g.y_query_noisy[task * g.m() + k] != g.query_label(task, k);
    }
  }
  const double sd = std::sqrt(0.2 * 0.8);
  const double contexts = g.tasks() * g.n(), queries = g.tasks() * g.m();
  expect_mean(flipped / contexts, 0.2, sd, contexts, "context flip rate");
  expect_mean(query_flipped / queries, 0.2, sd, queries, "noisy query label flip rate");
}

TEST(Modifiers, MarginIsRespectedByEveryInput) {
  TaskSpec spec = spec_of(Family::kGaussian, 8, 2000, 500, 5);
  spec.margin = 0.2;
  const Generated g(spec);
  double smallest = 1.0;
  for (int task = 0; task < g.tasks(); ++task) {
    const Eigen::VectorXd w = g.w(task);
    for (const Eigen::MatrixXd& rows : {g.context(task), g.queries(task)})
      for (int i = 0; i < rows.rows(); ++i)
        smallest = std::min(smallest, std::abs(w.dot(rows.row(i))) / rows.row(i).norm());
  }
  EXPECT_GE(smallest, 0.2);
  EXPECT_LT(smallest, 0.21);  // conditioning, not a shift: inputs right at the margin exist
  expect_labels_follow_rule(g);
}

TEST(Modifiers, ImpossibleMarginIsReportedNotLoopedOn) {
  TaskSpec spec = spec_of(Family::kGaussian, 64, 10, 1, 1);
  spec.margin = 0.99;
  EXPECT_THROW(Generated{spec}, SpecError);
}

TEST(Modifiers, BiasMakesInhomogeneousHalfspaces) {
  TaskSpec spec = spec_of(Family::kGaussian, 5, 5000, 1000, 4);
  spec.bias = 0.5;
  const Generated g(spec);
  expect_labels_follow_rule(g, 0.5);
  // w*.x ~ N(0, 1) for unit w*: P(y = +1) = P(z > -0.5) = Phi(0.5).
  const double p = normal_cdf(0.5);
  expect_mean(fraction_positive(g.y), p, std::sqrt(p * (1 - p)), g.y.size(), "biased label balance");
}

// The error names the parameter as a data set's metadata does (the command line maps it to a flag).
TEST(Validation, RejectsEveryOutOfDomainParameterWithItsName) {
  auto rejects = [](auto mutate, const std::string& parameter) {
    TaskSpec spec;
    mutate(spec);
    try {
      validate(spec);
      ADD_FAILURE() << "accepted bad " << parameter;
    } catch (const SpecError& error) {
      EXPECT_EQ(error.parameter(), parameter) << error.what();
      EXPECT_EQ(std::string(error.what()).rfind(parameter + " ", 0), 0u) << error.what();
      EXPECT_EQ(std::string(error.what()).find("--"), std::string::npos) << error.what();
    }
  };
  rejects([](TaskSpec& s) { s.dim = 0; }, "d");
  rejects([](TaskSpec& s) { s.dim = -3; }, "d");
  rejects([](TaskSpec& s) { s.n_examples = 0; }, "n");
  rejects([](TaskSpec& s) { s.n_queries = -1; }, "queries");
  rejects([](TaskSpec& s) { s.n_tasks = 0; }, "tasks");
  rejects([](TaskSpec& s) { s.noise = 0.5; }, "noise");
  rejects([](TaskSpec& s) { s.noise = std::nan(""); }, "noise");
  rejects([](TaskSpec& s) { s.margin = 1.0; }, "margin");
  rejects([](TaskSpec& s) { s.margin = -0.1; }, "margin");
  rejects([](TaskSpec& s) { s.bias = INFINITY; }, "bias");
  rejects([](TaskSpec& s) { s.family = Family::kSkewed; s.kappa = 0.5; }, "kappa");
  rejects([](TaskSpec& s) { s.kappa = 3.0; }, "kappa");  // not skewed
  rejects([](TaskSpec& s) { s.family = Family::kGmm; s.scale = 0; }, "scale");
  rejects([](TaskSpec& s) { s.scale = 2.0; }, "scale");  // gaussian has no scale
  rejects([](TaskSpec& s) { s.family = Family::kOrthogonal; s.dim = 1; }, "d");
  rejects([](TaskSpec& s) { s.family = Family::kSkewed; s.dim = 5000; }, "d");
  rejects([](TaskSpec& s) { s.family = Family::kGmm; s.scale = 2; s.bias = 1; }, "bias");
  rejects([](TaskSpec& s) { s.family = Family::kGmm; s.scale = 2; s.margin = 0.1; }, "margin");
}

// Determinism of whole files: thread count, chunking and repetition change nothing.
std::string generate_file(TaskSpec spec, int threads, std::uint64_t chunk_bytes,
                          const std::string& name) {
  const fs::path dir = fs::path(ICLBENCH_TEST_TMPDIR) / "determinism";
  fs::create_directories(dir);
  const fs::path path = dir / name;
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
  WriteOptions options;
  options.overwrite = io::Overwrite::kAllow;
  options.chunk_bytes = chunk_bytes;
  write_dataset(spec, path, options);
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

TEST(Determinism, SameSeedSameBytesForAnyThreadCountAndChunking) {
  for (Family family : {Family::kGaussian, Family::kSkewed, Family::kOverlap, Family::kGmm}) {
    TaskSpec spec = spec_of(family, 9, 33, 17, 40, 123);
    spec.noise = 0.1;
    if (family != Family::kGmm) spec.margin = 0.05;
    const std::string one = generate_file(spec, 1, 64u << 20, "one.safetensors");
    const std::string two = generate_file(spec, 2, 64u << 20, "two.safetensors");
    const std::string chunked = generate_file(spec, 2, 1, "chunked.safetensors");  // a task per chunk
    const std::string again = generate_file(spec, 1, 4000, "again.safetensors");
    EXPECT_EQ(one, two) << family_name(family);
    EXPECT_EQ(one, chunked) << family_name(family);
    EXPECT_EQ(one, again) << family_name(family);
    spec.seed = 124;
    EXPECT_NE(one, generate_file(spec, 2, 64u << 20, "other_seed.safetensors")) << family_name(family);
  }
}

TEST(Determinism, ATaskDoesNotDependOnTheOtherTasks) {
  TaskSpec spec = spec_of(Family::kSkewed, 5, 20, 10, 8);
  spec.kappa = 4;
  const Generated all(spec);
  spec.n_tasks = 1;  // generate only task 6, on its own
  std::vector<float> x(20 * 5), y(20), w(5), xq(50), yq(10);
  generate_task(spec, 6, {x, y, w, xq, yq, {}});
  EXPECT_TRUE(std::equal(x.begin(), x.end(), all.x.begin() + 6 * 100));
  EXPECT_TRUE(std::equal(xq.begin(), xq.end(), all.x_query.begin() + 6 * 50));
  EXPECT_TRUE(std::equal(w.begin(), w.end(), all.w_star.begin() + 6 * 5));
}

// Data set files: written, reopened, validated.
TEST(DatasetFile, RoundTripThroughTheValidatingReader) {
  TaskSpec spec = spec_of(Family::kCube, 3, 10, 4, 6, 99);
  spec.noise = 0.25;
  const Generated expected(spec);
  const fs::path path = fs::path(ICLBENCH_TEST_TMPDIR) / "roundtrip.safetensors";
  WriteOptions options;
  options.overwrite = io::Overwrite::kAllow;
  write_dataset(spec, path, options);
  const Dataset dataset = Dataset::open(path);
  EXPECT_EQ(dataset.spec().family, Family::kCube);
  EXPECT_EQ(dataset.spec().seed, 99u);
  EXPECT_EQ(dataset.spec().noise, 0.25);
  EXPECT_EQ(dataset.metadata().at("generator"), "cube");
  for (int task = 0; task < 6; ++task) {
    EXPECT_TRUE(std::ranges::equal(dataset.x(task), std::span(expected.x).subspan(task * 30, 30)));
    EXPECT_TRUE(std::ranges::equal(dataset.y(task), std::span(expected.y).subspan(task * 10, 10)));
    EXPECT_TRUE(std::ranges::equal(dataset.y_query_noisy(task),
                                   std::span(expected.y_query_noisy).subspan(task * 4, 4)));
  }
}

// A file that is valid safetensors but a broken data set, written with the raw writer.
void write_broken(const fs::path& path, std::map<std::string, std::string> metadata,
                  std::vector<io::TensorToWrite> tensors, std::vector<std::vector<float>> values) {
  io::SafetensorsWriter writer(path, metadata, tensors, io::Overwrite::kAllow);
  for (std::size_t i = 0; i < tensors.size(); ++i) writer.write_f32(tensors[i].name, 0, values[i]);
  writer.commit();
}

// A task set generated for eval or bounds sits under TMPDIR between being written and being
// unlinked; a SIGKILL in that window leaves it. Its name is one of io's temporary names, owned
// by this process, so that the next run's stale-temp sweep removes it once the process is gone.
TEST(DatasetFile, UnnamedTaskSetsHaveTemporaryNamesOfThisProcess) {
  for (std::uint64_t serial : {std::uint64_t{0}, std::uint64_t{41}, std::uint64_t{1234567}}) {
    const std::filesystem::path path = data::unnamed_path(serial);
    EXPECT_EQ(path.parent_path(), data::unnamed_directory());
    EXPECT_EQ(io::temp_file_owner(path.filename().string()), std::optional<long>(::getpid())) << path;
  }
  EXPECT_NE(data::unnamed_path(0), data::unnamed_path(1));
}

TEST(DatasetFile, RejectsFilesThatAreNotValidDataSets) {
  const TaskSpec spec = spec_of(Family::kGaussian, 2, 3, 1, 1, 5);
  const Generated g(spec);
  const fs::path path = fs::path(ICLBENCH_TEST_TMPDIR) / "broken.safetensors";
  const std::vector<io::TensorToWrite> tensors = {{"x", io::DType::kF32, {1, 3, 2}},
                                                  {"y", io::DType::kF32, {1, 3}},
                                                  {"w_star", io::DType::kF32, {1, 2}},
                                                  {"x_query", io::DType::kF32, {1, 1, 2}},
                                                  {"y_query", io::DType::kF32, {1, 1}}};
  const std::vector<std::vector<float>> values = {g.x, g.y, g.w_star, g.x_query, g.y_query};
  auto expect_error = [&](auto metadata, auto tensor_list, auto tensor_values, const std::string& expected) {
    write_broken(path, metadata, tensor_list, tensor_values);
    try {
      Dataset::open(path);
      ADD_FAILURE() << "accepted: " << expected;
    } catch (const io::FormatError& error) {
      EXPECT_NE(std::string(error.what()).find(expected), std::string::npos) << error.what();
    }
  };
  const auto good_meta = dataset_metadata(spec);
  write_broken(path, good_meta, tensors, values);
  EXPECT_NO_THROW(Dataset::open(path));

  auto meta = good_meta;
  meta["format"] = "something-else";
  expect_error(meta, tensors, values, "not an iclbench data set");
  meta = good_meta;
  meta["format_version"] = "2";
  expect_error(meta, tensors, values, "regenerate it with `iclbench gen`");
  meta = good_meta;
  meta["params"] = "{\"family\":\"gaussian\"}";
  expect_error(meta, tensors, values, "params or seed unreadable");
  meta = good_meta;
  meta.erase("seed");
  expect_error(meta, tensors, values, "no 'seed'");

  auto bad_shape = tensors;
  bad_shape[1].shape = {1, 2};
  auto short_y = values;
  short_y[1].resize(2);
  expect_error(good_meta, bad_shape, short_y, "tensor 'y': shape [1, 2] does not match");

  auto bad_label = values;
  bad_label[1][2] = 0.5f;
  expect_error(good_meta, tensors, bad_label, "tensor 'y' element 2 is 0.5");

  auto nan_input = values;
  nan_input[0][1] = std::nanf("");
  expect_error(good_meta, tensors, nan_input, "tensor 'x' element 1 is nan, not finite");

  auto long_w = values;
  long_w[2] = {1.0f, 1.0f};
  expect_error(good_meta, tensors, long_w, "not a unit vector");

  auto missing = tensors;
  missing.pop_back();
  auto missing_values = values;
  missing_values.pop_back();
  expect_error(good_meta, missing, missing_values, "expected 5");
}

}  // namespace
}  // namespace iclbench::data
