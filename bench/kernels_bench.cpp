// Per-kernel benchmarks of one prompt's layer: every op on the oneDNN path and on its Eigen twin,
// f32 and bf16 where the op has both, on two shapes:
//   the standard encoder (T = 129 tokens, D = 64, H = 4, dk = 16, F = 256): names without prefix,
//     which the regression gate tracks;
//   a BERT-base layer (T = 128, D = 768, H = 12, dk = 64, F = 3072): names under bert_base/.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "ops/dnnl_ops.hpp"
#include "ops/eigen_ops.hpp"
#include "ops/row_softmax.hpp"
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
// 30% slower on average). Unset, it costs nothing.
struct Slowdown {
  double fraction = 0;
  double op_seconds = 0;
  explicit Slowdown(const std::string& name) {
    const char* setting = std::getenv("ICLBENCH_BENCH_SLOWDOWN");
    if (setting == nullptr) return;
    const std::string text = setting;
    const auto colon = text.rfind(':');
    if (colon == std::string::npos || name.find(text.substr(0, colon)) == std::string::npos) return;
    fraction = std::stod(text.substr(colon + 1));
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

void BM_LayerNorm(benchmark::State& state, std::string name, LayerShape shape, bool eigen) {
  const std::int64_t tokens = shape.tokens, width = shape.width;
  Buffer<float> x = values(tokens * width, 7), out(x.size());
  const Buffer<float> gamma(width, 1.0f), beta(width, 0.0f);
  const ops::LayerNorm op(ops::Layout::dense({tokens, width}, ops::DType::kF32), gamma, beta, 1e-5f);
  Buffer<std::byte> scratch(op.scratchpad_bytes() + 64);
  time_op(state, name, [&] {
    if (eigen) {
      ops::reference::layer_norm(x.data(), out.data(), tokens, width, gamma, beta, 1e-5f);
    } else {
      op.execute(x.data(), out.data(), scratch.data());
    }
  });
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * 2 * 4 * tokens * width);
}

// Registers `function` under `name`, passing the name on (for the gate's slowdown switch).
template <typename Function, typename... Args>
void add(const std::string& name, Function function, Args... args) {
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
    add(prefix + "softmax/onednn_f32", BM_Softmax, layer, SoftmaxPath::kOneDnn, false);
    add(prefix + "softmax/onednn_bf16", BM_Softmax, layer, SoftmaxPath::kOneDnn, true);
    add(prefix + "softmax/iclbench_f32", BM_Softmax, layer, SoftmaxPath::kIclbench, false);
    add(prefix + "softmax/iclbench_bf16", BM_Softmax, layer, SoftmaxPath::kIclbench, true);
    add(prefix + "softmax/eigen_f32", BM_Softmax, layer, SoftmaxPath::kEigen, false);
    add(prefix + "layer_norm/onednn_f32", BM_LayerNorm, layer, false);
    add(prefix + "layer_norm/eigen_f32", BM_LayerNorm, layer, true);
  }
}

}  // namespace
}  // namespace iclbench::bench

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  iclbench::bench::register_benchmarks();
  benchmark::AddCustomContext("gemm_peak_gflops_f32", std::to_string(iclbench::bench::gemm_peak_gflops(false)));
  benchmark::AddCustomContext("gemm_peak_gflops_bf16", std::to_string(iclbench::bench::gemm_peak_gflops(true)));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
