#include "ops/structured_linear.hpp"

#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "ops/gelu.hpp"
#include "ops/simd_math.hpp"

namespace iclbench::ops {
namespace {

void check(bool condition, const std::string& what) {
  if (!condition) throw std::invalid_argument("StructuredLinear: " + what);
}

// column[r] = src[r * stride] for r < count (count <= kRowBlock). With AVX-512, 16 rows per
// gather: the stream's slots are strided columns, and one load per value was the kernel's main
// cost.
void gather_column(const float* src, std::int64_t stride, std::int64_t count, float* column) {
#if defined(ICLBENCH_SIMD_AVX512)
  if (stride != 1) {
    const __m512i rows = simd::row_offsets(stride);
    for (std::int64_t r = 0; r < count; r += 16) {
      const __mmask16 lanes = simd::first_lanes(count - r);
      _mm512_mask_storeu_ps(column + r, lanes,
                            _mm512_mask_i32gather_ps(_mm512_setzero_ps(), lanes, rows,
                                                     src + r * stride, 4));
    }
    return;
  }
#endif
  for (std::int64_t r = 0; r < count; ++r) column[r] = src[r * stride];
}

// dst[r * stride] (= or +=) values[r] for r < count: the same additions as the scalar loop, 16
// rows per gather and scatter with AVX-512.
void scatter_column(const float* values, float* dst, std::int64_t stride, std::int64_t count,
                    bool accumulate) {
#if defined(ICLBENCH_SIMD_AVX512)
  if (stride != 1) {
    const __m512i rows = simd::row_offsets(stride);
    for (std::int64_t r = 0; r < count; r += 16) {
      const __mmask16 lanes = simd::first_lanes(count - r);
      float* base = dst + r * stride;
      __m512 value = _mm512_maskz_loadu_ps(lanes, values + r);
      if (accumulate) {
        value = _mm512_add_ps(
            _mm512_mask_i32gather_ps(_mm512_setzero_ps(), lanes, rows, base, 4), value);
      }
      _mm512_mask_i32scatter_ps(base, lanes, rows, value, 4);
    }
    return;
  }
#endif
  if (accumulate) {
    for (std::int64_t r = 0; r < count; ++r) dst[r * stride] += values[r];
  } else {
    for (std::int64_t r = 0; r < count; ++r) dst[r * stride] = values[r];
  }
}

}  // namespace

StructuredLinear::StructuredLinear(std::int64_t rows, Strides src, std::int64_t src_width,
                                   Strides dst, std::int64_t dst_width, Columns columns,
                                   PostActivation activation, bool accumulate)
    : rows_(rows),
      src_(src),
      dst_(dst),
      columns_(std::move(columns)),
      activation_(activation),
      accumulate_(accumulate) {
  const Columns& c = columns_;
  check(rows >= 0 && src_width >= 0 && dst_width >= 0, "negative size");
  check(c.weights.size() == c.inputs.size() * c.outputs.size(), "weights are not [inputs, outputs]");
  check(c.bias.size() == c.outputs.size(), "bias is not [outputs]");
  for (std::int64_t input : c.inputs) check(input >= 0 && input < src_width, "input out of range");
  for (std::int64_t output : c.outputs)
    check(output >= 0 && output < dst_width, "output out of range");
  for (const Copy& copy : c.copies) {
    check(copy.source >= 0 && copy.source < src_width && copy.target >= 0 &&
              copy.target < dst_width,
          "copy out of range");
  }
  for (std::int64_t zero : c.zero_columns)
    check(zero >= 0 && zero < dst_width, "zero column out of range");
  check(!accumulate || c.zero_columns.empty(), "an accumulating map has no zero columns");
  // The gathers address 16 rows from a base by 32-bit offsets.
  check(std::abs(src.row) < (1 << 26) && std::abs(dst.row) < (1 << 26), "row stride too large");
  for (const Copy& copy : c.copies) {
    CopyRun* last = copy_runs_.empty() ? nullptr : &copy_runs_.back();
    if (last && last->scale == copy.scale && last->source + last->length == copy.source &&
        last->target + last->length == copy.target) {
      ++last->length;
    } else {
      copy_runs_.push_back({copy.source, copy.target, 1, copy.scale});
    }
  }
  for (std::int64_t zero : c.zero_columns) {
    if (!zero_runs_.empty() && zero_runs_.back().first + zero_runs_.back().length == zero) {
      ++zero_runs_.back().length;
    } else {
      zero_runs_.push_back({zero, 1});
    }
  }
}

void StructuredLinear::execute(const float* src, float* dst) const {
  const auto outputs = static_cast<std::int64_t>(columns_.outputs.size());
  const float* weights = columns_.weights.data();
  const float* bias = columns_.bias.data();
  alignas(64) float column[kRowBlock];
  alignas(64) float accumulator[kOutputBlock][kRowBlock];
  for (std::int64_t first_row = 0; first_row < rows_; first_row += kRowBlock) {
    const std::int64_t count = std::min(kRowBlock, rows_ - first_row);
    const float* s = src + first_row * src_.row;
    float* d = dst + first_row * dst_.row;
    for (std::int64_t first = 0; first < outputs; first += kOutputBlock) {
      const std::int64_t width = std::min(kOutputBlock, outputs - first);
      for (std::int64_t j = 0; j < width; ++j) std::fill_n(accumulator[j], count, 0.0f);
      for (std::size_t k = 0; k < columns_.inputs.size(); ++k) {
        gather_column(s + columns_.inputs[k] * src_.column, src_.row, count, column);
        const float* w = weights + static_cast<std::int64_t>(k) * outputs + first;
        for (std::int64_t j = 0; j < width; ++j) {
          const float weight = w[j];
          float* a = accumulator[j];
          for (std::int64_t r = 0; r < count; ++r) a[r] += weight * column[r];
        }
      }
      for (std::int64_t j = 0; j < width; ++j) {
        float* a = accumulator[j];
        // The bias last, as oneDNN adds it after the products.
        const float b = bias[first + j];
        for (std::int64_t r = 0; r < count; ++r) a[r] += b;
        switch (activation_) {
          case PostActivation::kNone:
            break;
          case PostActivation::kRelu:
            for (std::int64_t r = 0; r < count; ++r) a[r] = std::max(a[r], 0.0f);
            break;
          case PostActivation::kGelu:
            gelu(a, a, count, GeluForm::kErf);
            break;
          case PostActivation::kGeluTanh:
            gelu(a, a, count, GeluForm::kTanh);
            break;
        }
        scatter_column(a, d + columns_.outputs[static_cast<std::size_t>(first + j)] * dst_.column,
                       dst_.row, count, accumulate_);
      }
    }
    for (const CopyRun& run : copy_runs_) {
      for (std::int64_t c = 0; c < run.length; ++c) {
        gather_column(s + (run.source + c) * src_.column, src_.row, count, column);
        for (std::int64_t r = 0; r < count; ++r) column[r] *= run.scale;
        scatter_column(column, d + (run.target + c) * dst_.column, dst_.row, count, accumulate_);
      }
    }
    for (const ZeroRun& run : zero_runs_) {
      for (std::int64_t c = 0; c < run.length; ++c) {
        float* to = d + (run.first + c) * dst_.column;
        for (std::int64_t r = 0; r < count; ++r) to[r * dst_.row] = 0.0f;
      }
    }
  }
}

}  // namespace iclbench::ops
