#include "ops/gelu.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <numbers>
#include <stdexcept>

#include "ops/simd_math.hpp"

namespace iclbench::ops {
namespace {

// erfcx(z) = e^(z^2) erfc(z) ~ R(t), t = 1 / (1 + kP z), z >= 0; coefficients c0..c6 of R
// halved (Phi(-a) = erfc(a / sqrt 2) / 2), fitted by Lawson's algorithm (iteratively reweighted
// least squares) for the absolute error of erfc on z in [0, 10]: 1.18e-8.
constexpr float kP = 0.4f;
constexpr float kHalfR[7] = {0x1.76ae22p-9f, 0x1.828f6ap-4f, 0x1.2fdee4p-3f, 0x1.f5691ap-4f,
                             -0x1.4ffb88p-4f, 0x1.371adap-2f, -0x1.6fdb9cp-4f};
// -2 sqrt(2 / pi) log2(e), and times 0.044715: e^(-2 y) = 2^(x (kTanh1 + kTanh3 x^2)).
constexpr double kTanhArgument = -2.0 * 0.7978845608028654 * 1.4426950408889634;
constexpr float kTanh1 = static_cast<float>(kTanhArgument);
constexpr float kTanh3 = static_cast<float>(kTanhArgument * 0.044715);

#if defined(ICLBENCH_SIMD_AVX512)
// 1 / d: vrcp14ps (2^-14) and one Newton step (2^-28).
__m512 reciprocal(__m512 d) {
  const __m512 r = _mm512_rcp14_ps(d);
  return _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0f)));
}

__m512 gelu_erf(__m512 x) {
  // |x|, at most 20 (Phi(-20) is 0 in f32); a NaN stays (vminps returns its second operand).
  const __m512 a = _mm512_min_ps(_mm512_set1_ps(20.0f), _mm512_abs_ps(x));
  const __m512 t = reciprocal(_mm512_fmadd_ps(a, _mm512_set1_ps(kP / std::numbers::sqrt2_v<float>), _mm512_set1_ps(1.0f)));
  __m512 r = _mm512_set1_ps(kHalfR[6]);
  for (int k = 5; k >= 0; --k) r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(kHalfR[k]));
  const __m512 gaussian = simd::exp2(_mm512_mul_ps(_mm512_mul_ps(a, a), _mm512_set1_ps(-0.5f * std::numbers::log2e_v<float>)));
  const __m512 tail = _mm512_mul_ps(a, _mm512_mul_ps(r, gaussian));  // |x| Phi(-|x|)
  return _mm512_sub_ps(_mm512_max_ps(_mm512_setzero_ps(), x), tail);
}

__m512 gelu_tanh(__m512 x) {
  // x sigmoid(2 y) = x / (1 + 2^(x (kTanh1 + kTanh3 x^2))), the exponent at most 126 so that
  // the sum and its reciprocal stay normal: x < -9.7 gives x 2^-126 (> -2e-37) instead of a
  // number that underflows, and x below -20 counts as -20 (so that -inf gives -2e-37, not -inf).
  x = _mm512_max_ps(_mm512_set1_ps(-20.0f), x);  // a NaN stays (vmaxps returns its second operand)
  const __m512 power = _mm512_mul_ps(x, _mm512_fmadd_ps(_mm512_mul_ps(x, x), _mm512_set1_ps(kTanh3), _mm512_set1_ps(kTanh1)));
  const __m512 e = simd::exp2(_mm512_min_ps(_mm512_set1_ps(126.0f), power));
  return _mm512_mul_ps(x, reciprocal(_mm512_add_ps(_mm512_set1_ps(1.0f), e)));
}

template <bool kBf16>
void gelu_rows(const float* src, void* dst, std::int64_t count, GeluForm form) {
  auto apply = [form](__m512 x) { return form == GeluForm::kErf ? gelu_erf(x) : gelu_tanh(x); };
  auto store = [dst](std::int64_t i, __mmask16 mask, __m512 y) {
    if constexpr (kBf16) {
      _mm256_mask_storeu_epi16(static_cast<std::uint16_t*>(dst) + i, mask, simd::to_bf16(y));
    } else {
      _mm512_mask_storeu_ps(static_cast<float*>(dst) + i, mask, y);
    }
  };
  std::int64_t i = 0;
  for (; i + 16 <= count; i += 16) store(i, 0xFFFF, apply(_mm512_loadu_ps(src + i)));
  if (i < count) {
    const auto mask = static_cast<__mmask16>((1u << (count - i)) - 1u);
    store(i, mask, apply(_mm512_maskz_loadu_ps(mask, src + i)));
  }
}
#else
// The same formulas and clamps as the vector code, with std::erfc and std::exp2.
float gelu_scalar(float x, GeluForm form) {
  if (std::isnan(x)) return x;
  if (form == GeluForm::kTanh) {
    x = std::max(-20.0f, x);
    const float power = x * (kTanh1 + kTanh3 * x * x);
    return x / (1.0f + std::exp2(std::min(126.0f, power)));
  }
  const float a = std::min(20.0f, std::fabs(x));
  return std::max(x, 0.0f) - a * 0.5f * std::erfc(a / std::numbers::sqrt2_v<float>);
}
std::uint16_t to_bf16(float value) {
  const auto bits = std::bit_cast<std::uint32_t>(value);
  return static_cast<std::uint16_t>((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}
#endif

}  // namespace

void gelu(const float* src, float* dst, std::int64_t count, GeluForm form) {
#if defined(ICLBENCH_SIMD_AVX512)
  gelu_rows<false>(src, dst, count, form);
#else
  for (std::int64_t i = 0; i < count; ++i) dst[i] = gelu_scalar(src[i], form);
#endif
}

void gelu_to_bf16(const float* src, std::uint16_t* dst, std::int64_t count, GeluForm form) {
#if defined(ICLBENCH_SIMD_AVX512)
  gelu_rows<true>(src, dst, count, form);
#else
  for (std::int64_t i = 0; i < count; ++i) dst[i] = to_bf16(gelu_scalar(src[i], form));
#endif
}

Gelu::Gelu(const Layout& src, const Layout& dst, GeluForm form) : form_(form) {
  if (src.dims.empty() || src.dims != dst.dims || src.dtype != DType::kF32) {
    throw std::invalid_argument("Gelu: needs an f32 input and an output of the same shape");
  }
  if (src.strides != Layout::dense(src.dims, src.dtype).strides ||
      dst.strides != Layout::dense(dst.dims, dst.dtype).strides) {
    throw std::invalid_argument("Gelu: input and output must be dense");
  }
  count_ = 1;
  for (const std::int64_t dim : src.dims) count_ *= dim;
  bf16_output_ = dst.dtype == DType::kBF16;
}

void Gelu::execute(const float* src, void* dst) const {
  if (bf16_output_) {
    gelu_to_bf16(src, static_cast<std::uint16_t*>(dst), count_, form_);
  } else {
    gelu(src, static_cast<float*>(dst), count_, form_);
  }
}

const char* Gelu::implementation() const { return simd::kKernelBuild; }

}  // namespace iclbench::ops
