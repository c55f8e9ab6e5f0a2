// Each head against an independent solution on small problems.

#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <cmath>
#include <functional>
#include <tuple>

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

// The heads that normalise x (heads.hpp) train on x / rms(x): the reference solutions below do
// the same.
double rms_entry(const Problem& p) {
  double sum = 0;
  for (float v : p.x) sum += static_cast<double>(v) * v;
  return std::sqrt(sum / static_cast<double>(p.x.size()));
}

int training_errors(const std::vector<double>& w, const Problem& p) {
  const Eigen::VectorXd margins = (p.matrix() * as_vector(w)).cwiseProduct(p.labels());
  return static_cast<int>((margins.array() <= 0).count());
}

TEST(Heads, LogisticMatchesANewtonSolve) {
  for (double c : {0.1, 1.0, 10.0}) {
    const Problem p = make_problem(6, 120, 0.1, 0.0, 3);
    const double scale = rms_entry(p);
    const RowMatrix x = p.matrix() / scale;
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
    // stops at eps = 1e-6 relative to |grad f(0)|; the head returns w / scale.
    const double bound = 1e-6 * gradient(Eigen::VectorXd::Zero(6)).norm() * 1.5 / scale;
    EXPECT_LT((as_vector(head.w) - w / scale).norm(), bound) << "C = " << c;
  }
}

TEST(Heads, SvmSeparatesSeparableData) {
  const Problem p = make_problem(8, 200, 0.0, 0.1, 4);
  const TrainedHead head = train(parse_head("svm:C=100"), p.data());
  EXPECT_EQ(training_errors(head.w, p), 0);
  // The squared-hinge SVM's margins: every example beyond the hyperplane.
}

// The hard-margin SVM by exhaustion: the homogeneous max-margin w minimises |w| subject to
// y_i w.x_i >= 1; at the optimum w = sum over support vectors of a_i y_i x_i with the
// constraints tight on them, and (Caratheodory) some <= d linearly independent support vectors
// suffice. So w* is the minimum-norm feasible candidate among, for every subset S of size <= d,
// the minimum-norm w in span(x_S) with y_i w.x_i = 1 on S. Independent of the head's active-set
// solve.
Eigen::VectorXd exact_hard_margin(const Problem& p) {
  const RowMatrix x = p.matrix();
  const Eigen::VectorXd y = p.labels();
  const int n = static_cast<int>(x.rows());
  Eigen::VectorXd best;
  std::vector<int> subset;
  std::function<void(int)> visit = [&](int start) {
    if (!subset.empty()) {
      RowMatrix xs(static_cast<Eigen::Index>(subset.size()), p.d);
      Eigen::VectorXd ys(static_cast<Eigen::Index>(subset.size()));
      for (std::size_t i = 0; i < subset.size(); ++i) {
        xs.row(static_cast<Eigen::Index>(i)) = x.row(subset[i]);
        ys[static_cast<Eigen::Index>(i)] = y[subset[i]];
      }
      const Eigen::MatrixXd gram = xs * xs.transpose();
      Eigen::FullPivLU<Eigen::MatrixXd> lu(gram);
      if (lu.rank() == static_cast<Eigen::Index>(subset.size())) {
        const Eigen::VectorXd w = xs.transpose() * lu.solve(ys);
        const bool feasible = ((x * w).cwiseProduct(y).array() >= 1 - 1e-9).all();
        if (feasible && (best.size() == 0 || w.norm() < best.norm())) best = w;
      }
    }
    if (static_cast<int>(subset.size()) == p.d) return;
    for (int i = start; i < n; ++i) {
      subset.push_back(i);
      visit(i + 1);
      subset.pop_back();
    }
  };
  visit(0);
  return best;
}

TEST(Heads, HardMarginSvmMatchesAnExactSolve) {
  // Two points, analytic: x = (1, 0) labelled +1 and (0, 1) labelled -1 give w ∝ (1, -1) and
  // margin 1/sqrt(2).
  const Problem two{2, {1, 0, 0, 1}, {1, -1}, {1, 0}};
  const TrainedHead pair = train(parse_head("svm-hard"), two.data());
  EXPECT_NEAR(pair.margin, 1 / std::sqrt(2.0), 1e-5);
  EXPECT_NEAR(pair.w[0] / pair.w[1], -1.0, 1e-5);
  for (const auto& [d, n, seed] : {std::tuple{2, 15, 11}, {3, 20, 12}, {4, 24, 13}, {3, 40, 14}}) {
    const Problem p = make_problem(d, n, 0.0, 0.0, static_cast<std::uint64_t>(seed));
    const Eigen::VectorXd exact = exact_hard_margin(p);
    ASSERT_GT(exact.size(), 0);
    const TrainedHead head = train(parse_head("svm-hard"), p.data());
    EXPECT_EQ(head.train_error, 0.0);
    EXPECT_EQ(training_errors(head.w, p), 0);
    // The head meets the KKT conditions to within 1e-9 (heads.cpp, kViolationTolerance), which
    // bounds its margin to ~1e-9 relative and its cosine to ~2e-9 below 1 (HardMarginSvmIs
    // CertifiedOptimal below derives both); the brute force's own rounding is ~1e-14 here
    // (d <= 4, well-conditioned subsets). 1e-7 leaves a factor 50.
    const double margin = 1 / exact.norm();
    EXPECT_NEAR(head.margin, margin, 1e-7 * margin) << "d=" << d << " n=" << n;
    const double cosine = as_vector(head.w).dot(exact) / (as_vector(head.w).norm() * exact.norm());
    EXPECT_GT(cosine, 1 - 1e-7) << "d=" << d << " n=" << n;
  }
}

// The hard-margin problem min |w|^2 / 2 subject to y_i w.x_i >= 1 is convex, so its KKT
// conditions prove optimality: w = sum_i alpha_i y_i x_i with alpha >= 0, every y_i w.x_i >= 1,
// and y_i w.x_i = 1 wherever alpha_i > 0. The certificate is computed here from the head's w
// alone: T = the examples with y_i w.x_i <= 1 + tau, alpha_T = the least squares solution of
// sum_T alpha_i y_i x_i = w (unique: Gaussian x_T are linearly independent, |T| <= d), then
// checked: alpha_T >= 0, residual rho = |w - sum_T alpha_i y_i x_i| <= eps_rho |w|, and
// min_i y_i w.x_i >= 1 - tau.
// What that proves, for the exact solution w0 (feasible: y_i w0.x_i >= 1): w / (1 - tau) is
// feasible, so |w0| <= |w| / (1 - tau); and w.w0 >= sum alpha_i - eps_rho |w| |w0| while
// |w|^2 <= (1 + tau) sum alpha_i + eps_rho |w|^2, so |w| <= |w0| (1 + tau) (1 + eps_rho) / (1 - eps_rho).
// The margin 1/|w| is then within tau + 2 eps_rho (relative) of the maximum, and since w0 is the
// projection of 0 on the feasible set, |w/(1-tau) - w0|^2 <= |w/(1-tau)|^2 - |w0|^2 gives
// 1 - cos(w, w0) <= 2 (tau + eps_rho) to first order.
// Tolerances: the head stops at violations <= 1e-9 (kViolationTolerance) and sets y_i w.x_i = 1
// on its support by a least squares solve; recomputing y_i w.x_i here rounds by ~d eps |x| |w|
// <= 16 * 1.1e-16 * 1e4 ~ 2e-11. tau = 2e-9 and eps_rho = 1e-8 (the residual of an exact
// representation is rounding, ~cond(x_T) eps ~ 1e-13) certify the margin to 3e-8 and the cosine
// to 3e-8.
TEST(Heads, HardMarginSvmIsCertifiedOptimal) {
  constexpr double kTau = 2e-9, kResidual = 1e-8;
  std::uint64_t seed = 100;
  for (int d : {8, 16}) {
    for (int n : {d / 2, d, 2 * d, 4 * d, 8 * d, 300, 2000}) {
      const Problem p = make_problem(d, n, 0.0, 0.0, ++seed);
      const TrainedHead head = train(parse_head("svm-hard"), p.data());
      ASSERT_EQ(head.train_error, 0.0) << "d=" << d << " n=" << n;
      const RowMatrix x = p.matrix();
      const Eigen::VectorXd y = p.labels();
      const Eigen::VectorXd w = as_vector(head.w);
      const Eigen::VectorXd signed_scores = (x * w).cwiseProduct(y);
      EXPECT_GE(signed_scores.minCoeff(), 1 - kTau) << "d=" << d << " n=" << n;
      std::vector<Eigen::Index> tight;
      for (Eigen::Index i = 0; i < signed_scores.size(); ++i)
        if (signed_scores[i] <= 1 + kTau) tight.push_back(i);
      ASSERT_FALSE(tight.empty());
      ASSERT_LE(static_cast<int>(tight.size()), d) << "d=" << d << " n=" << n;
      Eigen::MatrixXd z_tight(d, static_cast<Eigen::Index>(tight.size()));  // columns y_i x_i
      for (std::size_t k = 0; k < tight.size(); ++k)
        z_tight.col(static_cast<Eigen::Index>(k)) = y[tight[k]] * x.row(tight[k]).transpose();
      const Eigen::VectorXd alpha = z_tight.colPivHouseholderQr().solve(w);
      EXPECT_LE((z_tight * alpha - w).norm(), kResidual * w.norm()) << "d=" << d << " n=" << n;
      EXPECT_GE(alpha.minCoeff(), 0.0) << "d=" << d << " n=" << n;
      // The reported margin is min_i y_i w.x_i / |w|, i.e. 1/|w| up to tau.
      EXPECT_NEAR(head.margin, 1 / w.norm(), 3 * kTau / w.norm()) << "d=" << d << " n=" << n;
    }
  }
}

// Not separable: the documented fallback, the squared-hinge SVM at C = kHardMarginC, which
// reports the examples it misclassifies.
TEST(Heads, HardMarginSvmFallsBackOnInseparableData) {
  const Problem p = make_problem(8, 200, 0.2, 0.0, 16);
  const TrainedHead head = train(parse_head("svm-hard"), p.data());
  EXPECT_GT(head.train_error, 0.0);
  EXPECT_LT(head.margin, 0.0);
  EXPECT_EQ(head.train_error, training_errors(head.w, p) / 200.0);
  // The same problem solved by LIBLINEAR on all examples at once (the fallback uses working
  // sets, whose solution is the full problem's); both stop at LIBLINEAR's tolerance.
  const TrainedHead full = train(parse_head("svm:C=1000000"), p.data());
  const double cosine = as_vector(head.w).dot(as_vector(full.w)) / (as_vector(head.w).norm() * as_vector(full.w).norm());
  EXPECT_GT(cosine, 1 - 1e-6);
}

// Issue 15 item 12: only w's direction matters, so a global scale of x must not change it.
TEST(Heads, DirectionIsInvariantToAGlobalScaleOfTheInputs) {
  const Problem p = make_problem(6, 80, 0.05, 0.0, 15);
  for (const char* name : {"logistic", "svm", "svm-hard", "ridge", "ls", "avg", "perceptron"}) {
    const HeadSpec spec = parse_head(name);
    const Eigen::VectorXd w = as_vector(train(spec, p.data()).w);
    for (const double scale : {1e-30, 1e-25, 1e-9, 1e6, 1e20, 1e30}) {
      Problem scaled = p;
      for (float& v : scaled.x) v = static_cast<float>(v * scale);
      const Eigen::VectorXd ws = as_vector(train(spec, scaled.data()).w);
      ASSERT_GT(ws.norm(), 0) << name << " scale " << scale;
      // Scaling in float rounds each entry by <= 2^-24 relatively; the normalised problems then
      // differ by that much and the solvers stop at a relative gradient of 1e-6 (LIBLINEAR), so
      // the directions agree to ~1e-6, far inside 1e-4. Without the normalisation the logistic
      // and svm heads return w = 0 at scale 1e-9 (issue 15).
      const double cosine = w.dot(ws) / (w.norm() * ws.norm());
      EXPECT_GT(cosine, 1 - 1e-4) << name << " scale " << scale;
    }
  }
}

// Issue 15: a head's SCORES, not only its w, are invariant to a global scale: w.x rounded to
// f32 underflowed to +-0 at |x| ~ 1e-25 (error 0.56 where scale 1 gives 0.11) and overflowed to
// +-inf at 1e20. A linear head's score is the cosine of (w, x); w scales like x (avg,
// perceptron) or like 1/x (ls, ridge), so both are tried, and knn's vote ignores the scale.
TEST(Heads, ScoresAreInvariantToAGlobalScaleOfTheInputs) {
  const Problem p = make_problem(5, 40, 0.1, 0.0, 16);
  for (const char* name : {"avg", "perceptron", "ls", "svm", "knn:k=3"}) {
    const HeadSpec spec = parse_head(name);
    const TrainedHead head = train(spec, p.data());
    std::vector<float> reference(p.y.size());
    predict(spec, head, p.data(), p.x, reference);
    for (const double scale : {1e-30, 1e-25, 1e20, 1e30}) {
      Problem scaled = p;
      for (float& v : scaled.x) v = static_cast<float>(v * scale);
      for (const double w_scale : {scale, 1 / scale}) {
        TrainedHead scaled_head = head;
        for (double& w : scaled_head.w) w *= w_scale;
        std::vector<float> scores(p.y.size());
        predict(spec, scaled_head, scaled.data(), scaled.x, scores);
        for (std::size_t q = 0; q < scores.size(); ++q) {
          // Each entry of x is rounded to f32 (2^-24 relative), which moves a cosine of unit
          // vectors by at most ~sqrt(d) 2^-24 ~ 1.3e-7, plus the f32 rounding of the score
          // (6e-8): 1e-6 is far outside both and far inside any real change.
          EXPECT_NEAR(scores[q], reference[q], 1e-6) << name << " scale " << scale << " w scale " << w_scale << " query " << q;
          EXPECT_EQ(scores[q] >= 0, reference[q] >= 0) << name << " scale " << scale << " query " << q;
        }
      }
    }
  }
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
  const double scale = rms_entry(p);
  const RowMatrix x = p.matrix() / scale;
  const double lambda = 0.3;
  const Eigen::VectorXd expected =
      (x.transpose() * x + 30 * lambda * Eigen::MatrixXd::Identity(7, 7)).inverse() * x.transpose() * p.labels() /
      scale;
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
  EXPECT_EQ(specs[0].name, "logistic:C=1");  // regularised heads carry C, the default too
  EXPECT_EQ(specs[1].name, "svm:C=10");
  EXPECT_EQ(parse_head("svm-hard").kind, HeadKind::kSvmHard);
  EXPECT_EQ(specs[1].c, 10.0);
  EXPECT_EQ(specs[4].k, 7);
  for (const char* bad : {"logit", "ls:lambda=1", "svm:C=-1", "knn:k=2.5", "svm:C=abc", "ls,ls", "ls,", "svm-hard:C=5",
                          "svm,svm:C=1"}) {
    EXPECT_THROW(parse_heads(bad), HeadError) << bad;
  }
  // Issue 15: counts are integers in decimal digits, never rounded from a real ("3.0" and "1e2"
  // were read as 3 and 100), and reals are decimal (no hexadecimal float).
  const std::vector<std::pair<std::string, std::string>> refused = {
      {"knn:k=3.0", "k must be an integer in [1, 10^6] written in decimal digits, got '3.0'"},
      {"perceptron:epochs=1e2", "epochs must be an integer in [1, 10^6] written in decimal digits, got '1e2'"},
      {"knn:k=2000000", "got '2000000'"},
      {"svm:C=0x1p-3", "'0x1p-3' is not a finite number"},
      {"ridge:lambda=+1", "'+1' is not a finite number"},
  };
  for (const auto& [text, expected] : refused) {
    try {
      parse_head(text);
      ADD_FAILURE() << "accepted " << text;
    } catch (const HeadError& error) {
      EXPECT_NE(std::string(error.what()).find(expected), std::string::npos) << error.what();
    }
  }
}

}  // namespace
}  // namespace iclbench::heads
