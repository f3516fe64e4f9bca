// Plain C++ entry points of the CUDA kernels (csrc/cuda/*.cu). They take raw pointers and sizes, need only
// the CUDA runtime, and so compile with nvcc alone (the CI compile-check); the torch glue
// (csrc/cuda/*.cpp) validates tensors, allocates outputs and workspaces, and calls these.
//
// Conventions shared by every launcher:
// - Feature tensors (x_*, f_*, their grads' outputs) are dense in the stated layout, all of dtype `features`.
// - Accumulation type: double when features are Float64, else float ("acc" below). Parameters (alpha, w_*)
//   and small per-row inputs (grad_p, grad_attention, attention) are passed pre-converted to acc, contiguous.
// - Parameter gradients (dalpha, dw_*) are written in their own dtype (`*_dtype`).
// - Every launcher enqueues on `stream` and returns the first CUDA error it saw (cudaSuccess otherwise).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace jna_fast {
namespace cuda {

enum class DType { Float32, Float64, BFloat16, Float16 };

enum class FeatureLayout { NCHW, NHWC };

// ---- cross_stitch (docs/design.md §3) ----
struct CrossStitchShape {
  int64_t batch;     // N
  int64_t channels;  // C
  int64_t spatial;   // H * W
  FeatureLayout layout;
};

// y_rgb = a00 x_rgb + a01 x_flow, y_flow = a10 x_rgb + a11 x_flow; alpha_acc is [C, 4] in acc.
cudaError_t cross_stitch_forward(const void* x_rgb, const void* x_flow, const void* alpha_acc, void* y_rgb,
                                 void* y_flow, CrossStitchShape shape, DType features, cudaStream_t stream);

// Elements (of acc) of the workspace cross_stitch_backward needs for the per-block dalpha partial sums, for
// the current device.
cudaError_t cross_stitch_backward_workspace_elements(CrossStitchShape shape, DType features, int64_t* elements);

// dx_rgb = a00 dy_rgb + a10 dy_flow, dx_flow = a01 dy_rgb + a11 dy_flow, dalpha[c,i,j] = sum dy_i x_j.
// dalpha ([C, 2, 2] contiguous) is written in alpha_dtype; workspace holds
// cross_stitch_backward_workspace_elements(shape) acc elements.
cudaError_t cross_stitch_backward(const void* grad_rgb, const void* grad_flow, const void* x_rgb,
                                  const void* x_flow, const void* alpha_acc, void* dx_rgb, void* dx_flow,
                                  void* dalpha, DType alpha_dtype, void* workspace, CrossStitchShape shape,
                                  DType features, cudaStream_t stream);

// ---- joint_attention_pool (docs/design.md §4) ----
struct PoolShape {
  int64_t batch;     // B
  int64_t segments;  // T
  int64_t channels;  // C
};

// Elements (of acc) of global workspace the forward needs on the current device (the per-chunk partial scores;
// the channel split depends on the device's SM count).
cudaError_t joint_attention_pool_forward_workspace_elements(PoolShape shape, DType features, int64_t* elements);

// f_* [B, T, C] contiguous; w_*_acc [C]; mask [B, T] bool contiguous or nullptr; p_* [B, C] in features;
// attention [B, T] in acc. A row with no True mask entry gives p = 0 and attention = 0.
cudaError_t joint_attention_pool_forward(const void* f_rgb, const void* f_flow, const void* w_rgb_acc,
                                         const void* w_flow_acc, const bool* mask, void* p_rgb, void* p_flow,
                                         void* attention, void* workspace, PoolShape shape, DType features,
                                         cudaStream_t stream);

// Elements (of acc) of global workspace the backward needs on the current device (the per-chunk partial dots,
// de, and the per-clip dw partials).
cudaError_t joint_attention_pool_backward_workspace_elements(PoolShape shape, DType features, int64_t* elements);

// grad_p_*_acc [B, C], grad_attention_acc and attention_acc [B, T] in acc; df_* [B, T, C] in features;
// dw_* [C] in their own dtypes.
cudaError_t joint_attention_pool_backward(const void* grad_p_rgb_acc, const void* grad_p_flow_acc,
                                          const void* grad_attention_acc, const void* f_rgb, const void* f_flow,
                                          const void* w_rgb_acc, const void* w_flow_acc, const void* attention_acc,
                                          void* df_rgb, void* df_flow, void* dw_rgb, DType w_rgb_dtype,
                                          void* dw_flow, DType w_flow_dtype, void* workspace, PoolShape shape,
                                          DType features, cudaStream_t stream);

}  // namespace cuda
}  // namespace jna_fast
