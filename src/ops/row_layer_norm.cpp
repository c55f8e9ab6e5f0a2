#include "ops/row_layer_norm.hpp"

#include <bit>
#include <cmath>
#include <stdexcept>

#include "ops/simd_math.hpp"

#if defined(ICLBENCH_SIMD_AVX512)
// GCC 12 flags its own _mm512_reduce_* helpers (`__m256d __Y = __Y;` in avx512fintrin.h), a
// known false positive.
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

namespace iclbench::ops {
namespace {

#if defined(ICLBENCH_SIMD_AVX512)
// One row: mean by 16 lane-wise partial sums, then the variance of x - mean the same way, then
// y = (x - mean) inv gamma + beta handed to `store(k, y, lanes)` 16 values at a time (the last
// call with the tail's lanes). The row is read three times from L1; width 64 is 4 vectors.
template <typename Store>
void normalise_row(const float* x, std::int64_t width, const float* gamma, const float* beta,
                   float epsilon, Store store) {
  const std::int64_t full = width / 16 * 16;
  const __mmask16 tail = simd::first_lanes(width - full);
  __m512 sum = _mm512_setzero_ps();
  for (std::int64_t k = 0; k < full; k += 16) sum = _mm512_add_ps(sum, _mm512_loadu_ps(x + k));
  if (tail) sum = _mm512_add_ps(sum, _mm512_maskz_loadu_ps(tail, x + full));
  const float row_width = static_cast<float>(width);
  const __m512 mean = _mm512_set1_ps(_mm512_reduce_add_ps(sum) / row_width);
  __m512 squares = _mm512_setzero_ps();
  for (std::int64_t k = 0; k < full; k += 16) {
    const __m512 centred = _mm512_sub_ps(_mm512_loadu_ps(x + k), mean);
    squares = _mm512_fmadd_ps(centred, centred, squares);
  }
  if (tail) {
    const __m512 centred = _mm512_maskz_sub_ps(tail, _mm512_maskz_loadu_ps(tail, x + full), mean);
    squares = _mm512_fmadd_ps(centred, centred, squares);
  }
  const float variance = _mm512_reduce_add_ps(squares) / row_width;
  const __m512 inverse = _mm512_set1_ps(1.0f / std::sqrt(variance + epsilon));
  auto normalised = [&](std::int64_t k, __mmask16 lanes) {
    const __m512 z = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(lanes, x + k), mean), inverse);
    return _mm512_fmadd_ps(z, _mm512_maskz_loadu_ps(lanes, gamma + k), _mm512_maskz_loadu_ps(lanes, beta + k));
  };
  for (std::int64_t k = 0; k < full; k += 16) store(k, normalised(k, 0xFFFF), __mmask16{0xFFFF});
  if (tail) store(full, normalised(full, tail), tail);
}
#else
// The same definition, one value at a time.
template <typename Store>
void normalise_row(const float* x, std::int64_t width, const float* gamma, const float* beta,
                   float epsilon, Store store) {
  float sum = 0.0f;
  for (std::int64_t k = 0; k < width; ++k) sum += x[k];
  const float mean = sum / static_cast<float>(width);
  float squares = 0.0f;
  for (std::int64_t k = 0; k < width; ++k) squares += (x[k] - mean) * (x[k] - mean);
  const float inverse = 1.0f / std::sqrt(squares / static_cast<float>(width) + epsilon);
  for (std::int64_t k = 0; k < width; ++k) store(k, (x[k] - mean) * inverse * gamma[k] + beta[k]);
}

// f32 -> bf16, round to nearest even.
std::uint16_t to_bf16(float value) {
  const auto bits = std::bit_cast<std::uint32_t>(value);
  return static_cast<std::uint16_t>((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}
#endif

}  // namespace

void layer_norm_rows(const float* src, float* dst, std::int64_t rows, std::int64_t width,
                     const float* gamma, const float* beta, float epsilon) {
  for (std::int64_t r = 0; r < rows; ++r) {
    float* y = dst + r * width;
#if defined(ICLBENCH_SIMD_AVX512)
    normalise_row(src + r * width, width, gamma, beta, epsilon,
                  [y](std::int64_t k, __m512 values, __mmask16 lanes) { _mm512_mask_storeu_ps(y + k, lanes, values); });
#else
    normalise_row(src + r * width, width, gamma, beta, epsilon, [y](std::int64_t k, float value) { y[k] = value; });
#endif
  }
}

void layer_norm_rows_bf16(const float* src, std::uint16_t* dst, std::int64_t rows,
                          std::int64_t width, const float* gamma, const float* beta,
                          float epsilon) {
  for (std::int64_t r = 0; r < rows; ++r) {
    std::uint16_t* y = dst + r * width;
#if defined(ICLBENCH_SIMD_AVX512)
    normalise_row(src + r * width, width, gamma, beta, epsilon, [y](std::int64_t k, __m512 values, __mmask16 lanes) {
      _mm256_mask_storeu_epi16(y + k, lanes, simd::to_bf16(values));
    });
#else
    normalise_row(src + r * width, width, gamma, beta, epsilon,
                  [y](std::int64_t k, float value) { y[k] = to_bf16(value); });
#endif
  }
}

RowLayerNorm::RowLayerNorm(const Layout& src, const Layout& dst, std::span<const float> gamma,
                           std::span<const float> beta, float epsilon)
    : epsilon_(epsilon), gamma_(gamma.begin(), gamma.end()), beta_(beta.begin(), beta.end()) {
  if (src.dims.size() != 2 || src.dims != dst.dims || src.dtype != DType::kF32 ||
      (dst.dtype != DType::kF32 && dst.dtype != DType::kBF16)) {
    throw std::invalid_argument("RowLayerNorm: needs f32 rows [rows, width] and an f32 or bf16 output of the same shape");
  }
  if (src.strides != Layout::dense(src.dims, src.dtype).strides ||
      dst.strides != Layout::dense(dst.dims, dst.dtype).strides) {
    throw std::invalid_argument("RowLayerNorm: rows and output must be dense");
  }
  rows_ = src.dims[0];
  width_ = src.dims[1];
  if (width_ < 1 || std::ssize(gamma_) != width_ || std::ssize(beta_) != width_) {
    throw std::invalid_argument("RowLayerNorm: gamma and beta need one value per column");
  }
  bf16_output_ = dst.dtype == DType::kBF16;
}

void RowLayerNorm::execute(const float* src, void* dst) const {
  if (bf16_output_) {
    layer_norm_rows_bf16(src, static_cast<std::uint16_t*>(dst), rows_, width_, gamma_.data(), beta_.data(), epsilon_);
  } else {
    layer_norm_rows(src, static_cast<float*>(dst), rows_, width_, gamma_.data(), beta_.data(), epsilon_);
  }
}

const char* RowLayerNorm::implementation() const {
#if defined(ICLBENCH_SIMD_AVX512)
  return "iclbench:avx512";
#else
  return "iclbench:scalar";
#endif
}

}  // namespace iclbench::ops
