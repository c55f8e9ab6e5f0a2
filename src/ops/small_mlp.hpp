#pragma once
// An MLP block whose live part is small, run in place on f32 rows with everything in registers:
// the fast twin of the structured MLP's two ops::StructuredLinear maps (and of the dense
// up/down ops::Linear pair) for weights with few live inputs, hidden units and outputs, such as
// the constructions' gradient MLPs (model/constructions.hpp). Per row r of a tile x [R, width]:
//   h[j]            = act(unit_bias[j] + sum_{t in up terms of j} x[r, inputs[t.index]] t.weight)
//   x[r, column[o]] += output_bias[o] + sum_{t in down terms of o} h[t.index] t.weight
// every h from the row as it was before any output is added (so an output may be an input).
// Only nonzero weights are terms (the plan leaves the exact zeros out), and no hidden tile goes
// through memory: 16 rows at a time are gathered into registers (or, when every column touched
// lies within 4 consecutive ones, loaded 4 values per row and transposed), run through both
// maps, and their outputs added back.
// Summation order (fixed): a unit's bias, then its terms in order (one fused multiply-add chain
// from the bias: no addition of its own); an output's bias, then its terms in order, then the
// addition into x. Error (Higham, Accuracy and Stability, 3.1, u = 2^-24): a unit with k terms
// is within gamma_k (sum |w x| + |b|) <= gamma_(k+1) (sum |w x| + |b|) of exact (ReLU is
// 1-Lipschitz), and an output with m terms within gamma_(m+1) (sum |w h| + |b|) plus
// sum |w| times its units' errors, plus u |result| for the addition into x: the same bound as
// the two ops::StructuredLinear maps, which add the same terms. ops_test checks it against a
// double evaluation of the same formula; the engine tests against the dense path.

#include <cstdint>
#include <vector>

#include "ops/dnnl_ops.hpp"

namespace iclbench::ops {

class SmallMlp {
 public:
  struct Term {
    std::int64_t index = 0;  // an input (up) or a hidden unit (down)
    float weight = 0.0f;
  };
  struct Unit {
    float bias = 0.0f;
    std::vector<Term> terms;  // over `inputs`
  };
  struct Output {
    std::int64_t column = 0;  // of x
    float bias = 0.0f;
    std::vector<Term> terms;  // over the units
  };
  struct Weights {
    std::vector<std::int64_t> inputs;  // columns of x the units read
    std::vector<Unit> units;
    std::vector<Output> outputs;
  };
  // The sizes the register kernel holds (the plan uses the structured maps beyond them).
  static constexpr std::int64_t kMaxInputs = 16, kMaxUnits = 32, kMaxOutputs = 16;
  // Whether an MLP of these sizes and activation fits this kernel.
  static bool fits(std::int64_t inputs, std::int64_t units, std::int64_t outputs,
                   PostActivation activation);
  // rows: R; row_stride: elements between x's rows; width: x's columns (for range checks).
  // Throws std::invalid_argument when it does not fit or an index is out of range.
  SmallMlp(std::int64_t rows, std::int64_t row_stride, std::int64_t width, Weights weights,
           PostActivation activation);
  void execute(float* x) const;
  // The same MLP on rows stored column-major (ops::ColumnSweep): x's column c is the `rows`
  // consecutive floats at columns + position[c] * column_stride (position: [width], -1 for a
  // column held nowhere; every input and output must be held). `rows` is rounded up to a
  // multiple of 16: the column block must hold those rows (they run through the MLP like any
  // other). The same sums in the same order as execute, so the same bits.
  void execute_columns(float* columns, std::int64_t column_stride, std::int64_t rows,
                       const std::vector<std::int64_t>& position) const;
  // Loop-invariant units (ops::ColumnSweep runs this MLP once per pass of a loop). Per unit, the
  // number of its leading terms whose input column is not in `written` ([width]: the columns the
  // loop writes): all its terms, and the unit's value is the same in every pass; some, and so is
  // the partial sum of its bias and those terms. Leading terms only, so that a pass continuing
  // the unit's chain from the stored partial sum adds the same terms in the same order.
  std::vector<std::int64_t> invariant_prefixes(const std::vector<bool>& written) const;
  // Has execute_columns read unit j's invariant part from the column block's column
  // hoist_column[j] (-1: none) instead of computing it: its value (activation applied) when
  // prefix[j] is all its terms, else bias + its first prefix[j] terms, which precompute_columns
  // writes. The same fused multiply-adds in the same order either way, so the same bits.
  // Throws std::invalid_argument on sizes that do not match the units.
  void hoist(std::vector<std::int64_t> prefix, std::vector<std::int64_t> hoist_column);
  // The hoisted columns of `rows` rows (rounded up to 16, as execute_columns) from the inputs'
  // columns (position as execute_columns).
  void precompute_columns(float* columns, std::int64_t column_stride, std::int64_t rows,
                          const std::vector<std::int64_t>& position) const;
  // Units whose invariant part is hoisted.
  std::int64_t hoisted_units() const;
  // Multiply-adds per row and pass left to execute_columns once hoisted (for reports).
  std::int64_t pass_terms() const;
  const Weights& weights() const { return weights_; }
  // Multiply-adds per row (the terms), as 2 FLOPs each.
  double flops_per_row() const { return 2.0 * static_cast<double>(terms_); }
  const char* implementation() const { return "structured:small_mlp"; }

 private:
  std::int64_t rows_ = 0, row_stride_ = 0;
  Weights weights_;
  PostActivation activation_ = PostActivation::kNone;
  std::int64_t terms_ = 0;
  // The kernel's trips of 128 rows over `rows`: load(r0, in) fills the inputs of rows
  // [r0, r0 + 128), both maps run, and add(r0, out) adds the outputs (AVX-512 builds only).
  // start(r0, j, sum) sets unit j's chain start for those rows and returns its first term.
  template <typename Load, typename Start, typename Add>
  void trips(std::int64_t rows, const Load& load, const Start& start, const Add& add) const;
  // The terms flattened: unit j's are [unit_end[j-1], unit_end[j]) of up_*, output o's
  // [output_end[o-1], output_end[o]) of down_*.
  std::vector<std::int32_t> up_index_, down_index_;
  std::vector<float> up_weight_, down_weight_;
  std::vector<std::int64_t> unit_end_, output_end_;
  // Whether every column read or written lies in [first_column_, first_column_ + 4) (then rows
  // are loaded 4 values at a time instead of gathered), and the lanes of those 4 it writes.
  // Hoisting (all 0 / -1 unless hoist was called): unit j's leading terms done once, the column
  // holding their result, and which inputs a pass still reads.
  std::vector<std::int64_t> prefix_, hoist_column_;
  std::vector<bool> pass_input_;
  bool narrow_ = false;
  std::int64_t first_column_ = 0;
  std::uint8_t output_lanes_ = 0;
};

}  // namespace iclbench::ops
