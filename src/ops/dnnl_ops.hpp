#pragma once
// Thin wrappers over oneDNN 2.6 primitives. Each is created once for a shape (primitive
// descriptor, primitive, and for constant weights a reorder into the layout the kernel wants)
// and then only executed. Knows nothing of transformers.
//
// Threading: TBB owns all parallelism. Every op runs single-threaded inside the calling TBB
// task (runtime::ThreadLimit pins OpenMP, oneDNN's runtime here, to one thread per caller) and
// may be executed from several threads at once: memory objects live in per-thread slots and the
// scratchpad is the caller's.

#include <oneapi/dnnl/dnnl.hpp>
#include <tbb/enumerable_thread_specific.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

namespace iclbench::ops {

enum class DType { kF32, kBF16 };
std::size_t size_of(DType dtype);
dnnl::memory::data_type to_dnnl(DType dtype);

// kGelu is the exact (erf) form, x Phi(x); kGeluTanh its tanh approximation (GPT-2's).
enum class PostActivation { kNone, kRelu, kGelu, kGeluTanh };

dnnl::engine& cpu_engine();
dnnl::stream& thread_stream();  // one CPU stream per thread

// A strided tensor layout (dims and strides in elements) with a data type.
struct Layout {
  std::vector<std::int64_t> dims;
  std::vector<std::int64_t> strides;
  DType dtype = DType::kF32;
  dnnl::memory::desc desc() const;
  static Layout dense(std::vector<std::int64_t> dims, DType dtype);
  // Rows of a row-major matrix whose rows are `row_stride` elements apart.
  static Layout rows(std::int64_t rows, std::int64_t cols, std::int64_t row_stride, DType dtype);
};

// Argument slots of one primitive, kept per thread so that executing from several threads at
// once never shares a dnnl::memory (set_data_handle mutates it).
class ArgumentSlots {
 public:
  ArgumentSlots() = default;
  void add(int argument, const dnnl::memory::desc& desc);
  // Binds `pointers` (in the order of add()) on this thread's memory objects and executes.
  void execute(const dnnl::primitive& primitive, std::span<void* const> pointers) const;

 private:
  struct ThreadArguments {
    std::vector<dnnl::memory> ordered;
    std::unordered_map<int, dnnl::memory> by_argument;
  };
  std::vector<std::pair<int, dnnl::memory::desc>> arguments_;
  mutable tbb::enumerable_thread_specific<ThreadArguments> per_thread_;
};

// dst[M, N] (+)= act(src[M, K] W[K, N] + bias[N]) with W and bias constant: packed once into
// the kernel's preferred layout (bf16 when src is bf16). `accumulate` adds into dst (the
// residual connection) with a sum post-op.
class Linear {
 public:
  Linear(const Layout& src, std::span<const float> weights, std::span<const float> bias,
         const Layout& dst, PostActivation activation, bool accumulate);
  void execute(const void* src, void* dst, void* scratchpad) const;
  std::size_t scratchpad_bytes() const { return scratchpad_bytes_; }
  const char* implementation() const;

 private:
  dnnl::matmul::primitive_desc pd_;
  dnnl::matmul primitive_;
  dnnl::memory packed_weights_;
  dnnl::memory bias_;
  ArgumentSlots slots_;
  std::size_t scratchpad_bytes_ = 0;
};

// dst = post_ops(scale * src x weights), both operands given at run time, any strides and up to
// one batch dimension. Optional post-ops, in order: ReLU, then a binary op with a tensor given at
// run time (an additive mask for softmax scores, a multiplicative one for linear attention).
class MatMul {
 public:
  enum class Binary { kNone, kAdd, kMul };
  MatMul(const Layout& src, const Layout& weights, const Layout& dst, float scale, bool relu,
         Binary binary = Binary::kNone, const Layout& binary_layout = {});
  void execute(const void* src, const void* weights, void* dst, void* scratchpad,
               const void* binary_operand = nullptr) const;
  std::size_t scratchpad_bytes() const { return scratchpad_bytes_; }
  const char* implementation() const;

 private:
  bool has_binary_;
  dnnl::matmul::primitive_desc pd_;
  dnnl::matmul primitive_;
  ArgumentSlots slots_;
  std::size_t scratchpad_bytes_ = 0;
};

// Layer normalisation over the last dimension of [rows, width] f32, with gain and shift. The
// engine uses ops::RowLayerNorm (row_layer_norm.hpp) instead, ~1.4x faster on the encoder's
// [129, 64] tiles and ~1.25x on BERT-base's [128, 768]; this one stays as the oneDNN baseline in kernels_bench.
class LayerNorm {
 public:
  LayerNorm(const Layout& data, std::span<const float> gamma, std::span<const float> beta,
            float epsilon);
  void execute(const void* src, void* dst, void* scratchpad) const;
  std::size_t scratchpad_bytes() const { return scratchpad_bytes_; }

 private:
  dnnl::layer_normalization_forward::primitive_desc pd_;
  dnnl::layer_normalization_forward primitive_;
  dnnl::memory gamma_, beta_;
  ArgumentSlots slots_;
  std::size_t scratchpad_bytes_ = 0;
};

// Softmax over the last dimension; f32 in, f32 or bf16 out (in place allowed for f32). The
// engine uses ops::RowSoftmax (row_softmax.hpp) instead, ~2x faster here; this one stays as the
// oneDNN baseline in kernels_bench.
class Softmax {
 public:
  Softmax(const Layout& src, const Layout& dst);
  void execute(const void* src, void* dst, void* scratchpad) const;
  std::size_t scratchpad_bytes() const { return scratchpad_bytes_; }
  const char* implementation() const { return pd_.impl_info_str(); }

 private:
  dnnl::softmax_v2_forward::primitive_desc pd_;
  dnnl::softmax_v2_forward primitive_;
  ArgumentSlots slots_;
  std::size_t scratchpad_bytes_ = 0;
};

// Copies between layouts and data types (f32 <-> bf16, round to nearest even).
class Convert {
 public:
  Convert(const Layout& src, const Layout& dst);
  void execute(const void* src, void* dst, void* scratchpad) const;
  std::size_t scratchpad_bytes() const { return scratchpad_bytes_; }

 private:
  dnnl::reorder::primitive_desc pd_;
  dnnl::reorder primitive_;
  ArgumentSlots slots_;
  std::size_t scratchpad_bytes_ = 0;
};

}  // namespace iclbench::ops
