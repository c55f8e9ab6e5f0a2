// Per-kernel benchmarks on the encoder shape (T = 129 tokens, D = 64, H = 4, dk = 16, F = 256):
// every op on the oneDNN path and on its Eigen twin, f32 and bf16 where the op has both.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "data_gen/philox.hpp"
#include "ops/dnnl_ops.hpp"
#include "ops/eigen_ops.hpp"

namespace iclbench::bench {
namespace {

constexpr std::int64_t kTokens = 129, kWidth = 64, kHeads = 4, kHeadDim = 16, kHidden = 256;

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

Buffer<float> values(std::size_t count, std::uint64_t seed) {
  Buffer<float> out(count);
  data::DrawSequence draws(seed, 0, 0, data::Stream::kModelWeights);
  for (float& value : out) value = static_cast<float>(draws.normal() * 0.1);
  return out;
}

// A projection x W + b (+ activation, + residual), as in the QKV, output and MLP layers.
struct ProjectionShape {
  const char* name;
  std::int64_t in, out;
  ops::PostActivation activation;
  bool accumulate;
};
constexpr ProjectionShape kProjections[] = {
    {"qkv_projection", kWidth, 3 * kWidth, ops::PostActivation::kNone, false},
    {"output_projection", kWidth, kWidth, ops::PostActivation::kNone, true},
    {"mlp_up_gelu", kWidth, kHidden, ops::PostActivation::kGelu, false},
    {"mlp_down_residual", kHidden, kWidth, ops::PostActivation::kNone, true},
};

void BM_Projection(benchmark::State& state, ProjectionShape shape, bool bf16) {
  const ops::DType dtype = bf16 ? ops::DType::kBF16 : ops::DType::kF32;
  const Buffer<float> weights = values(shape.in * shape.out, 1), bias = values(shape.out, 2);
  Buffer<float> src = values(kTokens * shape.in, 3), dst(kTokens * shape.out);
  Buffer<std::uint16_t> src_bf16(src.size(), 0x3c00);
  const ops::Linear op(ops::Layout::rows(kTokens, shape.in, shape.in, dtype), weights, bias,
                       ops::Layout::rows(kTokens, shape.out, shape.out, ops::DType::kF32),
                       shape.activation, shape.accumulate);
  Buffer<std::byte> scratch(op.scratchpad_bytes() + 64);
  const void* input = bf16 ? static_cast<const void*>(src_bf16.data()) : src.data();
  Slowdown slowdown(std::string("projection/") + shape.name + (bf16 ? "/onednn_bf16" : "/onednn_f32"));
  op.execute(input, dst.data(), scratch.data());  // warm-up: oneDNN JITs some kernels on first use
  slowdown.calibrate([&] { op.execute(input, dst.data(), scratch.data()); });
  for (auto _ : state) {
    op.execute(input, dst.data(), scratch.data());
    slowdown.wait();
    benchmark::DoNotOptimize(dst.data());
  }
  set_counters(state, 2.0 * kTokens * shape.in * shape.out, kTokens, 0, bf16);
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
  const Buffer<float> weights = values(shape.in * shape.out, 1), bias = values(shape.out, 2);
  Buffer<float> src = values(kTokens * shape.in, 3), dst(kTokens * shape.out);
  for (auto _ : state) {
    ops::reference::linear(src.data(), shape.in, weights, bias, dst.data(), shape.out, kTokens,
                           shape.in, shape.out, shape.activation, shape.accumulate);
    benchmark::DoNotOptimize(dst.data());
  }
  set_counters(state, 2.0 * kTokens * shape.in * shape.out, kTokens);
}

// Q K^T over the heads (scores), then A V (mix): the attention core of one prompt.
void BM_AttentionMatmul(benchmark::State& state, bool scores, bool bf16) {
  const ops::DType dtype = bf16 ? ops::DType::kBF16 : ops::DType::kF32;
  const std::int64_t qw = kHeads * kHeadDim, kvw = 2 * qw;
  Buffer<std::uint16_t> q(kTokens * qw, 0x3c00), kv(kTokens * kvw, 0x3c00);
  Buffer<float> qf = values(kTokens * qw, 4), kvf = values(kTokens * kvw, 5);
  Buffer<float> s(kHeads * kTokens * kTokens, 1.0f / kTokens), o(kTokens * qw);
  const ops::Layout query{{kHeads, kTokens, kHeadDim}, {kHeadDim, qw, 1}, dtype};
  const ops::Layout keys_t{{kHeads, kHeadDim, kTokens}, {kHeadDim, 1, kvw}, dtype};
  const ops::Layout values_view{{kHeads, kTokens, kHeadDim}, {kHeadDim, kvw, 1}, dtype};
  const ops::Layout weights_layout = ops::Layout::dense({kHeads, kTokens, kTokens}, dtype);
  const ops::Layout out{{kHeads, kTokens, kHeadDim}, {kHeadDim, qw, 1}, ops::DType::kF32};
  const ops::MatMul op = scores ? ops::MatMul(query, keys_t, ops::Layout::dense({kHeads, kTokens, kTokens}, ops::DType::kF32), 0.25f, false)
                                : ops::MatMul(weights_layout, values_view, out, 1.0f, false);
  Buffer<std::byte> scratch(op.scratchpad_bytes() + 64);
  Buffer<std::uint16_t> weights_bf16(s.size(), 0x3c00);
  const void* a = scores ? (bf16 ? static_cast<const void*>(q.data()) : qf.data())
                         : (bf16 ? static_cast<const void*>(weights_bf16.data()) : s.data());
  const void* b = bf16 ? static_cast<const void*>(kv.data()) : kvf.data();
  const void* b_values = bf16 ? static_cast<const void*>(kv.data() + qw) : kvf.data() + qw;
  Slowdown slowdown(std::string(scores ? "attention/qk_scores" : "attention/av_mix") +
                    (bf16 ? "/onednn_bf16" : "/onednn_f32"));
  auto run_op = [&] {
    op.execute(a, scores ? b : b_values, scores ? static_cast<void*>(s.data()) : o.data(), scratch.data());
  };
  run_op();  // warm-up
  slowdown.calibrate(run_op);
  for (auto _ : state) {
    run_op();
    slowdown.wait();
    benchmark::ClobberMemory();
  }
  set_counters(state, 2.0 * kHeads * kTokens * kTokens * kHeadDim, kTokens, 0, bf16);
  state.SetLabel(op.implementation());
}

void BM_AttentionMatmulEigen(benchmark::State& state, bool scores) {
  const std::int64_t qw = kHeads * kHeadDim, kvw = 2 * qw;
  const Buffer<float> q = values(kTokens * qw, 4), kv = values(kTokens * kvw, 5);
  Buffer<float> s(kHeads * kTokens * kTokens, 1.0f / kTokens), o(kHeads * kTokens * kHeadDim);
  for (auto _ : state) {
    if (scores) {
      ops::reference::matmul({q.data(), kHeadDim, qw, 1}, {kv.data(), kHeadDim, 1, kvw}, s.data(), kHeads,
                             kTokens, kHeadDim, kTokens, 0.25f, false, ops::MatMul::Binary::kNone, nullptr);
    } else {
      ops::reference::matmul({s.data(), kTokens * kTokens, kTokens, 1}, {kv.data() + qw, kHeadDim, kvw, 1},
                             o.data(), kHeads, kTokens, kTokens, kHeadDim, 1.0f, false,
                             ops::MatMul::Binary::kNone, nullptr);
    }
    benchmark::ClobberMemory();
  }
  set_counters(state, 2.0 * kHeads * kTokens * kTokens * kHeadDim, kTokens);
}

void BM_Softmax(benchmark::State& state, bool eigen) {
  Buffer<float> s = values(kHeads * kTokens * kTokens, 6), out(s.size());
  const ops::Softmax op(ops::Layout::dense({kHeads * kTokens, kTokens}, ops::DType::kF32),
                        ops::Layout::dense({kHeads * kTokens, kTokens}, ops::DType::kF32));
  Buffer<std::byte> scratch(op.scratchpad_bytes() + 64);
  Slowdown slowdown("softmax/onednn_f32");
  if (!eigen) {
    op.execute(s.data(), out.data(), scratch.data());  // warm-up
    slowdown.calibrate([&] { op.execute(s.data(), out.data(), scratch.data()); });
  }
  for (auto _ : state) {
    if (eigen) {
      ops::reference::softmax(s.data(), out.data(), kHeads * kTokens, kTokens);
    } else {
      op.execute(s.data(), out.data(), scratch.data());
      slowdown.wait();
    }
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * 2 * 4 * static_cast<std::int64_t>(s.size()));
}

void BM_LayerNorm(benchmark::State& state, bool eigen) {
  Buffer<float> x = values(kTokens * kWidth, 7), out(x.size());
  const Buffer<float> gamma(kWidth, 1.0f), beta(kWidth, 0.0f);
  const ops::LayerNorm op(ops::Layout::dense({kTokens, kWidth}, ops::DType::kF32), gamma, beta, 1e-5f);
  Buffer<std::byte> scratch(op.scratchpad_bytes() + 64);
  Slowdown slowdown("layer_norm/onednn_f32");
  if (!eigen) {
    op.execute(x.data(), out.data(), scratch.data());  // warm-up
    slowdown.calibrate([&] { op.execute(x.data(), out.data(), scratch.data()); });
  }
  for (auto _ : state) {
    if (eigen) {
      ops::reference::layer_norm(x.data(), out.data(), kTokens, kWidth, gamma, beta, 1e-5f);
    } else {
      op.execute(x.data(), out.data(), scratch.data());
      slowdown.wait();
    }
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * 2 * 4 * kTokens * kWidth);
}

void register_benchmarks() {
  benchmark::RegisterBenchmark("calibration/gemm_f32_256", BM_Calibration);
  for (const ProjectionShape& shape : kProjections) {
    benchmark::RegisterBenchmark((std::string("projection/") + shape.name + "/onednn_f32").c_str(), BM_Projection, shape, false);
    benchmark::RegisterBenchmark((std::string("projection/") + shape.name + "/onednn_bf16").c_str(), BM_Projection, shape, true);
    benchmark::RegisterBenchmark((std::string("projection/") + shape.name + "/eigen_f32").c_str(), BM_ProjectionEigen, shape);
  }
  for (bool scores : {true, false}) {
    const std::string name = scores ? "attention/qk_scores" : "attention/av_mix";
    benchmark::RegisterBenchmark((name + "/onednn_f32").c_str(), BM_AttentionMatmul, scores, false);
    benchmark::RegisterBenchmark((name + "/onednn_bf16").c_str(), BM_AttentionMatmul, scores, true);
    benchmark::RegisterBenchmark((name + "/eigen_f32").c_str(), BM_AttentionMatmulEigen, scores);
  }
  benchmark::RegisterBenchmark("softmax/onednn_f32", BM_Softmax, false);
  benchmark::RegisterBenchmark("softmax/eigen_f32", BM_Softmax, true);
  benchmark::RegisterBenchmark("layer_norm/onednn_f32", BM_LayerNorm, false);
  benchmark::RegisterBenchmark("layer_norm/eigen_f32", BM_LayerNorm, true);
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
