// Every oneDNN op against its Eigen twin on awkward shapes (odd sizes, K not a multiple of 16,
// one row, strided rows), f32 and bf16. Tolerances: a dot product of length K in f32 errs by at
// most about K eps |a||b| (sequential) and typically sqrt(K) eps; we allow 2 eps K (sum of
// |a_l b_l|), which is a true worst-case bound for any summation order. bf16 operands carry a
// relative error of 2^-9 each, so each product up to 2^-8 more: 2^-8 sum|a_l b_l| + the f32 term.

#include <gtest/gtest.h>
#include <xmmintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numbers>
#include <stdexcept>
#include <string>
#include <vector>

#include "ops/attention.hpp"
#include "ops/column_sweep.hpp"
#include "ops/dnnl_ops.hpp"
#include "ops/eigen_ops.hpp"
#include "ops/gelu.hpp"
#include "ops/linear_attention.hpp"
#include "ops/row_layer_norm.hpp"
#include "ops/row_softmax.hpp"
#include "ops/small_mlp.hpp"
#include "util/philox.hpp"

namespace iclbench::ops {
namespace {

constexpr double kEps = 0x1p-24;

std::vector<float> random_values(std::size_t count, std::uint64_t seed) {
  std::vector<float> values(count);
  util::DrawSequence draws(seed, 0, 0, util::Stream::kContextInput);
  for (float& value : values) value = static_cast<float>(draws.normal());
  return values;
}

std::vector<std::uint16_t> to_bf16(const std::vector<float>& values) {
  std::vector<std::uint16_t> bits(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) bits[i] = reference::bf16_bits(values[i]);
  return bits;
}
std::vector<float> rounded(const std::vector<float>& values) {
  std::vector<float> out(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) out[i] = reference::round_to_bf16(values[i]);
  return out;
}

struct LinearCase {
  std::int64_t m, k, n;
  PostActivation activation;
  bool accumulate;
};

TEST(Ops, LinearMatchesEigenOnStridedRows) {
  for (const LinearCase& c : {LinearCase{1, 1, 1, PostActivation::kNone, false},
                              {7, 13, 5, PostActivation::kRelu, false},
                              {33, 17, 29, PostActivation::kGelu, true},
                              {9, 20, 31, PostActivation::kGeluTanh, false},
                              {256, 64, 192, PostActivation::kNone, true}}) {
    for (DType dtype : {DType::kF32, DType::kBF16}) {
      const std::int64_t src_stride = c.k + 3, dst_stride = c.n + 2;
      std::vector<float> src = random_values(c.m * src_stride, 1), weights = random_values(c.k * c.n, 2),
                         bias = random_values(c.n, 3), dst = random_values(c.m * dst_stride, 4);
      std::vector<float> expected = dst;
      const bool bf16 = dtype == DType::kBF16;
      // The bf16 op sees bf16 inputs: the reference gets the same rounded values.
      const std::vector<float> src_used = bf16 ? rounded(src) : src;
      const std::vector<float> weights_used = bf16 ? rounded(weights) : weights;
      reference::linear(src_used.data(), src_stride, weights_used, bias, expected.data(), dst_stride,
                        c.m, c.k, c.n, c.activation, c.accumulate);
      const Linear op(Layout::rows(c.m, c.k, src_stride, dtype), weights, bias,
                      Layout::rows(c.m, c.n, dst_stride, DType::kF32), c.activation, c.accumulate);
      std::vector<std::byte> scratch(op.scratchpad_bytes() + 64);
      const std::vector<std::uint16_t> src_bits = to_bf16(src);
      op.execute(bf16 ? static_cast<const void*>(src_bits.data()) : src.data(), dst.data(), scratch.data());
      for (std::int64_t i = 0; i < c.m; ++i) {
        for (std::int64_t j = 0; j < c.n; ++j) {
          double magnitude = std::abs(bias[j]) + (c.accumulate ? std::abs(expected[i * dst_stride + j]) : 0);
          for (std::int64_t l = 0; l < c.k; ++l) {
            magnitude += std::abs(src_used[i * src_stride + l] * weights_used[l * c.n + j]);
          }
          // GELU's slope is at most 1.13, so it does not grow the error by more than that.
          const double tolerance = 1.13 * 2 * kEps * (c.k + 2) * magnitude + 1e-30;
          ASSERT_NEAR(dst[i * dst_stride + j], expected[i * dst_stride + j], tolerance)
              << "m=" << c.m << " k=" << c.k << " n=" << c.n << " at (" << i << "," << j << ")"
              << (bf16 ? " bf16" : " f32");
        }
      }
    }
  }
}

TEST(Ops, BatchedStridedMatMulWithPostOpsMatchesEigen) {
  // Heads as the batch: Q [H, M, K] inside rows of width W, K^T as a transposed strided view.
  const std::int64_t heads = 3, m = 5, k = 7, n = 11, width = heads * k + 2;
  const std::vector<float> q = random_values(m * width, 5), keys = random_values(n * width, 6);
  const std::vector<float> mask = random_values(m * n, 7);
  for (const auto& [relu, binary] :
       {std::pair{false, MatMul::Binary::kNone}, {true, MatMul::Binary::kMul}}) {
    const MatMul op(Layout{{heads, m, k}, {k, width, 1}, DType::kF32},
                    Layout{{heads, k, n}, {k, 1, width}, DType::kF32},
                    Layout::dense({heads, m, n}, DType::kF32), 0.37f, relu);
    std::vector<float> found(heads * m * n), expected(heads * m * n);
    std::vector<std::byte> scratch(op.scratchpad_bytes() + 64);
    op.execute(q.data(), keys.data(), found.data(), scratch.data());
    reference::matmul({q.data(), k, width, 1}, {keys.data(), k, 1, width}, expected.data(), heads,
                      m, k, n, 0.37f, relu, MatMul::Binary::kNone, nullptr);
    for (std::size_t i = 0; i < found.size(); ++i) {
      ASSERT_NEAR(found[i], expected[i], 2 * kEps * k * 0.37 * 16) << i;
    }
    (void)binary;
  }
  // 2-D with a mask post-op (causal attention, one head at a time).
  for (MatMul::Binary binary : {MatMul::Binary::kAdd, MatMul::Binary::kMul}) {
    const MatMul op(Layout{{m, k}, {width, 1}, DType::kF32}, Layout{{k, n}, {1, width}, DType::kF32},
                    Layout::dense({m, n}, DType::kF32), 0.5f, false, binary,
                    Layout::dense({m, n}, DType::kF32));
    std::vector<float> found(m * n), expected(m * n);
    std::vector<std::byte> scratch(op.scratchpad_bytes() + 64);
    op.execute(q.data(), keys.data(), found.data(), scratch.data(), mask.data());
    reference::matmul({q.data(), 0, width, 1}, {keys.data(), 0, 1, width}, expected.data(), 1, m, k,
                      n, 0.5f, false, binary, mask.data());
    for (std::size_t i = 0; i < found.size(); ++i) {
      ASSERT_NEAR(found[i], expected[i], 2 * kEps * k * 16 * 4) << i;
    }
  }
}

TEST(Ops, LayerNormMatchesEigen) {
  for (std::int64_t width : {1, 13, 64, 77}) {
    const std::int64_t rows = 9;
    // A large common offset makes the variance a difference of nearly equal numbers: the op
    // must not lose it (it should subtract the mean before squaring).
    std::vector<float> src = random_values(rows * width, 8);
    for (float& value : src) value += 100.0f;
    const std::vector<float> gamma = random_values(width, 9), beta = random_values(width, 10);
    const LayerNorm op(Layout::dense({rows, width}, DType::kF32), gamma, beta, 1e-5f);
    std::vector<float> found(src.size()), expected(src.size());
    std::vector<std::byte> scratch(op.scratchpad_bytes() + 64);
    op.execute(src.data(), found.data(), scratch.data());
    reference::layer_norm(src.data(), expected.data(), rows, width, gamma, beta, 1e-5f);
    for (std::size_t i = 0; i < found.size(); ++i) {
      // Normalised values are O(1) times |gamma|; the mean of values ~100 carries 100 eps of
      // absolute error, which the division by sigma ~1 turns into 100 eps relative, times width
      // for the accumulation.
      ASSERT_NEAR(found[i], expected[i], 100 * kEps * (width + 1) * (std::abs(gamma[i % width]) + 1))
          << "width " << width << " at " << i;
    }
  }
}

// ops::RowLayerNorm against its double twin, on widths with and without a 16-lane tail, rows
// with a large common offset (the mean then carries most of the magnitude) and a constant row
// (variance 0: y = beta), in place in f32; the bf16 output must be the f32 output rounded.
//
// Tolerance (first-order error analysis, u = 2^-24, Higham's gamma_k ~ k u): each value passes
// through at most n = ceil(width / 16) + 6 additions (a chain of at most ceil(width / 16) in its
// lane of one of 4 accumulators, 2 levels joining those, a 4-level tree over the 16 lanes; the
// scalar build sums sequentially, n = width + 1), so with A = mean|x| / sigma_e,
// sigma_e = sqrt(var + epsilon) and z = (x - mean) / sigma_e:
//   mean:          |m' - m| <= (n + 1) u mean|x|            (sum, then one division);
//   centred value: |c' - c| <= u |c| + (n + 1) u mean|x|;
//   variance:      relative (n + 4) u (the sum of c'^2, the c' errors twice, the division), and
//                  the mean's error enters only squared (sum c = 0 about the true mean);
//   1 / sigma_e:   relative (n + 4) u / 2 + 3 u (epsilon's addition, the root, the division);
//   y = fma(c' / sigma_e', gamma, beta):
//     |y' - y| <= |gamma| ((n + 1) u A + (n / 2 + 7) u |z|) + u |y|.
// The check allows twice that (the second-order terms are below u^2 A^2 here).
TEST(Ops, RowLayerNormMatchesDoubleTwin) {
  for (std::int64_t width : {1, 13, 16, 47, 61, 64, 77, 768}) {
    const std::int64_t rows = 9;
    std::vector<float> src = random_values(rows * width, 8);
    for (std::int64_t r = 0; r < rows; ++r) {
      for (std::int64_t j = 0; j < width; ++j) {
        float& value = src[static_cast<std::size_t>(r * width + j)];
        if (r % 3 == 0) value += 100.0f;  // a large common offset
        if (r == 4) value = 2.5f;          // a constant row
      }
    }
    const std::vector<float> gamma = random_values(width, 9), beta = random_values(width, 10);
    const float epsilon = 1e-5f;
    const Layout rows_f32 = Layout::dense({rows, width}, DType::kF32);
    const RowLayerNorm op(rows_f32, rows_f32, gamma, beta, epsilon);
    const RowLayerNorm to_bf16_op(rows_f32, Layout::dense({rows, width}, DType::kBF16), gamma, beta, epsilon);
    const Layout one_row_f32 = Layout::dense({1, width}, DType::kF32);
    const RowLayerNorm one_row(one_row_f32, one_row_f32, gamma, beta, epsilon);
    std::vector<float> alone(static_cast<std::size_t>(width));
    std::vector<float> found = src, expected(src.size());
    std::vector<std::uint16_t> found_bf16(src.size());
    to_bf16_op.execute(src.data(), found_bf16.data());
    op.execute(found.data(), found.data());  // in place
    reference::layer_norm(src.data(), expected.data(), rows, width, gamma, beta, epsilon);
    const bool scalar = std::string(op.implementation()) == "iclbench:scalar";
    const double n = scalar ? static_cast<double>(width + 1) : static_cast<double>((width + 15) / 16 + 6);
    for (std::int64_t r = 0; r < rows; ++r) {
      double mean = 0, mean_abs = 0, variance = 0;
      for (std::int64_t j = 0; j < width; ++j) {
        mean += src[static_cast<std::size_t>(r * width + j)];
        mean_abs += std::abs(src[static_cast<std::size_t>(r * width + j)]);
      }
      mean /= static_cast<double>(width);
      mean_abs /= static_cast<double>(width);
      for (std::int64_t j = 0; j < width; ++j) {
        const double centred = src[static_cast<std::size_t>(r * width + j)] - mean;
        variance += centred * centred;
      }
      const double sigma = std::sqrt(variance / static_cast<double>(width) + epsilon);
      for (std::int64_t j = 0; j < width; ++j) {
        const auto i = static_cast<std::size_t>(r * width + j);
        const double z = std::abs(src[i] - mean) / sigma;
        const double bound =
            2 * (std::abs(gamma[static_cast<std::size_t>(j)]) * ((n + 1) * kEps * mean_abs / sigma + (n / 2 + 7) * kEps * z) +
                 kEps * std::abs(expected[i])) + 1e-30;
        ASSERT_NEAR(found[i], expected[i], bound) << "width " << width << " row " << r << " column " << j;
        ASSERT_EQ(found_bf16[i], reference::bf16_bits(found[i])) << "width " << width << " at " << i;
      }
      // The kernel takes rows in fours and the rest one at a time: a row must come out the same
      // bytes alone as in a group.
      one_row.execute(src.data() + r * width, alone.data());
      ASSERT_EQ(0, std::memcmp(alone.data(), found.data() + r * width, alone.size() * sizeof(float))) << "width " << width << " row " << r;
    }
  }
  EXPECT_THROW(RowLayerNorm(Layout::dense({2, 3}, DType::kF32), Layout::dense({2, 3}, DType::kF32),
                            std::vector<float>(2), std::vector<float>(3), 1e-5f),
               std::invalid_argument);
}

TEST(Ops, SoftmaxMatchesEigenInF32AndBf16) {
  const std::int64_t rows = 4, width = 17;
  std::vector<float> src = random_values(rows * width, 11);
  src[3] = -INFINITY;  // a masked key
  std::vector<float> expected(src.size());
  reference::softmax(src.data(), expected.data(), rows, width);
  const Softmax in_place(Layout::dense({rows, width}, DType::kF32), Layout::dense({rows, width}, DType::kF32));
  std::vector<float> found = src;
  std::vector<std::byte> scratch(in_place.scratchpad_bytes() + 64);
  in_place.execute(found.data(), found.data(), scratch.data());
  for (std::size_t i = 0; i < found.size(); ++i) ASSERT_NEAR(found[i], expected[i], 8 * kEps * width) << i;
  EXPECT_EQ(found[3], 0.0f);
  const Softmax to_bf16(Layout::dense({rows, width}, DType::kF32), Layout::dense({rows, width}, DType::kBF16));
  std::vector<std::uint16_t> bits(src.size());
  to_bf16.execute(src.data(), bits.data(), scratch.data());
  for (std::size_t i = 0; i < bits.size(); ++i) {
    const float value = std::bit_cast<float>(static_cast<std::uint32_t>(bits[i]) << 16);
    // One bf16 ulp (2^-7 relative): oneDNN's softmax does not always round to nearest when it
    // writes bf16 (seen: 0.08434 stored as 0.08398, the lower neighbour).
    ASSERT_NEAR(value, expected[i], 0x1p-7 * expected[i] + 8 * kEps * width) << i;
  }
}

// The engine's own softmax against the double-precision reference. Error bound per output, in
// units of u = 2^-24, from the f32 steps: x_k - max rounds with error |x_k - max| u, which
// exp turns into a relative error of the same size; the polynomial exp adds <= 4 u; the sum of
// `width` exponentials carries every term's error plus width u of additions; the reciprocal and
// the product add 2 u. So |found - exact| <= exact (|x_k - max| + max_j |x_j - max| + width + 10) u,
// plus 2^-126 for exponentials below FLT_MIN, which are flushed to 0.
TEST(Ops, RowSoftmaxMatchesTheReferenceWithinItsDerivedBound) {
  for (const std::int64_t width : {1, 5, 16, 17, 129, 1000, 4096}) {
    for (const double spread : {1.0, 12.0}) {
      const std::int64_t rows = 3;
      std::vector<float> src = random_values(static_cast<std::size_t>(rows * width), 13 + static_cast<std::uint64_t>(width));
      for (float& value : src) value = static_cast<float>(value * spread);
      if (width > 4) src[static_cast<std::size_t>(width + 2)] = -INFINITY;  // a masked key in row 1
      std::vector<float> expected(src.size());
      reference::softmax(src.data(), expected.data(), rows, width);
      const RowSoftmax op(Layout::dense({rows, width}, DType::kF32), Layout::dense({rows, width}, DType::kF32));
      std::vector<float> found = src;
      op.execute(found.data(), found.data());  // in place, as the engine runs it
      for (std::int64_t r = 0; r < rows; ++r) {
        float top = -INFINITY;
        for (std::int64_t k = 0; k < width; ++k) top = std::max(top, src[static_cast<std::size_t>(r * width + k)]);
        double widest = 0;
        for (std::int64_t k = 0; k < width; ++k) {
          const float x = src[static_cast<std::size_t>(r * width + k)];
          if (std::isfinite(x)) widest = std::max(widest, static_cast<double>(top - x));
        }
        for (std::int64_t k = 0; k < width; ++k) {
          const auto i = static_cast<std::size_t>(r * width + k);
          const double spread_k = std::isfinite(src[i]) ? static_cast<double>(top - src[i]) : 0.0;
          const double bound = expected[i] * (spread_k + widest + static_cast<double>(width) + 10) * kEps + 0x1p-126;
          ASSERT_NEAR(found[i], expected[i], bound) << "width " << width << " spread " << spread << " at " << i;
        }
      }
      if (width > 4) {
        EXPECT_EQ(found[static_cast<std::size_t>(width + 2)], 0.0f);
      }

      // bf16 output: the f32 result above, rounded to nearest even.
      const RowSoftmax to_bf16_op(Layout::dense({rows, width}, DType::kF32), Layout::dense({rows, width}, DType::kBF16));
      std::vector<float> scores = src;
      std::vector<std::uint16_t> bits(src.size());
      to_bf16_op.execute(scores.data(), bits.data());
      for (std::size_t i = 0; i < bits.size(); ++i) {
        ASSERT_EQ(bits[i], reference::bf16_bits(found[i])) << i;
      }
    }
  }
}

// The bf16 rounding of the softmax output, on ties of both parities and ordinary values.
TEST(Ops, RowSoftmaxBf16RoundingIsNearestEven) {
  std::vector<float> values = random_values(100, 15);
  values[0] = std::bit_cast<float>(0x3f808000u);  // tie, rounds down to even
  values[1] = std::bit_cast<float>(0x3f818000u);  // tie, rounds up to even
  values[2] = std::bit_cast<float>(0x3f808001u);  // just above a tie
  values[3] = std::bit_cast<float>(0x3f817fffu);  // just below a tie
  values[4] = 0.0f;
  values[17] = std::bit_cast<float>(0x3e808000u);  // a tie in the masked tail (100 = 6 x 16 + 4)
  values[98] = std::bit_cast<float>(0x3e818000u);
  std::vector<std::uint16_t> bits(values.size());
  scale_to_bf16(values.data(), 1.0f, bits.data(), static_cast<std::int64_t>(values.size()));
  for (std::size_t i = 0; i < values.size(); ++i) {
    ASSERT_EQ(bits[i], reference::bf16_bits(values[i])) << i << ": " << values[i];
  }
}

// The kernel flushes denormals only while it runs: the caller's floating-point mode is restored,
// and a denormal stays a denormal outside.
TEST(Ops, RowSoftmaxRestoresTheFloatingPointMode) {
  std::vector<float> src = random_values(3 * 40, 16);
  for (float& value : src) value *= 60.0f;  // wide scores: exponentials reach the denormal range
  const RowSoftmax op(Layout::dense({3, 40}, DType::kF32), Layout::dense({3, 40}, DType::kF32));
  // The control bits (rounding, flush-to-zero, denormals-are-zero, exception masks); the low six
  // are sticky exception flags that any inexact operation sets.
  constexpr unsigned kControlBits = ~0x3Fu;
  const unsigned before = _mm_getcsr() & kControlBits;
  op.execute(src.data(), src.data());
  EXPECT_EQ(_mm_getcsr() & kControlBits, before);
  volatile float tiny = 1e-30f;
  EXPECT_GT(tiny * 1e-10f, 0.0f);  // 1e-40: representable only as a denormal
}

// A NaN score (a diverging model) must not be hidden: its whole row becomes NaN, so that eval
// reports the task as non-finite.
TEST(Ops, RowSoftmaxPropagatesNaN) {
  std::vector<float> src = random_values(2 * 37, 14);
  src[40] = NAN;
  const RowSoftmax op(Layout::dense({2, 37}, DType::kF32), Layout::dense({2, 37}, DType::kF32));
  op.execute(src.data(), src.data());
  for (int k = 0; k < 37; ++k) EXPECT_TRUE(std::isfinite(src[static_cast<std::size_t>(k)])) << k;
  for (int k = 37; k < 74; ++k) EXPECT_TRUE(std::isnan(src[static_cast<std::size_t>(k)])) << k;
}

// ---- FusedAttention against its double-precision twin. ----
//
// Operands in the engine's layout: query rows [R, H dk + 3], keys and values in the same rows
// [n, H (dk + dv) + 5] (K of head h at column h dk, V at H dk + h dv), output rows [R, H dv + 2];
// the padding columns of the output hold a sentinel that the op must leave alone.
struct AttentionCase {
  std::int64_t heads, rows, keys, dk, dv;
  AttentionMask mask;
  std::int64_t first_row;  // causal: token index of query row 0
};

struct AttentionOperands {
  AttentionShape shape;
  std::vector<float> q, kv;                   // the values the op sees (bf16-rounded for bf16)
  std::vector<std::uint16_t> q_bits, kv_bits;  // bf16 only
  const float* values() const { return kv.data() + shape.heads * shape.qk_dim; }
};

constexpr float kSentinel = 12288.0f;  // exact in bf16

AttentionOperands attention_operands(const AttentionCase& c, AttentionWeights weights, DType dtype, float scale,
                                     bool mean, std::uint64_t seed) {
  AttentionOperands o;
  AttentionShape& s = o.shape;
  s.heads = c.heads;
  s.rows = c.rows;
  s.keys = c.keys;
  s.qk_dim = c.dk;
  s.v_dim = c.dv;
  s.query_stride = c.heads * c.dk + 3;
  s.key_stride = s.value_stride = c.heads * (c.dk + c.dv) + 5;
  s.out_stride = c.heads * c.dv + 2;
  s.dtype = dtype;
  s.weights = weights;
  s.mask = c.mask;
  s.scale = scale;
  s.mean_over_keys = mean;
  o.q = random_values(static_cast<std::size_t>(c.rows * s.query_stride), seed);
  o.kv = random_values(static_cast<std::size_t>(c.keys * s.key_stride), seed + 1);
  if (dtype == DType::kBF16) {
    o.q = rounded(o.q);
    o.kv = rounded(o.kv);
    o.q_bits = to_bf16(o.q);
    o.kv_bits = to_bf16(o.kv);
  }
  return o;
}

// Runs the op; returns the output rows as f32.
std::vector<float> run_attention(const AttentionOperands& o, std::int64_t first_row) {
  const AttentionShape& s = o.shape;
  const FusedAttention op(s);
  // Exactly the size the op asks for, so that AddressSanitizer sees any write past it.
  std::vector<std::byte> scratch(op.scratchpad_bytes());
  EXPECT_EQ(op.scratchpad_bytes(), FusedAttention::scratchpad_bytes_for(s));
  const auto size = static_cast<std::size_t>(s.rows * s.out_stride);
  if (s.dtype == DType::kBF16) {
    std::vector<std::uint16_t> out(size, reference::bf16_bits(kSentinel));
    op.execute(o.q_bits.data(), o.kv_bits.data(), o.kv_bits.data() + s.heads * s.qk_dim, out.data(), first_row,
               scratch.data());
    std::vector<float> found(size);
    for (std::size_t i = 0; i < size; ++i) found[i] = std::bit_cast<float>(static_cast<std::uint32_t>(out[i]) << 16);
    return found;
  }
  std::vector<float> out(size, kSentinel);
  op.execute(o.q.data(), o.kv.data(), o.values(), out.data(), first_row, scratch.data());
  return out;
}

// The error bound of each output element, in units of u = 2^-24 unless said otherwise. For one
// head and query row, with the visible keys k = 1..n, scores s_k = scale q.k_k, magnitudes
// A_k = |scale| sum_d |q_d k_kd| and spread W = max s - min s:
// - a score is an f32 sum of dk products (the f32 path first rounds scale log2(e) q_d: one more
//   rounding per term, and log2(e) itself one more): |error| <= (dk + 3) A_k u;
// - softmax: each weight 2^(x_k) with x_k = s_k log2(e) - max has a relative error rho_k: the
//   score's error (a natural-log error d is a relative error d of e^s), the rounding of x_k
//   (|x_k| u, i.e. |s_k - max| ln 2 u <= W u relative), exp2's 1.08 u, and, each time the running
//   max is raised, the rescaling factor's exp2 (1.08 u), its argument (the raises add up to at
//   most W) and the product (1 u): rho <= (dk + 3) max A_k + 2 W + 4 + 3 (blocks of 128 keys).
//   Normalising adds the sum's rounding (n u) and the reciprocal's and the product's (2 u),
//   and the mix sums n products (n u), so with M_j = sum_k a_k |v_kj|:
//     |o_j - exact| <= M_j (2 rho + 2 n + 6) u;
//   plus weights below 2^-126 flushed to 0 (max weight >= 2^-8): n 2^-118 max |v| at most;
// - linear and relu, weights a_k = c s_k (or c max(s_k, 0), c = 1/n with mean_over_keys):
//     |o_j - exact| <= c sum_k ((n + 4) |s_k| + (dk + 3) A_k) |v_kj| u;
// - bf16 (the reference gets the same bf16 inputs): the weights are rounded to bf16 for the
//   mix and the output too. bf16 keeps 8 significant bits, so rounding to nearest errs by at
//   most 2^-8 relative: 2^-8 sum_k |a_k v_kj| for the weights, 2^-8 (|o| + the f32 error) for
//   the output.
std::vector<double> attention_bounds(const AttentionOperands& o, const std::vector<float>& expected,
                                     std::int64_t first_row) {
  const AttentionShape& s = o.shape;
  std::vector<double> bounds(expected.size(), 0.0);
  const double u = 0x1p-24, bf16_unit = 0x1p-8;
  for (std::int64_t h = 0; h < s.heads; ++h) {
    for (std::int64_t r = 0; r < s.rows; ++r) {
      const std::int64_t n = s.mask == AttentionMask::kIcl ? s.keys : std::min(s.keys, first_row + r + 1);
      std::vector<double> score(static_cast<std::size_t>(n)), magnitude(static_cast<std::size_t>(n));
      for (std::int64_t k = 0; k < n; ++k) {
        double dot = 0, absolute = 0;
        for (std::int64_t d = 0; d < s.qk_dim; ++d) {
          const double product = static_cast<double>(o.q[static_cast<std::size_t>(r * s.query_stride + h * s.qk_dim + d)]) *
                                 o.kv[static_cast<std::size_t>(k * s.key_stride + h * s.qk_dim + d)];
          dot += product;
          absolute += std::abs(product);
        }
        score[static_cast<std::size_t>(k)] = s.scale * dot;
        magnitude[static_cast<std::size_t>(k)] = std::abs(s.scale) * absolute;
      }
      const double top = *std::max_element(score.begin(), score.end());
      const double spread = top - *std::min_element(score.begin(), score.end());
      const double max_magnitude = *std::max_element(magnitude.begin(), magnitude.end());
      const double c = s.mean_over_keys ? 1.0 / static_cast<double>(n) : 1.0;
      double sum = 0;
      for (const double value : score) sum += std::exp(value - top);
      const double rho = (static_cast<double>(s.qk_dim) + 3) * max_magnitude + 2 * spread + 4 +
                         3 * static_cast<double>(n / 128 + 1);
      for (std::int64_t j = 0; j < s.v_dim; ++j) {
        double weighted = 0, linear_terms = 0, max_value = 0;
        for (std::int64_t k = 0; k < n; ++k) {
          const double v = std::abs(o.values()[k * s.value_stride + h * s.v_dim + j]);
          const auto kk = static_cast<std::size_t>(k);
          const double weight = s.weights == AttentionWeights::kSoftmax ? std::exp(score[kk] - top) / sum
                                : s.weights == AttentionWeights::kRelu  ? c * std::max(score[kk], 0.0)
                                                                        : c * std::abs(score[kk]);
          weighted += weight * v;
          linear_terms += c * ((static_cast<double>(n) + 4) * std::abs(score[kk]) + (s.qk_dim + 3) * magnitude[kk]) * v;
          max_value = std::max(max_value, v);
        }
        const auto index = static_cast<std::size_t>(r * s.out_stride + h * s.v_dim + j);
        double bound = s.weights == AttentionWeights::kSoftmax
                           ? weighted * (2 * rho + 2 * static_cast<double>(n) + 6) * u + static_cast<double>(n) * 0x1p-118 * max_value
                           : linear_terms * u;
        if (s.dtype == DType::kBF16) bound += bf16_unit * weighted + bf16_unit * (std::abs(expected[index]) + bound);
        bounds[index] = bound + 1e-37;
      }
    }
  }
  return bounds;
}

std::string describe(const AttentionShape& s, std::int64_t first_row) {
  const char* kinds[] = {"softmax", "linear", "relu"};
  return std::string(kinds[static_cast<int>(s.weights)]) + (s.mask == AttentionMask::kIcl ? " icl" : " causal") +
         (s.dtype == DType::kBF16 ? " bf16" : " f32") + (s.mean_over_keys ? " mean" : "") + " H=" +
         std::to_string(s.heads) + " R=" + std::to_string(s.rows) + " n=" + std::to_string(s.keys) +
         " dk=" + std::to_string(s.qk_dim) + " dv=" + std::to_string(s.v_dim) + " first_row=" + std::to_string(first_row);
}

// Checks every output element against the twin within its bound, and that the padding columns
// kept their sentinel.
void expect_attention_matches(const AttentionOperands& o, std::int64_t first_row) {
  const AttentionShape& s = o.shape;
  const std::vector<float> found = run_attention(o, first_row);
  std::vector<float> expected(found.size(), kSentinel);
  reference::attention(o.q.data(), o.kv.data(), o.values(), expected.data(), s, first_row);
  const std::vector<double> bounds = attention_bounds(o, expected, first_row);
  for (std::int64_t r = 0; r < s.rows; ++r) {
    for (std::int64_t j = 0; j < s.out_stride; ++j) {
      const auto i = static_cast<std::size_t>(r * s.out_stride + j);
      if (j >= s.heads * s.v_dim) {
        ASSERT_EQ(found[i], kSentinel) << describe(s, first_row) << ": padding column written at (" << r << "," << j << ")";
        continue;
      }
      ASSERT_NEAR(found[i], expected[i], bounds[i]) << describe(s, first_row) << " at row " << r << " column " << j;
    }
  }
}

TEST(Ops, FusedAttentionMatchesTheReferenceWithinItsDerivedBound) {
  // Rows are processed in blocks of 32 and 16 query rows (lanes), and a last block of <= 4 rows
  // with keys in the lanes instead: the row counts below reach each (1, 3, 129 = 4 x 32 + 1,
  // 33, 34, 36: a few-row block after full ones; 7, 40: a 16-row block; 17, 129: 32-row blocks).
  const AttentionCase cases[] = {
      {1, 1, 1, 1, 1, AttentionMask::kIcl, 0},          // one query, one key
      {2, 1, 17, 7, 3, AttentionMask::kIcl, 0},         // one query, odd dk and dv
      {4, 129, 129, 16, 16, AttentionMask::kIcl, 0},    // the encoder's tile
      {3, 33, 300, 20, 17, AttentionMask::kIcl, 0},     // dk, dv not multiples of 16; 2 key blocks
      {1, 3, 1037, 5, 1, AttentionMask::kIcl, 0},       // dv = 1 (the kernel learner), few rows
      {1, 40, 1037, 5, 1, AttentionMask::kIcl, 0},      // the same, 7 key blocks of 32 rows
      {2, 7, 129, 64, 64, AttentionMask::kIcl, 0},      // BERT-base's head width
      {4, 129, 129, 16, 16, AttentionMask::kCausal, 0},
      {2, 40, 300, 9, 33, AttentionMask::kCausal, 0},   // rows see 1..40 of 300 keys
      {2, 36, 300, 9, 5, AttentionMask::kCausal, 250},  // a later row tile: rows past n see all keys
      {3, 34, 20, 33, 18, AttentionMask::kCausal, 0},   // 2 rows of a few-row block; dk = 33
      {1, 17, 17, 1, 1, AttentionMask::kCausal, 0},
  };
  std::uint64_t seed = 100;
  for (const AttentionCase& c : cases) {
    for (DType dtype : {DType::kF32, DType::kBF16}) {
      for (AttentionWeights weights : {AttentionWeights::kSoftmax, AttentionWeights::kLinear, AttentionWeights::kRelu}) {
        for (bool mean : {false, true}) {
          if (mean && weights == AttentionWeights::kSoftmax) continue;
          const float scale = weights == AttentionWeights::kSoftmax ? 1.0f / std::sqrt(static_cast<float>(c.dk)) : -0.3f;
          expect_attention_matches(attention_operands(c, weights, dtype, scale, mean, seed++), c.first_row);
        }
      }
    }
  }
}

// Scores that grow along the keys (key k scaled by 1 + k / 50, so the maximum rises by far more
// than 2^8 several times over the keys): the online rescaling of earlier blocks must be exact.
TEST(Ops, FusedAttentionRescalesEarlierKeyBlocksWhenTheMaximumRises) {
  // 21 rows: blocks of 32 rows, 160 keys per key block; 2 rows: keys in the lanes, 1280 per block.
  for (const auto& [rows, keys] : {std::pair<std::int64_t, std::int64_t>{21, 1000}, {2, 3000}}) {
  for (DType dtype : {DType::kF32, DType::kBF16}) {
    AttentionOperands o = attention_operands({2, rows, keys, 6, 3, AttentionMask::kIcl, 0}, AttentionWeights::kSoftmax,
                                             dtype, 1.0f, false, 300);
    for (std::int64_t k = 0; k < keys; ++k) {
      for (std::int64_t d = 0; d < o.shape.key_stride; ++d) o.kv[static_cast<std::size_t>(k * o.shape.key_stride + d)] *= 1.0f + k / 50.0f;
    }
    if (dtype == DType::kBF16) {
      o.kv = rounded(o.kv);
      o.kv_bits = to_bf16(o.kv);
    }
    expect_attention_matches(o, 0);
  }
  }
}

// Scores of +-inf from finite inputs (q.k overflows f32): a -inf score gets a weight of exactly
// 0; a row whose scores are all -inf, or that has a +inf or NaN score, is NaN, as RowSoftmax.
TEST(Ops, FusedAttentionHandlesInfiniteAndNaNScoresLikeRowSoftmax) {
  // 4 rows: the few-row path; 20: a block of 32 rows (rows 4.. are ordinary).
  for (const std::int64_t rows : {4, 20}) {
  for (DType dtype : {DType::kF32, DType::kBF16}) {
    AttentionOperands o = attention_operands({1, rows, 20, 2, 2, AttentionMask::kIcl, 0}, AttentionWeights::kSoftmax,
                                             dtype, 1.0f, false, 400);
    const std::int64_t qs = o.shape.query_stride, ks = o.shape.key_stride;
    auto q = [&](std::int64_t r, std::int64_t d) -> float& { return o.q[static_cast<std::size_t>(r * qs + d)]; };
    auto key = [&](std::int64_t k, std::int64_t d) -> float& { return o.kv[static_cast<std::size_t>(k * ks + d)]; };
    // Key 19 is huge in column 0, every other key in column 1. Row 0's score for key 19
    // overflows to -inf (its others are finite, ~1e30); row 1's to +inf; row 2's scores are all
    // -inf; row 3 has a NaN query.
    key(19, 0) = 1e30f;
    for (std::int64_t k = 0; k < 20; ++k) key(k, 1) = k == 19 ? 0.0f : 1e30f;
    q(0, 0) = -1e10f;
    q(1, 0) = 1e10f;
    q(2, 0) = -1e10f;
    q(2, 1) = -1e10f;
    q(3, 1) = NAN;
    if (dtype == DType::kBF16) {
      o.q = rounded(o.q);
      o.kv = rounded(o.kv);
      o.q_bits = to_bf16(o.q);
      o.kv_bits = to_bf16(o.kv);
    }
    const std::vector<float> found = run_attention(o, 0);
    const std::int64_t os = o.shape.out_stride;
    // Row 0: the twin in double sees a finite -1e40 for key 19, whose weight is 0 there too; the
    // other scores are 1e30 apart, so one key takes all the weight and the bound is loose.
    std::vector<float> expected(found.size(), kSentinel);
    reference::attention(o.q.data(), o.kv.data(), o.values(), expected.data(), o.shape, 0);
    for (std::int64_t j = 0; j < 2; ++j) {
      const auto i = static_cast<std::size_t>(j);
      const double relative = dtype == DType::kBF16 ? 0x1p-8 : 1e-6;  // the output's rounding
      EXPECT_NEAR(found[i], expected[i], relative * std::abs(expected[i]) + 1e-30) << "row 0 column " << j;
    }
    for (std::int64_t r = 1; r < 4; ++r) {
      for (std::int64_t j = 0; j < 2; ++j) {
        EXPECT_TRUE(std::isnan(found[static_cast<std::size_t>(r * os + j)]))
            << (dtype == DType::kBF16 ? "bf16" : "f32") << " rows " << rows << ": row " << r << " column " << j;
      }
    }
  }
  }
}

// Like RowSoftmax, the op flushes denormals only while it runs.
TEST(Ops, FusedAttentionRestoresTheFloatingPointMode) {
  const AttentionOperands o = attention_operands({2, 5, 40, 3, 2, AttentionMask::kIcl, 0}, AttentionWeights::kSoftmax,
                                                 DType::kF32, 30.0f, false, 500);  // wide scores: tiny weights
  constexpr unsigned kControlBits = ~0x3Fu;  // the low six bits are sticky exception flags
  const unsigned before = _mm_getcsr() & kControlBits;
  const std::vector<float> found = run_attention(o, 0);
  EXPECT_EQ(_mm_getcsr() & kControlBits, before);
  EXPECT_TRUE(std::isfinite(found[0]));
  volatile float tiny = 1e-30f;
  EXPECT_GT(tiny * 1e-10f, 0.0f);  // 1e-40: representable only as a denormal
}

// ---- GELU against its double twin. ----
// Bounds (u = 2^-24), derived in ops/gelu.hpp: erf form 1.25 u |x| + 2 u |GELU|;
// tanh form |GELU| ((1 - s) (4 ln2 |p| + 1.1) + 4) u + |x| 2^-126 below -9.7. A bf16 output is the
// f32 result rounded to nearest even: 2^-8 relative more, and 0 below 2^-126 (vcvtneps2bf16
// flushes denormals).
double gelu_bound(double x, double exact, GeluForm form) {
  const double u = 0x1p-24;
  if (form == GeluForm::kErf) return 1.25 * u * std::abs(x) + 2 * u * std::abs(exact) + 1e-45;
  const double power = -2 * std::sqrt(2 / std::numbers::pi) * (x + 0.044715 * x * x * x) * std::numbers::log2e;
  const double s = 1 / (1 + std::exp2(std::min(power, 1000.0)));
  return std::abs(exact) * ((1 - s) * (4 * std::numbers::ln2 * std::abs(power) + 1.1) + 4) * u +
         (x < -9.7 ? std::abs(x) * 0x1p-126 : 0.0) + 1e-45;
}

TEST(Ops, GeluMatchesTheReferenceWithinItsDerivedBound) {
  std::vector<float> x;
  for (int i = -300000; i <= 300000; i += 7) x.push_back(static_cast<float>(i * 1e-4));  // [-30, 30]
  for (float value : {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-40f, 3e38f, -3e38f}) x.push_back(value);
  x.push_back(static_cast<float>(x.size()));  // a count that is not a multiple of 16 either way
  for (const GeluForm form : {GeluForm::kErf, GeluForm::kTanh}) {
    const char* name = form == GeluForm::kErf ? "erf" : "tanh";
    const auto count = static_cast<std::int64_t>(x.size());
    std::vector<float> found(x.size());
    std::vector<std::uint16_t> bits(x.size());
    const Gelu op(Layout::dense({count}, DType::kF32), Layout::dense({count}, DType::kF32), form);
    op.execute(x.data(), found.data());
    const Gelu to_bf16_op(Layout::dense({count}, DType::kF32), Layout::dense({count}, DType::kBF16), form);
    to_bf16_op.execute(x.data(), bits.data());
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double exact = reference::gelu(x[i], form);
      const double bound = gelu_bound(x[i], exact, form);
      if (std::isinf(exact)) {
        ASSERT_EQ(found[i], exact) << name << " at x = " << x[i];
      } else {
        ASSERT_NEAR(found[i], exact, bound) << name << " at x = " << x[i];
      }
      const float rounded_value = std::bit_cast<float>(static_cast<std::uint32_t>(bits[i]) << 16);
      if (std::isfinite(exact) && std::abs(exact) < 3e38) {
        ASSERT_NEAR(rounded_value, exact, bound + 0x1p-8 * (std::abs(exact) + bound) + 0x1p-126) << name << " bf16 at x = " << x[i];
      }
    }
    // In place, as the engine would run it on its hidden tile.
    std::vector<float> in_place = x;
    gelu(in_place.data(), in_place.data(), count, form);
    EXPECT_EQ(0, std::memcmp(in_place.data(), found.data(), found.size() * sizeof(float))) << name;
    // In place from f32 to bf16 over the same bytes, as the engine runs it for bf16 matmuls.
    std::vector<float> narrowed = x;
    gelu_to_bf16(narrowed.data(), reinterpret_cast<std::uint16_t*>(narrowed.data()), count, form);
    EXPECT_EQ(0, std::memcmp(narrowed.data(), bits.data(), bits.size() * sizeof(std::uint16_t))) << name;
  }
}

// ---- LinearAttention against its double twin. ----
// Bounds (Higham 3.1, u = 2^-24, gamma_m = m u / (1 - m u)): M[h, b, a] sums ceil(B / 4)
// fused products per lane of a block of B key rows, then 3 lane additions, ceil(Tk / B) - 1
// block additions and the scale: within gamma_(ceil(B/4) + 3 + ceil(Tk/B)) * scale * sum_i |K V|. O[r, h, b] sums ceil(dk / 16) fused products per
// lane and a 4-level lane reduction of the computed M: within gamma_(ceil(dk/16) + 4) sum_a |Q M|
// plus sum_a |Q| |M's error|; accumulating adds u |result|.
struct LinearAttentionCase {
  std::int64_t heads, dk, dv, key_rows, rows;
  bool accumulate;
  std::int64_t key_block_rows = 0;
};

double gamma_of(double m) { return m * kEps / (1 - m * kEps); }

TEST(Ops, LinearAttentionMatchesTheReferenceWithinItsDerivedBound) {
  const LinearAttentionCase cases[] = {{1, 16, 1, 4096, 65, true},   // gd-hinge's step
                                       {1, 16, 1, 1, 1, false},      // one key, one query
                                       {2, 17, 3, 4097, 37, false},  // dk not a multiple of 16
                                       {3, 33, 5, 7, 19, true},      // dv over one block
                                       {1, 5, 1, 3, 2, false},
                                       {1, 16, 1, 4096, 65, true, 256},  // engine's row tiles
                                       {2, 17, 3, 1000, 9, false, 7}};   // a short last block
  std::uint64_t seed = 100;
  for (const LinearAttentionCase& c : cases) {
    SCOPED_TRACE("H " + std::to_string(c.heads) + " dk " + std::to_string(c.dk) + " dv " +
                 std::to_string(c.dv) + " Tk " + std::to_string(c.key_rows) + " R " +
                 std::to_string(c.rows));
    // Q, K and V as column ranges of one wide row (as in the residual stream), heads in reverse
    // order with a gap, so that nothing assumes packed heads.
    const std::int64_t width = c.heads * (2 * c.dk + c.dv) + 7;
    LinearAttentionShape shape;
    shape.heads = c.heads;
    shape.qk_dim = c.dk;
    shape.v_dim = c.dv;
    shape.scale = 0.37f;
    shape.queries.row_stride = shape.keys.row_stride = shape.values.row_stride = width;
    for (std::int64_t h = 0; h < c.heads; ++h) {
      const std::int64_t g = c.heads - 1 - h;
      shape.queries.head_column.push_back(1 + g * c.dk);
      shape.keys.head_column.push_back(1 + c.heads * c.dk + g * c.dk);
      shape.values.head_column.push_back(1 + 2 * c.heads * c.dk + g * c.dv);
    }
    const std::int64_t out_width = c.heads * c.dv + 3;
    shape.out_stride = out_width;
    for (std::int64_t j = 0; j < c.heads * c.dv; ++j) shape.out_column.push_back(out_width - 1 - j);
    shape.accumulate = c.accumulate;
    shape.key_block_rows = c.key_block_rows;
    const std::int64_t rows = std::max(c.key_rows, c.rows);
    const std::vector<float> x = random_values(static_cast<std::size_t>(rows * width), seed++);
    const std::vector<float> initial = random_values(static_cast<std::size_t>(c.rows * out_width), seed++);
    const LinearAttention op(shape);
    std::vector<float> product(static_cast<std::size_t>(op.product_size()));
    op.keys_times_values(x.data(), x.data(), c.key_rows, product.data());
    std::vector<float> out = initial;
    op.queries_times_product(x.data(), c.rows, product.data(), out.data());

    const std::vector<double> exact_product =
        reference::linear_attention_product(x.data(), x.data(), c.key_rows, shape);
    std::vector<double> product_bound(product.size());
    for (std::int64_t h = 0; h < c.heads; ++h) {
      for (std::int64_t b = 0; b < c.dv; ++b) {
        for (std::int64_t a = 0; a < c.dk; ++a) {
          double magnitude = 0;
          for (std::int64_t i = 0; i < c.key_rows; ++i) {
            magnitude += std::abs(static_cast<double>(x[i * width + shape.keys.head_column[h] + a]) *
                                  x[i * width + shape.values.head_column[h] + b]);
          }
          const std::size_t index = static_cast<std::size_t>((h * c.dv + b) * c.dk + a);
          const std::int64_t block = op.key_block_rows(c.key_rows);
          const std::int64_t roundings = (block + 3) / 4 + 3 + (c.key_rows + block - 1) / block;
          product_bound[index] =
              gamma_of(static_cast<double>(roundings)) * shape.scale * magnitude;
          ASSERT_NEAR(product[index], exact_product[index], product_bound[index])
              << "M at head " << h << " b " << b << " a " << a;
        }
      }
    }
    const std::vector<double> exact_out =
        reference::linear_attention_out(x.data(), c.rows, exact_product, shape);
    for (std::int64_t r = 0; r < c.rows; ++r) {
      for (std::int64_t h = 0; h < c.heads; ++h) {
        for (std::int64_t b = 0; b < c.dv; ++b) {
          double magnitude = 0, carried = 0;
          for (std::int64_t a = 0; a < c.dk; ++a) {
            const std::size_t index = static_cast<std::size_t>((h * c.dv + b) * c.dk + a);
            const double q = x[r * width + shape.queries.head_column[h] + a];
            magnitude += std::abs(q * product[index]);
            carried += std::abs(q) * product_bound[index];
          }
          const std::int64_t column = shape.out_column[static_cast<std::size_t>(h * c.dv + b)];
          double expected = exact_out[static_cast<std::size_t>((r * c.heads + h) * c.dv + b)];
          double bound = gamma_of(static_cast<double>((c.dk + 15) / 16 + 4)) * magnitude + carried;
          if (c.accumulate) {
            expected += initial[r * out_width + column];
            bound += kEps * (std::abs(expected) + bound);
          }
          ASSERT_NEAR(out[r * out_width + column], expected, bound)
              << "O at row " << r << " head " << h << " b " << b;
        }
      }
      // Columns O does not map to are left alone.
      for (std::int64_t column = 0; column < out_width - c.heads * c.dv; ++column) {
        ASSERT_EQ(out[r * out_width + column], initial[r * out_width + column]) << "column " << column;
      }
    }
  }
}

// The engine's one-sweep path builds M from per-tile block sums: the same bits as one call.
TEST(Ops, LinearAttentionBlockSumsGiveTheSameBitsAsOneCall) {
  for (const std::int64_t key_rows : {1, 255, 256, 257, 1000}) {
    SCOPED_TRACE("Tk " + std::to_string(key_rows));
    LinearAttentionShape shape;
    shape.heads = 2;
    shape.qk_dim = 17;
    shape.v_dim = 3;
    shape.scale = 0.37f;
    shape.key_block_rows = 256;
    const std::int64_t width = 2 * (17 + 3);
    shape.keys = HeadColumns::packed(width, 2, 17);
    shape.values = HeadColumns::packed(width, 2, 3, 34);
    shape.queries = shape.keys;
    shape.out_stride = 6;
    shape.out_column = {0, 1, 2, 3, 4, 5};
    const LinearAttention op(shape);
    const std::vector<float> x = random_values(static_cast<std::size_t>(key_rows * width), 7);
    const auto size = static_cast<std::size_t>(op.product_size());
    std::vector<float> whole(size), pieces(size);
    op.keys_times_values(x.data(), x.data(), key_rows, whole.data());
    const std::int64_t blocks = (key_rows + 255) / 256;
    std::vector<float> sums(static_cast<std::size_t>(blocks) * size);
    for (std::int64_t b = 0; b < blocks; ++b) {
      const float* first = x.data() + b * 256 * width;
      op.key_block_sum(first, first, std::min<std::int64_t>(256, key_rows - b * 256),
                       sums.data() + b * static_cast<std::int64_t>(size));
    }
    op.combine_key_blocks(sums.data(), blocks, pieces.data());
    for (std::size_t e = 0; e < size; ++e) ASSERT_EQ(pieces[e], whole[e]) << "element " << e;
  }
}

// ---- SmallMlp against a double evaluation of its formula. ----
// Bounds (Higham 3.1, u = 2^-24): a unit with k terms is within gamma_(k+1) (sum |w x| + |b|) of
// exact, ReLU passes that on (1-Lipschitz); an output with m terms within
// gamma_(m+1) (sum |w h| + |b|) + sum |w| |h's error|; adding it into x costs u |x + out| more.
// An output that is also an input is read before any output is added (x[7] below). Columns
// spread out (gathered) and within 4 consecutive ones (loaded and transposed).
TEST(Ops, SmallMlpMatchesTheFormulaWithinItsDerivedBound) {
  const std::int64_t width = 11, stride = 13;
  struct Columns {
    std::vector<std::int64_t> inputs, outputs;
  };
  const Columns layouts[] = {{{3, 7, 0}, {7, 2, 9}}, {{5, 7, 8}, {7, 8, 6}}};
  for (const PostActivation activation : {PostActivation::kRelu, PostActivation::kNone}) {
    for (const std::int64_t rows : {1, 16, 37}) {
     for (const Columns& columns : layouts) {
      SCOPED_TRACE("rows " + std::to_string(rows) + " first input " +
                   std::to_string(columns.inputs[0]));
      SmallMlp::Weights w;
      w.inputs = columns.inputs;
      w.units = {{0.5f, {{0, 1.5f}, {1, -2.0f}}},
                 {-0.25f, {{2, 0.75f}}},
                 {0.0f, {{1, 1.0f}}},
                 {0.125f, {}},  // a unit of its bias alone: act(b)
                 {0.0f, {{0, -1.0f}, {1, 0.3f}, {2, 2.0f}}}};
      w.outputs = {{columns.outputs[0], 0.5f, {{0, -1.0f}, {2, 1.0f}, {3, 2.0f}}},
                   {columns.outputs[1], 0.0f, {{1, 0.5f}, {4, -0.7f}}},
                   {columns.outputs[2], 1.25f, {}}};  // a bias alone
      const SmallMlp op(rows, stride, width, w, activation);
      EXPECT_DOUBLE_EQ(op.flops_per_row(), 2.0 * (7 + 5));  // the terms
      const std::vector<float> initial =
          random_values(static_cast<std::size_t>(rows * stride), 300 + static_cast<std::uint64_t>(rows));
      std::vector<float> x = initial;
      op.execute(x.data());
      const bool relu = activation == PostActivation::kRelu;
      for (std::int64_t r = 0; r < rows; ++r) {
        const float* before = initial.data() + r * stride;
        std::vector<double> hidden, hidden_error;
        for (const SmallMlp::Unit& unit : w.units) {
          double sum = unit.bias, magnitude = std::abs(unit.bias);
          for (const SmallMlp::Term& term : unit.terms) {
            const double product = static_cast<double>(before[w.inputs[term.index]]) * term.weight;
            sum += product;
            magnitude += std::abs(product);
          }
          hidden.push_back(relu ? std::max(sum, 0.0) : sum);
          hidden_error.push_back(gamma_of(static_cast<double>(unit.terms.size() + 1)) * magnitude);
        }
        std::vector<double> expected(initial.begin() + r * stride, initial.begin() + (r + 1) * stride);
        std::vector<double> bound(static_cast<std::size_t>(stride), 0.0);
        for (const SmallMlp::Output& output : w.outputs) {
          double sum = output.bias, magnitude = std::abs(output.bias), carried = 0;
          for (const SmallMlp::Term& term : output.terms) {
            sum += hidden[term.index] * term.weight;
            magnitude += std::abs(hidden[term.index] * term.weight);
            carried += std::abs(term.weight) * hidden_error[term.index];
          }
          const auto column = static_cast<std::size_t>(output.column);
          expected[column] += sum;
          bound[column] = gamma_of(static_cast<double>(output.terms.size() + 1)) * magnitude +
                          carried;
          bound[column] += kEps * (std::abs(expected[column]) + bound[column]);
        }
        for (std::int64_t c = 0; c < stride; ++c) {
          const auto column = static_cast<std::size_t>(c);
          if (bound[column] == 0.0) {
            // Columns no output writes are left alone (the padding past width too).
            ASSERT_EQ(x[r * stride + c], initial[r * stride + c]) << "row " << r << " column " << c;
          } else {
            ASSERT_NEAR(x[r * stride + c], expected[column], bound[column])
                << "row " << r << " column " << c;
          }
        }
      }
     }
    }
  }
}

// The column-MLP tests' inputs (slots 3, 7, 0 of 11) and units: two-term, one-term, a unit with
// no terms (bias only) and a three-term one, with ReLU; each test adds its outputs.
SmallMlp::Weights column_mlp_units() {
  SmallMlp::Weights w;
  w.inputs = {3, 7, 0};
  w.units = {{0.5f, {{0, 1.5f}, {1, -2.0f}}}, {-0.25f, {{2, 0.75f}}}, {0.0f, {{1, 1.0f}}},
             {0.125f, {}}, {0.0f, {{0, -1.0f}, {1, 0.3f}, {2, 2.0f}}}};
  return w;
}

// The MLP on rows held column-major (what ops::ColumnSweep runs) adds the same terms in the same
// order as on the rows, so it must give the same bits; the row kernel is checked against the
// formula above. Row counts not a multiple of 16 or of the 128-row trip, columns in a scrambled
// order with an unheld slot.
TEST(Ops, SmallMlpOnColumnsGivesTheBitsOfTheRowKernel) {
  const std::int64_t width = 11;
  SmallMlp::Weights w = column_mlp_units();
  w.outputs = {{7, 0.5f, {{0, -1.0f}, {2, 1.0f}, {3, 2.0f}}}, {2, 0.0f, {{1, 0.5f}, {4, -0.7f}}},
               {9, 1.25f, {}}};
  const std::vector<std::int64_t> position = {4, -1, 0, 2, -1, -1, -1, 1, -1, 3, -1};
  for (const std::int64_t rows : {1, 16, 37, 128, 200}) {
    SCOPED_TRACE("rows " + std::to_string(rows));
    const SmallMlp op(rows, width, width, w, PostActivation::kRelu);
    const std::vector<float> initial = random_values(static_cast<std::size_t>(rows * width), 400);
    std::vector<float> by_rows = initial;
    op.execute(by_rows.data());
    const std::int64_t stride = (rows + 15) / 16 * 16 + 5;  // any stride that holds the groups
    std::vector<float> columns(static_cast<std::size_t>(5 * stride), 0.0f);
    for (std::int64_t r = 0; r < rows; ++r) {
      for (std::int64_t c = 0; c < width; ++c) {
        if (position[c] >= 0) columns[position[c] * stride + r] = initial[r * width + c];
      }
    }
    op.execute_columns(columns.data(), stride, rows, position);
    for (std::int64_t r = 0; r < rows; ++r) {
      for (std::int64_t c = 0; c < width; ++c) {
        if (position[c] >= 0) {
          ASSERT_EQ(columns[position[c] * stride + r], by_rows[r * width + c]) << "row " << r << " column " << c;
        }
      }
    }
  }
}

// Loop-invariant units (SmallMlp::invariant_prefixes / hoist / precompute_columns): with slot 7
// written by the loop, unit 0 (slots 3, 7) has 1 invariant leading term, unit 1 (slot 0) is
// wholly invariant, unit 2 (slot 7) has none, unit 3 (no terms) none to hoist, unit 4 (slots 3,
// 7, 0) 1 (its slot-0 term follows the written one: not leading). Computing those parts once
// into their own columns and continuing the chains from them runs the same fused multiply-adds
// in the same order, so the bits must be those of the unhoisted kernel, pass after pass (the
// written slot changes between passes, the hoisted columns do not).
TEST(Ops, SmallMlpHoistedInvariantUnitsGiveTheSameBits) {
  const std::int64_t width = 11;
  SmallMlp::Weights w = column_mlp_units();
  w.outputs = {{7, 0.5f, {{0, -1.0f}, {2, 1.0f}, {3, 2.0f}, {1, 0.6f}}}};
  std::vector<bool> written(static_cast<std::size_t>(width), false);
  written[7] = true;
  const std::vector<std::int64_t> position = {2, -1, -1, 0, -1, -1, -1, 1, -1, -1, -1};
  for (const std::int64_t rows : {1, 16, 37, 128, 200}) {
    SCOPED_TRACE("rows " + std::to_string(rows));
    const SmallMlp plain(rows, width, width, w, PostActivation::kRelu);
    EXPECT_EQ(plain.invariant_prefixes(written), (std::vector<std::int64_t>{1, 1, 0, 0, 1}));
    SmallMlp hoisted = plain;
    // Units 0, 1 and 4 in columns 3, 4, 5 of the block (unit 3's column is ignored: nothing
    // to hoist).
    hoisted.hoist(plain.invariant_prefixes(written), {3, 4, -1, 6, 5});
    EXPECT_EQ(hoisted.hoisted_units(), 3);
    EXPECT_EQ(hoisted.pass_terms(), plain.pass_terms() - 3);
    const std::int64_t stride = (rows + 15) / 16 * 16 + 3;
    std::vector<float> columns(static_cast<std::size_t>(7 * stride), 0.0f);
    const std::vector<float> initial = random_values(static_cast<std::size_t>(3 * stride), 410);
    std::copy(initial.begin(), initial.end(), columns.begin());
    // Pad rows past `rows` as the gather leaves them (0) in both.
    for (std::int64_t c = 0; c < 3; ++c) {
      std::fill(columns.begin() + c * stride + rows, columns.begin() + (c + 1) * stride, 0.0f);
    }
    std::vector<float> expected = columns;
    hoisted.precompute_columns(columns.data(), stride, rows, position);
    for (int pass = 0; pass < 3; ++pass) {
      plain.execute_columns(expected.data(), stride, rows, position);
      hoisted.execute_columns(columns.data(), stride, rows, position);
      for (std::int64_t c = 0; c < 3; ++c) {
        for (std::int64_t r = 0; r < rows; ++r) {
          ASSERT_EQ(columns[c * stride + r], expected[c * stride + r])
              << "pass " << pass << " column " << c << " row " << r;
        }
      }
    }
  }
  SmallMlp bad(16, width, width, w, PostActivation::kRelu);
  EXPECT_THROW(bad.hoist({1, 1}, {3, 4}), std::invalid_argument);
  EXPECT_THROW(bad.hoist({3, 1, 0, 0, 1}, {3, 4, -1, -1, 5}), std::invalid_argument);
}

// ---- ColumnSweep against the double twins. ----
// Bounds (ops/column_sweep.hpp; Higham 3.1): M[h, b, a] within
// gamma_(ceil(B / 16) + 4 + ceil(Tk / B)) scale sum_i |K V| of reference::linear_attention_product
// (blocks of B = R rows, one per tile, built as the engine does: key_block_sum per tile, then
// combine_key_blocks); O[r, h, b] within gamma_dk sum_a |Q M| of the exact product of the computed
// M, plus u |result| for the addition into x. The MLP is left out here (its bits are checked
// above); gather and scatter copy exactly and scatter writes back only O's and the MLP's slots.
struct ColumnSweepCase {
  std::int64_t heads, dk, dv, key_rows, tokens, tile_rows;
};

TEST(Ops, ColumnSweepMatchesTheReferenceWithinItsDerivedBound) {
  const ColumnSweepCase cases[] = {{1, 16, 1, 300, 340, 256},  // gd-hinge's step, 2 tiles
                                   {2, 17, 3, 37, 50, 50},     // dk past 16, a tile of 50
                                   {3, 5, 2, 200, 200, 64},    // keys filling every tile
                                   {1, 33, 4, 1, 20, 16}};     // one key
  std::uint64_t seed = 500;
  for (const ColumnSweepCase& c : cases) {
    SCOPED_TRACE("H " + std::to_string(c.heads) + " dk " + std::to_string(c.dk) + " dv " +
                 std::to_string(c.dv) + " Tk " + std::to_string(c.key_rows) + " T " +
                 std::to_string(c.tokens) + " R " + std::to_string(c.tile_rows));
    // Slots: unread ones first, queries (heads in reverse order), keys, values, O's slots, an
    // MLP input and output at the end; a slot no one reads in between.
    const std::int64_t dk = c.dk, dv = c.dv, heads = c.heads;
    const std::int64_t query_first = 2, key_first = query_first + heads * dk + 1;
    const std::int64_t value_first = key_first + heads * dk, out_first = value_first + heads * dv;
    const std::int64_t width = out_first + heads * dv + 2;
    LinearAttentionShape shape;
    shape.heads = heads;
    shape.qk_dim = dk;
    shape.v_dim = dv;
    shape.scale = 0.37f;
    shape.queries.row_stride = shape.keys.row_stride = shape.values.row_stride = width;
    for (std::int64_t h = 0; h < heads; ++h) {
      shape.queries.head_column.push_back(query_first + (heads - 1 - h) * dk);
      shape.keys.head_column.push_back(key_first + h * dk);
      shape.values.head_column.push_back(value_first + h * dv);
    }
    shape.out_stride = width;
    for (std::int64_t j = 0; j < heads * dv; ++j) shape.out_column.push_back(out_first + heads * dv - 1 - j);
    shape.accumulate = true;
    const LinearAttention attention(shape);
    // An MLP reading the slot past O's and writing the last: live, written, scattered back.
    SmallMlp::Weights w;
    w.inputs = {width - 2};
    w.units = {{0.5f, {{0, 1.0f}}}};
    w.outputs = {{width - 1, 0.0f, {{0, 0.25f}}}};
    const ColumnSweep with_mlp(attention, SmallMlp(c.tile_rows, width, width, w, PostActivation::kRelu), width);
    const ColumnSweep sweep(attention, std::nullopt, width);
    // Two more live slots, and the unit (on a slot nothing writes) hoisted into a third column.
    ASSERT_EQ(with_mlp.hoisted_units(), 1);
    ASSERT_EQ(with_mlp.columns(), sweep.columns() + 3);
    const ColumnSweep unhoisted(attention, SmallMlp(c.tile_rows, width, width, w, PostActivation::kRelu),
                                width, false);
    ASSERT_EQ(unhoisted.hoisted_units(), 0);
    ASSERT_EQ(unhoisted.columns(), sweep.columns() + 2);

    const std::int64_t rows = c.tile_rows, tiles = (c.tokens + rows - 1) / rows, padded = tiles * rows;
    const std::int64_t stride = ColumnSweep::column_stride(padded);
    const std::vector<float> x = random_values(static_cast<std::size_t>(padded * width), seed++);
    std::vector<float> columns(static_cast<std::size_t>(sweep.columns() * stride), -7.0f);
    for (std::int64_t first = 0; first < padded; first += rows) {
      sweep.gather(x.data() + first * width, rows, columns.data() + first, stride);
    }
    for (std::int64_t col = 0; col < sweep.columns(); ++col) {
      for (std::int64_t r = 0; r < padded; ++r) {
        ASSERT_EQ(columns[col * stride + r], x[r * width + sweep.slots()[col]]) << "gather";
      }
    }
    // M from per-tile block sums, as the engine builds it.
    const std::int64_t size = attention.product_size(), blocks = (c.key_rows + rows - 1) / rows;
    std::vector<float> sums(static_cast<std::size_t>(blocks * size)), product(static_cast<std::size_t>(size));
    for (std::int64_t block = 0; block < blocks; ++block) {
      sweep.key_block_sum(columns.data() + block * rows, stride,
                          std::min(rows, c.key_rows - block * rows), sums.data() + block * size);
    }
    attention.combine_key_blocks(sums.data(), blocks, product.data());
    const std::vector<double> exact_product =
        reference::linear_attention_product(x.data(), x.data(), c.key_rows, shape);
    const double roundings = static_cast<double>((rows + 15) / 16 + 4 + blocks);
    for (std::int64_t h = 0; h < heads; ++h) {
      for (std::int64_t b = 0; b < dv; ++b) {
        for (std::int64_t a = 0; a < dk; ++a) {
          double magnitude = 0;
          for (std::int64_t i = 0; i < c.key_rows; ++i) {
            magnitude += std::abs(static_cast<double>(x[i * width + shape.keys.head_column[h] + a]) *
                                  x[i * width + shape.values.head_column[h] + b]);
          }
          const std::size_t index = static_cast<std::size_t>((h * dv + b) * dk + a);
          ASSERT_NEAR(product[index], exact_product[index], gamma_of(roundings) * shape.scale * magnitude)
              << "M at head " << h << " b " << b << " a " << a;
        }
      }
    }
    // O added into x's slots, tile by tile, then the written slots back into rows.
    std::vector<float> out = x;
    for (std::int64_t first = 0; first < padded; first += rows) {
      sweep.attend_and_mlp(columns.data() + first, stride, rows, product.data());
      sweep.scatter(columns.data() + first, stride, rows, out.data() + first * width);
    }
    for (std::int64_t r = 0; r < padded; ++r) {
      std::vector<bool> written(static_cast<std::size_t>(width), false);
      for (std::int64_t h = 0; h < heads; ++h) {
        for (std::int64_t b = 0; b < dv; ++b) {
          double sum = 0, magnitude = 0;
          for (std::int64_t a = 0; a < dk; ++a) {
            const double term = static_cast<double>(x[r * width + shape.queries.head_column[h] + a]) *
                                product[static_cast<std::size_t>((h * dv + b) * dk + a)];
            sum += term;
            magnitude += std::abs(term);
          }
          const std::int64_t slot = shape.out_column[static_cast<std::size_t>(h * dv + b)];
          const double expected = x[r * width + slot] + sum;
          double bound = gamma_of(static_cast<double>(dk)) * magnitude;
          bound += kEps * (std::abs(expected) + bound);
          ASSERT_NEAR(out[r * width + slot], expected, bound) << "O at row " << r << " head " << h << " b " << b;
          written[static_cast<std::size_t>(slot)] = true;
        }
      }
      // Every other slot of x, read-only or unread, is left as it was.
      for (std::int64_t slot = 0; slot < width; ++slot) {
        if (!written[static_cast<std::size_t>(slot)]) {
          ASSERT_EQ(out[r * width + slot], x[r * width + slot]) << "row " << r << " slot " << slot;
        }
      }
    }
    // With the MLP: O's slots as without it (the same kernel), and the MLP's output slot
    // x + 0.25 relu(0.5 + x[in]) after O: three roundings (the unit, the output, the addition),
    // each within u of the magnitudes summed.
    std::vector<float> mlp_columns(static_cast<std::size_t>(with_mlp.columns() * stride));
    std::vector<float> mlp_out = x;
    for (std::int64_t first = 0; first < padded; first += rows) {
      with_mlp.gather(x.data() + first * width, rows, mlp_columns.data() + first, stride);
      with_mlp.attend_and_mlp(mlp_columns.data() + first, stride, rows, product.data());
      with_mlp.scatter(mlp_columns.data() + first, stride, rows, mlp_out.data() + first * width);
    }
    for (std::int64_t r = 0; r < padded; ++r) {
      for (std::int64_t slot = 0; slot < width - 1; ++slot) {
        ASSERT_EQ(mlp_out[r * width + slot], out[r * width + slot]) << "row " << r << " slot " << slot;
      }
      const double input = x[r * width + width - 2], before = x[r * width + width - 1];
      const double expected = before + 0.25 * std::max(0.5 + input, 0.0);
      ASSERT_NEAR(mlp_out[r * width + width - 1], expected,
                  gamma_of(3) * (std::abs(before) + 0.25 * (std::abs(input) + 0.5)))
          << "MLP output at row " << r;
    }
    // Hoisting changes no bit: three passes (M fixed) with and without it.
    std::vector<float> loop_out = x, unhoisted_out = x;
    std::vector<float> unhoisted_columns(static_cast<std::size_t>(unhoisted.columns() * stride));
    for (std::int64_t first = 0; first < padded; first += rows) {
      with_mlp.gather(x.data() + first * width, rows, mlp_columns.data() + first, stride);
      unhoisted.gather(x.data() + first * width, rows, unhoisted_columns.data() + first, stride);
      for (int pass = 0; pass < 3; ++pass) {
        with_mlp.attend_and_mlp(mlp_columns.data() + first, stride, rows, product.data());
        unhoisted.attend_and_mlp(unhoisted_columns.data() + first, stride, rows, product.data());
      }
      with_mlp.scatter(mlp_columns.data() + first, stride, rows, loop_out.data() + first * width);
      unhoisted.scatter(unhoisted_columns.data() + first, stride, rows, unhoisted_out.data() + first * width);
    }
    ASSERT_EQ(loop_out, unhoisted_out);
  }
}

TEST(Ops, ColumnSweepRejectsWhatItCannotRun) {
  LinearAttentionShape shape;
  shape.queries = shape.keys = shape.values = HeadColumns{4, {0}};
  shape.out_stride = 4;
  shape.out_column = {3};
  shape.accumulate = true;
  EXPECT_NO_THROW(ColumnSweep(LinearAttention(shape), std::nullopt, 4));
  EXPECT_THROW(ColumnSweep(LinearAttention(shape), std::nullopt, 5), std::invalid_argument);
  shape.accumulate = false;  // O written, not added: not a view of x
  EXPECT_THROW(ColumnSweep(LinearAttention(shape), std::nullopt, 4), std::invalid_argument);
}

TEST(Ops, SmallMlpRejectsWhatItCannotRun) {
  SmallMlp::Weights w;
  w.inputs = {0};
  w.units = {{0.0f, {{0, 1.0f}}}};
  w.outputs = {{1, 0.0f, {{0, 1.0f}}}};
  EXPECT_NO_THROW(SmallMlp(4, 2, 2, w, PostActivation::kRelu));
  EXPECT_THROW(SmallMlp(4, 2, 2, w, PostActivation::kGelu), std::invalid_argument);
  EXPECT_THROW(SmallMlp(4, 2, 1, w, PostActivation::kRelu), std::invalid_argument);  // column 1
  w.units[0].terms[0].index = 1;  // no input 1
  EXPECT_THROW(SmallMlp(4, 2, 2, w, PostActivation::kRelu), std::invalid_argument);
}

TEST(Ops, LinearAttentionRejectsInconsistentShapes) {
  LinearAttentionShape shape;
  shape.heads = 2;
  shape.queries = shape.keys = shape.values = HeadColumns::packed(8, 2, 1);
  shape.out_column = {0};  // [H dv] needs two
  EXPECT_THROW(LinearAttention{shape}, std::invalid_argument);
  shape.out_column = {0, 1};
  EXPECT_NO_THROW(LinearAttention{shape});
  shape.keys.head_column.pop_back();
  EXPECT_THROW(LinearAttention{shape}, std::invalid_argument);
}

TEST(Ops, GeluHandlesInfinityAndNaN) {
  std::vector<float> x = {INFINITY, -INFINITY, NAN, -NAN};
  std::vector<float> erf_form(4), tanh_form(4);
  gelu(x.data(), erf_form.data(), 4, GeluForm::kErf);
  gelu(x.data(), tanh_form.data(), 4, GeluForm::kTanh);
  EXPECT_EQ(erf_form[0], INFINITY);
  EXPECT_EQ(erf_form[1], 0.0f);
  EXPECT_EQ(tanh_form[0], INFINITY);
  EXPECT_LE(std::abs(tanh_form[1]), 3e-37f);
  for (int i : {2, 3}) {
    EXPECT_TRUE(std::isnan(erf_form[static_cast<std::size_t>(i)]));
    EXPECT_TRUE(std::isnan(tanh_form[static_cast<std::size_t>(i)]));
  }
}

TEST(Ops, ConvertRoundsToNearestEvenLikeTheReference) {
  std::vector<float> src = random_values(1000, 12);
  // Ties and specials: exactly half-way between two bf16 values, both parities.
  src[0] = std::bit_cast<float>(0x3f808000u);  // 1.00390625: tie, rounds down to even
  src[1] = std::bit_cast<float>(0x3f818000u);  // tie, rounds up to even
  src[2] = 0.0f;
  src[3] = -0.0f;
  src[4] = 3.0e38f;
  const Convert op(Layout::dense({1000}, DType::kF32), Layout::dense({1000}, DType::kBF16));
  std::vector<std::uint16_t> bits(src.size());
  std::vector<std::byte> scratch(op.scratchpad_bytes() + 64);
  op.execute(src.data(), bits.data(), scratch.data());
  for (std::size_t i = 0; i < src.size(); ++i) {
    ASSERT_EQ(bits[i], reference::bf16_bits(src[i])) << i << ": " << src[i];
  }
}

}  // namespace
}  // namespace iclbench::ops
