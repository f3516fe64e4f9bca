// Helpers of the torch glue of the CUDA backend (csrc/cuda/*.cpp): dtype mapping to the launchers' DType,
// the accumulation dtype, and cheap argument checks (the op rules are in csrc/op_rules.h).
// Needs a CUDA build of torch; the kernels themselves (csrc/cuda/*.cu) do not.
#pragma once

#include <ATen/ATen.h>

#include "cuda/launchers.h"

namespace jna_fast {
namespace cuda {
namespace glue {

inline DType launcher_dtype(at::ScalarType type, const char* name) {
  switch (type) {
    case at::kFloat:
      return DType::Float32;
    case at::kDouble:
      return DType::Float64;
    case at::kBFloat16:
      return DType::BFloat16;
    case at::kHalf:
      return DType::Float16;
    default:
      TORCH_CHECK_TYPE(false, name, ": expected a float32/float64/bfloat16/float16 tensor, got ", type);
  }
  return DType::Float32;  // unreachable: TORCH_CHECK_TYPE throws
}

inline void check_floating(const at::Tensor& t, const char* name) { launcher_dtype(t.scalar_type(), name); }

// float64 features accumulate in float64 (gradcheck precision), every other dtype in float32.
inline at::ScalarType accumulation_type(at::ScalarType features) {
  return features == at::kDouble ? at::kDouble : at::kFloat;
}

inline void check_cuda(const at::Tensor& t, const char* name, const at::Tensor& first) {
  TORCH_CHECK(t.defined(), name, ": expected a tensor, got an undefined one");
  TORCH_CHECK(t.is_cuda(), name, ": the CUDA kernels take CUDA tensors, got a ", t.device().type(), " tensor");
  TORCH_CHECK(t.device() == first.device(), name, " is on ", t.device(), " but the features are on ",
              first.device(), "; all inputs must share a device");
}

}  // namespace glue
}  // namespace cuda
}  // namespace jna_fast
