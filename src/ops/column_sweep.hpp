#pragma once
// A looped linear-attention layer run on the live columns of its rows stored column-major: the
// fast path for a layer whose Q, K and V only select slots of x, whose O is added straight into
// slots of x, and whose MLP (if any) is an ops::SmallMlp (the constructions' GD steps). Row-major
// rows of width D make each row-pass a horizontal dot product over a few scattered slots; held
// column-major, 16 rows are one vector, so
//   O = Q M        is dk loads and dk fused multiply-adds with broadcast M per 16 rows,
//   the MLP        runs lane-wise on 16 rows (SmallMlp::execute_columns, no gathers),
//   K^T V's block  is dk fused multiply-adds into per-column vector accumulators per 16 rows,
// and the loop runs on the C live columns only; the read-only ones (x_i, y_i) are transposed once
// before the loop and the written ones (p, g) scattered back once after it (gather / scatter).
// Loop-invariant MLP work is done once too: a hidden unit whose leading terms read only slots no
// pass writes (neither O's nor the MLP's outputs; decided from the nonzero weights, e.g.
// gd-hinge's relu(y), relu(-y) and the y-terms of its two hinge units) has that part (its value,
// or the partial sum bias + those terms) computed by gather into a column after the live ones,
// and every pass continues the unit's fused multiply-add chain from it: the same operations in
// the same order, so the same bits as computing it in every pass.
//
// Shapes: D width of x, C live columns (the slots Q, K, V, O and the MLP read or write, in
// ascending slot order, so a head's consecutive slots stay consecutive), S column stride (at
// least the rows of every tile rounded up to 16), R rows of a tile, Tk key rows of a block,
// H heads, dk / dv per-head widths, U hoisted MLP units (at most its F hidden units). The column
// block of a tile is [C + U, S] f32 starting at its first row: column c, row r at
// columns[c * S + r]. Products M [H, dv, dk] and block sums
// [H, dv, dk] as in ops::LinearAttention (whose shape gives the heads' slots, the scale and the
// output slots; accumulate must be set).
//
// Summation order (fixed, independent of who runs a tile; the tile partition is the plan's):
//   O[r, h, b] = sum over a in order 0 .. dk - 1 of Q[r, h, a] M[h, b, a], one fused
//                multiply-add chain from 0, then added into x's slot;
//   block sum  = sum over the block's key rows of K[i, h, a] V[i, h, b]: lane l of a vector
//                accumulator takes rows i = l (mod 16) in row order (fused multiply-adds), then
//                the 16 lanes are added by a fixed tree (lanes l and l + 8, then + 4, + 2, + 1);
//   M          = scale times the block sums added in block order
//                (ops::LinearAttention::combine_key_blocks).
// This differs from ops::LinearAttention's row-major order (4 interleaved row sums per block, a
// 16-lane tree for O), so the bits differ from that path; the error bound is tighter.
// Error (Higham, Accuracy and Stability, 3.1; u = 2^-24, gamma_m = m u / (1 - m u)): a value
// that passes m roundings errs by at most gamma_m times the sum of its terms' magnitudes, so
//   M[h, b, a] is within gamma_(ceil(B / 16) + 4 + ceil(Tk / B)) scale sum_i |K V|
//     (ceil(B / 16) fused multiply-adds per lane, 4 tree additions, ceil(Tk / B) - 1 block
//      additions, the scale; B the block rows),
//   O[r, h, b] within gamma_dk sum_a |Q M| + sum_a |Q| |M's error|, plus u |result| for the
//     addition into x,
// and the MLP as ops::SmallMlp states (the same sums in the same order). ops_test checks each
// against the double twins (reference::linear_attention_product / _out and the MLP's formula).

#include <algorithm>
#include <cstdint>
#include <optional>
#include <vector>

#include "ops/linear_attention.hpp"
#include "ops/small_mlp.hpp"

namespace iclbench::ops {

class ColumnSweep {
 public:
  // attention: the layer's linear attention on views of x (row strides D, accumulate set);
  // mlp: its MLP on x's rows, if it has one; width: D. Throws std::invalid_argument when a view's
  // row stride is not D, O is not accumulated, or a slot is out of range.
  // hoist_invariant_units: compute the MLP's loop-invariant parts once in gather (see above);
  // false runs every unit in every pass (the same bits, more work: for tests and benchmarks).
  ColumnSweep(const LinearAttention& attention, const std::optional<SmallMlp>& mlp,
              std::int64_t width, bool hoist_invariant_units = true);
  // The columns of a tile's block: C live slots then the U hoisted units'. At most
  // max_columns(D, F) for an MLP of F hidden units (what the engine allocates).
  std::int64_t columns() const {
    return static_cast<std::int64_t>(slots_.size()) + hoisted_units();
  }
  static std::int64_t max_columns(std::int64_t width, std::int64_t hidden) {
    return width + std::min(hidden, SmallMlp::kMaxUnits);
  }
  // Which slots of x the first C columns are ([C], ascending).
  const std::vector<std::int64_t>& slots() const { return slots_; }
  // S for tiles of up to `rows` rows in a block of `padded_rows` rows: padded_rows rounded up
  // to 16.
  static std::int64_t column_stride(std::int64_t padded_rows) { return (padded_rows + 15) / 16 * 16; }

  // columns [C, S] (a tile's) = the live slots of x's `rows` rows [rows, D]; the rows up to the
  // next multiple of 16 are set to 0 (the kernels run whole groups of 16 rows), so every tile
  // but the last must have a multiple of 16 rows (the engine's do: R = 256 when there are
  // several). Then the hoisted MLP columns from them (SmallMlp::precompute_columns): call it
  // once before the loop; no pass writes the slots they read.
  void gather(const float* x, std::int64_t rows, float* columns, std::int64_t stride) const;
  // x's written slots (O's and the MLP's outputs) of `rows` rows = the tile's columns.
  void scatter(const float* columns, std::int64_t stride, std::int64_t rows, float* x) const;
  // block_sum [H, dv, dk] = the unscaled K^T V of the tile's first `key_rows` rows (<= R).
  void key_block_sum(const float* columns, std::int64_t stride, std::int64_t key_rows,
                     float* block_sum) const;
  // On the tile's `rows` rows: x[O's slots] += Q M (M = product [H, dv, dk]), then the MLP.
  void attend_and_mlp(float* columns, std::int64_t stride, std::int64_t rows,
                      const float* product) const;

  // U: the MLP units whose loop-invariant part gather computes.
  std::int64_t hoisted_units() const { return mlp_ ? mlp_->hoisted_units() : 0; }
  const LinearAttention& attention() const { return attention_; }
  const char* implementation() const { return "iclbench:column_sweep"; }

 private:
  LinearAttention attention_;
  std::optional<SmallMlp> mlp_;
  std::vector<std::int64_t> slots_;     // [C]: the live slots, ascending
  std::vector<std::int64_t> position_;  // [D]: slot -> its column, or -1
  std::vector<std::int64_t> written_;   // the columns scatter writes back
  // Each head's first query, key and value column, and each O column's, in the column block.
  std::vector<std::int64_t> query_column_, key_column_, value_column_, out_column_;
};

}  // namespace iclbench::ops
