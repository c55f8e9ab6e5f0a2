#pragma once
// GELU as a pass of its own over an f32 tile, written to measure against oneDNN's eltwise
// post-op on the MLP's up projection (which cost the encoder's mlp_up a third of its speed) and
// for GPT-2-layout models, which use the tanh form.
//
// Forms (Hendrycks and Gimpel 2016):
//   kErf   GELU(x) = x Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2: the exact form, PyTorch's
//          default and model::Activation::kGelu;
//   kTanh  0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))): PyTorch's approximate="tanh",
//          GPT-2's gelu_new.
// Accuracy (f32, AVX-512; ops_test checks these bounds against the double twin):
//   kErf   computed as max(x, 0) - t(|x|) with t(a) = a Phi(-a), no cancellation for negative x:
//          t is a degree-5 polynomial on each of 31 intervals of width 1/4 of [0, 7.75) and 0
//          beyond (t(7.75) < 3.6e-14 < 2^-47 a), its coefficients picked by one vpermt2ps each from a
//          table held in registers (scripts/fit_gelu_tail.py fits it and evaluates the kernel's
//          f32 arithmetic on every f32 a in [2^-30, 8): |t' - t| <= 1.234 u a). With the final
//          subtraction: |error| <= 1.25 u |x| + 2 u |GELU| (u = 2^-24). 17 instructions per 16
//          values where the erfc-and-exp form (erfcx rational, exp2, a reciprocal) took 27:
//          kernels_bench gelu/iclbench_f32 7.7 -> 5.0 us. oneDNN's and PyTorch's kernels use
//          Abramowitz-Stegun 7.1.26 for erf, 1.5e-7 absolute.
//   kTanh  x / (1 + e^(-2 y)), y the tanh argument: |error| <= |GELU| ((1 - s) (4 ln2 |p| + 1.1) + 4) u
//          with s = 1 / (1 + e^(-2 y)) and p = -2 y log2(e), plus |x| 2^-126 below x = -9.7,
//          where the exponent is capped (the exact value is smaller still).
// GELU(+inf) = +inf, NaN stays NaN; GELU(-inf) = 0 (erf) or -2e-37 (tanh).
// Without AVX-512 a scalar loop with std::erfc / std::tanh computes the same definitions.

#include <cstdint>

#include "ops/dnnl_ops.hpp"

namespace iclbench::ops {

enum class GeluForm { kErf, kTanh };

class Gelu {
 public:
  // src: f32 [.., width], dense; dst: f32 or bf16 (rounded to nearest even; values below
  // 2^-126 become 0, as vcvtneps2bf16 does), same dims, dense. dst may be src in either dtype:
  // each value (or vector of 16) is loaded before its result is stored, and a bf16 result
  // lands at half its input's offset, below every input not yet loaded.
  Gelu(const Layout& src, const Layout& dst, GeluForm form);
  void execute(const float* src, void* dst) const;
  const char* implementation() const;

 private:
  std::int64_t count_ = 0;
  GeluForm form_ = GeluForm::kErf;
  bool bf16_output_ = false;
};

// The kernels over `count` values; dst may start where src does (see Gelu).
void gelu(const float* src, float* dst, std::int64_t count, GeluForm form);
void gelu_to_bf16(const float* src, std::uint16_t* dst, std::int64_t count, GeluForm form);

}  // namespace iclbench::ops
