#include "heads/heads.hpp"

#include <linear.h>

#include <Eigen/Dense>
#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <numeric>

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

// LIBLINEAR on dense data: feature_node arrays (1-based indices, -1 terminated) per example.
std::vector<double> liblinear_weights(const TaskData& task, int solver, double c) {
  static const bool quiet = [] {
    set_print_string_function(&silent);
    return true;
  }();
  (void)quiet;
  const std::int64_t n = task.n();
  const int d = task.dim;
  std::vector<feature_node> nodes(static_cast<std::size_t>(n * (d + 1)));
  std::vector<feature_node*> rows(static_cast<std::size_t>(n));
  std::vector<double> labels(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    feature_node* row = nodes.data() + i * (d + 1);
    for (int j = 0; j < d; ++j) row[j] = {j + 1, task.x[static_cast<std::size_t>(i * d + j)]};
    row[d] = {-1, 0.0};
    rows[static_cast<std::size_t>(i)] = row;
    labels[static_cast<std::size_t>(i)] = task.y[static_cast<std::size_t>(i)];
  }
  problem prob{};
  prob.l = static_cast<int>(n);
  prob.n = d;
  prob.y = labels.data();
  prob.x = rows.data();
  prob.bias = -1;  // homogeneous: no bias feature
  parameter param{};
  param.solver_type = solver;
  param.eps = 1e-6;  // relative gradient norm: tight enough to compare against a Newton solve
  param.C = c;
  param.p = 0.1;
  if (const char* problem_text = check_parameter(&prob, &param)) {
    throw HeadError(std::string("LIBLINEAR: ") + problem_text);
  }
  model* trained = train(&prob, &param);
  // LIBLINEAR's w scores the first label it saw as positive.
  const double sign = trained->label[0] == 1 ? 1.0 : -1.0;
  std::vector<double> w(static_cast<std::size_t>(d));
  for (int j = 0; j < d; ++j) w[static_cast<std::size_t>(j)] = sign * trained->w[j];
  free_and_destroy_model(&trained);
  return w;
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
    double value = 0;
    const auto [end, error] =
        std::from_chars(value_text.data(), value_text.data() + value_text.size(), value);
    if (error != std::errc() || end != value_text.data() + value_text.size() || !std::isfinite(value)) {
      throw HeadError("head '" + std::string(text) + "': '" + std::string(value_text) +
                      "' is not a finite number");
    }
    const bool integer = entry->parameter == "epochs" || entry->parameter == "k";
    if (value <= 0 || (integer && (value != std::floor(value) || value > 1e6))) {
      throw HeadError("head '" + std::string(text) + "': " + std::string(entry->parameter) +
                      " must be " + (integer ? "a positive integer" : "> 0"));
    }
    if (entry->parameter == "C") spec.c = value;
    if (entry->parameter == "lambda") spec.lambda = value;
    if (entry->parameter == "epochs") spec.epochs = static_cast<int>(value);
    if (entry->parameter == "k") spec.k = static_cast<int>(value);
  }
  spec.name = std::string(name);
  // Non-default parameters are part of the name, so two variants can be compared in one run.
  if (spec.kind == HeadKind::kLogistic || spec.kind == HeadKind::kSvm) {
    if (spec.c != 1.0) spec.name += ":C=" + util::format_number(spec.c);
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
      head.w = liblinear_weights(task, L2R_LR, spec.c);
      break;
    case HeadKind::kSvm:
      head.w = liblinear_weights(task, L2R_L2LOSS_SVC, spec.c);
      break;
    case HeadKind::kLeastSquares: {
      const RowMatrix x = as_matrix(task.x, n, d);
      const Eigen::VectorXd w = Eigen::CompleteOrthogonalDecomposition<RowMatrix>(x).solve(as_vector(task.y));
      head.w.assign(w.data(), w.data() + d);
      break;
    }
    case HeadKind::kRidge: {
      const RowMatrix x = as_matrix(task.x, n, d);
      const Eigen::MatrixXd gram = x.transpose() * x + static_cast<double>(n) * spec.lambda *
                                                            Eigen::MatrixXd::Identity(d, d);
      const Eigen::VectorXd w = gram.ldlt().solve(x.transpose() * as_vector(task.y));
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
    for (std::size_t q = 0; q < m; ++q) {
      double score = 0;
      for (int j = 0; j < d; ++j) score += head.w[j] * queries[q * d + j];
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
