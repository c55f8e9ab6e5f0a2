#pragma once
// The slow twins of ops/dnnl_ops.hpp: plain Eigen (or loop) versions of every op, used by the
// tests as the independent path and by the benchmarks as the baseline. Same layouts as the fast
// ops: row-major with explicit row strides; f32 in, f32 out; bf16 emulated by rounding.

#include <cstdint>
#include <span>
#include <vector>

#include "ops/attention.hpp"
#include "ops/dnnl_ops.hpp"
#include "ops/gelu.hpp"
#include "ops/linear_attention.hpp"

namespace iclbench::ops::reference {

// Round to nearest even at bf16 precision (8 significant bits), returned as f32.
float round_to_bf16(float value);
std::uint16_t bf16_bits(float value);

// GELU in double, the slow twin of ops/gelu.hpp: the erf form as 0.5 x erfc(-x / sqrt 2), the
// tanh form as x / (1 + e^(-2 y)) (both free of cancellation for negative x).
double gelu(double x, GeluForm form);

// dst[M, N] (+)= act(src[M, K] W[K, N] + bias[N]); strides in elements.
void linear(const float* src, std::int64_t src_stride, std::span<const float> weights,
            std::span<const float> bias, float* dst, std::int64_t dst_stride, std::int64_t m,
            std::int64_t k, std::int64_t n, PostActivation activation, bool accumulate);

// dst[b] = binary(relu?(scale * src[b] x weights[b]), mask) for a batch of strided matrices:
// element (b, i, j) of a tensor with strides s sits at base[b s0 + i s1 + j s2].
struct View {
  const float* base;
  std::int64_t batch_stride, row_stride, col_stride;
  float at(std::int64_t b, std::int64_t i, std::int64_t j) const {
    return base[b * batch_stride + i * row_stride + j * col_stride];
  }
};
void matmul(View src, View weights, float* dst, std::int64_t batch, std::int64_t m,
            std::int64_t k, std::int64_t n, float scale, bool relu, MatMul::Binary binary,
            const float* mask /* [m, n], shared by the batch */);

void layer_norm(const float* src, float* dst, std::int64_t rows, std::int64_t width,
                std::span<const float> gamma, std::span<const float> beta, float epsilon);

void softmax(const float* src, float* dst, std::int64_t rows, std::int64_t width);

// The slow twin of FusedAttention: the definition in ops/attention.hpp computed in double, one
// head and query row at a time over its visible keys only (scores, then the exact softmax, then
// the weighted sum of values). Same strided rows as the op; f32 operands (bf16 ones passed as
// their f32 values), f32 output; shape.dtype is not read.
void attention(const float* queries, const float* keys, const float* values, float* out,
               const AttentionShape& shape, std::int64_t first_row);

// The slow twins of LinearAttention, in double, from the definitions in ops/linear_attention.hpp:
// M = scale K^T V as [H, dv, dk], and O = Q M as [R, H dv] (dense, out_column not applied).
std::vector<double> linear_attention_product(const float* keys, const float* values,
                                             std::int64_t key_rows,
                                             const LinearAttentionShape& shape);
std::vector<double> linear_attention_out(const float* queries, std::int64_t rows,
                                         const std::vector<double>& product,
                                         const LinearAttentionShape& shape);

}  // namespace iclbench::ops::reference
