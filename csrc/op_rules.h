// The op rules every C++ backend (csrc/cpu, csrc/cuda glue) shares, in one place. Their Python twin, for the
// Triton and reference backends and the fake kernels, is jna_fast/_op_rules.py; tests/test_op_rules.py checks
// that the two agree (layout choice, the JNA_FAST_CHECKS switch, the all-False mask error message).
//
// Non-finite values (stated in full in jna_fast/_op_rules.py; csrc/cpu and csrc/cuda apply it):
// joint_attention_pool: a real snippet whose score is not finite (NaN, +inf or -inf: NaN/inf in its features or
// in w, or an overflowing sum) makes its clip's p and its real a NaN, and in the backward that clip's df at real
// snippets and all of dw NaN. a stays exactly 0 at masked snippets; masked snippets are never read, so nothing
// they hold reaches any output or gradient. cross_stitch: plain element-wise IEEE arithmetic.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdlib>
#include <string>

namespace jna_fast {
namespace rules {

// cross_stitch works (and writes) channels_last iff x_rgb is channels_last-dense and not also plain-contiguous
// (shapes like [N, C, 1, 1] are both); else NCHW.
inline bool feature_map_is_nhwc(const at::Tensor& x) {
  return !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast);
}

inline at::MemoryFormat feature_map_format(const at::Tensor& x) {
  return feature_map_is_nhwc(x) ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
}

// JNA_FAST_CHECKS=1 turns on the checks that cost a device sync on GPU tensors.
inline bool checks_enabled() {
  const char* value = std::getenv("JNA_FAST_CHECKS");
  if (value == nullptr) return false;
  const std::string text(value);
  return !(text.empty() || text == "0" || text == "false" || text == "False");
}

// A clip whose mask row is all False has no snippet to attend to (DESIGN §2.2). Checked always on CPU; on a
// GPU the check syncs the device, so only with JNA_FAST_CHECKS=1; unchecked, such a row pools to zeros.
inline void check_mask_rows(const at::Tensor& mask) {
  if (mask.size(0) == 0 || (!mask.is_cpu() && !checks_enabled())) return;
  const at::Tensor empty_rows = mask.any(1).logical_not().nonzero().flatten().cpu();
  const int64_t count = empty_rows.numel();
  if (count == 0) return;
  constexpr int64_t kShown = 8;
  std::string rows = "[";
  const int64_t* data = empty_rows.const_data_ptr<int64_t>();
  for (int64_t i = 0; i < std::min(count, kShown); ++i) rows += (i ? ", " : "") + std::to_string(data[i]);
  rows += "]";
  TORCH_CHECK_VALUE(false, "mask: rows ", rows, count > kShown ? "..." : "",
                    " are all False; every clip needs at least one real snippet (set mask[b, t] = True for real "
                    "snippets)");
}

}  // namespace rules
}  // namespace jna_fast
