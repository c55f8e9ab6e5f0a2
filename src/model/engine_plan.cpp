#include "model/engine_plan.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <new>
#include <set>
#include <stdexcept>

namespace iclbench::model {
namespace {

using ops::DType;
using ops::Layout;

// Row tiles: large enough that a projection is an efficient GEMM, small enough that a long
// prompt splits into several pieces for the threads and its score tile stays in cache.
constexpr std::int64_t kMaxTileRows = 256;
// Prompts are run in groups whose activations fit in about this much memory.
constexpr std::size_t kGroupBytes = 256u << 20;

std::size_t align_up(std::size_t bytes) {
  return (bytes + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment;
}

// The fused kernel's shape for a layer's attention on one row tile (all heads at once), reading
// Q, [K V] and O rows with the group buffers' strides.
ops::AttentionShape fused_shape(const LayerConfig& layer, bool causal, ops::DType act,
                                std::int64_t rows, std::int64_t keys, std::int64_t context) {
  const std::int64_t heads = layer.heads, dk = layer.qk_dim, dv = layer.v_dim;
  ops::AttentionShape shape;
  shape.heads = heads;
  shape.rows = rows;
  shape.keys = keys;
  shape.qk_dim = dk;
  shape.v_dim = dv;
  shape.query_stride = heads * dk;
  shape.key_stride = shape.value_stride = heads * (dk + dv);
  shape.out_stride = heads * dv;
  shape.dtype = act;
  shape.weights = layer.attention == AttentionKind::kSoftmax ? ops::AttentionWeights::kSoftmax
                  : layer.attention == AttentionKind::kRelu  ? ops::AttentionWeights::kRelu
                                                             : ops::AttentionWeights::kLinear;
  shape.mask = causal ? ops::AttentionMask::kCausal : ops::AttentionMask::kIcl;
  // Under the icl mask every row sees all n keys, so the mean over keys folds into the scale
  // (ReLU commutes with a positive factor); under the causal mask the kernel divides each row by
  // its own count of visible keys.
  shape.scale = layer.scale;
  if (layer.mean_over_keys && !causal) {
    shape.scale /= static_cast<float>(context);
  } else {
    shape.mean_over_keys = layer.mean_over_keys;
  }
  return shape;
}

ops::PostActivation post_activation(Activation activation) {
  switch (activation) {
    case Activation::kNone:
      return ops::PostActivation::kNone;
    case Activation::kRelu:
      return ops::PostActivation::kRelu;
    case Activation::kGelu:
      return ops::PostActivation::kGelu;
    case Activation::kGeluTanh:
      return ops::PostActivation::kGeluTanh;
  }
  return ops::PostActivation::kNone;
}

// Concatenates the key and value projections so that one GEMM makes both: [D, H(dk + dv)].
std::vector<float> concat_columns(const std::vector<float>& left, std::int64_t left_cols,
                                  const std::vector<float>& right, std::int64_t right_cols,
                                  std::int64_t rows) {
  std::vector<float> out(static_cast<std::size_t>(rows * (left_cols + right_cols)));
  for (std::int64_t r = 0; r < rows; ++r) {
    std::copy_n(left.begin() + r * left_cols, left_cols,
                out.begin() + r * (left_cols + right_cols));
    std::copy_n(right.begin() + r * right_cols, right_cols,
                out.begin() + r * (left_cols + right_cols) + left_cols);
  }
  return out;
}

// Row t sees keys 0..t. Softmax adds -inf to the others; linear and ReLU attention multiply by
// 0, and the visible keys by 1 or, with mean_over_keys, 1/(t + 1). Padding rows (t >= T) see
// every key, so that they stay finite.
const std::vector<float>& causal_mask(EnginePlan& plan, bool softmax, bool mean) {
  std::vector<float>& mask = plan.masks[{softmax, mean}];
  if (!mask.empty()) return mask;
  const std::int64_t rows = plan.shape.padded_tokens, keys = plan.shape.keys;
  mask.assign(static_cast<std::size_t>(rows * keys), 0.0f);
  for (std::int64_t t = 0; t < rows; ++t) {
    const float share = mean ? 1.0f / static_cast<float>(std::min(t, plan.tokens - 1) + 1) : 1.0f;
    for (std::int64_t key = 0; key < keys; ++key) {
      const bool visible = key <= t;
      mask[static_cast<std::size_t>(t * keys + key)] =
          softmax ? (visible ? 0.0f : -INFINITY) : (visible ? share : 0.0f);
    }
  }
  return mask;
}

// The largest oneDNN scratchpad any op of the plan asks for (one per thread serves them all).
class ScratchpadSize {
 public:
  template <typename... Op>
  void note(const std::optional<Op>&... ops) {
    ((bytes_ = ops ? std::max(bytes_, ops->scratchpad_bytes()) : bytes_), ...);
  }
  std::size_t bytes() const { return bytes_; }

 private:
  std::size_t bytes_ = 0;
};

// The builders see the plan being filled (shape, act dtype, masks) and the layer's config.
struct BuildContext {
  EnginePlan& plan;
  const EngineOptions& options;
  bool causal = false;
  ScratchpadSize& scratchpad;
  // Row tiles of the residual stream [R, D] f32, and of the matmul inputs (bf16 when asked).
  Layout stream_rows, input_rows, converted_rows;
  // Weight structure (model/weight_structure.hpp): on for f32 plans unless options.dense.
  bool structured = false;
};

// A projection dst (+)= act(src W + b), src [R, in] and dst [R, out] (row strides in and out),
// dense or structured. `changing`: the src columns that change between the passes of a looped
// layer (empty: no column is computed in the first pass only).
Projection plan_projection(const BuildContext& build, const ProjectionWeights& weights,
                           const Layout& src, const Layout& dst, ops::PostActivation activation,
                           bool accumulate, const std::vector<bool>& changing = {}) {
  const double dense_flops = 2 * dense_cost(weights);
  auto dense = [&] {
    return Projection::dense(
        ops::Linear(src, weights.weights, weights.bias, dst, activation, accumulate), dense_flops);
  };
  const bool copies = activation == ops::PostActivation::kNone;
  ColumnMap map = ColumnMap::identity(weights.in, weights.out);
  if (!build.structured ||
      structured_cost(analyse_columns(weights, map, copies, accumulate)) >= dense_cost(weights)) {
    return dense();
  }
  const std::int64_t rows = build.plan.shape.tile_rows;
  auto make = [&](const ColumnMap& columns) {
    return ops::StructuredLinear(rows, {weights.in, 1}, weights.in, {weights.out, 1}, weights.out,
                                 analyse_columns(weights, columns, copies, accumulate), activation,
                                 accumulate);
  };
  if (changing.empty()) return Projection::structured(make(map), std::nullopt);
  const std::vector<bool> invariant = invariant_columns(weights, changing);
  ColumnMap first = map;
  for (std::int64_t j = 0; j < weights.out; ++j) {
    const auto index = static_cast<std::size_t>(j);
    (invariant[index] ? map : first).dst_column[index] = -1;
  }
  return Projection::structured(make(map), make(first));
}

ProjectionWeights projection_weights(const std::vector<float>& weights,
                                     const std::vector<float>& bias, std::int64_t in) {
  return {weights, bias, in, static_cast<std::int64_t>(bias.size())};
}

// The slots of x a layer's passes change: the live columns of its output projection and of its
// MLP's down projection (from live hidden units). Empty when nothing can be computed once for
// every pass: a single pass, a dense plan, or an attention norm (h then depends on every slot).
std::vector<bool> changing_slots(const BuildContext& build, const LayerConfig& layer,
                                 const LayerWeights& weights) {
  if (!build.structured || layer.loop < 2 || layer.attention_norm || !layer.has_attention()) {
    return {};
  }
  std::vector<bool> changing =
      written_columns(projection_weights(weights.wo, weights.bo, layer.heads * layer.v_dim));
  if (layer.has_mlp()) {
    const ProjectionWeights up = projection_weights(weights.w1, weights.b1, build.plan.width);
    const std::vector<bool> live_hidden = written_columns(up);
    const std::vector<bool> down =
        written_columns(projection_weights(weights.w2, weights.b2, layer.mlp_hidden), live_hidden);
    for (std::size_t slot = 0; slot < changing.size(); ++slot) {
      changing[slot] = changing[slot] || down[slot];
    }
  }
  return changing;
}

// Per-head views into a row tile's Q and O rows and into a prompt's first Tk [K V] rows, heads
// as the batch dimension.
struct HeadViews {
  Layout queries;          // [H, R, dk]
  Layout keys_transposed;  // [H, dk, Tk]
  Layout values;           // [H, Tk, dv]
  Layout attended;         // [H, R, dv]
};

// O = Q M with M = scale K^T V: [H, dk, dv], once per prompt.
void plan_keys_times_values(AttentionPlan& attention, const HeadViews& views, float scale,
                            std::int64_t dv, DType act) {
  const Layout product_layout = Layout::dense({attention.heads, attention.qk_dim, dv}, act);
  attention.keys_times_values.emplace(views.keys_transposed, views.values, product_layout, scale,
                                      false);
  attention.queries_times_product.emplace(views.queries, product_layout, views.attended, 1.0f,
                                          false);
}

// S = scale Q K^T (masked, ReLU'd), A = softmax(S) or S, O = A V, per row tile.
void plan_explicit_scores(const BuildContext& build, const LayerConfig& layer,
                          const HeadViews& views, float icl_scale, AttentionPlan& attention) {
  const DType act = build.plan.act;
  const std::int64_t heads = attention.heads, dk = attention.qk_dim;
  const std::int64_t rows = build.plan.shape.tile_rows, keys = attention.keys;
  const bool softmax = layer.attention == AttentionKind::kSoftmax;
  const bool relu = layer.attention == AttentionKind::kRelu;
  // Softmax needs f32 scores; linear and ReLU weights go straight to the mixing dtype.
  const DType score_type = softmax ? DType::kF32 : act;
  const Layout scores_layout = Layout::dense({heads, rows, keys}, score_type);
  if (build.causal) {
    // oneDNN 2.6 has no fast kernel for a mask broadcast over the head dimension (it falls back
    // to its reference matmul, ~1000x slower), so causal scores are computed one head at a
    // time, each with the 2-D mask tile as a post-op.
    attention.mask = &causal_mask(build.plan, softmax, layer.mean_over_keys);
    attention.scores_per_head = true;
    attention.head_score_bytes = static_cast<std::size_t>(rows * keys) * ops::size_of(score_type);
    attention.scores.emplace(Layout{{rows, dk}, {attention.query_width, 1}, act},
                             Layout{{dk, keys}, {1, attention.key_value_width}, act},
                             Layout::dense({rows, keys}, score_type), layer.scale, relu,
                             softmax ? ops::MatMul::Binary::kAdd : ops::MatMul::Binary::kMul,
                             Layout::dense({rows, keys}, DType::kF32));
  } else {
    attention.scores.emplace(views.queries, views.keys_transposed, scores_layout, icl_scale, relu);
  }
  Layout weights_layout = scores_layout;
  if (softmax) {
    weights_layout = Layout::dense({heads, rows, keys}, act);
    attention.softmax.emplace(scores_layout, weights_layout);
  }
  attention.mix.emplace(weights_layout, views.values, views.attended, 1.0f, false);
}

// A view of x for a projection that only selects slots: every output column of each head's
// block of `width` has one weight, exactly 1, no bias, and the block's sources are consecutive
// slots (then h W + b = x[:, first .. first + width) exactly, as the dense map adds only exact
// zeros). Empty otherwise.
std::optional<ops::HeadColumns> selected_heads(const ProjectionWeights& weights,
                                               std::int64_t heads, std::int64_t width) {
  ops::HeadColumns view;
  view.row_stride = weights.in;
  for (std::int64_t h = 0; h < heads; ++h) {
    std::int64_t first = -1;
    for (std::int64_t a = 0; a < width; ++a) {
      const std::int64_t column = h * width + a;
      if (weights.bias[static_cast<std::size_t>(column)] != 0.0f) return std::nullopt;
      std::int64_t source = -1;
      for (std::int64_t i = 0; i < weights.in; ++i) {
        const float weight = weights.at(i, column);
        if (weight == 0.0f) continue;
        if (weight != 1.0f || source >= 0) return std::nullopt;
        source = i;
      }
      if (source < 0) return std::nullopt;
      if (a == 0) first = source;
      if (source != first + a) return std::nullopt;
    }
    view.head_column.push_back(first);
  }
  return view;
}

// The slots of x that O's columns are added to when W_o only selects: each of O's columns has
// one weight, exactly 1, into a slot no other column writes, and there is no bias (then
// x += O W_o + b_o is x[:, slot] += O exactly). Empty otherwise.
std::optional<std::vector<std::int64_t>> selected_slots(const ProjectionWeights& weights) {
  for (float bias : weights.bias)
    if (bias != 0.0f) return std::nullopt;
  std::vector<std::int64_t> slots;
  std::vector<bool> taken(static_cast<std::size_t>(weights.out), false);
  for (std::int64_t i = 0; i < weights.in; ++i) {
    std::int64_t slot = -1;
    for (std::int64_t j = 0; j < weights.out; ++j) {
      const float weight = weights.at(i, j);
      if (weight == 0.0f) continue;
      if (weight != 1.0f || slot >= 0 || taken[static_cast<std::size_t>(j)]) return std::nullopt;
      slot = j;
    }
    if (slot < 0) return std::nullopt;
    taken[static_cast<std::size_t>(slot)] = true;
    slots.push_back(slot);
  }
  return slots;
}

AttentionPlan build_attention(const BuildContext& build, const LayerConfig& layer,
                              const LayerWeights& weights) {
  const EnginePlan& plan = build.plan;
  const DType act = plan.act;
  const std::int64_t rows = plan.shape.tile_rows, keys = plan.shape.keys;
  const std::int64_t heads = layer.heads, dk = layer.qk_dim, dv = layer.v_dim;
  const std::int64_t query_width = heads * dk, key_value_width = heads * (dk + dv);
  const std::int64_t attended_width = heads * dv;
  AttentionPlan attention;
  attention.heads = heads;
  attention.qk_dim = dk;
  attention.query_width = query_width;
  attention.key_value_width = key_value_width;
  attention.attended_width = attended_width;
  attention.product_size = heads * dk * dv;
  attention.keys = keys;
  attention.tile_rows = rows;
  attention.head_qk_bytes = static_cast<std::size_t>(dk) * ops::size_of(act);
  attention.values_offset = static_cast<std::size_t>(query_width) * ops::size_of(act);

  if (layer.attention_norm) {
    attention.norm.emplace(build.stream_rows, build.input_rows, weights.attention_norm_gamma,
                           weights.attention_norm_beta, layer.norm_epsilon);
  } else if (build.options.bf16) {
    attention.to_bf16.emplace(build.stream_rows, build.converted_rows);
  }
  attention.path = attention_path(layer, build.causal, build.options);
  // ops::LinearAttention, and the views of x it can read and write (see AttentionPlan::small).
  const bool small = attention.path == AttentionPath::kKeysTimesValues && act == DType::kF32 &&
                     dv <= ops::LinearAttention::kMaxValueWidth;
  const bool views = small && build.structured && !layer.attention_norm;
  std::optional<ops::HeadColumns> query_view, key_view, value_view;
  std::optional<std::vector<std::int64_t>> output_slots;
  if (views) {
    query_view = selected_heads(projection_weights(weights.wq, weights.bq, plan.width), heads, dk);
    key_view = selected_heads(projection_weights(weights.wk, weights.bk, plan.width), heads, dk);
    value_view = selected_heads(projection_weights(weights.wv, weights.bv, plan.width), heads, dv);
    if (!key_view || !value_view) key_view = value_view = std::nullopt;
    output_slots = selected_slots(projection_weights(weights.wo, weights.bo, attended_width));
    // The kernel adds row r's O before it reads row r's next head: the slots it writes must not
    // be ones its query view reads.
    if (output_slots && query_view) {
      for (std::int64_t slot : *output_slots) {
        for (std::int64_t first : query_view->head_column) {
          if (slot >= first && slot < first + dk) output_slots.reset();
        }
        if (!output_slots) break;
      }
    }
  }
  attention.query_view = query_view.has_value();
  attention.key_value_view = key_view.has_value();
  attention.output_view = output_slots.has_value();

  const std::vector<bool> changing = changing_slots(build, layer, weights);
  if (!query_view) {
    attention.query.emplace(plan_projection(
        build, projection_weights(weights.wq, weights.bq, plan.width), build.input_rows,
        Layout::rows(rows, query_width, query_width, act), ops::PostActivation::kNone, false,
        changing));
  }
  if (!key_view) {
    const std::vector<float> kv_weights =
        concat_columns(weights.wk, query_width, weights.wv, attended_width, plan.width);
    std::vector<float> kv_bias(weights.bk);
    kv_bias.insert(kv_bias.end(), weights.bv.begin(), weights.bv.end());
    attention.key_value.emplace(plan_projection(
        build, projection_weights(kv_weights, kv_bias, plan.width), build.input_rows,
        Layout::rows(rows, key_value_width, key_value_width, act), ops::PostActivation::kNone,
        false, changing));
  }

  const HeadViews head_views{Layout{{heads, rows, dk}, {dk, query_width, 1}, act},
                        Layout{{heads, dk, keys}, {dk, 1, key_value_width}, act},
                        Layout{{heads, keys, dv}, {dv, key_value_width, 1}, act},
                        Layout{{heads, rows, dv}, {dv, attended_width, 1}, act}};
  // Under the icl mask every row sees all n keys, so the mean over keys folds into the scale.
  const float icl_scale =
      layer.scale / (layer.mean_over_keys ? static_cast<float>(plan.context) : 1.0f);
  switch (attention.path) {
    case AttentionPath::kKeysTimesValues:
      if (small) {
        ops::LinearAttentionShape shape;
        shape.heads = heads;
        shape.qk_dim = dk;
        shape.v_dim = dv;
        shape.scale = icl_scale;
        shape.queries = query_view ? *query_view : ops::HeadColumns::packed(query_width, heads, dk);
        shape.keys = key_view ? *key_view : ops::HeadColumns::packed(key_value_width, heads, dk);
        shape.values = value_view
                           ? *value_view
                           : ops::HeadColumns::packed(key_value_width, heads, dv, query_width);
        if (output_slots) {
          shape.out_stride = plan.width;
          shape.out_column = *output_slots;
          shape.accumulate = true;
        } else {
          shape.out_stride = attended_width;
          for (std::int64_t j = 0; j < attended_width; ++j) shape.out_column.push_back(j);
        }
        // M's sum runs in blocks of one row tile, so the one-sweep path below can build it from
        // per-tile block sums and get the same bits.
        shape.key_block_rows = rows;
        attention.small.emplace(std::move(shape));
        attention.one_sweep = query_view && key_view && layer.loop > 1;
      } else {
        plan_keys_times_values(attention, head_views, icl_scale, dv, act);
      }
      break;
    case AttentionPath::kExplicitScores:
      plan_explicit_scores(build, layer, head_views, icl_scale, attention);
      break;
    case AttentionPath::kFused:
      attention.fused.emplace(fused_shape(layer, build.causal, act, rows, keys, plan.context));
      build.scratchpad.note(attention.fused);
      break;
  }
  if (!output_slots) {
    attention.output.emplace(plan_projection(
        build, projection_weights(weights.wo, weights.bo, attended_width),
        Layout::rows(rows, attended_width, attended_width, act), build.stream_rows,
        ops::PostActivation::kNone, true));
  }

  build.scratchpad.note(attention.to_bf16, attention.query, attention.key_value,
                        attention.keys_times_values, attention.queries_times_product,
                        attention.scores, attention.mix, attention.output);
  return attention;
}

// The MLP over its live hidden units only: unit f is live when its down row has a nonzero and
// its up column or bias does (a unit with neither is act(0) = 0 for every activation here). Up
// writes the F' live units compact [F', R], down reads them. Empty when that is not cheaper.
std::optional<std::pair<Projection, Projection>> structured_mlp(const BuildContext& build,
                                                                const ProjectionWeights& up,
                                                                const ProjectionWeights& down,
                                                                ops::PostActivation activation) {
  const std::vector<bool> reaches_output = [&] {
    std::vector<bool> rows(static_cast<std::size_t>(down.in), false);
    for (std::int64_t f = 0; f < down.in; ++f) {
      for (std::int64_t j = 0; j < down.out; ++j) {
        if (down.at(f, j) != 0.0f) rows[static_cast<std::size_t>(f)] = true;
      }
    }
    return rows;
  }();
  const std::vector<bool> has_input = written_columns(up);
  std::vector<float> up_weights, up_bias, down_weights;
  std::int64_t live = 0;
  for (std::int64_t f = 0; f < up.out; ++f) {
    const auto unit = static_cast<std::size_t>(f);
    if (!reaches_output[unit] || !has_input[unit]) continue;
    up_bias.push_back(up.bias[unit]);
    const auto row = down.weights.subspan(unit * static_cast<std::size_t>(down.out),
                                          static_cast<std::size_t>(down.out));
    down_weights.insert(down_weights.end(), row.begin(), row.end());
    ++live;
  }
  for (std::int64_t i = 0; i < up.in; ++i) {
    for (std::int64_t f = 0; f < up.out; ++f) {
      const auto unit = static_cast<std::size_t>(f);
      if (reaches_output[unit] && has_input[unit]) up_weights.push_back(up.at(i, f));
    }
  }
  const ProjectionWeights live_up{up_weights, up_bias, up.in, live};
  const ProjectionWeights live_down{down_weights, down.bias, live, down.out};
  const auto up_columns =
      analyse_columns(live_up, ColumnMap::identity(up.in, live), false, false);
  const auto down_columns =
      analyse_columns(live_down, ColumnMap::identity(live, down.out), true, true);
  if (structured_cost(up_columns) + structured_cost(down_columns) >=
      dense_cost(up) + dense_cost(down)) {
    return std::nullopt;
  }
  // The hidden units column-major [F', R]: up writes and down reads each unit's R values
  // contiguously.
  const std::int64_t rows = build.plan.shape.tile_rows;
  const ops::StructuredLinear::Strides hidden{1, rows};
  return std::pair{
      Projection::structured(ops::StructuredLinear(rows, {up.in, 1}, up.in, hidden, live,
                                                   up_columns, activation, false),
                             std::nullopt),
      Projection::structured(ops::StructuredLinear(rows, hidden, live, {down.out, 1}, down.out,
                                                   down_columns, ops::PostActivation::kNone, true),
                             std::nullopt)};
}

// The MLP as ops::SmallMlp: its live units (a nonzero down weight and a nonzero up weight or
// bias), the columns of x they read, the columns they write (or that a down bias writes), and
// only the nonzero weights as terms. Empty when it does not fit the kernel.
std::optional<ops::SmallMlp> small_mlp(const BuildContext& build, const ProjectionWeights& up,
                                       const ProjectionWeights& down,
                                       ops::PostActivation activation) {
  ops::SmallMlp::Weights small;
  std::vector<std::int64_t> input_index(static_cast<std::size_t>(up.in), -1);
  std::vector<std::int64_t> live_units;
  for (std::int64_t f = 0; f < up.out; ++f) {
    bool reaches_output = false, has_input = up.bias[static_cast<std::size_t>(f)] != 0.0f;
    for (std::int64_t c = 0; c < down.out; ++c) reaches_output |= down.at(f, c) != 0.0f;
    for (std::int64_t i = 0; i < up.in; ++i) has_input |= up.at(i, f) != 0.0f;
    if (reaches_output && has_input) live_units.push_back(f);
  }
  for (std::int64_t f : live_units) {
    ops::SmallMlp::Unit& unit = small.units.emplace_back();
    unit.bias = up.bias[static_cast<std::size_t>(f)];
    for (std::int64_t i = 0; i < up.in; ++i) {
      const float weight = up.at(i, f);
      if (weight == 0.0f) continue;
      std::int64_t& index = input_index[static_cast<std::size_t>(i)];
      if (index < 0) {
        index = static_cast<std::int64_t>(small.inputs.size());
        small.inputs.push_back(i);
      }
      unit.terms.push_back({index, weight});
    }
  }
  for (std::int64_t c = 0; c < down.out; ++c) {
    ops::SmallMlp::Output output;
    output.column = c;
    output.bias = down.bias[static_cast<std::size_t>(c)];
    for (std::size_t j = 0; j < live_units.size(); ++j) {
      const float weight = down.at(live_units[j], c);
      if (weight != 0.0f) output.terms.push_back({static_cast<std::int64_t>(j), weight});
    }
    if (!output.terms.empty() || output.bias != 0.0f) small.outputs.push_back(std::move(output));
  }
  if (!ops::SmallMlp::fits(static_cast<std::int64_t>(small.inputs.size()),
                           static_cast<std::int64_t>(small.units.size()),
                           static_cast<std::int64_t>(small.outputs.size()), activation)) {
    return std::nullopt;
  }
  return ops::SmallMlp(build.plan.shape.tile_rows, build.plan.width, build.plan.width,
                       std::move(small), activation);
}

MlpPlan build_mlp(const BuildContext& build, const LayerConfig& layer,
                  const LayerWeights& weights) {
  MlpPlan mlp;
  if (layer.mlp_norm) {
    mlp.norm.emplace(build.stream_rows, build.input_rows, weights.mlp_norm_gamma,
                     weights.mlp_norm_beta, layer.norm_epsilon);
  } else if (build.options.bf16) {
    mlp.to_bf16.emplace(build.stream_rows, build.converted_rows);
  }
  const std::int64_t rows = build.plan.shape.tile_rows;
  const ops::PostActivation activation = post_activation(layer.activation);
  const ProjectionWeights up = projection_weights(weights.w1, weights.b1, build.plan.width);
  const ProjectionWeights down = projection_weights(weights.w2, weights.b2, layer.mlp_hidden);
  if (build.structured && !layer.mlp_norm) {
    mlp.small = small_mlp(build, up, down, activation);
    if (mlp.small) return mlp;
  }
  if (build.structured) {
    if (auto structured = structured_mlp(build, up, down, activation)) {
      mlp.up.emplace(std::move(structured->first));
      mlp.down.emplace(std::move(structured->second));
    }
  }
  if (!mlp.up) {
    const Layout hidden = Layout::rows(rows, layer.mlp_hidden, layer.mlp_hidden, build.plan.act);
    if (layer.activation == Activation::kGelu) {
      const Layout hidden_f32 = Layout::rows(rows, layer.mlp_hidden, layer.mlp_hidden, DType::kF32);
      mlp.up.emplace(Projection::dense(ops::Linear(build.input_rows, weights.w1, weights.b1,
                                                   hidden_f32, ops::PostActivation::kNone, false),
                                       2 * dense_cost(up)));
      mlp.gelu.emplace(Layout::dense({rows, layer.mlp_hidden}, DType::kF32),
                       Layout::dense({rows, layer.mlp_hidden}, build.plan.act), ops::GeluForm::kErf);
    } else {
      mlp.up.emplace(Projection::dense(
          ops::Linear(build.input_rows, weights.w1, weights.b1, hidden, activation, false),
          2 * dense_cost(up)));
    }
    mlp.down.emplace(Projection::dense(ops::Linear(hidden, weights.w2, weights.b2,
                                                   build.stream_rows, ops::PostActivation::kNone,
                                                   true),
                                       2 * dense_cost(down)));
  }
  build.scratchpad.note(mlp.to_bf16, mlp.up, mlp.down);
  return mlp;
}

// The FLOPs one prompt executes in a layer's first and later passes: the projections' executed
// FLOPs per row (ops::StructuredLinear::flops_per_row for a structured one) times the rows they
// run on (real rows: T, or the Tk key rows for [K V]), and the attention products as
// ModelConfig::forward_flops counts them.
void count_flops(const EnginePlan& plan, const LayerConfig& layer, LayerPlan& layer_plan) {
  const double t = static_cast<double>(plan.tokens);
  for (int pass = 0; pass < 2; ++pass) {
    double flops = 0;
    if (const auto& attention = layer_plan.attention) {
      const double key_rows = static_cast<double>(attention->keys);
      const double h = layer.heads, dk = layer.qk_dim, dv = layer.v_dim;
      // An absent projection is a view of x (AttentionPlan::small): no FLOPs.
      const auto per_row = [pass](const std::optional<Projection>& projection) {
        return projection ? projection->flops_per_row(pass) : 0.0;
      };
      flops += t * per_row(attention->query) + key_rows * per_row(attention->key_value) +
               t * per_row(attention->output);
      flops += attention->path == AttentionPath::kKeysTimesValues
                   ? 2 * h * key_rows * dk * dv + 2 * h * t * dk * dv
                   : 2 * h * attended_pairs(layer.mask, plan.tokens, attention->keys) * (dk + dv);
    }
    if (const auto& mlp = layer_plan.mlp) {
      flops += t * (mlp->small ? mlp->small->flops_per_row()
                               : mlp->up->flops_per_row(pass) + mlp->down->flops_per_row(pass));
    }
    (pass == 0 ? layer_plan.first_pass_flops : layer_plan.later_pass_flops) = flops;
  }
}

}  // namespace

Buffer::Buffer(std::size_t bytes)
    : data_(static_cast<std::byte*>(
          std::aligned_alloc(kBufferAlignment, align_up(std::max<std::size_t>(bytes, 1))))),
      size_(bytes) {
  if (!data_) throw std::bad_alloc();
}

void Buffer::Free::operator()(void* pointer) const { std::free(pointer); }

AttentionPath attention_path(const LayerConfig& layer, bool causal, const EngineOptions& options) {
  if (layer.attention == AttentionKind::kLinear && !causal && !options.explicit_linear_attention) {
    return AttentionPath::kKeysTimesValues;
  }
  return options.unfused_attention ? AttentionPath::kExplicitScores : AttentionPath::kFused;
}

PlanShape plan_shape(const ModelConfig& config, const EngineOptions& options, std::int64_t tokens,
                     std::int64_t context) {
  PlanShape shape;
  const bool causal = config.mask() == Mask::kCausal;
  shape.tile_rows = std::min(tokens, kMaxTileRows);
  shape.tiles = (tokens + shape.tile_rows - 1) / shape.tile_rows;
  shape.padded_tokens = shape.tiles * shape.tile_rows;
  shape.keys = causal ? tokens : context;
  shape.act_size = options.bf16 ? 2 : 4;
  std::set<std::pair<bool, bool>> mask_variants;
  for (const LayerConfig& layer : config.layers) {
    if (layer.has_attention()) {
      shape.query_width = std::max<std::int64_t>(shape.query_width, layer.heads * layer.qk_dim);
      shape.key_value_width =
          std::max<std::int64_t>(shape.key_value_width, layer.heads * (layer.qk_dim + layer.v_dim));
      shape.attended_width =
          std::max<std::int64_t>(shape.attended_width, layer.heads * layer.v_dim);
      shape.product_size =
          std::max<std::int64_t>(shape.product_size, layer.heads * layer.qk_dim * layer.v_dim);
      switch (attention_path(layer, causal, options)) {
        case AttentionPath::kKeysTimesValues:
          // A looped layer may take the one-sweep path (decided from the weights later): room
          // for its per-tile block sums of K^T V.
          if (layer.loop > 1 && !options.bf16 && !options.dense) shape.key_block_sums = true;
          if (shape.key_block_sums) {
            shape.column_stride = ops::ColumnSweep::column_stride(shape.padded_tokens);
            shape.column_count = std::max(
                shape.column_count, ops::ColumnSweep::max_columns(config.width, layer.mlp_hidden));
          }
          break;
        case AttentionPath::kExplicitScores:
          shape.max_scores = std::max<std::size_t>(
              shape.max_scores,
              static_cast<std::size_t>(layer.heads * shape.tile_rows * shape.keys));
          if (causal) {
            mask_variants.insert(
                {layer.attention == AttentionKind::kSoftmax, layer.mean_over_keys});
          }
          break;
        case AttentionPath::kFused:
          shape.fused_scratch = std::max(
              shape.fused_scratch,
              ops::FusedAttention::scratchpad_bytes_for(
                  fused_shape(layer, causal, options.bf16 ? ops::DType::kBF16 : ops::DType::kF32,
                              shape.tile_rows, shape.keys, context)));
          break;
      }
    }
    if (layer.has_mlp()) {
      shape.max_hidden = std::max<std::size_t>(
          shape.max_hidden, static_cast<std::size_t>(shape.tile_rows * layer.mlp_hidden));
    }
  }
  shape.per_prompt_bytes =
      static_cast<std::size_t>(shape.padded_tokens) *
          (static_cast<std::size_t>(config.width) * 4 +
           static_cast<std::size_t>(shape.query_width + shape.key_value_width +
                                    shape.attended_width) *
               shape.act_size) +
      static_cast<std::size_t>(shape.product_size) * shape.act_size +
      (shape.key_block_sums ? static_cast<std::size_t>(shape.tiles * shape.product_size) * 4 : 0) +
      static_cast<std::size_t>(shape.column_count * shape.column_stride) * 4 +
      (config.read_out ? static_cast<std::size_t>(shape.padded_tokens) * 4 : 0);
  shape.group =
      static_cast<std::int64_t>(std::max<std::size_t>(1, kGroupBytes / shape.per_prompt_bytes));
  shape.mask_bytes =
      mask_variants.size() * static_cast<std::size_t>(shape.padded_tokens * shape.keys) * 4;
  return shape;
}

ScratchLayout scratch_layout(const PlanShape& shape, std::int64_t width,
                             std::size_t scratchpad_bytes) {
  ScratchLayout layout;
  const std::size_t row_values = static_cast<std::size_t>(shape.tile_rows * width);
  layout.converted = align_up(row_values * 4);
  layout.scores = layout.converted + align_up(row_values * 2);
  layout.weights = layout.scores + align_up(shape.max_scores * 4);
  // f32 softmax runs in place; only bf16 weights need their own area.
  layout.hidden =
      layout.weights + (shape.act_size == 4 ? 0 : align_up(shape.max_scores * shape.act_size));
  layout.scratchpad = layout.hidden + align_up(shape.max_hidden * 4);
  layout.total = layout.scratchpad + align_up(std::max(scratchpad_bytes, shape.fused_scratch));
  return layout;
}

void EnginePlan::reserve_group(std::int64_t prompts) {
  if (prompts <= allocated_group) return;
  const std::size_t act_size = ops::size_of(act);
  const auto rows = static_cast<std::size_t>(prompts * shape.padded_tokens);
  stream = Buffer(rows * static_cast<std::size_t>(width) * 4);
  queries = Buffer(rows * static_cast<std::size_t>(shape.query_width) * act_size);
  keys_values = Buffer(rows * static_cast<std::size_t>(shape.key_value_width) * act_size);
  attended = Buffer(rows * static_cast<std::size_t>(shape.attended_width) * act_size);
  products = Buffer(static_cast<std::size_t>(prompts * shape.product_size) * act_size);
  if (shape.key_block_sums) {
    key_block_sums =
        Buffer(static_cast<std::size_t>(prompts * shape.tiles * shape.product_size) * 4);
  }
  if (shape.column_stride > 0) {
    columns = Buffer(static_cast<std::size_t>(prompts * shape.column_count * shape.column_stride) * 4);
  }
  if (read_out) read_out_scores = Buffer(rows * 4);
  allocated_group = prompts;
}

TileScratch EnginePlan::thread_scratch() const {
  std::byte* base = thread_scratch_buffers.local().data();
  TileScratch tile;
  tile.normed = base + scratch.normed;
  tile.converted = base + scratch.converted;
  tile.scores = base + scratch.scores;
  tile.softmax_output = act == ops::DType::kF32 ? tile.scores : base + scratch.weights;
  tile.hidden = base + scratch.hidden;
  tile.scratchpad = base + scratch.scratchpad;
  if (time_op_groups) tile.clock = &clocks.local();
  return tile;
}

std::uint64_t plan_weight_bytes(const ModelConfig& config, const EngineOptions& options) {
  const std::uint64_t act_size = options.bf16 ? 2 : 4;
  const auto all_packed = static_cast<std::uint64_t>(config.parameter_count()) * act_size;
  // A bf16 or dense plan reorders each weight matrix straight from the model's f32 copy into its
  // packed form (ops::Linear): nothing beside the packed weights.
  if (options.dense || options.bf16) return all_packed;
  // Structure analysis, in build_plan's order (packed: what earlier ops of the plan keep; an
  // upper bound, as the structured form keeps at most the dense one's weights):
  //   - attention: analyse_columns packs the live block of one projection (Q, [K V] or O) at a
  //     time, at most its in x out floats, grown by push_back: at a reallocation the old block
  //     and its copy are both resident, under 2 in x out floats.
  //   - MLP without its own norm: small_mlp first makes a Term (16 bytes) of every nonzero of
  //     W_1 and W_2 before it knows whether they fit its kernel; per-unit vectors grown by
  //     push_back, so at most twice that.
  //   - MLP: structured_mlp copies the live units of W_1 and W_2 and then packs the live block
  //     of each (analyse_columns): four D x F f32 copies, the last one grown by push_back (under
  //     two more D x F at its reallocation). Measured (issue 14, VmHWM printed around
  //     structured_mlp, encoder D = 2048, F = 8192, f32): the second layer's call raised the
  //     peak by 269 MB = 4 x 67 MB, over the earlier layers' packed weights; the plan then keeps
  //     2 x 67 MB of it as that MLP's packed weights, so the run peaked 134 MB above its live
  //     memory at the end of the build.
  const std::uint64_t d = config.width;
  std::uint64_t packed = 0, peak = all_packed;
  for (const LayerConfig& layer : config.layers) {
    if (layer.has_attention()) {
      const std::uint64_t qk = static_cast<std::uint64_t>(layer.heads) * layer.qk_dim;
      const std::uint64_t v = static_cast<std::uint64_t>(layer.heads) * layer.v_dim;
      packed += ((d + 1) * (2 * qk + v) + (v + 1) * d) * act_size;
      const std::uint64_t widest = std::max({d * qk, d * (qk + v), v * d});
      peak = std::max(peak, packed + 2 * widest * sizeof(float));
    }
    if (layer.has_mlp()) {
      const std::uint64_t matrix = d * static_cast<std::uint64_t>(layer.mlp_hidden);
      std::uint64_t analysis = 5 * matrix * sizeof(float);
      if (!layer.mlp_norm) analysis = std::max(analysis, 2 * 2 * matrix * sizeof(ops::SmallMlp::Term));
      peak = std::max(peak, packed + analysis);
      packed += (matrix + layer.mlp_hidden + matrix + d) * act_size;
    }
  }
  return peak;
}

std::unique_ptr<EnginePlan> build_plan(const ModelConfig& config, const Weights& weights,
                                       const EngineOptions& options, std::int64_t tokens,
                                       std::int64_t context) {
  auto plan = std::make_unique<EnginePlan>();
  plan->tokens = tokens;
  plan->context = context;
  plan->width = config.width;
  plan->shape = plan_shape(config, options, tokens, context);
  plan->act = options.bf16 ? DType::kBF16 : DType::kF32;
  plan->time_op_groups = options.time_op_groups;

  ScratchpadSize scratchpad;
  const std::int64_t rows = plan->shape.tile_rows, width = config.width;
  const Layout stream_rows = Layout::rows(rows, width, width, DType::kF32);
  const Layout converted_rows = Layout::rows(rows, width, width, DType::kBF16);
  const BuildContext build{*plan,         options,     config.mask() == Mask::kCausal,
                           scratchpad,    stream_rows, options.bf16 ? converted_rows : stream_rows,
                           converted_rows, !options.dense && !options.bf16};

  plan->layers.reserve(config.layers.size());
  for (std::size_t index = 0; index < config.layers.size(); ++index) {
    const LayerConfig& layer = config.layers[index];
    LayerPlan& layer_plan = plan->layers.emplace_back();
    layer_plan.passes = layer.loop;
    if (layer.has_attention())
      layer_plan.attention.emplace(build_attention(build, layer, weights.layers[index]));
    if (layer.has_mlp()) layer_plan.mlp.emplace(build_mlp(build, layer, weights.layers[index]));
    // The loop on its live slots column-major (LayerPlan::column_sweep): decided from what the
    // weights made of the layer (views of x for Q, K, V and O; the MLP's nonzero weights).
    if (const auto& attention = layer_plan.attention;
        attention && attention->one_sweep && attention->output_view &&
        (!layer_plan.mlp || layer_plan.mlp->small)) {
      layer_plan.column_sweep.emplace(
          *attention->small, layer_plan.mlp ? layer_plan.mlp->small : std::nullopt, width);
      // Its block (live slots and hoisted MLP units) within what plan_shape allocated.
      if (layer_plan.column_sweep->columns() > plan->shape.column_count) {
        throw std::logic_error("column sweep block wider than planned");
      }
    }
    count_flops(*plan, layer, layer_plan);
    plan->flops += layer_plan.first_pass_flops + (layer.loop - 1) * layer_plan.later_pass_flops;
  }

  plan->input_width = config.read_in ? config.input_dim : width;
  if (config.read_in) {
    plan->read_in.emplace(Layout::rows(rows, config.input_dim, config.input_dim, DType::kF32),
                          weights.read_in_w, weights.read_in_b, stream_rows,
                          ops::PostActivation::kNone, true);
    scratchpad.note(plan->read_in);
    // The entry and exit run over every token row, as ModelConfig::forward_flops counts them.
    plan->flops +=
        2.0 * static_cast<double>(plan->tokens) * config.input_dim * static_cast<double>(width);
  }
  if (config.positions > 0) plan->positions = &weights.positions;
  if (config.read_out) {
    ReadOutPlan& read_out = plan->read_out.emplace();
    read_out.norm.emplace(stream_rows, build.input_rows, weights.read_out_norm_gamma,
                          weights.read_out_norm_beta, config.read_out_norm_epsilon);
    read_out.project.emplace(build.input_rows, weights.read_out_w, weights.read_out_b,
                             Layout::rows(rows, 1, 1, DType::kF32), ops::PostActivation::kNone,
                             false);
    scratchpad.note(read_out.project);
    plan->flops += 2.0 * static_cast<double>(plan->tokens) * static_cast<double>(width);
  }

  plan->scratch = scratch_layout(plan->shape, width, scratchpad.bytes());
  const std::size_t scratch_bytes = plan->scratch.total;
  plan->thread_scratch_buffers =
      tbb::enumerable_thread_specific<Buffer>([scratch_bytes] { return Buffer(scratch_bytes); });
  return plan;
}

}  // namespace iclbench::model
