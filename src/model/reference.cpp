#include "model/reference.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <stdexcept>

namespace iclbench::model {
namespace {

using VectorD = Eigen::VectorXd;

// W is stored row-major [rows, cols] as float.
MatrixD as_matrix(const std::vector<float>& values, Eigen::Index rows, Eigen::Index cols) {
  MatrixD matrix(rows, cols);
  for (Eigen::Index r = 0; r < rows; ++r)
    for (Eigen::Index c = 0; c < cols; ++c) matrix(r, c) = values[r * cols + c];
  return matrix;
}

Eigen::RowVectorXd as_row(const std::vector<float>& values) {
  Eigen::RowVectorXd row(static_cast<Eigen::Index>(values.size()));
  for (std::size_t i = 0; i < values.size(); ++i) row[static_cast<Eigen::Index>(i)] = values[i];
  return row;
}

MatrixD layer_norm(const MatrixD& x, const std::vector<float>& gamma,
                   const std::vector<float>& beta, double epsilon) {
  MatrixD out(x.rows(), x.cols());
  for (Eigen::Index t = 0; t < x.rows(); ++t) {
    const double mean = x.row(t).mean();
    const double variance = (x.row(t).array() - mean).square().mean();
    for (Eigen::Index j = 0; j < x.cols(); ++j) {
      out(t, j) = (x(t, j) - mean) / std::sqrt(variance + epsilon) * gamma[j] + beta[j];
    }
  }
  return out;
}

double activate(Activation activation, double value) {
  switch (activation) {
    case Activation::kNone: return value;
    case Activation::kRelu: return value > 0 ? value : 0.0;
    case Activation::kGelu: return 0.5 * value * (1.0 + std::erf(value / std::sqrt(2.0)));
    case Activation::kGeluTanh: {
      const double inner =
          std::sqrt(2.0 / std::numbers::pi) * (value + 0.044715 * value * value * value);
      return 0.5 * value * (1.0 + std::tanh(inner));
    }
  }
  return value;
}

// Which keys token t sees.
std::int64_t visible_keys(Mask mask, std::int64_t t, std::int64_t n_context) {
  return mask == Mask::kIcl ? n_context : t + 1;
}

MatrixD attention(const LayerConfig& layer, const LayerWeights& w, const MatrixD& h,
                  std::int64_t n_context) {
  const Eigen::Index tokens = h.rows(), width = h.cols();
  const int heads = layer.heads, dk = layer.qk_dim, dv = layer.v_dim;
  const MatrixD q = (h * as_matrix(w.wq, width, heads * dk)).rowwise() + as_row(w.bq);
  const MatrixD k = (h * as_matrix(w.wk, width, heads * dk)).rowwise() + as_row(w.bk);
  const MatrixD v = (h * as_matrix(w.wv, width, heads * dv)).rowwise() + as_row(w.bv);
  MatrixD out = MatrixD::Zero(tokens, heads * dv);
  for (int head = 0; head < heads; ++head) {
    for (Eigen::Index t = 0; t < tokens; ++t) {
      const std::int64_t keys = visible_keys(layer.mask, t, n_context);
      VectorD weights(keys);
      for (std::int64_t key = 0; key < keys; ++key) {
        weights[key] = layer.scale * q.row(t).segment(head * dk, dk).dot(
                                         k.row(key).segment(head * dk, dk));
      }
      if (layer.mean_over_keys) weights /= static_cast<double>(keys);
      if (layer.attention == AttentionKind::kSoftmax) {
        weights = (weights.array() - weights.maxCoeff()).exp();
        weights /= weights.sum();
      } else if (layer.attention == AttentionKind::kRelu) {
        weights = weights.cwiseMax(0.0);
      }
      for (std::int64_t key = 0; key < keys; ++key) {
        out.row(t).segment(head * dv, dv) += weights[key] * v.row(key).segment(head * dv, dv);
      }
    }
  }
  return (out * as_matrix(w.wo, heads * dv, width)).rowwise() + as_row(w.bo);
}

MatrixD mlp(const LayerConfig& layer, const LayerWeights& w, const MatrixD& h) {
  const Eigen::Index width = h.cols();
  MatrixD hidden = (h * as_matrix(w.w1, width, layer.mlp_hidden)).rowwise() + as_row(w.b1);
  hidden = hidden.unaryExpr([&](double value) { return activate(layer.activation, value); });
  return (hidden * as_matrix(w.w2, layer.mlp_hidden, width)).rowwise() + as_row(w.b2);
}

double ramp_hinge_derivative(double y, double score, double tau) {
  return y * std::clamp((1.0 + tau - y * score) / tau, 0.0, 1.0);
}

}  // namespace

std::uint64_t reference_working_bytes(const ModelConfig& config, std::int64_t tokens) {
  // Doubles per token live at once, and the largest weight matrix, over the layers.
  std::int64_t per_token = config.width;  // x (read_in: its product as well, below)
  std::int64_t largest_matrix = config.read_in ? std::int64_t{config.input_dim} * config.width : 0;
  if (config.read_in) per_token = std::max<std::int64_t>(per_token, 2 * config.width);
  for (const LayerConfig& layer : config.layers) {
    const std::int64_t qk = std::int64_t{layer.heads} * layer.qk_dim, v = std::int64_t{layer.heads} * layer.v_dim;
    // x, h and the block's result; attention adds Q, K, V, the heads' mix, the product before its
    // bias is added (Eigen evaluates `h * W` into a temporary: one of Q, K, V's size) and the
    // output projection's; the MLP its hidden layer, that layer's product and the output's.
    const std::int64_t attention = layer.has_attention() ? 2 * qk + 2 * v + std::max(qk, v) + config.width : 0;
    const std::int64_t mlp = layer.has_mlp() ? 2 * std::int64_t{layer.mlp_hidden} + config.width : 0;
    per_token = std::max(per_token, 3 * std::int64_t{config.width} + std::max(attention, mlp));
    largest_matrix = std::max({largest_matrix, config.width * std::max(qk, v), v * config.width,
                               std::int64_t{config.width} * layer.mlp_hidden});
  }
  if (config.positions > 0) largest_matrix = std::max(largest_matrix, std::int64_t{config.positions} * config.width);
  // The attention's per-token key weights: one vector of at most T at a time.
  return static_cast<std::uint64_t>(tokens * per_token + largest_matrix + tokens) * sizeof(double);
}

MatrixD reference_forward(const ModelConfig& config, const Weights& weights,
                          const MatrixD& tokens, std::int64_t n_context) {
  MatrixD x = tokens;
  if (config.read_in) {
    x = (tokens * as_matrix(weights.read_in_w, config.input_dim, config.width)).rowwise() +
        as_row(weights.read_in_b);
  }
  if (config.positions > 0) {
    if (x.rows() > config.positions) throw std::invalid_argument("reference: too many tokens");
    x += as_matrix(weights.positions, config.positions, config.width).topRows(x.rows());
  }
  for (std::size_t i = 0; i < config.layers.size(); ++i) {
    const LayerConfig& layer = config.layers[i];
    const LayerWeights& w = weights.layers[i];
    for (int repeat = 0; repeat < layer.loop; ++repeat) {
      if (layer.has_attention()) {
        const MatrixD h = layer.attention_norm ? layer_norm(x, w.attention_norm_gamma,
                                                            w.attention_norm_beta,
                                                            layer.norm_epsilon)
                                               : x;
        x += attention(layer, w, h, n_context);
      }
      if (layer.has_mlp()) {
        const MatrixD h =
            layer.mlp_norm ? layer_norm(x, w.mlp_norm_gamma, w.mlp_norm_beta, layer.norm_epsilon)
                           : x;
        x += mlp(layer, w, h);
      }
    }
  }
  return x;
}

Eigen::VectorXd reference_scores(const ModelConfig& config, const Weights& weights,
                                 const MatrixD& tokens, std::int64_t n_context) {
  const MatrixD x = reference_forward(config, weights, tokens, n_context);
  if (!config.read_out) return x.col(config.readout);
  const MatrixD h = layer_norm(x, weights.read_out_norm_gamma, weights.read_out_norm_beta,
                               config.read_out_norm_epsilon);
  return (h * as_matrix(weights.read_out_w, config.width, 1)).col(0).array() +
         static_cast<double>(weights.read_out_b[0]);
}

Eigen::VectorXd gd_least_squares_scores(const MatrixD& x, const Eigen::VectorXd& y,
                                        const MatrixD& queries, int steps, double eta) {
  const double n = static_cast<double>(x.rows());
  VectorD w = VectorD::Zero(x.cols());
  for (int step = 0; step < steps; ++step) {
    const VectorD residual = y - x * w;
    w += eta / n * (x.transpose() * residual);
  }
  return queries * w;
}

Eigen::VectorXd gd_plus_plus_scores(const MatrixD& x, const Eigen::VectorXd& y,
                                    const MatrixD& queries, int steps, double eta, double gamma) {
  const double n = static_cast<double>(x.rows());
  const Eigen::Index d = x.cols();
  const MatrixD second_moment = x.transpose() * x / n;
  MatrixD transform = MatrixD::Identity(d, d);  // M_l: tokens are M_l x after l layers
  VectorD u = VectorD::Zero(d);
  for (int step = 0; step < steps; ++step) {
    const VectorD residual = y - x * u;
    const MatrixD preconditioner = transform.transpose() * transform;
    u += eta / n * (preconditioner * (x.transpose() * residual));
    transform = (MatrixD::Identity(d, d) -
                 gamma * transform * second_moment * transform.transpose()) *
                transform;
  }
  return queries * u;
}

Eigen::VectorXd gd_hinge_scores(const MatrixD& x, const Eigen::VectorXd& y,
                                const MatrixD& queries, int steps, double eta, double tau) {
  const double n = static_cast<double>(x.rows());
  VectorD w = VectorD::Zero(x.cols());
  for (int step = 0; step < steps; ++step) {
    const VectorD scores = x * w;
    VectorD g(x.rows());
    for (Eigen::Index i = 0; i < x.rows(); ++i) g[i] = ramp_hinge_derivative(y[i], scores[i], tau);
    w += eta / n * (x.transpose() * g);
  }
  return queries * w;
}

Eigen::VectorXd gd_logistic_scores(const MatrixD& x, const Eigen::VectorXd& y,
                                   const MatrixD& queries, int steps, double eta, int segments,
                                   double range) {
  const double n = static_cast<double>(x.rows());
  VectorD w = VectorD::Zero(x.cols());
  for (int step = 0; step < steps; ++step) {
    const VectorD scores = x * w;
    VectorD g(x.rows());
    // y sigma(-y p) with sigma replaced by its interpolant (symmetric: psi(-z) = 1 - psi(z)).
    for (Eigen::Index i = 0; i < x.rows(); ++i) {
      g[i] = y[i] * pl_sigmoid(-y[i] * scores[i], segments, range);
    }
    w += eta / n * (x.transpose() * g);
  }
  return queries * w;
}

Eigen::VectorXd nadaraya_watson_scores(const MatrixD& x, const Eigen::VectorXd& y,
                                       const MatrixD& queries, double beta) {
  VectorD scores(queries.rows());
  for (Eigen::Index q = 0; q < queries.rows(); ++q) {
    VectorD logits = beta * (x * queries.row(q).transpose());
    logits = (logits.array() - logits.maxCoeff()).exp();
    scores[q] = logits.dot(y) / logits.sum();
  }
  return scores;
}

Eigen::VectorXd construction_scores(const ConstructionSpec& spec, const MatrixD& x,
                                    const Eigen::VectorXd& y, const MatrixD& queries) {
  switch (spec.kind) {
    case ConstructionKind::kGdLeastSquares:
      return gd_least_squares_scores(x, y, queries, spec.steps, spec.eta);
    case ConstructionKind::kGdPlusPlus:
      return gd_plus_plus_scores(x, y, queries, spec.steps, spec.eta, spec.gamma);
    case ConstructionKind::kGdHinge:
      return gd_hinge_scores(x, y, queries, spec.steps, spec.eta, spec.tau);
    case ConstructionKind::kGdLogistic:
      return gd_logistic_scores(x, y, queries, spec.steps, spec.eta, spec.segments, spec.range);
    case ConstructionKind::kKernel:
      return nadaraya_watson_scores(x, y, queries, spec.beta);
    case ConstructionKind::kEncoder:
      break;
  }
  throw std::invalid_argument("construction_scores: " + spec.text + " runs no algorithm");
}

}  // namespace iclbench::model
