#include "model/engine.hpp"

#include <tbb/blocked_range.h>
#include <tbb/enumerable_thread_specific.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <set>
#include <stdexcept>

#include "ops/dnnl_ops.hpp"
#include "ops/row_softmax.hpp"
#include "runtime/threading.hpp"

namespace iclbench::model {
namespace {

using ops::DType;
using ops::Layout;

// Row tiles: large enough that a projection is an efficient GEMM, small enough that a long
// prompt splits into several pieces for the threads and its score tile stays in cache.
constexpr std::int64_t kMaxTileRows = 256;
// Prompts are run in groups whose activations fit in about this much memory.
constexpr std::size_t kGroupBytes = 256u << 20;
constexpr std::size_t kAlignment = 64;

std::size_t align_up(std::size_t bytes) { return (bytes + kAlignment - 1) / kAlignment * kAlignment; }

struct FreeDeleter {
  void operator()(void* pointer) const { std::free(pointer); }
};
// 64-byte aligned bytes (what oneDNN's kernels like best).
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(std::size_t bytes)
      : data_(static_cast<std::byte*>(std::aligned_alloc(kAlignment, align_up(std::max<std::size_t>(bytes, 1))))),
        size_(bytes) {
    if (!data_) throw std::bad_alloc();
  }
  std::byte* data() const { return data_.get(); }
  std::size_t size() const { return size_; }

 private:
  std::unique_ptr<std::byte, FreeDeleter> data_;
  std::size_t size_ = 0;
};

ops::PostActivation post_activation(Activation activation) {
  switch (activation) {
    case Activation::kNone: return ops::PostActivation::kNone;
    case Activation::kRelu: return ops::PostActivation::kRelu;
    case Activation::kGelu: return ops::PostActivation::kGelu;
  }
  return ops::PostActivation::kNone;
}

// Concatenates the key and value projections so that one GEMM makes both: [D, H(dk + dv)].
std::vector<float> concat_columns(const std::vector<float>& left, std::int64_t left_cols,
                                  const std::vector<float>& right, std::int64_t right_cols,
                                  std::int64_t rows) {
  std::vector<float> out(static_cast<std::size_t>(rows * (left_cols + right_cols)));
  for (std::int64_t r = 0; r < rows; ++r) {
    std::copy_n(left.begin() + r * left_cols, left_cols, out.begin() + r * (left_cols + right_cols));
    std::copy_n(right.begin() + r * right_cols, right_cols,
                out.begin() + r * (left_cols + right_cols) + left_cols);
  }
  return out;
}

// The sizes of a plan for (T, n), known before any primitive exists: what plan() allocates and
// what Engine::working_bytes() reports come from this one function, so the two cannot drift.
struct PlanShape {
  std::int64_t tile_rows = 0, tiles = 0, padded_tokens = 0, keys = 0;
  std::int64_t q_width = 0, kv_width = 0, o_width = 0, m_size = 0;  // group buffer widths
  std::size_t act_size = 4;
  std::size_t max_scores = 0, max_hidden = 0;  // elements per thread
  std::size_t per_prompt_bytes = 0;            // group buffers per prompt
  std::int64_t group = 0;                      // prompts per group
  std::size_t mask_bytes = 0;                  // causal masks
};

bool uses_key_value_product(const LayerConfig& layer, bool causal, const EngineOptions& options) {
  return layer.attention == AttentionKind::kLinear && !causal && !options.explicit_linear_attention;
}

PlanShape plan_shape(const ModelConfig& config, const EngineOptions& options, std::int64_t tokens,
                     std::int64_t context) {
  PlanShape s;
  const bool causal = config.mask() == Mask::kCausal;
  s.tile_rows = std::min(tokens, kMaxTileRows);
  s.tiles = (tokens + s.tile_rows - 1) / s.tile_rows;
  s.padded_tokens = s.tiles * s.tile_rows;
  s.keys = causal ? tokens : context;
  s.act_size = options.bf16 ? 2 : 4;
  std::set<std::pair<bool, bool>> mask_variants;
  for (const LayerConfig& layer : config.layers) {
    if (layer.has_attention()) {
      s.q_width = std::max<std::int64_t>(s.q_width, layer.heads * layer.qk_dim);
      s.kv_width = std::max<std::int64_t>(s.kv_width, layer.heads * (layer.qk_dim + layer.v_dim));
      s.o_width = std::max<std::int64_t>(s.o_width, layer.heads * layer.v_dim);
      s.m_size = std::max<std::int64_t>(s.m_size, layer.heads * layer.qk_dim * layer.v_dim);
      if (!uses_key_value_product(layer, causal, options)) {
        s.max_scores = std::max<std::size_t>(s.max_scores, static_cast<std::size_t>(layer.heads * s.tile_rows * s.keys));
      }
      if (causal) mask_variants.insert({layer.attention == AttentionKind::kSoftmax, layer.mean_over_keys});
    }
    if (layer.has_mlp()) {
      s.max_hidden = std::max<std::size_t>(s.max_hidden, static_cast<std::size_t>(s.tile_rows * layer.mlp_hidden));
    }
  }
  s.per_prompt_bytes =
      static_cast<std::size_t>(s.padded_tokens) *
          (static_cast<std::size_t>(config.width) * 4 +
           static_cast<std::size_t>(s.q_width + s.kv_width + s.o_width) * s.act_size) +
      static_cast<std::size_t>(s.m_size) * s.act_size;
  s.group = static_cast<std::int64_t>(std::max<std::size_t>(1, kGroupBytes / s.per_prompt_bytes));
  s.mask_bytes = mask_variants.size() * static_cast<std::size_t>(s.padded_tokens * s.keys) * 4;
  return s;
}

// Per-thread scratch: norm output f32 [R, D], bf16 input [R, D], scores f32 [H, R, Tk],
// bf16 attention weights [H, R, Tk], MLP hidden [R, F], then the oneDNN scratchpad.
struct ScratchOffsets {
  std::size_t normed = 0, converted = 0, scores = 0, weights = 0, hidden = 0, scratchpad = 0, total = 0;
};
ScratchOffsets scratch_offsets(const PlanShape& s, std::int64_t width, std::size_t scratchpad_bytes) {
  ScratchOffsets o;
  const std::size_t rows_values = static_cast<std::size_t>(s.tile_rows * width);
  o.converted = align_up(rows_values * 4);
  o.scores = o.converted + align_up(rows_values * 2);
  o.weights = o.scores + align_up(s.max_scores * 4);
  // f32 softmax runs in place; only bf16 weights need their own area.
  o.hidden = o.weights + (s.act_size == 4 ? 0 : align_up(s.max_scores * s.act_size));
  o.scratchpad = o.hidden + align_up(s.max_hidden * 4);
  o.total = o.scratchpad + align_up(scratchpad_bytes);
  return o;
}

}  // namespace

// Everything for one (T, n): primitives per layer, the causal mask, group buffers, and
// per-thread scratch. Offsets are in bytes.
struct Engine::Plan {
  struct LayerOps {
    // Stage 1, per row tile: norm, bf16 conversion, projections.
    std::optional<ops::LayerNorm> attention_norm;
    std::optional<ops::Convert> attention_input_bf16;
    std::optional<ops::Linear> query;      // -> Q rows [R, H dk]
    std::optional<ops::Linear> key_value;  // -> KV rows [R, H (dk + dv)]
    // Stage 2.
    std::optional<ops::MatMul> keys_times_values;  // K^T V -> M [H, dk, dv], once per prompt
    std::optional<ops::MatMul> queries_times_m;    // Q M -> O rows, per row tile
    std::optional<ops::MatMul> scores;             // Q K^T -> S [H, R, Tk]
    bool scores_per_head = false;                  // causal: one [R, Tk] call per head
    std::optional<ops::RowSoftmax> softmax;        // S -> A
    std::optional<ops::MatMul> mix;                // A V -> O rows
    // Stage 3, per row tile: output projection + residual, norm, MLP + residual.
    std::optional<ops::Linear> output;
    std::optional<ops::LayerNorm> mlp_norm;
    std::optional<ops::Convert> mlp_input_bf16;
    std::optional<ops::Linear> mlp_up;
    std::optional<ops::Linear> mlp_down;
    const std::vector<float>* mask = nullptr;  // causal: [T_pad, Tk]
  };

  std::int64_t tokens = 0, context = 0;  // T, n
  std::int64_t tile_rows = 0, tiles = 0, padded_tokens = 0;  // R, T_pad / R, T_pad
  std::int64_t keys = 0;   // Tk: n (icl) or T (causal)
  std::int64_t group = 0;  // prompts per group (at most)
  std::int64_t allocated_group = 0;  // prompts the group buffers hold now
  DType act = DType::kF32;  // data type of Q, K, V, O, M and the bf16 copies
  std::vector<LayerOps> layers;
  // Causal masks, one per (softmax?, mean_over_keys?) variant a layer needs.
  std::map<std::pair<bool, bool>, std::vector<float>> masks;

  // Group buffers, [G, T_pad, width] each.
  std::int64_t q_width = 0, kv_width = 0, o_width = 0, m_size = 0;
  Buffer stream, q, kv, o, m;
  // Per-thread scratch, laid out by scratch_offsets().
  ScratchOffsets offsets;
  tbb::enumerable_thread_specific<Buffer> scratch;

  // Sizes the group buffers for `prompts` prompts (grown on demand, so that a call with a few
  // prompts does not hold a full group's memory).
  void reserve_group(std::int64_t prompts, std::int64_t width) {
    if (prompts <= allocated_group) return;
    const std::size_t act_size = ops::size_of(act);
    const auto rows = static_cast<std::size_t>(prompts * padded_tokens);
    stream = Buffer(rows * static_cast<std::size_t>(width) * 4);
    q = Buffer(rows * static_cast<std::size_t>(q_width) * act_size);
    kv = Buffer(rows * static_cast<std::size_t>(kv_width) * act_size);
    o = Buffer(rows * static_cast<std::size_t>(o_width) * act_size);
    m = Buffer(static_cast<std::size_t>(prompts * m_size) * act_size);
    allocated_group = prompts;
  }
};

namespace {
// Row t sees keys 0..t. Softmax adds -inf to the others; linear and ReLU attention multiply by
// 0, and the visible keys by 1 or, with mean_over_keys, 1/(t + 1). Padding rows (t >= T) see
// every key, so that they stay finite.
const std::vector<float>& causal_mask(Engine::Plan& p, bool softmax, bool mean) {
  std::vector<float>& mask = p.masks[{softmax, mean}];
  if (!mask.empty()) return mask;
  mask.assign(static_cast<std::size_t>(p.padded_tokens * p.keys), 0.0f);
  for (std::int64_t t = 0; t < p.padded_tokens; ++t) {
    const float share = mean ? 1.0f / static_cast<float>(std::min(t, p.tokens - 1) + 1) : 1.0f;
    for (std::int64_t key = 0; key < p.keys; ++key) {
      const bool visible = key <= t;
      mask[static_cast<std::size_t>(t * p.keys + key)] =
          softmax ? (visible ? 0.0f : -INFINITY) : (visible ? share : 0.0f);
    }
  }
  return mask;
}
}  // namespace

Engine::Engine(ModelConfig config, Weights weights, EngineOptions options)
    : config_(std::move(config)), weights_(std::move(weights)), options_(options) {
  validate(config_);
  // Every tensor must have its shape: a model built by hand could be short.
  Weights expected = zero_weights(config_);
  const auto shapes = weight_tensors(config_, expected);
  const auto given = weight_tensors(config_, weights_);
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    if (given[i].values->size() != shapes[i].values->size()) {
      throw ConfigError("weights: " + shapes[i].name + " has " +
                        std::to_string(given[i].values->size()) + " values, expected " +
                        std::to_string(shapes[i].values->size()));
    }
  }
}

Engine::~Engine() = default;

std::uint64_t Engine::working_bytes(const ModelConfig& config, const EngineOptions& options,
                                    std::int64_t tokens_per_prompt, std::int64_t n_context,
                                    std::int64_t prompts, int threads) {
  const PlanShape s = plan_shape(config, options, tokens_per_prompt,
                                 config.mask() == Mask::kIcl ? n_context : 0);
  const auto group = static_cast<std::uint64_t>(std::min(s.group, std::max<std::int64_t>(prompts, 1)));
  const std::uint64_t scratch = scratch_offsets(s, config.width, 0).total;
  const auto packed_weights = static_cast<std::uint64_t>(config.parameter_count()) * s.act_size;
  return group * s.per_prompt_bytes + static_cast<std::uint64_t>(std::max(threads, 1)) * scratch +
         s.mask_bytes + packed_weights;
}

Engine::Plan& Engine::plan(std::int64_t tokens, std::int64_t context) const {
  const std::pair key{tokens, context};
  auto& slot = plans_[key];
  if (slot) return *slot;
  // One plan at a time: an n-grid or a bounds sweep visits many shapes once each, and keeping
  // every plan's buffers would add up to gigabytes. Callers hold mutex_, so nothing else uses them.
  std::erase_if(plans_, [&](const auto& entry) { return entry.first != key; });
  auto plan = std::make_unique<Plan>();
  Plan& p = *plan;
  const std::int64_t width = config_.width;
  const bool causal = config_.mask() == Mask::kCausal;
  const PlanShape shape = plan_shape(config_, options_, tokens, context);
  p.tokens = tokens;
  p.context = context;
  p.tile_rows = shape.tile_rows;
  p.tiles = shape.tiles;
  p.padded_tokens = shape.padded_tokens;
  p.keys = shape.keys;
  p.act = options_.bf16 ? DType::kBF16 : DType::kF32;
  p.q_width = shape.q_width;
  p.kv_width = shape.kv_width;
  p.o_width = shape.o_width;
  p.m_size = shape.m_size;
  p.group = shape.group;
  const std::int64_t rows = p.tile_rows;

  std::size_t max_scratchpad = 0;
  auto note = [&](const auto& op) { max_scratchpad = std::max(max_scratchpad, op.scratchpad_bytes()); };

  for (std::size_t index = 0; index < config_.layers.size(); ++index) {
    const LayerConfig& layer = config_.layers[index];
    const LayerWeights& w = weights_.layers[index];
    Plan::LayerOps& ops_for = p.layers.emplace_back();
    const Layout stream_rows = Layout::rows(rows, width, width, DType::kF32);
    const Layout converted_rows = Layout::rows(rows, width, width, DType::kBF16);
    const Layout projection_input = options_.bf16 ? converted_rows : stream_rows;

    if (layer.has_attention()) {
      const std::int64_t h = layer.heads, dk = layer.qk_dim, dv = layer.v_dim;
      const std::int64_t qw = h * dk, kvw = h * (dk + dv), ow = h * dv;
      if (layer.attention_norm) {
        ops_for.attention_norm.emplace(stream_rows, w.attention_norm_gamma, w.attention_norm_beta,
                                       layer.norm_epsilon);
        note(*ops_for.attention_norm);
      }
      if (options_.bf16) {
        ops_for.attention_input_bf16.emplace(stream_rows, converted_rows);
        note(*ops_for.attention_input_bf16);
      }
      ops_for.query.emplace(projection_input, w.wq, w.bq, Layout::rows(rows, qw, qw, p.act),
                            ops::PostActivation::kNone, false);
      const std::vector<float> kv_weights = concat_columns(w.wk, qw, w.wv, ow, width);
      std::vector<float> kv_bias(w.bk);
      kv_bias.insert(kv_bias.end(), w.bv.begin(), w.bv.end());
      ops_for.key_value.emplace(projection_input, kv_weights, kv_bias,
                                Layout::rows(rows, kvw, kvw, p.act), ops::PostActivation::kNone,
                                false);
      note(*ops_for.query);
      note(*ops_for.key_value);

      // Per-head views into the Q / KV / O rows (heads as the batch dimension).
      const Layout query_view{{h, rows, dk}, {dk, qw, 1}, p.act};
      const Layout keys_transposed{{h, dk, p.keys}, {dk, 1, kvw}, p.act};
      const Layout values_view{{h, p.keys, dv}, {dv, kvw, 1}, p.act};
      const Layout output_view{{h, rows, dv}, {dv, ow, 1}, p.act};
      const bool mean = layer.mean_over_keys;
      const float icl_scale = layer.scale / (mean ? static_cast<float>(context) : 1.0f);

      if (uses_key_value_product(layer, causal, options_)) {
        const Layout m_layout = Layout::dense({h, dk, dv}, p.act);
        ops_for.keys_times_values.emplace(keys_transposed, values_view, m_layout, icl_scale, false);
        ops_for.queries_times_m.emplace(query_view, m_layout, output_view, 1.0f, false);
        note(*ops_for.keys_times_values);
        note(*ops_for.queries_times_m);
      } else {
        const bool softmax = layer.attention == AttentionKind::kSoftmax;
        // Softmax needs f32 scores; linear and ReLU weights go straight to the mixing dtype.
        const DType score_type = softmax ? DType::kF32 : p.act;
        const Layout scores_layout = Layout::dense({h, rows, p.keys}, score_type);
        ops::MatMul::Binary binary = ops::MatMul::Binary::kNone;
        Layout mask_layout;
        if (causal) {
          // oneDNN 2.6 has no fast kernel for a mask broadcast over the head dimension (it
          // falls back to its reference matmul, ~1000x slower), so causal scores are computed
          // one head at a time, each with the 2-D mask tile as a post-op.
          binary = softmax ? ops::MatMul::Binary::kAdd : ops::MatMul::Binary::kMul;
          mask_layout = Layout::dense({rows, p.keys}, DType::kF32);
          ops_for.mask = &causal_mask(p, softmax, mean);
          ops_for.scores_per_head = true;
          ops_for.scores.emplace(Layout{{rows, dk}, {qw, 1}, p.act},
                                 Layout{{dk, p.keys}, {1, kvw}, p.act},
                                 Layout::dense({rows, p.keys}, score_type), layer.scale,
                                 layer.attention == AttentionKind::kRelu, binary, mask_layout);
        } else {
          ops_for.scores.emplace(query_view, keys_transposed, scores_layout, icl_scale,
                                 layer.attention == AttentionKind::kRelu, binary, mask_layout);
        }
        note(*ops_for.scores);
        Layout weights_layout = scores_layout;
        if (softmax) {
          weights_layout = Layout::dense({h, rows, p.keys}, p.act);
          ops_for.softmax.emplace(scores_layout, weights_layout);
        }
        ops_for.mix.emplace(weights_layout, values_view, output_view, 1.0f, false);
        note(*ops_for.mix);
      }
      ops_for.output.emplace(Layout::rows(rows, ow, ow, p.act), w.wo, w.bo, stream_rows,
                             ops::PostActivation::kNone, true);
      note(*ops_for.output);
    }
    if (layer.has_mlp()) {
      if (layer.mlp_norm) {
        ops_for.mlp_norm.emplace(stream_rows, w.mlp_norm_gamma, w.mlp_norm_beta, layer.norm_epsilon);
        note(*ops_for.mlp_norm);
      }
      if (options_.bf16) {
        ops_for.mlp_input_bf16.emplace(stream_rows, converted_rows);
        note(*ops_for.mlp_input_bf16);
      }
      const Layout hidden = Layout::rows(rows, layer.mlp_hidden, layer.mlp_hidden, p.act);
      ops_for.mlp_up.emplace(projection_input, w.w1, w.b1, hidden,
                             post_activation(layer.activation), false);
      ops_for.mlp_down.emplace(hidden, w.w2, w.b2, stream_rows, ops::PostActivation::kNone, true);
      note(*ops_for.mlp_up);
      note(*ops_for.mlp_down);
    }
  }

  p.offsets = scratch_offsets(shape, width, max_scratchpad);
  const std::size_t scratch_bytes = p.offsets.total;
  p.scratch = tbb::enumerable_thread_specific<Buffer>([scratch_bytes] { return Buffer(scratch_bytes); });
  slot = std::move(plan);
  return *slot;
}

template <typename Sink>
void Engine::run(std::span<const float> tokens, std::int64_t prompts, std::int64_t tokens_per_prompt,
                 std::int64_t n_context, Sink&& sink) const {
  const std::int64_t width = config_.width;
  if (prompts < 0 || tokens_per_prompt < 1) {
    throw std::invalid_argument("forward: need at least one token per prompt");
  }
  if (config_.mask() == Mask::kIcl && (n_context < 1 || n_context > tokens_per_prompt)) {
    throw std::invalid_argument("forward: the icl mask needs 1 <= n_context <= T, got n = " +
                                std::to_string(n_context) + ", T = " +
                                std::to_string(tokens_per_prompt));
  }
  if (static_cast<std::int64_t>(tokens.size()) != prompts * tokens_per_prompt * width) {
    throw std::invalid_argument("forward: tokens hold " + std::to_string(tokens.size()) +
                                " values, expected B * T * D = " +
                                std::to_string(prompts * tokens_per_prompt * width));
  }
  std::lock_guard lock(mutex_);
  Plan& p = plan(tokens_per_prompt, config_.mask() == Mask::kIcl ? n_context : 0);
  const std::int64_t rows = p.tile_rows, padded = p.padded_tokens;
  const std::size_t act_size = ops::size_of(p.act);
  auto at = [](const Buffer& buffer, std::size_t byte_offset) { return buffer.data() + byte_offset; };

  const std::int64_t group = std::min(p.group, std::max<std::int64_t>(prompts, 1));
  p.reserve_group(group, width);
  const int threads = runtime::active_threads();
  for (std::int64_t first = 0; first < prompts; first += group) {
    const std::int64_t count = std::min(group, prompts - first);
    float* stream = reinterpret_cast<float*>(p.stream.data());
    for (std::int64_t b = 0; b < count; ++b) {
      std::copy_n(tokens.data() + (first + b) * tokens_per_prompt * width,
                  tokens_per_prompt * width, stream + b * padded * width);
      std::fill(stream + (b * padded + tokens_per_prompt) * width, stream + (b + 1) * padded * width,
                0.0f);
    }
    // Every op works on one piece: a row tile of one prompt (or, for K^T V, one prompt). The
    // same op computes a piece from the same inputs however pieces are scheduled, so the two
    // schedules below give bit-identical results:
    //   prompt-major (enough prompts to keep every thread busy): one task per prompt runs all
    //     its layers back to back, so the prompt's activations stay in this core's cache;
    //   stage-major (few, long prompts): each stage of each layer is spread over all pieces.
    // Schedulers: `pieces(lo, hi, body)` calls body(b, r0, scratch) for every row tile of prompts
    // [lo, hi), and `each_prompt(lo, hi, body)` calls body(b, scratch) for every prompt.
    auto run_layers = [&](std::int64_t lo_prompt, std::int64_t hi_prompt, auto&& pieces, auto&& each_prompt) {
      auto for_each_piece = [&](auto&& body) { pieces(lo_prompt, hi_prompt, body); };
      for (std::size_t index = 0; index < config_.layers.size(); ++index) {
        const LayerConfig& layer = config_.layers[index];
        const Plan::LayerOps& lo = p.layers[index];
        const std::int64_t qw = layer.heads * layer.qk_dim;
        const std::int64_t kvw = layer.heads * (layer.qk_dim + layer.v_dim);
        const std::int64_t ow = layer.heads * layer.v_dim;
        const std::int64_t m_size = layer.heads * layer.qk_dim * layer.v_dim;
        auto q_rows = [&](std::int64_t b, std::int64_t r0) {
          return at(p.q, static_cast<std::size_t>((b * padded + r0) * qw) * act_size);
        };
        auto kv_rows = [&](std::int64_t b, std::int64_t r0) {
          return at(p.kv, static_cast<std::size_t>((b * padded + r0) * kvw) * act_size);
        };
        auto o_rows = [&](std::int64_t b, std::int64_t r0) {
          return at(p.o, static_cast<std::size_t>((b * padded + r0) * ow) * act_size);
        };
        auto stream_rows = [&](std::int64_t b, std::int64_t r0) {
          return stream + (b * padded + r0) * config_.width;
        };

        for (int repeat = 0; repeat < layer.loop; ++repeat) {
          if (layer.has_attention()) {
            // Stage 1: h = norm(x); Q = h W_q; K, V = h W_k, h W_v (keys only where they are read).
            for_each_piece([&](std::int64_t b, std::int64_t r0, std::byte* scratch) {
              const void* input = stream_rows(b, r0);
              if (lo.attention_norm) {
                lo.attention_norm->execute(input, scratch + p.offsets.normed, scratch + p.offsets.scratchpad);
                input = scratch + p.offsets.normed;
              }
              if (lo.attention_input_bf16) {
                lo.attention_input_bf16->execute(input, scratch + p.offsets.converted,
                                                 scratch + p.offsets.scratchpad);
                input = scratch + p.offsets.converted;
              }
              lo.query->execute(input, q_rows(b, r0), scratch + p.offsets.scratchpad);
              if (r0 < p.keys) lo.key_value->execute(input, kv_rows(b, r0), scratch + p.offsets.scratchpad);
            });
            // Stage 2: attention, heads batched in one call.
            if (lo.keys_times_values) {
              each_prompt(lo_prompt, hi_prompt, [&](std::int64_t b, std::byte* scratch) {
                lo.keys_times_values->execute(kv_rows(b, 0), kv_rows(b, 0) + qw * act_size,
                                              at(p.m, static_cast<std::size_t>(b * m_size) * act_size),
                                              scratch + p.offsets.scratchpad);
              });
              for_each_piece([&](std::int64_t b, std::int64_t r0, std::byte* scratch) {
                lo.queries_times_m->execute(q_rows(b, r0),
                                            at(p.m, static_cast<std::size_t>(b * m_size) * act_size),
                                            o_rows(b, r0), scratch + p.offsets.scratchpad);
              });
            } else {
              for_each_piece([&](std::int64_t b, std::int64_t r0, std::byte* scratch) {
                const float* mask = lo.mask ? lo.mask->data() + r0 * p.keys : nullptr;
                std::byte* weights = scratch + p.offsets.scores;
                if (lo.scores_per_head) {
                  const std::size_t score_bytes = ops::size_of(lo.softmax ? DType::kF32 : p.act);
                  for (std::int64_t head = 0; head < layer.heads; ++head) {
                    lo.scores->execute(q_rows(b, r0) + head * layer.qk_dim * act_size,
                                       kv_rows(b, 0) + head * layer.qk_dim * act_size,
                                       scratch + p.offsets.scores + head * rows * p.keys * score_bytes,
                                       scratch + p.offsets.scratchpad, mask);
                  }
                } else {
                  lo.scores->execute(q_rows(b, r0), kv_rows(b, 0), scratch + p.offsets.scores,
                                     scratch + p.offsets.scratchpad, mask);
                }
                if (lo.softmax) {
                  weights = p.act == DType::kF32 ? scratch + p.offsets.scores : scratch + p.offsets.weights;
                  lo.softmax->execute(reinterpret_cast<float*>(scratch + p.offsets.scores), weights);
                }
                lo.mix->execute(weights, kv_rows(b, 0) + qw * act_size, o_rows(b, r0),
                                scratch + p.offsets.scratchpad);
              });
            }
          }
          // Stage 3: x += O W_o + b_o; x += act(norm(x) W_1 + b_1) W_2 + b_2.
          for_each_piece([&](std::int64_t b, std::int64_t r0, std::byte* scratch) {
            float* x = stream_rows(b, r0);
            if (lo.output) lo.output->execute(o_rows(b, r0), x, scratch + p.offsets.scratchpad);
            if (!lo.mlp_up) return;
            const void* input = x;
            if (lo.mlp_norm) {
              lo.mlp_norm->execute(input, scratch + p.offsets.normed, scratch + p.offsets.scratchpad);
              input = scratch + p.offsets.normed;
            }
            if (lo.mlp_input_bf16) {
              lo.mlp_input_bf16->execute(input, scratch + p.offsets.converted, scratch + p.offsets.scratchpad);
              input = scratch + p.offsets.converted;
            }
            lo.mlp_up->execute(input, scratch + p.offsets.hidden, scratch + p.offsets.scratchpad);
            lo.mlp_down->execute(scratch + p.offsets.hidden, x, scratch + p.offsets.scratchpad);
          });
        }
      }
    };

    if (count >= 4 * static_cast<std::int64_t>(threads)) {
      tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, count, 1), [&](const tbb::blocked_range<std::int64_t>& range) {
        std::byte* scratch = p.scratch.local().data();
        auto serial_pieces = [&](std::int64_t lo_prompt, std::int64_t hi_prompt, auto&& body) {
          for (std::int64_t b = lo_prompt; b < hi_prompt; ++b) {
            for (std::int64_t tile = 0; tile < p.tiles; ++tile) body(b, tile * rows, scratch);
          }
        };
        auto serial_prompts = [&](std::int64_t lo_prompt, std::int64_t hi_prompt, auto&& body) {
          for (std::int64_t b = lo_prompt; b < hi_prompt; ++b) body(b, scratch);
        };
        for (std::int64_t b = range.begin(); b < range.end(); ++b) run_layers(b, b + 1, serial_pieces, serial_prompts);
      });
    } else {
      auto parallel_pieces = [&](std::int64_t lo_prompt, std::int64_t hi_prompt, auto&& body) {
        tbb::parallel_for(tbb::blocked_range<std::int64_t>(lo_prompt * p.tiles, hi_prompt * p.tiles, 1),
                          [&](const tbb::blocked_range<std::int64_t>& range) {
                            std::byte* scratch = p.scratch.local().data();
                            for (std::int64_t piece = range.begin(); piece < range.end(); ++piece) {
                              body(piece / p.tiles, (piece % p.tiles) * rows, scratch);
                            }
                          });
      };
      auto parallel_prompts = [&](std::int64_t lo_prompt, std::int64_t hi_prompt, auto&& body) {
        tbb::parallel_for(tbb::blocked_range<std::int64_t>(lo_prompt, hi_prompt, 1),
                          [&](const tbb::blocked_range<std::int64_t>& range) {
                            std::byte* scratch = p.scratch.local().data();
                            for (std::int64_t b = range.begin(); b < range.end(); ++b) body(b, scratch);
                          });
      };
      run_layers(0, count, parallel_pieces, parallel_prompts);
    }
    for (std::int64_t b = 0; b < count; ++b) sink(first + b, stream + b * padded * width);
  }
}

void Engine::forward(std::span<const float> tokens, std::int64_t prompts,
                     std::int64_t tokens_per_prompt, std::int64_t n_context,
                     std::span<float> stream) const {
  const std::int64_t width = config_.width;
  if (static_cast<std::int64_t>(stream.size()) != prompts * tokens_per_prompt * width) {
    throw std::invalid_argument("forward: output holds " + std::to_string(stream.size()) +
                                " values, expected B * T * D");
  }
  run(tokens, prompts, tokens_per_prompt, n_context, [&](std::int64_t b, const float* result) {
    std::copy_n(result, tokens_per_prompt * width, stream.data() + b * tokens_per_prompt * width);
  });
}

void Engine::query_scores(std::span<const float> tokens, std::int64_t prompts,
                          std::int64_t tokens_per_prompt, std::int64_t n_context,
                          std::span<float> scores) const {
  if (config_.readout < 0) throw std::invalid_argument("query_scores: the model has no readout slot");
  const std::int64_t queries = tokens_per_prompt - n_context;
  if (static_cast<std::int64_t>(scores.size()) != prompts * queries) {
    throw std::invalid_argument("query_scores: output holds " + std::to_string(scores.size()) +
                                " values, expected B * (T - n)");
  }
  const std::int64_t width = config_.width;
  run(tokens, prompts, tokens_per_prompt, n_context, [&](std::int64_t b, const float* result) {
    for (std::int64_t q = 0; q < queries; ++q) {
      scores[static_cast<std::size_t>(b * queries + q)] = result[(n_context + q) * width + config_.readout];
    }
  });
}

std::map<std::string, std::string> Engine::implementations(std::int64_t tokens_per_prompt,
                                                           std::int64_t n_context) const {
  std::lock_guard lock(mutex_);
  const Plan& p = plan(tokens_per_prompt, config_.mask() == Mask::kIcl ? n_context : 0);
  std::map<std::string, std::string> found;
  for (const Plan::LayerOps& lo : p.layers) {
    if (lo.query) found["projection"] = lo.query->implementation();
    if (lo.scores) found["scores"] = lo.scores->implementation();
    if (lo.mix) found["mix"] = lo.mix->implementation();
    if (lo.keys_times_values) found["keys_times_values"] = lo.keys_times_values->implementation();
    if (lo.mlp_up) found["mlp"] = lo.mlp_up->implementation();
    if (lo.softmax) found["softmax"] = lo.softmax->implementation();
  }
  return found;
}

}  // namespace iclbench::model
