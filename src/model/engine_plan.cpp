#include "model/engine_plan.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <new>
#include <set>

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

bool uses_keys_times_values(const LayerConfig& layer, bool causal, const EngineOptions& options) {
  return layer.attention == AttentionKind::kLinear && !causal && !options.explicit_linear_attention;
}

ops::PostActivation post_activation(Activation activation) {
  switch (activation) {
    case Activation::kNone:
      return ops::PostActivation::kNone;
    case Activation::kRelu:
      return ops::PostActivation::kRelu;
    case Activation::kGelu:
      return ops::PostActivation::kGelu;
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
};

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
  attention.path = AttentionPath::kKeysTimesValues;
  const Layout product_layout = Layout::dense({attention.heads, attention.qk_dim, dv}, act);
  attention.keys_times_values.emplace(views.keys_transposed, views.values, product_layout, scale,
                                      false);
  attention.queries_times_product.emplace(views.queries, product_layout, views.attended, 1.0f,
                                          false);
}

// S = scale Q K^T (masked, ReLU'd), A = softmax(S) or S, O = A V, per row tile.
void plan_explicit_scores(const BuildContext& build, const LayerConfig& layer,
                          const HeadViews& views, float icl_scale, AttentionPlan& attention) {
  attention.path = AttentionPath::kExplicitScores;
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
  attention.head_qk_bytes = static_cast<std::size_t>(dk) * ops::size_of(act);
  attention.values_offset = static_cast<std::size_t>(query_width) * ops::size_of(act);

  if (layer.attention_norm) {
    attention.norm.emplace(build.stream_rows, weights.attention_norm_gamma,
                           weights.attention_norm_beta, layer.norm_epsilon);
  }
  if (build.options.bf16) attention.to_bf16.emplace(build.stream_rows, build.converted_rows);
  attention.query.emplace(build.input_rows, weights.wq, weights.bq,
                          Layout::rows(rows, query_width, query_width, act),
                          ops::PostActivation::kNone, false);
  const std::vector<float> kv_weights =
      concat_columns(weights.wk, query_width, weights.wv, attended_width, plan.width);
  std::vector<float> kv_bias(weights.bk);
  kv_bias.insert(kv_bias.end(), weights.bv.begin(), weights.bv.end());
  attention.key_value.emplace(build.input_rows, kv_weights, kv_bias,
                              Layout::rows(rows, key_value_width, key_value_width, act),
                              ops::PostActivation::kNone, false);

  const HeadViews views{Layout{{heads, rows, dk}, {dk, query_width, 1}, act},
                        Layout{{heads, dk, keys}, {dk, 1, key_value_width}, act},
                        Layout{{heads, keys, dv}, {dv, key_value_width, 1}, act},
                        Layout{{heads, rows, dv}, {dv, attended_width, 1}, act}};
  // Under the icl mask every row sees all n keys, so the mean over keys folds into the scale.
  const float icl_scale =
      layer.scale / (layer.mean_over_keys ? static_cast<float>(plan.context) : 1.0f);
  if (uses_keys_times_values(layer, build.causal, build.options)) {
    plan_keys_times_values(attention, views, icl_scale, dv, act);
  } else {
    plan_explicit_scores(build, layer, views, icl_scale, attention);
  }
  attention.output.emplace(Layout::rows(rows, attended_width, attended_width, act), weights.wo,
                           weights.bo, build.stream_rows, ops::PostActivation::kNone, true);

  build.scratchpad.note(attention.norm, attention.to_bf16, attention.query, attention.key_value,
                        attention.keys_times_values, attention.queries_times_product,
                        attention.scores, attention.mix, attention.output);
  return attention;
}

MlpPlan build_mlp(const BuildContext& build, const LayerConfig& layer,
                  const LayerWeights& weights) {
  MlpPlan mlp;
  if (layer.mlp_norm) {
    mlp.norm.emplace(build.stream_rows, weights.mlp_norm_gamma, weights.mlp_norm_beta,
                     layer.norm_epsilon);
  }
  if (build.options.bf16) mlp.to_bf16.emplace(build.stream_rows, build.converted_rows);
  const std::int64_t rows = build.plan.shape.tile_rows;
  const Layout hidden = Layout::rows(rows, layer.mlp_hidden, layer.mlp_hidden, build.plan.act);
  mlp.up.emplace(build.input_rows, weights.w1, weights.b1, hidden,
                 post_activation(layer.activation), false);
  mlp.down.emplace(hidden, weights.w2, weights.b2, build.stream_rows, ops::PostActivation::kNone,
                   true);
  build.scratchpad.note(mlp.norm, mlp.to_bf16, mlp.up, mlp.down);
  return mlp;
}

}  // namespace

Buffer::Buffer(std::size_t bytes)
    : data_(static_cast<std::byte*>(
          std::aligned_alloc(kBufferAlignment, align_up(std::max<std::size_t>(bytes, 1))))),
      size_(bytes) {
  if (!data_) throw std::bad_alloc();
}

void Buffer::Free::operator()(void* pointer) const { std::free(pointer); }

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
      if (!uses_keys_times_values(layer, causal, options)) {
        shape.max_scores = std::max<std::size_t>(
            shape.max_scores, static_cast<std::size_t>(layer.heads * shape.tile_rows * shape.keys));
      }
      if (causal)
        mask_variants.insert({layer.attention == AttentionKind::kSoftmax, layer.mean_over_keys});
    }
    if (layer.has_mlp()) {
      shape.max_hidden = std::max<std::size_t>(
          shape.max_hidden, static_cast<std::size_t>(shape.tile_rows * layer.mlp_hidden));
    }
  }
  shape.per_prompt_bytes = static_cast<std::size_t>(shape.padded_tokens) *
                               (static_cast<std::size_t>(config.width) * 4 +
                                static_cast<std::size_t>(shape.query_width + shape.key_value_width +
                                                         shape.attended_width) *
                                    shape.act_size) +
                           static_cast<std::size_t>(shape.product_size) * shape.act_size;
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
  layout.total = layout.scratchpad + align_up(scratchpad_bytes);
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
  return tile;
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

  ScratchpadSize scratchpad;
  const std::int64_t rows = plan->shape.tile_rows, width = config.width;
  const Layout stream_rows = Layout::rows(rows, width, width, DType::kF32);
  const Layout converted_rows = Layout::rows(rows, width, width, DType::kBF16);
  const BuildContext build{*plan,         options,     config.mask() == Mask::kCausal,
                           scratchpad,    stream_rows, options.bf16 ? converted_rows : stream_rows,
                           converted_rows};

  plan->layers.reserve(config.layers.size());
  for (std::size_t index = 0; index < config.layers.size(); ++index) {
    const LayerConfig& layer = config.layers[index];
    LayerPlan& layer_plan = plan->layers.emplace_back();
    layer_plan.passes = layer.loop;
    if (layer.has_attention())
      layer_plan.attention.emplace(build_attention(build, layer, weights.layers[index]));
    if (layer.has_mlp()) layer_plan.mlp.emplace(build_mlp(build, layer, weights.layers[index]));
  }

  plan->scratch = scratch_layout(plan->shape, width, scratchpad.bytes());
  const std::size_t scratch_bytes = plan->scratch.total;
  plan->thread_scratch_buffers =
      tbb::enumerable_thread_specific<Buffer>([scratch_bytes] { return Buffer(scratch_bytes); });
  return plan;
}

}  // namespace iclbench::model
