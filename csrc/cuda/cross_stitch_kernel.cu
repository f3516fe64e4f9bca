// cross_stitch forward and backward (docs/design.md §3) as streaming CUDA kernels. CUDA runtime only.
//
// The op is a per-channel 2x2 mix, so it is bound by memory traffic: forward reads x_rgb, x_flow and writes
// y_rgb, y_flow once; backward reads grad_*, x_* and writes dx_* once plus dalpha. The kernels therefore
// (1) move data in the widest aligned packet (16 bytes where alignment and the contiguous run allow; a
// narrower or scalar packet otherwise), (2) fix each thread's channel(s) for the whole launch so alpha is
// loaded once into registers and no per-element channel division is needed, and (3) reduce dalpha with no
// atomics: each block sums its share into registers, reduces inside the block, and writes one partial per
// (split, channel); a small second kernel adds the splits in a fixed order (deterministic).
//
// Work mapping, per layout (the feature map seen as [N, C, HW] or [N*HW, C]):
// - NCHW: block (channel c, split s) walks packets of the N planes of channel c (each plane is HW contiguous
//   elements); a packet never straddles two planes because the packet width divides HW.
// - NHWC: a block is 32 channel-packets wide and 8 row lanes tall; a warp reads 32 consecutive packets of one
//   row (512 contiguous bytes at 16-byte packets) and the splits divide the N*HW rows.
#include "cuda/kernel_utils.cuh"
#include "cuda/launchers.h"

namespace jna_fast {
namespace cuda {
namespace {

using detail::ceil_div;

constexpr int kNchwThreads = 256;
constexpr int kNhwcPacketLanes = detail::kColumnTile;  // 32: one warp across channel packets
constexpr int kNhwcRowLanes = 8;
constexpr int kBlocksPerSm = 4;          // enough resident blocks to cover memory latency
constexpr int64_t kMinPacketsPerSplit = 2048;  // below this a split's fixed cost dominates
constexpr int64_t kMinRowsPerSplit = 64;

template <typename T, typename Acc>
struct StitchArgs {
  const T* in_rgb;   // forward: x_rgb; backward: grad_rgb
  const T* in_flow;  // forward: x_flow; backward: grad_flow
  const T* x_rgb;    // backward only: the forward inputs, for dalpha
  const T* x_flow;
  T* out_rgb;
  T* out_flow;
  const Acc* alpha;  // [C, 4] = a00, a01, a10, a11
  Acc* partials;     // backward only: [splits, C, 4]
  int64_t batch;
  int64_t channels;
  int64_t spatial;
};

// The 2x2 mix applied to one packet: out_rgb = m[0] in_rgb + m[1] in_flow, out_flow = m[2] in_rgb + m[3] in_flow.
// Forward uses m = alpha; backward uses its transpose and also accumulates sums[k] += grad_i * x_j.
template <typename T, typename Acc, int V, bool kBackward>
__device__ __forceinline__ void mix_packet(const StitchArgs<T, Acc>& args, int64_t offset, const Acc (&m)[4][V],
                                           Acc (&sums)[4][V]) {
  Acc in_rgb[V], in_flow[V], out_rgb[V], out_flow[V];
  detail::load_packet<Acc, T, V>(args.in_rgb + offset, in_rgb);
  detail::load_packet<Acc, T, V>(args.in_flow + offset, in_flow);
#pragma unroll
  for (int i = 0; i < V; ++i) {
    out_rgb[i] = m[0][i] * in_rgb[i] + m[1][i] * in_flow[i];
    out_flow[i] = m[2][i] * in_rgb[i] + m[3][i] * in_flow[i];
  }
  detail::store_packet<T, Acc, V>(args.out_rgb + offset, out_rgb);
  detail::store_packet<T, Acc, V>(args.out_flow + offset, out_flow);
  if constexpr (kBackward) {
    Acc x_rgb[V], x_flow[V];
    detail::load_packet<Acc, T, V>(args.x_rgb + offset, x_rgb);
    detail::load_packet<Acc, T, V>(args.x_flow + offset, x_flow);
#pragma unroll
    for (int i = 0; i < V; ++i) {
      sums[0][i] += in_rgb[i] * x_rgb[i];
      sums[1][i] += in_rgb[i] * x_flow[i];
      sums[2][i] += in_flow[i] * x_rgb[i];
      sums[3][i] += in_flow[i] * x_flow[i];
    }
  }
}

// Loads the mixing matrix of `channel` into lane i of m (alpha, or its transpose for the backward).
template <typename Acc, int V, bool kBackward>
__device__ __forceinline__ void load_mix(const Acc* alpha, int64_t channel, int lane, Acc (&m)[4][V]) {
  const Acc* a = alpha + channel * 4;
  m[0][lane] = __ldg(a + 0);
  m[1][lane] = __ldg(a + (kBackward ? 2 : 1));
  m[2][lane] = __ldg(a + (kBackward ? 1 : 2));
  m[3][lane] = __ldg(a + 3);
}

template <typename T, int V, bool kBackward>
__global__ void __launch_bounds__(kNchwThreads) cross_stitch_nchw_kernel(StitchArgs<T, detail::AccType<T>> args) {
  using Acc = detail::AccType<T>;
  const int64_t channel = blockIdx.x;
  Acc m[4][V];
#pragma unroll
  for (int i = 0; i < V; ++i) load_mix<Acc, V, kBackward>(args.alpha, channel, i, m);
  Acc sums[4][V] = {};

  // Packets of this channel: plane n (of N) holds plane_packets packets; split blockIdx.y takes a range.
  const int64_t plane_packets = args.spatial / V;
  const int64_t total = args.batch * plane_packets;
  const int64_t chunk = ceil_div(total, gridDim.y);
  const int64_t begin = blockIdx.y * chunk;
  const int64_t end = min(begin + chunk, total);
  // Walk k = begin + tid, begin + tid + blockDim, ... tracking (plane, packet) without a division per step.
  int64_t k = begin + threadIdx.x;
  int64_t plane = k / plane_packets;
  int64_t packet = k - plane * plane_packets;
  const int64_t plane_step = blockDim.x / plane_packets;
  const int64_t packet_step = blockDim.x - plane_step * plane_packets;
  for (; k < end; k += blockDim.x) {
    const int64_t offset = (plane * args.channels + channel) * args.spatial + packet * V;
    mix_packet<T, Acc, V, kBackward>(args, offset, m, sums);
    packet += packet_step;
    plane += plane_step;
    if (packet >= plane_packets) {
      packet -= plane_packets;
      ++plane;
    }
  }

  if constexpr (kBackward) {
    __shared__ Acc scratch[4 * detail::kMaxWarps];
    Acc totals[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      totals[j] = 0;
#pragma unroll
      for (int i = 0; i < V; ++i) totals[j] += sums[j][i];
    }
    detail::block_sum<4>(totals, scratch);
    if (threadIdx.x < 4) {
      args.partials[(static_cast<int64_t>(blockIdx.y) * args.channels + channel) * 4 + threadIdx.x] =
          totals[threadIdx.x];
    }
  }
}

template <typename T, int V, bool kBackward>
__global__ void __launch_bounds__(kNhwcPacketLanes* kNhwcRowLanes)
    cross_stitch_nhwc_kernel(StitchArgs<T, detail::AccType<T>> args) {
  using Acc = detail::AccType<T>;
  const int64_t channel_packets = args.channels / V;
  const int64_t channel_packet = static_cast<int64_t>(blockIdx.x) * kNhwcPacketLanes + threadIdx.x;
  const bool active = channel_packet < channel_packets;
  const int64_t first_channel = channel_packet * V;
  Acc m[4][V] = {};
  if (active) {
#pragma unroll
    for (int i = 0; i < V; ++i) load_mix<Acc, V, kBackward>(args.alpha, first_channel + i, i, m);
  }
  Acc sums[4][V] = {};

  const int64_t rows = args.batch * args.spatial;
  const int64_t chunk = ceil_div(rows, gridDim.y);
  const int64_t begin = blockIdx.y * chunk;
  const int64_t end = min(begin + chunk, rows);
  if (active) {
    for (int64_t row = begin + threadIdx.y; row < end; row += kNhwcRowLanes) {
      mix_packet<T, Acc, V, kBackward>(args, row * args.channels + first_channel, m, sums);
    }
  }

  if constexpr (kBackward) {
    __shared__ Acc lane_sums[kNhwcRowLanes][kNhwcPacketLanes + 1];
    // Combine the row lanes per channel (fixed order), one (k, i) pair at a time to keep shared memory small.
    Acc* partial_row = args.partials + static_cast<int64_t>(blockIdx.y) * args.channels * 4;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
#pragma unroll
      for (int i = 0; i < V; ++i) {
        lane_sums[threadIdx.y][threadIdx.x] = sums[j][i];
        __syncthreads();
        if (threadIdx.y == 0 && active) {
          Acc total = 0;
#pragma unroll
          for (int lane = 0; lane < kNhwcRowLanes; ++lane) total += lane_sums[lane][threadIdx.x];
          partial_row[(first_channel + i) * 4 + j] = total;
        }
        __syncthreads();
      }
    }
  }
}

// Blocks that cover the channels once (one split): NCHW one per channel, NHWC one per 32 channel packets.
int64_t blocks_per_split(const CrossStitchShape& shape, int packet_width) {
  return shape.layout == FeatureLayout::NCHW ? shape.channels
                                             : ceil_div(ceil_div(shape.channels, packet_width), kNhwcPacketLanes);
}

// How many splits the rows (NHWC) or planes (NCHW) are cut into: enough blocks to keep every SM busy
// (kBlocksPerSm each), without cutting so finely that per-split fixed costs (alpha loads, the partial write)
// matter. Planned with the dtype's 16-byte packet width; a launch that must use a narrower packet keeps the
// same splits (the workspace size depends only on them).
int64_t plan_splits(const CrossStitchShape& shape, int packet_width, int sm_count) {
  const int64_t target_blocks = static_cast<int64_t>(kBlocksPerSm) * sm_count;
  const int64_t per_split = std::max<int64_t>(1, blocks_per_split(shape, packet_width));
  const int64_t max_splits = shape.layout == FeatureLayout::NCHW
                                 ? ceil_div(shape.batch * shape.spatial, kMinPacketsPerSplit * packet_width)
                                 : ceil_div(shape.batch * shape.spatial, kMinRowsPerSplit);
  constexpr int64_t kMaxGridY = 65535;
  return std::min<int64_t>({ceil_div(target_blocks, per_split), std::max<int64_t>(1, max_splits), kMaxGridY});
}

int nominal_packet_width(DType features) {
  return detail::kMaxPacketBytes / static_cast<int>(features == DType::Float64 ? 8
                                                     : features == DType::Float32 ? 4
                                                                                  : 2);
}

template <bool kBackward, typename T>
cudaError_t launch_stitch(StitchArgs<T, detail::AccType<T>> args, FeatureLayout layout, int64_t splits,
                          cudaStream_t stream) {
  // The contiguous run that one indexing rule covers: a plane (NCHW) or a row of channels (NHWC).
  const int64_t run = layout == FeatureLayout::NCHW ? args.spatial : args.channels;
  const int width = kBackward ? detail::packet_width<T>(run, args.in_rgb, args.in_flow, args.x_rgb, args.x_flow,
                                                        args.out_rgb, args.out_flow)
                              : detail::packet_width<T>(run, args.in_rgb, args.in_flow, args.out_rgb, args.out_flow);
  return detail::dispatch_packet<T>(width, [&](auto width_constant) {
    constexpr int V = decltype(width_constant)::value;
    const CrossStitchShape shape{args.batch, args.channels, args.spatial, layout};
    const dim3 grid(static_cast<unsigned>(blocks_per_split(shape, V)), static_cast<unsigned>(splits));
    if (layout == FeatureLayout::NCHW) {
      cross_stitch_nchw_kernel<T, V, kBackward><<<grid, kNchwThreads, 0, stream>>>(args);
    } else {
      cross_stitch_nhwc_kernel<T, V, kBackward><<<grid, dim3(kNhwcPacketLanes, kNhwcRowLanes), 0, stream>>>(args);
    }
    return cudaGetLastError();
  });
}

cudaError_t planned_splits(const CrossStitchShape& shape, DType features, int64_t* splits) {
  detail::DeviceLimits limits{};
  const cudaError_t err = detail::current_device_limits(&limits);
  if (err != cudaSuccess) return err;
  *splits = plan_splits(shape, nominal_packet_width(features), limits.sm_count);
  return cudaSuccess;
}

bool is_empty(const CrossStitchShape& shape) { return shape.batch == 0 || shape.channels == 0 || shape.spatial == 0; }

}  // namespace

cudaError_t cross_stitch_forward(const void* x_rgb, const void* x_flow, const void* alpha_acc, void* y_rgb,
                                 void* y_flow, CrossStitchShape shape, DType features, cudaStream_t stream) {
  if (is_empty(shape)) return cudaSuccess;
  int64_t splits = 0;
  cudaError_t err = planned_splits(shape, features, &splits);
  if (err != cudaSuccess) return err;
  return detail::dispatch_dtype(features, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using Acc = detail::AccType<T>;
    StitchArgs<T, Acc> args{static_cast<const T*>(x_rgb), static_cast<const T*>(x_flow), nullptr, nullptr,
                            static_cast<T*>(y_rgb), static_cast<T*>(y_flow), static_cast<const Acc*>(alpha_acc),
                            nullptr, shape.batch, shape.channels, shape.spatial};
    return launch_stitch<false>(args, shape.layout, splits, stream);
  });
}

cudaError_t cross_stitch_backward_workspace_elements(CrossStitchShape shape, DType features, int64_t* elements) {
  if (is_empty(shape)) {
    *elements = 0;
    return cudaSuccess;
  }
  int64_t splits = 0;
  const cudaError_t err = planned_splits(shape, features, &splits);
  if (err != cudaSuccess) return err;
  *elements = splits * shape.channels * 4;
  return cudaSuccess;
}

cudaError_t cross_stitch_backward(const void* grad_rgb, const void* grad_flow, const void* x_rgb,
                                  const void* x_flow, const void* alpha_acc, void* dx_rgb, void* dx_flow,
                                  void* dalpha, DType alpha_dtype, void* workspace, CrossStitchShape shape,
                                  DType features, cudaStream_t stream) {
  // An empty map has dalpha = 0; the glue zero-fills it, so there is nothing to launch.
  if (is_empty(shape)) return cudaSuccess;
  int64_t splits = 0;
  cudaError_t err = planned_splits(shape, features, &splits);
  if (err != cudaSuccess) return err;
  return detail::dispatch_dtype(features, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using Acc = detail::AccType<T>;
    Acc* partials = static_cast<Acc*>(workspace);
    StitchArgs<T, Acc> args{static_cast<const T*>(grad_rgb), static_cast<const T*>(grad_flow),
                            static_cast<const T*>(x_rgb),    static_cast<const T*>(x_flow),
                            static_cast<T*>(dx_rgb),         static_cast<T*>(dx_flow),
                            static_cast<const Acc*>(alpha_acc), partials,
                            shape.batch,                     shape.channels,
                            shape.spatial};
    const cudaError_t launch_err = launch_stitch<true>(args, shape.layout, splits, stream);
    if (launch_err != cudaSuccess) return launch_err;
    return detail::launch_column_sum(static_cast<const Acc*>(partials), splits, shape.channels * 4,
                                     shape.channels * 4, dalpha, alpha_dtype, stream);
  });
}

}  // namespace cuda
}  // namespace jna_fast
