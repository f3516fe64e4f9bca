// joint_attention_pool on CPU (DESIGN §2.2, §3), parallel over clips, vectorised over C.
// Forward: one pass over each clip's snippets with an online softmax (running max and sum, accumulators
// rescaled when the max grows), so f is read once and |scores| up to 1e4 cannot overflow.
// Backward: per clip, pass 1 reads f for g[t] = <dp_rgb, f_rgb[t]> + <dp_flow, f_flow[t]> + grad_attention[t];
// pass 2 writes df[t] = a[t] dp + de[t] w and adds de[t] f[t] into dw, re-reading the clip's f from cache
// (T*C elements; in reverse order, most recently read first). dw is reduced over clips via per-thread partials.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <cmath>
#include <limits>
#include <sstream>
#include <tuple>

#include "cpu/vectorized_io.h"

namespace jna_fast::cpu {
namespace {

// Elements per parallel chunk: enough to amortise the scheduling, small enough to balance two threads.
constexpr int64_t kChunkElements = 32768;

// <x_rgb, y_rgb> + <x_flow, y_flow> over `channels`, x in the feature dtype, y in the accumulation type.
template <typename scalar_t>
inline acc_t<scalar_t> joint_dot(const scalar_t* x_rgb, const acc_t<scalar_t>* y_rgb, const scalar_t* x_flow,
                                 const acc_t<scalar_t>* y_flow, int64_t channels) {
  using Vec = AccVec<scalar_t>;
  constexpr int64_t width = Vec::size();
  Vec sum_rgb(0), sum_flow(0);
  for (int64_t j = 0; j < channels; j += width) {
    const int64_t count = std::min(width, channels - j);
    sum_rgb = at::vec::fmadd(load_span(x_rgb + j, count), load_span(y_rgb + j, count), sum_rgb);
    sum_flow = at::vec::fmadd(load_span(x_flow + j, count), load_span(y_flow + j, count), sum_flow);
  }
  return sum_lanes(sum_rgb + sum_flow);
}

// acc = acc * rescale + weight * f over a padded accumulator row (f's missing tail lanes load as zero).
template <typename scalar_t>
inline void rescale_accumulate(acc_t<scalar_t>* acc, const scalar_t* f, acc_t<scalar_t> rescale,
                               acc_t<scalar_t> weight, int64_t channels) {
  using Vec = AccVec<scalar_t>;
  constexpr int64_t width = Vec::size();
  const Vec rescale_v(rescale), weight_v(weight);
  for (int64_t j = 0; j < channels; j += width) {
    const auto x = load_span(f + j, std::min(width, channels - j));
    at::vec::fmadd(weight_v, x, Vec::loadu(acc + j) * rescale_v).store(acc + j);
  }
}

// acc += weight * f (no rescale: the common case once the running max has settled).
template <typename scalar_t>
inline void accumulate(acc_t<scalar_t>* acc, const scalar_t* f, acc_t<scalar_t> weight, int64_t channels) {
  using Vec = AccVec<scalar_t>;
  constexpr int64_t width = Vec::size();
  const Vec weight_v(weight);
  for (int64_t j = 0; j < channels; j += width) {
    const auto x = load_span(f + j, std::min(width, channels - j));
    at::vec::fmadd(weight_v, x, Vec::loadu(acc + j)).store(acc + j);
  }
}

template <typename scalar_t>
inline void store_scaled(scalar_t* out, const acc_t<scalar_t>* acc, acc_t<scalar_t> scale, int64_t channels) {
  using Vec = AccVec<scalar_t>;
  constexpr int64_t width = Vec::size();
  const Vec scale_v(scale);
  for (int64_t j = 0; j < channels; j += width) {
    store_span(out + j, Vec::loadu(acc + j) * scale_v, std::min(width, channels - j));
  }
}

template <typename scalar_t>
void forward_kernel(const scalar_t* f_rgb, const scalar_t* f_flow, const acc_t<scalar_t>* w_rgb,
                    const acc_t<scalar_t>* w_flow, const bool* mask, scalar_t* p_rgb, scalar_t* p_flow,
                    acc_t<scalar_t>* attention, int64_t batch, int64_t segments, int64_t channels) {
  using acc_type = acc_t<scalar_t>;
  const int64_t padded = round_up(channels, AccVec<scalar_t>::size());
  const int64_t clip_elements = std::max<int64_t>(segments * channels, 1);
  at::parallel_for(0, batch, std::max<int64_t>(1, kChunkElements / clip_elements), [&](int64_t begin, int64_t end) {
    std::vector<acc_type> sums(static_cast<size_t>(2 * padded));
    acc_type* sum_rgb = sums.data();
    acc_type* sum_flow = sums.data() + padded;
    for (int64_t b = begin; b < end; ++b) {
      std::fill(sums.begin(), sums.end(), acc_type(0));
      acc_type* scores = attention + b * segments;
      acc_type running_max = -std::numeric_limits<acc_type>::infinity();
      acc_type running_sum = 0;
      for (int64_t t = 0; t < segments; ++t) {
        const int64_t row = b * segments + t;
        if (mask != nullptr && !mask[row]) {
          scores[t] = -std::numeric_limits<acc_type>::infinity();
          continue;
        }
        const scalar_t* fr = f_rgb + row * channels;
        const scalar_t* ff = f_flow + row * channels;
        const acc_type score = joint_dot(fr, w_rgb, ff, w_flow, channels);
        scores[t] = score;
        if (score > running_max) {
          // New max: the snippet gets weight 1 and everything so far shrinks by exp(old max - new max).
          const acc_type rescale = std::exp(running_max - score);
          running_max = score;
          running_sum = running_sum * rescale + 1;
          rescale_accumulate(sum_rgb, fr, rescale, acc_type(1), channels);
          rescale_accumulate(sum_flow, ff, rescale, acc_type(1), channels);
        } else {
          const acc_type weight = std::exp(score - running_max);
          running_sum += weight;
          accumulate(sum_rgb, fr, weight, channels);
          accumulate(sum_flow, ff, weight, channels);
        }
      }
      // running_sum is 0 only for an all-masked row (rejected before the kernel): pool it to zeros.
      const acc_type inverse = running_sum > 0 ? acc_type(1) / running_sum : acc_type(0);
      store_scaled(p_rgb + b * channels, sum_rgb, inverse, channels);
      store_scaled(p_flow + b * channels, sum_flow, inverse, channels);
      for (int64_t t = 0; t < segments; ++t) {
        scores[t] = running_sum > 0 ? std::exp(scores[t] - running_max) * inverse : acc_type(0);
      }
    }
  });
}

// One snippet row of the backward, one branch: df = a dp + de w; dw_clip += de f (skipped when de == 0).
template <typename scalar_t>
inline void backward_row(const scalar_t* f, const acc_t<scalar_t>* dp, const acc_t<scalar_t>* w,
                         acc_t<scalar_t> a, acc_t<scalar_t> de, scalar_t* df, acc_t<scalar_t>* dw_clip,
                         int64_t channels) {
  using Vec = AccVec<scalar_t>;
  constexpr int64_t width = Vec::size();
  const Vec a_v(a), de_v(de);
  for (int64_t j = 0; j < channels; j += width) {
    const int64_t count = std::min(width, channels - j);
    store_span(df + j, at::vec::fmadd(a_v, load_span(dp + j, count), de_v * load_span(w + j, count)), count);
  }
  if (de != 0) {
    for (int64_t j = 0; j < channels; j += width) {
      const auto x = load_span(f + j, std::min(width, channels - j));
      at::vec::fmadd(de_v, x, Vec::loadu(dw_clip + j)).store(dw_clip + j);
    }
  }
}

template <typename scalar_t>
void backward_kernel(const acc_t<scalar_t>* grad_p_rgb, const acc_t<scalar_t>* grad_p_flow,
                     const acc_t<scalar_t>* grad_attention, const scalar_t* f_rgb, const scalar_t* f_flow,
                     const acc_t<scalar_t>* w_rgb, const acc_t<scalar_t>* w_flow,
                     const acc_t<scalar_t>* attention, scalar_t* df_rgb, scalar_t* df_flow,
                     ThreadPartials& dw_partials, int64_t batch, int64_t segments, int64_t channels) {
  using acc_type = acc_t<scalar_t>;
  const int64_t padded = round_up(channels, AccVec<scalar_t>::size());
  const int64_t clip_elements = std::max<int64_t>(segments * channels, 1);
  at::parallel_for(0, batch, std::max<int64_t>(1, kChunkElements / clip_elements), [&](int64_t begin, int64_t end) {
    std::vector<acc_type> dw_clip(static_cast<size_t>(2 * padded));
    std::vector<acc_type> g(static_cast<size_t>(segments));
    double* dw_mine = dw_partials.mine();
    for (int64_t b = begin; b < end; ++b) {
      const acc_type* a = attention + b * segments;
      const acc_type* dp_rgb = grad_p_rgb + b * channels;
      const acc_type* dp_flow = grad_p_flow + b * channels;
      acc_type weighted_g = 0;  // s = sum_t a[t] g[t]
      for (int64_t t = 0; t < segments; ++t) {
        if (a[t] == 0) {  // masked (or underflowed) snippet: de = 0, df = 0, f not needed
          g[t] = 0;
          continue;
        }
        const int64_t row = b * segments + t;
        g[t] = joint_dot(f_rgb + row * channels, dp_rgb, f_flow + row * channels, dp_flow, channels) +
               grad_attention[row];
        weighted_g += a[t] * g[t];
      }
      std::fill(dw_clip.begin(), dw_clip.end(), acc_type(0));
      for (int64_t t = segments - 1; t >= 0; --t) {
        const int64_t row = b * segments + t;
        const acc_type de = a[t] * (g[t] - weighted_g);
        backward_row(f_rgb + row * channels, dp_rgb, w_rgb, a[t], de, df_rgb + row * channels, dw_clip.data(),
                     channels);
        backward_row(f_flow + row * channels, dp_flow, w_flow, a[t], de, df_flow + row * channels,
                     dw_clip.data() + padded, channels);
      }
      add_to_partials<scalar_t>(dw_mine, dw_clip.data(), channels);
      add_to_partials<scalar_t>(dw_mine + channels, dw_clip.data() + padded, channels);
    }
  });
}

at::ScalarType accumulation_type(at::ScalarType features) {
  return features == at::kDouble ? at::kDouble : at::kFloat;
}

// A small tensor (weights, grads of the [B, C] / [B, T] outputs) in the accumulation type, contiguous.
at::Tensor as_accumulation(const at::Tensor& t, at::ScalarType acc) {
  return t.to(acc).contiguous();
}

void check_features(const at::Tensor& f_rgb, const at::Tensor& f_flow, const at::Tensor& w_rgb,
                    const at::Tensor& w_flow) {
  TORCH_CHECK(f_rgb.dim() == 3, "joint_attention_pool: f_rgb must be [B, T, C], got ", f_rgb.sizes());
  TORCH_CHECK(f_flow.sizes() == f_rgb.sizes(), "joint_attention_pool: f_flow must have the shape of f_rgb ",
              f_rgb.sizes(), ", got ", f_flow.sizes());
  TORCH_CHECK(f_flow.scalar_type() == f_rgb.scalar_type(), "joint_attention_pool: f_flow must have the dtype of f_rgb");
  const int64_t channels = f_rgb.size(2);
  TORCH_CHECK(w_rgb.dim() == 1 && w_rgb.size(0) == channels, "joint_attention_pool: w_rgb must be [C] = [",
              channels, "], got ", w_rgb.sizes());
  TORCH_CHECK(w_flow.dim() == 1 && w_flow.size(0) == channels, "joint_attention_pool: w_flow must be [C] = [",
              channels, "], got ", w_flow.sizes());
}

// Every clip needs at least one real snippet (DESIGN §2.2): an all-False row is a ValueError on CPU.
void check_mask_rows(const at::Tensor& mask) {
  const int64_t batch = mask.size(0), segments = mask.size(1);
  const bool* m = mask.const_data_ptr<bool>();
  std::vector<int64_t> empty_rows;
  for (int64_t b = 0; b < batch; ++b) {
    if (std::none_of(m + b * segments, m + (b + 1) * segments, [](bool real) { return real; })) {
      empty_rows.push_back(b);
    }
  }
  if (empty_rows.empty()) {
    return;
  }
  constexpr size_t kRowsShown = 8;
  std::ostringstream rows;
  for (size_t i = 0; i < std::min(empty_rows.size(), kRowsShown); ++i) {
    rows << (i ? ", " : "") << empty_rows[i];
  }
  TORCH_CHECK_VALUE(false, "mask: rows [", rows.str(), empty_rows.size() > kRowsShown ? "]..." : "]",
                    " are all False; every clip needs at least one real snippet "
                    "(set mask[b, t] = True for real snippets)");
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> joint_attention_pool_cpu(const at::Tensor& f_rgb_in,
                                                                        const at::Tensor& f_flow_in,
                                                                        const at::Tensor& w_rgb_in,
                                                                        const at::Tensor& w_flow_in,
                                                                        const std::optional<at::Tensor>& mask_in) {
  check_features(f_rgb_in, f_flow_in, w_rgb_in, w_flow_in);
  const int64_t batch = f_rgb_in.size(0), segments = f_rgb_in.size(1), channels = f_rgb_in.size(2);
  at::Tensor mask;
  if (mask_in.has_value() && mask_in->defined()) {
    TORCH_CHECK(mask_in->scalar_type() == at::kBool && mask_in->dim() == 2 && mask_in->size(0) == batch &&
                    mask_in->size(1) == segments,
                "joint_attention_pool: mask must be a bool [B, T] = [", batch, ", ", segments, "] tensor, got ",
                mask_in->scalar_type(), " ", mask_in->sizes());
    mask = mask_in->contiguous();
    check_mask_rows(mask);
  }
  const auto acc = accumulation_type(f_rgb_in.scalar_type());
  const auto f_rgb = f_rgb_in.contiguous();
  const auto f_flow = f_flow_in.contiguous();
  const auto w_rgb = as_accumulation(w_rgb_in, acc);
  const auto w_flow = as_accumulation(w_flow_in, acc);
  auto p_rgb = at::empty({batch, channels}, f_rgb.options());
  auto p_flow = at::empty({batch, channels}, f_rgb.options());
  auto attention = at::empty({batch, segments}, f_rgb.options().dtype(acc));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, f_rgb.scalar_type(), "joint_attention_pool_cpu", [&] {
    using acc_type = acc_t<scalar_t>;
    forward_kernel<scalar_t>(f_rgb.const_data_ptr<scalar_t>(), f_flow.const_data_ptr<scalar_t>(),
                             w_rgb.const_data_ptr<acc_type>(), w_flow.const_data_ptr<acc_type>(),
                             mask.defined() ? mask.const_data_ptr<bool>() : nullptr,
                             p_rgb.mutable_data_ptr<scalar_t>(), p_flow.mutable_data_ptr<scalar_t>(),
                             attention.mutable_data_ptr<acc_type>(), batch, segments, channels);
  });
  return {p_rgb, p_flow, attention};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> joint_attention_pool_backward_cpu(
    const at::Tensor& grad_p_rgb, const at::Tensor& grad_p_flow, const at::Tensor& grad_attention,
    const at::Tensor& f_rgb_in, const at::Tensor& f_flow_in, const at::Tensor& w_rgb_in, const at::Tensor& w_flow_in,
    const at::Tensor& attention_in) {
  check_features(f_rgb_in, f_flow_in, w_rgb_in, w_flow_in);
  const int64_t batch = f_rgb_in.size(0), segments = f_rgb_in.size(1), channels = f_rgb_in.size(2);
  TORCH_CHECK(grad_p_rgb.sizes() == at::IntArrayRef({batch, channels}) &&
                  grad_p_flow.sizes() == at::IntArrayRef({batch, channels}),
              "joint_attention_pool_backward: grad_p_rgb and grad_p_flow must be [B, C] = [", batch, ", ", channels,
              "], got ", grad_p_rgb.sizes(), " and ", grad_p_flow.sizes());
  TORCH_CHECK(grad_attention.sizes() == at::IntArrayRef({batch, segments}) &&
                  attention_in.sizes() == at::IntArrayRef({batch, segments}),
              "joint_attention_pool_backward: grad_attention and attention must be [B, T] = [", batch, ", ",
              segments, "], got ", grad_attention.sizes(), " and ", attention_in.sizes());
  const auto acc = accumulation_type(f_rgb_in.scalar_type());
  const auto f_rgb = f_rgb_in.contiguous();
  const auto f_flow = f_flow_in.contiguous();
  const auto w_rgb = as_accumulation(w_rgb_in, acc);
  const auto w_flow = as_accumulation(w_flow_in, acc);
  const auto dp_rgb = as_accumulation(grad_p_rgb, acc);
  const auto dp_flow = as_accumulation(grad_p_flow, acc);
  const auto da = as_accumulation(grad_attention, acc);
  const auto attention = as_accumulation(attention_in, acc);
  auto df_rgb = at::empty({batch, segments, channels}, f_rgb.options());
  auto df_flow = at::empty({batch, segments, channels}, f_rgb.options());
  ThreadPartials dw_partials(2 * channels);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, f_rgb.scalar_type(), "joint_attention_pool_backward_cpu",
                                  [&] {
                                    using acc_type = acc_t<scalar_t>;
                                    backward_kernel<scalar_t>(
                                        dp_rgb.const_data_ptr<acc_type>(), dp_flow.const_data_ptr<acc_type>(),
                                        da.const_data_ptr<acc_type>(), f_rgb.const_data_ptr<scalar_t>(),
                                        f_flow.const_data_ptr<scalar_t>(), w_rgb.const_data_ptr<acc_type>(),
                                        w_flow.const_data_ptr<acc_type>(), attention.const_data_ptr<acc_type>(),
                                        df_rgb.mutable_data_ptr<scalar_t>(), df_flow.mutable_data_ptr<scalar_t>(),
                                        dw_partials, batch, segments, channels);
                                  });
  auto dw = at::empty({2, channels}, w_rgb.options().dtype(at::kDouble));
  dw_partials.sum_into(dw.mutable_data_ptr<double>());
  // Fresh tensors in each w's dtype (copy=true: never a view of the shared [2, C] buffer).
  auto dw_rgb = dw[0].to(w_rgb_in.scalar_type(), /*non_blocking=*/false, /*copy=*/true);
  auto dw_flow = dw[1].to(w_flow_in.scalar_type(), /*non_blocking=*/false, /*copy=*/true);
  return {df_rgb, df_flow, dw_rgb, dw_flow};
}

}  // namespace

TORCH_LIBRARY_IMPL(jna_fast, CPU, m) {
  m.impl("joint_attention_pool", &joint_attention_pool_cpu);
  m.impl("joint_attention_pool_backward", &joint_attention_pool_backward_cpu);
}

}  // namespace jna_fast::cpu
