// The op rules every C++ backend (csrc/cpu, csrc/cuda glue) shares, in one place: the input checks and their
// messages, cross_stitch's layout choice, the JNA_FAST_CHECKS switch and the all-False mask check. Their Python
// twin, for the Triton and reference backends and the fake kernels, is jna_fast/_op_rules.py;
// tests/test_op_rules.py and tests/test_op_errors.py check that the two agree.
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
#include <cstring>
#include <initializer_list>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

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

// One message per broken input rule, the same text from every backend: the twin of INPUT_ERRORS in
// jna_fast/_op_rules.py (tests/test_op_errors.py parses this table and compares). TypeError entries throw
// c10::TypeError (TORCH_CHECK_TYPE), ValueError entries c10::ValueError (TORCH_CHECK_VALUE): Python sees the
// same exception types as from the Python backends. "not_tensor" is Python's only: the op schema takes tensors.
enum class ErrorKind { TypeError, ValueError };

struct InputError {
  const char* rule;
  ErrorKind kind;
  const char* message;
};

// clang-format off
inline constexpr InputError kInputErrors[] = {
    {"not_floating", ErrorKind::TypeError, "{name}: expected a float32/float64/bfloat16/float16 tensor, got {got}"},
    {"dtype_mismatch", ErrorKind::TypeError, "{name}: expected the dtype of {like} ({expected}), got {got}"},
    {"device_mismatch", ErrorKind::ValueError,
     "{name} is on {got} but {like} is on {expected}; all inputs must share a device"},
    {"feature_map_rank", ErrorKind::ValueError, "x_rgb: expected a 4-d feature map [N, C, H, W], got shape {got}"},
    {"snippet_features_rank", ErrorKind::ValueError, "f_rgb: expected snippet features [B, T, C], got shape {got}"},
    {"no_snippets", ErrorKind::ValueError, "f_rgb: expected at least one snippet (T >= 1), got T = 0"},
    {"shape_mismatch", ErrorKind::ValueError, "{name}: expected the shape of {like} {expected}, got {got}"},
    {"shape", ErrorKind::ValueError, "{name}: expected shape {dims} = {expected}, got {got}"},
    {"mask_dtype", ErrorKind::TypeError, "mask: expected a bool tensor, got {got}"},
    {"mask_rows", ErrorKind::ValueError,
     "mask: rows {rows} are all False; every clip needs at least one real snippet "
     "(set mask[b, t] = True for real snippets)"},
};
// clang-format on

using Fields = std::initializer_list<std::pair<const char*, std::string>>;

// How Python prints these values, so that both languages fill the templates alike.
inline std::string text(at::IntArrayRef sizes) {
  std::ostringstream out;
  out << sizes;  // [2, 3, 4]
  return out.str();
}

inline std::string text(const c10::Device& device) { return device.str(); }

inline std::string text(at::ScalarType type) {
  switch (type) {
    case at::kFloat: return "torch.float32";
    case at::kDouble: return "torch.float64";
    case at::kBFloat16: return "torch.bfloat16";
    case at::kHalf: return "torch.float16";
    case at::kBool: return "torch.bool";
    case at::kByte: return "torch.uint8";
    case at::kChar: return "torch.int8";
    case at::kShort: return "torch.int16";
    case at::kInt: return "torch.int32";
    case at::kLong: return "torch.int64";
    case at::kComplexFloat: return "torch.complex64";
    case at::kComplexDouble: return "torch.complex128";
    default: return std::string("torch.") + c10::toString(type);
  }
}

[[noreturn]] inline void raise_input_error(const char* rule, Fields fields) {
  const InputError* entry = nullptr;
  for (const InputError& e : kInputErrors) {
    if (std::strcmp(e.rule, rule) == 0) entry = &e;
  }
  TORCH_INTERNAL_ASSERT(entry != nullptr, "no input error rule '", rule, "' in kInputErrors");
  std::string message(entry->message);
  for (const auto& [key, value] : fields) {
    const std::string placeholder = std::string("{") + key + "}";
    for (size_t at = message.find(placeholder); at != std::string::npos;
         at = message.find(placeholder, at + value.size())) {
      message.replace(at, placeholder.size(), value);
    }
  }
  if (entry->kind == ErrorKind::TypeError) TORCH_CHECK_TYPE(false, message);
  TORCH_CHECK_VALUE(false, message);
}

inline void require_floating(const at::Tensor& t, const char* name) {
  const at::ScalarType type = t.scalar_type();
  if (type != at::kFloat && type != at::kDouble && type != at::kBFloat16 && type != at::kHalf) {
    raise_input_error("not_floating", {{"name", name}, {"got", text(type)}});
  }
}

// `t` has the shape and dtype of `like`.
inline void require_like(const at::Tensor& t, const char* name, const at::Tensor& like, const char* like_name) {
  if (t.sizes() != like.sizes()) {
    raise_input_error("shape_mismatch", {{"name", name},
                                         {"like", like_name},
                                         {"expected", text(like.sizes())},
                                         {"got", text(t.sizes())}});
  }
  if (t.scalar_type() != like.scalar_type()) {
    raise_input_error("dtype_mismatch", {{"name", name},
                                         {"like", like_name},
                                         {"expected", text(like.scalar_type())},
                                         {"got", text(t.scalar_type())}});
  }
}

inline void require_shape(const at::Tensor& t, const char* name, const char* dims, at::IntArrayRef expected) {
  if (t.sizes() != expected) {
    raise_input_error("shape",
                      {{"name", name}, {"dims", dims}, {"expected", text(expected)}, {"got", text(t.sizes())}});
  }
}

using Named = std::vector<std::pair<const char*, const at::Tensor*>>;

inline void require_same_device(const Named& named) {
  const auto& [first_name, first] = named.front();
  for (const auto& [name, t] : named) {
    if (t->device() != first->device()) {
      raise_input_error("device_mismatch", {{"name", name},
                                            {"got", text(t->device())},
                                            {"like", first_name},
                                            {"expected", text(first->device())}});
    }
  }
}

// The input rules of cross_stitch, in the order of jna_fast/_op_rules.py's check_cross_stitch.
inline void check_cross_stitch(const at::Tensor& x_rgb, const at::Tensor& x_flow, const at::Tensor& alpha) {
  const Named named{{"x_rgb", &x_rgb}, {"x_flow", &x_flow}, {"alpha", &alpha}};
  for (const auto& [name, t] : named) require_floating(*t, name);
  if (x_rgb.dim() != 4) raise_input_error("feature_map_rank", {{"got", text(x_rgb.sizes())}});
  require_like(x_flow, "x_flow", x_rgb, "x_rgb");
  require_shape(alpha, "alpha", "[C, 2, 2]", {x_rgb.size(1), 2, 2});
  require_same_device(named);
}

inline void check_cross_stitch_backward(const at::Tensor& grad_rgb, const at::Tensor& grad_flow,
                                        const at::Tensor& x_rgb, const at::Tensor& x_flow, const at::Tensor& alpha) {
  check_cross_stitch(x_rgb, x_flow, alpha);
  const Named named{{"x_rgb", &x_rgb}, {"grad_rgb", &grad_rgb}, {"grad_flow", &grad_flow}};
  for (size_t i = 1; i < named.size(); ++i) {
    const auto& [name, t] = named[i];
    if (t->sizes() != x_rgb.sizes()) {
      raise_input_error("shape_mismatch", {{"name", name},
                                           {"like", "x_rgb"},
                                           {"expected", text(x_rgb.sizes())},
                                           {"got", text(t->sizes())}});
    }
  }
  require_same_device(named);
}

inline Named check_pool_features(const at::Tensor& f_rgb, const at::Tensor& f_flow, const at::Tensor& w_rgb,
                                 const at::Tensor& w_flow) {
  Named named{{"f_rgb", &f_rgb}, {"f_flow", &f_flow}, {"w_rgb", &w_rgb}, {"w_flow", &w_flow}};
  for (const auto& [name, t] : named) require_floating(*t, name);
  if (f_rgb.dim() != 3) raise_input_error("snippet_features_rank", {{"got", text(f_rgb.sizes())}});
  if (f_rgb.size(1) == 0) raise_input_error("no_snippets", {});
  require_like(f_flow, "f_flow", f_rgb, "f_rgb");
  require_shape(w_rgb, "w_rgb", "[C]", {f_rgb.size(2)});
  require_shape(w_flow, "w_flow", "[C]", {f_rgb.size(2)});
  return named;
}

// A clip whose mask row is all False has no snippet to attend to (docs/design.md §4.4). Checked always on CPU; on
// a GPU the check syncs the device, so only with JNA_FAST_CHECKS=1; unchecked, such a row pools to zeros.
inline void check_mask_rows(const at::Tensor& mask) {
  if (mask.size(0) == 0 || (!mask.is_cpu() && !checks_enabled())) return;
  const at::Tensor empty_rows = mask.any(1).logical_not().nonzero().flatten().cpu();
  const int64_t count = empty_rows.numel();
  if (count == 0) return;
  constexpr int64_t kShown = 8;
  const int64_t* data = empty_rows.const_data_ptr<int64_t>();
  std::string rows = text(at::IntArrayRef(data, std::min(count, kShown)));
  if (count > kShown) rows += "...";
  raise_input_error("mask_rows", {{"rows", rows}});
}

// The input rules of joint_attention_pool, in the order of jna_fast/_op_rules.py's check_joint_attention_pool,
// then the all-False mask rows.
inline void check_joint_attention_pool(const at::Tensor& f_rgb, const at::Tensor& f_flow, const at::Tensor& w_rgb,
                                       const at::Tensor& w_flow, const std::optional<at::Tensor>& mask) {
  Named named = check_pool_features(f_rgb, f_flow, w_rgb, w_flow);
  const bool has_mask = mask.has_value() && mask->defined();
  if (has_mask) {
    if (mask->scalar_type() != at::kBool) raise_input_error("mask_dtype", {{"got", text(mask->scalar_type())}});
    require_shape(*mask, "mask", "[B, T]", {f_rgb.size(0), f_rgb.size(1)});
    named.emplace_back("mask", &*mask);
  }
  require_same_device(named);
  if (has_mask) check_mask_rows(*mask);
}

inline void check_joint_attention_pool_backward(const at::Tensor& grad_p_rgb, const at::Tensor& grad_p_flow,
                                                const at::Tensor& grad_attention, const at::Tensor& f_rgb,
                                                const at::Tensor& f_flow, const at::Tensor& w_rgb,
                                                const at::Tensor& w_flow, const at::Tensor& attention) {
  Named named = check_pool_features(f_rgb, f_flow, w_rgb, w_flow);
  const int64_t batch = f_rgb.size(0), segments = f_rgb.size(1), channels = f_rgb.size(2);
  require_shape(grad_p_rgb, "grad_p_rgb", "[B, C]", {batch, channels});
  require_shape(grad_p_flow, "grad_p_flow", "[B, C]", {batch, channels});
  require_shape(grad_attention, "grad_attention", "[B, T]", {batch, segments});
  require_shape(attention, "attention", "[B, T]", {batch, segments});
  named.insert(named.end(), {{"grad_p_rgb", &grad_p_rgb},
                             {"grad_p_flow", &grad_p_flow},
                             {"grad_attention", &grad_attention},
                             {"attention", &attention}});
  require_same_device(named);
}

}  // namespace rules
}  // namespace jna_fast
