#include "ops/gelu.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <numbers>
#include <stdexcept>

#include "ops/simd_math.hpp"

namespace iclbench::ops {
namespace {

// The erf form's tail t(a) = a Phi(-a), a >= 0: on interval k = floor(4 a) of [0, 8), the
// degree-5 polynomial sum_j kTail[j][k] f^j in f = 4 a - k; 0 on [7.75, 8) and beyond. Fitted and
// checked by scripts/fit_gelu_tail.py (largest f32 error 1.234 u a, u = 2^-24, over every f32 a
// in [2^-30, 8)). 32 intervals are the 32 lanes of two registers, so that each coefficient is one
// vpermt2ps away.
alignas(64) constexpr float kTail[6][32] = {
    {0.0f, 0x1.9aecbap-4f, 0x1.3bf144p-3f, 0x1.5c198p-3f, 0x1.44ed0cp-3f, 0x1.0e76a2p-3f,
     0x1.9a76a4p-4f, 0x1.1f24ep-4f, 0x1.74bcf8p-5f, 0x1.c2a49ap-6f, 0x1.fcb22p-7f, 0x1.0c832ep-7f,
     0x1.096698p-8f, 0x1.eb9b5cp-10f, 0x1.aae05p-11f, 0x1.5babcp-12f, 0x1.09ad78p-13f, 0x1.7d1014p-15f,
     0x1.008402p-16f, 0x1.443666p-18f, 0x1.80bca6p-20f, 0x1.acb3cp-22f, 0x1.c093acp-24f, 0x1.b8ca9cp-26f,
     0x1.96c91ep-28f, 0x1.60932ep-30f, 0x1.1f03eap-32f, 0x1.b6e718p-35f, 0x1.3b342p-37f, 0x1.a93f7ap-40f,
     0x1.0d71aep-42f, 0.0f},
    {0x1.fffffep-4f, 0x1.37effep-4f, 0x1.0f5eb6p-5f, 0x1.960602p-13f, -0x1.55425cp-6f, -0x1.f66bc6p-6f,
     -0x1.050e8p-5f, -0x1.c65a78p-6f, -0x1.5d1c1p-6f, -0x1.e4e208p-7f, -0x1.341c4ap-7f, -0x1.68e656p-8f,
     -0x1.876f8p-9f, -0x1.8a5af4p-10f, -0x1.71da6ep-11f, -0x1.436fa8p-12f, -0x1.080e1ep-13f, -0x1.92e3c6p-15f,
     -0x1.1f6ceep-16f, -0x1.7fbbd4p-18f, -0x1.df99e2p-20f, -0x1.18af6p-21f, -0x1.33c9c8p-23f, -0x1.3c4762p-25f,
     -0x1.30a22cp-27f, -0x1.13153ap-29f, -0x1.d1d6ap-32f, -0x1.71e9cp-34f, -0x1.1383ecp-36f, -0x1.80fec8p-39f,
     -0x1.f8b682p-42f, 0.0f},
    {-0x1.98835cp-6f, -0x1.7f9098p-6f, -0x1.3b7316p-6f, -0x1.bb49d6p-7f, -0x1.ef998ep-8f, -0x1.476338p-9f,
     0x1.0927dap-10f, 0x1.7777cp-9f, 0x1.ba4f2cp-9f, 0x1.8e2af8p-9f, 0x1.3127f2p-9f, 0x1.9e67e2p-10f,
     0x1.fc4e9ep-11f, 0x1.1ca7dcp-11f, 0x1.2519p-12f, 0x1.16b408p-13f, 0x1.eb0c98p-15f, 0x1.91b6eap-16f,
     0x1.31b76cp-17f, 0x1.b177bcp-19f, 0x1.1e947ap-20f, 0x1.61b228p-22f, 0x1.97c022p-24f, 0x1.b75746p-26f,
     0x1.baa984p-28f, 0x1.a13f9ep-30f, 0x1.7011dep-32f, 0x1.2ff61ap-34f, 0x1.d61f58p-37f, 0x1.54879ep-39f,
     0x1.ce2c6p-42f, 0.0f},
    {-0x1.ef4076p-20f, 0x1.0325aap-10f, 0x1.c28f78p-10f, 0x1.093c58p-9f, 0x1.f04cep-10f, 0x1.7c99f4p-10f,
     0x1.d107e6p-11f, 0x1.82eedap-12f, -0x1.01e6fep-21f, -0x1.a0237p-13f, -0x1.0e09cp-12f, -0x1.e7981ap-13f,
     -0x1.6b8932p-13f, -0x1.d8dc36p-14f, -0x1.13099ap-14f, -0x1.221456p-15f, -0x1.17b75ep-16f, -0x1.eff3c8p-18f,
     -0x1.95ceccp-19f, -0x1.3359cep-20f, -0x1.afdfacp-22f, -0x1.19f202p-23f, -0x1.56895p-25f, -0x1.83a432p-27f,
     -0x1.99019p-29f, -0x1.92a858p-31f, -0x1.721b96p-33f, -0x1.3dcb5p-35f, -0x1.fe10b2p-38f, -0x1.7eb9b2p-40f,
     -0x1.0c9b8ap-42f, 0.0f},
    {0x1.15ca14p-12f, 0x1.e1c68ap-13f, 0x1.179f1p-13f, 0x1.00277cp-16f, -0x1.6129aap-14f, -0x1.2317f6p-13f,
     -0x1.2e58c6p-13f, -0x1.de37c6p-14f, -0x1.233688p-14f, -0x1.dcb368p-16f, -0x1.f58c2p-22f, 0x1.bb3cbep-17f,
     0x1.11fc7p-16f, 0x1.d062fcp-17f, 0x1.42a6d4p-17f, 0x1.8513fap-18f, 0x1.a1e0dep-19f, 0x1.95818ap-20f,
     0x1.66b2c2p-21f, 0x1.22f402p-22f, 0x1.b2a53p-24f, 0x1.2be2d4p-25f, 0x1.7f292p-27f, 0x1.c62458p-29f,
     0x1.f4151p-31f, 0x1.001d6cp-32f, 0x1.e88be8p-35f, 0x1.b23faep-37f, 0x1.67fb82p-39f, 0x1.167d32p-41f,
     0x1.925578p-44f, 0.0f},
    {-0x1.91a9dp-18f, -0x1.38568p-16f, -0x1.829398p-16f, -0x1.496ac4p-16f, -0x1.715f44p-17f, -0x1.71c54ep-20f,
     0x1.7e3386p-18f, 0x1.23779ep-17f, 0x1.106e5p-17f, 0x1.78efecp-18f, 0x1.796cfcp-19f, 0x1.776c68p-21f,
     -0x1.e1e234p-22f, -0x1.b98c0ep-21f, -0x1.97a406p-21f, -0x1.224946p-21f, -0x1.5e272ep-22f, -0x1.7356c4p-23f,
     -0x1.60ee4ap-24f, -0x1.300ccep-25f, -0x1.de612cp-27f, -0x1.5969ccp-28f, -0x1.cb8b8cp-30f, -0x1.1a6dd8p-31f,
     -0x1.4170eep-33f, -0x1.5357f4p-35f, -0x1.4cc5bap-37f, -0x1.2f7cb6p-39f, -0x1.01a9aep-41f, -0x1.97a474p-44f,
     -0x1.2ca986p-46f, 0.0f},
};

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

// kTail's coefficients, two registers (intervals 0-15 and 16-31) per power of f.
struct TailTable {
  __m512 low[6], high[6];
  TailTable() {
    for (int j = 0; j < 6; ++j) {
      low[j] = _mm512_load_ps(kTail[j]);
      high[j] = _mm512_load_ps(kTail[j] + 16);
    }
  }
};

__m512 gelu_erf(__m512 x, const TailTable& table) {
  // a = |x| below 8 (a NaN stays: vminps returns its second operand); 4 a is exact, its integer
  // part the interval (a NaN's is 0x80000000, interval 0) and its fraction f (vreduceps, exact).
  const __m512 a = _mm512_min_ps(_mm512_set1_ps(0x1.fffffep+2f), _mm512_abs_ps(x));
  const __m512 scaled = _mm512_mul_ps(a, _mm512_set1_ps(4.0f));
  const __m512i k = _mm512_cvttps_epi32(scaled);
  const __m512 f = _mm512_reduce_ps(scaled, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  auto coefficient = [&](int j) { return _mm512_permutex2var_ps(table.low[j], k, table.high[j]); };
  __m512 tail = coefficient(5);
  for (int j = 4; j >= 0; --j) tail = _mm512_fmadd_ps(tail, f, coefficient(j));
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
  const TailTable table;
  auto apply = [form, &table](__m512 x) { return form == GeluForm::kErf ? gelu_erf(x, table) : gelu_tanh(x); };
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
