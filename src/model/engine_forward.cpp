#include "model/engine_forward.hpp"

#include <algorithm>

namespace iclbench::model {
namespace {

const void* normed_input(const std::optional<ops::RowLayerNorm>& norm,
                         const std::optional<ops::Convert>& to_bf16, const std::byte* x,
                         const TileScratch& scratch);

// x = this tile's tokens, or with read_in x = token W_in + b_in + P_t. The padding rows past T
// are set to 0 (their tokens to 0) so that they stay finite through every layer; no real row
// reads them (they are never keys) and they are never returned.
void load_tokens(const EnginePlan& plan, const float* tokens, const Rows& stream, RowTile tile,
                 const TileScratch& scratch) {
  const std::int64_t width = plan.width, rows = plan.shape.tile_rows;
  const std::int64_t token_rows = std::clamp<std::int64_t>(plan.tokens - tile.first_row, 0, rows);
  float* x = reinterpret_cast<float*>(stream.at(tile));
  const std::int64_t input_width = plan.input_width;
  const float* source = tokens + (tile.prompt * plan.tokens + tile.first_row) * input_width;
  if (!plan.read_in) {
    std::copy_n(source, token_rows * width, x);
    std::fill(x + token_rows * width, x + rows * width, 0.0f);
    return;
  }
  float* staged = reinterpret_cast<float*>(scratch.normed);  // [R, d]
  std::copy_n(source, token_rows * input_width, staged);
  std::fill(staged + token_rows * input_width, staged + rows * input_width, 0.0f);
  if (plan.positions) {
    std::copy_n(plan.positions->data() + tile.first_row * width, token_rows * width, x);
  } else {
    std::fill(x, x + token_rows * width, 0.0f);
  }
  std::fill(x + token_rows * width, x + rows * width, 0.0f);
  plan.read_in->execute(staged, x, scratch.scratchpad);
}

// score = LayerNorm(x) w_out + b_out: [R] into plan.read_out_scores.
void read_out(const EnginePlan& plan, const Rows& stream, const Schedule& schedule) {
  const ReadOutPlan& exit = *plan.read_out;
  float* scores = reinterpret_cast<float*>(plan.read_out_scores.data());
  schedule.each_tile([&](RowTile tile, const TileScratch& scratch) {
    const void* h = normed_input(exit.norm, std::nullopt, stream.at(tile), scratch);
    exit.project->execute(h, scores + tile.prompt * plan.shape.padded_tokens + tile.first_row,
                          scratch.scratchpad);
  });
}

// h = norm(x) in the matmuls' dtype (the norm writes bf16 itself in a bf16 plan), x converted
// to bf16 when there is no norm, x itself when neither is needed. [R, D]
const void* normed_input(const std::optional<ops::RowLayerNorm>& norm,
                         const std::optional<ops::Convert>& to_bf16, const std::byte* x,
                         const TileScratch& scratch) {
  if (norm) {
    std::byte* h = norm->output_dtype() == ops::DType::kBF16 ? scratch.converted : scratch.normed;
    norm->execute(reinterpret_cast<const float*>(x), h);
    scratch.lap(OpGroup::kLayerNorm);
    return h;
  }
  if (to_bf16) {
    to_bf16->execute(x, scratch.converted, scratch.scratchpad);
    scratch.lap(OpGroup::kOther);
    return scratch.converted;
  }
  return x;
}

// Linear attention under the icl mask: M = scale K^T V [H, dk, dv] once per prompt (it needs
// all of the prompt's keys), then O = Q M [H, R, dv] per row tile.
void attend_keys_times_values(const AttentionPlan& attention, const Activations& activations,
                              const Schedule& schedule) {
  if (const std::optional<ops::LinearAttention>& small = attention.small) {
    // The same two steps by ops::LinearAttention, on the views of x the plan chose; with the
    // output view O is added to x here (x += O W_o + b_o, W_o a selection).
    auto floats = [](std::byte* bytes) { return reinterpret_cast<float*>(bytes); };
    const Rows& key_rows = attention.key_value_view ? activations.stream : activations.keys_values;
    const Rows& query_rows = attention.query_view ? activations.stream : activations.queries;
    const Rows& out_rows = attention.output_view ? activations.stream : activations.attended;
    schedule.each_prompt([&](std::int64_t prompt, const TileScratch& scratch) {
      const float* keys = floats(key_rows.at(prompt, 0));
      small->keys_times_values(keys, keys, attention.keys,
                               floats(activations.products.at(prompt, 0)));
      scratch.lap(OpGroup::kAttention);
    });
    schedule.each_tile([&](RowTile tile, const TileScratch& scratch) {
      small->queries_times_product(floats(query_rows.at(tile)), attention.tile_rows,
                                   floats(activations.products.at(tile.prompt, 0)),
                                   floats(out_rows.at(tile)));
      scratch.lap(OpGroup::kAttention);
    });
    return;
  }
  schedule.each_prompt([&](std::int64_t prompt, const TileScratch& scratch) {
    const std::byte* keys = activations.keys_values.at(prompt, 0);
    attention.keys_times_values->execute(keys, keys + attention.values_offset,
                                         activations.products.at(prompt, 0), scratch.scratchpad);
    scratch.lap(OpGroup::kAttention);
  });
  schedule.each_tile([&](RowTile tile, const TileScratch& scratch) {
    attention.queries_times_product->execute(activations.queries.at(tile),
                                             activations.products.at(tile.prompt, 0),
                                             activations.attended.at(tile), scratch.scratchpad);
    scratch.lap(OpGroup::kAttention);
  });
}

// Per row tile: S = scale Q K^T [H, R, Tk], masked (causal) and ReLU'd (relu attention) by the
// scores op's post-ops; A = softmax(S) for softmax attention, S itself otherwise; O = A V
// [H, R, dv].
void attend_explicit_scores(const AttentionPlan& attention, const Activations& activations,
                            const Schedule& schedule) {
  schedule.each_tile([&](RowTile tile, const TileScratch& scratch) {
    const std::byte* queries = activations.queries.at(tile);
    const std::byte* keys = activations.keys_values.at(tile.prompt, 0);
    const std::byte* values = keys + attention.values_offset;
    const float* mask =
        attention.mask ? attention.mask->data() + tile.first_row * attention.keys : nullptr;
    if (attention.scores_per_head) {
      for (std::int64_t head = 0; head < attention.heads; ++head) {
        attention.scores->execute(
            queries + head * attention.head_qk_bytes, keys + head * attention.head_qk_bytes,
            scratch.scores + head * attention.head_score_bytes, scratch.scratchpad, mask);
      }
    } else {
      attention.scores->execute(queries, keys, scratch.scores, scratch.scratchpad, mask);
    }
    scratch.lap(OpGroup::kAttention);
    const std::byte* weights = scratch.scores;
    if (attention.softmax) {
      attention.softmax->execute(reinterpret_cast<float*>(scratch.scores), scratch.softmax_output);
      scratch.lap(OpGroup::kSoftmax);
      weights = scratch.softmax_output;
    }
    attention.mix->execute(weights, values, activations.attended.at(tile), scratch.scratchpad);
    scratch.lap(OpGroup::kAttention);
  });
}

// Per row tile, all heads in one call: O = A(scale Q K^T) V [R, H dv] with the scores, their
// weights and the mix in one pass (ops::FusedAttention; the causal mask comes from the rows'
// token indices, so no mask tensor and no score tile).
void attend_fused(const AttentionPlan& attention, const Activations& activations,
                  const Schedule& schedule) {
  schedule.each_tile([&](RowTile tile, const TileScratch& scratch) {
    const std::byte* keys = activations.keys_values.at(tile.prompt, 0);
    attention.fused->execute(activations.queries.at(tile), keys, keys + attention.values_offset,
                             activations.attended.at(tile), tile.first_row, scratch.scratchpad);
    scratch.lap(OpGroup::kAttention);
  });
}

}  // namespace

Rows stream_rows(const EnginePlan& plan) {
  return Rows{plan.stream.data(), static_cast<std::size_t>(plan.width) * sizeof(float),
              plan.shape.padded_tokens};
}

Activations layer_activations(const EnginePlan& plan, const LayerPlan& layer) {
  const std::int64_t rows = plan.shape.padded_tokens;
  Activations activations;
  activations.stream = stream_rows(plan);
  if (layer.attention) {
    const AttentionPlan& attention = *layer.attention;
    const std::size_t act_size = ops::size_of(plan.act);
    auto rows_of = [&](const Buffer& buffer, std::int64_t width, std::int64_t rows_per_prompt) {
      return Rows{buffer.data(), static_cast<std::size_t>(width) * act_size, rows_per_prompt};
    };
    activations.queries = rows_of(plan.queries, attention.query_width, rows);
    activations.keys_values = rows_of(plan.keys_values, attention.key_value_width, rows);
    activations.attended = rows_of(plan.attended, attention.attended_width, rows);
    activations.products = rows_of(plan.products, attention.product_size, 1);
    if (attention.one_sweep) {
      activations.key_block_sums =
          Rows{plan.key_block_sums.data(),
               static_cast<std::size_t>(plan.shape.tiles * attention.product_size) * 4, 1};
    }
    if (layer.column_sweep) {
      activations.column_stride = plan.shape.column_stride;
      activations.columns =
          Rows{plan.columns.data(),
               static_cast<std::size_t>(plan.shape.column_count * plan.shape.column_stride) * 4,
               1};
    }
  }
  return activations;
}

namespace {

// x += MLP(x) on one row tile (the layer's row-local rest, after its attention output).
void mlp_tile(const MlpPlan& mlp, std::byte* x, const TileScratch& scratch) {
  if (mlp.small) {
    // x += act(x W_1 + b_1) W_2 + b_2 in place, on the live part only
    mlp.small->execute(reinterpret_cast<float*>(x));
    scratch.lap(OpGroup::kMlp);
    return;
  }
  // h = norm(x)
  const void* h = normed_input(mlp.norm, mlp.to_bf16, x, scratch);
  // hidden = act(h W_1 + b_1): [R, F]
  mlp.up->execute(h, scratch.hidden, scratch.scratchpad);
  if (mlp.gelu) mlp.gelu->execute(reinterpret_cast<const float*>(scratch.hidden), scratch.hidden);
  // x += hidden W_2 + b_2
  mlp.down->execute(scratch.hidden, x, scratch.scratchpad);
  scratch.lap(OpGroup::kMlp);
}

// LayerPlan::column_sweep: pass `pass` of a one-sweep layer on its live slots held
// column-major. M's blocks are the plan's row tiles, as in one_sweep_forward.
void column_sweep_forward(const LayerPlan& layer, const Activations& activations,
                          const Schedule& schedule, int pass) {
  const ops::ColumnSweep& sweep = *layer.column_sweep;
  const ops::LinearAttention& small = sweep.attention();
  auto floats = [](std::byte* bytes) { return reinterpret_cast<float*>(bytes); };
  const std::int64_t rows = layer.attention->tile_rows, keys = layer.attention->keys;
  const std::int64_t blocks = (keys + rows - 1) / rows;
  const std::int64_t block_floats = small.product_size();
  const std::int64_t stride = activations.column_stride;
  auto tile_columns = [&](RowTile tile) {
    return floats(activations.columns.at(tile.prompt, 0)) + tile.first_row;
  };
  // This tile's block of the K^T V sum, from its columns as they are now.
  auto block_sum = [&](RowTile tile, const float* columns) {
    float* sum = floats(activations.key_block_sums.at(tile.prompt, 0)) +
                 (tile.first_row / rows) * block_floats;
    sweep.key_block_sum(columns, stride, std::min(rows, keys - tile.first_row), sum);
  };
  if (pass == 0) {
    // The live slots of x column-major, and the first pass's K^T V blocks from them.
    schedule.each_tile([&](RowTile tile, const TileScratch& scratch) {
      float* columns = tile_columns(tile);
      sweep.gather(floats(activations.stream.at(tile)), rows, columns, stride);
      scratch.lap(OpGroup::kOther);
      if (tile.first_row < keys) {
        block_sum(tile, columns);
        scratch.lap(OpGroup::kAttention);
      }
    });
  }
  // M = scale K^T V: the block sums added in tile order.
  schedule.each_prompt([&](std::int64_t prompt, const TileScratch& scratch) {
    small.combine_key_blocks(floats(activations.key_block_sums.at(prompt, 0)), blocks,
                             floats(activations.products.at(prompt, 0)));
    scratch.lap(OpGroup::kAttention);
  });
  const bool next_pass = pass + 1 < layer.passes;
  schedule.each_tile([&](RowTile tile, const TileScratch& scratch) {
    float* columns = tile_columns(tile);
    // x += Q M at O's slots, then the MLP in place (both on the columns).
    sweep.attend_and_mlp(columns, stride, rows, floats(activations.products.at(tile.prompt, 0)));
    scratch.lap(OpGroup::kAttention);
    if (next_pass) {
      // The next pass's K^T V block of this tile's key rows, from the columns just written.
      if (tile.first_row < keys) {
        block_sum(tile, columns);
        scratch.lap(OpGroup::kAttention);
      }
    } else {
      // The loop is done: its written slots back into x's rows.
      sweep.scatter(columns, stride, rows, floats(activations.stream.at(tile)));
      scratch.lap(OpGroup::kOther);
    }
  });
}

// AttentionPlan::one_sweep: pass `pass` of a looped layer whose Q, K and V are views of x.
void one_sweep_forward(const LayerPlan& layer, const Activations& activations,
                       const Schedule& schedule, int pass) {
  const AttentionPlan& attention = *layer.attention;
  const ops::LinearAttention& small = *attention.small;
  auto floats = [](std::byte* bytes) { return reinterpret_cast<float*>(bytes); };
  const Rows& out_rows = attention.output_view ? activations.stream : activations.attended;
  const std::int64_t rows = attention.tile_rows, keys = attention.keys;
  const std::int64_t blocks = (keys + rows - 1) / rows;
  const std::int64_t block_floats = small.product_size();
  // M = scale K^T V: in the first pass from the stream, in later ones from the block sums the
  // previous pass left (the same sum, block by block: the same bits).
  schedule.each_prompt([&](std::int64_t prompt, const TileScratch& scratch) {
    float* product = floats(activations.products.at(prompt, 0));
    if (pass == 0) {
      const float* x = floats(activations.stream.at(prompt, 0));
      small.keys_times_values(x, x, keys, product);
    } else {
      small.combine_key_blocks(floats(activations.key_block_sums.at(prompt, 0)), blocks, product);
    }
    scratch.lap(OpGroup::kAttention);
  });
  const bool next_pass = pass + 1 < layer.passes;
  schedule.each_tile([&](RowTile tile, const TileScratch& scratch) {
    std::byte* x = activations.stream.at(tile);
    // O = Q M, added into x or written to O's rows
    small.queries_times_product(floats(x), rows, floats(activations.products.at(tile.prompt, 0)),
                                floats(out_rows.at(tile)));
    scratch.lap(OpGroup::kAttention);
    // x += O W_o + b_o
    if (attention.output) {
      attention.output->execute(activations.attended.at(tile), x, scratch.scratchpad);
      scratch.lap(OpGroup::kProjections);
    }
    if (layer.mlp) mlp_tile(*layer.mlp, x, scratch);
    // The next pass's K^T V block of this tile's key rows, from the rows just written.
    if (next_pass && tile.first_row < keys) {
      float* block_sum = floats(activations.key_block_sums.at(tile.prompt, 0)) +
                         (tile.first_row / rows) * block_floats;
      small.key_block_sum(floats(x), floats(x), std::min(rows, keys - tile.first_row), block_sum);
      scratch.lap(OpGroup::kAttention);
    }
  });
}

}  // namespace

void layer_forward(const LayerPlan& layer, const Activations& activations,
                   const Schedule& schedule, int pass) {
  if (layer.column_sweep) {
    column_sweep_forward(layer, activations, schedule, pass);
    return;
  }
  if (layer.attention && layer.attention->one_sweep) {
    one_sweep_forward(layer, activations, schedule, pass);
    return;
  }
  if (const std::optional<AttentionPlan>& attention = layer.attention) {
    // (Skipped when the plan reads Q, K and V straight from x: no sweep to run.)
    if (attention->query || attention->key_value) {
      schedule.each_tile([&](RowTile tile, const TileScratch& scratch) {
        // h = norm(x)
        const void* h =
            normed_input(attention->norm, attention->to_bf16, activations.stream.at(tile), scratch);
        // Q = h W_q + b_q: [R, H dk]
        if (attention->query) {
          attention->query->execute(h, activations.queries.at(tile), scratch.scratchpad, pass);
          scratch.lap(OpGroup::kProjections);
        }
        // [K V] = h [W_k W_v] + [b_k b_v]: [R, H (dk + dv)], on the rows that are keys
        if (attention->key_value && tile.first_row < attention->keys) {
          attention->key_value->execute(h, activations.keys_values.at(tile), scratch.scratchpad,
                                        pass);
          scratch.lap(OpGroup::kProjections);
        }
      });
    }
    // O = Attention(Q, K, V): [R, H dv], all heads in each call, by the layer's path.
    switch (attention->path) {
      case AttentionPath::kKeysTimesValues:
        attend_keys_times_values(*attention, activations, schedule);
        break;
      case AttentionPath::kExplicitScores:
        attend_explicit_scores(*attention, activations, schedule);
        break;
      case AttentionPath::kFused:
        attend_fused(*attention, activations, schedule);
        break;
    }
  }
  // The rest is row-local, so one sweep over the tiles does it.
  schedule.each_tile([&](RowTile tile, const TileScratch& scratch) {
    std::byte* x = activations.stream.at(tile);
    // x += O W_o + b_o (the output projection accumulates into x)
    if (layer.attention && layer.attention->output) {
      layer.attention->output->execute(activations.attended.at(tile), x, scratch.scratchpad);
      scratch.lap(OpGroup::kProjections);
    }
    if (layer.mlp) mlp_tile(*layer.mlp, x, scratch);
  });
}

void model_forward(const EnginePlan& plan, const float* tokens, const Schedule& schedule) {
  const Rows stream = stream_rows(plan);
  schedule.each_tile([&](RowTile tile, const TileScratch& scratch) {
    load_tokens(plan, tokens, stream, tile, scratch);
    scratch.lap(OpGroup::kOther);
  });
  for (const LayerPlan& layer : plan.layers) {
    const Activations activations = layer_activations(plan, layer);
    for (int pass = 0; pass < layer.passes; ++pass) {
      layer_forward(layer, activations, schedule, pass);
    }
  }
  if (plan.read_out) read_out(plan, stream, schedule);
}

}  // namespace iclbench::model
