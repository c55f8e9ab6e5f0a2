#pragma once
// Internal to the engine: the forward pass itself, the maths read top to bottom. The plan
// (engine_plan) says which ops run; the schedule (engine_schedule) says who runs each piece.
//
// Shapes (letters as in engine_plan.hpp): G prompts in a group, T_pad rows per prompt, R rows
// per tile, Tk keys, D width, H heads, dk / dv per-head widths, F MLP width. Q, K, V, O and M
// are in the act dtype (f32, or bf16 for bf16 matmuls); the residual stream is always f32.

#include <cstddef>
#include <cstdint>

#include "model/engine_plan.hpp"
#include "model/engine_schedule.hpp"

namespace iclbench::model {

// Prompt-major rows [G, T_pad, width] in a group buffer; `width` is one layer's (a narrower layer
// uses the front of a buffer sized for the widest).
struct Rows {
  std::byte* data = nullptr;
  std::size_t row_bytes = 0;         // width * element size
  std::int64_t rows_per_prompt = 0;  // T_pad (1 for a per-prompt tensor)
  std::byte* at(std::int64_t prompt, std::int64_t row) const {
    return data + static_cast<std::size_t>(prompt * rows_per_prompt + row) * row_bytes;
  }
  std::byte* at(RowTile tile) const { return at(tile.prompt, tile.first_row); }
};

// What one layer reads and writes for the prompts of a group. Each thread's per-tile scratch
// (normed, converted, scores, softmax output, hidden: see TileScratch) comes with the piece it
// works on.
struct Activations {
  Rows stream;       // x, the residual stream: [G, T_pad, D] f32
  Rows queries;      // Q: [G, T_pad, H dk]
  Rows keys_values;  // K and V side by side: [G, T_pad, H (dk + dv)]; rows < Tk written
  Rows attended;     // O, the heads' outputs side by side: [G, T_pad, H dv]
  Rows products;     // M = scale K^T V (linear icl attention): [G, 1, H dk dv]
  Rows key_block_sums;  // one-sweep layers: K^T V per row tile, unscaled [G, 1, tiles H dk dv]
  Rows columns;         // column sweeps: the live slots column-major [G, 1, D S] (S below)
  std::int64_t column_stride = 0;  // S: elements between two columns of `columns`
};
// The residual stream [G, T_pad, D] f32 in plan.stream.
Rows stream_rows(const EnginePlan& plan);
// The group buffers of `plan` seen with `layer`'s widths.
Activations layer_activations(const EnginePlan& plan, const LayerPlan& layer);

// One pass of one layer over the prompts of `schedule`:
//   h = norm(x);  Q = h W_q + b_q;  [K V] = h [W_k W_v] + [b_k b_v]
//   O = Attention(Q, K, V)   by the plan's path: Q (scale K^T V), or A(scale Q K^T) V with
//                            A = softmax, ReLU or identity (masked under the causal mask)
//   x += O W_o + b_o
//   h = norm(x);  x += act(h W_1 + b_1) W_2 + b_2
// A block the layer does not have is skipped, and so is a norm it does not have. `pass` counts
// the passes of a looped layer from 0: a structured projection computes its pass-invariant
// columns in pass 0 only (they stay in the Q and [K V] buffers, which no one else writes
// between the passes of a layer). A one-sweep layer (AttentionPlan::one_sweep) runs all but
// M's first sum in one sweep over the tiles, and pass p > 0 reads the block sums pass p - 1
// left: call its passes in order 0, 1, ... A column sweep (LayerPlan::column_sweep) transposes
// the live slots in before pass 0 and scatters the written ones back after the last.
void layer_forward(const LayerPlan& layer, const Activations& activations,
                   const Schedule& schedule, int pass = 0);

// The whole stack over the prompts of `schedule`: x = tokens ([G, T, D] from `tokens`, padding
// rows 0), then every layer, `passes` times each. The result is the residual stream in
// plan.stream.
void model_forward(const EnginePlan& plan, const float* tokens, const Schedule& schedule);

}  // namespace iclbench::model
