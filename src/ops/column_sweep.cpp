#include "ops/column_sweep.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "ops/simd_math.hpp"

namespace iclbench::ops {
namespace {

void check(bool condition, const std::string& what) {
  if (!condition) throw std::invalid_argument("ColumnSweep: " + what);
}

}  // namespace

ColumnSweep::ColumnSweep(const LinearAttention& attention, const std::optional<SmallMlp>& mlp,
                         std::int64_t width, bool hoist_invariant_units)
    : attention_(attention), mlp_(mlp), position_(static_cast<std::size_t>(width), -1) {
  const LinearAttentionShape& s = attention_.shape();
  check(s.accumulate && s.out_stride == width, "O is not added into x's rows");
  for (const HeadColumns* view : {&s.queries, &s.keys, &s.values}) {
    check(view->row_stride == width, "a view's row stride is not the width");
  }
  std::vector<bool> live(static_cast<std::size_t>(width), false), written = live;
  auto mark = [&](std::int64_t slot, bool writes) {
    check(slot >= 0 && slot < width, "slot out of range");
    live[static_cast<std::size_t>(slot)] = true;
    if (writes) written[static_cast<std::size_t>(slot)] = true;
  };
  for (std::int64_t h = 0; h < s.heads; ++h) {
    const auto head = static_cast<std::size_t>(h);
    for (std::int64_t a = 0; a < s.qk_dim; ++a) {
      mark(s.queries.head_column[head] + a, false);
      mark(s.keys.head_column[head] + a, false);
    }
    for (std::int64_t b = 0; b < s.v_dim; ++b) mark(s.values.head_column[head] + b, false);
  }
  for (std::int64_t slot : s.out_column) mark(slot, true);
  if (mlp_) {
    for (std::int64_t slot : mlp_->weights().inputs) mark(slot, false);
    for (const SmallMlp::Output& output : mlp_->weights().outputs) mark(output.column, true);
  }
  for (std::int64_t slot = 0; slot < width; ++slot) {
    if (!live[static_cast<std::size_t>(slot)]) continue;
    position_[static_cast<std::size_t>(slot)] = static_cast<std::int64_t>(slots_.size());
    if (written[static_cast<std::size_t>(slot)]) written_.push_back(static_cast<std::int64_t>(slots_.size()));
    slots_.push_back(slot);
  }
  // The MLP's loop-invariant parts (SmallMlp::invariant_prefixes: leading terms on slots neither
  // O nor the MLP writes), each in a column after the live slots', computed by gather.
  if (mlp_ && hoist_invariant_units) {
    const std::vector<std::int64_t> prefix = mlp_->invariant_prefixes(written);
    std::vector<std::int64_t> hoist_column(prefix.size(), -1);
    auto next = static_cast<std::int64_t>(slots_.size());
    for (std::size_t j = 0; j < prefix.size(); ++j) {
      if (prefix[j] > 0) hoist_column[j] = next++;
    }
    mlp_->hoist(prefix, std::move(hoist_column));
  }
  // Slots in ascending order: a head's consecutive slots are consecutive columns.
  auto column = [&](std::int64_t slot) { return position_[static_cast<std::size_t>(slot)]; };
  for (std::int64_t h = 0; h < s.heads; ++h) {
    const auto head = static_cast<std::size_t>(h);
    query_column_.push_back(column(s.queries.head_column[head]));
    key_column_.push_back(column(s.keys.head_column[head]));
    value_column_.push_back(column(s.values.head_column[head]));
  }
  for (std::int64_t slot : s.out_column) out_column_.push_back(column(slot));
}

void ColumnSweep::gather(const float* x, std::int64_t rows, float* columns,
                         std::int64_t stride) const {
  const std::int64_t width = static_cast<std::int64_t>(position_.size());
  const std::int64_t padded = (rows + 15) / 16 * 16;
  for (std::size_t c = 0; c < slots_.size(); ++c) {
    float* column = columns + static_cast<std::int64_t>(c) * stride;
    const float* source = x + slots_[c];
    for (std::int64_t r = 0; r < rows; ++r) column[r] = source[r * width];
    std::fill(column + rows, column + padded, 0.0f);
  }
  if (mlp_) mlp_->precompute_columns(columns, stride, rows, position_);
}

void ColumnSweep::scatter(const float* columns, std::int64_t stride, std::int64_t rows,
                          float* x) const {
  const std::int64_t width = static_cast<std::int64_t>(position_.size());
  for (std::int64_t c : written_) {
    const float* column = columns + c * stride;
    float* target = x + slots_[static_cast<std::size_t>(c)];
    for (std::int64_t r = 0; r < rows; ++r) target[r * width] = column[r];
  }
}

#if defined(ICLBENCH_SIMD_AVX512)

// GCC 12's casts and extracts of 512-bit registers start from _mm256_undefined_pd() and, once
// inlined, -Wuninitialized reports that as a use of an uninitialized value (a false positive:
// every lane read is defined).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace {

// The 16 lanes' sum by the fixed tree of the header: lanes l and l + 8, then + 4, + 2, + 1.
[[gnu::always_inline]] inline float sum_lanes(__m512 v) {
  const __m256 eight = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  const __m128 four = _mm_add_ps(_mm256_castps256_ps128(eight), _mm256_extractf128_ps(eight, 1));
  const __m128 two = _mm_add_ps(four, _mm_movehl_ps(four, four));
  return _mm_cvtss_f32(_mm_add_ss(two, _mm_shuffle_ps(two, two, 1)));
}

// out[a] = sum over key rows i < key_rows of k[a * stride + i] v[i], for a < count (<= 16), in
// the header's order. kFull: count is 16 (then no column test at all, and the 16 accumulators
// stay in registers).
template <bool kFull>
void block_sum_columns(const float* k, const float* v, std::int64_t stride,
                       std::int64_t key_rows, std::int64_t count, float* out) {
  __m512 acc[16];
#pragma GCC unroll 16
  for (int a = 0; a < 16; ++a) acc[a] = _mm512_setzero_ps();
  const std::int64_t whole = key_rows / 16;
  for (std::int64_t g = 0; g < whole; ++g) {
    const __m512 value = _mm512_loadu_ps(v + 16 * g);
#pragma GCC unroll 16
    for (int a = 0; a < 16; ++a) {
      if (kFull || a < count) {
        acc[a] = _mm512_fmadd_ps(_mm512_loadu_ps(k + a * stride + 16 * g), value, acc[a]);
      }
    }
  }
  if (const __mmask16 rows = simd::first_lanes(key_rows - 16 * whole)) {
    // Rows past the keys leave the accumulators as they are (not even 0 times them: a query
    // row's values may be anything).
    const __m512 value = _mm512_maskz_loadu_ps(rows, v + 16 * whole);
#pragma GCC unroll 16
    for (int a = 0; a < 16; ++a) {
      if (kFull || a < count) {
        acc[a] = _mm512_mask3_fmadd_ps(_mm512_maskz_loadu_ps(rows, k + a * stride + 16 * whole),
                                       value, acc[a], rows);
      }
    }
  }
#pragma GCC unroll 16
  for (int a = 0; a < 16; ++a) {
    if (kFull || a < count) out[a] = sum_lanes(acc[a]);
  }
}

// The same for any count <= 16: the fixed-width kernel when the chunk is whole.
void block_sum_chunk(const float* k, const float* v, std::int64_t stride, std::int64_t key_rows,
                     std::int64_t count, float* out) {
  if (count == 16) {
    block_sum_columns<true>(k, v, stride, key_rows, count, out);
  } else {
    block_sum_columns<false>(k, v, stride, key_rows, count, out);
  }
}

// out[16 g + lane] += sum over a < dk of q[a * stride + 16 g + lane] m[a] for g < groups (<= 16),
// one fused multiply-add chain per row in order of a. kFull: groups is 16.
template <bool kFull>
void attend_columns(const float* q, const float* m, std::int64_t dk, std::int64_t stride,
                    std::int64_t groups, float* out) {
  __m512 acc[16];
#pragma GCC unroll 16
  for (int g = 0; g < 16; ++g) acc[g] = _mm512_setzero_ps();
  for (std::int64_t a = 0; a < dk; ++a) {
    const __m512 weight = _mm512_set1_ps(m[a]);
    const float* column = q + a * stride;
#pragma GCC unroll 16
    for (int g = 0; g < 16; ++g) {
      if (kFull || g < groups) {
        acc[g] = _mm512_fmadd_ps(_mm512_loadu_ps(column + 16 * g), weight, acc[g]);
      }
    }
  }
#pragma GCC unroll 16
  for (int g = 0; g < 16; ++g) {
    if (kFull || g < groups) {
      _mm512_storeu_ps(out + 16 * g, _mm512_add_ps(_mm512_loadu_ps(out + 16 * g), acc[g]));
    }
  }
}

}  // namespace

void ColumnSweep::attend_and_mlp(float* columns, std::int64_t stride, std::int64_t rows,
                                 const float* product) const {
  const LinearAttentionShape& s = attention_.shape();
  const std::int64_t dk = s.qk_dim, dv = s.v_dim;
  const std::int64_t groups = (rows + 15) / 16;
  // Up to 16 groups (256 rows) per trip: 16 independent chains of fused multiply-adds, one
  // broadcast of M per column.
  for (std::int64_t g0 = 0; g0 < groups; g0 += 16) {
    const std::int64_t trip = std::min<std::int64_t>(16, groups - g0);
    for (std::int64_t h = 0; h < s.heads; ++h) {
      const float* q = columns + query_column_[static_cast<std::size_t>(h)] * stride + 16 * g0;
      for (std::int64_t b = 0; b < dv; ++b) {
        const std::int64_t column = out_column_[static_cast<std::size_t>(h * dv + b)];
        const float* m = product + (h * dv + b) * dk;
        float* out = columns + column * stride + 16 * g0;
        if (trip == 16) {
          attend_columns<true>(q, m, dk, stride, trip, out);
        } else {
          attend_columns<false>(q, m, dk, stride, trip, out);
        }
      }
    }
  }
  if (mlp_) mlp_->execute_columns(columns, stride, rows, position_);
}

#pragma GCC diagnostic pop

#else

// Portable twin of the kernels above: the same sums in the same order (without fused
// multiply-adds, so the last bits may differ).
namespace {

void block_sum_chunk(const float* k, const float* v, std::int64_t stride, std::int64_t key_rows,
                     std::int64_t count, float* out) {
  for (std::int64_t a = 0; a < count; ++a) {
    const float* column = k + a * stride;
    float lane[16] = {};
    for (std::int64_t i = 0; i < key_rows; ++i) lane[i % 16] += column[i] * v[i];
    for (int l = 0; l < 8; ++l) lane[l] += lane[l + 8];
    for (int l = 0; l < 4; ++l) lane[l] += lane[l + 4];
    for (int l = 0; l < 2; ++l) lane[l] += lane[l + 2];
    out[a] = lane[0] + lane[1];
  }
}

}  // namespace

void ColumnSweep::attend_and_mlp(float* columns, std::int64_t stride, std::int64_t rows,
                                 const float* product) const {
  const LinearAttentionShape& s = attention_.shape();
  const std::int64_t dk = s.qk_dim, dv = s.v_dim;
  const std::int64_t padded = (rows + 15) / 16 * 16;
  for (std::int64_t h = 0; h < s.heads; ++h) {
    const auto head = static_cast<std::size_t>(h);
    for (std::int64_t b = 0; b < dv; ++b) {
      const float* m = product + (h * dv + b) * dk;
      float* out = columns + out_column_[static_cast<std::size_t>(h * dv + b)] * stride;
      for (std::int64_t r = 0; r < padded; ++r) {
        float sum = 0.0f;
        for (std::int64_t a = 0; a < dk; ++a) sum += columns[(query_column_[head] + a) * stride + r] * m[a];
        out[r] += sum;
      }
    }
  }
  if (mlp_) mlp_->execute_columns(columns, stride, rows, position_);
}

#endif

// block_sum [H, dv, dk]: each head's and value column's K^T V in chunks of 16 key columns.
void ColumnSweep::key_block_sum(const float* columns, std::int64_t stride, std::int64_t key_rows,
                                float* block_sum) const {
  const LinearAttentionShape& s = attention_.shape();
  const std::int64_t dk = s.qk_dim, dv = s.v_dim;
  for (std::int64_t h = 0; h < s.heads; ++h) {
    const auto head = static_cast<std::size_t>(h);
    for (std::int64_t b = 0; b < dv; ++b) {
      const float* v = columns + (value_column_[head] + b) * stride;
      for (std::int64_t a0 = 0; a0 < dk; a0 += 16) {
        block_sum_chunk(columns + (key_column_[head] + a0) * stride, v, stride, key_rows,
                        std::min<std::int64_t>(16, dk - a0), block_sum + (h * dv + b) * dk + a0);
      }
    }
  }
}

}  // namespace iclbench::ops
