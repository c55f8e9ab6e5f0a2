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

// svm-hard's fallback on data that is not separable (hard_margin_weights): the squared-hinge SVM
// at C = kHardMarginC by working sets. Its solution depends only on the
// examples with y_i w.x_i <= 1 (the loss's gradient is zero beyond), about d of them. Solve on a
// working set, add the examples outside it that violate y_i w.x_i >= 1, until none does: then w
// satisfies the full problem's optimality conditions (the examples outside contribute neither
// loss nor gradient), so it is the full problem's solution, at O(N d) per round instead of a
// Newton solve over all N. Starts from the examples closest to the averaging direction's
// hyperplane, the likely support vectors. Deterministic (ties by index).
std::vector<double> squared_hinge_weights(const TaskData& task, double scale) {
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

// The hard-margin SVM. Homogeneous (no bias), so with z_i = y_i x_i (x / scale) it is the least
// distance problem min |w| subject to Z w >= 1, which Lawson & Hanson ("Solving Least Squares
// Problems", 1974, ch. 23) reduce to the non-negative least squares problem
//   min |E u - f|, u >= 0,   E = [Z^T; 1^T] ([d+1, N]),  f = e_{d+1}:
// with r = E u - f at the optimum, either r = 0 (Z w >= 1 is infeasible: not separable) or
// w = -r[:d] / r[d] = Z^T u / (1 - sum u), i.e. w = sum_i alpha_i z_i with alpha = u / |r|^2 >= 0
// (r[d] = -|r|^2 at the optimum). NNLS is solved by their active-set algorithm, exact in finitely
// many steps: the passive set P (u_P > 0) holds linearly independent columns of E, and
// -E_j.r = |r|^2 (1 - z_j.w) once E_P^T r = 0, so the column it adds is the most violated
// constraint and it stops when none is violated by more than kViolationTolerance. The columns
// (z_i, 1) stay independent even when the z_i of P are not (the dual Gram matrix Z Z^T has rank
// <= d, so an active-set method on the dual itself would meet singular blocks).
//
// Tolerance: at the end every z_j.w >= 1 - tau and w = sum_P alpha_i z_i with alpha >= 0 and
// z_i.w = 1 on P. Those KKT conditions to within tau bound |w| between (1 - tau) and (1 + tau)
// times the exact minimum and the direction to a cosine >= 1 - 2 tau (tests/heads_test.cpp
// derives both). tau = 1e-9 is far above the rounding of z_j.w in double (the support vectors
// have z.w = 1 while |z| |w| = |z| / margin, ~1e4 at N = 4096 for Gaussian x: ~d eps 1e4 ~ 1e-10
// at d = 32 at worst) and far below any margin difference that matters.
constexpr double kViolationTolerance = 1e-9;
// |r| = 1 / sqrt(1 + |w|^2): a margin 1 / |w| below 1e-12 (in units of the RMS entry, far below
// float32's resolution of x) cannot be told from r = 0; such a task is treated as not separable.
constexpr double kSeparableResidual = 1e-12;

enum class LdpStatus { kSolved, kNotSeparable, kStalled };

// Lawson-Hanson NNLS over the columns `working` of E (example indices), warm-started from
// `u` (one entry per column, >= 0, u_P the least squares solution on its support; zeros for
// columns just added). z: [N, d]. On kSolved, `u` is optimal on `working`.
LdpStatus lawson_hanson(const RowMatrix& z, const std::vector<std::int64_t>& working, std::vector<double>& u) {
  const Eigen::Index d = z.cols();
  const auto m = static_cast<std::ptrdiff_t>(working.size());
  const auto column = [&](std::ptrdiff_t k) {
    Eigen::VectorXd e(d + 1);
    e.head(d) = z.row(working[static_cast<std::size_t>(k)]).transpose();
    e[d] = 1;
    return e;
  };
  Eigen::VectorXd f = Eigen::VectorXd::Zero(d + 1);
  f[d] = 1;
  std::vector<char> passive(static_cast<std::size_t>(m));
  for (std::ptrdiff_t k = 0; k < m; ++k) passive[static_cast<std::size_t>(k)] = u[static_cast<std::size_t>(k)] > 0;
  // Least squares on the passive columns; `support` lists them in column order.
  std::vector<std::ptrdiff_t> support;
  const auto solve_passive = [&]() {
    support.clear();
    for (std::ptrdiff_t k = 0; k < m; ++k)
      if (passive[static_cast<std::size_t>(k)]) support.push_back(k);
    Eigen::MatrixXd columns(d + 1, static_cast<Eigen::Index>(support.size()));
    for (std::size_t i = 0; i < support.size(); ++i) columns.col(static_cast<Eigen::Index>(i)) = column(support[i]);
    return Eigen::VectorXd(columns.colPivHouseholderQr().solve(f));
  };
  // Column k of E is (z_k, 1): r and E_k.r read z's row in place (no column built per term,
  // these run over the whole working set every step).
  const auto residual = [&]() {
    Eigen::VectorXd r = -f;
    for (std::ptrdiff_t k = 0; k < m; ++k) {
      const double weight = u[static_cast<std::size_t>(k)];
      if (weight > 0) {
        r.head(d) += weight * z.row(working[static_cast<std::size_t>(k)]).transpose();
        r[d] += weight;
      }
    }
    return r;
  };
  // Each outer step adds one column (a drop removes at least one). Their termination proof is for
  // exact arithmetic, so the steps are capped at 3 (m + d + 1), three times the number of
  // unknowns as in Lawson and Hanson's own code.
  std::vector<char> refused(static_cast<std::size_t>(m), 0);
  for (std::ptrdiff_t step = 0; step < 3 * (m + d + 1); ++step) {
    const Eigen::VectorXd r = residual();
    const double r2 = r.squaredNorm();
    if (r2 <= kSeparableResidual * kSeparableResidual) return LdpStatus::kNotSeparable;
    // The most violated constraint: -E_j.r = |r|^2 (1 - z_j.w); ties go to the first column.
    std::ptrdiff_t best = -1;
    double best_gradient = kViolationTolerance * r2;
    for (std::ptrdiff_t k = 0; k < m; ++k) {
      if (passive[static_cast<std::size_t>(k)] || refused[static_cast<std::size_t>(k)]) continue;
      const double gradient = -(z.row(working[static_cast<std::size_t>(k)]).dot(r.head(d)) + r[d]);
      if (gradient > best_gradient) {
        best_gradient = gradient;
        best = k;
      }
    }
    if (best < 0) return LdpStatus::kSolved;
    passive[static_cast<std::size_t>(best)] = 1;
    Eigen::VectorXd s = solve_passive();
    const auto position = static_cast<Eigen::Index>(std::find(support.begin(), support.end(), best) - support.begin());
    if (!(s[position] > 0)) {
      // Rounding made the new column look useful when it is not (Lawson and Hanson's safeguard):
      // leave u as it is and skip the column until u changes.
      passive[static_cast<std::size_t>(best)] = 0;
      refused[static_cast<std::size_t>(best)] = 1;
      continue;
    }
    std::fill(refused.begin(), refused.end(), 0);
    // Move from u towards s until the first passive coordinate reaches 0, drop it (and any other
    // that rounding took to <= 0), re-solve on the smaller set.
    while (true) {
      double step_length = 1;
      std::size_t blocking = support.size();
      for (std::size_t i = 0; i < support.size(); ++i) {
        const double from = u[static_cast<std::size_t>(support[i])], to = s[static_cast<Eigen::Index>(i)];
        if (to <= 0 && from / (from - to) < step_length) {
          step_length = from / (from - to);
          blocking = i;
        }
      }
      for (std::size_t i = 0; i < support.size(); ++i) {
        double& value = u[static_cast<std::size_t>(support[i])];
        value = i == blocking ? 0.0 : value + step_length * (s[static_cast<Eigen::Index>(i)] - value);
        if (value <= 0) {
          value = 0;
          passive[static_cast<std::size_t>(support[i])] = 0;
        }
      }
      if (blocking == support.size()) break;
      s = solve_passive();
    }
  }
  return LdpStatus::kStalled;
}

// The hard-margin SVM by working sets: its solution depends only on the support vectors, about
// d of them. Solve on a working set, add the examples outside it that violate z_j.w >= 1 (by
// more than kViolationTolerance, the batch most violated first) until none does: then w meets the
// full problem's KKT conditions (examples outside are feasible and carry alpha = 0), at O(N d) per
// round instead of an active-set solve over all N. Starts from the examples closest to the
// averaging direction's hyperplane, the likely support vectors; the NNLS is warm-started from the
// previous round's u. Deterministic (ties by index). nullopt if the examples are not separable by
// a homogeneous hyperplane (or the solve stalls in rounding).
std::optional<std::vector<double>> max_margin_weights(const TaskData& task, double scale) {
  const std::int64_t n = task.n();
  const int d = task.dim;
  RowMatrix z(n, d);  // z_i = y_i x_i / scale: [N, d]
  for (std::int64_t i = 0; i < n; ++i)
    for (int j = 0; j < d; ++j)
      z(i, j) = task.y[static_cast<std::size_t>(i)] * (task.x[static_cast<std::size_t>(i * d + j)] / scale);
  const auto batch = static_cast<std::size_t>(2 * d + 2);
  std::vector<char> in_set(static_cast<std::size_t>(n), 0);
  std::vector<std::int64_t> working;
  std::vector<double> u;
  auto add_lowest = [&](const Eigen::VectorXd& scores, double below, std::size_t limit) {
    std::vector<std::pair<double, std::int64_t>> candidates;
    for (std::int64_t i = 0; i < n; ++i)
      if (!in_set[static_cast<std::size_t>(i)] && scores[i] < below) candidates.push_back({scores[i], i});
    const std::size_t take = std::min(limit, candidates.size());
    std::partial_sort(candidates.begin(), candidates.begin() + static_cast<std::ptrdiff_t>(take), candidates.end());
    for (std::size_t i = 0; i < take; ++i) {
      in_set[static_cast<std::size_t>(candidates[i].second)] = 1;
      working.push_back(candidates[i].second);
      u.push_back(0.0);
    }
    return take;
  };
  const Eigen::VectorXd average = z.colwise().sum().transpose();
  add_lowest(z * average, INFINITY, n <= static_cast<std::int64_t>(4 * batch) ? static_cast<std::size_t>(n) : batch);
  while (true) {
    if (lawson_hanson(z, working, u) != LdpStatus::kSolved) return std::nullopt;
    // The final w from the support alone: the minimum-norm solution of z_i.w = 1 on P. Exact
    // arithmetic gives the same w as -r[:d]/r[d], but this one's rounding does not grow as
    // |r| (~ the margin) shrinks.
    std::vector<std::int64_t> support;
    for (std::size_t k = 0; k < working.size(); ++k)
      if (u[k] > 0) support.push_back(working[k]);
    RowMatrix z_support(static_cast<Eigen::Index>(support.size()), d);
    for (std::size_t i = 0; i < support.size(); ++i) z_support.row(static_cast<Eigen::Index>(i)) = z.row(support[i]);
    const Eigen::VectorXd w_normalised =
        z_support.completeOrthogonalDecomposition().solve(Eigen::VectorXd::Ones(z_support.rows()));
    if (add_lowest(z * w_normalised, 1 - kViolationTolerance, batch) == 0) {
      // Back to the units of x: w_normalised.(x/scale) = (w_normalised/scale).x.
      std::vector<double> w(static_cast<std::size_t>(d));
      for (int j = 0; j < d; ++j) w[static_cast<std::size_t>(j)] = w_normalised[j] / scale;
      return w;
    }
  }
}

// svm-hard: the exact hard-margin solution where the examples are separable, else the
// squared-hinge fallback (heads.hpp).
std::vector<double> hard_margin_weights(const TaskData& task, double scale) {
  if (std::optional<std::vector<double>> w = max_margin_weights(task, scale)) return *std::move(w);
  return squared_hinge_weights(task, scale);
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
