#pragma once
// Constructed weights: transformers that run an in-context learning algorithm exactly.
//
// Residual stream of width D = d + 4 with slots
//   x = [0, d)   y = d   p = d+1 (current score)   g = d+2 (gradient coefficient)   c = d+3
// Context token i = (x_i, y_i, 0, 0, 1); query token = (x_q, 0, 0, 0, 0). The prediction is
// slot p of the query token, and every construction uses the icl mask.
//
// Spec strings name a construction and its parameters, e.g. "gd-hinge:L=500,eta=1,tau=0.5":
//   gd-ls:L,eta            L steps of GD on (1/2n) sum (w.x_i - y_i)^2 (von Oswald et al. 2023)
//   gd++:L,eta,gamma       as gd-ls, plus x <- x - (gamma/n) sum_i x_i (x_i.x) on every token
//   gd-hinge:L,eta,tau     L steps of GD on the ramp-smoothed hinge loss, derivative
//                          g_i = y_i clamp((1 + tau - y_i p_i)/tau, 0, 1)
//   gd-logistic:L,eta,K,R  L steps of GD on the logistic loss with sigma replaced by its
//                          piecewise-linear interpolant on K equal segments of [-R, R]
//   kernel:beta            one softmax attention: p = sum_i softmax_i(beta x_i.x) y_i
// Parameters left out take the defaults L=1, eta=1, gamma=0, tau=0.5, K=16, R=8, beta=1.
//
// One more recipe builds no algorithm but a standard transformer with random weights, for
// benchmarks: encoder:D,H,F,layers (pre-LN, softmax attention with scale 1/sqrt(D/H), GELU
// MLP, PyTorch's default initialisation from --seed), defaults D=64, H=4, F=256, layers=4. It
// uses the icl mask; with every token in the context (n = T) that is full bidirectional
// attention, as in torch.nn.TransformerEncoderLayer.

#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "util/text.hpp"
#include "model/weights.hpp"

namespace iclbench::model {

enum class ConstructionKind {
  kGdLeastSquares, kGdPlusPlus, kGdHinge, kGdLogistic, kKernel, kEncoder
};

struct ConstructionSpec {
  ConstructionKind kind = ConstructionKind::kGdLeastSquares;
  int steps = 1;       // L
  double eta = 1.0;    // learning rate
  double gamma = 0.0;  // gd++ curvature correction
  double tau = 0.5;    // hinge ramp width
  int segments = 16;   // K
  double range = 8.0;  // R
  double beta = 1.0;   // kernel inverse temperature
  int width = 64;      // encoder D
  int heads = 4;       // encoder H
  int ffn = 256;       // encoder F
  int layers = 4;      // encoder layers
  std::string text;    // canonical spec string
};

class SpecError : public std::invalid_argument {
 public:
  // Escaped as util::ParameterError's: a NUL in user input must not cut what() short.
  explicit SpecError(const std::string& message) : std::invalid_argument(util::escape_control(message)) {}
};

// Parses "name:key=value,..."; throws SpecError naming the bad part.
ConstructionSpec parse_construction(std::string_view text);
std::string construction_names();

// The config of the model for inputs of dimension d (ignored by `encoder`), without its weights:
// enough to size a run. Throws util::ParameterError ("d") for d outside [1, 65536].
ModelConfig construction_config(const ConstructionSpec& spec, int input_dim);
// The model for inputs of dimension d (ignored by `encoder`, whose weights come from `seed`).
Model construct(const ConstructionSpec& spec, int input_dim, std::uint64_t seed = 0);
bool is_constructed_learner(const ConstructionSpec& spec);  // false for `encoder`

// Slots of the constructed residual stream.
struct Slots {
  int d;
  int y() const { return d; }
  int p() const { return d + 1; }
  int g() const { return d + 2; }
  int c() const { return d + 3; }
  int width() const { return d + 4; }
};

// Tokens of one prompt in the constructed layout: [n + m, d + 4].
//   x: [n, d]  y: [n]  x_query: [m, d]
std::vector<float> icl_tokens(std::span<const float> x, std::span<const float> y,
                              std::span<const float> x_query, int d);

// The piecewise-linear interpolant of the logistic sigma(z) = 1/(1+e^-z) on K equal segments of
// [-R, R], constant outside: knots at -R + 2Rk/K. Its error on [-R, R] is at most
// max|sigma''| h^2/8 = 0.048 R^2/K^2 (h = 2R/K, max|sigma''| = 1/(6 sqrt 3)).
double pl_sigmoid(double z, int segments, double range);

}  // namespace iclbench::model
