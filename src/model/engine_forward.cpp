#include "model/engine_forward.hpp"

#include <algorithm>

namespace iclbench::model {
namespace {

// x = this tile's tokens; the padding rows past T are 0 (they pass through every layer as
// finite values and are never read back).
void load_tokens(const EnginePlan& plan, const float* tokens, const Rows& stream, RowTile tile) {
  const std::int64_t width = plan.width, rows = plan.shape.tile_rows;
  const std::int64_t token_rows = std::clamp<std::int64_t>(plan.tokens - tile.first_row, 0, rows);
  float* x = reinterpret_cast<float*>(stream.at(tile));
  std::copy_n(tokens + (tile.prompt * plan.tokens + tile.first_row) * width, token_rows * width, x);
  std::fill(x + token_rows * width, x + rows * width, 0.0f);
}

// h = norm(x), converted to the matmuls' dtype; x itself when neither is needed. [R, D]
const void* block_input(const std::optional<ops::LayerNorm>& norm,
                        const std::optional<ops::Convert>& to_bf16, const std::byte* x,
                        const TileScratch& scratch) {
  const void* h = x;
  if (norm) {
    norm->execute(h, scratch.normed, scratch.scratchpad);
    h = scratch.normed;
  }
  if (to_bf16) {
    to_bf16->execute(h, scratch.converted, scratch.scratchpad);
    h = scratch.converted;
  }
  return h;
}

// h = norm(x); Q = h W_q + b_q: [R, H dk]; [K V] = h [W_k W_v] + [b_k b_v]: [R, H (dk + dv)],
// the latter only on tiles that hold keys.
void project_queries_keys_values(const AttentionPlan& attention, const Activations& activations,
                                 RowTile tile, const TileScratch& scratch) {
  const void* h = block_input(attention.norm, attention.to_bf16, activations.stream.at(tile), scratch);
  attention.query->execute(h, activations.queries.at(tile), scratch.scratchpad);
  if (tile.first_row < attention.keys) {
    attention.key_value->execute(h, activations.keys_values.at(tile), scratch.scratchpad);
  }
}

// M = scale K^T V: [H, dk, dv], over the prompt's Tk keys.
void multiply_keys_values(const AttentionPlan& attention, const Activations& activations,
                          std::int64_t prompt, const TileScratch& scratch) {
  const std::byte* keys = activations.keys_values.at(prompt, 0);
  attention.keys_times_values->execute(keys, keys + attention.values_offset,
                                       activations.products.at(prompt, 0), scratch.scratchpad);
}

// O = Q M: [H, R, dv].
void multiply_queries_product(const AttentionPlan& attention, const Activations& activations,
                              RowTile tile, const TileScratch& scratch) {
  attention.queries_times_product->execute(activations.queries.at(tile),
                                           activations.products.at(tile.prompt, 0),
                                           activations.attended.at(tile), scratch.scratchpad);
}

// S = scale Q K^T: [H, R, Tk], masked (causal) and ReLU'd (relu attention) by the scores op's
// post-ops; A = softmax(S) for softmax attention, S itself otherwise; O = A V: [H, R, dv].
void attend_explicitly(const AttentionPlan& attention, const Activations& activations, RowTile tile,
                       const TileScratch& scratch) {
  const std::byte* queries = activations.queries.at(tile);
  const std::byte* keys = activations.keys_values.at(tile.prompt, 0);
  const std::byte* values = keys + attention.values_offset;
  const float* mask = attention.mask ? attention.mask->data() + tile.first_row * attention.keys : nullptr;
  if (attention.scores_per_head) {
    for (std::int64_t head = 0; head < attention.heads; ++head) {
      attention.scores->execute(queries + head * attention.head_qk_bytes,
                                keys + head * attention.head_qk_bytes,
                                scratch.scores + head * attention.head_score_bytes,
                                scratch.scratchpad, mask);
    }
  } else {
    attention.scores->execute(queries, keys, scratch.scores, scratch.scratchpad, mask);
  }
  const std::byte* weights = scratch.scores;
  if (attention.softmax) {
    attention.softmax->execute(reinterpret_cast<float*>(scratch.scores), scratch.softmax_output);
    weights = scratch.softmax_output;
  }
  attention.mix->execute(weights, values, activations.attended.at(tile), scratch.scratchpad);
}

// x += act(norm(x) W_1 + b_1) W_2 + b_2, with the hidden rows [R, F] in scratch.
void add_mlp(const MlpPlan& mlp, std::byte* x, const TileScratch& scratch) {
  const void* h = block_input(mlp.norm, mlp.to_bf16, x, scratch);
  mlp.up->execute(h, scratch.hidden, scratch.scratchpad);
  mlp.down->execute(scratch.hidden, x, scratch.scratchpad);
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
  }
  return activations;
}

void layer_forward(const LayerPlan& layer, const Activations& activations, const Schedule& schedule) {
  const AttentionPlan* attention = layer.attention ? &*layer.attention : nullptr;
  if (attention) {
    // h = norm(x); Q, K, V = h W_q, h W_k, h W_v.
    schedule.each_tile([&](RowTile tile, const TileScratch& scratch) {
      project_queries_keys_values(*attention, activations, tile, scratch);
    });
    // O = Attention(Q, K, V), all heads in each call. The steps that need a prompt's every key
    // (K^T V) run per prompt, after all its keys exist; the rest per row tile.
    switch (attention->path) {
      case AttentionPath::kKeysTimesValues:  // linear attention, icl mask: O = Q (scale K^T V)
        schedule.each_prompt([&](std::int64_t prompt, const TileScratch& scratch) {
          multiply_keys_values(*attention, activations, prompt, scratch);
        });
        schedule.each_tile([&](RowTile tile, const TileScratch& scratch) {
          multiply_queries_product(*attention, activations, tile, scratch);
        });
        break;
      case AttentionPath::kExplicitScores:  // softmax, ReLU, causal: O = A(scale Q K^T) V
        schedule.each_tile([&](RowTile tile, const TileScratch& scratch) {
          attend_explicitly(*attention, activations, tile, scratch);
        });
        break;
    }
  }
  // The residual additions and the MLP are row-local, so one sweep over the tiles does them.
  schedule.each_tile([&](RowTile tile, const TileScratch& scratch) {
    std::byte* x = activations.stream.at(tile);
    // x += O W_o + b_o (the output projection accumulates into x).
    if (attention) attention->output->execute(activations.attended.at(tile), x, scratch.scratchpad);
    // h = norm(x); x += act(h W_1 + b_1) W_2 + b_2.
    if (layer.mlp) add_mlp(*layer.mlp, x, scratch);
  });
}

void model_forward(const EnginePlan& plan, const float* tokens, const Schedule& schedule) {
  const Rows stream = stream_rows(plan);
  schedule.each_tile([&](RowTile tile, const TileScratch&) { load_tokens(plan, tokens, stream, tile); });
  for (const LayerPlan& layer : plan.layers) {
    const Activations activations = layer_activations(plan, layer);
    for (int pass = 0; pass < layer.passes; ++pass) layer_forward(layer, activations, schedule);
  }
}

}  // namespace iclbench::model
