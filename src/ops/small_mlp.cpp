#include "ops/small_mlp.hpp"

#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "ops/simd_math.hpp"

namespace iclbench::ops {
namespace {

void check(bool condition, const std::string& what) {
  if (!condition) throw std::invalid_argument("SmallMlp: " + what);
}

}  // namespace

bool SmallMlp::fits(std::int64_t inputs, std::int64_t units, std::int64_t outputs,
                    PostActivation activation) {
  return inputs <= kMaxInputs && units <= kMaxUnits && outputs <= kMaxOutputs &&
         (activation == PostActivation::kNone || activation == PostActivation::kRelu);
}

SmallMlp::SmallMlp(std::int64_t rows, std::int64_t row_stride, std::int64_t width,
                   Weights weights, PostActivation activation)
    : rows_(rows), row_stride_(row_stride), weights_(std::move(weights)), activation_(activation) {
  const Weights& w = weights_;
  const auto inputs = static_cast<std::int64_t>(w.inputs.size());
  const auto units = static_cast<std::int64_t>(w.units.size());
  check(fits(inputs, units, static_cast<std::int64_t>(w.outputs.size()), activation), "more inputs or units than the kernel holds, or an "
                                         "activation it does not have");
  check(rows >= 0 && row_stride >= width && width >= 0, "bad sizes");
  // The gathers address 16 rows from a base by 32-bit offsets.
  check(row_stride < (1 << 26), "row stride too large");
  for (std::int64_t column : w.inputs) check(column >= 0 && column < width, "input out of range");
  for (const Unit& unit : w.units) {
    for (const Term& term : unit.terms) {
      check(term.index >= 0 && term.index < inputs, "unit term out of range");
      up_index_.push_back(static_cast<std::int32_t>(term.index));
      up_weight_.push_back(term.weight);
    }
    unit_end_.push_back(static_cast<std::int64_t>(up_index_.size()));
  }
  for (const Output& output : w.outputs) {
    check(output.column >= 0 && output.column < width, "output out of range");
    for (const Term& term : output.terms) {
      check(term.index >= 0 && term.index < units, "output term out of range");
      down_index_.push_back(static_cast<std::int32_t>(term.index));
      down_weight_.push_back(term.weight);
    }
    output_end_.push_back(static_cast<std::int64_t>(down_index_.size()));
  }
  terms_ = static_cast<std::int64_t>(up_index_.size() + down_index_.size());
  // The columns the kernel touches: when they lie within 4 consecutive ones (that a row holds),
  // it loads and stores them whole instead of gathering.
  std::int64_t first = width, last = -1;
  for (std::int64_t column : w.inputs) first = std::min(first, column), last = std::max(last, column);
  for (const Output& output : w.outputs) {
    first = std::min(first, output.column);
    last = std::max(last, output.column);
  }
  narrow_ = last >= first && last - first < 4 && first + 4 <= row_stride;
  first_column_ = narrow_ ? first : 0;
  for (const Output& output : w.outputs) {
    if (narrow_) output_lanes_ |= static_cast<std::uint8_t>(1u << (output.column - first));
  }
}

#if defined(ICLBENCH_SIMD_AVX512)

namespace {

// In-lane 4 x 4 transpose: with v[i]'s 128-bit lane q holding 4 values of row 4i + q, after it
// v[c]'s lane q holds value c of rows q, 4 + q, 8 + q, 12 + q (element i: row 4i + q). Its own
// inverse.
void transpose_quads(__m512 (&v)[4]) {
  const __m512 t0 = _mm512_unpacklo_ps(v[0], v[1]), t1 = _mm512_unpackhi_ps(v[0], v[1]);
  const __m512 t2 = _mm512_unpacklo_ps(v[2], v[3]), t3 = _mm512_unpackhi_ps(v[2], v[3]);
  auto pd = [](__m512 x) { return _mm512_castps_pd(x); };
  v[0] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(t0), pd(t2)));
  v[1] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(t0), pd(t2)));
  v[2] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(t1), pd(t3)));
  v[3] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(t1), pd(t3)));
}

// Groups of 16 rows per trip through the terms.
constexpr std::int64_t kGroups = 8;

// sum[g] = bias + sum over terms t in [begin, end) of sources[index[t]][g] weight[t]: the bias
// first (the chain starts from it, so no addition of its own), then the terms in order.
[[gnu::always_inline]] inline void bias_plus_terms(const std::int32_t* index, const float* weight,
                                                   std::int64_t begin, std::int64_t end,
                                                   const __m512 (*sources)[kGroups], float bias,
                                                   __m512 (&sum)[kGroups]) {
  // A local accumulator: `sum` might alias `sources` as far as the compiler knows, and would be
  // stored and reloaded at every term.
  __m512 local[kGroups];
  for (__m512& value : local) value = _mm512_set1_ps(bias);
  for (std::int64_t t = begin; t < end; ++t) {
    const __m512* source = sources[index[t]];
    const __m512 w = _mm512_set1_ps(weight[t]);
    for (std::int64_t g = 0; g < kGroups; ++g) local[g] = _mm512_fmadd_ps(source[g], w, local[g]);
  }
  for (std::int64_t g = 0; g < kGroups; ++g) sum[g] = local[g];
}

}  // namespace

template <typename Load, typename Add>
void SmallMlp::trips(std::int64_t rows, const Load& load, const Add& add) const {
  const Weights& w = weights_;
  const auto units = static_cast<std::int64_t>(w.units.size());
  const auto outputs = static_cast<std::int64_t>(w.outputs.size());
  const bool relu = activation_ == PostActivation::kRelu;
  // kGroups groups of 16 rows per trip through the terms: independent chains of fused
  // multiply-adds, and the terms' indices read once per 128 rows.
  __m512 in[kMaxInputs][kGroups], hidden[kMaxUnits][kGroups], out[kMaxOutputs][kGroups];
  for (std::int64_t r0 = 0; r0 < rows; r0 += 16 * kGroups) {
    load(r0, in);
    for (std::int64_t j = 0; j < units; ++j) {
      const auto unit = static_cast<std::size_t>(j);
      bias_plus_terms(up_index_.data(), up_weight_.data(), j == 0 ? 0 : unit_end_[unit - 1],
                      unit_end_[unit], in, w.units[unit].bias, hidden[j]);
      if (relu) {
        for (__m512& value : hidden[j]) value = _mm512_max_ps(value, _mm512_setzero_ps());
      }
    }
    // Every output from the units before any is added to x (an output may be an input).
    for (std::int64_t o = 0; o < outputs; ++o) {
      const auto output = static_cast<std::size_t>(o);
      bias_plus_terms(down_index_.data(), down_weight_.data(),
                      o == 0 ? 0 : output_end_[output - 1], output_end_[output], hidden,
                      w.outputs[output].bias, out[o]);
    }
    add(r0, out);
  }
}

void SmallMlp::execute(float* x) const {
  const Weights& w = weights_;
  const auto inputs = static_cast<std::int64_t>(w.inputs.size());
  const auto outputs = static_cast<std::int64_t>(w.outputs.size());
  const __m512i offsets = simd::row_offsets(row_stride_);
  __m512 span[kGroups][4];
  auto load = [&](std::int64_t r0, __m512 (&in)[kMaxInputs][kGroups]) {
    for (std::int64_t g = 0; g < kGroups; ++g) {
      const std::int64_t count = std::clamp<std::int64_t>(rows_ - r0 - 16 * g, 0, 16);
      float* base = x + (r0 + 16 * g) * row_stride_;
      // The live columns of 16 rows: within 4 consecutive columns, 16 loads of 4 values and an
      // in-register transpose (rows in the order 0, 4, 8, 12, 1, 5, ...: the same for every
      // column, and the maps are row-wise); otherwise a gather per column.
      if (narrow_) {
        auto row = [&](std::int64_t r) {
          return r < count ? _mm_loadu_ps(base + r * row_stride_ + first_column_)
                           : _mm_setzero_ps();
        };
        for (std::int64_t i = 0; i < 4; ++i) {
          __m512 v = _mm512_castps128_ps512(row(4 * i));
          v = _mm512_insertf32x4(v, row(4 * i + 1), 1);
          v = _mm512_insertf32x4(v, row(4 * i + 2), 2);
          span[g][i] = _mm512_insertf32x4(v, row(4 * i + 3), 3);
        }
        transpose_quads(span[g]);
        for (std::int64_t k = 0; k < inputs; ++k) {
          in[k][g] = span[g][w.inputs[static_cast<std::size_t>(k)] - first_column_];
        }
      } else {
        for (std::int64_t k = 0; k < inputs; ++k) {
          in[k][g] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), simd::first_lanes(count),
                                              offsets,
                                              base + w.inputs[static_cast<std::size_t>(k)], 4);
        }
      }
    }
  };
  auto add = [&](std::int64_t r0, const __m512 (&out)[kMaxOutputs][kGroups]) {
    for (std::int64_t g = 0; g < kGroups; ++g) {
      const std::int64_t count = std::clamp<std::int64_t>(rows_ - r0 - 16 * g, 0, 16);
      float* base = x + (r0 + 16 * g) * row_stride_;
      if (narrow_) {
        for (std::int64_t o = 0; o < outputs; ++o) {
          __m512& column = span[g][w.outputs[static_cast<std::size_t>(o)].column - first_column_];
          column = _mm512_add_ps(column, out[o][g]);
        }
        transpose_quads(span[g]);
        // Back to the rows, the output columns only.
        for (std::int64_t i = 0; i < 4; ++i) {
          const __m128 quarters[4] = {
              _mm512_castps512_ps128(span[g][i]), _mm512_extractf32x4_ps(span[g][i], 1),
              _mm512_extractf32x4_ps(span[g][i], 2), _mm512_extractf32x4_ps(span[g][i], 3)};
          for (std::int64_t q = 0; q < 4 && 4 * i + q < count; ++q) {
            _mm_mask_storeu_ps(base + (4 * i + q) * row_stride_ + first_column_, output_lanes_,
                               quarters[q]);
          }
        }
      } else {
        const __mmask16 lanes = simd::first_lanes(count);
        for (std::int64_t o = 0; o < outputs; ++o) {
          float* column = base + w.outputs[static_cast<std::size_t>(o)].column;
          const __m512 old =
              _mm512_mask_i32gather_ps(_mm512_setzero_ps(), lanes, offsets, column, 4);
          _mm512_mask_i32scatter_ps(column, lanes, offsets, _mm512_add_ps(old, out[o][g]), 4);
        }
      }
    }
  };
  trips(rows_, load, add);
}

void SmallMlp::execute_columns(float* columns, std::int64_t column_stride, std::int64_t rows,
                               const std::vector<std::int64_t>& position) const {
  const Weights& w = weights_;
  const auto inputs = static_cast<std::int64_t>(w.inputs.size());
  const auto outputs = static_cast<std::int64_t>(w.outputs.size());
  // Whole groups of 16 rows (the column block holds them); groups past `rows` in a trip are
  // neither loaded nor stored.
  const std::int64_t groups = (rows + 15) / 16;
  auto column = [&](std::int64_t slot) {
    return columns + position[static_cast<std::size_t>(slot)] * column_stride;
  };
  auto load = [&](std::int64_t r0, __m512 (&in)[kMaxInputs][kGroups]) {
    for (std::int64_t k = 0; k < inputs; ++k) {
      const float* source = column(w.inputs[static_cast<std::size_t>(k)]) + r0;
      for (std::int64_t g = 0; g < kGroups; ++g) {
        in[k][g] = r0 / 16 + g < groups ? _mm512_loadu_ps(source + 16 * g) : _mm512_setzero_ps();
      }
    }
  };
  auto add = [&](std::int64_t r0, const __m512 (&out)[kMaxOutputs][kGroups]) {
    for (std::int64_t o = 0; o < outputs; ++o) {
      float* target = column(w.outputs[static_cast<std::size_t>(o)].column) + r0;
      for (std::int64_t g = 0; g < kGroups && r0 / 16 + g < groups; ++g) {
        _mm512_storeu_ps(target + 16 * g, _mm512_add_ps(_mm512_loadu_ps(target + 16 * g), out[o][g]));
      }
    }
  };
  trips(groups * 16, load, add);
}

#else

// Portable twin: the same sums in the same order, one row at a time (without fused
// multiply-adds, so the last bits may differ).
void SmallMlp::execute(float* x) const {
  const Weights& w = weights_;
  float in[kMaxInputs], hidden[kMaxUnits];
  std::vector<float> out(w.outputs.size());
  for (std::int64_t r = 0; r < rows_; ++r) {
    float* row = x + r * row_stride_;
    for (std::size_t k = 0; k < w.inputs.size(); ++k) in[k] = row[w.inputs[k]];
    for (std::size_t j = 0; j < w.units.size(); ++j) {
      float sum = w.units[j].bias;
      for (const Term& term : w.units[j].terms) sum += in[term.index] * term.weight;
      hidden[j] = activation_ == PostActivation::kRelu ? std::max(sum, 0.0f) : sum;
    }
    for (std::size_t o = 0; o < w.outputs.size(); ++o) {
      float sum = w.outputs[o].bias;
      for (const Term& term : w.outputs[o].terms) sum += hidden[term.index] * term.weight;
      out[o] = sum;
    }
    for (std::size_t o = 0; o < w.outputs.size(); ++o) row[w.outputs[o].column] += out[o];
  }
}

void SmallMlp::execute_columns(float* columns, std::int64_t column_stride, std::int64_t rows,
                               const std::vector<std::int64_t>& position) const {
  // The row kernel above on a one-row view per row: slot c of row r at
  // columns + position[c] * column_stride + r, gathered into a row of `width` and back.
  const Weights& w = weights_;
  std::vector<float> row(position.size());
  std::vector<std::int64_t> slots;
  for (std::size_t c = 0; c < position.size(); ++c)
    if (position[c] >= 0) slots.push_back(static_cast<std::int64_t>(c));
  const std::int64_t padded = (rows + 15) / 16 * 16;
  SmallMlp one_row = *this;
  one_row.rows_ = 1;
  one_row.row_stride_ = static_cast<std::int64_t>(position.size());
  for (std::int64_t r = 0; r < padded; ++r) {
    for (std::int64_t c : slots) row[static_cast<std::size_t>(c)] = columns[position[static_cast<std::size_t>(c)] * column_stride + r];
    one_row.execute(row.data());
    for (const Output& output : w.outputs) {
      const auto c = static_cast<std::size_t>(output.column);
      columns[position[c] * column_stride + r] = row[c];
    }
  }
}

#endif

}  // namespace iclbench::ops
