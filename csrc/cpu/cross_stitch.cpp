// cross_stitch on CPU (DESIGN §2.1): one pass over the feature maps forward and backward.
//   y_rgb = a00 x_rgb + a01 x_flow,  y_flow = a10 x_rgb + a11 x_flow              (a = alpha[c], per channel)
//   dx_rgb = a00 dy_rgb + a10 dy_flow,  dx_flow = a01 dy_rgb + a11 dy_flow,  dalpha[c,i,j] = sum dy_i x_j
// NCHW: parallel over (n, c) planes, vectorised over H*W with the plane's four coefficients broadcast.
// NHWC: parallel over (n, h, w) pixels, vectorised over C with the coefficients loaded per channel chunk.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <tuple>

#include "cpu/vectorized_io.h"

namespace jna_fast::cpu {
namespace {

using at::vec::Vectorized;

// Elements per parallel chunk: enough to amortise the scheduling, small enough to balance two threads.
constexpr int64_t kChunkElements = 32768;
// NHWC dalpha sums are kept in the accumulation type for this many pixels, then added to the double partials.
constexpr int64_t kNhwcRowsPerFlush = 16;

// Work in channels_last iff x_rgb is channels_last-dense and not also plain-contiguous
// (registration.py::feature_map_is_nhwc; the fake kernels follow the same rule).
bool feature_map_is_nhwc(const at::Tensor& x) {
  return !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast);
}

// alpha [C, 2, 2] in the accumulation type, laid out coefficient-major [4][padded C] (zero padded to a whole
// vector) so an NHWC pixel loads whole vectors of each coefficient.
template <typename acc_type>
at::Tensor coefficient_table(const at::Tensor& alpha, int64_t padded_channels) {
  const int64_t channels = alpha.size(0);
  auto table = at::zeros({4, padded_channels}, alpha.options().dtype(c10::CppTypeToScalarType<acc_type>::value));
  table.narrow(1, 0, channels).copy_(alpha.reshape({channels, 4}).t());
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
  constexpr int64_t width = AccVec<scalar_t>::size();
  for (int64_t j = 0; j < length; j += width) {
    const int64_t count = std::min(width, length - j);
    const Mix<scalar_t> m = coefficients.at(j);
    const auto r = load_span(x_rgb + j, count);
    const auto f = load_span(x_flow + j, count);
    store_span(y_rgb + j, at::vec::fmadd(m.a00, r, m.a01 * f), count);
    store_span(y_flow + j, at::vec::fmadd(m.a10, r, m.a11 * f), count);
  }
}

// dalpha sums of one span, one vector per coefficient (lane-wise; reduced by the caller).
template <typename scalar_t>
struct MixGradSums {
  AccVec<scalar_t> s00{0}, s01{0}, s10{0}, s11{0};
};

// Backward over one contiguous span: writes dx, adds dy_i * x_j lane-wise into `sums_at(j)`.
template <typename scalar_t, typename Coefficients, typename SumsAt>
inline void mix_backward_span(const scalar_t* dy_rgb, const scalar_t* dy_flow, const scalar_t* x_rgb,
                              const scalar_t* x_flow, scalar_t* dx_rgb, scalar_t* dx_flow, int64_t length,
                              const Coefficients& coefficients, SumsAt&& sums_at) {
  constexpr int64_t width = AccVec<scalar_t>::size();
  for (int64_t j = 0; j < length; j += width) {
    const int64_t count = std::min(width, length - j);
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
  }
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
  } else {
    at::parallel_for(0, batch * channels, std::max<int64_t>(1, kChunkElements / std::max<int64_t>(pixels, 1)),
                     [&](int64_t begin, int64_t end) {
                       for (int64_t plane = begin; plane < end; ++plane) {
                         const PlaneCoefficients<scalar_t> coefficients(table, padded_channels, plane % channels);
                         const int64_t o = plane * pixels;
                         mix_span(xr + o, xf + o, yr + o, yf + o, pixels, coefficients);
                       }
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
                         mix_backward_span(gr + o, gf + o, xr + o, xf + o, dr + o, df + o, channels, coefficients,
                                           [&](int64_t j) -> MixGradSums<scalar_t>& { return sums[j / width]; });
                         if ((row - begin + 1) % kNhwcRowsPerFlush == 0 || row + 1 == end) {
                           flush();
                         }
                       }
                     });
  } else {
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
                         mine[channel] += sum_lanes(sums.s00);
                         mine[channels + channel] += sum_lanes(sums.s01);
                         mine[2 * channels + channel] += sum_lanes(sums.s10);
                         mine[3 * channels + channel] += sum_lanes(sums.s11);
                       }
                     });
  }
}

// x_flow (and the grads) in the working layout of x_rgb; a copy only when they differ.
at::Tensor in_layout(const at::Tensor& t, const at::Tensor& like, bool nhwc) {
  return t.to(like.scalar_type()).contiguous(nhwc ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous);
}

at::Tensor empty_in_layout(const at::Tensor& like, bool nhwc) {
  return at::empty(like.sizes(), like.options().memory_format(nhwc ? at::MemoryFormat::ChannelsLast
                                                                   : at::MemoryFormat::Contiguous));
}

void check_inputs(const at::Tensor& x_rgb, const at::Tensor& x_flow, const at::Tensor& alpha) {
  TORCH_CHECK(x_rgb.dim() == 4, "cross_stitch: x_rgb must be [N, C, H, W], got ", x_rgb.sizes());
  TORCH_CHECK(x_flow.sizes() == x_rgb.sizes(), "cross_stitch: x_flow must have the shape of x_rgb ",
              x_rgb.sizes(), ", got ", x_flow.sizes());
  TORCH_CHECK(alpha.dim() == 3 && alpha.size(0) == x_rgb.size(1) && alpha.size(1) == 2 && alpha.size(2) == 2,
              "cross_stitch: alpha must be [C, 2, 2] = [", x_rgb.size(1), ", 2, 2], got ", alpha.sizes());
}

std::tuple<at::Tensor, at::Tensor> cross_stitch_cpu(const at::Tensor& x_rgb_in, const at::Tensor& x_flow_in,
                                                    const at::Tensor& alpha) {
  check_inputs(x_rgb_in, x_flow_in, alpha);
  const bool nhwc = feature_map_is_nhwc(x_rgb_in);
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
  check_inputs(x_rgb_in, x_flow_in, alpha);
  TORCH_CHECK(grad_rgb.sizes() == x_rgb_in.sizes() && grad_flow.sizes() == x_rgb_in.sizes(),
              "cross_stitch_backward: grad_rgb and grad_flow must have the shape of x_rgb ", x_rgb_in.sizes(),
              ", got ", grad_rgb.sizes(), " and ", grad_flow.sizes());
  const bool nhwc = feature_map_is_nhwc(x_rgb_in);
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
  auto dalpha_by_coefficient = at::empty({4, channels}, alpha.options().dtype(at::kDouble));
  partials.sum_into(dalpha_by_coefficient.mutable_data_ptr<double>());
  auto dalpha = dalpha_by_coefficient.t().reshape({channels, 2, 2}).to(alpha.scalar_type()).contiguous();
  return {dx_rgb, dx_flow, dalpha};
}

}  // namespace

TORCH_LIBRARY_IMPL(jna_fast, CPU, m) {
  m.impl("cross_stitch", &cross_stitch_cpu);
  m.impl("cross_stitch_backward", &cross_stitch_backward_cpu);
}

}  // namespace jna_fast::cpu
