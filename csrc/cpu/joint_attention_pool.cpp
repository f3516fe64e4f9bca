// joint_attention_pool on CPU (docs/design.md §4), parallel over clips, vectorised over C.
// Forward: one pass over each clip's snippets with an online softmax over tiles of snippets (running max and
// sum, sums rescaled when the max grows): each tile is scored as its rows stream in and pooled from cache, so f
// is read from memory once and |scores| up to 1e4 cannot overflow.
// Backward: per clip, pass 1 reads f for g[t] = <dp_rgb, f_rgb[t]> + <dp_flow, f_flow[t]> + grad_attention[t];
// pass 2 writes df[t] = a[t] dp + de[t] w and adds de[t] f[t] into dw, re-reading the clip's f from cache
// (T*C elements; in reverse order, most recently read first). dw is reduced over clips via per-thread partials.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>

#include "cpu/output_memory.h"
#include "cpu/vectorized_io.h"
#include "op_rules.h"

namespace jna_fast::cpu {
namespace {

// Elements per parallel chunk: enough to amortise the scheduling, small enough to balance two threads.
constexpr int64_t kChunkElements = 32768;

// score_dot reads w as doubles in whole vectors: padded with zeros to a multiple of the widest vector.
constexpr int64_t kWideRowLanes = at::vec::Vectorized<float>::size();

// w [C] as doubles, padded with zeros to round_up(C, kWideRowLanes) (once per call, against the B x T x C products of
// the scores).
template <typename acc_type>
std::vector<double> widened(const acc_type* w, int64_t channels) {
  std::vector<double> wide(static_cast<size_t>(round_up(channels, kWideRowLanes)), 0.0);
  std::copy(w, w + channels, wide.begin());
  return wide;
}

// sum += x * y[0 .. x's width), every product exact in double (two float lanes' product fits a double's mantissa).
template <typename acc_type>
inline void fmadd_wide(at::vec::Vectorized<double> (&sum)[2], const at::vec::Vectorized<acc_type>& x,
                       const double* y) {
  using Wide = at::vec::Vectorized<double>;
  if constexpr (std::is_same_v<acc_type, double>) {
    sum[0] = at::vec::fmadd(x, Wide::loadu(y), sum[0]);
  } else {
    const auto [low, high] = widen(x);
    sum[0] = at::vec::fmadd(low, Wide::loadu(y), sum[0]);
    sum[1] = at::vec::fmadd(high, Wide::loadu(y + Wide::size()), sum[1]);
  }
}

// The score <f_rgb, w_rgb> + <f_flow, w_flow>, w as widened. The accumulation rule shared by every backend
// (docs/design.md §4.3, jna_fast/triton/joint_attention_pool.py): summed in double from exact products, since a
// saturated softmax turns a score's absolute rounding error into the relative error of every small weight, and so
// of dw. f's tail lanes load as zeros, w's are zero padding.
template <typename scalar_t>
inline double score_dot(const scalar_t* f_rgb, const double* w_rgb, const scalar_t* f_flow, const double* w_flow,
                        int64_t channels) {
  using Wide = at::vec::Vectorized<double>;
  Wide rgb[2] = {Wide(0), Wide(0)};
  Wide flow[2] = {Wide(0), Wide(0)};
  for_each_span<AccVec<scalar_t>::size()>(channels, [&](int64_t j, int64_t count) {
    fmadd_wide(rgb, load_span(f_rgb + j, count), w_rgb + j);
    fmadd_wide(flow, load_span(f_flow + j, count), w_flow + j);
  });
  return sum_lanes((rgb[0] + rgb[1]) + (flow[0] + flow[1]));
}

// g = <f_rgb, dp_rgb> + <f_flow, dp_flow>, dp in the accumulation type, summed in that type (docs/design.md §4.3:
// g's rounding error enters the gradients linearly, unlike a score's) and returned as a double, like every
// per-snippet scalar after it (s = sum_t a g / sum_t a, de). kDotChains independent sums hide the FMA latency.
template <typename scalar_t>
inline double gradient_dot(const scalar_t* f_rgb, const acc_t<scalar_t>* y_rgb, const scalar_t* f_flow,
                           const acc_t<scalar_t>* y_flow, int64_t channels) {
  using Vec = AccVec<scalar_t>;
  constexpr int64_t width = Vec::size();
  constexpr int64_t kDotChains = 4;
  const auto products = [&](int64_t j, int64_t count, const Vec& sum) {
    const Vec rgb = at::vec::fmadd(load_span(f_rgb + j, count), load_span(y_rgb + j, count), sum);
    return at::vec::fmadd(load_span(f_flow + j, count), load_span(y_flow + j, count), rgb);
  };
  Vec chains[kDotChains] = {Vec(0), Vec(0), Vec(0), Vec(0)};
  int64_t j = 0;
  for (; j + kDotChains * width <= channels; j += kDotChains * width) {
    for (int64_t k = 0; k < kDotChains; ++k) {
      chains[k] = products(j + k * width, width, chains[k]);
    }
  }
  Vec rest(0);
  for_each_span<width>(channels - j, [&](int64_t i, int64_t count) { rest = products(j + i, count, rest); });
  return static_cast<double>(sum_lanes(((chains[0] + chains[1]) + (chains[2] + chains[3])) + rest));
}

// A score past the accumulation type's range is infinite, as its sum in that type would be: it makes its row NaN
// (the non-finite rule, op_rules.h), whatever range the double sum itself has.
template <typename acc_type>
inline double in_accumulation_range(double score) {
  if constexpr (std::is_same_v<acc_type, double>) {
    return score;
  } else {
    const double limit = std::numeric_limits<acc_type>::max();
    return std::abs(score) > limit ? std::copysign(std::numeric_limits<double>::infinity(), score) : score;
  }
}

// Calls body(j, vectors, last) over [0, channels) in strips of `vectors` (kStripVectors, then 1) vectors of
// `width` lanes starting at channel j; all of a strip's vectors are whole except the last, which holds `last`
// lanes. Both counts are compile-time constants in every whole strip, so each strip's loop is unrolled and the
// span helpers lose their branches; only the one partial tail strip takes a run-time lane count.
template <int64_t width, int64_t kStripVectors, typename Body>
inline void for_each_strip(int64_t channels, Body&& body) {
  using Whole = std::integral_constant<int64_t, width>;
  int64_t j = 0;
  for (; j + kStripVectors * width <= channels; j += kStripVectors * width) {
    body(j, std::integral_constant<int64_t, kStripVectors>{}, Whole{});
  }
  for (; j + width <= channels; j += width) {
    body(j, std::integral_constant<int64_t, 1>{}, Whole{});
  }
  if (j < channels) {
    body(j, std::integral_constant<int64_t, 1>{}, channels - j);
  }
}

// Vectors per strip: the strip's accumulators, with the broadcasts and loads, fit the 16 AVX2 registers.
constexpr int64_t kStripVectors = 4;

// The forward scores a tile of snippets, then pools the tile's rows while they are still in L2 (the strip loop
// below reads each row once more, from cache). This many bytes of f per tile, both branches.
constexpr int64_t kTileBytes = int64_t{128} << 10;

// sum = sum * rescale + sum_k weight[k] f[k] over one tile of a branch's rows (f: [rows, C]), a strip of channels at a time with the tile's contribution in registers. Rows with weight 0
// (masked, or underflowed) are not read.
template <typename scalar_t>
inline void pool_tile(acc_t<scalar_t>* sum, acc_t<scalar_t> rescale, const scalar_t* f,
                      const acc_t<scalar_t>* weight, int64_t rows, int64_t channels) {
  using Vec = AccVec<scalar_t>;
  constexpr int64_t width = Vec::size();
  const Vec rescale_v(rescale);
  for_each_strip<width, kStripVectors>(channels, [&](int64_t j, auto vectors, auto last) {
    constexpr int64_t n = decltype(vectors)::value;
    const auto lanes = [&](int64_t k) -> int64_t { return k == n - 1 ? int64_t{last} : width; };
    Vec tile[n];
    for (int64_t k = 0; k < n; ++k) {
      tile[k] = Vec::loadu(sum + j + k * width) * rescale_v;
    }
    for (int64_t r = 0; r < rows; ++r) {
      if (weight[r] == 0) {
        continue;
      }
      const Vec weight_v(weight[r]);
      const scalar_t* row = f + r * channels + j;
      for (int64_t k = 0; k < n; ++k) {
        tile[k] = at::vec::fmadd(weight_v, load_span(row + k * width, lanes(k)), tile[k]);
      }
    }
    for (int64_t k = 0; k < n; ++k) {
      tile[k].store(sum + j + k * width);
    }
  });
}

template <typename scalar_t>
inline void store_scaled(scalar_t* out, const acc_t<scalar_t>* acc, acc_t<scalar_t> scale, int64_t channels) {
  using Vec = AccVec<scalar_t>;
  const Vec scale_v(scale);
  for_each_span<Vec::size()>(channels, [=](int64_t j, int64_t count) {
    store_span(out + j, Vec::loadu(acc + j) * scale_v, count);
  });
}

// Per clip, an online softmax over tiles of snippets: score a tile (the rows stream in from memory), move the
// running max to cover it (the sums so far shrink by exp(old max - new max)), then pool the tile from cache.
// f is read from memory once, the sums stay bounded whatever T is, and |scores| up to 1e4 cannot overflow.
template <typename scalar_t>
void forward_kernel(const scalar_t* f_rgb, const scalar_t* f_flow, const acc_t<scalar_t>* w_rgb,
                    const acc_t<scalar_t>* w_flow, const bool* mask, scalar_t* p_rgb, scalar_t* p_flow,
                    acc_t<scalar_t>* attention, int64_t batch, int64_t segments, int64_t channels) {
  using acc_type = acc_t<scalar_t>;
  constexpr double kMinusInfinity = -std::numeric_limits<double>::infinity();
  const int64_t padded = round_up(channels, AccVec<scalar_t>::size());
  const int64_t tile_rows =
      std::max<int64_t>(1, kTileBytes / std::max<int64_t>(1, 2 * channels * int64_t{sizeof(scalar_t)}));
  const int64_t clip_elements = std::max<int64_t>(segments * channels, 1);
  const auto w_rgb_wide = widened(w_rgb, channels);
  const auto w_flow_wide = widened(w_flow, channels);
  at::parallel_for(0, batch, std::max<int64_t>(1, kChunkElements / clip_elements), [&](int64_t begin, int64_t end) {
    std::vector<acc_type> sums(static_cast<size_t>(2 * padded));
    std::vector<double> scores(static_cast<size_t>(segments));
    std::vector<acc_type> weights(static_cast<size_t>(tile_rows));
    for (int64_t b = begin; b < end; ++b) {
      const int64_t clip = b * segments * channels;
      std::fill(sums.begin(), sums.end(), acc_type(0));
      double running_max = kMinusInfinity;
      double running_sum = 0;
      // Whether every real score is finite: else the whole row is NaN (the non-finite rule, op_rules.h). The
      // online softmax below drops NaN in std::max and meets exp(inf - inf), so it cannot be left to decide.
      bool finite = true;
      for (int64_t first = 0; first < segments; first += tile_rows) {
        const int64_t rows = std::min(tile_rows, segments - first);
        double tile_max = kMinusInfinity;
        for (int64_t t = first; t < first + rows; ++t) {
          const int64_t row = clip + t * channels;
          const bool real = mask == nullptr || mask[b * segments + t];
          scores[t] = real ? in_accumulation_range<acc_type>(score_dot(f_rgb + row, w_rgb_wide.data(), f_flow + row,
                                                                       w_flow_wide.data(), channels))
                           : kMinusInfinity;
          finite = finite && (!real || std::isfinite(scores[t]));
          tile_max = std::max(tile_max, scores[t]);
        }
        if (tile_max == kMinusInfinity) {  // all masked: no weight, nothing to read
          continue;
        }
        const double new_max = std::max(running_max, tile_max);
        const double rescale = std::exp(running_max - new_max);  // 0 for the first real tile: sums are 0
        running_sum *= rescale;
        for (int64_t r = 0; r < rows; ++r) {
          const double weight = std::exp(scores[first + r] - new_max);  // exp(-inf) = 0 for masked rows
          weights[r] = static_cast<acc_type>(weight);
          running_sum += weight;
        }
        running_max = new_max;
        const int64_t tile = clip + first * channels;
        pool_tile(sums.data(), static_cast<acc_type>(rescale), f_rgb + tile, weights.data(), rows, channels);
        pool_tile(sums.data() + padded, static_cast<acc_type>(rescale), f_flow + tile, weights.data(), rows,
                  channels);
      }
      // running_sum is 0 only for an all-masked clip (rejected before the kernel on CPU): pool it to zeros.
      const double inverse = !finite           ? std::numeric_limits<double>::quiet_NaN()
                             : running_sum > 0 ? 1.0 / running_sum
                                               : 0.0;
      store_scaled(p_rgb + b * channels, sums.data(), static_cast<acc_type>(inverse), channels);
      store_scaled(p_flow + b * channels, sums.data() + padded, static_cast<acc_type>(inverse), channels);
      for (int64_t t = 0; t < segments; ++t) {
        const bool real = mask == nullptr || mask[b * segments + t];
        attention[b * segments + t] =
            static_cast<acc_type>(real ? std::exp(scores[t] - running_max) * inverse : 0.0);  // 0 where masked
      }
    }
  });
}

// One snippet of the backward, both branches: df = a dp + de w, and (kAttended) dw_clip += de f.
// A snippet with a = 0 (masked) has de = 0: its df is 0 and its f is not read.
template <bool kAttended, typename scalar_t>
inline void backward_rows(const scalar_t* f_rgb, const scalar_t* f_flow, const acc_t<scalar_t>* dp_rgb,
                          const acc_t<scalar_t>* dp_flow, const acc_t<scalar_t>* w_rgb,
                          const acc_t<scalar_t>* w_flow, acc_t<scalar_t> a, acc_t<scalar_t> de, scalar_t* df_rgb,
                          scalar_t* df_flow, acc_t<scalar_t>* dw_rgb, acc_t<scalar_t>* dw_flow, int64_t channels) {
  using Vec = AccVec<scalar_t>;
  const Vec a_v(a), de_v(de);
  for_each_span<Vec::size()>(channels, [=](int64_t j, int64_t count) {
    if constexpr (kAttended) {
      store_span(df_rgb + j,
                         at::vec::fmadd(a_v, load_span(dp_rgb + j, count), de_v * load_span(w_rgb + j, count)), count);
      store_span(df_flow + j,
                         at::vec::fmadd(a_v, load_span(dp_flow + j, count), de_v * load_span(w_flow + j, count)),
                         count);
      at::vec::fmadd(de_v, load_span(f_rgb + j, count), Vec::loadu(dw_rgb + j)).store(dw_rgb + j);
      at::vec::fmadd(de_v, load_span(f_flow + j, count), Vec::loadu(dw_flow + j)).store(dw_flow + j);
    } else {
      store_span(df_rgb + j, Vec(0), count);
      store_span(df_flow + j, Vec(0), count);
    }
  });
}

// Per clip, dw_clip (accumulation type, T snippets) is added into this thread's double partials, rows
// [2][padded C]: rgb then flow.
template <typename scalar_t>
void backward_kernel(const acc_t<scalar_t>* grad_p_rgb, const acc_t<scalar_t>* grad_p_flow,
                     const acc_t<scalar_t>* grad_attention, const scalar_t* f_rgb, const scalar_t* f_flow,
                     const acc_t<scalar_t>* w_rgb, const acc_t<scalar_t>* w_flow,
                     const acc_t<scalar_t>* attention, scalar_t* df_rgb, scalar_t* df_flow,
                     ThreadPartials& dw_partials, int64_t padded, int64_t batch, int64_t segments,
                     int64_t channels) {
  using acc_type = acc_t<scalar_t>;
  const int64_t clip_elements = std::max<int64_t>(segments * channels, 1);
  at::parallel_for(0, batch, std::max<int64_t>(1, kChunkElements / clip_elements), [&](int64_t begin, int64_t end) {
    std::vector<double> g(static_cast<size_t>(segments));
    std::vector<acc_type> dw_clip(static_cast<size_t>(2 * padded));
    double* dw_mine = dw_partials.mine();
    for (int64_t b = begin; b < end; ++b) {
      const acc_type* a = attention + b * segments;
      const acc_type* dp_rgb = grad_p_rgb + b * channels;
      const acc_type* dp_flow = grad_p_flow + b * channels;
      // s = sum_t a g / sum_t a: the float32 weights need not sum to exactly 1, and normalising keeps
      // sum_t de = 0 (see the accumulation rule in jna_fast/triton/joint_attention_pool.py).
      // A NaN row (the non-finite rule) has a = NaN at its real snippets, never 0: they are read, and their de,
      // df and every dw come out NaN.
      double weighted_g = 0;
      double weight_total = 0;
      for (int64_t t = 0; t < segments; ++t) {
        if (a[t] == 0) {  // masked (or underflowed) snippet: de = 0, df = 0, f not needed
          g[t] = 0;
          continue;
        }
        const int64_t row = b * segments + t;
        g[t] = gradient_dot(f_rgb + row * channels, dp_rgb, f_flow + row * channels, dp_flow, channels) +
               grad_attention[row];
        weighted_g += a[t] * g[t];
        weight_total += a[t];
      }
      const double s = weight_total > 0 ? weighted_g / weight_total : 0.0;
      std::fill(dw_clip.begin(), dw_clip.end(), acc_type(0));
      for (int64_t t = segments - 1; t >= 0; --t) {  // most recently read snippets first: still in cache
        const int64_t o = (b * segments + t) * channels;
        const auto de = static_cast<acc_type>(a[t] * (g[t] - s));
        if (a[t] == 0) {
          backward_rows<false>(f_rgb + o, f_flow + o, dp_rgb, dp_flow, w_rgb, w_flow, a[t], de, df_rgb + o,
                                                 df_flow + o, dw_clip.data(), dw_clip.data() + padded, channels);
        } else {
          backward_rows<true>(f_rgb + o, f_flow + o, dp_rgb, dp_flow, w_rgb, w_flow, a[t], de, df_rgb + o,
                                       df_flow + o, dw_clip.data(), dw_clip.data() + padded, channels);
        }
      }
      add_to_partials<scalar_t>(dw_mine, dw_clip.data(), 2 * padded);
    }
  });
}

at::ScalarType accumulation_type(at::ScalarType features) {
  return features == at::kDouble ? at::kDouble : at::kFloat;
}

// C rounded up to a whole vector of the accumulation type (the kernels' padded per-channel buffers).
int64_t padded_channels(int64_t channels, at::ScalarType features) {
  return round_up(channels, features == at::kDouble ? at::vec::Vectorized<double>::size()
                                                    : at::vec::Vectorized<float>::size());
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> joint_attention_pool_cpu(const at::Tensor& f_rgb_in,
                                                                        const at::Tensor& f_flow_in,
                                                                        const at::Tensor& w_rgb_in,
                                                                        const at::Tensor& w_flow_in,
                                                                        const std::optional<at::Tensor>& mask_in) {
  rules::check_joint_attention_pool(f_rgb_in, f_flow_in, w_rgb_in, w_flow_in, mask_in);
  const int64_t batch = f_rgb_in.size(0), segments = f_rgb_in.size(1), channels = f_rgb_in.size(2);
  at::Tensor mask;
  if (mask_in.has_value() && mask_in->defined()) mask = mask_in->contiguous();
  const auto acc = accumulation_type(f_rgb_in.scalar_type());
  const auto f_rgb = f_rgb_in.contiguous();
  const auto f_flow = f_flow_in.contiguous();
  auto p_rgb = at::empty({batch, channels}, f_rgb.options());
  auto p_flow = at::empty({batch, channels}, f_rgb.options());
  auto attention = at::empty({batch, segments}, f_rgb.options().dtype(acc));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, f_rgb.scalar_type(), "joint_attention_pool_cpu", [&] {
    using acc_type = acc_t<scalar_t>;
    const auto w_rgb = converted<acc_type>(w_rgb_in);
    const auto w_flow = converted<acc_type>(w_flow_in);
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
  rules::check_joint_attention_pool_backward(grad_p_rgb, grad_p_flow, grad_attention, f_rgb_in, f_flow_in, w_rgb_in,
                                             w_flow_in, attention_in);
  const int64_t batch = f_rgb_in.size(0), segments = f_rgb_in.size(1), channels = f_rgb_in.size(2);
  const auto f_rgb = f_rgb_in.contiguous();
  const auto f_flow = f_flow_in.contiguous();
  auto df_rgb = empty_output({batch, segments, channels}, f_rgb.options());
  auto df_flow = empty_output({batch, segments, channels}, f_rgb.options());
  const int64_t padded = padded_channels(channels, f_rgb.scalar_type());
  ThreadPartials dw_partials(2 * padded);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, f_rgb.scalar_type(), "joint_attention_pool_backward_cpu",
                                  [&] {
                                    using acc_type = acc_t<scalar_t>;
                                    const auto w_rgb = converted<acc_type>(w_rgb_in);
                                    const auto w_flow = converted<acc_type>(w_flow_in);
                                    const auto dp_rgb = converted<acc_type>(grad_p_rgb);
                                    const auto dp_flow = converted<acc_type>(grad_p_flow);
                                    const auto da = converted<acc_type>(grad_attention);
                                    const auto attention = converted<acc_type>(attention_in);
                                    backward_kernel<scalar_t>(
                                        dp_rgb.const_data_ptr<acc_type>(), dp_flow.const_data_ptr<acc_type>(),
                                        da.const_data_ptr<acc_type>(), f_rgb.const_data_ptr<scalar_t>(),
                                        f_flow.const_data_ptr<scalar_t>(), w_rgb.const_data_ptr<acc_type>(),
                                        w_flow.const_data_ptr<acc_type>(), attention.const_data_ptr<acc_type>(),
                                        df_rgb.mutable_data_ptr<scalar_t>(), df_flow.mutable_data_ptr<scalar_t>(),
                                        dw_partials, padded, batch, segments, channels);
                                  });
  std::vector<double> dw(static_cast<size_t>(2 * padded));
  dw_partials.sum_into(dw.data());
  const auto identity = [](int64_t i) { return i; };
  auto dw_rgb = tensor_from(dw.data(), {channels}, w_rgb_in.options(), identity);
  auto dw_flow = tensor_from(dw.data() + padded, {channels}, w_flow_in.options(), identity);
  return {df_rgb, df_flow, dw_rgb, dw_flow};
}

}  // namespace

TORCH_LIBRARY_IMPL(jna_fast, CPU, m) {
  m.impl("joint_attention_pool", &joint_attention_pool_cpu);
  m.impl("joint_attention_pool_backward", &joint_attention_pool_backward_cpu);
}

}  // namespace jna_fast::cpu
