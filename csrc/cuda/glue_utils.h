// Helpers of the torch glue of the CUDA backend (csrc/cuda/*.cpp): dtype mapping to the launchers' DType,
// the accumulation dtype, cheap argument checks, and the JNA_FAST_CHECKS=1 all-False mask row check.
// Needs a CUDA build of torch; the kernels themselves (csrc/cuda/*.cu) do not.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdlib>
#include <string>

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

// Same switch as jna_fast/ops/validation.py::checks_enabled.
inline bool checks_enabled() {
  const char* value = std::getenv("JNA_FAST_CHECKS");
  if (value == nullptr) return false;
  const std::string text(value);
  return !(text.empty() || text == "0" || text == "false" || text == "False");
}

// A clip whose mask row is all False has nothing to attend to. On the GPU the check needs a device sync, so
// it runs only with JNA_FAST_CHECKS=1 (DESIGN §2.2); unchecked, such a row pools to zeros.
inline void check_mask_rows_if_enabled(const at::Tensor& mask) {
  if (!checks_enabled() || mask.size(0) == 0) return;
  const at::Tensor empty_rows = mask.any(1).logical_not().nonzero().flatten().cpu();
  const int64_t count = empty_rows.numel();
  if (count == 0) return;
  constexpr int64_t kShown = 8;
  std::string rows = "[";
  const int64_t* data = empty_rows.data_ptr<int64_t>();
  for (int64_t i = 0; i < std::min(count, kShown); ++i) rows += (i ? ", " : "") + std::to_string(data[i]);
  rows += "]";
  TORCH_CHECK_VALUE(false, "mask: rows ", rows, count > kShown ? "..." : "",
                    " are all False; every clip needs at least one real snippet (set mask[b, t] = True for real "
                    "snippets)");
}

}  // namespace glue
}  // namespace cuda
}  // namespace jna_fast
