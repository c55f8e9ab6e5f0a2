#include "ops/attention.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "ops/row_softmax.hpp"
#include "ops/simd_math.hpp"

#if defined(ICLBENCH_SIMD_AVX512)
// GCC 12 flags its own _mm512_reduce_* helpers (`__m256d __Y = __Y;` in avx512fintrin.h), a
// known false positive.
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

namespace iclbench::ops {
namespace {

constexpr std::int64_t kLanes = 16;  // query rows per vector: one per lane
// Query rows are processed in blocks of two vectors (32 rows), or one for a last block of at most
// 16: with two, each broadcast key or value element feeds two FMAs, which halves the loads per
// FMA. On this machine (Zen 5) an FMA whose operand is a broadcast load runs at ~0.85 of the FMA
// peak with one block and ~0.95 with two (measured on the score and mix loops alone).
constexpr int kMaxBlocks = 2;
constexpr std::int64_t kKeyGroup = 8;  // keys scored together: 8 x 2 accumulators
// A key block's scores, [keys][32] f32: 20 KB, which leaves room in the 48 KB L1 for the keys,
// values and accumulators; 160 keys so that the encoder's 129 (and BERT's 128) are one block.
constexpr std::int64_t kScoreFloats = 160 * kMaxBlocks * kLanes;
// The running maximum (log2 units) is raised only when a block's maximum exceeds it by more than
// this: the weights 2^(s - max) then stay <= 2^8, and a sum of up to 2^110 of them is finite.
constexpr float kRescaleThreshold = 8.0f;
constexpr float kLog2e = 1.44269504088896341f;
// A last block of at most this many rows puts keys in the lanes instead (attend_rows): a block of
// 16 lanes costs as much for 1 row as for 16, which for the encoder's 129 rows was 13% of the time.
constexpr std::int64_t kFewRows = 4;

// Keys row t sees.
std::int64_t visible_keys(const AttentionShape& s, std::int64_t t) {
  return s.mask == AttentionMask::kIcl ? s.keys : std::min(s.keys, t + 1);
}

#if defined(ICLBENCH_SIMD_AVX512)

std::int64_t round_up(std::int64_t value, std::int64_t multiple) { return (value + multiple - 1) / multiple * multiple; }

// The keys a block of query rows reads: [0, end); keys >= diagonal are hidden from some of its
// rows (causal: key k is visible to row t iff k <= t; t0 is the block's first row).
struct BlockKeys {
  std::int64_t t0 = 0, end = 0, diagonal = 0;
};
BlockKeys block_keys(const AttentionShape& s, std::int64_t first_row, std::int64_t r0, std::int64_t rows) {
  const std::int64_t t0 = first_row + r0;
  if (s.mask == AttentionMask::kIcl) return {t0, s.keys, s.keys};
  return {t0, std::min(s.keys, t0 + rows), std::min(s.keys, t0 + 1)};
}

std::size_t aligned_bytes(std::int64_t bytes) { return static_cast<std::size_t>(round_up(bytes, 64)); }

// Byte offsets of the scratchpad's areas (sized for blocks of 32 rows):
//   query_t   Q^T of a block: f32 [dk][32], or bf16 column pairs [dk / 2][32] u32 and, for odd
//             dk, the last column in f32 [32];
//   scores    a key block's scores, then weights, f32 [keys][32];
//   pairs     (bf16) the weights as bf16 key pairs, u32 [keys / 2][32];
//   out_t     O^T accumulators, f32 [dv][32];
//   values    (bf16) one head's values as key pairs (v_2i,j, v_2i+1,j), u32 [ceil(n / 2)][dv];
//   query_rows  (few rows) the queries in f32 [<= 4][dk]; query_t then holds K^T of 16 keys
//             [dk][16], scores the rows' scores [<= 4][keys] and out_t their outputs [<= 4][dv].
struct ScratchLayout {
  std::size_t query_t = 0, query_last = 0, scores = 0, pairs = 0, out_t = 0, values = 0, query_rows = 0, total = 0;
};
ScratchLayout scratch_layout(const AttentionShape& s) {
  constexpr std::int64_t width = kMaxBlocks * kLanes;
  ScratchLayout o;
  const bool bf16 = s.dtype == DType::kBF16;
  o.query_last = aligned_bytes(std::max((bf16 ? s.qk_dim / 2 : s.qk_dim) * width, s.qk_dim * kLanes) * 4);
  o.scores = o.query_last + aligned_bytes(bf16 ? width * 4 : 0);
  o.pairs = o.scores + aligned_bytes(kScoreFloats * 4);
  o.out_t = o.pairs + aligned_bytes(bf16 ? kScoreFloats / 2 * 4 : 0);
  o.values = o.out_t + aligned_bytes(s.v_dim * width * 4);
  o.query_rows = o.values + aligned_bytes(bf16 ? (s.keys + 1) / 2 * s.v_dim * 4 : 0);
  o.total = o.query_rows + aligned_bytes(kFewRows * s.qk_dim * 4);
  return o;
}

std::uint32_t load_word(const void* pointer) {
  std::uint32_t word;
  std::memcpy(&word, pointer, sizeof(word));
  return word;
}
float bf16_to_f32(std::uint16_t bits) { return std::bit_cast<float>(static_cast<std::uint32_t>(bits) << 16); }
__mmask16 first_lanes(std::int64_t count) { return static_cast<__mmask16>((1u << std::clamp<std::int64_t>(count, 0, 16)) - 1u); }

// acc + a.even * b.even + a.odd * b.odd over bf16 pairs, f32 accumulation. Without avx512_bf16
// the same arithmetic in f32 FMAs (a product of two bf16 values is exact in f32, so each step
// is one rounded addition, as in vdpbf16ps).
__m512 dot_pairs(__m512 acc, __m512i a, __m512i b) {
#if defined(__AVX512BF16__)
  return _mm512_dpbf16_ps(acc, reinterpret_cast<__m512bh>(a), reinterpret_cast<__m512bh>(b));
#else
  const __m512i high = _mm512_set1_epi32(static_cast<int>(0xFFFF0000u));
  acc = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(a, high)),
                        _mm512_castsi512_ps(_mm512_and_si512(b, high)), acc);
  return _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(a, 16)),
                         _mm512_castsi512_ps(_mm512_slli_epi32(b, 16)), acc);
#endif
}

// Word 2i of the result is word i of `low`'s 16 bf16 values, word 2i + 1 is word i of `high`'s:
// 16 key pairs side by side, as vdpbf16ps reads them.
__m512i interleave_bf16(__m256i low, __m256i high) {
  alignas(64) static constexpr std::uint16_t kIndex[32] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
                                                           8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
  const __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(low), high, 1);
  return _mm512_permutexvar_epi16(_mm512_load_si512(kIndex), both);
}

// Accumulator chains per output vector: FMA latency (4 cycles) times its throughput (2 per
// cycle) needs 8 independent chains; a tail group or a narrow value chunk with fewer outputs
// splits its sum over U chains.
constexpr int chains(int outputs) { return outputs >= 8 ? 1 : (outputs >= 4 ? 2 : (outputs >= 2 ? 4 : 8)); }

// The two precisions' arithmetic, for the score and mix kernels below. f32 multiplies one column
// per step; bf16 two (a pair of bf16 values in each 32-bit lane, through vdpbf16ps). Keys are
// broadcast from the key rows; values from the value rows (f32) or from the values as key pairs
// (bf16, pair_values()); Q^T and the weights are vectors of 16 lanes in the scratchpad.
struct F32Math {
  using Key = float;
  using Value = float;
  using Lanes = __m512;
  static constexpr std::int64_t kColumns = 1;
  static Lanes load(const float* p) { return _mm512_loadu_ps(p); }
  static Lanes key(const float* p) { return _mm512_set1_ps(*p); }
  static Lanes value(const float* p) { return _mm512_set1_ps(*p); }
  static __m512 multiply_add(__m512 acc, Lanes a, Lanes b) { return _mm512_fmadd_ps(a, b, acc); }
};
struct Bf16Math {
  using Key = std::uint16_t;
  using Value = std::uint32_t;
  using Lanes = __m512i;
  static constexpr std::int64_t kColumns = 2;
  static Lanes load(const float* p) { return _mm512_loadu_si512(p); }
  static Lanes key(const std::uint16_t* p) { return _mm512_set1_epi32(static_cast<int>(load_word(p))); }
  static Lanes value(const std::uint32_t* p) { return _mm512_set1_epi32(static_cast<int>(*p)); }
  static __m512 multiply_add(__m512 acc, Lanes a, Lanes b) { return dot_pairs(acc, a, b); }
};

// ---- Scores: S^T[g] = sum_d K[k + g, d] Q^T[d] for G <= 8 keys and RB blocks of 16 rows. ----
// query_t: [dk / kColumns][RB 16]; bf16 adds an odd last column from query_last [RB 16] in f32
// and multiplies by `scale` (f32 has it folded into Q^T).
template <typename Math, int RB, int G>
[[gnu::always_inline]] inline void score_group(const float* query_t, const float* query_last, std::int64_t dk,
                                               const typename Math::Key* key, std::int64_t key_stride, float scale,
                                               float* scores) {
  constexpr int U = chains(RB * G);
  constexpr std::int64_t width = RB * kLanes;
  __m512 acc[U][G][RB];
  for (int u = 0; u < U; ++u) {
    for (int g = 0; g < G; ++g) {
      for (int b = 0; b < RB; ++b) acc[u][g][b] = _mm512_setzero_ps();
    }
  }
  auto step = [&](int u, std::int64_t i) {
    typename Math::Lanes q[RB];
    for (int b = 0; b < RB; ++b) q[b] = Math::load(query_t + i * width + b * kLanes);
    for (int g = 0; g < G; ++g) {
      const typename Math::Lanes k = Math::key(key + g * key_stride + i * Math::kColumns);
      for (int b = 0; b < RB; ++b) acc[u][g][b] = Math::multiply_add(acc[u][g][b], k, q[b]);
    }
  };
  const std::int64_t steps = dk / Math::kColumns;
  std::int64_t i = 0;
  for (; i + U <= steps; i += U) {
    for (int u = 0; u < U; ++u) step(u, i + u);
  }
  for (; i < steps; ++i) step(0, i);
  if constexpr (Math::kColumns == 2) {
    if (dk % 2 != 0) {
      for (int g = 0; g < G; ++g) {
        const __m512 k = _mm512_set1_ps(bf16_to_f32(key[g * key_stride + dk - 1]));
        for (int b = 0; b < RB; ++b) {
          acc[0][g][b] = _mm512_fmadd_ps(k, _mm512_loadu_ps(query_last + b * kLanes), acc[0][g][b]);
        }
      }
    }
  }
  for (int g = 0; g < G; ++g) {
    for (int b = 0; b < RB; ++b) {
      for (int u = 1; u < U; ++u) acc[0][g][b] = _mm512_add_ps(acc[0][g][b], acc[u][g][b]);
      if constexpr (Math::kColumns == 2) acc[0][g][b] = _mm512_mul_ps(acc[0][g][b], _mm512_set1_ps(scale));
      _mm512_storeu_ps(scores + g * width + b * kLanes, acc[0][g][b]);
    }
  }
}

// ---- Mix: O^T[w] += sum_k P^T[k] V[k, j0 + w] for a chunk of W value columns. ----
// weights: [steps][RB 16] (f32 weights, or bf16 weights as key pairs); value: the chunk's column 0
// of step 0, steps `value_stride` apart (value rows, or the values as key pairs).
template <typename Math, int RB, int W>
void mix_chunk(const float* weights, std::int64_t steps, const typename Math::Value* value, std::int64_t value_stride,
               float* out_t) {
  constexpr int U = chains(RB * W);
  constexpr std::int64_t width = RB * kLanes;
  __m512 acc[U][W][RB];
  for (int w = 0; w < W; ++w) {
    for (int b = 0; b < RB; ++b) {
      acc[0][w][b] = _mm512_loadu_ps(out_t + w * width + b * kLanes);
      for (int u = 1; u < U; ++u) acc[u][w][b] = _mm512_setzero_ps();
    }
  }
  auto step = [&](int u, std::int64_t k) {
    typename Math::Lanes p[RB];
    for (int b = 0; b < RB; ++b) p[b] = Math::load(weights + k * width + b * kLanes);
    const typename Math::Value* v = value + k * value_stride;
    for (int w = 0; w < W; ++w) {
      const typename Math::Lanes x = Math::value(v + w);
      for (int b = 0; b < RB; ++b) acc[u][w][b] = Math::multiply_add(acc[u][w][b], p[b], x);
    }
  };
  std::int64_t k = 0;
  for (; k + U <= steps; k += U) {
    for (int u = 0; u < U; ++u) step(u, k + u);
  }
  for (; k < steps; ++k) step(0, k);
  for (int w = 0; w < W; ++w) {
    for (int b = 0; b < RB; ++b) {
      for (int u = 1; u < U; ++u) acc[0][w][b] = _mm512_add_ps(acc[0][w][b], acc[u][w][b]);
      _mm512_storeu_ps(out_t + w * width + b * kLanes, acc[0][w][b]);
    }
  }
}

// Value columns per mix chunk: 16 accumulators (RB x W) plus the weights in registers.
template <int RB>
constexpr std::int64_t kChunk = 16 / RB;

// Function tables indexed by G - 1 (the tail group of a key block) or W - 1.
template <typename Math, int RB, int G>
void score_tail(const float* query_t, const float* query_last, std::int64_t dk, const typename Math::Key* key,
                std::int64_t key_stride, float scale, float* scores) {
  score_group<Math, RB, G>(query_t, query_last, dk, key, key_stride, scale, scores);
}
template <typename Math, int RB, std::size_t... I>
constexpr auto score_tails(std::index_sequence<I...>) {
  return std::array{&score_tail<Math, RB, static_cast<int>(I) + 1>...};
}
template <typename Math, int RB, std::size_t... I>
constexpr auto mix_chunks(std::index_sequence<I...>) {
  return std::array{&mix_chunk<Math, RB, static_cast<int>(I) + 1>...};
}
template <typename Math, int RB>
constexpr auto kScoreTail = score_tails<Math, RB>(std::make_index_sequence<kKeyGroup - 1>{});
template <typename Math, int RB>
constexpr auto kMix = mix_chunks<Math, RB>(std::make_index_sequence<kChunk<RB>>{});

// The scores of `count` keys from `key` on, [count][RB 16]: groups of 8, then one of the rest.
template <typename Math, int RB>
void score_block(const float* query_t, const float* query_last, std::int64_t dk, const typename Math::Key* key,
                 std::int64_t key_stride, float scale, std::int64_t count, float* scores) {
  constexpr std::int64_t width = RB * kLanes;
  std::int64_t g = 0;
  for (; g + kKeyGroup <= count; g += kKeyGroup) {
    score_group<Math, RB, kKeyGroup>(query_t, query_last, dk, key + g * key_stride, key_stride, scale, scores + g * width);
  }
  if (g < count) {
    kScoreTail<Math, RB>[count - g - 1](query_t, query_last, dk, key + g * key_stride, key_stride, scale,
                                        scores + g * width);
  }
}

// The Q^T of one 16-row block of one head into column `b` of query_t [dk][RB 16]: lanes >=
// `lanes` are 0. f32 is multiplied by `scale` (folded here once instead of once per score).
void transpose_queries_f32(const float* q, std::int64_t stride, std::int64_t lanes, std::int64_t dk, float scale,
                           float* query_t, std::int64_t width) {
  for (std::int64_t d0 = 0; d0 < dk; d0 += kLanes) {
    const std::int64_t count = std::min(kLanes, dk - d0);
    __m512 rows[kLanes];
    for (std::int64_t i = 0; i < kLanes; ++i) {
      rows[i] = i < lanes ? _mm512_maskz_loadu_ps(first_lanes(count), q + i * stride + d0) : _mm512_setzero_ps();
    }
    simd::transpose16(rows);
    for (std::int64_t x = 0; x < count; ++x) {
      _mm512_storeu_ps(query_t + (d0 + x) * width, _mm512_mul_ps(rows[x], _mm512_set1_ps(scale)));
    }
  }
}
void transpose_queries_bf16(const std::uint16_t* q, std::int64_t stride, std::int64_t lanes, std::int64_t dk,
                            std::uint32_t* query_t, float* query_last, std::int64_t width) {
  const std::int64_t pairs = dk / 2;
  for (std::int64_t p0 = 0; p0 < pairs; p0 += kLanes) {
    const std::int64_t count = std::min(kLanes, pairs - p0);
    const auto mask = static_cast<__mmask32>((std::uint64_t{1} << (2 * count)) - 1u);
    __m512 rows[kLanes];
    for (std::int64_t i = 0; i < kLanes; ++i) {
      rows[i] = i < lanes ? _mm512_castsi512_ps(_mm512_maskz_loadu_epi16(mask, q + i * stride + 2 * p0))
                          : _mm512_setzero_ps();
    }
    simd::transpose16(rows);
    for (std::int64_t x = 0; x < count; ++x) {
      _mm512_storeu_ps(reinterpret_cast<float*>(query_t + (p0 + x) * width), rows[x]);
    }
  }
  if (dk % 2 != 0) {
    for (std::int64_t i = 0; i < kLanes; ++i) query_last[i] = i < lanes ? bf16_to_f32(q[i * stride + dk - 1]) : 0.0f;
  }
}

// One head's values as key pairs: word (i, j) = (v_2i,j, v_2i+1,j), the second 0 past the last key.
void pair_values(const std::uint16_t* v, std::int64_t stride, std::int64_t keys, std::int64_t dv, std::uint32_t* pairs) {
  for (std::int64_t k = 0; k < keys; k += 2) {
    for (std::int64_t j0 = 0; j0 < dv; j0 += kLanes) {
      const __mmask16 mask = first_lanes(dv - j0);
      const __m256i low = _mm256_maskz_loadu_epi16(mask, v + k * stride + j0);
      const __m256i high =
          k + 1 < keys ? _mm256_maskz_loadu_epi16(mask, v + (k + 1) * stride + j0) : _mm256_setzero_si256();
      _mm512_mask_storeu_epi32(pairs + k / 2 * dv + j0, mask, interleave_bf16(low, high));
    }
  }
}

// The state of one 16-row block's online softmax, lane-wise (log2 units).
struct RunningMax {
  __m512 used = _mm512_set1_ps(-std::numeric_limits<float>::infinity());  // the max the weights are relative to
  __m512 subtracted = _mm512_setzero_ps();  // `used`, or 0 while it is -inf (so that -inf - it stays -inf)
  __m512 sum = _mm512_setzero_ps();         // sum of the weights so far
};

// One 16-row column of a key block, scores[k * width] for k < count: scores -> weights in place;
// updates the running max and sum, and rescales that column of out_t [dv][width] when the max
// is raised.
void softmax_block(float* scores, std::int64_t count, std::int64_t width, RunningMax& state, float* out_t,
                   std::int64_t dv) {
  // Four partial maxima and sums (named, not an array indexed by k % 4: GCC keeps such an array
  // in memory, and the loop then waits on store forwarding).
  const __m512 minus_infinity = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  __m512 top0 = minus_infinity, top1 = minus_infinity, top2 = minus_infinity, top3 = minus_infinity;
  std::int64_t k = 0;
  for (; k + 4 <= count; k += 4) {
    top0 = _mm512_max_ps(top0, _mm512_loadu_ps(scores + k * width));
    top1 = _mm512_max_ps(top1, _mm512_loadu_ps(scores + (k + 1) * width));
    top2 = _mm512_max_ps(top2, _mm512_loadu_ps(scores + (k + 2) * width));
    top3 = _mm512_max_ps(top3, _mm512_loadu_ps(scores + (k + 3) * width));
  }
  for (; k < count; ++k) top0 = _mm512_max_ps(top0, _mm512_loadu_ps(scores + k * width));
  const __m512 block_max = _mm512_max_ps(_mm512_max_ps(top0, top1), _mm512_max_ps(top2, top3));
  const __mmask16 raise =
      _mm512_cmp_ps_mask(block_max, _mm512_add_ps(state.used, _mm512_set1_ps(kRescaleThreshold)), _CMP_GT_OQ);
  if (raise) {
    const __m512 used = _mm512_mask_mov_ps(state.used, raise, block_max);
    // Old weights were relative to the old max: multiply them by 2^(old - new) (0 if the old
    // max was -inf: they were all exactly 0).
    const __m512 factor = _mm512_mask_mov_ps(_mm512_set1_ps(1.0f), raise, simd::exp2(_mm512_sub_ps(state.used, used)));
    state.sum = _mm512_mul_ps(state.sum, factor);
    for (std::int64_t j = 0; j < dv; ++j) {
      _mm512_storeu_ps(out_t + j * width, _mm512_mul_ps(_mm512_loadu_ps(out_t + j * width), factor));
    }
    state.used = used;
    const __mmask16 unset = _mm512_cmp_ps_mask(used, minus_infinity, _CMP_EQ_OQ);
    state.subtracted = _mm512_mask_mov_ps(used, unset, _mm512_setzero_ps());
  }
  const __m512 subtracted = state.subtracted;
  __m512 sum0 = _mm512_setzero_ps(), sum1 = _mm512_setzero_ps(), sum2 = _mm512_setzero_ps(), sum3 = _mm512_setzero_ps();
  auto weight = [&](std::int64_t key) {
    const __m512 p = simd::exp2(_mm512_sub_ps(_mm512_loadu_ps(scores + key * width), subtracted));
    _mm512_storeu_ps(scores + key * width, p);
    return p;
  };
  for (k = 0; k + 4 <= count; k += 4) {
    sum0 = _mm512_add_ps(sum0, weight(k));
    sum1 = _mm512_add_ps(sum1, weight(k + 1));
    sum2 = _mm512_add_ps(sum2, weight(k + 2));
    sum3 = _mm512_add_ps(sum3, weight(k + 3));
  }
  for (; k < count; ++k) sum0 = _mm512_add_ps(sum0, weight(k));
  state.sum = _mm512_add_ps(state.sum, _mm512_add_ps(_mm512_add_ps(sum0, sum1), _mm512_add_ps(sum2, sum3)));
}

// Output rows [lanes, dv] (this head's columns) = column b of O^T [dv][width], times `factor`,
// in the output's dtype.
template <bool kBf16>
void store_output(const float* out_t, std::int64_t width, std::int64_t dv, __m512 factor, std::int64_t lanes, void* out,
                  std::int64_t stride) {
  for (std::int64_t j0 = 0; j0 < dv; j0 += kLanes) {
    const std::int64_t count = std::min(kLanes, dv - j0);
    __m512 rows[kLanes];
    for (std::int64_t x = 0; x < kLanes; ++x) {
      rows[x] = x < count ? _mm512_mul_ps(_mm512_loadu_ps(out_t + (j0 + x) * width), factor) : _mm512_setzero_ps();
    }
    simd::transpose16(rows);
    const __mmask16 mask = first_lanes(count);
    for (std::int64_t i = 0; i < lanes; ++i) {
      if constexpr (kBf16) {
        _mm256_mask_storeu_epi16(static_cast<std::uint16_t*>(out) + i * stride + j0, mask, simd::to_bf16(rows[i]));
      } else {
        _mm512_mask_storeu_ps(static_cast<float*>(out) + i * stride + j0, mask, rows[i]);
      }
    }
  }
}

// The operands of one head and the scratch areas, as the block routine reads them.
template <bool kBf16>
struct Head {
  using Element = std::conditional_t<kBf16, std::uint16_t, float>;
  const AttentionShape* shape;
  const Element *queries, *keys, *values;  // this head's column 0 of row 0
  Element* out;
  float score_scale;                        // scale, times log2(e) for softmax
  float* query_t;
  float* query_last;
  float* scores;
  std::uint32_t* pairs;
  float* out_t;
  const std::uint32_t* value_pairs;
  float* query_rows;
};

// Rows [r0, r0 + rows) of one head, rows <= RB 16.
template <bool kBf16, int RB>
void attend_block(const Head<kBf16>& head, std::int64_t first_row, std::int64_t r0, std::int64_t rows) {
  constexpr std::int64_t width = RB * kLanes;
  const AttentionShape& s = *head.shape;
  const std::int64_t dk = s.qk_dim, dv = s.v_dim;
  const bool softmax = s.weights == AttentionWeights::kSoftmax;
  const float hidden = softmax ? -std::numeric_limits<float>::infinity() : 0.0f;
  const BlockKeys range = block_keys(s, first_row, r0, rows);
  auto lanes_of = [&](int b) { return std::clamp<std::int64_t>(rows - b * kLanes, 0, kLanes); };
  for (int b = 0; b < RB; ++b) {
    const auto* q = head.queries + (r0 + b * kLanes) * s.query_stride;
    if constexpr (kBf16) {
      transpose_queries_bf16(q, s.query_stride, lanes_of(b), dk, reinterpret_cast<std::uint32_t*>(head.query_t) + b * kLanes,
                             head.query_last + b * kLanes, width);
    } else {
      transpose_queries_f32(q, s.query_stride, lanes_of(b), dk, head.score_scale, head.query_t + b * kLanes, width);
    }
  }
  std::fill_n(head.out_t, dv * width, 0.0f);
  RunningMax state[RB];
  // Key blocks of equal length, so that no block is a short remainder.
  const std::int64_t max_block = kScoreFloats / width;
  const std::int64_t blocks = std::max<std::int64_t>(1, (range.end + max_block - 1) / max_block);
  const std::int64_t block_length = round_up((range.end + blocks - 1) / blocks, 2);
  for (std::int64_t k0 = 0; k0 < range.end; k0 += block_length) {
    const std::int64_t count = std::min(block_length, range.end - k0);
    using Math = std::conditional_t<kBf16, Bf16Math, F32Math>;
    score_block<Math, RB>(head.query_t, head.query_last, dk, head.keys + k0 * s.key_stride, s.key_stride,
                          head.score_scale, count, head.scores);
    // Causal: key k is hidden from the rows t < k.
    for (std::int64_t k = std::max(k0, range.diagonal); k < k0 + count; ++k) {
      for (int b = 0; b < RB; ++b) {
        const __mmask16 hidden_lanes = first_lanes(k - (range.t0 + b * kLanes));
        float* row = head.scores + (k - k0) * width + b * kLanes;
        _mm512_storeu_ps(row, _mm512_mask_mov_ps(_mm512_loadu_ps(row), hidden_lanes, _mm512_set1_ps(hidden)));
      }
    }
    if (softmax) {
      for (int b = 0; b < RB; ++b) softmax_block(head.scores + b * kLanes, count, width, state[b], head.out_t + b * kLanes, dv);
    } else if (s.weights == AttentionWeights::kRelu) {
      for (std::int64_t i = 0; i < count * RB; ++i) {
        // max(0, x) keeps a NaN x (vmaxps returns its second operand when one is NaN).
        float* x = head.scores + i * kLanes;
        _mm512_storeu_ps(x, _mm512_max_ps(_mm512_setzero_ps(), _mm512_loadu_ps(x)));
      }
    }
    if constexpr (kBf16) {
      const std::int64_t pair_count = (count + 1) / 2;
      for (std::int64_t p = 0; p < pair_count; ++p) {
        for (int b = 0; b < RB; ++b) {
          const __m512 low = _mm512_loadu_ps(head.scores + 2 * p * width + b * kLanes);
          const __m512 high =
              2 * p + 1 < count ? _mm512_loadu_ps(head.scores + (2 * p + 1) * width + b * kLanes) : _mm512_setzero_ps();
          _mm512_storeu_si512(head.pairs + p * width + b * kLanes, interleave_bf16(simd::to_bf16(low), simd::to_bf16(high)));
        }
      }
      for (std::int64_t j0 = 0; j0 < dv; j0 += kChunk<RB>) {
        kMix<Bf16Math, RB>[std::min(kChunk<RB>, dv - j0) - 1](reinterpret_cast<const float*>(head.pairs), pair_count,
                                                              head.value_pairs + k0 / 2 * dv + j0, dv,
                                                              head.out_t + j0 * width);
      }
    } else {
      for (std::int64_t j0 = 0; j0 < dv; j0 += kChunk<RB>) {
        kMix<F32Math, RB>[std::min(kChunk<RB>, dv - j0) - 1](head.scores, count, head.values + k0 * s.value_stride + j0,
                                                             s.value_stride, head.out_t + j0 * width);
      }
    }
  }
  // Per lane: softmax divides by the sum of weights, mean_over_keys by the visible keys.
  for (int b = 0; b < RB; ++b) {
    __m512 factor = _mm512_set1_ps(1.0f);
    if (softmax) {
      factor = _mm512_div_ps(factor, state[b].sum);
    } else if (s.mean_over_keys) {
      alignas(64) float inverse[kLanes];
      for (std::int64_t i = 0; i < kLanes; ++i) {
        inverse[i] = 1.0f / static_cast<float>(visible_keys(s, range.t0 + b * kLanes + i));
      }
      factor = _mm512_load_ps(inverse);
    }
    store_output<kBf16>(head.out_t + b * kLanes, width, dv, factor, lanes_of(b),
                        head.out + (r0 + b * kLanes) * s.out_stride, s.out_stride);
  }
}

// 16 values from `p` (those in `mask`, the others 0) in f32.
template <bool kBf16>
__m512 load_f32(const std::conditional_t<kBf16, std::uint16_t, float>* p, __mmask16 mask) {
  if constexpr (kBf16) {
    return simd::from_bf16(_mm256_maskz_loadu_epi16(mask, p));
  } else {
    return _mm512_maskz_loadu_ps(mask, p);
  }
}

// Rows [r0, r0 + M) of one head, M <= kFewRows, with 16 keys in the lanes: K^T of 16 keys is built
// once (one 16 x 16 transpose per 16 columns) and serves all M rows; a row's softmax is over its
// key vectors (one horizontal max per key block); the mix broadcasts each weight over a vector of
// 16 value columns. Same arithmetic as attend_block: f32 dot products, exp2, the same lazily
// raised maximum, and bf16 weights rounded to bf16 before the mix.
template <bool kBf16, int M>
void attend_rows(const Head<kBf16>& head, std::int64_t first_row, std::int64_t r0) {
  const AttentionShape& s = *head.shape;
  const std::int64_t dk = s.qk_dim, dv = s.v_dim;
  const bool softmax = s.weights == AttentionWeights::kSoftmax;
  const __m512 hidden = _mm512_set1_ps(softmax ? -std::numeric_limits<float>::infinity() : 0.0f);
  const BlockKeys range = block_keys(s, first_row, r0, M);
  float* key_t = head.query_t;
  float* out_rows = head.out_t;
  for (int i = 0; i < M; ++i) {
    for (std::int64_t d = 0; d < dk; ++d) {
      const auto* q = head.queries + (r0 + i) * s.query_stride + d;
      if constexpr (kBf16) {
        head.query_rows[i * dk + d] = bf16_to_f32(*q);
      } else {
        head.query_rows[i * dk + d] = *q;
      }
    }
  }
  std::fill_n(out_rows, M * dv, 0.0f);
  float used[M], subtracted[M];
  __m512 sum[M];
  for (int i = 0; i < M; ++i) {
    used[i] = -std::numeric_limits<float>::infinity();
    subtracted[i] = 0.0f;
    sum[i] = _mm512_setzero_ps();
  }
  constexpr std::int64_t kMaxBlock = kScoreFloats / kFewRows / kLanes * kLanes;
  const std::int64_t blocks = std::max<std::int64_t>(1, (range.end + kMaxBlock - 1) / kMaxBlock);
  const std::int64_t block_length = round_up((range.end + blocks - 1) / blocks, kLanes);
  for (std::int64_t k0 = 0; k0 < range.end; k0 += block_length) {
    const std::int64_t count = std::min(block_length, range.end - k0);
    // Scores, [M][block_length], lanes past `count` hidden.
    for (std::int64_t c0 = 0; c0 < count; c0 += kLanes) {
      const std::int64_t keys_here = std::min(kLanes, count - c0);
      for (std::int64_t d0 = 0; d0 < dk; d0 += kLanes) {
        const std::int64_t columns = std::min(kLanes, dk - d0);
        __m512 rows[kLanes];
        for (std::int64_t x = 0; x < kLanes; ++x) {
          rows[x] = x < keys_here ? load_f32<kBf16>(head.keys + (k0 + c0 + x) * s.key_stride + d0, first_lanes(columns))
                                  : _mm512_setzero_ps();
        }
        simd::transpose16(rows);
        for (std::int64_t x = 0; x < columns; ++x) _mm512_storeu_ps(key_t + (d0 + x) * kLanes, rows[x]);
      }
      constexpr int U = chains(M);
      __m512 acc[U][M];
      for (int u = 0; u < U; ++u) {
        for (int i = 0; i < M; ++i) acc[u][i] = _mm512_setzero_ps();
      }
      auto step = [&](int u, std::int64_t d) {
        const __m512 k = _mm512_loadu_ps(key_t + d * kLanes);
        for (int i = 0; i < M; ++i) acc[u][i] = _mm512_fmadd_ps(_mm512_set1_ps(head.query_rows[i * dk + d]), k, acc[u][i]);
      };
      std::int64_t d = 0;
      for (; d + U <= dk; d += U) {
        for (int u = 0; u < U; ++u) step(u, d + u);
      }
      for (; d < dk; ++d) step(0, d);
      for (int i = 0; i < M; ++i) {
        for (int u = 1; u < U; ++u) acc[0][i] = _mm512_add_ps(acc[0][i], acc[u][i]);
        // Causal: key k0 + c0 + x is visible to row t iff k <= t.
        const std::int64_t visible_here = s.mask == AttentionMask::kIcl
                                              ? keys_here
                                              : std::min(keys_here, range.t0 + i + 1 - (k0 + c0));
        const __m512 scores = _mm512_mul_ps(acc[0][i], _mm512_set1_ps(head.score_scale));
        _mm512_storeu_ps(head.scores + i * block_length + c0,
                         _mm512_mask_mov_ps(hidden, first_lanes(visible_here), scores));
      }
    }
    // Weights, in place.
    const std::int64_t vectors = (count + kLanes - 1) / kLanes;
    for (int i = 0; i < M; ++i) {
      float* row = head.scores + i * block_length;
      if (softmax) {
        __m512 top = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
        for (std::int64_t v = 0; v < vectors; ++v) top = _mm512_max_ps(top, _mm512_loadu_ps(row + v * kLanes));
        const float block_max = _mm512_reduce_max_ps(top);
        if (block_max > used[i] + kRescaleThreshold) {
          // As softmax_block: old weights times 2^(old - new), 0 when the old max was -inf.
          const __m512 factor = simd::exp2(_mm512_set1_ps(used[i] - block_max));
          sum[i] = _mm512_mul_ps(sum[i], factor);
          for (std::int64_t j = 0; j < dv; ++j) out_rows[i * dv + j] *= _mm512_cvtss_f32(factor);
          used[i] = block_max;
          subtracted[i] = block_max == -std::numeric_limits<float>::infinity() ? 0.0f : block_max;
        }
        const __m512 minus = _mm512_set1_ps(subtracted[i]);
        for (std::int64_t v = 0; v < vectors; ++v) {
          const __m512 p = simd::exp2(_mm512_sub_ps(_mm512_loadu_ps(row + v * kLanes), minus));
          sum[i] = _mm512_add_ps(sum[i], p);
          _mm512_storeu_ps(row + v * kLanes, p);
        }
      } else if (s.weights == AttentionWeights::kRelu) {
        for (std::int64_t v = 0; v < vectors; ++v) {
          _mm512_storeu_ps(row + v * kLanes, _mm512_max_ps(_mm512_setzero_ps(), _mm512_loadu_ps(row + v * kLanes)));
        }
      }
      if constexpr (kBf16) {
        for (std::int64_t v = 0; v < vectors; ++v) {
          _mm512_storeu_ps(row + v * kLanes, simd::from_bf16(simd::to_bf16(_mm512_loadu_ps(row + v * kLanes))));
        }
      }
    }
    // Mix: out_rows[i][j0 + 16) += sum_k w_ik V[k0 + k][j0 + 16).
    for (std::int64_t j0 = 0; j0 < dv; j0 += kLanes) {
      const __mmask16 columns = first_lanes(dv - j0);
      constexpr int U = chains(M);
      __m512 acc[U][M];
      for (int i = 0; i < M; ++i) {
        acc[0][i] = _mm512_maskz_loadu_ps(columns, out_rows + i * dv + j0);
        for (int u = 1; u < U; ++u) acc[u][i] = _mm512_setzero_ps();
      }
      auto step = [&](int u, std::int64_t k) {
        const __m512 v = load_f32<kBf16>(head.values + (k0 + k) * s.value_stride + j0, columns);
        for (int i = 0; i < M; ++i) {
          acc[u][i] = _mm512_fmadd_ps(_mm512_set1_ps(head.scores[i * block_length + k]), v, acc[u][i]);
        }
      };
      std::int64_t k = 0;
      for (; k + U <= count; k += U) {
        for (int u = 0; u < U; ++u) step(u, k + u);
      }
      for (; k < count; ++k) step(0, k);
      for (int i = 0; i < M; ++i) {
        for (int u = 1; u < U; ++u) acc[0][i] = _mm512_add_ps(acc[0][i], acc[u][i]);
        _mm512_mask_storeu_ps(out_rows + i * dv + j0, columns, acc[0][i]);
      }
    }
  }
  for (int i = 0; i < M; ++i) {
    float factor = 1.0f;
    if (softmax) {
      factor = 1.0f / _mm512_reduce_add_ps(sum[i]);
    } else if (s.mean_over_keys) {
      factor = 1.0f / static_cast<float>(visible_keys(s, range.t0 + i));
    }
    auto* out = head.out + (r0 + i) * s.out_stride;
    for (std::int64_t j0 = 0; j0 < dv; j0 += kLanes) {
      const __mmask16 columns = first_lanes(dv - j0);
      const __m512 value = _mm512_mul_ps(_mm512_maskz_loadu_ps(columns, out_rows + i * dv + j0), _mm512_set1_ps(factor));
      if constexpr (kBf16) {
        _mm256_mask_storeu_epi16(out + j0, columns, simd::to_bf16(value));
      } else {
        _mm512_mask_storeu_ps(out + j0, columns, value);
      }
    }
  }
}

template <bool kBf16>
void attend(const AttentionShape& s, const ScratchLayout& layout, const void* queries, const void* keys,
            const void* values, void* out, std::int64_t first_row, std::byte* scratch) {
  using Element = typename Head<kBf16>::Element;
  Head<kBf16> head;
  head.shape = &s;
  // Softmax works in log2 units: 2^(s log2 e) = e^s.
  head.score_scale = s.scale * (s.weights == AttentionWeights::kSoftmax ? kLog2e : 1.0f);
  head.query_t = reinterpret_cast<float*>(scratch + layout.query_t);
  head.query_last = reinterpret_cast<float*>(scratch + layout.query_last);
  head.scores = reinterpret_cast<float*>(scratch + layout.scores);
  head.pairs = reinterpret_cast<std::uint32_t*>(scratch + layout.pairs);
  head.out_t = reinterpret_cast<float*>(scratch + layout.out_t);
  auto* value_pairs = reinterpret_cast<std::uint32_t*>(scratch + layout.values);
  head.value_pairs = value_pairs;
  head.query_rows = reinterpret_cast<float*>(scratch + layout.query_rows);
  for (std::int64_t h = 0; h < s.heads; ++h) {
    head.queries = static_cast<const Element*>(queries) + h * s.qk_dim;
    head.keys = static_cast<const Element*>(keys) + h * s.qk_dim;
    head.values = static_cast<const Element*>(values) + h * s.v_dim;
    head.out = static_cast<Element*>(out) + h * s.v_dim;
    if constexpr (kBf16) {
      pair_values(head.values, s.value_stride, block_keys(s, first_row, 0, s.rows).end, s.v_dim, value_pairs);
    }
    for (std::int64_t r0 = 0; r0 < s.rows; r0 += kMaxBlocks * kLanes) {
      const std::int64_t rows = std::min(kMaxBlocks * kLanes, s.rows - r0);
      static_assert(kFewRows == 4);
      switch (rows) {
        case 1: attend_rows<kBf16, 1>(head, first_row, r0); break;
        case 2: attend_rows<kBf16, 2>(head, first_row, r0); break;
        case 3: attend_rows<kBf16, 3>(head, first_row, r0); break;
        case 4: attend_rows<kBf16, 4>(head, first_row, r0); break;
        default:
          if (rows > kLanes) {
            attend_block<kBf16, 2>(head, first_row, r0, rows);
          } else {
            attend_block<kBf16, 1>(head, first_row, r0, rows);
          }
      }
    }
  }
}

#else  // no AVX-512: the same definition, one row at a time.

float load(const void* base, std::int64_t index, bool bf16) {
  if (!bf16) return static_cast<const float*>(base)[index];
  return std::bit_cast<float>(static_cast<std::uint32_t>(static_cast<const std::uint16_t*>(base)[index]) << 16);
}

void attend_scalar(const AttentionShape& s, const void* queries, const void* keys, const void* values, void* out,
                   std::int64_t first_row) {
  const bool bf16 = s.dtype == DType::kBF16;
  std::vector<float> weights(static_cast<std::size_t>(s.keys)), mixed(static_cast<std::size_t>(s.v_dim));
  for (std::int64_t h = 0; h < s.heads; ++h) {
    for (std::int64_t r = 0; r < s.rows; ++r) {
      const std::int64_t visible = visible_keys(s, first_row + r);
      float top = -std::numeric_limits<float>::infinity();
      for (std::int64_t k = 0; k < visible; ++k) {
        float dot = 0.0f;
        for (std::int64_t d = 0; d < s.qk_dim; ++d) {
          dot += load(queries, r * s.query_stride + h * s.qk_dim + d, bf16) * load(keys, k * s.key_stride + h * s.qk_dim + d, bf16);
        }
        float score = s.scale * dot;
        if (s.weights == AttentionWeights::kRelu) score = score > 0.0f || std::isnan(score) ? score : 0.0f;
        weights[static_cast<std::size_t>(k)] = score;
        top = std::fmax(top, score);
      }
      float factor = s.mean_over_keys ? 1.0f / static_cast<float>(visible) : 1.0f;
      if (s.weights == AttentionWeights::kSoftmax) {
        float sum = 0.0f;
        for (std::int64_t k = 0; k < visible; ++k) {
          float& w = weights[static_cast<std::size_t>(k)];
          w = std::isinf(top) && top < 0 ? std::exp(w) : std::exp(w - top);
          sum += w;
        }
        factor = 1.0f / sum;
      }
      std::fill(mixed.begin(), mixed.end(), 0.0f);
      for (std::int64_t k = 0; k < visible; ++k) {
        for (std::int64_t j = 0; j < s.v_dim; ++j) {
          mixed[static_cast<std::size_t>(j)] += weights[static_cast<std::size_t>(k)] * load(values, k * s.value_stride + h * s.v_dim + j, bf16);
        }
      }
      for (std::int64_t j = 0; j < s.v_dim; ++j) {
        const float value = mixed[static_cast<std::size_t>(j)] * factor;
        const std::int64_t index = r * s.out_stride + h * s.v_dim + j;
        if (bf16) {
          const auto bits = std::bit_cast<std::uint32_t>(value);
          static_cast<std::uint16_t*>(out)[index] = static_cast<std::uint16_t>((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
        } else {
          static_cast<float*>(out)[index] = value;
        }
      }
    }
  }
}

#endif

}  // namespace

FusedAttention::FusedAttention(const AttentionShape& shape) : shape_(shape) {
  const AttentionShape& s = shape;
  auto require = [](bool ok, const std::string& message) {
    if (!ok) throw std::invalid_argument("FusedAttention: " + message);
  };
  require(s.heads >= 1 && s.rows >= 1 && s.keys >= 1 && s.qk_dim >= 1 && s.v_dim >= 1,
          "heads, rows, keys, qk_dim and v_dim must be >= 1");
  require(s.query_stride >= s.heads * s.qk_dim && s.key_stride >= s.heads * s.qk_dim,
          "query and key rows must hold heads * qk_dim values");
  require(s.value_stride >= s.heads * s.v_dim && s.out_stride >= s.heads * s.v_dim,
          "value and output rows must hold heads * v_dim values");
  require(std::isfinite(s.scale), "scale must be finite");
  require(!s.mean_over_keys || s.weights != AttentionWeights::kSoftmax,
          "mean_over_keys does not apply to softmax attention (it normalises)");
  scratchpad_bytes_ = scratchpad_bytes_for(s);
}

std::size_t FusedAttention::scratchpad_bytes_for(const AttentionShape& shape) {
#if defined(ICLBENCH_SIMD_AVX512)
  return scratch_layout(shape).total;
#else
  (void)shape;
  return 0;
#endif
}

void FusedAttention::execute(const void* queries, const void* keys, const void* values, void* out,
                             std::int64_t first_row, void* scratchpad) const {
  const FlushDenormals flush;
#if defined(ICLBENCH_SIMD_AVX512)
  const ScratchLayout layout = scratch_layout(shape_);
  auto* scratch = static_cast<std::byte*>(scratchpad);
  if (shape_.dtype == DType::kBF16) {
    attend<true>(shape_, layout, queries, keys, values, out, first_row, scratch);
  } else {
    attend<false>(shape_, layout, queries, keys, values, out, first_row, scratch);
  }
#else
  (void)scratchpad;
  attend_scalar(shape_, queries, keys, values, out, first_row);
#endif
}

const char* FusedAttention::implementation() const {
#if defined(ICLBENCH_SIMD_AVX512) && defined(__AVX512BF16__)
  return "iclbench:avx512_bf16";
#elif defined(ICLBENCH_SIMD_AVX512)
  return "iclbench:avx512";
#else
  return "iclbench:scalar";
#endif
}

}  // namespace iclbench::ops
