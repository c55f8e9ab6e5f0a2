// Per-kernel benchmarks of one prompt's layer: every op on the oneDNN path, on iclbench's own
// kernels where it has them (softmax, LayerNorm, fused attention, GELU) and on its Eigen twin, f32 and bf16
// where the op has both, on two shapes:
//   the standard encoder (T = 129 tokens, D = 64, H = 4, dk = 16, F = 256): names without prefix,
//     which the regression gate tracks;
//   a BERT-base layer (T = 128, D = 768, H = 12, dk = 64, F = 3072): names under bert_base/;
// and one pass of gd-hinge's looped linear attention (icl_linear_attention/, issue 14's shape).

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <regex>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "ops/attention.hpp"
#include "ops/column_sweep.hpp"
#include "ops/dnnl_ops.hpp"
#include "ops/eigen_ops.hpp"
#include "ops/gelu.hpp"
#include "ops/linear_attention.hpp"
#include "ops/row_layer_norm.hpp"
#include "ops/row_softmax.hpp"
#include "ops/small_mlp.hpp"
#include "util/philox.hpp"

namespace iclbench::bench {
namespace {

struct LayerShape {
  const char* prefix;  // "" or "bert_base/"
  std::int64_t tokens, width, heads, head_dim, hidden;
};
constexpr LayerShape kEncoder{"", 129, 64, 4, 16, 256};
constexpr LayerShape kBertBase{"bert_base/", 128, 768, 12, 64, 3072};

// 64-byte aligned vectors: with std::vector's 16-byte alignment the same small kernel ran up to
// 30% faster or slower from one process to the next, depending on where its buffers landed.
template <typename T>
struct Aligned64 {
  using value_type = T;
  Aligned64() = default;
  template <typename U>
  Aligned64(const Aligned64<U>&) {}
  T* allocate(std::size_t count) {
    return static_cast<T*>(::operator new(count * sizeof(T), std::align_val_t(64)));
  }
  void deallocate(T* pointer, std::size_t) { ::operator delete(pointer, std::align_val_t(64)); }
  template <typename U>
  bool operator==(const Aligned64<U>&) const { return true; }
};
template <typename T>
using Buffer = std::vector<T, Aligned64<T>>;

// For checking the regression gate only: ICLBENCH_BENCH_SLOWDOWN="substring:fraction" makes
// every benchmark whose name contains `substring` repeat its op a `fraction` of the time (0.3:
// 30% slower on average). Unset, it costs nothing. main() parses it once at start-up
// (configure_slowdown): a malformed value, or a substring that names no benchmark of this run
// that honours it, is an error there, so a self-test of the gate cannot pass without slowing
// anything.
struct SlowdownSetting {
  std::string substring;
  double fraction = 0;  // 0: off
};
SlowdownSetting g_slowdown;

// The names of the benchmarks registered through add(), the ones that honour the slowdown.
std::vector<std::string>& hooked_names() {
  static std::vector<std::string> names;
  return names;
}

// `text` with every byte outside printable ASCII shown as '?', cut to 60 characters: for one-line messages.
std::string printable(const std::string& text) {
  std::string out;
  for (char c : text.substr(0, 60)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  return text.size() > 60 ? out + "..." : out;
}

// True if Google Benchmark's --benchmark_filter selects `name` (its FindBenchmarks rule: empty
// or "all" is everything, a leading '-' negates, otherwise an extended regex searched in the
// name). A filter std::regex cannot compile selects everything here; Google Benchmark itself
// reports that filter.
bool filter_selects(const std::string& name) {
  std::string spec = benchmark::GetBenchmarkFilter();
  if (spec.empty() || spec == "all") return true;
  bool negative = false;
  if (spec[0] == '-') {
    spec.erase(0, 1);
    negative = true;
  }
  try {
    return std::regex_search(name, std::regex(spec, std::regex::extended)) != negative;
  } catch (const std::regex_error&) {
    return true;
  }
}

// Parses ICLBENCH_BENCH_SLOWDOWN (`setting`) into g_slowdown; an empty string if it is usable,
// else the one-line reason.
std::string configure_slowdown(const std::string& setting) {
  const auto colon = setting.rfind(':');
  if (colon == std::string::npos || colon == 0)
    return "\"" + printable(setting) + "\" is not SUBSTRING:FRACTION (e.g. softmax/iclbench_f32:0.3)";
  const std::string substring = setting.substr(0, colon);
  const std::string number = setting.substr(colon + 1);
  // Plain decimals only (digits, at most one point): strtod alone also takes hex ("0x1p-1"),
  // exponents, signs, "inf" and "nan", spellings a self-test's value has no use for.
  const auto digit = [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; };
  const bool decimal =
      std::any_of(number.begin(), number.end(), digit) &&
      std::all_of(number.begin(), number.end(), [&](char c) { return digit(c) || c == '.'; }) &&
      std::count(number.begin(), number.end(), '.') <= 1;
  const double fraction = decimal ? std::strtod(number.c_str(), nullptr) : 0;
  // (0, 10]: a slowdown, and at most 11 times the op's time (a self-test needs 0.3).
  if (!decimal || fraction <= 0 || fraction > 10)
    return "fraction \"" + printable(number) + "\" is not a plain decimal number in (0, 10]";
  bool matched = false;
  for (const std::string& name : hooked_names())
    matched = matched || (name.find(substring) != std::string::npos && filter_selects(name));
  if (!matched)
    return "\"" + printable(substring) + "\" is in the name of no benchmark of this run (after --benchmark_filter) that can be slowed";
  g_slowdown = {substring, fraction};
  return "";
}

struct Slowdown {
  double fraction = 0;
  double op_seconds = 0;
  explicit Slowdown(const std::string& name) {
    if (g_slowdown.fraction > 0 && name.find(g_slowdown.substring) != std::string::npos)
      fraction = g_slowdown.fraction;
  }
  // Times the op (median of 21 runs) so that wait() can add `fraction` of it per iteration.
  template <typename Op>
  void calibrate(Op&& op) {
    if (fraction == 0) return;
    std::vector<double> seconds;
    for (int i = 0; i < 21; ++i) {
      const auto start = std::chrono::steady_clock::now();
      op();
      seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    std::sort(seconds.begin(), seconds.end());
    op_seconds = seconds[10];
  }
  void wait() const {
    if (fraction == 0) return;
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(fraction * op_seconds);
    while (std::chrono::steady_clock::now() < until) {
    }
  }
};

// The timed loop of an op benchmark: one untimed warm-up call (oneDNN generates some kernels on
// first use), the gate's optional slowdown for `name`, and a memory clobber after each call.
template <typename Op>
void time_op(benchmark::State& state, const std::string& name, Op&& run_op) {
  Slowdown slowdown(name);
  run_op();
  slowdown.calibrate(run_op);
  for (auto _ : state) {
    run_op();
    slowdown.wait();
    benchmark::ClobberMemory();
  }
}

Buffer<float> values(std::size_t count, std::uint64_t seed) {
  Buffer<float> out(count);
  util::DrawSequence draws(seed, 0, 0, util::Stream::kModelWeights);
  for (float& value : out) value = static_cast<float>(draws.normal() * 0.1);
  return out;
}

// A projection x W + b (+ activation, + residual), as in the QKV, output and MLP layers.
struct ProjectionShape {
  std::string name;
  std::int64_t tokens, in, out;
  ops::PostActivation activation;
  bool accumulate;
};
std::vector<ProjectionShape> projections(const LayerShape& layer) {
  const std::int64_t t = layer.tokens, d = layer.width, f = layer.hidden;
  return {{"qkv_projection", t, d, 3 * d, ops::PostActivation::kNone, false},
          {"output_projection", t, d, d, ops::PostActivation::kNone, true},
          {"mlp_up_gelu", t, d, f, ops::PostActivation::kGelu, false},
          {"mlp_up_gelu_tanh", t, d, f, ops::PostActivation::kGeluTanh, false},
          {"mlp_up", t, d, f, ops::PostActivation::kNone, false},
          {"mlp_down_residual", t, f, d, ops::PostActivation::kNone, true}};
}

void BM_Projection(benchmark::State& state, std::string name, ProjectionShape shape, bool bf16) {
  const std::int64_t tokens = shape.tokens;
  const ops::DType dtype = bf16 ? ops::DType::kBF16 : ops::DType::kF32;
  const Buffer<float> weights = values(shape.in * shape.out, 1), bias = values(shape.out, 2);
  Buffer<float> src = values(tokens * shape.in, 3), dst(tokens * shape.out);
  Buffer<std::uint16_t> src_bf16(src.size(), 0x3c00);
  const ops::Linear op(ops::Layout::rows(tokens, shape.in, shape.in, dtype), weights, bias,
                       ops::Layout::rows(tokens, shape.out, shape.out, ops::DType::kF32),
                       shape.activation, shape.accumulate);
  Buffer<std::byte> scratch(op.scratchpad_bytes() + 64);
  const void* input = bf16 ? static_cast<const void*>(src_bf16.data()) : src.data();
  time_op(state, name, [&] { op.execute(input, dst.data(), scratch.data()); });
  set_counters(state, 2.0 * tokens * shape.in * shape.out, tokens, 0, bf16);
  state.SetLabel(op.implementation());
}

// The calibration kernel of the regression gate: a fixed f32 GEMM (256 x 256 x 256) that no
// change to iclbench touches. Times of the other benchmarks are divided by its time in the same
// process, which cancels drift in the host's speed between the baseline and the new run.
void BM_Calibration(benchmark::State& state) {
  constexpr std::int64_t kSize = 256;
  const Buffer<float> weights = values(kSize * kSize, 8), bias(kSize, 0.0f);
  Buffer<float> src = values(kSize * kSize, 9), dst(kSize * kSize);
  const ops::Linear op(ops::Layout::rows(kSize, kSize, kSize, ops::DType::kF32), weights, bias,
                       ops::Layout::rows(kSize, kSize, kSize, ops::DType::kF32),
                       ops::PostActivation::kNone, false);
  Buffer<std::byte> scratch(op.scratchpad_bytes() + 64);
  op.execute(src.data(), dst.data(), scratch.data());  // warm-up
  for (auto _ : state) {
    op.execute(src.data(), dst.data(), scratch.data());
    benchmark::DoNotOptimize(dst.data());
  }
  set_counters(state, 2.0 * kSize * kSize * kSize);
}

void BM_ProjectionEigen(benchmark::State& state, ProjectionShape shape) {
  const std::int64_t tokens = shape.tokens;
  const Buffer<float> weights = values(shape.in * shape.out, 1), bias = values(shape.out, 2);
  Buffer<float> src = values(tokens * shape.in, 3), dst(tokens * shape.out);
  for (auto _ : state) {
    ops::reference::linear(src.data(), shape.in, weights, bias, dst.data(), shape.out, tokens,
                           shape.in, shape.out, shape.activation, shape.accumulate);
    benchmark::DoNotOptimize(dst.data());
  }
  set_counters(state, 2.0 * tokens * shape.in * shape.out, tokens);
}

// Q K^T over the heads (scores), then A V (mix): the attention core of one prompt.
void BM_AttentionMatmul(benchmark::State& state, std::string name, LayerShape shape, bool scores, bool bf16) {
  const std::int64_t tokens = shape.tokens, heads = shape.heads, head_dim = shape.head_dim;
  const ops::DType dtype = bf16 ? ops::DType::kBF16 : ops::DType::kF32;
  const std::int64_t qw = heads * head_dim, kvw = 2 * qw;
  Buffer<std::uint16_t> q(tokens * qw, 0x3c00), kv(tokens * kvw, 0x3c00);
  Buffer<float> qf = values(tokens * qw, 4), kvf = values(tokens * kvw, 5);
  Buffer<float> s(heads * tokens * tokens, 1.0f / tokens), o(tokens * qw);
  const ops::Layout query{{heads, tokens, head_dim}, {head_dim, qw, 1}, dtype};
  const ops::Layout keys_t{{heads, head_dim, tokens}, {head_dim, 1, kvw}, dtype};
  const ops::Layout values_view{{heads, tokens, head_dim}, {head_dim, kvw, 1}, dtype};
  const ops::Layout weights_layout = ops::Layout::dense({heads, tokens, tokens}, dtype);
  const ops::Layout out{{heads, tokens, head_dim}, {head_dim, qw, 1}, ops::DType::kF32};
  const ops::MatMul op = scores ? ops::MatMul(query, keys_t, ops::Layout::dense({heads, tokens, tokens}, ops::DType::kF32), 0.25f, false)
                                : ops::MatMul(weights_layout, values_view, out, 1.0f, false);
  Buffer<std::byte> scratch(op.scratchpad_bytes() + 64);
  Buffer<std::uint16_t> weights_bf16(s.size(), 0x3c00);
  const void* a = scores ? (bf16 ? static_cast<const void*>(q.data()) : qf.data())
                         : (bf16 ? static_cast<const void*>(weights_bf16.data()) : s.data());
  const void* b = bf16 ? static_cast<const void*>(kv.data()) : kvf.data();
  const void* b_values = bf16 ? static_cast<const void*>(kv.data() + qw) : kvf.data() + qw;
  time_op(state, name, [&] {
    op.execute(a, scores ? b : b_values, scores ? static_cast<void*>(s.data()) : o.data(), scratch.data());
  });
  set_counters(state, 2.0 * heads * tokens * tokens * head_dim, tokens, 0, bf16);
  state.SetLabel(op.implementation());
}

void BM_AttentionMatmulEigen(benchmark::State& state, LayerShape shape, bool scores) {
  const std::int64_t tokens = shape.tokens, heads = shape.heads, head_dim = shape.head_dim;
  const std::int64_t qw = heads * head_dim, kvw = 2 * qw;
  const Buffer<float> q = values(tokens * qw, 4), kv = values(tokens * kvw, 5);
  Buffer<float> s(heads * tokens * tokens, 1.0f / tokens), o(heads * tokens * head_dim);
  for (auto _ : state) {
    if (scores) {
      ops::reference::matmul({q.data(), head_dim, qw, 1}, {kv.data(), head_dim, 1, kvw}, s.data(), heads,
                             tokens, head_dim, tokens, 0.25f, false, ops::MatMul::Binary::kNone, nullptr);
    } else {
      ops::reference::matmul({s.data(), tokens * tokens, tokens, 1}, {kv.data() + qw, head_dim, kvw, 1},
                             o.data(), heads, tokens, tokens, head_dim, 1.0f, false,
                             ops::MatMul::Binary::kNone, nullptr);
    }
    benchmark::ClobberMemory();
  }
  set_counters(state, 2.0 * heads * tokens * tokens * head_dim, tokens);
}

// The attention core of one prompt's row tile (T query rows, T keys, all heads): what the
// engine's stage 2 computes per tile. Three paths on the same operands in the engine's layout
// (Q rows [T, H dk], K and V in the same rows [T, H (dk + dv)], O rows [T, H dv]):
//   iclbench  ops::FusedAttention, scores, softmax and mix in one pass per head and row block;
//   unfused   the engine's path today: scores (oneDNN matmul over the strided per-head views,
//             causal: one head at a time with the mask as a post-op), ops::RowSoftmax, the mix;
//   eigen     the fused op's slow twin (double; f32 only).
// Causal: each row sees keys 0..t, so the fused kernel skips the hidden half; the FLOP counter
// still counts the full 2 H T^2 (dk + dv), as for the unfused path (which computes it all).
enum class AttentionPath { kFused, kUnfused, kEigen };
// The attention of one prompt's row tile of all T tokens in the engine's layout: query rows
// [T, H dk], keys and values in the same rows [T, 2 H dk] (values from column H dk), output rows
// [T, H dk].
ops::AttentionShape tile_attention(const LayerShape& layer, ops::DType dtype, bool causal) {
  ops::AttentionShape a;
  a.heads = layer.heads;
  a.rows = a.keys = layer.tokens;
  a.qk_dim = a.v_dim = layer.head_dim;
  a.query_stride = a.out_stride = layer.heads * layer.head_dim;
  a.key_stride = a.value_stride = 2 * layer.heads * layer.head_dim;
  a.dtype = dtype;
  a.mask = causal ? ops::AttentionMask::kCausal : ops::AttentionMask::kIcl;
  a.scale = 1.0f / std::sqrt(static_cast<float>(layer.head_dim));
  return a;
}

// The same tile as the engine computes it today (model/engine.cpp, stage 2): scores by a oneDNN
// matmul over the strided per-head views (causal: one head at a time, with the mask as a binary
// post-op), ops::RowSoftmax in place or to bf16, and the mix matmul.
class UnfusedAttention {
 public:
  explicit UnfusedAttention(const ops::AttentionShape& a)
      : a_(a),
        scores_layout_(ops::Layout::dense({a.heads, a.rows, a.keys}, ops::DType::kF32)),
        weights_layout_(ops::Layout::dense({a.heads, a.rows, a.keys}, a.dtype)),
        scores_(a.mask == ops::AttentionMask::kCausal
                    ? ops::MatMul(ops::Layout{{a.rows, a.qk_dim}, {a.query_stride, 1}, a.dtype},
                                  ops::Layout{{a.qk_dim, a.keys}, {1, a.key_stride}, a.dtype},
                                  ops::Layout::dense({a.rows, a.keys}, ops::DType::kF32), a.scale, false,
                                  ops::MatMul::Binary::kAdd, ops::Layout::dense({a.rows, a.keys}, ops::DType::kF32))
                    : ops::MatMul(ops::Layout{{a.heads, a.rows, a.qk_dim}, {a.qk_dim, a.query_stride, 1}, a.dtype},
                                  ops::Layout{{a.heads, a.qk_dim, a.keys}, {a.qk_dim, 1, a.key_stride}, a.dtype},
                                  scores_layout_, a.scale, false)),
        softmax_(scores_layout_, weights_layout_),
        mix_(weights_layout_, ops::Layout{{a.heads, a.keys, a.v_dim}, {a.v_dim, a.value_stride, 1}, a.dtype},
             ops::Layout{{a.heads, a.rows, a.v_dim}, {a.v_dim, a.out_stride, 1}, a.dtype}, 1.0f, false),
        mask_(a.rows * a.keys),
        scores_tile_(a.heads * a.rows * a.keys),
        weights_bits_(scores_tile_.size()) {
    for (std::int64_t t = 0; t < a.rows; ++t) {
      for (std::int64_t k = 0; k < a.keys; ++k) mask_[t * a.keys + k] = k <= t ? 0.0f : -INFINITY;
    }
  }
  std::size_t scratchpad_bytes() const { return std::max(scores_.scratchpad_bytes(), mix_.scratchpad_bytes()); }
  const char* implementation() const { return scores_.implementation(); }
  void execute(const void* queries, const void* keys, const void* values, void* out, std::byte* scratch) {
    if (a_.mask == ops::AttentionMask::kCausal) {
      const std::size_t head_bytes = a_.qk_dim * ops::size_of(a_.dtype);
      for (std::int64_t h = 0; h < a_.heads; ++h) {
        scores_.execute(static_cast<const std::byte*>(queries) + h * head_bytes,
                        static_cast<const std::byte*>(keys) + h * head_bytes, scores_tile_.data() + h * a_.rows * a_.keys,
                        scratch, mask_.data());
      }
    } else {
      scores_.execute(queries, keys, scores_tile_.data(), scratch);
    }
    void* weights = a_.dtype == ops::DType::kBF16 ? static_cast<void*>(weights_bits_.data()) : scores_tile_.data();
    softmax_.execute(scores_tile_.data(), weights);
    mix_.execute(weights, values, out, scratch);
  }

 private:
  ops::AttentionShape a_;
  ops::Layout scores_layout_, weights_layout_;
  ops::MatMul scores_;
  ops::RowSoftmax softmax_;
  ops::MatMul mix_;
  Buffer<float> mask_, scores_tile_;
  Buffer<std::uint16_t> weights_bits_;
};

void BM_Attention(benchmark::State& state, std::string name, LayerShape shape, AttentionPath path, bool bf16,
                  bool causal) {
  const std::int64_t tokens = shape.tokens, heads = shape.heads, head_dim = shape.head_dim;
  const ops::DType dtype = bf16 ? ops::DType::kBF16 : ops::DType::kF32;
  const std::int64_t qw = heads * head_dim, kvw = 2 * qw;
  const Buffer<float> q = values(tokens * qw, 4), kv = values(tokens * kvw, 5);
  Buffer<std::uint16_t> q_bits(q.size()), kv_bits(kv.size()), o_bits(tokens * qw);
  for (std::size_t i = 0; i < q.size(); ++i) q_bits[i] = ops::reference::bf16_bits(q[i] * 10);
  for (std::size_t i = 0; i < kv.size(); ++i) kv_bits[i] = ops::reference::bf16_bits(kv[i] * 10);
  Buffer<float> q_f32(q.size()), kv_f32(kv.size()), o(tokens * qw);
  for (std::size_t i = 0; i < q.size(); ++i) q_f32[i] = q[i] * 10;  // scores of a few units, as in a trained layer
  for (std::size_t i = 0; i < kv.size(); ++i) kv_f32[i] = kv[i] * 10;
  const void* q_in = bf16 ? static_cast<const void*>(q_bits.data()) : q_f32.data();
  const void* kv_in = bf16 ? static_cast<const void*>(kv_bits.data()) : kv_f32.data();
  const void* v_in = static_cast<const std::byte*>(kv_in) + qw * ops::size_of(dtype);
  void* o_out = bf16 ? static_cast<void*>(o_bits.data()) : o.data();

  const ops::AttentionShape attention = tile_attention(shape, dtype, causal);
  const ops::FusedAttention fused(attention);
  UnfusedAttention unfused(attention);
  Buffer<std::byte> scratch(std::max(fused.scratchpad_bytes(), unfused.scratchpad_bytes()) + 64);
  time_op(state, name, [&] {
    switch (path) {
      case AttentionPath::kFused: fused.execute(q_in, kv_in, v_in, o_out, 0, scratch.data()); break;
      case AttentionPath::kUnfused: unfused.execute(q_in, kv_in, v_in, o_out, scratch.data()); break;
      case AttentionPath::kEigen:
        ops::reference::attention(q_f32.data(), kv_f32.data(), kv_f32.data() + qw, o.data(), attention, 0);
        break;
    }
  });
  set_counters(state, 2.0 * heads * tokens * tokens * (2 * head_dim), tokens, 0, bf16);
  if (path == AttentionPath::kFused) state.SetLabel(fused.implementation());
  if (path == AttentionPath::kUnfused) state.SetLabel(unfused.implementation());
}

// The alternative of issue 14: dense per-head layouts, so that oneDNN can take Q K^T and A V as
// batched brgemm. Q [H, T, dk], K [H, T, dk] (read as K^T) and V [H, T, dv] dense, scores and
// weights dense [H, T, T]; the mix writes the strided O rows directly. `head_reorder` is the cost
// of getting there: three reorders (Q, K, V) from the engine's rows into the dense heads. The
// softmax between them is softmax/iclbench_* above.
enum class DenseStep { kScores, kMix, kReorder };
void BM_AttentionDense(benchmark::State& state, std::string name, LayerShape shape, DenseStep step, bool bf16) {
  const std::int64_t tokens = shape.tokens, heads = shape.heads, head_dim = shape.head_dim;
  const ops::DType dtype = bf16 ? ops::DType::kBF16 : ops::DType::kF32;
  const std::int64_t qw = heads * head_dim, kvw = 2 * qw;
  const std::size_t act = ops::size_of(dtype);
  Buffer<std::byte> rows_q(tokens * qw * act), rows_kv(tokens * kvw * act), dense_q(tokens * qw * act),
      dense_k(tokens * qw * act), dense_v(tokens * qw * act), o(tokens * qw * act);
  const Buffer<float> q = values(tokens * qw, 4), kv = values(tokens * kvw, 5);
  auto fill = [&](Buffer<std::byte>& out, const Buffer<float>& from) {
    for (std::size_t i = 0; i < from.size(); ++i) {
      if (bf16) {
        reinterpret_cast<std::uint16_t*>(out.data())[i] = ops::reference::bf16_bits(from[i]);
      } else {
        reinterpret_cast<float*>(out.data())[i] = from[i];
      }
    }
  };
  fill(rows_q, q);
  fill(rows_kv, kv);
  fill(dense_q, q);
  fill(dense_k, q);
  fill(dense_v, q);
  Buffer<float> s(heads * tokens * tokens, 1.0f / tokens);
  Buffer<std::uint16_t> weights_bits(s.size(), 0x3c00);
  const ops::Layout dense_heads = ops::Layout::dense({heads, tokens, head_dim}, dtype);
  const ops::MatMul scores(dense_heads, ops::Layout{{heads, head_dim, tokens}, {tokens * head_dim, 1, head_dim}, dtype},
                           ops::Layout::dense({heads, tokens, tokens}, ops::DType::kF32), 0.25f, false);
  const ops::MatMul mix(ops::Layout::dense({heads, tokens, tokens}, dtype), dense_heads,
                        ops::Layout{{heads, tokens, head_dim}, {head_dim, qw, 1}, dtype}, 1.0f, false);
  const ops::Convert q_to_heads(ops::Layout{{heads, tokens, head_dim}, {head_dim, qw, 1}, dtype}, dense_heads);
  const ops::Convert kv_to_heads(ops::Layout{{heads, tokens, head_dim}, {head_dim, kvw, 1}, dtype}, dense_heads);
  const std::size_t scratch_bytes = std::max({scores.scratchpad_bytes(), mix.scratchpad_bytes(),
                                              q_to_heads.scratchpad_bytes(), kv_to_heads.scratchpad_bytes()});
  Buffer<std::byte> scratch(scratch_bytes + 64);
  const void* weights = bf16 ? static_cast<const void*>(weights_bits.data()) : s.data();
  time_op(state, name, [&] {
    switch (step) {
      case DenseStep::kScores: scores.execute(dense_q.data(), dense_k.data(), s.data(), scratch.data()); break;
      case DenseStep::kMix: mix.execute(weights, dense_v.data(), o.data(), scratch.data()); break;
      case DenseStep::kReorder:
        q_to_heads.execute(rows_q.data(), dense_q.data(), scratch.data());
        kv_to_heads.execute(rows_kv.data(), dense_k.data(), scratch.data());
        kv_to_heads.execute(rows_kv.data() + qw * act, dense_v.data(), scratch.data());
        break;
    }
  });
  if (step == DenseStep::kReorder) {
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * 2 * 3 * tokens * qw * static_cast<std::int64_t>(act));
  } else {
    set_counters(state, 2.0 * heads * tokens * tokens * head_dim, tokens, 0, bf16);
    state.SetLabel(step == DenseStep::kScores ? scores.implementation() : mix.implementation());
  }
}

// GELU on the MLP's hidden tile [T, F]: oneDNN's post-op on the up projection is timed under
// projection/mlp_up_gelu*/onednn_*; here the up projection without post-op followed by
// ops::Gelu's pass (in place for f32; f32 to bf16 for bf16, so that the activation is rounded
// once, as with the post-op), and the pass alone against its twin.
void BM_ProjectionThenGelu(benchmark::State& state, std::string name, LayerShape layer, ops::GeluForm form, bool bf16) {
  const std::int64_t tokens = layer.tokens, in = layer.width, out = layer.hidden;
  const Buffer<float> weights = values(in * out, 1), bias = values(out, 2);
  Buffer<float> src = values(tokens * in, 3), hidden(tokens * out);
  Buffer<std::uint16_t> src_bf16(src.size(), 0x3c00), hidden_bf16(hidden.size());
  const ops::Linear up(ops::Layout::rows(tokens, in, in, bf16 ? ops::DType::kBF16 : ops::DType::kF32), weights, bias,
                       ops::Layout::rows(tokens, out, out, ops::DType::kF32), ops::PostActivation::kNone, false);
  const ops::Gelu gelu(ops::Layout::dense({tokens, out}, ops::DType::kF32),
                       ops::Layout::dense({tokens, out}, bf16 ? ops::DType::kBF16 : ops::DType::kF32), form);
  Buffer<std::byte> scratch(up.scratchpad_bytes() + 64);
  const void* input = bf16 ? static_cast<const void*>(src_bf16.data()) : src.data();
  void* activated = bf16 ? static_cast<void*>(hidden_bf16.data()) : hidden.data();
  time_op(state, name, [&] {
    up.execute(input, hidden.data(), scratch.data());
    gelu.execute(hidden.data(), activated);
  });
  set_counters(state, 2.0 * tokens * in * out, tokens, 0, bf16);
  state.SetLabel(std::string(up.implementation()) + " + " + gelu.implementation());
}

enum class GeluPath { kIclbench, kEigen };
void BM_Gelu(benchmark::State& state, std::string name, LayerShape layer, ops::GeluForm form, GeluPath path) {
  const std::int64_t count = layer.tokens * layer.hidden;
  Buffer<float> x = values(count, 9), y(count);
  for (float& value : x) value *= 10;  // N(0, 1), as pre-activations are
  time_op(state, name, [&] {
    if (path == GeluPath::kIclbench) {
      ops::gelu(x.data(), y.data(), count, form);
    } else {
      for (std::int64_t i = 0; i < count; ++i) y[i] = static_cast<float>(ops::reference::gelu(x[i], form));
    }
  });
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * 2 * 4 * count);
  state.counters["values/s"] = benchmark::Counter(static_cast<double>(count) * static_cast<double>(state.iterations()),
                                                  benchmark::Counter::kIsRate);
}

// A projection, not a measurement of the engine: one encoder layer of one prompt as the chain of
// kernels the engine runs for it (model/engine.cpp, stages 1-3), with the same buffers, in one
// timed call: norm, [bf16 copy], Q and KV projections, attention core, output projection +
// residual, norm, [bf16 copy], up projection + GELU, down projection + residual. `today` is the
// engine's kernels now (oneDNN matmuls + RowSoftmax, GELU as oneDNN's post-op); `fused` swaps in
// ops::FusedAttention and ops::Gelu's pass. It leaves out what the engine adds around the kernels
// (scheduling, prompt copies), so its peak_frac is an upper bound for the engine's.
void BM_LayerChain(benchmark::State& state, std::string name, LayerShape shape, bool fused, bool bf16) {
  const std::int64_t t = shape.tokens, d = shape.width, h = shape.heads, dk = shape.head_dim, f = shape.hidden;
  const std::int64_t qw = h * dk, kvw = 2 * qw;
  const ops::DType act = bf16 ? ops::DType::kBF16 : ops::DType::kF32;
  const std::size_t act_size = ops::size_of(act);
  const Buffer<float> wq = values(d * qw, 11), wkv = values(d * kvw, 12), wo = values(qw * d, 13), w1 = values(d * f, 14),
                      w2 = values(f * d, 15), bq(qw, 0.0f), bkv(kvw, 0.0f), bd(d, 0.0f), bf(f, 0.0f), gamma(d, 1.0f),
                      beta(d, 0.0f);
  Buffer<float> x = values(t * d, 16), normed(t * d), hidden_f32(t * f);
  for (float& value : x) value *= 10;
  Buffer<std::byte> converted(t * d * 2), q(t * qw * act_size), kv(t * kvw * act_size), o(t * qw * act_size),
      hidden(t * f * act_size);
  const ops::Layout stream_rows = ops::Layout::rows(t, d, d, ops::DType::kF32);
  const ops::Layout input = bf16 ? ops::Layout::rows(t, d, d, ops::DType::kBF16) : stream_rows;
  const ops::LayerNorm norm(stream_rows, gamma, beta, 1e-5f);
  const ops::Convert to_bf16(stream_rows, ops::Layout::rows(t, d, d, ops::DType::kBF16));
  const ops::Linear query(input, wq, bq, ops::Layout::rows(t, qw, qw, act), ops::PostActivation::kNone, false);
  const ops::Linear key_value(input, wkv, bkv, ops::Layout::rows(t, kvw, kvw, act), ops::PostActivation::kNone, false);
  const ops::Linear output(ops::Layout::rows(t, qw, qw, act), wo, bd, stream_rows, ops::PostActivation::kNone, true);
  const ops::Layout hidden_rows = ops::Layout::rows(t, f, f, act);
  const ops::Linear up_gelu(input, w1, bf, hidden_rows, ops::PostActivation::kGelu, false);
  const ops::Linear up(input, w1, bf, ops::Layout::rows(t, f, f, ops::DType::kF32), ops::PostActivation::kNone, false);
  const ops::Gelu gelu(ops::Layout::dense({t, f}, ops::DType::kF32), ops::Layout::dense({t, f}, act), ops::GeluForm::kErf);
  const ops::Linear down(hidden_rows, w2, bd, stream_rows, ops::PostActivation::kNone, true);
  const ops::AttentionShape attention_shape = tile_attention(shape, act, false);
  const ops::FusedAttention attention(attention_shape);
  UnfusedAttention unfused(attention_shape);
  std::size_t scratch_bytes = attention.scratchpad_bytes();
  for (std::size_t bytes : {norm.scratchpad_bytes(), to_bf16.scratchpad_bytes(), query.scratchpad_bytes(),
                            key_value.scratchpad_bytes(), output.scratchpad_bytes(), up_gelu.scratchpad_bytes(),
                            up.scratchpad_bytes(), down.scratchpad_bytes(), unfused.scratchpad_bytes()}) {
    scratch_bytes = std::max(scratch_bytes, bytes);
  }
  Buffer<std::byte> scratch(scratch_bytes + 64);
  const Buffer<float> start = x;
  time_op(state, name, [&] {
    std::copy(start.begin(), start.end(), x.begin());  // the same input every time (the residual grows otherwise)
    norm.execute(x.data(), normed.data(), scratch.data());
    const void* in = normed.data();
    if (bf16) {
      to_bf16.execute(normed.data(), converted.data(), scratch.data());
      in = converted.data();
    }
    query.execute(in, q.data(), scratch.data());
    key_value.execute(in, kv.data(), scratch.data());
    if (fused) {
      attention.execute(q.data(), kv.data(), kv.data() + qw * act_size, o.data(), 0, scratch.data());
    } else {
      unfused.execute(q.data(), kv.data(), kv.data() + qw * act_size, o.data(), scratch.data());
    }
    output.execute(o.data(), x.data(), scratch.data());
    norm.execute(x.data(), normed.data(), scratch.data());
    if (bf16) to_bf16.execute(normed.data(), converted.data(), scratch.data());
    if (fused) {
      up.execute(in, hidden_f32.data(), scratch.data());
      gelu.execute(hidden_f32.data(), hidden.data());
    } else {
      up_gelu.execute(in, hidden.data(), scratch.data());
    }
    down.execute(hidden.data(), x.data(), scratch.data());
  });
  const double flops = 2.0 * t * d * (qw + kvw) + 2.0 * h * t * t * 2 * dk + 2.0 * t * qw * d + 4.0 * t * d * f;
  set_counters(state, flops, static_cast<double>(t), 1, bf16);
}

// Softmax over the keys of the [H, T, T] scores: oneDNN's jit primitive, the engine's own
// kernel (ops::RowSoftmax, which replaced it in the engine), and the Eigen reference (double).
enum class SoftmaxPath { kOneDnn, kIclbench, kEigen };
void BM_Softmax(benchmark::State& state, std::string name, LayerShape shape, SoftmaxPath path, bool bf16) {
  const std::int64_t tokens = shape.tokens, heads = shape.heads;
  Buffer<float> s = values(heads * tokens * tokens, 6), out(s.size());
  const ops::Layout layout = ops::Layout::dense({heads * tokens, tokens}, ops::DType::kF32);
  const ops::Layout out_layout = ops::Layout::dense({heads * tokens, tokens}, bf16 ? ops::DType::kBF16 : ops::DType::kF32);
  const ops::Softmax onednn(layout, out_layout);
  const ops::RowSoftmax own(layout, out_layout);
  Buffer<std::byte> scratch(onednn.scratchpad_bytes() + 64);
  // f32 runs in place, as in the engine (it matters: see ops/row_softmax.cpp); bf16 writes `out`.
  void* dst = bf16 ? static_cast<void*>(out.data()) : s.data();
  time_op(state, name, [&] {
    switch (path) {
      case SoftmaxPath::kOneDnn: onednn.execute(s.data(), dst, scratch.data()); break;
      case SoftmaxPath::kIclbench: own.execute(s.data(), dst); break;
      case SoftmaxPath::kEigen: ops::reference::softmax(s.data(), out.data(), heads * tokens, tokens); break;
    }
  });
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * 2 * 4 * static_cast<std::int64_t>(s.size()));
  if (path != SoftmaxPath::kEigen) state.SetLabel(path == SoftmaxPath::kOneDnn ? onednn.implementation() : own.implementation());
}

// LayerNorm of the residual stream's rows. Paths: onednn (layer_normalization_forward, the
// engine's op before ops::RowLayerNorm), iclbench (ops::RowLayerNorm, f32 out and bf16 out: the
// bf16 one replaces the norm-then-convert pair of a bf16 plan), eigen (the double twin).
enum class LayerNormPath { kOneDnn, kIclbench, kIclbenchBf16, kEigen };
void BM_LayerNorm(benchmark::State& state, std::string name, LayerShape shape, LayerNormPath path) {
  const std::int64_t tokens = shape.tokens, width = shape.width;
  Buffer<float> x = values(tokens * width, 7), out(x.size());
  Buffer<std::uint16_t> out_bf16(x.size());
  const Buffer<float> gamma(width, 1.0f), beta(width, 0.0f);
  const ops::Layout rows = ops::Layout::dense({tokens, width}, ops::DType::kF32);
  const ops::LayerNorm onednn(rows, gamma, beta, 1e-5f);
  const ops::RowLayerNorm own(rows, path == LayerNormPath::kIclbenchBf16 ? ops::Layout::dense({tokens, width}, ops::DType::kBF16) : rows,
                              gamma, beta, 1e-5f);
  Buffer<std::byte> scratch(onednn.scratchpad_bytes() + 64);
  time_op(state, name, [&] {
    switch (path) {
      case LayerNormPath::kOneDnn:
        onednn.execute(x.data(), out.data(), scratch.data());
        break;
      case LayerNormPath::kIclbench:
        own.execute(x.data(), out.data());
        break;
      case LayerNormPath::kIclbenchBf16:
        own.execute(x.data(), out_bf16.data());
        break;
      case LayerNormPath::kEigen:
        ops::reference::layer_norm(x.data(), out.data(), tokens, width, gamma, beta, 1e-5f);
        break;
    }
  });
  const std::int64_t out_bytes = path == LayerNormPath::kIclbenchBf16 ? 2 : 4;
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * (4 + out_bytes) * tokens * width);
  if (path == LayerNormPath::kIclbench || path == LayerNormPath::kIclbenchBf16) state.SetLabel(own.implementation());
}

// One pass of gd-hinge's looped linear attention (issue 14's shape: d = 16, N = 4096 context
// rows, T = N + 64 rows, a residual stream of width d + 4): M = (eta / N) K^T V over the context
// rows, then p += Q M on every row, with Q = K = x[:, 0:d] and V = x[:, g]. Paths:
//   iclbench  ops::LinearAttention on views of the stream (the structured engine's row-major
//             path);
//   iclbench_columns  ops::ColumnSweep on the live slots held column-major (the structured
//             engine's path for a looped layer), K^T V in blocks of one row tile of 256 rows
//             then combined, Q M per row tile; the transposition is not timed (the engine does
//             it once per prompt, not per pass);
//   onednn    the two oneDNN matmuls the engine ran before, on packed Q and [K V] buffers (K^T V
//             once, Q M per row tile of 256 rows, as the plan tiles it), the copies not timed;
//   eigen     the op's slow twin (double).
enum class LinearAttentionPath { kIclbench, kColumns, kOneDnn, kEigen };
void BM_IclLinearAttention(benchmark::State& state, std::string name, LinearAttentionPath path) {
  constexpr std::int64_t d = 16, n = 4096, t = n + 64, width = d + 4, tile = 256, g = d + 3, p = d + 2;
  Buffer<float> stream = values(static_cast<std::size_t>(t * width), 91);
  ops::LinearAttentionShape shape;
  shape.qk_dim = d;
  shape.scale = 2.0f / n;
  shape.queries = shape.keys = ops::HeadColumns{width, {0}};
  shape.values = ops::HeadColumns{width, {g}};
  shape.out_stride = width;
  shape.out_column = {p};
  shape.accumulate = true;
  const ops::LinearAttention op(shape);
  Buffer<float> product(d);
  // The packed buffers of the oneDNN path: Q [T, d], [K V] [N, d + 1], O [T, 1].
  Buffer<float> queries(static_cast<std::size_t>(t * d)), keys_values(static_cast<std::size_t>(n * (d + 1))), attended(t);
  for (std::int64_t r = 0; r < t; ++r) {
    std::copy_n(stream.data() + r * width, d, queries.data() + r * d);
    if (r < n) {
      std::copy_n(stream.data() + r * width, d, keys_values.data() + r * (d + 1));
      keys_values[static_cast<std::size_t>(r * (d + 1) + d)] = stream[static_cast<std::size_t>(r * width + g)];
    }
  }
  using ops::DType;
  using ops::Layout;
  const ops::MatMul keys_times_values(Layout{{1, d, n}, {d, 1, d + 1}, DType::kF32},
                                      Layout{{1, n, 1}, {1, d + 1, 1}, DType::kF32},
                                      Layout::dense({1, d, 1}, DType::kF32), shape.scale, false);
  const ops::MatMul queries_times_product(Layout{{1, tile, d}, {d, d, 1}, DType::kF32},
                                          Layout::dense({1, d, 1}, DType::kF32),
                                          Layout{{1, tile, 1}, {1, 1, 1}, DType::kF32}, 1.0f, false);
  Buffer<std::byte> scratch(std::max(keys_times_values.scratchpad_bytes(), queries_times_product.scratchpad_bytes()) + 64);
  const std::int64_t padded = (t + tile - 1) / tile * tile;
  queries.resize(static_cast<std::size_t>(padded * d), 0.0f);
  attended.resize(static_cast<std::size_t>(padded), 0.0f);
  // The column path's copy of the live slots [C, S] and its per-tile block sums.
  const ops::ColumnSweep sweep(op, std::nullopt, width);
  const std::int64_t stride = ops::ColumnSweep::column_stride(padded), tiles = padded / tile;
  Buffer<float> columns(static_cast<std::size_t>(sweep.columns() * stride), 0.0f);
  Buffer<float> block_sums(static_cast<std::size_t>(tiles * d));
  for (std::int64_t r = 0; r < t; r += tile) {
    sweep.gather(stream.data() + r * width, std::min(tile, t - r), columns.data() + r, stride);
  }
  time_op(state, name, [&] {
    switch (path) {
      case LinearAttentionPath::kIclbench:
        op.keys_times_values(stream.data(), stream.data(), n, product.data());
        op.queries_times_product(stream.data(), t, product.data(), stream.data());
        break;
      case LinearAttentionPath::kColumns:
        for (std::int64_t r = 0; r < n; r += tile) {
          sweep.key_block_sum(columns.data() + r, stride, std::min(tile, n - r), block_sums.data() + r / tile * d);
        }
        op.combine_key_blocks(block_sums.data(), (n + tile - 1) / tile, product.data());
        for (std::int64_t r = 0; r < t; r += tile) {
          sweep.attend_and_mlp(columns.data() + r, stride, std::min(tile, t - r), product.data());
        }
        break;
      case LinearAttentionPath::kOneDnn:
        keys_times_values.execute(keys_values.data(), keys_values.data() + d, product.data(), scratch.data());
        for (std::int64_t r = 0; r < t; r += tile) {
          queries_times_product.execute(queries.data() + r * d, product.data(), attended.data() + r, scratch.data());
        }
        break;
      case LinearAttentionPath::kEigen: {
        const std::vector<double> exact = ops::reference::linear_attention_product(stream.data(), stream.data(), n, shape);
        const std::vector<double> out = ops::reference::linear_attention_out(stream.data(), t, exact, shape);
        benchmark::DoNotOptimize(out.data());
        break;
      }
    }
  });
  // p grows by a tiny Q M per iteration (scale 2 / N): it stays finite for any run length.
  set_counters(state, 2.0 * d * (n + t), static_cast<double>(t), 0, false);
}

// gd-hinge's gradient MLP (tau = 0.5) on one prompt of issue 14's shape (T = 4096 + 64 rows of
// width d + 4 = 20), by ops::SmallMlp as the structured engine runs it: units relu(2p - 2.5y
// +- 0.5), relu(+-g), relu(+-y) read slots y, p, g, and g += their weighted sum + 0.5, in place,
// one row tile of 256 rows per call; by_columns: the same on slots y, p, g held column-major
// (SmallMlp::execute_columns, as ops::ColumnSweep runs it). g grows by a bounded amount per call (every unit is at most
// linear in g with slope 1 and g's weights cancel), so it stays finite for any run length.
// hoisted: by columns with the loop-invariant parts computed once before the timing (as
// ops::ColumnSweep's gather does once per prompt): the units' terms in the engine's order (slot
// y before p, so the hinge units' y-terms lead), p and g written by the loop: relu(+-y) and the
// y-terms hoisted, 10 multiply-adds per row left of 14.
void BM_IclMlp(benchmark::State& state, std::string name, bool by_columns, bool hoisted) {
  constexpr std::int64_t d = 16, t = 4096 + 64, width = d + 4, tile = 256, y = d, p = d + 1, g = d + 2;
  Buffer<float> stream = values(static_cast<std::size_t>((t + tile) / tile * tile * width), 92);
  ops::SmallMlp::Weights w;
  w.inputs = {p, y, g};
  w.units = {{0.5f, {{0, 2.0f}, {1, -2.5f}}}, {-0.5f, {{0, 2.0f}, {1, -2.5f}}}, {0.0f, {{2, 1.0f}}},
             {0.0f, {{2, -1.0f}}},           {0.0f, {{1, 1.0f}}},               {0.0f, {{1, -1.0f}}}};
  w.outputs = {{g, 0.5f, {{0, -1.0f}, {1, 1.0f}, {2, -1.0f}, {3, 1.0f}, {4, 0.5f}, {5, -0.5f}}}};
  if (hoisted) {
    for (std::size_t j = 0; j < 2; ++j) std::swap(w.units[j].terms[0], w.units[j].terms[1]);
  }
  ops::SmallMlp op(tile, width, width, w, ops::PostActivation::kRelu);
  std::vector<bool> written(static_cast<std::size_t>(width), false);
  written[static_cast<std::size_t>(p)] = written[static_cast<std::size_t>(g)] = true;
  std::vector<std::int64_t> hoist_column(w.units.size(), -1);
  std::int64_t next_column = 3;
  const std::vector<std::int64_t> prefix = op.invariant_prefixes(written);
  for (std::size_t j = 0; j < prefix.size(); ++j) {
    if (prefix[j] > 0) hoist_column[j] = next_column++;
  }
  if (hoisted) op.hoist(prefix, hoist_column);
  // The column path (ops::ColumnSweep's MLP): slots y, p, g held column-major, stride S.
  const std::int64_t stride = (t + tile) / tile * tile;
  std::vector<std::int64_t> position(static_cast<std::size_t>(width), -1);
  position[static_cast<std::size_t>(y)] = 0;
  position[static_cast<std::size_t>(p)] = 1;
  position[static_cast<std::size_t>(g)] = 2;
  Buffer<float> columns(static_cast<std::size_t>(next_column * stride));
  for (std::int64_t r = 0; r < stride; ++r) {
    for (std::int64_t slot : {y, p, g}) {
      columns[static_cast<std::size_t>(position[static_cast<std::size_t>(slot)] * stride + r)] =
          stream[static_cast<std::size_t>(r * width + slot)];
    }
  }
  if (hoisted) {
    for (std::int64_t r = 0; r < t; r += tile) {
      op.precompute_columns(columns.data() + r, stride, std::min(tile, t - r), position);
    }
  }
  time_op(state, name, [&] {
    for (std::int64_t r = 0; r < t; r += tile) {
      if (by_columns) {
        op.execute_columns(columns.data() + r, stride, std::min(tile, t - r), position);
      } else {
        op.execute(stream.data() + r * width);
      }
    }
  });
  // FLOPs executed per pass (the hoisted terms are not).
  set_counters(state, 2.0 * static_cast<double>(op.pass_terms() * t), static_cast<double>(t), 0,
               false);
}

// Registers `function` under `name`, passing the name on (for the gate's slowdown switch).
template <typename Function, typename... Args>
void add(const std::string& name, Function function, Args... args) {
  hooked_names().push_back(name);
  benchmark::RegisterBenchmark(name.c_str(), function, name, args...);
}

void register_benchmarks() {
  benchmark::RegisterBenchmark("calibration/gemm_f32_256", BM_Calibration);
  for (const LayerShape& layer : {kEncoder, kBertBase}) {
    const std::string prefix = layer.prefix;
    for (const ProjectionShape& shape : projections(layer)) {
      const std::string name = prefix + "projection/" + shape.name;
      add(name + "/onednn_f32", BM_Projection, shape, false);
      add(name + "/onednn_bf16", BM_Projection, shape, true);
      benchmark::RegisterBenchmark((name + "/eigen_f32").c_str(), BM_ProjectionEigen, shape);
    }
    for (bool scores : {true, false}) {
      const std::string name = prefix + (scores ? "attention/qk_scores" : "attention/av_mix");
      add(name + "/onednn_f32", BM_AttentionMatmul, layer, scores, false);
      add(name + "/onednn_bf16", BM_AttentionMatmul, layer, scores, true);
      benchmark::RegisterBenchmark((name + "/eigen_f32").c_str(), BM_AttentionMatmulEigen, layer, scores);
    }
    for (bool causal : {false, true}) {
      const std::string name = prefix + (causal ? "attention/core_causal" : "attention/core");
      add(name + "/iclbench_f32", BM_Attention, layer, AttentionPath::kFused, false, causal);
      add(name + "/iclbench_bf16", BM_Attention, layer, AttentionPath::kFused, true, causal);
      add(name + "/unfused_f32", BM_Attention, layer, AttentionPath::kUnfused, false, causal);
      add(name + "/unfused_bf16", BM_Attention, layer, AttentionPath::kUnfused, true, causal);
      add(name + "/eigen_f32", BM_Attention, layer, AttentionPath::kEigen, false, causal);
    }
    for (bool bf16 : {false, true}) {
      const std::string suffix = bf16 ? "_bf16" : "_f32";
      add(prefix + "attention/qk_scores/onednn_dense" + suffix, BM_AttentionDense, layer, DenseStep::kScores, bf16);
      add(prefix + "attention/av_mix/onednn_dense" + suffix, BM_AttentionDense, layer, DenseStep::kMix, bf16);
      add(prefix + "attention/head_reorder/onednn_dense" + suffix, BM_AttentionDense, layer, DenseStep::kReorder, bf16);
      add(prefix + "projection/mlp_up_gelu/iclbench" + suffix, BM_ProjectionThenGelu, layer, ops::GeluForm::kErf, bf16);
      add(prefix + "projection/mlp_up_gelu_tanh/iclbench" + suffix, BM_ProjectionThenGelu, layer,
          ops::GeluForm::kTanh, bf16);
    }
    for (bool bf16 : {false, true}) {
      const std::string suffix = bf16 ? "_bf16" : "_f32";
      add(prefix + "layer/chain/today" + suffix, BM_LayerChain, layer, false, bf16);
      add(prefix + "layer/chain/fused" + suffix, BM_LayerChain, layer, true, bf16);
    }
    add(prefix + "gelu/iclbench_f32", BM_Gelu, layer, ops::GeluForm::kErf, GeluPath::kIclbench);
    add(prefix + "gelu/eigen_f32", BM_Gelu, layer, ops::GeluForm::kErf, GeluPath::kEigen);
    add(prefix + "gelu_tanh/iclbench_f32", BM_Gelu, layer, ops::GeluForm::kTanh, GeluPath::kIclbench);
    add(prefix + "gelu_tanh/eigen_f32", BM_Gelu, layer, ops::GeluForm::kTanh, GeluPath::kEigen);
    add(prefix + "softmax/onednn_f32", BM_Softmax, layer, SoftmaxPath::kOneDnn, false);
    add(prefix + "softmax/onednn_bf16", BM_Softmax, layer, SoftmaxPath::kOneDnn, true);
    add(prefix + "softmax/iclbench_f32", BM_Softmax, layer, SoftmaxPath::kIclbench, false);
    add(prefix + "softmax/iclbench_bf16", BM_Softmax, layer, SoftmaxPath::kIclbench, true);
    add(prefix + "softmax/eigen_f32", BM_Softmax, layer, SoftmaxPath::kEigen, false);
    add(prefix + "layer_norm/onednn_f32", BM_LayerNorm, layer, LayerNormPath::kOneDnn);
    add(prefix + "layer_norm/iclbench_f32", BM_LayerNorm, layer, LayerNormPath::kIclbench);
    add(prefix + "layer_norm/iclbench_bf16", BM_LayerNorm, layer, LayerNormPath::kIclbenchBf16);
    add(prefix + "layer_norm/eigen_f32", BM_LayerNorm, layer, LayerNormPath::kEigen);
  }
  add("icl_linear_attention/gd_step/iclbench_f32", BM_IclLinearAttention, LinearAttentionPath::kIclbench);
  add("icl_linear_attention/gd_step/iclbench_columns_f32", BM_IclLinearAttention, LinearAttentionPath::kColumns);
  add("icl_linear_attention/gd_step/onednn_f32", BM_IclLinearAttention, LinearAttentionPath::kOneDnn);
  add("icl_linear_attention/gd_step/eigen_f32", BM_IclLinearAttention, LinearAttentionPath::kEigen);
  add("icl_mlp/gd_hinge/iclbench_f32", BM_IclMlp, false, false);
  add("icl_mlp/gd_hinge/iclbench_columns_f32", BM_IclMlp, true, false);
  add("icl_mlp/gd_hinge/iclbench_columns_hoisted_f32", BM_IclMlp, true, true);
}

}  // namespace
}  // namespace iclbench::bench

int main(int argc, char** argv) {
  if (const std::string error = iclbench::bench::check_benchmark_flags(argc, argv); !error.empty()) {
    std::fprintf(stderr, "kernels_bench: %s\n", error.c_str());
    return 2;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;  // only if this library lacks one of 1.7.1's flags
  iclbench::bench::register_benchmarks();
  const char* setting = std::getenv("ICLBENCH_BENCH_SLOWDOWN");
  if (setting != nullptr && *setting != '\0') {  // set but empty: off, as unset
    const std::string error = iclbench::bench::configure_slowdown(setting);
    if (!error.empty()) {
      std::fprintf(stderr, "kernels_bench: ICLBENCH_BENCH_SLOWDOWN: %s\n", error.c_str());
      return 2;
    }
  }
  benchmark::AddCustomContext("gemm_peak_gflops_f32", std::to_string(iclbench::bench::gemm_peak_gflops(false)));
  benchmark::AddCustomContext("gemm_peak_gflops_bf16", std::to_string(iclbench::bench::gemm_peak_gflops(true)));
  // None ran: the filter did not compile or selected nothing (Google Benchmark said which).
  const std::size_t ran = benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return ran == 0 ? 2 : 0;
}
