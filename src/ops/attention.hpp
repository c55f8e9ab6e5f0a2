#pragma once
// Fused attention of one row tile: scores, weights and the mix with the values in one pass per
// head, written for this codebase because oneDNN 2.6 has no fused attention and its matmuls on
// the engine's strided per-head views run as gemm:jit (not brgemm), with the [H, R, n] score
// tile written out, read by a separate softmax and read again by the mix.
//
// Per head h and query row r (token t = first_row + r), over the keys the row sees (icl: keys
// 0..n-1; causal: keys 0..min(t, n-1)):
//   s_k = scale * (q_r . k_k)                                   (dk products)
//   a_k = softmax_k(s) | s_k | max(s_k, 0)                      (softmax, linear, relu)
//   o_r = sum_k a_k v_k, divided by the number of visible keys if mean_over_keys (linear, relu)
// Same definitions as model/config.hpp; the model's mean_over_keys under the icl mask may also
// be folded into `scale` (scale / n) as the engine does today.
//
// Numbers (softmax): -inf scores get a weight of exactly 0; a row whose visible scores are all
// -inf gets NaN (0/0), and a NaN or +inf score makes the row NaN, as ops::RowSoftmax does. A
// non-finite value in the row of a key that a row cannot see (causal) may still turn that row
// NaN when both are in the same block of rows (the key's weight is 0 there, and 0 * inf = NaN),
// as the engine's masked oneDNN matmuls did. Each row's result depends only on the shape,
// first_row and the operands (same bytes whatever the thread).
//
// How (AVX-512): 16 query rows are the 16 lanes of a vector, so each key's 16 scores are one
// vector, the softmax is lane-wise (no horizontal reductions) and the causal mask is one lane
// mask per diagonal key. Rows go in blocks of 32 (two vectors, so that every broadcast key or
// value element feeds two FMAs: a broadcast load per FMA is what limits these loops on this
// CPU), a last block of 17..31 or 5..16 rows as one or two vectors, and a last block of at most
// 4 rows with 16 keys in the lanes instead (K^T of 16 keys built once for the few rows). Per head
// and row block, keys go in blocks of up to 160: their scores to a 20 KB buffer in L1, then exp,
// then the mix into [dv][32] accumulators. The running maximum is raised only when a key block
// exceeds it by more than 2^8 (so the weights stay <= 2^8 and the f32 sums cannot overflow),
// which makes the online-softmax rescaling of flash attention (Dao et al. 2022) almost free.
// exp is 2^x with a degree-6 minimax polynomial on [0, 1) (1.04 ulp) and vscalefps. bf16 inputs
// go through vdpbf16ps (f32 accumulation); their weights are rounded to bf16 for the mix, as the
// engine's bf16 softmax output was. Without AVX-512 a scalar loop computes the same definition.
//
// Threading: execute() is const and uses only the caller's scratchpad; call it from any number
// of threads at once. It flushes denormals while it runs (ops::FlushDenormals) and restores the
// caller's MXCSR.

#include <cstddef>
#include <cstdint>

#include "ops/dnnl_ops.hpp"

namespace iclbench::ops {

enum class AttentionWeights { kSoftmax, kLinear, kRelu };
enum class AttentionMask { kIcl, kCausal };

// The fixed shape of one call: H heads, R query rows, n keys, dk, dv, and the row strides (in
// elements) of the four row-major operands. Head h reads columns [h dk, (h + 1) dk) of the
// query and key rows and [h dv, (h + 1) dv) of the value rows, and writes those of the output
// rows. Q, K, V and O share `dtype` (bf16: f32 accumulation, O rounded to nearest even).
struct AttentionShape {
  std::int64_t heads = 1, rows = 1, keys = 1, qk_dim = 1, v_dim = 1;
  std::int64_t query_stride = 0, key_stride = 0, value_stride = 0, out_stride = 0;
  DType dtype = DType::kF32;
  AttentionWeights weights = AttentionWeights::kSoftmax;
  AttentionMask mask = AttentionMask::kIcl;
  float scale = 1.0f;
  bool mean_over_keys = false;  // linear and relu only
};

class FusedAttention {
 public:
  // Throws std::invalid_argument on a size < 1, a stride shorter than its row, a non-finite
  // scale, or mean_over_keys with softmax.
  explicit FusedAttention(const AttentionShape& shape);
  // queries: [R, >= H dk], keys: [n, >= H dk], values: [n, >= H dv], out: [R, >= H dv], each
  // with its row stride. first_row: the token index of query row 0 (the causal mask's t);
  // ignored under the icl mask. scratchpad: scratchpad_bytes(), 64-byte aligned is best.
  void execute(const void* queries, const void* keys, const void* values, void* out,
               std::int64_t first_row, void* scratchpad) const;
  std::size_t scratchpad_bytes() const { return scratchpad_bytes_; }
  // The same, before an op exists (for memory estimates): at most 31 KB + 144 dk + 128 dv bytes,
  // and for bf16 2 n dv more (the values as key pairs).
  static std::size_t scratchpad_bytes_for(const AttentionShape& shape);
  const AttentionShape& shape() const { return shape_; }
  const char* implementation() const;

 private:
  AttentionShape shape_;
  std::size_t scratchpad_bytes_ = 0;
};

}  // namespace iclbench::ops
