#pragma once
// Linear heads h_S trained on a task's labelled examples S (the stand-ins for a fine-tuned
// model), and two non-linear references. All are homogeneous (no bias), like the tasks' w*.
//
//   logistic[:C=1]          L2-regularised logistic regression, LIBLINEAR (primal trust-region
//                           Newton): min 1/2 |w|^2 + C sum log(1 + exp(-y_i w.x_i))
//   svm[:C=1]               L2-regularised squared-hinge linear SVM, LIBLINEAR primal (the
//                           default loss of scikit-learn's LinearSVC)
//   svm-hard                the hard-margin (maximum-margin) SVM, the ERM learner on separable
//                           data: min |w| subject to y_i w.x_i >= 1, solved exactly (Lawson-
//                           Hanson active set on its least-distance form, no C); the stand-in
//                           reference for the fine-tuned model. On data that no homogeneous
//                           hyperplane separates it falls back to svm at C = kHardMarginC.
//                           Its training error and margin are reported.
//   ls                      least squares, minimum-norm when N < d (Eigen, complete orthogonal
//                           decomposition)
//   ridge[:lambda=1]        min (1/N) |X w - y|^2 + lambda |w|^2  (Eigen LDLT)
//   perceptron[:epochs=100] passes over S in order until one makes no mistake, at most `epochs`
//   avg                     w = sum_i y_i x_i  (the averaging estimator)
//   knn[:k=5]               mean label of the k nearest examples (Euclidean); not linear
//   bayes                   w = w*
//
// Invariance to a global scale of x: only w's direction matters, so logistic, svm, svm-hard and
// ridge (whose regularisers would otherwise compare |w| with a scale-dependent loss) train on x
// divided by its root-mean-square entry, and w is mapped back. A task whose x is all zeros
// gives w = 0.
//
// LIBLINEAR's dual solvers draw from rand(), which is neither thread-safe nor seeded per task;
// the primal solvers used here draw nothing, and svm-hard's active set breaks ties by example
// index, so heads are deterministic under any thread count.
//
// Shapes: N examples, d input dimension, M queries.

#include <cmath>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "util/text.hpp"

namespace iclbench::heads {

enum class HeadKind { kLogistic, kSvm, kSvmHard, kLeastSquares, kRidge, kPerceptron, kAveraging, kKnn, kBayes };

struct HeadSpec {
  HeadKind kind = HeadKind::kLogistic;
  double c = 1.0;       // logistic, svm
  double lambda = 1.0;  // ridge
  int epochs = 100;     // perceptron
  int k = 5;            // knn
  std::string name;     // canonical: "logistic", "ridge:lambda=0.1", ...
  bool linear() const { return kind != HeadKind::kKnn; }
};

// The empirical risk minimiser: the default reference of the bounds sweep.
inline constexpr std::string_view kErmHead = "svm-hard";
// C of svm-hard's fallback on inseparable data (x normalised to unit RMS entry): the
// squared-hinge SVM, whose slack costs C sum xi^2, by LIBLINEAR. Only approximately solved at
// this C: LIBLINEAR's trust-region Newton stops at its 1000-iteration cap on most such problems
// (the squared hinge's generalised Hessian jumps by 2C x x^T at every kink). Such tasks report
// train_error > 0.
inline constexpr double kHardMarginC = 1e6;

class HeadError : public std::invalid_argument {
 public:
  // Escaped as util::ParameterError's: a NUL in user input must not cut what() short.
  explicit HeadError(const std::string& message) : std::invalid_argument(util::escape_control(message)) {}
};
HeadSpec parse_head(std::string_view text);
std::vector<HeadSpec> parse_heads(std::string_view comma_separated);  // "logistic,svm,ls"
std::string head_names();

// One task's training data.
struct TaskData {
  std::span<const float> x;       // [N, d]
  std::span<const float> y;       // [N]  +-1
  std::span<const float> w_star;  // [d]
  int dim;
  std::int64_t n() const { return static_cast<std::int64_t>(y.size()); }
};

// A trained head: a weight vector (linear heads), or the training data kept for knn.
struct TrainedHead {
  std::vector<double> w;  // [d], empty for knn
  // svm-hard only (NaN otherwise): the fraction of S it misclassifies (0 on separable data) and
  // its geometric margin min_i y_i w.x_i / |w| in the units of x.
  double train_error = NAN;
  double margin = NAN;
};

TrainedHead train(const HeadSpec& spec, const TaskData& task);
// Scores of queries [M, d] -> [M]; sign = predicted label (0 counts as +1). A linear head's
// score is the cosine of the angle between w and the query, w.x / (|w| |x|) in [-1, 1] (0 for a
// zero w or query), so that it is invariant to a global scale of the inputs; knn's is the mean
// label of the k nearest examples.
void predict(const HeadSpec& spec, const TrainedHead& head, const TaskData& task,
             std::span<const float> queries, std::span<float> scores);

}  // namespace iclbench::heads
