#pragma once
// A linear map over f32 rows that computes only what its weights make non-trivial: the fast
// twin of ops::Linear for weights with structure (the engine's plan finds it; see
// model/weight_structure.hpp). Per row r of a tile:
//   dst[r, outputs[j]]  (= or +=)  act(bias[j] + sum_k src[r, inputs[k]] W[k, j])   (live block)
//   dst[r, copy.target] (= or +=)  copy.scale * src[r, copy.source]                 (selections)
//   dst[r, c] = 0 for every c in zero_columns (written maps only: an accumulating map leaves them)
// Every other column of dst is left alone. W is the packed live block [|inputs|, |outputs|],
// row-major. Exactness against the dense map: the dense map adds the same products plus exact
// zeros (x * 0 = 0 and s + 0 = s for finite values), so a copy is bit-identical (s * x rounded
// once either way) and a live column differs only by the order of its sums: with k live terms
// both orders err by at most gamma_(k+1) = (k + 1) u / (1 - (k + 1) u) times sum |w x| + |b|
// (Higham, Accuracy and Stability, 3.1), u = 2^-24. The slow twin is ops::Linear on the dense
// matrix (engine_test and ops_test compare them).

#include <cstdint>
#include <span>
#include <vector>

#include "ops/dnnl_ops.hpp"

namespace iclbench::ops {

class StructuredLinear {
 public:
  struct Copy {
    std::int64_t source = 0, target = 0;
    float scale = 1.0f;
  };
  struct Columns {
    std::vector<std::int64_t> inputs;   // columns of src the live block reads
    std::vector<std::int64_t> outputs;  // columns of dst it writes
    std::vector<float> weights;         // [inputs, outputs] row-major
    std::vector<float> bias;            // [outputs]
    std::vector<Copy> copies;           // selection columns
    std::vector<std::int64_t> zero_columns;
  };
  // Where element (row r, column c) of a tile is: r * row + c * column elements from its start
  // (row-major [R, width]: {width, 1}; column-major [width, R]: {1, R}).
  struct Strides {
    std::int64_t row = 0, column = 1;
  };
  // rows: R; src / dst: the tiles' strides; src_width / dst_width: their columns (for range
  // checks). Activation applies to the live block only (a copy is a column without activation:
  // the analysis makes one only when the activation is kNone). Throws std::invalid_argument on
  // inconsistent sizes.
  StructuredLinear(std::int64_t rows, Strides src, std::int64_t src_width, Strides dst,
                   std::int64_t dst_width, Columns columns, PostActivation activation,
                   bool accumulate);
  // Rows are taken kRowBlock at a time and the live block kOutputBlock columns at a time, each
  // input column gathered once per block and the products vectorised over the rows.
  void execute(const float* src, float* dst) const;
  static constexpr std::int64_t kRowBlock = 64, kOutputBlock = 8;
  // FLOPs per row that execute() does: the live block's multiply-adds, 2 each; a copy's
  // multiply by its scale, 1, and its add into dst when accumulating, 1 more; zero fills 0.
  // (Counting copies as 0 left a plan of selections, such as --explicit-linear's Q and K, with
  // time but no FLOPs.)
  double flops_per_row() const {
    return 2.0 * static_cast<double>(columns_.inputs.size() * columns_.outputs.size()) +
           (accumulate_ ? 2.0 : 1.0) * static_cast<double>(columns_.copies.size());
  }
  bool empty() const {
    return columns_.outputs.empty() && columns_.copies.empty() && columns_.zero_columns.empty();
  }
  const char* implementation() const { return "structured:columns"; }

 private:
  // Runs of consecutive columns, so that a contiguous selection becomes one copy_n.
  struct CopyRun {
    std::int64_t source = 0, target = 0, length = 0;
    float scale = 1.0f;
  };
  struct ZeroRun {
    std::int64_t first = 0, length = 0;
  };
  std::int64_t rows_ = 0;
  Strides src_, dst_;
  Columns columns_;
  std::vector<CopyRun> copy_runs_;
  std::vector<ZeroRun> zero_runs_;
  PostActivation activation_ = PostActivation::kNone;
  bool accumulate_ = false;
};

}  // namespace iclbench::ops
