#pragma once
// AVX-512 building blocks shared by the ops' own kernels (attention.cpp, gelu.cpp). Internal to
// src/ops: only included by .cpp files compiled with the target's flags, and only the parts
// under __AVX512F__ / ICLBENCH_SIMD_AVX512 exist on a machine that has them.

#include <cstdint>

// The AVX-512 subsets every AVX-512 CPU since Skylake-SP has (F, DQ for vreduceps, BW and VL for
// 16-bit and 256-bit masked moves): the attention and GELU kernels need all four, and exp2 below
// DQ; the bf16 conversions and the transpose need only F (RowSoftmax's requirement).
#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#if defined(__AVX512F__) && defined(__AVX512DQ__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define ICLBENCH_SIMD_AVX512 1
#endif

namespace iclbench::ops::simd {

// What an op built on the four subsets above reports as its implementation(): which build of
// the op's own kernel runs, the AVX-512 one or the portable fallback.
#if defined(ICLBENCH_SIMD_AVX512)
inline constexpr const char* kKernelBuild = "iclbench:avx512";
#else
inline constexpr const char* kKernelBuild = "iclbench:scalar";
#endif

// Coefficients of 2^f on [0, 1) for Horner's scheme, c0 = 1 so that 2^0 = 1 exactly: the
// minimax polynomial of degree 6 for the relative error (Remez exchange in double, error
// 1.9e-9), rounded to f32. Evaluated with f32 FMAs its largest error, measured on 2^21 points of
// [0, 1), is 1.04 ulp (6.2e-8 relative); ops_test checks the whole exp2 against std::exp2.
inline constexpr float kExp2Poly[7] = {1.0f,          0x1.62e42ap-1f, 0x1.ebfd9ep-3f, 0x1.c685p-5f,
                                       0x1.3d28p-7f,  0x1.461954p-10f, 0x1.c72118p-13f};

#if defined(ICLBENCH_SIMD_AVX512)
// The first min(count, 16) lanes (count >= 0): the mask of a row or column tail.
inline __mmask16 first_lanes(std::int64_t count) {
  return static_cast<__mmask16>(count >= 16 ? 0xFFFF : (1u << count) - 1);
}

// Lane r holds r * stride: 32-bit element offsets of 16 rows `stride` elements apart, for
// gathers and scatters (|stride| < 2^27).
inline __m512i row_offsets(std::int64_t stride) {
  return _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                            _mm512_set1_epi32(static_cast<int>(stride)));
}

// 2^x, lane-wise, for any x: f = x - floor(x) (vreduceps, exact), 2^f by the polynomial, then
// vscalefps multiplies by 2^floor(x). -inf gives exactly 0 (vreduceps returns 0 for infinities
// and vscalefps scales by 2^-inf), +inf gives +inf, NaN stays NaN; results below 2^-126 are
// denormal (flushed to 0 under FTZ) and below 2^-149 are 0.
inline __m512 exp2(__m512 x) {
  const __m512 f = _mm512_reduce_ps(x, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  __m512 p = _mm512_set1_ps(kExp2Poly[6]);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(kExp2Poly[5]));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(kExp2Poly[4]));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(kExp2Poly[3]));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(kExp2Poly[2]));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(kExp2Poly[1]));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(kExp2Poly[0]));
  return _mm512_scalef_ps(p, x);
}

#endif

#if defined(__AVX512F__)
// f32 -> bf16 of 16 values, round to nearest even. With avx512_bf16 one instruction (which also
// flushes denormals to 0); otherwise integer rounding (the same for normal numbers and
// infinities; a NaN stays a NaN).
inline __m256i to_bf16(__m512 values) {
#if defined(__AVX512BF16__)
  return reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(values));
#else
  const __m512i bits = _mm512_castps_si512(values);
  const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  const __m512i rounded = _mm512_add_epi32(bits, _mm512_add_epi32(_mm512_set1_epi32(0x7FFF), odd));
  const __m512i quiet = _mm512_or_si512(bits, _mm512_set1_epi32(0x00400000));
  const __mmask16 nan = _mm512_cmp_ps_mask(values, values, _CMP_UNORD_Q);
  return _mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_mask_mov_epi32(rounded, nan, quiet), 16));
#endif
}

// 16 bf16 values (the low 16 bits of each word of `bits`, or a __m256i) -> f32, exact.
inline __m512 from_bf16(__m256i bits) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16));
}

// In-place transpose of a 16 x 16 matrix of 32-bit values held as 16 rows.
inline void transpose16(__m512 rows[16]) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(rows[i], rows[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(rows[i], rows[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    rows[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
    rows[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
    rows[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    rows[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  // rows[4g + c] now holds, in its 128-bit lane L, column 4L + c of input rows 4g..4g+3; two
  // rounds of 128-bit shuffles gather output row 4L + c from lane L of rows[c], [4 + c], [8 + c],
  // [12 + c].
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm512_shuffle_f32x4(rows[i], rows[i + 4], 0x88);
    t[i + 4] = _mm512_shuffle_f32x4(rows[i], rows[i + 4], 0xDD);
    t[i + 8] = _mm512_shuffle_f32x4(rows[i + 8], rows[i + 12], 0x88);
    t[i + 12] = _mm512_shuffle_f32x4(rows[i + 8], rows[i + 12], 0xDD);
  }
  for (int i = 0; i < 4; ++i) {
    rows[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    rows[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
    rows[i + 4] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0x88);
    rows[i + 12] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0xDD);
  }
}
#endif

}  // namespace iclbench::ops::simd
