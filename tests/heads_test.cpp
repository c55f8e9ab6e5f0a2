// Each head against an independent solution on small problems.

#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <cmath>

#include "heads/heads.hpp"
#include "util/philox.hpp"

namespace iclbench::heads {
namespace {

using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

struct Problem {
  int d;
  std::vector<float> x, y, w_star;
  TaskData data() const { return {x, y, w_star, d}; }
  RowMatrix matrix() const {
    RowMatrix m(static_cast<Eigen::Index>(y.size()), d);
    for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = x[static_cast<std::size_t>(i)];
    return m;
  }
  Eigen::VectorXd labels() const {
    Eigen::VectorXd v(static_cast<Eigen::Index>(y.size()));
    for (Eigen::Index i = 0; i < v.size(); ++i) v[i] = y[static_cast<std::size_t>(i)];
    return v;
  }
};

// Gaussian inputs, labels sign(w*.x) flipped with probability `noise`; with `margin` > 0 inputs
// closer than margin to the hyperplane are dropped (separable with a margin).
Problem make_problem(int d, int n, double noise, double margin, std::uint64_t seed) {
  Problem p{d, {}, {}, std::vector<float>(static_cast<std::size_t>(d))};
  util::DrawSequence draws(seed, 0, 0, util::Stream::kContextInput);
  double norm = 0;
  for (float& w : p.w_star) {
    w = static_cast<float>(draws.normal());
    norm += w * w;
  }
  for (float& w : p.w_star) w = static_cast<float>(w / std::sqrt(norm));
  while (static_cast<int>(p.y.size()) < n) {
    std::vector<float> row(static_cast<std::size_t>(d));
    double score = 0;
    for (int j = 0; j < d; ++j) {
      row[j] = static_cast<float>(draws.normal());
      score += row[j] * p.w_star[j];
    }
    if (std::abs(score) < margin) continue;
    float label = score >= 0 ? 1.0f : -1.0f;
    if (draws.uniform() < noise) label = -label;
    p.x.insert(p.x.end(), row.begin(), row.end());
    p.y.push_back(label);
  }
  return p;
}

Eigen::VectorXd as_vector(const std::vector<double>& w) {
  return Eigen::Map<const Eigen::VectorXd>(w.data(), static_cast<Eigen::Index>(w.size()));
}

int training_errors(const std::vector<double>& w, const Problem& p) {
  const Eigen::VectorXd margins = (p.matrix() * as_vector(w)).cwiseProduct(p.labels());
  return static_cast<int>((margins.array() <= 0).count());
}

TEST(Heads, LogisticMatchesANewtonSolve) {
  for (double c : {0.1, 1.0, 10.0}) {
    const Problem p = make_problem(6, 120, 0.1, 0.0, 3);
    const RowMatrix x = p.matrix();
    const Eigen::VectorXd y = p.labels();
    // Newton on f(w) = 1/2 |w|^2 + C sum log(1 + exp(-y_i w.x_i)).
    Eigen::VectorXd w = Eigen::VectorXd::Zero(6);
    auto gradient = [&](const Eigen::VectorXd& at) {
      const Eigen::ArrayXd margins = (x * at).cwiseProduct(y).array();
      const Eigen::ArrayXd sigma_neg = 1.0 / (1.0 + margins.exp());  // sigma(-margin)
      return Eigen::VectorXd(at - c * x.transpose() * (y.array() * sigma_neg).matrix());
    };
    for (int iteration = 0; iteration < 50; ++iteration) {
      const Eigen::ArrayXd margins = (x * w).cwiseProduct(y).array();
      const Eigen::ArrayXd s = 1.0 / (1.0 + (-margins).exp());
      const Eigen::MatrixXd hessian = Eigen::MatrixXd::Identity(6, 6) +
                                      c * x.transpose() * (s * (1 - s)).matrix().asDiagonal() * x;
      w -= hessian.ldlt().solve(gradient(w));
    }
    ASSERT_LT(gradient(w).norm(), 1e-10);
    const HeadSpec spec = parse_head(c == 1.0 ? "logistic" : "logistic:C=" + std::to_string(c));
    const TrainedHead head = train(spec, p.data());
    // f is 1-strongly convex, so |w_liblinear - w*| <= |grad f(w_liblinear)|, which LIBLINEAR
    // stops at eps = 1e-6 relative to |grad f(0)|.
    const double bound = 1e-6 * gradient(Eigen::VectorXd::Zero(6)).norm() * 1.5;
    EXPECT_LT((as_vector(head.w) - w).norm(), bound) << "C = " << c;
  }
}

TEST(Heads, SvmSeparatesSeparableData) {
  const Problem p = make_problem(8, 200, 0.0, 0.1, 4);
  const TrainedHead head = train(parse_head("svm:C=100"), p.data());
  EXPECT_EQ(training_errors(head.w, p), 0);
  // The squared-hinge SVM's margins: every example beyond the hyperplane.
}

TEST(Heads, LeastSquaresSolvesTheNormalEquations) {
  const Problem tall = make_problem(5, 40, 0.2, 0.0, 5);
  const RowMatrix x = tall.matrix();
  const Eigen::VectorXd expected = (x.transpose() * x).llt().solve(x.transpose() * tall.labels());
  EXPECT_LT((as_vector(train(parse_head("ls"), tall.data()).w) - expected).norm(), 1e-9);
  // Fewer examples than dimensions: the minimum-norm solution X^T (X X^T)^-1 y.
  const Problem wide = make_problem(12, 5, 0.0, 0.0, 6);
  const RowMatrix xw = wide.matrix();
  const Eigen::VectorXd min_norm = xw.transpose() * (xw * xw.transpose()).llt().solve(wide.labels());
  EXPECT_LT((as_vector(train(parse_head("ls"), wide.data()).w) - min_norm).norm(), 1e-9);
}

TEST(Heads, RidgeSolvesItsNormalEquations) {
  const Problem p = make_problem(7, 30, 0.1, 0.0, 7);
  const RowMatrix x = p.matrix();
  const double lambda = 0.3;
  const Eigen::VectorXd expected =
      (x.transpose() * x + 30 * lambda * Eigen::MatrixXd::Identity(7, 7)).inverse() * x.transpose() * p.labels();
  EXPECT_LT((as_vector(train(parse_head("ridge:lambda=0.3"), p.data()).w) - expected).norm(), 1e-9);
}

TEST(Heads, PerceptronSeparatesSeparableData) {
  const Problem p = make_problem(8, 300, 0.0, 0.2, 8);
  EXPECT_EQ(training_errors(train(parse_head("perceptron:epochs=1000"), p.data()).w, p), 0);
}

TEST(Heads, AveragingBayesAndKnn) {
  const Problem p = make_problem(4, 25, 0.0, 0.0, 9);
  const Eigen::VectorXd avg = p.matrix().transpose() * p.labels();
  EXPECT_LT((as_vector(train(parse_head("avg"), p.data()).w) - avg).norm(), 1e-5);
  const TrainedHead bayes = train(parse_head("bayes"), p.data());
  for (int j = 0; j < 4; ++j) EXPECT_EQ(bayes.w[j], p.w_star[j]);
  // knn: brute force on every training point used as a query, k = 3.
  const HeadSpec knn = parse_head("knn:k=3");
  std::vector<float> scores(p.y.size());
  predict(knn, train(knn, p.data()), p.data(), p.x, scores);
  const RowMatrix x = p.matrix();
  for (Eigen::Index q = 0; q < x.rows(); ++q) {
    std::vector<std::pair<double, int>> distances;
    for (Eigen::Index i = 0; i < x.rows(); ++i) distances.push_back({(x.row(i) - x.row(q)).squaredNorm(), static_cast<int>(i)});
    std::sort(distances.begin(), distances.end());
    double vote = 0;
    for (int i = 0; i < 3; ++i) vote += p.y[distances[i].second];
    EXPECT_FLOAT_EQ(scores[q], static_cast<float>(vote / 3)) << q;
  }
}

TEST(Heads, ParsesAndRejectsHeadLists) {
  const auto specs = parse_heads("logistic,svm:C=10,ls,ridge:lambda=0.5,knn:k=7,avg,bayes,perceptron");
  ASSERT_EQ(specs.size(), 8u);
  EXPECT_EQ(specs[1].name, "svm:C=10");
  EXPECT_EQ(specs[1].c, 10.0);
  EXPECT_EQ(specs[4].k, 7);
  for (const char* bad : {"logit", "ls:lambda=1", "svm:C=-1", "knn:k=2.5", "svm:C=abc", "ls,ls", "ls,"}) {
    EXPECT_THROW(parse_heads(bad), HeadError) << bad;
  }
}

}  // namespace
}  // namespace iclbench::heads
