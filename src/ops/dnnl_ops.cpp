#include "ops/dnnl_ops.hpp"

#include <omp.h>

#include <stdexcept>

namespace iclbench::ops {
namespace {

using dnnl::memory;

dnnl::primitive_attr user_scratchpad() {
  dnnl::primitive_attr attr;
  // Each thread passes its own scratchpad, so concurrent execution never shares one.
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

dnnl::algorithm eltwise_algorithm(PostActivation activation) {
  switch (activation) {
    case PostActivation::kRelu: return dnnl::algorithm::eltwise_relu;
    case PostActivation::kGeluTanh: return dnnl::algorithm::eltwise_gelu_tanh;
    case PostActivation::kNone:
    case PostActivation::kGelu: break;
  }
  return dnnl::algorithm::eltwise_gelu_erf;
}

}  // namespace

std::size_t size_of(DType dtype) { return dtype == DType::kF32 ? 4 : 2; }

memory::data_type to_dnnl(DType dtype) {
  return dtype == DType::kF32 ? memory::data_type::f32 : memory::data_type::bf16;
}

// Debian's oneDNN runs on OpenMP: a call from a thread whose OpenMP team size is above one
// starts a team of its own, nested inside TBB's threads. Every thread that creates or executes a
// primitive comes through cpu_engine() or thread_stream() first, so pinning its team size to one
// there keeps oneDNN single-threaded inside each TBB task. (Primitive creation also reads the
// team size to choose its blocking, so creation and execution agree.)
void pin_openmp_to_one_thread() {
  thread_local const bool pinned = [] {
    omp_set_num_threads(1);
    return true;
  }();
  (void)pinned;
}

dnnl::engine& cpu_engine() {
  pin_openmp_to_one_thread();
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::stream& thread_stream() {
  pin_openmp_to_one_thread();
  thread_local dnnl::stream stream(cpu_engine());
  return stream;
}

memory::desc Layout::desc() const { return memory::desc(dims, to_dnnl(dtype), strides); }

Layout Layout::dense(std::vector<std::int64_t> dims, DType dtype) {
  std::vector<std::int64_t> strides(dims.size());
  std::int64_t stride = 1;
  for (std::size_t i = dims.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= dims[i];
  }
  return {std::move(dims), std::move(strides), dtype};
}

Layout Layout::rows(std::int64_t rows, std::int64_t cols, std::int64_t row_stride, DType dtype) {
  return {{rows, cols}, {row_stride, 1}, dtype};
}

void ArgumentSlots::add(int argument, const memory::desc& desc) {
  arguments_.emplace_back(argument, desc);
}

void ArgumentSlots::execute(const dnnl::primitive& primitive,
                            std::span<void* const> pointers) const {
  ThreadArguments& local = per_thread_.local();
  if (local.ordered.empty()) {
    for (const auto& [argument, desc] : arguments_) {
      local.ordered.emplace_back(desc, cpu_engine(), static_cast<void*>(nullptr));
      local.by_argument.emplace(argument, local.ordered.back());
    }
  }
  // dnnl::memory is a handle: the map holds the same objects, so rebinding is enough.
  for (std::size_t i = 0; i < arguments_.size(); ++i) local.ordered[i].set_data_handle(pointers[i]);
  primitive.execute(thread_stream(), local.by_argument);
}

// ---------------------------------------------------------------------------------------------

Linear::Linear(const Layout& src, std::span<const float> weights, std::span<const float> bias,
               const Layout& dst, PostActivation activation, bool accumulate) {
  const std::int64_t in = src.dims.back(), out = dst.dims.back();
  if (static_cast<std::int64_t>(weights.size()) != in * out ||
      static_cast<std::int64_t>(bias.size()) != out) {
    throw std::invalid_argument("Linear: weight or bias size does not match the layouts");
  }
  const memory::desc any_weights({in, out}, to_dnnl(src.dtype), memory::format_tag::any);
  const memory::desc bias_desc({1, out}, memory::data_type::f32, memory::format_tag::ab);
  dnnl::post_ops post_ops;
  if (activation != PostActivation::kNone) {
    post_ops.append_eltwise(1.0f, eltwise_algorithm(activation), 0.0f, 0.0f);
  }
  if (accumulate) post_ops.append_sum(1.0f);
  dnnl::primitive_attr attr = user_scratchpad();
  attr.set_post_ops(post_ops);
  pd_ = dnnl::matmul::primitive_desc(
      dnnl::matmul::desc(src.desc(), any_weights, bias_desc, dst.desc()), attr, cpu_engine());
  primitive_ = dnnl::matmul(pd_);
  scratchpad_bytes_ = pd_.scratchpad_desc().get_size();

  // Pack the weights once: plain f32 [in, out] -> whatever layout and type the kernel chose.
  memory plain(memory::desc({in, out}, memory::data_type::f32, memory::format_tag::ab),
                     cpu_engine(), const_cast<float*>(weights.data()));
  packed_weights_ = memory(pd_.weights_desc(), cpu_engine());
  dnnl::stream& stream = thread_stream();
  dnnl::reorder(plain, packed_weights_).execute(stream, plain, packed_weights_);
  bias_ = memory(bias_desc, cpu_engine());
  std::copy(bias.begin(), bias.end(), static_cast<float*>(bias_.get_data_handle()));
  stream.wait();

  slots_.add(DNNL_ARG_SRC, src.desc());
  slots_.add(DNNL_ARG_DST, dst.desc());
  slots_.add(DNNL_ARG_WEIGHTS, pd_.weights_desc());
  slots_.add(DNNL_ARG_BIAS, bias_desc);
  if (scratchpad_bytes_ > 0) slots_.add(DNNL_ARG_SCRATCHPAD, pd_.scratchpad_desc());
}

void Linear::execute(const void* src, void* dst, void* scratchpad) const {
  void* pointers[] = {const_cast<void*>(src), dst, packed_weights_.get_data_handle(),
                      bias_.get_data_handle(), scratchpad};
  slots_.execute(primitive_, std::span(pointers, scratchpad_bytes_ > 0 ? 5 : 4));
}

const char* Linear::implementation() const { return pd_.impl_info_str(); }

// ---------------------------------------------------------------------------------------------

MatMul::MatMul(const Layout& src, const Layout& weights, const Layout& dst, float scale, bool relu,
               Binary binary, const Layout& binary_layout)
    : has_binary_(binary != Binary::kNone) {
  dnnl::primitive_attr attr = user_scratchpad();
  if (scale != 1.0f) attr.set_output_scales(0, {scale});
  dnnl::post_ops post_ops;
  if (relu) post_ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
  if (has_binary_) {
    post_ops.append_binary(
        binary == Binary::kAdd ? dnnl::algorithm::binary_add : dnnl::algorithm::binary_mul,
        binary_layout.desc());
  }
  attr.set_post_ops(post_ops);
  pd_ = dnnl::matmul::primitive_desc(dnnl::matmul::desc(src.desc(), weights.desc(), dst.desc()),
                                     attr, cpu_engine());
  primitive_ = dnnl::matmul(pd_);
  scratchpad_bytes_ = pd_.scratchpad_desc().get_size();
  slots_.add(DNNL_ARG_SRC, src.desc());
  slots_.add(DNNL_ARG_WEIGHTS, weights.desc());
  slots_.add(DNNL_ARG_DST, dst.desc());
  const int binary_index = relu ? 1 : 0;
  if (has_binary_) {
    slots_.add(DNNL_ARG_ATTR_MULTIPLE_POST_OP(binary_index) | DNNL_ARG_SRC_1, binary_layout.desc());
  }
  if (scratchpad_bytes_ > 0) slots_.add(DNNL_ARG_SCRATCHPAD, pd_.scratchpad_desc());
}

void MatMul::execute(const void* src, const void* weights, void* dst, void* scratchpad,
                     const void* binary_operand) const {
  std::vector<void*> pointers = {const_cast<void*>(src), const_cast<void*>(weights), dst};
  if (has_binary_) pointers.push_back(const_cast<void*>(binary_operand));
  if (scratchpad_bytes_ > 0) pointers.push_back(scratchpad);
  slots_.execute(primitive_, pointers);
}

const char* MatMul::implementation() const { return pd_.impl_info_str(); }

// ---------------------------------------------------------------------------------------------

LayerNorm::LayerNorm(const Layout& data, std::span<const float> gamma, std::span<const float> beta,
                     float epsilon) {
  pd_ = dnnl::layer_normalization_forward::primitive_desc(
      dnnl::layer_normalization_forward::desc(
          dnnl::prop_kind::forward_inference, data.desc(), epsilon,
          dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift),
      user_scratchpad(), cpu_engine());
  primitive_ = dnnl::layer_normalization_forward(pd_);
  scratchpad_bytes_ = pd_.scratchpad_desc().get_size();
  const memory::desc vector_desc({data.dims.back()}, memory::data_type::f32, memory::format_tag::a);
  gamma_ = memory(vector_desc, cpu_engine());
  beta_ = memory(vector_desc, cpu_engine());
  std::copy(gamma.begin(), gamma.end(), static_cast<float*>(gamma_.get_data_handle()));
  std::copy(beta.begin(), beta.end(), static_cast<float*>(beta_.get_data_handle()));
  slots_.add(DNNL_ARG_SRC, data.desc());
  slots_.add(DNNL_ARG_DST, data.desc());
  slots_.add(DNNL_ARG_SCALE, vector_desc);
  slots_.add(DNNL_ARG_SHIFT, vector_desc);
  if (scratchpad_bytes_ > 0) slots_.add(DNNL_ARG_SCRATCHPAD, pd_.scratchpad_desc());
}

void LayerNorm::execute(const void* src, void* dst, void* scratchpad) const {
  void* pointers[] = {const_cast<void*>(src), dst, gamma_.get_data_handle(),
                      beta_.get_data_handle(), scratchpad};
  slots_.execute(primitive_, std::span(pointers, scratchpad_bytes_ > 0 ? 5 : 4));
}

// ---------------------------------------------------------------------------------------------

Softmax::Softmax(const Layout& src, const Layout& dst) {
  const int axis = static_cast<int>(src.dims.size()) - 1;
  pd_ = dnnl::softmax_v2_forward::primitive_desc(
      dnnl::softmax_v2_forward::desc(dnnl::prop_kind::forward_inference,
                                     dnnl::algorithm::softmax_accurate, src.desc(), dst.desc(),
                                     axis),
      user_scratchpad(), cpu_engine());
  primitive_ = dnnl::softmax_v2_forward(pd_);
  scratchpad_bytes_ = pd_.scratchpad_desc().get_size();
  slots_.add(DNNL_ARG_SRC, src.desc());
  slots_.add(DNNL_ARG_DST, dst.desc());
  if (scratchpad_bytes_ > 0) slots_.add(DNNL_ARG_SCRATCHPAD, pd_.scratchpad_desc());
}

void Softmax::execute(const void* src, void* dst, void* scratchpad) const {
  void* pointers[] = {const_cast<void*>(src), dst, scratchpad};
  slots_.execute(primitive_, std::span(pointers, scratchpad_bytes_ > 0 ? 3 : 2));
}

// ---------------------------------------------------------------------------------------------

Convert::Convert(const Layout& src, const Layout& dst) {
  pd_ = dnnl::reorder::primitive_desc(cpu_engine(), src.desc(), cpu_engine(), dst.desc(),
                                      user_scratchpad());
  primitive_ = dnnl::reorder(pd_);
  scratchpad_bytes_ = pd_.scratchpad_desc().get_size();
  slots_.add(DNNL_ARG_FROM, src.desc());
  slots_.add(DNNL_ARG_TO, dst.desc());
  if (scratchpad_bytes_ > 0) slots_.add(DNNL_ARG_SCRATCHPAD, pd_.scratchpad_desc());
}

void Convert::execute(const void* src, void* dst, void* scratchpad) const {
  void* pointers[] = {const_cast<void*>(src), dst, scratchpad};
  slots_.execute(primitive_, std::span(pointers, scratchpad_bytes_ > 0 ? 3 : 2));
}

}  // namespace iclbench::ops
