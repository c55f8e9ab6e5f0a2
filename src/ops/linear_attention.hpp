#pragma once
// Linear attention for tiny per-head value widths, in f32: the product M = scale K^T V of one
// prompt's keys and values, then O = Q M per row tile, on strided row views (so Q, K and V can
// be column ranges of the residual stream itself, and O can be added straight into it). The
// fast twin of the two oneDNN matmuls the engine otherwise runs (M [H, dk, dv] per prompt,
// Q M per tile): at dv of a few columns those are matrix-vector products that oneDNN runs as
// many tiny calls, and copies of Q, K and V into their own buffers cost more than the products.
//
// Shapes: H heads, dk query/key width, dv value width, Tk key rows, R query rows.
//   M[h, b, a] = scale * sum_{i < Tk} K[i, h, a] V[i, h, b]     [H, dv, dk] (stored transposed,
//                                                                so that Q M reads rows of it)
//   O[r, h, b] (= or +=) sum_{a < dk} Q[r, h, a] M[h, b, a]      [R, H dv]
// where X[i, h, a] = x_base[i * row_stride + head_column[h] + a] (a head's dk or dv columns are
// consecutive; heads may sit anywhere), and O[r, h, b] is out[r * row_stride + column[h dv + b]].
//
// Summation order (fixed, so that a result does not depend on who runs it): M's sum over rows
// runs over blocks of B = key_block_rows consecutive key rows (B = Tk when 0); within a block in
// kRowLanes interleaved partial sums (row i goes to sum i mod kRowLanes), added in order at the
// block's end; the block sums are added in block order, then scaled. So M can also be built from
// block sums computed one row tile at a time (key_block_sum, then combine_key_blocks): the
// engine does that while the tile is in cache, and gets the same bits as keys_times_values.
// O's dot products run over a in order of 16-lane chunks, each lane a partial sum, then reduced
// by a fixed tree (16 rows at once; 4 additions per lane).
// Error (Higham, Accuracy and Stability, 3.1; u = 2^-24, gamma_m = m u / (1 - m u)): a value that
// passes m roundings errs by at most gamma_m times the sum of its terms' magnitudes, so M[h, b, a]
// is within gamma_(ceil(B / kRowLanes) + kRowLanes + ceil(Tk / B) - 1) scale sum_i |K V| (the
// lane's fused multiply-adds, kRowLanes - 1 lane additions, ceil(Tk / B) - 1 block additions, the
// scale), and O within
// gamma_(ceil(dk / 16) + 4) sum_a |Q M| plus sum_a |Q| |M's error| (one more u when accumulating).
// ops_test checks both against the slow twins reference::linear_attention_product and
// reference::linear_attention_out (double, ops/eigen_ops.hpp).

#include <cstdint>
#include <vector>

namespace iclbench::ops {

// Where each head's columns sit in a row-major view of rows `row_stride` elements apart.
struct HeadColumns {
  std::int64_t row_stride = 0;
  std::vector<std::int64_t> head_column;  // [H]: the column of head h's first element
  // Heads at consecutive blocks of `width` columns from `first` ([H width] rows of a buffer).
  static HeadColumns packed(std::int64_t row_stride, std::int64_t heads, std::int64_t width,
                            std::int64_t first = 0);
};

struct LinearAttentionShape {
  std::int64_t heads = 1, qk_dim = 1, v_dim = 1;  // H, dk, dv
  float scale = 1.0f;  // includes 1/n for the mean over keys under the icl mask
  HeadColumns queries, keys, values;
  std::int64_t out_stride = 0;             // elements between O's rows
  std::vector<std::int64_t> out_column;    // [H dv]: the column of O[., h, b] in its row
  bool accumulate = false;                 // O is added to what is there
  std::int64_t key_block_rows = 0;         // B: key rows per block of M's sum (0: all of them)
};

class LinearAttention {
 public:
  // Throws std::invalid_argument on inconsistent sizes (a head list not [H], columns not [H dv],
  // nonpositive widths).
  explicit LinearAttention(LinearAttentionShape shape);
  // The engine takes this kernel when every head's value width is at most this: beyond it the
  // products are real GEMMs that oneDNN blocks better.
  static constexpr std::int64_t kMaxValueWidth = 4;
  static constexpr std::int64_t kRowLanes = 4;
  // keys / values: the first key row of the views; product: [H, dv, dk] f32 (written).
  void keys_times_values(const float* keys, const float* values, std::int64_t key_rows,
                         float* product) const;
  // The same sum in pieces: block_sum [H, dv, dk] = sum over `rows` (at most B) key rows of
  // K^T V, unscaled, exactly as keys_times_values sums one block; then product = scale times the
  // `blocks` block sums [blocks, H, dv, dk] added in order. Bit-identical to keys_times_values
  // on the same rows when every block but the last has B rows.
  void key_block_sum(const float* keys, const float* values, std::int64_t rows,
                     float* block_sum) const;
  void combine_key_blocks(const float* block_sums, std::int64_t blocks, float* product) const;
  // B for `key_rows` keys (key_block_rows, or all of them when 0 or more).
  std::int64_t key_block_rows(std::int64_t key_rows) const;
  // queries: the first query row of the view; out: the first row of O's view.
  void queries_times_product(const float* queries, std::int64_t rows, const float* product,
                             float* out) const;
  const LinearAttentionShape& shape() const { return shape_; }
  std::int64_t product_size() const { return shape_.heads * shape_.qk_dim * shape_.v_dim; }

 private:
  LinearAttentionShape shape_;
};

}  // namespace iclbench::ops
