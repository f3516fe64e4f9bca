// Op schemas of jna_fast (docs/design.md §3, §4). Kernels register per backend in csrc/cpu and csrc/cuda;
// fake kernels and autograd are attached in Python (jna_fast/_op_rules.py).
#include <ATen/Parallel.h>
#include <torch/extension.h>
#include <torch/library.h>

#include <atomic>
#include <memory>

#include "cpu/output_memory.h"

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

// How many threads an at::parallel_for in this extension runs on, for a loop with enough work for all of them.
// The CPU kernels parallelise with at::parallel_for, which runs serially in a build without OpenMP; this makes
// that visible (jna_fast.info, tests) instead of leaving it to show up as a slow kernel.
int64_t cpu_threads_used() {
  const int64_t threads = at::get_num_threads();
  const auto ran = std::make_unique<std::atomic<bool>[]>(static_cast<size_t>(threads));
  at::parallel_for(0, 64 * threads, 1, [&](int64_t, int64_t) { ran[at::get_thread_num()] = true; });
  int64_t used = 0;
  for (int64_t i = 0; i < threads; ++i) {
    used += ran[i] ? 1 : 0;
  }
  return used;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "jna_fast native ops; importing this module registers the jna_fast:: ops with torch.library";
  m.def("compiled_backends", &compiled_backends, "backends this build has kernels for");
  m.def("cpu_threads_used", &cpu_threads_used, "threads an at::parallel_for of this extension runs on");
  m.def("cpu_output_cache_idle_bytes", &jna_fast::cpu::output_cache_idle_bytes,
        "bytes of idle recycled CPU output buffers held (csrc/cpu/output_memory.h)");
  m.def("empty_cpu_output_cache", &jna_fast::cpu::empty_output_cache, "frees the idle recycled CPU output buffers");
  m.def(
      "cpu_empty_output",
      [](const std::vector<int64_t>& sizes, const at::Tensor& like) {
        return jna_fast::cpu::empty_output(sizes, like.options());
      },
      "an uninitialised CPU kernel output of `sizes` with the dtype of `like` (how the kernels allocate)");
  m.def("cuda_arch_list", &cuda_arch_list, "CUDA architectures this build targets (empty without CUDA)");
}
