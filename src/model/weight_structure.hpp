#pragma once
// Internal to the engine: plan-time weight structure. When a plan is built, each projection's
// weights are read by value (never by a model's name) for
//   - zero columns: outputs no weight and no bias reaches (a written map fills them with 0, an
//     accumulating map leaves them alone);
//   - selection columns: one weight s, no bias, no activation: dst = s * src[column], a copy;
//   - the live block: the columns with more, and only the input rows some live column reads,
//     packed at plan time and run by ops::StructuredLinear;
//   - in an MLP, hidden units whose up column and bias are zero or whose down row is zero;
//   - in a looped layer (f32, no attention norm), the query, key and value columns that read no
//     slot the layer writes (its output projection's and MLP down projection's live columns):
//     they are the same in every pass and are computed in the first only.
// A map whose structured form would not be cheaper (cost model below) stays the dense oneDNN
// ops::Linear, which is also what EngineOptions::dense asks for everywhere. bf16 plans stay
// dense (the structured kernel is f32).
//
// Shapes: R rows per tile, W [in, out] row-major, bias [out].

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "ops/dnnl_ops.hpp"
#include "ops/structured_linear.hpp"

namespace iclbench::model {

// W [in, out] row-major and its bias [out].
struct ProjectionWeights {
  std::span<const float> weights, bias;
  std::int64_t in = 0, out = 0;
  float at(std::int64_t row, std::int64_t column) const {
    return weights[static_cast<std::size_t>(row * out + column)];
  }
};

// Which of W's columns to take and where they go: dst_column[j] is output j's column of dst, or
// -1 to leave it out; src_column[i] is input row i's column of src.
struct ColumnMap {
  std::vector<std::int64_t> src_column, dst_column;
  static ColumnMap identity(std::int64_t in, std::int64_t out);
};

// The structured form of the columns `map` takes (see the header comment). `copies`: selection
// columns may become copies (only without an activation).
ops::StructuredLinear::Columns analyse_columns(const ProjectionWeights& weights,
                                               const ColumnMap& map, bool copies,
                                               bool accumulate);

// Multiply-adds per row: the dense map, and the structured columns with the structured
// kernel's penalty against oneDNN's GEMM (kStructuredPenalty: ops::StructuredLinear gathers
// strided input columns and has no register blocking, so take it as 4x slower per multiply-add
// than a blocked GEMM; a rough figure, not a measured one) plus one unit per copied or zeroed
// value. The structured form is taken when it is cheaper.
inline constexpr double kStructuredPenalty = 4.0;
double dense_cost(const ProjectionWeights& weights);
double structured_cost(const ops::StructuredLinear::Columns& columns);

// The columns of dst that a map with these weights can change: outputs with a nonzero weight
// (among `live_rows`, all if empty) or bias.
std::vector<bool> written_columns(const ProjectionWeights& weights,
                                  const std::vector<bool>& live_rows = {});

// Output columns whose every nonzero weight sits in a row outside `changing` (rows = src
// columns): with the src rows in `changing` the only ones that change between passes, these
// outputs are the same in every pass.
std::vector<bool> invariant_columns(const ProjectionWeights& weights,
                                    const std::vector<bool>& changing);

// A projection as the plan runs it: the dense oneDNN map, or its structured columns, those that
// change every pass apart from those computed in the first pass only. Shapes as ops::Linear's
// (src [R, in], dst [R, out], f32) except where an MLP plan says otherwise (compact hidden rows).
class Projection {
 public:
  static Projection dense(ops::Linear linear, double flops_per_row);
  static Projection structured(std::optional<ops::StructuredLinear> every_pass,
                               std::optional<ops::StructuredLinear> first_pass);
  // pass: the pass of a looped layer (0 for the first; first-pass-only columns are skipped after).
  void execute(const void* src, void* dst, void* scratchpad, int pass = 0) const;
  std::size_t scratchpad_bytes() const { return dense_ ? dense_->scratchpad_bytes() : 0; }
  const char* implementation() const;
  // Multiply-adds per row executed in `pass`, as 2 FLOPs each.
  double flops_per_row(int pass) const;
  bool is_dense() const { return dense_.has_value(); }

 private:
  std::optional<ops::Linear> dense_;
  double dense_flops_per_row_ = 0;
  std::optional<ops::StructuredLinear> every_pass_, first_pass_;
};

}  // namespace iclbench::model
