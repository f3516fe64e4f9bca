// Torch glue of the CUDA joint_attention_pool kernels (csrc/cuda/joint_attention_pool_kernel.cu): checks
// (csrc/op_rules.h, with the JNA_FAST_CHECKS=1 mask check), output and workspace allocation, launch on the
// current stream. Registered for the CUDA dispatch key.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <optional>
#include <tuple>
#include <vector>

#include "cuda/glue_utils.h"
#include "cuda/launchers.h"
#include "op_rules.h"

namespace jna_fast {
namespace cuda {
namespace {

PoolShape pool_shape(const at::Tensor& f) { return PoolShape{f.size(0), f.size(1), f.size(2)}; }

// A workspace of `elements` accumulators; launchers take nullptr when none is needed.
at::Tensor workspace_for(int64_t elements, const at::Tensor& like, at::ScalarType acc) {
  return at::empty({elements}, like.options().dtype(acc));
}

void* data_or_null(at::Tensor& t) { return t.numel() ? t.mutable_data_ptr() : nullptr; }

std::tuple<at::Tensor, at::Tensor, at::Tensor> joint_attention_pool_cuda(const at::Tensor& f_rgb,
                                                                         const at::Tensor& f_flow,
                                                                         const at::Tensor& w_rgb,
                                                                         const at::Tensor& w_flow,
                                                                         const std::optional<at::Tensor>& mask) {
  rules::check_joint_attention_pool(f_rgb, f_flow, w_rgb, w_flow, mask);
  glue::check_on_cuda(f_rgb, "f_rgb");
  const PoolShape shape = pool_shape(f_rgb);
  at::Tensor mask_dense;
  if (mask.has_value() && mask->defined()) {
    mask_dense = mask->contiguous();
  }
  const DType features = glue::launcher_dtype(f_rgb.scalar_type(), "f_rgb");
  const at::ScalarType acc = glue::accumulation_type(f_rgb.scalar_type());
  const c10::cuda::CUDAGuard guard(f_rgb.device());
  const at::Tensor rgb = f_rgb.contiguous();
  const at::Tensor flow = f_flow.contiguous();
  const at::Tensor w_rgb_acc = w_rgb.to(acc).contiguous();
  const at::Tensor w_flow_acc = w_flow.to(acc).contiguous();
  at::Tensor p_rgb = at::empty({shape.batch, shape.channels}, rgb.options());
  at::Tensor p_flow = at::empty({shape.batch, shape.channels}, rgb.options());
  at::Tensor attention = at::empty({shape.batch, shape.segments}, rgb.options().dtype(acc));
  int64_t workspace_elements = 0;
  C10_CUDA_CHECK(joint_attention_pool_forward_workspace_elements(shape, features, &workspace_elements));
  at::Tensor workspace = workspace_for(workspace_elements, rgb, acc);
  C10_CUDA_CHECK(joint_attention_pool_forward(
      rgb.const_data_ptr(), flow.const_data_ptr(), w_rgb_acc.const_data_ptr(), w_flow_acc.const_data_ptr(),
      mask_dense.defined() ? mask_dense.const_data_ptr<bool>() : nullptr, p_rgb.mutable_data_ptr(),
      p_flow.mutable_data_ptr(), attention.mutable_data_ptr(), data_or_null(workspace), shape, features,
      c10::cuda::getCurrentCUDAStream()));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {p_rgb, p_flow, attention};
}

// `attention` must be the forward's output (softmax weights, >= 0): snippets with attention 0 are skipped.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> joint_attention_pool_backward_cuda(
    const at::Tensor& grad_p_rgb, const at::Tensor& grad_p_flow, const at::Tensor& grad_attention,
    const at::Tensor& f_rgb, const at::Tensor& f_flow, const at::Tensor& w_rgb, const at::Tensor& w_flow,
    const at::Tensor& attention) {
  rules::check_joint_attention_pool_backward(grad_p_rgb, grad_p_flow, grad_attention, f_rgb, f_flow, w_rgb, w_flow,
                                             attention);
  glue::check_on_cuda(f_rgb, "f_rgb");
  const PoolShape shape = pool_shape(f_rgb);
  const DType features = glue::launcher_dtype(f_rgb.scalar_type(), "f_rgb");
  const DType w_rgb_dtype = glue::launcher_dtype(w_rgb.scalar_type(), "w_rgb");
  const DType w_flow_dtype = glue::launcher_dtype(w_flow.scalar_type(), "w_flow");
  const at::ScalarType acc = glue::accumulation_type(f_rgb.scalar_type());
  const c10::cuda::CUDAGuard guard(f_rgb.device());
  const at::Tensor rgb = f_rgb.contiguous();
  const at::Tensor flow = f_flow.contiguous();
  // The small per-clip inputs go to the kernel in the accumulation dtype (a cast of B*C or B*T elements).
  const at::Tensor dp_rgb = grad_p_rgb.to(acc).contiguous();
  const at::Tensor dp_flow = grad_p_flow.to(acc).contiguous();
  const at::Tensor da = grad_attention.to(acc).contiguous();
  const at::Tensor a = attention.to(acc).contiguous();
  const at::Tensor w_rgb_acc = w_rgb.to(acc).contiguous();
  const at::Tensor w_flow_acc = w_flow.to(acc).contiguous();
  at::Tensor df_rgb = at::empty(rgb.sizes(), rgb.options());
  at::Tensor df_flow = at::empty(rgb.sizes(), rgb.options());
  at::Tensor dw_rgb = at::empty(w_rgb.sizes(), w_rgb.options().memory_format(at::MemoryFormat::Contiguous));
  at::Tensor dw_flow = at::empty(w_flow.sizes(), w_flow.options().memory_format(at::MemoryFormat::Contiguous));
  if (shape.batch == 0) {
    dw_rgb.zero_();  // an empty sum; the kernels have nothing to do
    dw_flow.zero_();
    return {df_rgb, df_flow, dw_rgb, dw_flow};
  }
  int64_t workspace_elements = 0;
  C10_CUDA_CHECK(joint_attention_pool_backward_workspace_elements(shape, features, &workspace_elements));
  at::Tensor workspace = workspace_for(workspace_elements, rgb, acc);
  C10_CUDA_CHECK(joint_attention_pool_backward(
      dp_rgb.const_data_ptr(), dp_flow.const_data_ptr(), da.const_data_ptr(), rgb.const_data_ptr(),
      flow.const_data_ptr(), w_rgb_acc.const_data_ptr(), w_flow_acc.const_data_ptr(), a.const_data_ptr(),
      df_rgb.mutable_data_ptr(), df_flow.mutable_data_ptr(), dw_rgb.mutable_data_ptr(), w_rgb_dtype,
      dw_flow.mutable_data_ptr(), w_flow_dtype, data_or_null(workspace), shape, features,
      c10::cuda::getCurrentCUDAStream()));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {df_rgb, df_flow, dw_rgb, dw_flow};
}

}  // namespace
}  // namespace cuda
}  // namespace jna_fast

TORCH_LIBRARY_IMPL(jna_fast, CUDA, m) {
  m.impl("joint_attention_pool", &jna_fast::cuda::joint_attention_pool_cuda);
  m.impl("joint_attention_pool_backward", &jna_fast::cuda::joint_attention_pool_backward_cuda);
}
