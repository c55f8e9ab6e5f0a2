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
// A sum over the row's 16-value vectors, `accumulate(sum, vector, lanes)` adding one vector's
// terms (the tail's missing lanes must add 0), as 16 lane-wise partial sums in 4 accumulators:
// vector j of each block of 4 goes to accumulator j, so the additions form 4 independent chains,
// not one of width / 16 (on BERT-base's rows of 768, a single chain made this kernel slower than
// oneDNN's).
// Then (a0 + a1) + (a2 + a3) and the 16-lane tree: each value passes through at most
// ceil(width / 16) + 6 additions.
template <typename Accumulate>
float row_sum(const float* x, std::int64_t width, Accumulate accumulate) {
  const std::int64_t full = width / 16 * 16;
  constexpr __mmask16 kAll = 0xFFFF;
  // Four named accumulators, never an array indexed at run time (that would live in memory).
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  std::int64_t k = 0;
  for (; k + 64 <= full; k += 64) {
    a0 = accumulate(a0, _mm512_loadu_ps(x + k), kAll);
    a1 = accumulate(a1, _mm512_loadu_ps(x + k + 16), kAll);
    a2 = accumulate(a2, _mm512_loadu_ps(x + k + 32), kAll);
    a3 = accumulate(a3, _mm512_loadu_ps(x + k + 48), kAll);
  }
  // At most 3 whole vectors left, to a0, a1, a2; the tail to a3.
  if (k < full) a0 = accumulate(a0, _mm512_loadu_ps(x + k), kAll);
  if (k + 16 < full) a1 = accumulate(a1, _mm512_loadu_ps(x + k + 16), kAll);
  if (k + 32 < full) a2 = accumulate(a2, _mm512_loadu_ps(x + k + 32), kAll);
  if (full < width) {
    const __mmask16 tail = simd::first_lanes(width - full);
    a3 = accumulate(a3, _mm512_maskz_loadu_ps(tail, x + full), tail);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

// R rows (R <= 4) side by side, each exactly as alone: its mean, then the variance of x - mean
// (row_sum both), then y = (x - mean) inv gamma + beta handed to `store(r, k, y, lanes)` 16
// values at a time (the last call with the tail's lanes). Each row is read three times from L1.
// Why R rows at once: one row's steps wait on each other (two horizontal sums, a square root and
// a division, ~65 cycles at D = 64 against ~20 of work), and the core overlaps the R rows' chains
// when they sit side by side in the instruction stream. Every row goes through the same
// instructions in the same order whatever R, so the results do not depend on how rows are grouped.
template <int R, typename Store>
void normalise_rows(const float* x, std::int64_t width, const float* gamma, const float* beta,
                    float epsilon, Store store) {
  const float row_width = static_cast<float>(width);
  __m512 mean[R], inverse[R];
  for (int r = 0; r < R; ++r) {
    mean[r] = _mm512_set1_ps(row_sum(x + r * width, width, [](__m512 sum, __m512 v, __mmask16) { return _mm512_add_ps(sum, v); }) /
                             row_width);
  }
  for (int r = 0; r < R; ++r) {
    const __m512 m = mean[r];
    const float variance = row_sum(x + r * width, width, [m](__m512 sum, __m512 v, __mmask16 lanes) {
                             const __m512 centred = _mm512_maskz_sub_ps(lanes, v, m);
                             return _mm512_fmadd_ps(centred, centred, sum);
                           }) / row_width;
    inverse[r] = _mm512_set1_ps(1.0f / std::sqrt(variance + epsilon));
  }
  auto normalised = [&](int r, std::int64_t k, __mmask16 lanes) {
    const __m512 z = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(lanes, x + r * width + k), mean[r]), inverse[r]);
    return _mm512_fmadd_ps(z, _mm512_maskz_loadu_ps(lanes, gamma + k), _mm512_maskz_loadu_ps(lanes, beta + k));
  };
  const std::int64_t full = width / 16 * 16;
  for (std::int64_t k = 0; k < full; k += 16) {
    for (int r = 0; r < R; ++r) store(r, k, normalised(r, k, 0xFFFF), __mmask16{0xFFFF});
  }
  if (full < width) {
    const __mmask16 tail = simd::first_lanes(width - full);
    for (int r = 0; r < R; ++r) store(r, full, normalised(r, full, tail), tail);
  }
}

// All rows: in fours, then one at a time. `store_rows(first_row)` gives the store of
// normalise_rows for the rows from first_row on.
template <typename StoreRows>
void normalise_all(const float* src, std::int64_t rows, std::int64_t width, const float* gamma, const float* beta,
                   float epsilon, StoreRows store_rows) {
  std::int64_t r = 0;
  for (; r + 4 <= rows; r += 4) normalise_rows<4>(src + r * width, width, gamma, beta, epsilon, store_rows(r));
  for (; r < rows; ++r) normalise_rows<1>(src + r * width, width, gamma, beta, epsilon, store_rows(r));
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
#if defined(ICLBENCH_SIMD_AVX512)
  normalise_all(src, rows, width, gamma, beta, epsilon, [dst, width](std::int64_t first) {
    float* y = dst + first * width;
    return [y, width](int r, std::int64_t k, __m512 values, __mmask16 lanes) {
      _mm512_mask_storeu_ps(y + r * width + k, lanes, values);
    };
  });
#else
  for (std::int64_t r = 0; r < rows; ++r) {
    float* y = dst + r * width;
    normalise_row(src + r * width, width, gamma, beta, epsilon, [y](std::int64_t k, float value) { y[k] = value; });
  }
#endif
}

void layer_norm_rows_bf16(const float* src, std::uint16_t* dst, std::int64_t rows,
                          std::int64_t width, const float* gamma, const float* beta,
                          float epsilon) {
#if defined(ICLBENCH_SIMD_AVX512)
  normalise_all(src, rows, width, gamma, beta, epsilon, [dst, width](std::int64_t first) {
    std::uint16_t* y = dst + first * width;
    return [y, width](int r, std::int64_t k, __m512 values, __mmask16 lanes) {
      _mm256_mask_storeu_epi16(y + r * width + k, lanes, simd::to_bf16(values));
    };
  });
#else
  for (std::int64_t r = 0; r < rows; ++r) {
    std::uint16_t* y = dst + r * width;
    normalise_row(src + r * width, width, gamma, beta, epsilon,
                  [y](std::int64_t k, float value) { y[k] = to_bf16(value); });
  }
#endif
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

const char* RowLayerNorm::implementation() const { return simd::kKernelBuild; }

}  // namespace iclbench::ops
