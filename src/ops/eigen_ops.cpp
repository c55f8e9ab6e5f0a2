#include "ops/eigen_ops.hpp"

#include <Eigen/Dense>
#include <algorithm>
#include <bit>
#include <cmath>
#include <numbers>

namespace iclbench::ops::reference {
namespace {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Stride = Eigen::OuterStride<>;

float activate(PostActivation activation, float value) {
  switch (activation) {
    case PostActivation::kNone: return value;
    case PostActivation::kRelu: return value > 0 ? value : 0.0f;
    case PostActivation::kGelu: return static_cast<float>(gelu(value, GeluForm::kErf));
    case PostActivation::kGeluTanh: return static_cast<float>(gelu(value, GeluForm::kTanh));
  }
  return value;
}

}  // namespace

double gelu(double x, GeluForm form) {
  if (form == GeluForm::kTanh) {
    // 0.5 x (1 + tanh y) = x / (1 + e^(-2 y)), without the cancellation of 1 + tanh y for
    // negative y.
    const double inner = std::sqrt(2.0 / std::numbers::pi) * (x + 0.044715 * x * x * x);
    return x / (1.0 + std::exp(-2.0 * inner));
  }
  // x Phi(x) with Phi(x) = erfc(-x / sqrt 2) / 2: no cancellation for negative x, where
  // 1 + erf(x / sqrt 2) would lose the small result.
  return 0.5 * x * std::erfc(-x / std::numbers::sqrt2);
}

std::uint16_t bf16_bits(float value) {
  const auto bits = std::bit_cast<std::uint32_t>(value);
  if (std::isnan(value)) return static_cast<std::uint16_t>((bits >> 16) | 0x40);
  const std::uint32_t rounding = 0x7fff + ((bits >> 16) & 1);  // ties to even
  return static_cast<std::uint16_t>((bits + rounding) >> 16);
}

float round_to_bf16(float value) {
  return std::bit_cast<float>(static_cast<std::uint32_t>(bf16_bits(value)) << 16);
}

void linear(const float* src, std::int64_t src_stride, std::span<const float> weights,
            std::span<const float> bias, float* dst, std::int64_t dst_stride, std::int64_t m,
            std::int64_t k, std::int64_t n, PostActivation activation, bool accumulate) {
  const Eigen::Map<const RowMatrix, 0, Stride> a(src, m, k, Stride(src_stride));
  const Eigen::Map<const RowMatrix> w(weights.data(), k, n);
  const Eigen::Map<const Eigen::RowVectorXf> b(bias.data(), n);
  Eigen::Map<RowMatrix, 0, Stride> out(dst, m, n, Stride(dst_stride));
  RowMatrix result = (a * w).rowwise() + b;
  result = result.unaryExpr([&](float value) { return activate(activation, value); });
  if (accumulate) {
    out += result;
  } else {
    out = result;
  }
}

void matmul(View src, View weights, float* dst, std::int64_t batch, std::int64_t m,
            std::int64_t k, std::int64_t n, float scale, bool relu, MatMul::Binary binary,
            const float* mask) {
  for (std::int64_t b = 0; b < batch; ++b) {
    for (std::int64_t i = 0; i < m; ++i) {
      for (std::int64_t j = 0; j < n; ++j) {
        double sum = 0;
        for (std::int64_t l = 0; l < k; ++l) {
          sum += static_cast<double>(src.at(b, i, l)) * weights.at(b, l, j);
        }
        float value = static_cast<float>(scale * sum);
        if (relu) value = std::max(value, 0.0f);
        if (binary == MatMul::Binary::kAdd) value += mask[i * n + j];
        if (binary == MatMul::Binary::kMul) value *= mask[i * n + j];
        dst[(b * m + i) * n + j] = value;
      }
    }
  }
}

void layer_norm(const float* src, float* dst, std::int64_t rows, std::int64_t width,
                std::span<const float> gamma, std::span<const float> beta, float epsilon) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const Eigen::Map<const Eigen::ArrayXf> x(src + r * width, width);
    const double mean = x.cast<double>().mean();
    const double variance = (x.cast<double>() - mean).square().mean();
    const double inverse = 1.0 / std::sqrt(variance + epsilon);
    for (std::int64_t j = 0; j < width; ++j) {
      dst[r * width + j] = static_cast<float>((x[j] - mean) * inverse * gamma[j] + beta[j]);
    }
  }
}

void softmax(const float* src, float* dst, std::int64_t rows, std::int64_t width) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const Eigen::Map<const Eigen::ArrayXf> x(src + r * width, width);
    const Eigen::ArrayXd e = (x.cast<double>() - x.maxCoeff()).exp();
    Eigen::Map<Eigen::ArrayXf>(dst + r * width, width) = (e / e.sum()).cast<float>();
  }
}

void attention(const float* queries, const float* keys, const float* values, float* out,
               const AttentionShape& shape, std::int64_t first_row) {
  const AttentionShape& s = shape;
  using RowMatrixD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  for (std::int64_t h = 0; h < s.heads; ++h) {
    const RowMatrixD k = Eigen::Map<const RowMatrix, 0, Stride>(keys + h * s.qk_dim, s.keys, s.qk_dim, Stride(s.key_stride)).cast<double>();
    const RowMatrixD v = Eigen::Map<const RowMatrix, 0, Stride>(values + h * s.v_dim, s.keys, s.v_dim, Stride(s.value_stride)).cast<double>();
    for (std::int64_t r = 0; r < s.rows; ++r) {
      const std::int64_t visible =
          s.mask == AttentionMask::kIcl ? s.keys : std::min(s.keys, first_row + r + 1);
      const Eigen::VectorXd q =
          Eigen::Map<const Eigen::VectorXf>(queries + r * s.query_stride + h * s.qk_dim, s.qk_dim).cast<double>();
      Eigen::VectorXd weights = static_cast<double>(s.scale) * (k.topRows(visible) * q);
      if (s.mean_over_keys) weights /= static_cast<double>(visible);
      switch (s.weights) {
        case AttentionWeights::kSoftmax:
          weights = (weights.array() - weights.maxCoeff()).exp();
          weights /= weights.sum();
          break;
        case AttentionWeights::kRelu:
          weights = weights.unaryExpr([](double x) { return x < 0 ? 0.0 : x; });
          break;
        case AttentionWeights::kLinear: break;
      }
      const Eigen::VectorXd mixed = v.topRows(visible).transpose() * weights;
      Eigen::Map<Eigen::VectorXf>(out + r * s.out_stride + h * s.v_dim, s.v_dim) = mixed.cast<float>();
    }
  }
}

std::vector<double> linear_attention_product(const float* keys, const float* values,
                                             std::int64_t key_rows,
                                             const LinearAttentionShape& shape) {
  const std::int64_t dk = shape.qk_dim, dv = shape.v_dim;
  std::vector<double> product(static_cast<std::size_t>(shape.heads * dv * dk), 0.0);
  for (std::int64_t h = 0; h < shape.heads; ++h) {
    const float* k = keys + shape.keys.head_column[static_cast<std::size_t>(h)];
    const float* v = values + shape.values.head_column[static_cast<std::size_t>(h)];
    for (std::int64_t b = 0; b < dv; ++b) {
      for (std::int64_t a = 0; a < dk; ++a) {
        double sum = 0;
        for (std::int64_t i = 0; i < key_rows; ++i) {
          sum += static_cast<double>(k[i * shape.keys.row_stride + a]) *
                 static_cast<double>(v[i * shape.values.row_stride + b]);
        }
        product[static_cast<std::size_t>((h * dv + b) * dk + a)] = sum * shape.scale;
      }
    }
  }
  return product;
}

std::vector<double> linear_attention_out(const float* queries, std::int64_t rows,
                                         const std::vector<double>& product,
                                         const LinearAttentionShape& shape) {
  const std::int64_t dk = shape.qk_dim, dv = shape.v_dim;
  std::vector<double> out(static_cast<std::size_t>(rows * shape.heads * dv), 0.0);
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t h = 0; h < shape.heads; ++h) {
      const float* q =
          queries + r * shape.queries.row_stride + shape.queries.head_column[static_cast<std::size_t>(h)];
      for (std::int64_t b = 0; b < dv; ++b) {
        double sum = 0;
        for (std::int64_t a = 0; a < dk; ++a) {
          sum += static_cast<double>(q[a]) * product[static_cast<std::size_t>((h * dv + b) * dk + a)];
        }
        out[static_cast<std::size_t>((r * shape.heads + h) * dv + b)] = sum;
      }
    }
  }
  return out;
}

}  // namespace iclbench::ops::reference
