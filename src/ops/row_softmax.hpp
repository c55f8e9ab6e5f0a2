#pragma once
// Row-wise softmax of the engine's f32 score tiles, written for this codebase because oneDNN
// 2.6's jit softmax runs at ~0.6 ns per element on this CPU, which made softmax the most
// expensive op of the encoder layer (39 us of ~150 us per prompt and layer); this kernel runs at
// ~0.25-0.28 ns per element (kernels_bench softmax/*).
//
// Same definition as oneDNN's softmax_accurate: y = exp(x - max(x)) / sum(exp(x - max(x))),
// in f32; -inf inputs (masked keys) give exactly 0. The AVX-512 path uses a degree-6 polynomial
// exp (Cephes' expf coefficients, error ~1 ulp) with round-to-nearest range reduction; without
// AVX-512 a scalar loop with std::exp computes the same definition. Deterministic: every row is
// computed by the same instruction sequence whatever the thread.

#include <cstdint>

#include "ops/dnnl_ops.hpp"

namespace iclbench::ops {

class RowSoftmax {
 public:
  // src: f32 [.., width], dense; dst: f32 or bf16 (rounded to nearest even), same dims, dense.
  RowSoftmax(const Layout& src, const Layout& dst);
  // Overwrites `scores` (with the unnormalised exponentials when the output is bf16); dst may
  // be `scores` itself when it is f32.
  void execute(float* scores, void* dst) const;
  const char* implementation() const;

 private:
  std::int64_t rows_ = 0, width_ = 0;
  bool bf16_output_ = false;
};

// While alive, this thread's f32 arithmetic flushes denormal results to zero and reads denormal
// inputs as zero (MXCSR FTZ and DAZ), restored on destruction. RowSoftmax::execute holds one:
// on wide score ranges the exponentials and their products with 1/sum land in the denormal
// range, where each instruction takes a microcode assist, and the softmax ran 2x slower
// (measured: 0.51 against 0.28 ns per element for scores spread over 100). Only values below
// FLT_MIN (1.2e-38) change, to 0.
class FlushDenormals {
 public:
  FlushDenormals();
  ~FlushDenormals();
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;

 private:
  static constexpr unsigned kFlushToZero = 0x8000, kDenormalsAreZero = 0x0040;
  unsigned saved_ = 0;
};

// The kernels, rows x width, row-major. dst may alias src. The bf16 one overwrites `scores`.
void softmax_rows(const float* src, float* dst, std::int64_t rows, std::int64_t width);
void softmax_rows_bf16(float* scores, std::uint16_t* dst, std::int64_t rows, std::int64_t width);
// y = bf16(x * scale), rounded to nearest even: the last step of softmax_rows_bf16.
void scale_to_bf16(const float* x, float scale, std::uint16_t* y, std::int64_t count);

}  // namespace iclbench::ops
