#include "ops/row_softmax.hpp"

#include <bit>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "ops/simd_math.hpp"

#if defined(__SSE__)
#include <xmmintrin.h>
#endif
#if defined(__AVX512F__)
#include <immintrin.h>
// GCC 12 flags its own _mm512_reduce_* helpers (`__m256d __Y = __Y;` in avx512fintrin.h), a
// known false positive.
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

namespace iclbench::ops {
namespace {

// f32 -> bf16, round to nearest even (simd::to_bf16 does the same for 16 values).
std::uint16_t to_bf16(float value) {
  const auto bits = std::bit_cast<std::uint32_t>(value);
  return static_cast<std::uint16_t>((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}

#if defined(__AVX512F__)
// exp(x) for x <= 0 (x - max): Cephes' expf. n = round(x log2 e), r = x - n ln 2 in two parts,
// exp(r) by a degree-6 polynomial, then scaled by 2^n. Below ln(FLT_MIN) (including -inf) the
// result is exactly 0; a NaN stays NaN (the comparison is unordered-true).
__m512 exp_nonpositive(__m512 x) {
  const __mmask16 representable = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.33654f), _CMP_NLT_UQ);
  const __m512 clamped = _mm512_max_ps(x, _mm512_set1_ps(-87.33654f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(clamped, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), clamped);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  // A NaN input went through the clamp as -87.3; put it back.
  const __m512 result = _mm512_scalef_ps(p, n);
  return _mm512_maskz_mov_ps(representable, _mm512_mask_mov_ps(result, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x));
}

// Writes exp(x - max) to y and returns 1 / sum. y may alias x.
//
// Row tails (width not a multiple of 16) are stored lane by lane, never with a masked vector
// store: a later load that overlaps a masked store's 64 bytes cannot take its data from the store
// buffer and waits for it to retire. In place, as the engine runs it, that made the softmax 1.7x
// slower on rows of 129 (33 against 19 us for [516, 129]).
float exponentials(const float* x, float* y, std::int64_t width) {
  const std::int64_t full = width / 16 * 16;
  const auto tail = static_cast<__mmask16>((1u << (width - full)) - 1u);
  __m512 top = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (std::int64_t k = 0; k < full; k += 16) top = _mm512_max_ps(top, _mm512_loadu_ps(x + k));
  if (tail) top = _mm512_mask_max_ps(top, tail, top, _mm512_maskz_loadu_ps(tail, x + full));
  const __m512 row_max = _mm512_set1_ps(_mm512_reduce_max_ps(top));
  __m512 sum = _mm512_setzero_ps();
  for (std::int64_t k = 0; k < full; k += 16) {
    const __m512 e = exp_nonpositive(_mm512_sub_ps(_mm512_loadu_ps(x + k), row_max));
    _mm512_storeu_ps(y + k, e);
    sum = _mm512_add_ps(sum, e);
  }
  if (tail) {
    const __m512 e = exp_nonpositive(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, x + full), row_max));
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, e);
    for (std::int64_t k = full; k < width; ++k) y[k] = lanes[k - full];
    sum = _mm512_mask_add_ps(sum, tail, sum, e);
  }
  return 1.0f / _mm512_reduce_add_ps(sum);
}

#else
float exponentials(const float* x, float* y, std::int64_t width) {
  float row_max = -std::numeric_limits<float>::infinity();
  for (std::int64_t k = 0; k < width; ++k) row_max = std::fmax(row_max, x[k]);
  float sum = 0.0f;
  for (std::int64_t k = 0; k < width; ++k) {
    y[k] = std::exp(x[k] - row_max);
    sum += y[k];
  }
  return 1.0f / sum;
}
#endif

}  // namespace

FlushDenormals::FlushDenormals() {
#if defined(__SSE__)
  saved_ = _mm_getcsr();
  _mm_setcsr(saved_ | kFlushToZero | kDenormalsAreZero);
#endif
}

FlushDenormals::~FlushDenormals() {
#if defined(__SSE__)
  _mm_setcsr(saved_);
#endif
}

void softmax_rows(const float* src, float* dst, std::int64_t rows, std::int64_t width) {
  for (std::int64_t r = 0; r < rows; ++r) {
    float* y = dst + r * width;
    const float inverse = exponentials(src + r * width, y, width);
#if defined(__AVX512F__)
    const __m512 scale = _mm512_set1_ps(inverse);
    const std::int64_t full = width / 16 * 16;
    for (std::int64_t k = 0; k < full; k += 16) _mm512_storeu_ps(y + k, _mm512_mul_ps(_mm512_loadu_ps(y + k), scale));
    for (std::int64_t k = full; k < width; ++k) y[k] *= inverse;  // lane by lane, see exponentials()
#else
    for (std::int64_t k = 0; k < width; ++k) y[k] *= inverse;
#endif
  }
}

void scale_to_bf16(const float* x, float scale, std::uint16_t* y, std::int64_t count) {
#if defined(__AVX512F__)
  const __m512 factor = _mm512_set1_ps(scale);
  const std::int64_t full = count / 16 * 16;
  for (std::int64_t k = 0; k < full; k += 16) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + k), simd::to_bf16(_mm512_mul_ps(_mm512_loadu_ps(x + k), factor)));
  }
  for (std::int64_t k = full; k < count; ++k) y[k] = to_bf16(x[k] * scale);  // see exponentials()
#else
  for (std::int64_t k = 0; k < count; ++k) y[k] = to_bf16(x[k] * scale);
#endif
}

void softmax_rows_bf16(float* scores, std::uint16_t* dst, std::int64_t rows, std::int64_t width) {
  for (std::int64_t r = 0; r < rows; ++r) {
    float* x = scores + r * width;
    scale_to_bf16(x, exponentials(x, x, width), dst + r * width, width);
  }
}

RowSoftmax::RowSoftmax(const Layout& src, const Layout& dst) {
  if (src.dims.empty() || src.dims != dst.dims || src.dtype != DType::kF32) {
    throw std::invalid_argument("RowSoftmax: needs f32 scores and an output of the same shape");
  }
  const Layout dense_src = Layout::dense(src.dims, src.dtype), dense_dst = Layout::dense(dst.dims, dst.dtype);
  if (src.strides != dense_src.strides || dst.strides != dense_dst.strides) {
    throw std::invalid_argument("RowSoftmax: scores and output must be dense");
  }
  width_ = src.dims.back();
  rows_ = 1;
  for (std::size_t i = 0; i + 1 < src.dims.size(); ++i) rows_ *= src.dims[i];
  bf16_output_ = dst.dtype == DType::kBF16;
}

void RowSoftmax::execute(float* scores, void* dst) const {
  const FlushDenormals flush;
  if (bf16_output_) {
    softmax_rows_bf16(scores, static_cast<std::uint16_t*>(dst), rows_, width_);
  } else {
    softmax_rows(scores, static_cast<float*>(dst), rows_, width_);
  }
}

const char* RowSoftmax::implementation() const {
#if defined(__AVX512F__)
  return "iclbench:avx512";
#else
  return "iclbench:scalar";
#endif
}

}  // namespace iclbench::ops
