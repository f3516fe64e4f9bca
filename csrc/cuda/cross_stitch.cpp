// Torch glue of the CUDA cross_stitch kernels (csrc/cuda/cross_stitch_kernel.cu): checks (csrc/op_rules.h),
// layout choice, output and workspace allocation, launch on the current stream. Registered for the CUDA dispatch
// key.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <tuple>

#include "cuda/glue_utils.h"
#include "cuda/launchers.h"
#include "op_rules.h"

namespace jna_fast {
namespace cuda {
namespace {

CrossStitchShape stitch_shape(const at::Tensor& x, at::MemoryFormat format) {
  return CrossStitchShape{x.size(0), x.size(1), x.size(2) * x.size(3),
                          format == at::MemoryFormat::ChannelsLast ? FeatureLayout::NHWC : FeatureLayout::NCHW};
}

std::tuple<at::Tensor, at::Tensor> cross_stitch_cuda(const at::Tensor& x_rgb, const at::Tensor& x_flow,
                                                     const at::Tensor& alpha) {
  rules::check_cross_stitch(x_rgb, x_flow, alpha);
  glue::check_on_cuda(x_rgb, "x_rgb");
  const DType features = glue::launcher_dtype(x_rgb.scalar_type(), "x_rgb");
  const c10::cuda::CUDAGuard guard(x_rgb.device());
  const at::MemoryFormat format = rules::feature_map_format(x_rgb);
  const at::Tensor rgb = x_rgb.contiguous(format);
  const at::Tensor flow = x_flow.contiguous(format);
  const at::Tensor alpha_acc = alpha.to(glue::accumulation_type(x_rgb.scalar_type())).contiguous();
  at::Tensor y_rgb = at::empty(rgb.sizes(), rgb.options().memory_format(format));
  at::Tensor y_flow = at::empty(rgb.sizes(), rgb.options().memory_format(format));
  C10_CUDA_CHECK(cross_stitch_forward(rgb.const_data_ptr(), flow.const_data_ptr(), alpha_acc.const_data_ptr(),
                                      y_rgb.mutable_data_ptr(), y_flow.mutable_data_ptr(), stitch_shape(rgb, format),
                                      features, c10::cuda::getCurrentCUDAStream()));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {y_rgb, y_flow};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> cross_stitch_backward_cuda(const at::Tensor& grad_rgb,
                                                                          const at::Tensor& grad_flow,
                                                                          const at::Tensor& x_rgb,
                                                                          const at::Tensor& x_flow,
                                                                          const at::Tensor& alpha) {
  rules::check_cross_stitch_backward(grad_rgb, grad_flow, x_rgb, x_flow, alpha);
  glue::check_on_cuda(x_rgb, "x_rgb");
  const DType features = glue::launcher_dtype(x_rgb.scalar_type(), "x_rgb");
  const DType alpha_dtype = glue::launcher_dtype(alpha.scalar_type(), "alpha");
  const c10::cuda::CUDAGuard guard(x_rgb.device());
  const at::MemoryFormat format = rules::feature_map_format(x_rgb);
  const at::ScalarType acc = glue::accumulation_type(x_rgb.scalar_type());
  const at::Tensor rgb = x_rgb.contiguous(format);
  const at::Tensor flow = x_flow.contiguous(format);
  const at::Tensor dy_rgb = grad_rgb.to(x_rgb.scalar_type()).contiguous(format);
  const at::Tensor dy_flow = grad_flow.to(x_rgb.scalar_type()).contiguous(format);
  const at::Tensor alpha_acc = alpha.to(acc).contiguous();
  at::Tensor dx_rgb = at::empty(rgb.sizes(), rgb.options().memory_format(format));
  at::Tensor dx_flow = at::empty(rgb.sizes(), rgb.options().memory_format(format));
  at::Tensor dalpha = at::empty(alpha.sizes(), alpha.options().memory_format(at::MemoryFormat::Contiguous));
  const CrossStitchShape shape = stitch_shape(rgb, format);
  if (rgb.numel() == 0) {
    dalpha.zero_();  // an empty sum; the kernels have nothing to do
    return {dx_rgb, dx_flow, dalpha};
  }
  int64_t workspace_elements = 0;
  C10_CUDA_CHECK(cross_stitch_backward_workspace_elements(shape, features, &workspace_elements));
  at::Tensor workspace = at::empty({workspace_elements}, rgb.options().dtype(acc));
  C10_CUDA_CHECK(cross_stitch_backward(dy_rgb.const_data_ptr(), dy_flow.const_data_ptr(), rgb.const_data_ptr(),
                                       flow.const_data_ptr(), alpha_acc.const_data_ptr(), dx_rgb.mutable_data_ptr(),
                                       dx_flow.mutable_data_ptr(), dalpha.mutable_data_ptr(), alpha_dtype,
                                       workspace.mutable_data_ptr(), shape, features,
                                       c10::cuda::getCurrentCUDAStream()));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {dx_rgb, dx_flow, dalpha};
}

}  // namespace
}  // namespace cuda
}  // namespace jna_fast

TORCH_LIBRARY_IMPL(jna_fast, CUDA, m) {
  m.impl("cross_stitch", &jna_fast::cuda::cross_stitch_cuda);
  m.impl("cross_stitch_backward", &jna_fast::cuda::cross_stitch_backward_cuda);
}
