#pragma once
// The slow twins: a plain Eigen forward pass (double precision, explicit score matrices, masks
// as loops) and the in-context learning algorithms the constructions claim to run, computed
// directly in weight space. Tests hold the oneDNN engine and the constructions against these.
//
// Shapes: T tokens (n context first), D width, d input dimension, m queries.

#include <Eigen/Dense>
#include <cstdint>
#include <span>

#include "model/constructions.hpp"
#include "model/weights.hpp"

namespace iclbench::model {

using MatrixD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// tokens: [T, D] ([T, d] with read_in) -> residual stream after the last layer, [T, D].
MatrixD reference_forward(const ModelConfig& config, const Weights& weights,
                          const MatrixD& tokens, std::int64_t n_context);
// Peak bytes reference_forward() allocates for one prompt of T tokens, beyond `tokens` and the
// weights: the residual stream x and its normed copy h, Q, K, V and the heads' mix, the block's
// output before it is added, the MLP's hidden layer, Eigen's temporaries of the products (all
// [T, ·] doubles), and the double copy of the largest weight matrix an expression converts.
// Used by `speed --reference`; checked against the measured peak in cli_test.
std::uint64_t reference_working_bytes(const ModelConfig& config, std::int64_t tokens);
// tokens as above -> every token's score (slot `readout`, or the read_out), [T].
Eigen::VectorXd reference_scores(const ModelConfig& config, const Weights& weights,
                                 const MatrixD& tokens, std::int64_t n_context);

// Direct algorithms on one task: context x [n, d], labels y [n], queries [m, d] -> the query
// scores after the algorithm's last step, [m].
Eigen::VectorXd gd_least_squares_scores(const MatrixD& x, const Eigen::VectorXd& y,
                                        const MatrixD& queries, int steps, double eta);
// Preconditioned GD: u += eta P_l (1/n) sum_i r_i x_i with P_l = M_l^T M_l and
// M_{l+1} = (I - gamma M_l S M_l^T) M_l, S the context's second-moment matrix.
Eigen::VectorXd gd_plus_plus_scores(const MatrixD& x, const Eigen::VectorXd& y,
                                    const MatrixD& queries, int steps, double eta, double gamma);
Eigen::VectorXd gd_hinge_scores(const MatrixD& x, const Eigen::VectorXd& y,
                                const MatrixD& queries, int steps, double eta, double tau);
Eigen::VectorXd gd_logistic_scores(const MatrixD& x, const Eigen::VectorXd& y,
                                   const MatrixD& queries, int steps, double eta, int segments,
                                   double range);
Eigen::VectorXd nadaraya_watson_scores(const MatrixD& x, const Eigen::VectorXd& y,
                                       const MatrixD& queries, double beta);

// The scores the construction `spec` should produce, by the matching direct algorithm.
Eigen::VectorXd construction_scores(const ConstructionSpec& spec, const MatrixD& x,
                                    const Eigen::VectorXd& y, const MatrixD& queries);

}  // namespace iclbench::model
