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
}

#if defined(ICLBENCH_SIMD_AVX512)

void SmallMlp::execute(float* x) const {
  const Weights& w = weights_;
  const auto inputs = static_cast<std::int64_t>(w.inputs.size());
  const auto units = static_cast<std::int64_t>(w.units.size());
  const auto outputs = static_cast<std::int64_t>(w.outputs.size());
  const __m512i offsets = simd::row_offsets(row_stride_);
  const bool relu = activation_ == PostActivation::kRelu;
  __m512 in[kMaxInputs], hidden[kMaxUnits], out[kMaxOutputs];
  for (std::int64_t r0 = 0; r0 < rows_; r0 += 16) {
    const __mmask16 lanes = simd::first_lanes(rows_ - r0);
    float* base = x + r0 * row_stride_;
    for (std::int64_t k = 0; k < inputs; ++k) {
      in[k] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), lanes, offsets,
                                       base + w.inputs[static_cast<std::size_t>(k)], 4);
    }
    std::int64_t t = 0;
    for (std::int64_t j = 0; j < units; ++j) {
      __m512 sum = _mm512_setzero_ps();
      for (const std::int64_t end = unit_end_[static_cast<std::size_t>(j)]; t < end; ++t) {
        sum = _mm512_fmadd_ps(in[up_index_[static_cast<std::size_t>(t)]],
                              _mm512_set1_ps(up_weight_[static_cast<std::size_t>(t)]), sum);
      }
      sum = _mm512_add_ps(sum, _mm512_set1_ps(w.units[static_cast<std::size_t>(j)].bias));
      hidden[j] = relu ? _mm512_max_ps(sum, _mm512_setzero_ps()) : sum;
    }
    // Every output from the units before any is added to x (an output may be an input).
    t = 0;
    for (std::int64_t o = 0; o < outputs; ++o) {
      __m512 sum = _mm512_setzero_ps();
      for (const std::int64_t end = output_end_[static_cast<std::size_t>(o)]; t < end; ++t) {
        sum = _mm512_fmadd_ps(hidden[down_index_[static_cast<std::size_t>(t)]],
                              _mm512_set1_ps(down_weight_[static_cast<std::size_t>(t)]), sum);
      }
      out[o] = _mm512_add_ps(sum, _mm512_set1_ps(w.outputs[static_cast<std::size_t>(o)].bias));
    }
    for (std::int64_t o = 0; o < outputs; ++o) {
      float* column = base + w.outputs[static_cast<std::size_t>(o)].column;
      const __m512 old = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), lanes, offsets, column, 4);
      _mm512_mask_i32scatter_ps(column, lanes, offsets, _mm512_add_ps(old, out[o]), 4);
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
      float sum = 0.0f;
      for (const Term& term : w.units[j].terms) sum += in[term.index] * term.weight;
      sum += w.units[j].bias;
      hidden[j] = activation_ == PostActivation::kRelu ? std::max(sum, 0.0f) : sum;
    }
    for (std::size_t o = 0; o < w.outputs.size(); ++o) {
      float sum = 0.0f;
      for (const Term& term : w.outputs[o].terms) sum += hidden[term.index] * term.weight;
      out[o] = sum + w.outputs[o].bias;
    }
    for (std::size_t o = 0; o < w.outputs.size(); ++o) row[w.outputs[o].column] += out[o];
  }
}

#endif

}  // namespace iclbench::ops
