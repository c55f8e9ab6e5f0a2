#pragma once
// Row-wise LayerNorm of the engine's f32 residual stream, written for this codebase because
// oneDNN 2.6's layer_normalization_forward took ~8% of the standard encoder's forward (D = 64,
// one call per [129, 64] row tile) on this CPU; kernels_bench layer_norm/* compares the two.
//
// y = (x - mean(x)) / sqrt(var(x) + epsilon) * gamma + beta per row of `width` values, var the
// biased (population) variance of x about its mean (Ba, Kiros and Hinton 2016; oneDNN's and
// PyTorch's definition). Two passes over the row: the mean, then the variance of x - mean, so a
// large common offset costs nothing (no E[x^2] - E[x]^2 cancellation). The output is f32 or
// bf16 (rounded to nearest even, as ops::Convert does), so a bf16 plan needs no separate
// conversion pass.
//
// Accuracy (f32; ops_test's RowLayerNormMatchesDoubleTwin derives it and checks it against the
// double twin reference::layer_norm): with n = ceil(width / 16) + 6 (16 lane-wise partial sums
// in 4 accumulators, 2 levels joining those, a 4-level tree over the lanes), u = 2^-24, sigma_e = sqrt(var + epsilon), A = mean|x| / sigma_e and
// z = (x - mean) / sigma_e, to first order
//   |y - y_exact| <= |gamma| ((n + 1) u A + (n / 2 + 7) u |z|) + u |y|.
// Without AVX-512 a scalar loop computes the same definition. Deterministic: every row is
// computed by the same instruction sequence whatever the thread or the row's position (rows go
// four at a time, side by side so that their latency chains overlap, and the rest one at a
// time, each row's arithmetic as alone: kernels_bench layer_norm/iclbench_f32 ~2.1 -> ~1.6 us).

#include <cstdint>
#include <span>
#include <vector>

#include "ops/dnnl_ops.hpp"

namespace iclbench::ops {

class RowLayerNorm {
 public:
  // src: f32 [rows, width] dense; dst: f32 or bf16, same dims, dense (dst may be src when f32).
  // gamma, beta: [width]. Throws std::invalid_argument on other layouts or sizes.
  RowLayerNorm(const Layout& src, const Layout& dst, std::span<const float> gamma,
               std::span<const float> beta, float epsilon);
  void execute(const float* src, void* dst) const;
  const char* implementation() const;
  DType output_dtype() const { return bf16_output_ ? DType::kBF16 : DType::kF32; }

 private:
  std::int64_t rows_ = 0, width_ = 0;
  bool bf16_output_ = false;
  float epsilon_ = 0;
  std::vector<float> gamma_, beta_;
};

// The kernels, rows x width, row-major; the f32 one may run in place.
void layer_norm_rows(const float* src, float* dst, std::int64_t rows, std::int64_t width,
                     const float* gamma, const float* beta, float epsilon);
void layer_norm_rows_bf16(const float* src, std::uint16_t* dst, std::int64_t rows,
                          std::int64_t width, const float* gamma, const float* beta,
                          float epsilon);

}  // namespace iclbench::ops
