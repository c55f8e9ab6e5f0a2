#include "ops/linear_attention.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "ops/simd_math.hpp"

namespace iclbench::ops {
namespace {

void check(bool condition, const std::string& what) {
  if (!condition) throw std::invalid_argument("LinearAttention: " + what);
}

// The key rows' interleaved partial sums, combined in order: ((s0 + s1) + s2) + s3.
template <typename T>
T combine_lanes(const T (&partial)[LinearAttention::kRowLanes]) {
  T sum = partial[0];
  for (std::int64_t lane = 1; lane < LinearAttention::kRowLanes; ++lane) sum = sum + partial[lane];
  return sum;
}

}  // namespace

HeadColumns HeadColumns::packed(std::int64_t row_stride, std::int64_t heads, std::int64_t width,
                                std::int64_t first) {
  HeadColumns columns;
  columns.row_stride = row_stride;
  for (std::int64_t h = 0; h < heads; ++h) columns.head_column.push_back(first + h * width);
  return columns;
}

LinearAttention::LinearAttention(LinearAttentionShape shape) : shape_(std::move(shape)) {
  const LinearAttentionShape& s = shape_;
  check(s.heads > 0 && s.qk_dim > 0 && s.v_dim > 0, "nonpositive H, dk or dv");
  for (const HeadColumns* view : {&s.queries, &s.keys, &s.values}) {
    check(static_cast<std::int64_t>(view->head_column.size()) == s.heads, "head list is not [H]");
  }
  check(static_cast<std::int64_t>(s.out_column.size()) == s.heads * s.v_dim,
        "output columns are not [H dv]");
}

std::int64_t LinearAttention::key_block_rows(std::int64_t key_rows) const {
  const std::int64_t block = shape_.key_block_rows;
  return block > 0 && block < key_rows ? block : std::max<std::int64_t>(key_rows, 1);
}

void LinearAttention::combine_key_blocks(const float* block_sums, std::int64_t blocks,
                                         float* product) const {
  const std::int64_t size = product_size();
  for (std::int64_t e = 0; e < size; ++e) {
    float sum = blocks > 0 ? block_sums[e] : 0.0f;
    for (std::int64_t block = 1; block < blocks; ++block) sum = sum + block_sums[block * size + e];
    product[e] = sum * shape_.scale;
  }
}

#if defined(ICLBENCH_SIMD_AVX512)

namespace {

// One block's unscaled sum over `rows` key rows of K[., a0 .. a0 + 16) V[., b0 .. b0 + width),
// in kRowLanes interleaved partial sums combined in order: sum[b] holds column b0 + b.
void block_sum_vectors(const float* k_head, std::int64_t k_stride, const float* v_head,
                       std::int64_t v_stride, __mmask16 lanes, std::int64_t width,
                       std::int64_t rows, __m512 (&sum)[LinearAttention::kMaxValueWidth]) {
  constexpr std::int64_t kLanes = LinearAttention::kRowLanes;
  __m512 acc[kLanes][LinearAttention::kMaxValueWidth];
  for (auto& lane : acc)
    for (__m512& value : lane) value = _mm512_setzero_ps();
  auto add_row = [&](std::int64_t i, std::int64_t lane) {
    const __m512 k = _mm512_maskz_loadu_ps(lanes, k_head + i * k_stride);
    const float* v = v_head + i * v_stride;
    for (std::int64_t b = 0; b < width; ++b) {
      acc[lane][b] = _mm512_fmadd_ps(k, _mm512_set1_ps(v[b]), acc[lane][b]);
    }
  };
  std::int64_t i = 0;
  for (; i + kLanes <= rows; i += kLanes) {
    for (std::int64_t lane = 0; lane < kLanes; ++lane) add_row(i + lane, lane);
  }
  for (std::int64_t lane = 0; i < rows; ++i, ++lane) add_row(i, lane);
  for (std::int64_t b = 0; b < width; ++b) {
    sum[b] = acc[0][b];
    for (std::int64_t lane = 1; lane < kLanes; ++lane) sum[b] = _mm512_add_ps(sum[b], acc[lane][b]);
  }
}

// out [H, dv, dk] = the sum over `key_rows` rows of K^T V in blocks of `block` rows, the block
// sums added in order, then times s.scale when `scaled`.
void blocked_sums(const LinearAttentionShape& s, const float* keys, const float* values,
                  std::int64_t key_rows, std::int64_t block, bool scaled, float* out) {
  const std::int64_t dk = s.qk_dim, dv = s.v_dim;
  const std::int64_t k_stride = s.keys.row_stride, v_stride = s.values.row_stride;
  const __m512 scale = _mm512_set1_ps(s.scale);
  for (std::int64_t h = 0; h < s.heads; ++h) {
    const float* k_head = keys + s.keys.head_column[static_cast<std::size_t>(h)];
    const float* v_head = values + s.values.head_column[static_cast<std::size_t>(h)];
    float* m_head = out + h * dv * dk;
    for (std::int64_t a0 = 0; a0 < dk; a0 += 16) {
      const __mmask16 lanes = simd::first_lanes(dk - a0);
      for (std::int64_t b0 = 0; b0 < dv; b0 += LinearAttention::kMaxValueWidth) {
        const std::int64_t width = std::min(LinearAttention::kMaxValueWidth, dv - b0);
        __m512 total[LinearAttention::kMaxValueWidth], sum[LinearAttention::kMaxValueWidth];
        for (__m512& value : total) value = _mm512_setzero_ps();
        for (std::int64_t first = 0; first < key_rows; first += block) {
          block_sum_vectors(k_head + first * k_stride + a0, k_stride,
                            v_head + first * v_stride + b0, v_stride, lanes, width,
                            std::min(block, key_rows - first), sum);
          for (std::int64_t b = 0; b < width; ++b) {
            total[b] = first == 0 ? sum[b] : _mm512_add_ps(total[b], sum[b]);
          }
        }
        for (std::int64_t b = 0; b < width; ++b) {
          _mm512_mask_storeu_ps(m_head + (b0 + b) * dk + a0, lanes,
                                scaled ? _mm512_mul_ps(total[b], scale) : total[b]);
        }
      }
    }
  }
}

}  // namespace

void LinearAttention::keys_times_values(const float* keys, const float* values,
                                        std::int64_t key_rows, float* product) const {
  blocked_sums(shape_, keys, values, key_rows, key_block_rows(key_rows), true, product);
}

void LinearAttention::key_block_sum(const float* keys, const float* values, std::int64_t rows,
                                    float* block_sum) const {
  blocked_sums(shape_, keys, values, rows, std::max<std::int64_t>(rows, 1), false, block_sum);
}

namespace {

// Lane sums of 16 vectors at once: out lane r = sum of the 16 lanes of v[r], by a fixed tree
// (pairs of lanes, then pairs of those, then across the 128-bit quarters): 45 shuffles and adds
// for 16 rows where 16 horizontal reductions take about twice that. Every lane passes 4
// additions.
__m512 sum_lanes16(const __m512 v[16]) {
  __m512 pairs[8];  // per 128-bit quarter q: [r_2i(0+2), r_2i+1(0+2), r_2i(1+3), r_2i+1(1+3)]
  for (int i = 0; i < 8; ++i) {
    pairs[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]),
                             _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
  }
  __m512 quads[4];  // per quarter: the quarter's sum of rows 4i .. 4i + 3
  for (int i = 0; i < 4; ++i) {
    quads[i] = _mm512_add_ps(_mm512_shuffle_ps(pairs[2 * i], pairs[2 * i + 1], 0x44),
                             _mm512_shuffle_ps(pairs[2 * i], pairs[2 * i + 1], 0xEE));
  }
  __m512 halves[2];  // rows 8i..8i+7: quarters 0+1 and 2+3 of rows 8i..8i+3, then of 8i+4..8i+7
  for (int i = 0; i < 2; ++i) {
    halves[i] = _mm512_add_ps(_mm512_shuffle_f32x4(quads[2 * i], quads[2 * i + 1], 0x88),
                              _mm512_shuffle_f32x4(quads[2 * i], quads[2 * i + 1], 0xDD));
  }
  return _mm512_add_ps(_mm512_shuffle_f32x4(halves[0], halves[1], 0x88),
                       _mm512_shuffle_f32x4(halves[0], halves[1], 0xDD));
}

}  // namespace

void LinearAttention::queries_times_product(const float* queries, std::int64_t rows,
                                            const float* product, float* out) const {
  const LinearAttentionShape& s = shape_;
  const std::int64_t dk = s.qk_dim, dv = s.v_dim;
  const std::int64_t q_stride = s.queries.row_stride;
  alignas(64) float sums[16];
  for (std::int64_t r0 = 0; r0 < rows; r0 += 16) {
    const std::int64_t count = std::min<std::int64_t>(16, rows - r0);
    for (std::int64_t h = 0; h < s.heads; ++h) {
      const float* q_head =
          queries + r0 * q_stride + s.queries.head_column[static_cast<std::size_t>(h)];
      for (std::int64_t b = 0; b < dv; ++b) {
        const float* m = product + (h * dv + b) * dk;
        // Fixed trip counts keep the 16 accumulators in registers; rows past `count` load
        // nothing (mask 0) and sum to 0.
        __m512 acc[16];
#pragma GCC unroll 16
        for (int r = 0; r < 16; ++r) acc[r] = _mm512_setzero_ps();
        for (std::int64_t a0 = 0; a0 < dk; a0 += 16) {
          const __mmask16 lanes = simd::first_lanes(dk - a0);
          const __m512 m_chunk = _mm512_maskz_loadu_ps(lanes, m + a0);
#pragma GCC unroll 16
          for (int r = 0; r < 16; ++r) {
            const __mmask16 valid = r < count ? lanes : static_cast<__mmask16>(0);
            acc[r] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(valid, q_head + r * q_stride + a0),
                                     m_chunk, acc[r]);
          }
        }
        _mm512_store_ps(sums, sum_lanes16(acc));
        const std::int64_t column = s.out_column[static_cast<std::size_t>(h * dv + b)];
        float* o = out + r0 * s.out_stride + column;
        if (s.accumulate) {
          for (std::int64_t r = 0; r < count; ++r) o[r * s.out_stride] += sums[r];
        } else {
          for (std::int64_t r = 0; r < count; ++r) o[r * s.out_stride] = sums[r];
        }
      }
    }
  }
}

#else

// Portable twin of the kernels above: the same partial sums in the same order (without fused
// multiply-adds, so the last bits may differ).
void LinearAttention::key_block_sum(const float* keys, const float* values, std::int64_t rows,
                                    float* block_sum) const {
  const LinearAttentionShape& s = shape_;
  const std::int64_t dk = s.qk_dim, dv = s.v_dim;
  for (std::int64_t h = 0; h < s.heads; ++h) {
    const float* k_head = keys + s.keys.head_column[static_cast<std::size_t>(h)];
    const float* v_head = values + s.values.head_column[static_cast<std::size_t>(h)];
    for (std::int64_t b = 0; b < dv; ++b) {
      for (std::int64_t a = 0; a < dk; ++a) {
        float partial[kRowLanes] = {};
        for (std::int64_t i = 0; i < rows; ++i) {
          partial[i % kRowLanes] +=
              k_head[i * s.keys.row_stride + a] * v_head[i * s.values.row_stride + b];
        }
        block_sum[(h * dv + b) * dk + a] = combine_lanes(partial);
      }
    }
  }
}

void LinearAttention::keys_times_values(const float* keys, const float* values,
                                        std::int64_t key_rows, float* product) const {
  const std::int64_t block = key_block_rows(key_rows);
  const std::int64_t blocks = (key_rows + block - 1) / block;
  std::vector<float> sums(static_cast<std::size_t>(std::max<std::int64_t>(blocks, 1) * product_size()));
  for (std::int64_t b = 0; b < blocks; ++b) {
    const std::int64_t first = b * block;
    key_block_sum(keys + first * shape_.keys.row_stride, values + first * shape_.values.row_stride,
                  std::min(block, key_rows - first), sums.data() + b * product_size());
  }
  combine_key_blocks(sums.data(), blocks, product);
}

void LinearAttention::queries_times_product(const float* queries, std::int64_t rows,
                                            const float* product, float* out) const {
  const LinearAttentionShape& s = shape_;
  const std::int64_t dk = s.qk_dim, dv = s.v_dim;
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t h = 0; h < s.heads; ++h) {
      const float* q =
          queries + r * s.queries.row_stride + s.queries.head_column[static_cast<std::size_t>(h)];
      for (std::int64_t b = 0; b < dv; ++b) {
        float value = 0.0f;
        for (std::int64_t a = 0; a < dk; ++a) value += q[a] * product[(h * dv + b) * dk + a];
        float& target = out[r * s.out_stride + s.out_column[static_cast<std::size_t>(h * dv + b)]];
        target = s.accumulate ? target + value : value;
      }
    }
  }
}

#endif

}  // namespace iclbench::ops
