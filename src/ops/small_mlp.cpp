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
  prefix_.assign(w.units.size(), 0);
  hoist_column_.assign(w.units.size(), -1);
  pass_input_.assign(w.inputs.size(), true);
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

std::vector<std::int64_t> SmallMlp::invariant_prefixes(const std::vector<bool>& written) const {
  std::vector<std::int64_t> prefix;
  for (const Unit& unit : weights_.units) {
    std::int64_t leading = 0;
    for (const Term& term : unit.terms) {
      const auto column = weights_.inputs[static_cast<std::size_t>(term.index)];
      check(column >= 0 && column < static_cast<std::int64_t>(written.size()),
            "written columns do not cover the inputs");
      if (written[static_cast<std::size_t>(column)]) break;
      ++leading;
    }
    prefix.push_back(leading);
  }
  return prefix;
}

void SmallMlp::hoist(std::vector<std::int64_t> prefix, std::vector<std::int64_t> hoist_column) {
  const std::size_t units = weights_.units.size();
  check(prefix.size() == units && hoist_column.size() == units, "one prefix and column per unit");
  pass_input_.assign(weights_.inputs.size(), false);
  for (std::size_t j = 0; j < units; ++j) {
    const auto terms = static_cast<std::int64_t>(weights_.units[j].terms.size());
    check(prefix[j] >= 0 && prefix[j] <= terms, "prefix longer than the unit");
    if (prefix[j] == 0) hoist_column[j] = -1;  // nothing to hoist
    check(hoist_column[j] >= -1, "bad hoist column");
    // A pass reads the inputs of the terms it still adds.
    const std::int64_t first = hoist_column[j] < 0 ? 0 : prefix[j];
    for (std::int64_t t = first; t < terms; ++t) {
      pass_input_[static_cast<std::size_t>(weights_.units[j].terms[static_cast<std::size_t>(t)].index)] = true;
    }
    if (hoist_column[j] < 0) prefix[j] = 0;
  }
  prefix_ = std::move(prefix);
  hoist_column_ = std::move(hoist_column);
}

std::int64_t SmallMlp::hoisted_units() const {
  return std::count_if(hoist_column_.begin(), hoist_column_.end(),
                       [](std::int64_t column) { return column >= 0; });
}

std::int64_t SmallMlp::pass_terms() const {
  std::int64_t hoisted = 0;
  for (std::int64_t leading : prefix_) hoisted += leading;
  return terms_ - hoisted;
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

// sum[g] += sum over terms t in [begin, end) of sources[index[t]][g] weight[t], in order (one
// fused multiply-add chain per group, continuing from sum: a bias, or a hoisted partial sum).
// `sum` is the caller's local array: were it a member of `sources`' arrays it might alias them
// as far as the compiler knows, and be stored and reloaded at every term.
[[gnu::always_inline]] inline void add_terms(const std::int32_t* index, const float* weight,
                                             std::int64_t begin, std::int64_t end,
                                             const __m512 (*sources)[kGroups],
                                             __m512 (&sum)[kGroups]) {
  for (std::int64_t t = begin; t < end; ++t) {
    const __m512* source = sources[index[t]];
    const __m512 w = _mm512_set1_ps(weight[t]);
    for (std::int64_t g = 0; g < kGroups; ++g) sum[g] = _mm512_fmadd_ps(source[g], w, sum[g]);
  }
}

}  // namespace

template <typename Load, typename Start, typename Add>
void SmallMlp::trips(std::int64_t rows, const Load& load, const Start& start, const Add& add) const {
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
      // The chain's start (the bias, or a hoisted partial sum or value) and its first term.
      __m512 sum[kGroups];
      const std::int64_t first = start(r0, j, sum);
      add_terms(up_index_.data(), up_weight_.data(), first, unit_end_[unit], in, sum);
      // (On a hoisted value the ReLU was applied already: max(max(v, 0), 0) = max(v, 0).)
      if (relu) {
        for (__m512& value : sum) value = _mm512_max_ps(value, _mm512_setzero_ps());
      }
      for (std::int64_t g = 0; g < kGroups; ++g) hidden[j][g] = sum[g];
    }
    // Every output from the units before any is added to x (an output may be an input).
    for (std::int64_t o = 0; o < outputs; ++o) {
      const auto output = static_cast<std::size_t>(o);
      __m512 sum[kGroups];
      for (__m512& value : sum) value = _mm512_set1_ps(w.outputs[output].bias);
      add_terms(down_index_.data(), down_weight_.data(), o == 0 ? 0 : output_end_[output - 1],
                output_end_[output], hidden, sum);
      for (std::int64_t g = 0; g < kGroups; ++g) out[o][g] = sum[g];
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
  auto start = [&](std::int64_t, std::int64_t j, __m512 (&sum)[kGroups]) {
    const auto unit = static_cast<std::size_t>(j);
    for (__m512& value : sum) value = _mm512_set1_ps(w.units[unit].bias);
    return j == 0 ? std::int64_t{0} : unit_end_[unit - 1];
  };
  trips(rows_, load, start, add);
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
      // Inputs only hoisted terms read are not loaded (nothing reads in[k]).
      if (!pass_input_[static_cast<std::size_t>(k)]) continue;
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
  // A hoisted unit's chain starts from its column (groups past `rows` from 0: never stored);
  // the others' from the bias.
  auto start = [&](std::int64_t r0, std::int64_t j, __m512 (&sum)[kGroups]) {
    const auto unit = static_cast<std::size_t>(j);
    const std::int64_t begin = j == 0 ? 0 : unit_end_[unit - 1];
    if (hoist_column_[unit] < 0) {
      for (__m512& value : sum) value = _mm512_set1_ps(w.units[unit].bias);
      return begin;
    }
    const float* source = columns + hoist_column_[unit] * column_stride + r0;
    for (std::int64_t g = 0; g < kGroups; ++g) {
      sum[g] = r0 / 16 + g < groups ? _mm512_loadu_ps(source + 16 * g) : _mm512_setzero_ps();
    }
    return begin + prefix_[unit];
  };
  trips(groups * 16, load, start, add);
}

void SmallMlp::precompute_columns(float* columns, std::int64_t column_stride, std::int64_t rows,
                                  const std::vector<std::int64_t>& position) const {
  const Weights& w = weights_;
  const std::int64_t groups = (rows + 15) / 16;
  for (std::size_t j = 0; j < w.units.size(); ++j) {
    if (hoist_column_[j] < 0) continue;
    const std::int64_t begin = j == 0 ? 0 : unit_end_[j - 1];
    const bool whole = prefix_[j] == unit_end_[j] - begin;
    float* target = columns + hoist_column_[j] * column_stride;
    for (std::int64_t g = 0; g < groups; ++g) {
      // The kernel's chain for this unit, stopped after its invariant terms.
      __m512 sum = _mm512_set1_ps(w.units[j].bias);
      for (std::int64_t t = begin; t < begin + prefix_[j]; ++t) {
        const std::int64_t slot = w.inputs[static_cast<std::size_t>(up_index_[static_cast<std::size_t>(t)])];
        const float* source = columns + position[static_cast<std::size_t>(slot)] * column_stride;
        sum = _mm512_fmadd_ps(_mm512_loadu_ps(source + 16 * g),
                              _mm512_set1_ps(up_weight_[static_cast<std::size_t>(t)]), sum);
      }
      if (whole && activation_ == PostActivation::kRelu) sum = _mm512_max_ps(sum, _mm512_setzero_ps());
      _mm512_storeu_ps(target + 16 * g, sum);
    }
  }
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

// Row by row, as execute above; a hoisted unit's chain from its column.
void SmallMlp::execute_columns(float* columns, std::int64_t column_stride, std::int64_t rows,
                               const std::vector<std::int64_t>& position) const {
  const Weights& w = weights_;
  const std::int64_t padded = (rows + 15) / 16 * 16;
  auto at = [&](std::int64_t slot, std::int64_t r) -> float& {
    return columns[position[static_cast<std::size_t>(slot)] * column_stride + r];
  };
  float hidden[kMaxUnits];
  std::vector<float> out(w.outputs.size());
  for (std::int64_t r = 0; r < padded; ++r) {
    for (std::size_t j = 0; j < w.units.size(); ++j) {
      const bool hoisted = hoist_column_[j] >= 0;
      float sum = hoisted ? columns[hoist_column_[j] * column_stride + r] : w.units[j].bias;
      const auto& terms = w.units[j].terms;
      for (std::size_t t = hoisted ? static_cast<std::size_t>(prefix_[j]) : 0; t < terms.size(); ++t) {
        sum += at(w.inputs[static_cast<std::size_t>(terms[t].index)], r) * terms[t].weight;
      }
      hidden[j] = activation_ == PostActivation::kRelu ? std::max(sum, 0.0f) : sum;
    }
    for (std::size_t o = 0; o < w.outputs.size(); ++o) {
      float sum = w.outputs[o].bias;
      for (const Term& term : w.outputs[o].terms) sum += hidden[term.index] * term.weight;
      out[o] = sum;
    }
    for (std::size_t o = 0; o < w.outputs.size(); ++o) at(w.outputs[o].column, r) += out[o];
  }
}

void SmallMlp::precompute_columns(float* columns, std::int64_t column_stride, std::int64_t rows,
                                  const std::vector<std::int64_t>& position) const {
  const Weights& w = weights_;
  const std::int64_t padded = (rows + 15) / 16 * 16;
  for (std::size_t j = 0; j < w.units.size(); ++j) {
    if (hoist_column_[j] < 0) continue;
    const auto& terms = w.units[j].terms;
    const bool whole = prefix_[j] == static_cast<std::int64_t>(terms.size());
    for (std::int64_t r = 0; r < padded; ++r) {
      float sum = w.units[j].bias;
      for (std::size_t t = 0; t < static_cast<std::size_t>(prefix_[j]); ++t) {
        const std::int64_t slot = w.inputs[static_cast<std::size_t>(terms[t].index)];
        sum += columns[position[static_cast<std::size_t>(slot)] * column_stride + r] * terms[t].weight;
      }
      if (whole && activation_ == PostActivation::kRelu) sum = std::max(sum, 0.0f);
      columns[hoist_column_[j] * column_stride + r] = sum;
    }
  }
}

#endif

}  // namespace iclbench::ops
