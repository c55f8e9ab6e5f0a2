#include "heads/heads.hpp"

#include <linear.h>

#include <Eigen/Dense>
#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <numeric>
#include <optional>

#include "util/numbers.hpp"
#include "util/text.hpp"

namespace iclbench::heads {
namespace {

using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

struct Entry {
  HeadKind kind;
  std::string_view name;
  std::string_view parameter;  // "" if none
};
constexpr Entry kEntries[] = {
    {HeadKind::kLogistic, "logistic", "C"}, {HeadKind::kSvm, "svm", "C"},
    {HeadKind::kSvmHard, "svm-hard", ""},
    {HeadKind::kLeastSquares, "ls", ""},    {HeadKind::kRidge, "ridge", "lambda"},
    {HeadKind::kPerceptron, "perceptron", "epochs"}, {HeadKind::kAveraging, "avg", ""},
    {HeadKind::kKnn, "knn", "k"},           {HeadKind::kBayes, "bayes", ""},
};

RowMatrix as_matrix(std::span<const float> values, std::int64_t rows, std::int64_t cols) {
  RowMatrix matrix(rows, cols);
  for (std::int64_t i = 0; i < rows * cols; ++i) matrix.data()[i] = values[i];
  return matrix;
}

Eigen::VectorXd as_vector(std::span<const float> values) {
  Eigen::VectorXd vector(static_cast<Eigen::Index>(values.size()));
  for (std::size_t i = 0; i < values.size(); ++i) vector[static_cast<Eigen::Index>(i)] = values[i];
  return vector;
}

void silent(const char*) {}

// LIBLINEAR on dense data: feature_node arrays (1-based indices, -1 terminated) per example,
// for the examples `subset` (all if empty). x is divided by `scale` (heads.hpp: scale
// invariance).
std::vector<double> liblinear_weights(const TaskData& task, int solver, double c, double scale,
                                      const std::vector<std::int64_t>& subset = {}) {
  static const bool quiet = [] {
    set_print_string_function(&silent);
    return true;
  }();
  (void)quiet;
  const std::int64_t n = subset.empty() ? task.n() : static_cast<std::int64_t>(subset.size());
  const int d = task.dim;
  std::vector<feature_node> nodes(static_cast<std::size_t>(n * (d + 1)));
  std::vector<feature_node*> rows(static_cast<std::size_t>(n));
  std::vector<double> labels(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t example = subset.empty() ? i : subset[static_cast<std::size_t>(i)];
    feature_node* row = nodes.data() + i * (d + 1);
    for (int j = 0; j < d; ++j)
      row[j] = {j + 1, task.x[static_cast<std::size_t>(example * d + j)] / scale};
    row[d] = {-1, 0.0};
    rows[static_cast<std::size_t>(i)] = row;
    labels[static_cast<std::size_t>(i)] = task.y[static_cast<std::size_t>(example)];
  }
  problem prob{};
  prob.l = static_cast<int>(n);
  prob.n = d;
  prob.y = labels.data();
  prob.x = rows.data();
  prob.bias = -1;  // homogeneous: no bias feature
  parameter param{};
  param.solver_type = solver;
  // LIBLINEAR stops at |grad f(w)| <= eps |grad f(0)| (times the smaller class's share). For C
  // of order 1 that is tight enough to compare against a Newton solve. |grad f(0)| grows like
  // C N while the solution's own scale |w| = 1/margin does not, so for the hard-margin C the
  // tolerance shrinks by C: the same accuracy relative to |w| (the Newton steps converge
  // quadratically, so this costs a few more of them).
  param.eps = 1e-6 / std::max(1.0, c);
  param.C = c;
  param.p = 0.1;
  if (const char* problem_text = check_parameter(&prob, &param)) {
    throw HeadError(std::string("LIBLINEAR: ") + problem_text);
  }
  model* trained = train(&prob, &param);
  // LIBLINEAR's w scores the first label it saw as positive.
  const double sign = trained->label[0] == 1 ? 1.0 : -1.0;
  std::vector<double> w(static_cast<std::size_t>(d));
  // Back to the units of x: w_normalised.(x/scale) = (w_normalised/scale).x, the scores of the
  // normalised problem.
  for (int j = 0; j < d; ++j) w[static_cast<std::size_t>(j)] = sign * trained->w[j] / scale;
  free_and_destroy_model(&trained);
  return w;
}

// y_i w.x_i for every example. w: [d] in the units of x.
std::vector<double> signed_scores(const TaskData& task, const std::vector<double>& w) {
  const int d = task.dim;
  std::vector<double> scores(static_cast<std::size_t>(task.n()));
  for (std::int64_t i = 0; i < task.n(); ++i) {
    double score = 0;
    for (int j = 0; j < d; ++j) score += w[j] * task.x[static_cast<std::size_t>(i * d + j)];
    scores[static_cast<std::size_t>(i)] = task.y[static_cast<std::size_t>(i)] * score;
  }
  return scores;
}

// The squared-hinge SVM at C = kHardMarginC by working sets: its solution depends only on the
// examples with y_i w.x_i <= 1 (the loss's gradient is zero beyond), about d of them. Solve on a
// working set, add the examples outside it that violate y_i w.x_i >= 1, until none does: then w
// satisfies the full problem's optimality conditions (the examples outside contribute neither
// loss nor gradient), so it is the full problem's solution, at O(N d) per round instead of a
// Newton solve over all N. Starts from the examples closest to the averaging direction's
// hyperplane, the likely support vectors. Deterministic (ties by index).
std::vector<double> hard_margin_weights(const TaskData& task, double scale) {
  const std::int64_t n = task.n();
  const int d = task.dim;
  const auto batch = static_cast<std::size_t>(2 * d + 2);
  if (n <= static_cast<std::int64_t>(4 * batch))
    return liblinear_weights(task, L2R_L2LOSS_SVC, kHardMarginC, scale);
  std::vector<double> average(static_cast<std::size_t>(d), 0.0);
  for (std::int64_t i = 0; i < n; ++i)
    for (int j = 0; j < d; ++j)
      average[j] += task.y[static_cast<std::size_t>(i)] * task.x[static_cast<std::size_t>(i * d + j)];
  std::vector<char> in_set(static_cast<std::size_t>(n), 0);
  std::vector<std::int64_t> working;
  auto add_lowest = [&](const std::vector<double>& scores, double below) {
    std::vector<std::pair<double, std::int64_t>> candidates;
    for (std::int64_t i = 0; i < n; ++i)
      if (!in_set[static_cast<std::size_t>(i)] && scores[static_cast<std::size_t>(i)] < below)
        candidates.push_back({scores[static_cast<std::size_t>(i)], i});
    const std::size_t take = std::min(batch, candidates.size());
    std::partial_sort(candidates.begin(), candidates.begin() + static_cast<std::ptrdiff_t>(take),
                      candidates.end());
    for (std::size_t i = 0; i < take; ++i) {
      in_set[static_cast<std::size_t>(candidates[i].second)] = 1;
      working.push_back(candidates[i].second);
    }
    return take;
  };
  add_lowest(signed_scores(task, average), INFINITY);
  // Both labels in the working set (LIBLINEAR needs them to orient w): the lowest-scored example
  // of each.
  for (const float label : {1.0f, -1.0f}) {
    bool present = false;
    for (auto i : working) present |= task.y[static_cast<std::size_t>(i)] == label;
    std::int64_t lowest = -1;
    const std::vector<double> scores = signed_scores(task, average);
    for (std::int64_t i = 0; i < n && !present; ++i) {
      if (task.y[static_cast<std::size_t>(i)] == label &&
          (lowest < 0 || scores[static_cast<std::size_t>(i)] < scores[static_cast<std::size_t>(lowest)]))
        lowest = i;
    }
    if (!present && lowest >= 0) {
      in_set[static_cast<std::size_t>(lowest)] = 1;
      working.push_back(lowest);
    }
  }
  while (true) {
    std::sort(working.begin(), working.end());  // LIBLINEAR's result must not depend on order
    const std::vector<double> w = liblinear_weights(task, L2R_L2LOSS_SVC, kHardMarginC, scale, working);
    // In the units of x, w.x = w_normalised.(x/scale): the squared hinge's threshold stays 1.
    // The solution's own violations on the working set are O(1/C), so 1e-6 below 1 counts as 1.
    if (add_lowest(signed_scores(task, w), 1 - 1e-6) == 0) return w;
  }
}

// The root-mean-square entry of x; 0 for an all-zero x.
double rms_entry(std::span<const float> x) {
  double sum = 0;
  for (float value : x) sum += static_cast<double>(value) * value;
  return x.empty() ? 0.0 : std::sqrt(sum / static_cast<double>(x.size()));
}

}  // namespace

std::string head_names() {
  std::string names;
  for (const Entry& entry : kEntries) {
    names += (names.empty() ? "" : ", ") + std::string(entry.name);
    if (!entry.parameter.empty()) names += "[:" + std::string(entry.parameter) + "=...]";
  }
  return names;
}

HeadSpec parse_head(std::string_view text) {
  const std::size_t colon = text.find(':');
  const std::string_view name = text.substr(0, colon);
  const Entry* entry = nullptr;
  for (const Entry& candidate : kEntries)
    if (candidate.name == name) entry = &candidate;
  if (entry == nullptr) {
    throw HeadError("unknown head '" + std::string(name) + "'; heads are " + head_names());
  }
  HeadSpec spec;
  spec.kind = entry->kind;
  if (colon != std::string_view::npos) {
    const std::string_view setting = text.substr(colon + 1);
    const std::size_t equals = setting.find('=');
    if (entry->parameter.empty() || equals == std::string_view::npos ||
        setting.substr(0, equals) != entry->parameter) {
      throw HeadError("head '" + std::string(text) + "': " +
                      (entry->parameter.empty()
                           ? std::string(name) + " takes no parameter"
                           : "expected " + std::string(name) + ":" + std::string(entry->parameter) + "=VALUE"));
    }
    const std::string_view value_text = setting.substr(equals + 1);
    // epochs and k are counts, in decimal digits ("3.0" and "1e3" are refused, not rounded);
    // C and lambda are decimal reals.
    const bool integer = entry->parameter == "epochs" || entry->parameter == "k";
    double value = 0;
    if (integer) {
      const std::optional<std::int64_t> count = util::parse_int64(value_text);
      if (!count || *count < 1 || *count > 1'000'000) {
        throw HeadError("head '" + std::string(text) + "': " + std::string(entry->parameter) +
                        " must be an integer in [1, 10^6] written in decimal digits, got '" + std::string(value_text) + "'");
      }
      value = static_cast<double>(*count);
    } else {
      const std::optional<double> real = util::parse_real(value_text);
      if (!real || !std::isfinite(*real)) {
        throw HeadError("head '" + std::string(text) + "': '" + std::string(value_text) + "' is not a finite number");
      }
      if (*real <= 0) throw HeadError("head '" + std::string(text) + "': " + std::string(entry->parameter) + " must be > 0");
      value = *real;
    }
    if (entry->parameter == "C") spec.c = value;
    if (entry->parameter == "lambda") spec.lambda = value;
    if (entry->parameter == "epochs") spec.epochs = static_cast<int>(value);
    if (entry->parameter == "k") spec.k = static_cast<int>(value);
  }
  spec.name = std::string(name);
  // Non-default parameters are part of the name, so two variants can be compared in one run.
  // Regularised classifiers always carry C: "svm" alone would read as the hard-margin SVM.
  if (spec.kind == HeadKind::kLogistic || spec.kind == HeadKind::kSvm) {
    spec.name += ":C=" + util::format_number(spec.c);
  } else if (spec.kind == HeadKind::kRidge && spec.lambda != 1.0) {
    spec.name += ":lambda=" + util::format_number(spec.lambda);
  } else if (spec.kind == HeadKind::kPerceptron && spec.epochs != 100) {
    spec.name += ":epochs=" + std::to_string(spec.epochs);
  } else if (spec.kind == HeadKind::kKnn && spec.k != 5) {
    spec.name += ":k=" + std::to_string(spec.k);
  }
  return spec;
}

std::vector<HeadSpec> parse_heads(std::string_view comma_separated) {
  std::vector<HeadSpec> specs;
  while (!comma_separated.empty()) {
    const std::size_t comma = comma_separated.find(',');
    specs.push_back(parse_head(comma_separated.substr(0, comma)));
    for (std::size_t i = 0; i + 1 < specs.size(); ++i) {
      if (specs[i].name == specs.back().name) throw HeadError("head '" + specs.back().name + "' given twice");
    }
    if (comma == std::string_view::npos) break;
    comma_separated.remove_prefix(comma + 1);
    if (comma_separated.empty()) throw HeadError("trailing ',' in the head list");
  }
  return specs;
}

TrainedHead train(const HeadSpec& spec, const TaskData& task) {
  const std::int64_t n = task.n();
  const int d = task.dim;
  TrainedHead head;
  switch (spec.kind) {
    case HeadKind::kLogistic:
    case HeadKind::kSvm:
    case HeadKind::kSvmHard: {
      const double scale = rms_entry(task.x);
      if (scale == 0 || !std::isfinite(scale) || n == 0) {
        head.w.assign(static_cast<std::size_t>(d), 0.0);
      } else {
        head.w = spec.kind == HeadKind::kSvmHard
                     ? hard_margin_weights(task, scale)
                     : liblinear_weights(task, spec.kind == HeadKind::kLogistic ? L2R_LR : L2R_L2LOSS_SVC,
                                         spec.c, scale);
      }
      if (spec.kind == HeadKind::kSvmHard) {
        double norm = 0;
        for (double value : head.w) norm += value * value;
        norm = std::sqrt(norm);
        std::int64_t wrong = 0;
        double margin = INFINITY;
        for (std::int64_t i = 0; i < n; ++i) {
          double score = 0;
          for (int j = 0; j < d; ++j) score += head.w[j] * task.x[static_cast<std::size_t>(i * d + j)];
          const double signed_score = task.y[static_cast<std::size_t>(i)] * score;
          wrong += signed_score <= 0;
          margin = std::min(margin, norm > 0 ? signed_score / norm : 0.0);
        }
        head.train_error = n > 0 ? static_cast<double>(wrong) / static_cast<double>(n) : 0.0;
        head.margin = margin;
      }
      break;
    }
    case HeadKind::kLeastSquares: {
      const RowMatrix x = as_matrix(task.x, n, d);
      const Eigen::VectorXd w = Eigen::CompleteOrthogonalDecomposition<RowMatrix>(x).solve(as_vector(task.y));
      head.w.assign(w.data(), w.data() + d);
      break;
    }
    case HeadKind::kRidge: {
      // Normalised (heads.hpp), so that lambda weighs |w| against a scale-free loss.
      const double rms = rms_entry(task.x);
      const double scale = rms > 0 && std::isfinite(rms) ? rms : 1.0;
      const RowMatrix x = as_matrix(task.x, n, d) / scale;
      const Eigen::MatrixXd gram = x.transpose() * x + static_cast<double>(n) * spec.lambda *
                                                            Eigen::MatrixXd::Identity(d, d);
      const Eigen::VectorXd w = gram.ldlt().solve(x.transpose() * as_vector(task.y)) / scale;
      head.w.assign(w.data(), w.data() + d);
      break;
    }
    case HeadKind::kPerceptron: {
      head.w.assign(static_cast<std::size_t>(d), 0.0);
      for (int epoch = 0; epoch < spec.epochs; ++epoch) {
        bool mistake = false;
        for (std::int64_t i = 0; i < n; ++i) {
          double score = 0;
          for (int j = 0; j < d; ++j) score += head.w[j] * task.x[static_cast<std::size_t>(i * d + j)];
          const double label = task.y[static_cast<std::size_t>(i)];
          if (label * score <= 0) {
            for (int j = 0; j < d; ++j) head.w[j] += label * task.x[static_cast<std::size_t>(i * d + j)];
            mistake = true;
          }
        }
        if (!mistake) break;
      }
      break;
    }
    case HeadKind::kAveraging: {
      head.w.assign(static_cast<std::size_t>(d), 0.0);
      for (std::int64_t i = 0; i < n; ++i)
        for (int j = 0; j < d; ++j)
          head.w[j] += task.y[static_cast<std::size_t>(i)] * task.x[static_cast<std::size_t>(i * d + j)];
      break;
    }
    case HeadKind::kBayes:
      head.w.assign(task.w_star.begin(), task.w_star.end());
      break;
    case HeadKind::kKnn:
      break;  // keeps no weights: predict() reads the training data
  }
  return head;
}

void predict(const HeadSpec& spec, const TrainedHead& head, const TaskData& task,
             std::span<const float> queries, std::span<float> scores) {
  const int d = task.dim;
  const std::size_t m = scores.size();
  if (spec.kind != HeadKind::kKnn) {
    // The cosine of the angle between w and the query: its sign is that of w.x, and it is
    // invariant to any positive scale of w and of x. The raw w.x rounded to f32 is not: with
    // |x| ~ 1e-25 (so |w| ~ 1e-25 for averaging) it underflows to +-0, with |x| ~ 1e20 it
    // overflows to +-inf (issue 15). Both vectors are first divided by their largest entry, so
    // neither the norms nor the dot product can under- or overflow in double when w and x are
    // finite; a zero w or query scores 0 (counted as +1, as w.x = 0 was).
    const auto make_unit = [](std::vector<double>& v) {
      double top = 0;
      for (const double e : v) top = std::max(top, std::abs(e));
      if (top == 0) return;
      double norm2 = 0;
      for (double& e : v) {
        e /= top;
        norm2 += e * e;
      }
      const double norm = std::sqrt(norm2);
      for (double& e : v) e /= norm;
    };
    std::vector<double> w = head.w, x(static_cast<std::size_t>(d));
    make_unit(w);
    for (std::size_t q = 0; q < m; ++q) {
      for (int j = 0; j < d; ++j) x[static_cast<std::size_t>(j)] = queries[q * d + j];
      make_unit(x);
      double score = 0;
      for (int j = 0; j < d; ++j) score += w[static_cast<std::size_t>(j)] * x[static_cast<std::size_t>(j)];
      scores[q] = static_cast<float>(score);
    }
    return;
  }
  const std::int64_t n = task.n();
  const std::int64_t k = std::min<std::int64_t>(spec.k, n);
  std::vector<std::pair<double, std::int64_t>> distances(static_cast<std::size_t>(n));
  for (std::size_t q = 0; q < m; ++q) {
    for (std::int64_t i = 0; i < n; ++i) {
      double distance = 0;
      for (int j = 0; j < d; ++j) {
        const double diff = queries[q * d + j] - task.x[static_cast<std::size_t>(i * d + j)];
        distance += diff * diff;
      }
      distances[static_cast<std::size_t>(i)] = {distance, i};  // ties broken by index
    }
    std::partial_sort(distances.begin(), distances.begin() + k, distances.end());
    double vote = 0;
    for (std::int64_t i = 0; i < k; ++i) vote += task.y[static_cast<std::size_t>(distances[i].second)];
    scores[q] = static_cast<float>(vote / static_cast<double>(k));
  }
}

}  // namespace iclbench::heads
