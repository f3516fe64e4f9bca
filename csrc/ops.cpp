// Op schemas of jna_fast (DESIGN §2.1, §2.2). Kernels register per backend in csrc/cpu and csrc/cuda;
// fake kernels and autograd are attached in Python (jna_fast/ops/registration.py).
#include <torch/extension.h>
#include <torch/library.h>

TORCH_LIBRARY(jna_fast, m) {
  m.def("cross_stitch(Tensor x_rgb, Tensor x_flow, Tensor alpha) -> (Tensor, Tensor)");
  m.def(
      "cross_stitch_backward(Tensor grad_rgb, Tensor grad_flow, Tensor x_rgb, Tensor x_flow, Tensor alpha)"
      " -> (Tensor, Tensor, Tensor)");
  m.def(
      "joint_attention_pool(Tensor f_rgb, Tensor f_flow, Tensor w_rgb, Tensor w_flow, Tensor? mask)"
      " -> (Tensor, Tensor, Tensor)");
  m.def(
      "joint_attention_pool_backward(Tensor grad_p_rgb, Tensor grad_p_flow, Tensor grad_attention,"
      " Tensor f_rgb, Tensor f_flow, Tensor w_rgb, Tensor w_flow, Tensor attention)"
      " -> (Tensor, Tensor, Tensor, Tensor)");
}

namespace {

std::vector<std::string> compiled_backends() {
  std::vector<std::string> backends{"cpu"};
#ifdef JNA_FAST_WITH_CUDA
  backends.emplace_back("cuda");
#endif
  return backends;
}

std::string cuda_arch_list() {
#ifdef JNA_FAST_CUDA_ARCHS
  return JNA_FAST_CUDA_ARCHS;
#else
  return "";
#endif
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "jna_fast native ops; importing this module registers the jna_fast:: ops with torch.library";
  m.def("compiled_backends", &compiled_backends, "backends this build has kernels for");
  m.def("cuda_arch_list", &cuda_arch_list, "CUDA architectures this build targets (empty without CUDA)");
}
