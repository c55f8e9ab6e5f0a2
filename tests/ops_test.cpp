// Every oneDNN op against its Eigen twin on awkward shapes (odd sizes, K not a multiple of 16,
// one row, strided rows), f32 and bf16. Tolerances: a dot product of length K in f32 errs by at
// most about K eps |a||b| (sequential) and typically sqrt(K) eps; we allow 2 eps K (sum of
// |a_l b_l|), which is a true worst-case bound for any summation order. bf16 operands carry a
// relative error of 2^-9 each, so each product up to 2^-8 more: 2^-8 sum|a_l b_l| + the f32 term.

#include <gtest/gtest.h>
#include <xmmintrin.h>

#include <cmath>
#include <vector>

#include "ops/dnnl_ops.hpp"
#include "ops/eigen_ops.hpp"
#include "ops/row_softmax.hpp"
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
