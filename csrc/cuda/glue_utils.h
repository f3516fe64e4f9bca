// Helpers of the torch glue of the CUDA backend (csrc/cuda/*.cpp): dtype mapping to the launchers' DType and
// the accumulation dtype. The input checks are csrc/op_rules.h's, shared with the CPU backend.
// Needs a CUDA build of torch; the kernels themselves (csrc/cuda/*.cu) do not.
#pragma once

#include <ATen/ATen.h>

#include "cuda/launchers.h"
#include "op_rules.h"

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
      rules::raise_input_error("not_floating", {{"name", name}, {"got", rules::text(type)}});
  }
}

// float64 features accumulate in float64 (gradcheck precision), every other dtype in float32.
inline at::ScalarType accumulation_type(at::ScalarType features) {
  return features == at::kDouble ? at::kDouble : at::kFloat;
}

// The dispatcher sends a call here when any input is a CUDA tensor; after op_rules' same-device check, the
// first input being a CUDA tensor means they all are.
inline void check_on_cuda(const at::Tensor& first, const char* name) {
  TORCH_INTERNAL_ASSERT(first.is_cuda(), name, " reached the CUDA kernels on ", first.device());
}

}  // namespace glue
}  // namespace cuda
}  // namespace jna_fast
