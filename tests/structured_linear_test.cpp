// ops::StructuredLinear, the fast twin of ops::Linear for weights with structure, against the
// dense ops::Linear and the Eigen reference (ops::reference::linear) on the same dense matrix,
// its structure written down by hand: zero input rows, zero columns, selection columns (scale 1
// and scaled), a live block; written and accumulating maps; ReLU and GELU; row-major and
// column-major tiles.

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "ops/dnnl_ops.hpp"
#include "ops/eigen_ops.hpp"
#include "ops/structured_linear.hpp"
#include "util/philox.hpp"

namespace iclbench::ops {
namespace {

constexpr double kEps = 0x1p-24;  // unit roundoff of f32

std::vector<float> random_values(std::size_t count, std::uint64_t seed) {
  std::vector<float> values(count);
  util::DrawSequence draws(seed, 0, 0, util::Stream::kContextInput);
  for (float& value : values) value = static_cast<float>(draws.normal());
  return values;
}

// W [12, 10]: rows 8..11 zero (inputs never read); column 0 selects input 3, column 1 is 0.5 *
// input 5, columns 2 and 7 are zero, columns 3..6 and 8..9 random on rows 0..7 (the live block).
constexpr std::int64_t kIn = 12, kOut = 10, kLiveRows = 8;
struct Planted {
  std::vector<float> weights, bias;
  StructuredLinear::Columns columns;
};
Planted planted(bool accumulate, bool copies) {
  Planted p{std::vector<float>(kIn * kOut, 0.0f), random_values(kOut, 2), {}};
  const std::vector<float> random = random_values(kIn * kOut, 1);
  const std::vector<std::int64_t> live = {3, 4, 5, 6, 8, 9};
  for (std::int64_t j : live)
    for (std::int64_t i = 0; i < kLiveRows; ++i) p.weights[i * kOut + j] = random[i * kOut + j];
  p.weights[3 * kOut + 0] = 1.0f;
  p.weights[5 * kOut + 1] = 0.5f;
  p.bias[0] = p.bias[1] = p.bias[2] = p.bias[7] = 0.0f;
  // The structure, by hand.
  for (std::int64_t i = 0; i < kLiveRows; ++i) p.columns.inputs.push_back(i);
  std::vector<std::int64_t> outputs = live;
  if (copies) {
    p.columns.copies = {{3, 0, 1.0f}, {5, 1, 0.5f}};
  } else {
    outputs.insert(outputs.begin(), {0, 1});
  }
  p.columns.outputs = outputs;
  for (std::int64_t i = 0; i < kLiveRows; ++i)
    for (std::int64_t j : outputs) p.columns.weights.push_back(p.weights[i * kOut + j]);
  for (std::int64_t j : outputs) p.columns.bias.push_back(p.bias[j]);
  if (!accumulate) p.columns.zero_columns = {2, 7};
  return p;
}

struct Case {
  PostActivation activation;
  bool accumulate;
  bool column_major_dst;
  std::int64_t rows;
};

TEST(StructuredLinear, MatchesTheDenseLinearAndTheReference) {
  for (const Case& c : {Case{PostActivation::kNone, false, false, 1},
                        Case{PostActivation::kNone, true, false, 70},
                        Case{PostActivation::kRelu, false, true, 129},
                        Case{PostActivation::kGelu, false, false, 64},
                        Case{PostActivation::kNone, true, true, 200}}) {
    const bool copies = c.activation == PostActivation::kNone;
    const Planted p = planted(c.accumulate, copies);
    const std::int64_t rows = c.rows, src_stride = kIn + 3;
    const std::vector<float> src = random_values(rows * src_stride, 3);
    // Destination: row-major with 2 spare columns, or column-major [kOut, rows].
    const std::vector<float> initial = random_values(rows * (kOut + 2), 4);
    std::vector<float> expected(initial.begin(), initial.begin() + rows * (kOut + 2));
    reference::linear(src.data(), src_stride, p.weights, p.bias, expected.data(), kOut + 2, rows,
                      kIn, kOut, c.activation, c.accumulate);
    std::vector<float> dense = initial;
    const Linear linear(Layout::rows(rows, kIn, src_stride, DType::kF32), p.weights, p.bias,
                        Layout::rows(rows, kOut, kOut + 2, DType::kF32), c.activation,
                        c.accumulate);
    std::vector<std::byte> scratch(linear.scratchpad_bytes() + 64);
    linear.execute(src.data(), dense.data(), scratch.data());

    const StructuredLinear::Strides dst_strides =
        c.column_major_dst ? StructuredLinear::Strides{1, rows}
                           : StructuredLinear::Strides{kOut + 2, 1};
    std::vector<float> structured(static_cast<std::size_t>(rows * (kOut + 2)));
    for (std::int64_t i = 0; i < rows; ++i)
      for (std::int64_t j = 0; j < kOut + 2; ++j) {
        const std::int64_t at = c.column_major_dst ? j * rows + i : i * (kOut + 2) + j;
        structured[at] = initial[i * (kOut + 2) + j];
      }
    const StructuredLinear op(rows, {src_stride, 1}, kIn, dst_strides, kOut + 2, p.columns,
                              c.activation, c.accumulate);
    op.execute(src.data(), structured.data());
    // The live block's multiply-adds; each copy's multiply, and its add when accumulating.
    EXPECT_EQ(op.flops_per_row(), 2.0 * kLiveRows * p.columns.outputs.size() +
                                      (c.accumulate ? 2.0 : 1.0) * p.columns.copies.size());

    for (std::int64_t i = 0; i < rows; ++i) {
      for (std::int64_t j = 0; j < kOut + 2; ++j) {
        const float found = structured[c.column_major_dst ? j * rows + i : i * (kOut + 2) + j];
        const std::size_t at = static_cast<std::size_t>(i * (kOut + 2) + j);
        const std::string where = "(" + std::to_string(i) + "," + std::to_string(j) + ")";
        if (j >= kOut) {  // outside the map: untouched
          EXPECT_EQ(found, initial[at]) << where;
          continue;
        }
        if (copies && j < 2) {
          // A selection: s * x rounded once, as the dense map computes it (plus exact zeros).
          EXPECT_EQ(found, dense[at]) << where;
        }
        if (!c.accumulate && (j == 2 || j == 7)) {
          EXPECT_EQ(found, 0.0f) << where;
          EXPECT_EQ(dense[at], 0.0f) << where;
        }
        // Same sums in another order: each of the two errs by at most gamma_(k+1) times
        // sum |w x| + |b| (+ |dst| when accumulating), k = 8 live terms (Higham 3.1); GELU's slope
        // is at most 1.13, and its two implementations (oneDNN's erf with 1.5e-7 absolute error,
        // ours far tighter; see ops/gelu.hpp) add at most 1.5e-7 |z| / 2 + 2 u |GELU|.
        double magnitude = std::abs(p.bias[j]) + (c.accumulate ? std::abs(initial[at]) : 0.0);
        for (std::int64_t l = 0; l < kIn; ++l)
          magnitude += std::abs(src[i * src_stride + l] * p.weights[l * kOut + j]);
        double tolerance = 1.13 * 2 * kEps * (kLiveRows + 2) * magnitude;
        if (c.activation == PostActivation::kGelu) tolerance += 1e-7 * magnitude + 4 * kEps * magnitude;
        EXPECT_NEAR(found, dense[at], 2 * tolerance + 1e-30) << where;
        EXPECT_NEAR(found, expected[at], 2 * tolerance + 1e-30) << where;
      }
    }
  }
}

TEST(StructuredLinear, RejectsInconsistentColumns) {
  StructuredLinear::Columns columns;
  columns.inputs = {0};
  columns.outputs = {0, 1};
  columns.weights = {1.0f};  // needs 1 x 2
  columns.bias = {0.0f, 0.0f};
  EXPECT_THROW(StructuredLinear(4, {2, 1}, 2, {2, 1}, 2, columns, PostActivation::kNone, false),
               std::invalid_argument);
  columns.weights = {1.0f, 2.0f};
  columns.inputs = {5};  // outside src
  EXPECT_THROW(StructuredLinear(4, {2, 1}, 2, {2, 1}, 2, columns, PostActivation::kNone, false),
               std::invalid_argument);
  columns.inputs = {0};
  columns.zero_columns = {1};  // an accumulating map leaves columns alone
  EXPECT_THROW(StructuredLinear(4, {2, 1}, 2, {2, 1}, 2, columns, PostActivation::kNone, true),
               std::invalid_argument);
}

}  // namespace
}  // namespace iclbench::ops
