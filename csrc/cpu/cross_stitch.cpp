// cross_stitch on CPU (docs/design.md §3): one pass over the feature maps forward and backward.
//   y_rgb = a00 x_rgb + a01 x_flow,  y_flow = a10 x_rgb + a11 x_flow              (a = alpha[c], per channel)
//   dx_rgb = a00 dy_rgb + a10 dy_flow,  dx_flow = a01 dy_rgb + a11 dy_flow,  dalpha[c,i,j] = sum dy_i x_j
// NCHW: parallel over (n, c) planes, vectorised over H*W with the plane's four coefficients broadcast.
// NHWC: parallel over (n, h, w) pixels, vectorised over C with the coefficients loaded per channel chunk.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <tuple>

#include "cpu/output_memory.h"
#include "cpu/vectorized_io.h"
#include "op_rules.h"

namespace jna_fast::cpu {
namespace {

using at::vec::Vectorized;

// Elements per parallel chunk: enough to amortise the scheduling, small enough to balance two threads.
constexpr int64_t kChunkElements = 32768;
// NHWC dalpha sums are kept in the accumulation type for this many pixels, then added to the double partials.
constexpr int64_t kNhwcRowsPerFlush = 16;

// alpha [C, 2, 2] in the accumulation type, laid out coefficient-major [4][padded C] (zero padded to a whole
// vector) so an NHWC pixel loads whole vectors of each coefficient.
template <typename acc_type>
at::Tensor coefficient_table(const at::Tensor& alpha, int64_t padded_channels) {
  const int64_t channels = alpha.size(0);
  const auto values = converted<acc_type>(alpha);
  const acc_type* a = values.template const_data_ptr<acc_type>();
  auto table = at::zeros({4, padded_channels}, values.options());
  acc_type* out = table.template mutable_data_ptr<acc_type>();
  for (int64_t c = 0; c < channels; ++c) {
    for (int64_t k = 0; k < 4; ++k) {
      out[k * padded_channels + c] = a[4 * c + k];
    }
  }
  return table;
}

// The four mixing coefficients of one vector of work.
template <typename scalar_t>
struct Mix {
  AccVec<scalar_t> a00, a01, a10, a11;
};

// Coefficients of one channel, broadcast over a whole NCHW plane.
template <typename scalar_t>
struct PlaneCoefficients {
  Mix<scalar_t> mix;
  PlaneCoefficients(const acc_t<scalar_t>* table, int64_t padded_channels, int64_t channel)
      : mix{AccVec<scalar_t>(table[channel]), AccVec<scalar_t>(table[padded_channels + channel]),
            AccVec<scalar_t>(table[2 * padded_channels + channel]),
            AccVec<scalar_t>(table[3 * padded_channels + channel])} {}
  Mix<scalar_t> at(int64_t) const { return mix; }
};

// Coefficients of the channels j .. j + vector width of an NHWC pixel.
template <typename scalar_t>
struct ChannelCoefficients {
  const acc_t<scalar_t>* table;
  int64_t padded_channels;
  Mix<scalar_t> at(int64_t j) const {
    return {AccVec<scalar_t>::loadu(table + j), AccVec<scalar_t>::loadu(table + padded_channels + j),
            AccVec<scalar_t>::loadu(table + 2 * padded_channels + j),
            AccVec<scalar_t>::loadu(table + 3 * padded_channels + j)};
  }
};

// Forward over one contiguous span of `length` elements.
template <typename scalar_t, typename Coefficients>
inline void mix_span(const scalar_t* x_rgb, const scalar_t* x_flow, scalar_t* y_rgb, scalar_t* y_flow,
                     int64_t length, const Coefficients& coefficients) {
  for_each_span<AccVec<scalar_t>::size()>(length, [=, &coefficients](int64_t j, int64_t count) {
    const Mix<scalar_t> m = coefficients.at(j);
    const auto r = load_span(x_rgb + j, count);
    const auto f = load_span(x_flow + j, count);
    store_span(y_rgb + j, at::vec::fmadd(m.a00, r, m.a01 * f), count);
    store_span(y_flow + j, at::vec::fmadd(m.a10, r, m.a11 * f), count);
  });
}

// NCHW walked as one flat array in whole vectors, so no vector needs a masked store (slow on AMD Zen) except the
// tensor's last. Needs planes of at least two vectors:
// a vector then straddles at most two planes. body(offset, count, split, channel, next_channel, ends_plane):
// lanes [0, split) belong to `channel`'s plane, lanes [split, count) to the next plane's (`next_channel`);
// ends_plane says the current plane ends within this vector.
template <int64_t width, typename Body>
inline void walk_planes(int64_t first_vector, int64_t end_vector, int64_t total, int64_t pixels, int64_t channels,
                        Body&& body) {
  int64_t offset = first_vector * width;
  const int64_t plane = offset / pixels;
  int64_t within = offset - plane * pixels;
  int64_t channel = plane % channels;
  for (int64_t v = first_vector; v < end_vector; ++v, offset += width) {
    const int64_t count = std::min(width, total - offset);
    const int64_t left_in_plane = pixels - within;
    const int64_t next_channel = channel + 1 == channels ? 0 : channel + 1;
    body(offset, count, std::min(count, left_in_plane), channel, next_channel, left_in_plane <= count);
    within += width;
    if (within >= pixels) {
      within -= pixels;
      channel = next_channel;
    }
  }
}

// Per-lane coefficients of a vector whose lanes from `split` on belong to the next plane.
template <typename scalar_t>
inline Mix<scalar_t> straddling_mix(const Mix<scalar_t>& first, const Mix<scalar_t>& second,
                                    const AccVec<scalar_t>& second_lanes) {
  using Vec = AccVec<scalar_t>;
  return {Vec::blendv(first.a00, second.a00, second_lanes), Vec::blendv(first.a01, second.a01, second_lanes),
          Vec::blendv(first.a10, second.a10, second_lanes), Vec::blendv(first.a11, second.a11, second_lanes)};
}

// All-ones lanes from `split` on.
template <typename scalar_t>
inline AccVec<scalar_t> lanes_from(int64_t split) {
  using Vec = AccVec<scalar_t>;
  return Vec::arange(0, 1) >= Vec(static_cast<acc_t<scalar_t>>(split));
}

// dalpha sums of one span, one vector per coefficient (lane-wise; reduced by the caller).
template <typename scalar_t>
struct MixGradSums {
  using Vec = AccVec<scalar_t>;
  Vec s00{0}, s01{0}, s10{0}, s11{0};

  MixGradSums operator+(const MixGradSums& o) const { return {s00 + o.s00, s01 + o.s01, s10 + o.s10, s11 + o.s11}; }

  // The lanes where `lanes` is set (keep_set) or clear (!keep_set); zero elsewhere.
  MixGradSums select(const Vec& zero, const Vec& lanes, bool keep_set) const {
    const auto pick = [&](const Vec& v) {
      return keep_set ? Vec::blendv(zero, v, lanes) : Vec::blendv(v, zero, lanes);
    };
    return {pick(s00), pick(s01), pick(s10), pick(s11)};
  }
};

// Adds one plane's lane-wise sums to the thread's dalpha partials ([4][C]: coefficient k = 2 i + j).
template <typename scalar_t>
inline void add_plane_sums(double* partials, int64_t channels, int64_t channel, const MixGradSums<scalar_t>& sums) {
  partials[channel] += sum_lanes(sums.s00);
  partials[channels + channel] += sum_lanes(sums.s01);
  partials[2 * channels + channel] += sum_lanes(sums.s10);
  partials[3 * channels + channel] += sum_lanes(sums.s11);
}

// Backward over one contiguous span: writes dx, adds dy_i * x_j lane-wise into `sums_at(j)`.
template <typename scalar_t, typename Coefficients, typename SumsAt>
inline void mix_backward_span(const scalar_t* dy_rgb, const scalar_t* dy_flow, const scalar_t* x_rgb,
                              const scalar_t* x_flow, scalar_t* dx_rgb, scalar_t* dx_flow, int64_t length,
                              const Coefficients& coefficients, SumsAt&& sums_at) {
  for_each_span<AccVec<scalar_t>::size()>(length, [=, &coefficients, &sums_at](int64_t j, int64_t count) {
    const Mix<scalar_t> m = coefficients.at(j);
    const auto gr = load_span(dy_rgb + j, count);
    const auto gf = load_span(dy_flow + j, count);
    const auto r = load_span(x_rgb + j, count);
    const auto f = load_span(x_flow + j, count);
    store_span(dx_rgb + j, at::vec::fmadd(m.a00, gr, m.a10 * gf), count);
    store_span(dx_flow + j, at::vec::fmadd(m.a01, gr, m.a11 * gf), count);
    MixGradSums<scalar_t>& s = sums_at(j);
    s.s00 = at::vec::fmadd(gr, r, s.s00);
    s.s01 = at::vec::fmadd(gr, f, s.s01);
    s.s10 = at::vec::fmadd(gf, r, s.s10);
    s.s11 = at::vec::fmadd(gf, f, s.s11);
  });
}

template <typename scalar_t>
void forward_kernel(const at::Tensor& x_rgb, const at::Tensor& x_flow, const at::Tensor& alpha,
                    at::Tensor& y_rgb, at::Tensor& y_flow, bool nhwc) {
  using acc_type = acc_t<scalar_t>;
  constexpr int64_t width = AccVec<scalar_t>::size();
  const int64_t batch = x_rgb.size(0), channels = x_rgb.size(1), pixels = x_rgb.size(2) * x_rgb.size(3);
  const int64_t padded_channels = round_up(channels, width);
  const at::Tensor table_tensor = coefficient_table<acc_type>(alpha, padded_channels);
  const acc_type* table = table_tensor.const_data_ptr<acc_type>();
  const scalar_t* xr = x_rgb.const_data_ptr<scalar_t>();
  const scalar_t* xf = x_flow.const_data_ptr<scalar_t>();
  scalar_t* yr = y_rgb.mutable_data_ptr<scalar_t>();
  scalar_t* yf = y_flow.mutable_data_ptr<scalar_t>();
  if (nhwc) {
    const ChannelCoefficients<scalar_t> coefficients{table, padded_channels};
    at::parallel_for(0, batch * pixels, std::max<int64_t>(1, kChunkElements / channels),
                     [&](int64_t begin, int64_t end) {
                       for (int64_t row = begin; row < end; ++row) {
                         const int64_t o = row * channels;
                         mix_span(xr + o, xf + o, yr + o, yf + o, channels, coefficients);
                       }
                     });
  } else if (pixels < 2 * width) {  // small planes: one span per plane
    at::parallel_for(0, batch * channels, std::max<int64_t>(1, kChunkElements / std::max<int64_t>(pixels, 1)),
                     [&](int64_t begin, int64_t end) {
                       for (int64_t plane = begin; plane < end; ++plane) {
                         const PlaneCoefficients<scalar_t> coefficients(table, padded_channels, plane % channels);
                         const int64_t o = plane * pixels;
                         mix_span(xr + o, xf + o, yr + o, yf + o, pixels, coefficients);
                       }
                     });
  } else {
    const int64_t total = batch * channels * pixels;
    at::parallel_for(0, (total + width - 1) / width, std::max<int64_t>(1, kChunkElements / width),
                     [&](int64_t begin, int64_t end) {
                       walk_planes<width>(begin, end, total, pixels, channels,
                                          [&](int64_t o, int64_t count, int64_t split, int64_t channel,
                                              int64_t next_channel, bool) {
                         Mix<scalar_t> m = PlaneCoefficients<scalar_t>(table, padded_channels, channel).mix;
                         if (split < count) {
                           m = straddling_mix(m, PlaneCoefficients<scalar_t>(table, padded_channels, next_channel).mix,
                                              lanes_from<scalar_t>(split));
                         }
                         const auto r = load_span(xr + o, count);
                         const auto f = load_span(xf + o, count);
                         store_span(yr + o, at::vec::fmadd(m.a00, r, m.a01 * f), count);
                         store_span(yf + o, at::vec::fmadd(m.a10, r, m.a11 * f), count);
                       });
                     });
  }
}

// dalpha partials are laid out [4][C] per thread: coefficient k = 2 i + j of alpha[c, i, j].
template <typename scalar_t>
void backward_kernel(const at::Tensor& dy_rgb, const at::Tensor& dy_flow, const at::Tensor& x_rgb,
                     const at::Tensor& x_flow, const at::Tensor& alpha, at::Tensor& dx_rgb, at::Tensor& dx_flow,
                     ThreadPartials& partials, bool nhwc) {
  using acc_type = acc_t<scalar_t>;
  using Vec = AccVec<scalar_t>;
  constexpr int64_t width = Vec::size();
  const int64_t batch = x_rgb.size(0), channels = x_rgb.size(1), pixels = x_rgb.size(2) * x_rgb.size(3);
  const int64_t padded_channels = round_up(channels, width);
  const at::Tensor table_tensor = coefficient_table<acc_type>(alpha, padded_channels);
  const acc_type* table = table_tensor.const_data_ptr<acc_type>();
  const scalar_t* gr = dy_rgb.const_data_ptr<scalar_t>();
  const scalar_t* gf = dy_flow.const_data_ptr<scalar_t>();
  const scalar_t* xr = x_rgb.const_data_ptr<scalar_t>();
  const scalar_t* xf = x_flow.const_data_ptr<scalar_t>();
  scalar_t* dr = dx_rgb.mutable_data_ptr<scalar_t>();
  scalar_t* df = dx_flow.mutable_data_ptr<scalar_t>();
  if (nhwc) {
    const ChannelCoefficients<scalar_t> coefficients{table, padded_channels};
    at::parallel_for(0, batch * pixels, std::max<int64_t>(1, kChunkElements / channels),
                     [&](int64_t begin, int64_t end) {
                       // Lane-wise sums for every channel chunk, flushed to the double partials every few rows.
                       std::vector<MixGradSums<scalar_t>> sums(static_cast<size_t>(padded_channels / width));
                       double* mine = partials.mine();
                       auto flush = [&] {
                         alignas(64) acc_type lanes[4][width];
                         for (int64_t chunk = 0; chunk < padded_channels / width; ++chunk) {
                           MixGradSums<scalar_t>& s = sums[chunk];
                           s.s00.store(lanes[0]);
                           s.s01.store(lanes[1]);
                           s.s10.store(lanes[2]);
                           s.s11.store(lanes[3]);
                           const int64_t count = std::min(width, channels - chunk * width);
                           for (int k = 0; k < 4; ++k) {
                             add_to_partials<scalar_t>(mine + k * channels + chunk * width, lanes[k], count);
                           }
                           s = MixGradSums<scalar_t>();
                         }
                       };
                       for (int64_t row = begin; row < end; ++row) {
                         const int64_t o = row * channels;
                         mix_backward_span(
                             gr + o, gf + o, xr + o, xf + o, dr + o, df + o, channels, coefficients,
                             [&](int64_t j) -> MixGradSums<scalar_t>& { return sums[j / width]; });
                         if ((row - begin + 1) % kNhwcRowsPerFlush == 0 || row + 1 == end) {
                           flush();
                         }
                       }
                     });
  } else if (pixels < 2 * width) {  // small planes: one span per plane
    at::parallel_for(0, batch * channels, std::max<int64_t>(1, kChunkElements / std::max<int64_t>(pixels, 1)),
                     [&](int64_t begin, int64_t end) {
                       double* mine = partials.mine();
                       for (int64_t plane = begin; plane < end; ++plane) {
                         const int64_t channel = plane % channels;
                         const PlaneCoefficients<scalar_t> coefficients(table, padded_channels, channel);
                         const int64_t o = plane * pixels;
                         MixGradSums<scalar_t> sums;
                         mix_backward_span(gr + o, gf + o, xr + o, xf + o, dr + o, df + o, pixels, coefficients,
                                                  [&](int64_t) -> MixGradSums<scalar_t>& { return sums; });
                         add_plane_sums(mine, channels, channel, sums);
                       }
                     });
  } else {
    const int64_t total = batch * channels * pixels;
    at::parallel_for(0, (total + width - 1) / width, std::max<int64_t>(1, kChunkElements / width),
                     [&](int64_t begin, int64_t end) {
                       double* mine = partials.mine();
                       MixGradSums<scalar_t> sums;  // lane-wise, of the plane being walked
                       int64_t open_channel = -1;
                       walk_planes<width>(begin, end, total, pixels, channels,
                                          [&](int64_t o, int64_t count, int64_t split, int64_t channel,
                                              int64_t next_channel, bool ends_plane) {
                         Mix<scalar_t> m = PlaneCoefficients<scalar_t>(table, padded_channels, channel).mix;
                         const Vec second_lanes = lanes_from<scalar_t>(split);
                         if (split < count) {
                           m = straddling_mix(m, PlaneCoefficients<scalar_t>(table, padded_channels, next_channel).mix,
                                              second_lanes);
                         }
                         const auto g_r = load_span(gr + o, count);
                         const auto g_f = load_span(gf + o, count);
                         const auto r = load_span(xr + o, count);
                         const auto f = load_span(xf + o, count);
                         store_span(dr + o, at::vec::fmadd(m.a00, g_r, m.a10 * g_f), count);
                         store_span(df + o, at::vec::fmadd(m.a01, g_r, m.a11 * g_f), count);
                         const MixGradSums<scalar_t> products{g_r * r, g_r * f, g_f * r, g_f * f};
                         open_channel = channel;
                         if (!ends_plane) {
                           sums = sums + products;
                           return;
                         }
                         // This plane ends here: its lanes close its sums; the next plane's lanes open new ones.
                         const Vec zero(0);
                         sums = sums + products.select(zero, second_lanes, false);
                         add_plane_sums(mine, channels, channel, sums);
                         sums = products.select(zero, second_lanes, true);
                         open_channel = next_channel;
                       });
                       if (open_channel >= 0) {
                         add_plane_sums(mine, channels, open_channel, sums);
                       }
                     });
  }
}

// x_flow (and the grads) in the working layout of x_rgb; a copy only when they differ.
at::Tensor in_layout(const at::Tensor& t, const at::Tensor& like, bool nhwc) {
  return t.to(like.scalar_type()).contiguous(nhwc ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous);
}

at::Tensor empty_in_layout(const at::Tensor& like, bool nhwc) {
  return empty_output(like.sizes(), like.options().memory_format(nhwc ? at::MemoryFormat::ChannelsLast
                                                                      : at::MemoryFormat::Contiguous));
}

std::tuple<at::Tensor, at::Tensor> cross_stitch_cpu(const at::Tensor& x_rgb_in, const at::Tensor& x_flow_in,
                                                    const at::Tensor& alpha) {
  rules::check_cross_stitch(x_rgb_in, x_flow_in, alpha);
  const bool nhwc = rules::feature_map_is_nhwc(x_rgb_in);
  const auto x_rgb = in_layout(x_rgb_in, x_rgb_in, nhwc);
  const auto x_flow = in_layout(x_flow_in, x_rgb_in, nhwc);
  auto y_rgb = empty_in_layout(x_rgb, nhwc);
  auto y_flow = empty_in_layout(x_rgb, nhwc);
  if (x_rgb.numel() > 0) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x_rgb.scalar_type(), "cross_stitch_cpu", [&] {
      forward_kernel<scalar_t>(x_rgb, x_flow, alpha, y_rgb, y_flow, nhwc);
    });
  }
  return {y_rgb, y_flow};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> cross_stitch_backward_cpu(const at::Tensor& grad_rgb,
                                                                         const at::Tensor& grad_flow,
                                                                         const at::Tensor& x_rgb_in,
                                                                         const at::Tensor& x_flow_in,
                                                                         const at::Tensor& alpha) {
  rules::check_cross_stitch_backward(grad_rgb, grad_flow, x_rgb_in, x_flow_in, alpha);
  const bool nhwc = rules::feature_map_is_nhwc(x_rgb_in);
  const auto x_rgb = in_layout(x_rgb_in, x_rgb_in, nhwc);
  const auto x_flow = in_layout(x_flow_in, x_rgb_in, nhwc);
  const auto dy_rgb = in_layout(grad_rgb, x_rgb_in, nhwc);
  const auto dy_flow = in_layout(grad_flow, x_rgb_in, nhwc);
  auto dx_rgb = empty_in_layout(x_rgb, nhwc);
  auto dx_flow = empty_in_layout(x_rgb, nhwc);
  const int64_t channels = x_rgb.size(1);
  ThreadPartials partials(4 * channels);
  if (x_rgb.numel() > 0) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x_rgb.scalar_type(), "cross_stitch_backward_cpu",
                                    [&] {
                                      backward_kernel<scalar_t>(dy_rgb, dy_flow, x_rgb, x_flow, alpha, dx_rgb,
                                                                dx_flow, partials, nhwc);
                                    });
  }
  // partials sum to [4][C]; dalpha is [C][2][2].
  std::vector<double> totals(static_cast<size_t>(4 * channels));
  partials.sum_into(totals.data());
  auto dalpha = tensor_from(totals.data(), {channels, 2, 2}, alpha.options(),
                            [channels](int64_t i) { return (i % 4) * channels + i / 4; });
  return {dx_rgb, dx_flow, dalpha};
}

}  // namespace

TORCH_LIBRARY_IMPL(jna_fast, CPU, m) {
  m.impl("cross_stitch", &cross_stitch_cpu);
  m.impl("cross_stitch_backward", &cross_stitch_backward_cpu);
}

}  // namespace jna_fast::cpu
