// joint_attention_pool forward and backward (docs/design.md §4) as CUDA kernels. CUDA runtime only.
//
// Work mapping: the channels of each clip are split into chunks, one block per (clip, chunk), so that a small
// batch still fills the device (8 clips x 16 chunks = 128 blocks where one block per clip used 8 of 132 SMs).
// A clip's softmax needs every snippet's full-C score before anything can be normalised, so each op runs as
// three short kernels, every sum in a fixed order (deterministic, no atomics):
//   1. partial dots: block (b, chunk) reduces <f_rgb[t], y_rgb> + <f_flow[t], y_flow> over its channels for every
//      snippet t into partials[b, chunk, t] (y = w for the scores, y = dp for g);
//   2. per clip: sums the chunks' partials in chunk order, then the O(T) scalar work (softmax; or s and de);
//   3. block (b, chunk) walks its channels again: p = sum_t a f (forward); df = a dp + de w and the clip's
//      dw terms sum_t de f (backward). Blocks run in reverse clip order, so the clips kernel 1 read last (still
//      in L2) are read first; a batch's features up to L2's size (50 MB on an H200: B = 96 clips at T = 25,
//      C = 2048, float32) are read from DRAM once.
// Accumulation rule, as in every backend (jna_fast/triton/joint_attention_pool.py): the dots that make a
// per-snippet scalar (the score, g) are summed in double from exact double products, as is every quantity over a
// clip's snippets (softmax max and sum, s = sum_t a g / sum_t a, de); the pooled and dw channel sums are in the
// accumulation type (float; double for double features).
// The backward is the two-pass form of docs/design.md §4.2, de = a (g - s) with s known before any de is formed, and
// dw = sum de f; the expanded one-pass forms cancel catastrophically when the attention saturates.
// Masked snippets (forward) and snippets with a = 0 (backward) are never read; a clip without a real snippet
// gives p = 0, a = 0 and zero gradients; a clip with a non-finite real score gives NaN (csrc/op_rules.h).
#include <cmath>

#include "cuda/kernel_utils.cuh"
#include "cuda/launchers.h"

namespace jna_fast {
namespace cuda {
namespace {

constexpr int kSnippetsPerStep = 4;  // snippets reduced together in kernel 1 (their loads in flight at once)
constexpr int kMaxThreads = 256;
constexpr int kClipThreads = 128;
// Channels per chunk: at least this many (a block's work must outweigh its launch), a multiple of the widest
// packet (8 elements) so that every chunk starts on a packet boundary.
constexpr int64_t kMinChunkChannels = 128;
constexpr int64_t kChunkAlign = 8;
// Blocks wanted per SM, so that the per-clip kernels' short blocks overlap.
constexpr int64_t kBlocksPerSm = 2;

struct ChannelSplit {
  int64_t chunk_channels;
  int64_t chunks;
};

ChannelSplit split_channels(const PoolShape& shape, int sm_count) {
  const int64_t chunks_wanted =
      detail::ceil_div(kBlocksPerSm * sm_count, std::max<int64_t>(shape.batch, 1));
  int64_t chunk = std::max(kMinChunkChannels, detail::ceil_div(shape.channels, chunks_wanted));
  chunk = detail::ceil_div(chunk, kChunkAlign) * kChunkAlign;
  return {chunk, std::max<int64_t>(1, detail::ceil_div(shape.channels, chunk))};
}

cudaError_t current_split(const PoolShape& shape, ChannelSplit* split) {
  detail::DeviceLimits limits{};
  const cudaError_t err = detail::current_device_limits(&limits);
  if (err != cudaSuccess) return err;
  *split = split_channels(shape, limits.sm_count);
  return cudaSuccess;
}

int chunk_threads(int64_t chunk_channels, int width) {
  const int64_t packets = detail::ceil_div(chunk_channels, width);
  const int64_t rounded = detail::ceil_div(packets, detail::kWarpSize) * detail::kWarpSize;
  return static_cast<int>(std::min<int64_t>(kMaxThreads, std::max<int64_t>(detail::kWarpSize, rounded)));
}

// The packets [begin, end) of channel chunk `chunk`.
struct PacketRange {
  int64_t begin;
  int64_t end;
};

__device__ __forceinline__ PacketRange chunk_packets(int64_t chunk, int64_t chunk_channels, int64_t channels,
                                                     int width) {
  const int64_t first = chunk * chunk_channels;
  const int64_t last = first + chunk_channels < channels ? first + chunk_channels : channels;
  return {first / width, last / width};
}

// Blocks of kernel 3 take the clips in reverse order of kernel 1 (see the header).
__device__ __forceinline__ int64_t reversed_clip() { return static_cast<int64_t>(gridDim.x) - 1 - blockIdx.x; }

// The max of `value` over the block; every thread gets it. Contains __syncthreads().
__device__ __forceinline__ double block_max(double value, double* scratch) {
  const int lane = threadIdx.x % detail::kWarpSize;
  const int warp = threadIdx.x / detail::kWarpSize;
  const int warps = (blockDim.x + detail::kWarpSize - 1) / detail::kWarpSize;
#pragma unroll
  for (int offset = detail::kWarpSize / 2; offset > 0; offset /= 2) {
    value = fmax(value, __shfl_xor_sync(0xffffffffu, value, offset));
  }
  if (lane == 0) scratch[warp] = value;
  __syncthreads();
  double total = -INFINITY;
  for (int w = 0; w < warps; ++w) total = fmax(total, scratch[w]);
  __syncthreads();  // scratch may be reused right after
  return total;
}

// ---- kernel 1: partial dots over one chunk of channels ----

template <typename T, typename Acc>
struct PartialDotsArgs {
  const T* f_rgb;
  const T* f_flow;
  const Acc* y_rgb;
  const Acc* y_flow;
  int64_t y_clip_stride;  // 0: one y for every clip (w); channels: a row per clip (dp)
  const bool* mask;       // forward: masked snippets are skipped (nullptr: none)
  const Acc* attention;   // backward: snippets with a = 0 are skipped (nullptr: none)
  double* partials;       // [B, chunks, T]
  int64_t segments;
  int64_t channels;
  int64_t chunk_channels;
};

template <typename T, int V>
__global__ void __launch_bounds__(kMaxThreads)
    partial_dots_kernel(PartialDotsArgs<T, detail::AccType<T>> args) {
  using Acc = detail::AccType<T>;
  constexpr int U = kSnippetsPerStep;
  __shared__ double scratch[U * detail::kMaxWarps];
  const int64_t clip = blockIdx.x;
  const int64_t chunk = blockIdx.y;
  const int64_t chunks = gridDim.y;
  const int64_t segments = args.segments;
  const int64_t channels = args.channels;
  const PacketRange range = chunk_packets(chunk, args.chunk_channels, channels, V);
  const T* f_rgb = args.f_rgb + clip * segments * channels;
  const T* f_flow = args.f_flow + clip * segments * channels;
  const Acc* y_rgb = args.y_rgb + clip * args.y_clip_stride;
  const Acc* y_flow = args.y_flow + clip * args.y_clip_stride;
  double* partials = args.partials + (clip * chunks + chunk) * segments;

  for (int64_t t0 = 0; t0 < segments; t0 += U) {
    bool live[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t t = t0 + u;
      live[u] = t < segments && (args.mask == nullptr || args.mask[clip * segments + t]) &&
                (args.attention == nullptr || args.attention[clip * segments + t] != Acc(0));
    }
    double dots[U] = {};
    for (int64_t p = range.begin + threadIdx.x; p < range.end; p += blockDim.x) {
      Acc w_rgb[V], w_flow[V];
      detail::load_acc<Acc, V>(y_rgb + p * V, w_rgb);
      detail::load_acc<Acc, V>(y_flow + p * V, w_flow);
#pragma unroll
      for (int u = 0; u < U; ++u) {
        if (!live[u]) continue;
        Acc x_rgb[V], x_flow[V];
        detail::load_packet<Acc, T, V>(f_rgb + (t0 + u) * channels + p * V, x_rgb);
        detail::load_packet<Acc, T, V>(f_flow + (t0 + u) * channels + p * V, x_flow);
#pragma unroll
        for (int i = 0; i < V; ++i) {
          dots[u] = fma(static_cast<double>(w_rgb[i]), static_cast<double>(x_rgb[i]), dots[u]);
          dots[u] = fma(static_cast<double>(w_flow[i]), static_cast<double>(x_flow[i]), dots[u]);
        }
      }
    }
    detail::block_sum<U>(dots, scratch);
    if (threadIdx.x == 0) {
#pragma unroll
      for (int u = 0; u < U; ++u) {
        if (t0 + u < segments) partials[t0 + u] = dots[u];
      }
    }
  }
}

// The full channel sum of snippet t of `clip`: the chunks' double partials added in chunk order.
__device__ __forceinline__ double full_dot(const double* partials, int64_t clip, int64_t t, int64_t segments,
                                           int64_t chunks) {
  double sum = 0;
  for (int64_t k = 0; k < chunks; ++k) sum += partials[(clip * chunks + k) * segments + t];
  return sum;
}

// The score of snippet t: past the accumulation type's range it is infinite, as its sum in that type would be
// (the non-finite rule, csrc/op_rules.h).
template <typename Acc>
__device__ __forceinline__ double clip_score(const double* partials, int64_t clip, int64_t t, int64_t segments,
                                             int64_t chunks) {
  const double score = full_dot(partials, clip, t, segments, chunks);
  const double limit = sizeof(Acc) == sizeof(double) ? INFINITY : 3.4028234663852886e38;  // FLT_MAX
  return fabs(score) <= limit ? score : score * INFINITY;
}

// ---- forward kernel 2: the softmax of each clip ----

template <typename Acc>
__global__ void __launch_bounds__(kClipThreads)
    clip_softmax_kernel(const double* partials, const bool* mask, Acc* attention, int64_t segments, int64_t chunks) {
  __shared__ double scratch[detail::kMaxWarps];
  const int64_t clip = blockIdx.x;
  const auto real = [&](int64_t t) { return mask == nullptr || mask[clip * segments + t]; };
  double local_max = -INFINITY;
  bool finite = true;
  for (int64_t t = threadIdx.x; t < segments; t += blockDim.x) {
    if (!real(t)) continue;
    const double score = clip_score<Acc>(partials, clip, t, segments, chunks);
    local_max = fmax(local_max, score);
    finite = finite && isfinite(score);
  }
  const double row_max = block_max(local_max, scratch);
  // A non-finite real score makes the whole row NaN (the non-finite rule, csrc/op_rules.h): fmax drops NaN and
  // a -inf score would get weight 0, so the max and sum cannot tell.
  const bool row_finite = __syncthreads_or(!finite) == 0;
  double sum[1] = {0.0};
  if (row_max > -INFINITY) {
    for (int64_t t = threadIdx.x; t < segments; t += blockDim.x) {
      if (real(t)) sum[0] += exp(clip_score<Acc>(partials, clip, t, segments, chunks) - row_max);
    }
  }
  detail::block_sum<1>(sum, scratch);
  // sum is 0 only for a clip without a real snippet: it gets a = 0 (and p = 0 in kernel 3). A NaN row has
  // a = NaN at its real snippets, never 0: kernel 3 and the backward read them and make p, df and dw NaN.
  const double inverse = !row_finite ? NAN : sum[0] > 0 ? 1.0 / sum[0] : 0.0;
  for (int64_t t = threadIdx.x; t < segments; t += blockDim.x) {
    const double weight =
        real(t) ? exp(clip_score<Acc>(partials, clip, t, segments, chunks) - row_max) * inverse : 0.0;
    attention[clip * segments + t] = static_cast<Acc>(weight);  // exactly 0 where masked, in a NaN row too
  }
}

// ---- forward kernel 3: p = sum_t a[t] f[t] over one chunk of channels ----

template <typename T, int V>
__global__ void __launch_bounds__(kMaxThreads)
    weighted_sum_kernel(const T* f_rgb_all, const T* f_flow_all, const detail::AccType<T>* attention_all, T* p_rgb,
                        T* p_flow, int64_t segments, int64_t channels, int64_t chunk_channels) {
  using Acc = detail::AccType<T>;
  const int64_t clip = reversed_clip();
  const PacketRange range = chunk_packets(blockIdx.y, chunk_channels, channels, V);
  const T* f_rgb = f_rgb_all + clip * segments * channels;
  const T* f_flow = f_flow_all + clip * segments * channels;
  const Acc* attention = attention_all + clip * segments;
  for (int64_t p = range.begin + threadIdx.x; p < range.end; p += blockDim.x) {
    Acc sum_rgb[V] = {}, sum_flow[V] = {};
    for (int64_t t = 0; t < segments; ++t) {
      const Acc a = attention[t];
      if (a == Acc(0)) continue;  // masked or underflowed: not read
      Acc x_rgb[V], x_flow[V];
      detail::load_packet<Acc, T, V>(f_rgb + t * channels + p * V, x_rgb);
      detail::load_packet<Acc, T, V>(f_flow + t * channels + p * V, x_flow);
#pragma unroll
      for (int i = 0; i < V; ++i) {
        sum_rgb[i] += a * x_rgb[i];
        sum_flow[i] += a * x_flow[i];
      }
    }
    detail::store_packet<T, Acc, V>(p_rgb + clip * channels + p * V, sum_rgb);
    detail::store_packet<T, Acc, V>(p_flow + clip * channels + p * V, sum_flow);
  }
}

// ---- backward kernel 2: de[t] = a[t] (g[t] - s) of each clip ----

template <typename Acc>
__global__ void __launch_bounds__(kClipThreads)
    clip_de_kernel(const double* partials, const Acc* grad_attention, const Acc* attention, Acc* de,
                   int64_t segments, int64_t chunks) {
  __shared__ double scratch[2 * detail::kMaxWarps];
  const int64_t clip = blockIdx.x;
  const auto g = [&](int64_t t) {
    return full_dot(partials, clip, t, segments, chunks) + static_cast<double>(grad_attention[clip * segments + t]);
  };
  // s = sum_t a g / sum_t a: the stored float weights need not sum to exactly 1, and normalising keeps
  // sum_t de = 0, as in exact arithmetic (else s (1 - sum a) leaks into dw, which saturation makes tiny).
  double sums[2] = {0.0, 0.0};  // sum a g, sum a
  for (int64_t t = threadIdx.x; t < segments; t += blockDim.x) {
    const double a = attention[clip * segments + t];
    if (a == 0) continue;
    sums[0] += a * g(t);
    sums[1] += a;
  }
  detail::block_sum<2>(sums, scratch);
  const double s = sums[1] > 0 ? sums[0] / sums[1] : 0.0;
  for (int64_t t = threadIdx.x; t < segments; t += blockDim.x) {
    const double a = attention[clip * segments + t];
    de[clip * segments + t] = a == 0 ? Acc(0) : static_cast<Acc>(a * (g(t) - s));
  }
}

// ---- backward kernel 3: df = a dp + de w and the clip's dw terms, over one chunk of channels ----

template <typename T, typename Acc>
struct RowsBackwardArgs {
  const Acc* grad_p_rgb;
  const Acc* grad_p_flow;
  const Acc* w_rgb;
  const Acc* w_flow;
  const Acc* attention;
  const Acc* de;
  const T* f_rgb;
  const T* f_flow;
  T* df_rgb;
  T* df_flow;
  Acc* dw_partials;  // [B, 2, C]
  int64_t segments;
  int64_t channels;
  int64_t chunk_channels;
};

template <typename T, int V>
__global__ void __launch_bounds__(kMaxThreads) rows_backward_kernel(RowsBackwardArgs<T, detail::AccType<T>> args) {
  using Acc = detail::AccType<T>;
  const int64_t clip = reversed_clip();
  const int64_t segments = args.segments;
  const int64_t channels = args.channels;
  const PacketRange range = chunk_packets(blockIdx.y, args.chunk_channels, channels, V);
  const int64_t clip_offset = clip * segments * channels;
  const Acc* attention = args.attention + clip * segments;
  const Acc* de = args.de + clip * segments;
  Acc* dw_rgb = args.dw_partials + clip * 2 * channels;
  Acc* dw_flow = dw_rgb + channels;
  for (int64_t p = range.begin + threadIdx.x; p < range.end; p += blockDim.x) {
    Acc dp_rgb[V], dp_flow[V], w_rgb[V], w_flow[V];
    detail::load_acc<Acc, V>(args.grad_p_rgb + clip * channels + p * V, dp_rgb);
    detail::load_acc<Acc, V>(args.grad_p_flow + clip * channels + p * V, dp_flow);
    detail::load_acc<Acc, V>(args.w_rgb + p * V, w_rgb);
    detail::load_acc<Acc, V>(args.w_flow + p * V, w_flow);
    Acc sum_rgb[V] = {}, sum_flow[V] = {};
    for (int64_t t = 0; t < segments; ++t) {
      const Acc a = attention[t];
      const Acc de_t = de[t];
      const int64_t row = clip_offset + t * channels + p * V;
      // a = 0 (masked or underflowed): df = 0, not a dp + de w, which is 0 x NaN where w holds a NaN; a masked
      // snippet's gradient is 0 whatever w is (the non-finite rule, csrc/op_rules.h).
      const bool attended = a != Acc(0);
      Acc out_rgb[V], out_flow[V];
#pragma unroll
      for (int i = 0; i < V; ++i) {
        out_rgb[i] = attended ? a * dp_rgb[i] + de_t * w_rgb[i] : Acc(0);
        out_flow[i] = attended ? a * dp_flow[i] + de_t * w_flow[i] : Acc(0);
      }
      detail::store_packet<T, Acc, V>(args.df_rgb + row, out_rgb);
      detail::store_packet<T, Acc, V>(args.df_flow + row, out_flow);
      if (!attended) continue;  // de = 0 too: f is not needed
      Acc x_rgb[V], x_flow[V];
      detail::load_packet<Acc, T, V>(args.f_rgb + row, x_rgb);
      detail::load_packet<Acc, T, V>(args.f_flow + row, x_flow);
#pragma unroll
      for (int i = 0; i < V; ++i) {
        sum_rgb[i] += de_t * x_rgb[i];
        sum_flow[i] += de_t * x_flow[i];
      }
    }
#pragma unroll
    for (int i = 0; i < V; ++i) {
      dw_rgb[p * V + i] = sum_rgb[i];
      dw_flow[p * V + i] = sum_flow[i];
    }
  }
}

// Workspace layout, counted in accumulators: the double partial dots [B, chunks, T] (two float accumulators
// each), then (backward) de [B, T] and the dw partials [B, 2, C] in accumulators.
int64_t partial_dots_elements(const PoolShape& shape, const ChannelSplit& split) {
  return shape.batch * split.chunks * shape.segments;
}

int64_t accumulators_per_double(DType features) { return features == DType::Float64 ? 1 : 2; }

int64_t backward_elements(const PoolShape& shape, const ChannelSplit& split, DType features) {
  return partial_dots_elements(shape, split) * accumulators_per_double(features) + shape.batch * shape.segments +
         shape.batch * 2 * shape.channels;
}

}  // namespace

cudaError_t joint_attention_pool_forward_workspace_elements(PoolShape shape, DType features, int64_t* elements) {
  ChannelSplit split{};
  const cudaError_t err = current_split(shape, &split);
  if (err != cudaSuccess) return err;
  *elements = partial_dots_elements(shape, split) * accumulators_per_double(features);
  return cudaSuccess;
}

cudaError_t joint_attention_pool_forward(const void* f_rgb, const void* f_flow, const void* w_rgb_acc,
                                         const void* w_flow_acc, const bool* mask, void* p_rgb, void* p_flow,
                                         void* attention, void* workspace, PoolShape shape, DType features,
                                         cudaStream_t stream) {
  if (shape.batch == 0) return cudaSuccess;
  ChannelSplit split{};
  const cudaError_t err = current_split(shape, &split);
  if (err != cudaSuccess) return err;
  return detail::dispatch_dtype(features, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using Acc = detail::AccType<T>;
    double* partials = static_cast<double*>(workspace);
    const T* rgb = static_cast<const T*>(f_rgb);
    const T* flow = static_cast<const T*>(f_flow);
    Acc* weights = static_cast<Acc*>(attention);
    const dim3 grid(static_cast<unsigned>(shape.batch), static_cast<unsigned>(split.chunks));
    const int width = detail::packet_width<T>(shape.channels, rgb, flow, static_cast<T*>(p_rgb),
                                              static_cast<T*>(p_flow));
    return detail::dispatch_packet<T>(width, [&](auto width_constant) {
      constexpr int V = decltype(width_constant)::value;
      const int threads = chunk_threads(split.chunk_channels, V);
      const PartialDotsArgs<T, Acc> dots{rgb, flow, static_cast<const Acc*>(w_rgb_acc),
                                         static_cast<const Acc*>(w_flow_acc), 0, mask, nullptr, partials,
                                         shape.segments, shape.channels, split.chunk_channels};
      partial_dots_kernel<T, V><<<grid, threads, 0, stream>>>(dots);
      cudaError_t launch_err = cudaGetLastError();
      if (launch_err != cudaSuccess) return launch_err;
      clip_softmax_kernel<Acc><<<static_cast<unsigned>(shape.batch), kClipThreads, 0, stream>>>(
          partials, mask, weights, shape.segments, split.chunks);
      launch_err = cudaGetLastError();
      if (launch_err != cudaSuccess) return launch_err;
      weighted_sum_kernel<T, V><<<grid, threads, 0, stream>>>(rgb, flow, weights, static_cast<T*>(p_rgb),
                                                              static_cast<T*>(p_flow), shape.segments,
                                                              shape.channels, split.chunk_channels);
      return cudaGetLastError();
    });
  });
}

cudaError_t joint_attention_pool_backward_workspace_elements(PoolShape shape, DType features, int64_t* elements) {
  ChannelSplit split{};
  const cudaError_t err = current_split(shape, &split);
  if (err != cudaSuccess) return err;
  *elements = backward_elements(shape, split, features);
  return cudaSuccess;
}

cudaError_t joint_attention_pool_backward(const void* grad_p_rgb_acc, const void* grad_p_flow_acc,
                                          const void* grad_attention_acc, const void* f_rgb, const void* f_flow,
                                          const void* w_rgb_acc, const void* w_flow_acc, const void* attention_acc,
                                          void* df_rgb, void* df_flow, void* dw_rgb, DType w_rgb_dtype,
                                          void* dw_flow, DType w_flow_dtype, void* workspace, PoolShape shape,
                                          DType features, cudaStream_t stream) {
  // With no clip, dw = 0; the glue zero-fills it, so there is nothing to launch.
  if (shape.batch == 0) return cudaSuccess;
  ChannelSplit split{};
  cudaError_t err = current_split(shape, &split);
  if (err != cudaSuccess) return err;
  return detail::dispatch_dtype(features, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using Acc = detail::AccType<T>;
    double* partials = static_cast<double*>(workspace);
    Acc* de = reinterpret_cast<Acc*>(partials + partial_dots_elements(shape, split));
    Acc* dw_partials = de + shape.batch * shape.segments;
    const Acc* attention = static_cast<const Acc*>(attention_acc);
    const T* rgb = static_cast<const T*>(f_rgb);
    const T* flow = static_cast<const T*>(f_flow);
    const dim3 grid(static_cast<unsigned>(shape.batch), static_cast<unsigned>(split.chunks));
    const int width = detail::packet_width<T>(shape.channels, rgb, flow, static_cast<T*>(df_rgb),
                                              static_cast<T*>(df_flow));
    const cudaError_t launch_err = detail::dispatch_packet<T>(width, [&](auto width_constant) {
      constexpr int V = decltype(width_constant)::value;
      const int threads = chunk_threads(split.chunk_channels, V);
      const PartialDotsArgs<T, Acc> dots{rgb, flow, static_cast<const Acc*>(grad_p_rgb_acc),
                                         static_cast<const Acc*>(grad_p_flow_acc), shape.channels, nullptr,
                                         attention, partials, shape.segments, shape.channels,
                                         split.chunk_channels};
      partial_dots_kernel<T, V><<<grid, threads, 0, stream>>>(dots);
      cudaError_t step_err = cudaGetLastError();
      if (step_err != cudaSuccess) return step_err;
      clip_de_kernel<Acc><<<static_cast<unsigned>(shape.batch), kClipThreads, 0, stream>>>(
          partials, static_cast<const Acc*>(grad_attention_acc), attention, de, shape.segments, split.chunks);
      step_err = cudaGetLastError();
      if (step_err != cudaSuccess) return step_err;
      const RowsBackwardArgs<T, Acc> rows{static_cast<const Acc*>(grad_p_rgb_acc),
                                          static_cast<const Acc*>(grad_p_flow_acc),
                                          static_cast<const Acc*>(w_rgb_acc),
                                          static_cast<const Acc*>(w_flow_acc),
                                          attention,
                                          de,
                                          rgb,
                                          flow,
                                          static_cast<T*>(df_rgb),
                                          static_cast<T*>(df_flow),
                                          dw_partials,
                                          shape.segments,
                                          shape.channels,
                                          split.chunk_channels};
      rows_backward_kernel<T, V><<<grid, threads, 0, stream>>>(rows);
      return cudaGetLastError();
    });
    if (launch_err != cudaSuccess) return launch_err;
    const int64_t row_stride = 2 * shape.channels;
    err = detail::launch_column_sum(static_cast<const Acc*>(dw_partials), shape.batch, shape.channels, row_stride,
                                    dw_rgb, w_rgb_dtype, stream);
    if (err != cudaSuccess) return err;
    return detail::launch_column_sum(static_cast<const Acc*>(dw_partials + shape.channels), shape.batch,
                                     shape.channels, row_stride, dw_flow, w_flow_dtype, stream);
  });
}

}  // namespace cuda
}  // namespace jna_fast
