// joint_attention_pool forward and backward (DESIGN §2.2, §3) as CUDA kernels. CUDA runtime only.
//
// Work mapping: one block per clip b. The attention of a clip needs the full-C score of every snippet before
// anything can be normalised, so splitting C across blocks would need a cross-block exchange of partial
// scores (a grid-wide dependency), and splitting T would need a combine pass whose partial p vectors cost
// extra traffic comparable to f itself when T is ~25 (flash-decoding style). One block per clip keeps the
// whole dependency inside the block: scores come from block reductions, and the per-channel state lives in
// shared memory. At B >= ~SM count (B=128 on an H100) this fills the device; at B=32 the op moves only a few
// MB and is dominated by launch latency either way.
//
// Forward, per clip, single pass over f (the floor): snippets are taken kSnippetsPerStep at a time so that
// 2*kSnippetsPerStep packet loads per thread are in flight before each block reduction. For a step: the
// block reduces the scores e[t] = <f_rgb[t], w_rgb> + <f_flow[t], w_flow>, updates the running max and sum
// (online softmax, so |e| ~ 1e4 cannot overflow), and rescales the per-channel accumulators
// acc = acc * exp(m_old - m_new) + sum_t exp(e[t] - m_new) f[t]. The second touch of f[t] in a step re-reads
// the packets this thread loaded moments before (L1-resident), so DRAM sees f once. Masked snippets are never
// read. A clip with no unmasked snippet keeps sum = 0 and writes p = 0, a = 0.
//
// Backward, per clip, single pass over f and a single write of df (the floor):
//   g[t] = <dp_rgb, f_rgb[t]> + <dp_flow, f_flow[t]> + grad_attention[t],  s = sum_t a[t] g[t],
//   de[t] = a[t] (g[t] - s),  df[t] = a[t] dp + de[t] w,  dw = sum_t de[t] f[t].
// df needs s, which needs every g, so the pass over f computes g (block reductions) and accumulates dw;
// df is then written from dp, w, a and de alone, without reading f again. dw = sum_t a (g - s) f is
// accumulated as a weighted covariance with Welford's update (running weighted means of g and f), which
// avoids the cancellation of the expanded form sum_t a g f - s sum_t a f when g has a large common offset.
// Per-clip dw partials go to a [B, 2, C] workspace; a column-sum kernel adds the clips in a fixed order.
// Snippets with a[t] = 0 (masked, or underflowed) contribute nothing to any gradient and are not read.
#include <cmath>

#include "cuda/kernel_utils.cuh"
#include "cuda/launchers.h"

namespace jna_fast {
namespace cuda {
namespace {

constexpr int kSnippetsPerStep = 4;
constexpr int kMinThreads = 64;
constexpr int kMaxThreads = 512;
// Static shared memory of the kernels (the block_sum scratch), kept out of the dynamic budget.
constexpr size_t kStaticSharedReserve = kSnippetsPerStep * detail::kMaxWarps * sizeof(double);
constexpr size_t kDefaultDynamicShared = 48 * 1024;

template <typename Acc>
__device__ __forceinline__ Acc negative_infinity() {
  return -static_cast<Acc>(INFINITY);
}

template <typename T, typename Acc>
struct PoolForwardArgs {
  const T* f_rgb;
  const T* f_flow;
  const Acc* w_rgb;
  const Acc* w_flow;
  const bool* mask;
  T* p_rgb;
  T* p_flow;
  Acc* attention;
  Acc* global_state;  // [B, 2C + T] when the state does not fit in shared memory, else unused
  int64_t segments;
  int64_t channels;
};

// Per-clip state, in shared memory or (for very large C or T) in a private slice of global workspace.
template <typename Acc>
__device__ __forceinline__ Acc* clip_state(Acc* global_state, int64_t per_clip, bool in_shared) {
  extern __shared__ __align__(16) unsigned char dynamic_shared[];
  return in_shared ? reinterpret_cast<Acc*>(dynamic_shared) : global_state + blockIdx.x * per_clip;
}

template <typename T, int V>
__global__ void __launch_bounds__(kMaxThreads)
    pool_forward_kernel(PoolForwardArgs<T, detail::AccType<T>> args, bool state_in_shared) {
  using Acc = detail::AccType<T>;
  constexpr int U = kSnippetsPerStep;
  __shared__ Acc scratch[U * detail::kMaxWarps];
  const int64_t clip = blockIdx.x;
  const int64_t segments = args.segments;
  const int64_t channels = args.channels;
  const int64_t packets = channels / V;
  Acc* state = clip_state(args.global_state, 2 * channels + segments, state_in_shared);
  Acc* acc_rgb = state;
  Acc* acc_flow = state + channels;
  Acc* scores = state + 2 * channels;
  const T* f_rgb = args.f_rgb + clip * segments * channels;
  const T* f_flow = args.f_flow + clip * segments * channels;

  for (int64_t p = threadIdx.x; p < packets; p += blockDim.x) {
#pragma unroll
    for (int i = 0; i < V; ++i) {
      acc_rgb[p * V + i] = 0;
      acc_flow[p * V + i] = 0;
    }
  }
  Acc running_max = negative_infinity<Acc>();
  Acc running_sum = 0;

  for (int64_t t0 = 0; t0 < segments; t0 += U) {
    bool real[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t t = t0 + u;
      real[u] = t < segments && (args.mask == nullptr || args.mask[clip * segments + t]);
    }
    Acc dots[U] = {};
    for (int64_t p = threadIdx.x; p < packets; p += blockDim.x) {
      Acc w_rgb[V], w_flow[V];
      detail::load_acc<Acc, V>(args.w_rgb + p * V, w_rgb);
      detail::load_acc<Acc, V>(args.w_flow + p * V, w_flow);
#pragma unroll
      for (int u = 0; u < U; ++u) {
        if (!real[u]) continue;
        Acc x_rgb[V], x_flow[V];
        detail::load_packet<Acc, T, V>(f_rgb + (t0 + u) * channels + p * V, x_rgb);
        detail::load_packet<Acc, T, V>(f_flow + (t0 + u) * channels + p * V, x_flow);
#pragma unroll
        for (int i = 0; i < V; ++i) dots[u] += w_rgb[i] * x_rgb[i] + w_flow[i] * x_flow[i];
      }
    }
    detail::block_sum<U>(dots, scratch);

    Acc step_max = negative_infinity<Acc>();
#pragma unroll
    for (int u = 0; u < U; ++u) {
      if (!real[u]) dots[u] = negative_infinity<Acc>();
      step_max = max(step_max, dots[u]);
      if (threadIdx.x == 0 && t0 + u < segments) scores[t0 + u] = dots[u];
    }
    const Acc new_max = max(running_max, step_max);
    if (new_max == negative_infinity<Acc>()) continue;  // nothing real yet: the accumulators stay 0
    const Acc rescale = exp(running_max - new_max);     // exp(-inf) = 0 on the first real step
    Acc weights[U];
    Acc step_sum = 0;
#pragma unroll
    for (int u = 0; u < U; ++u) {
      weights[u] = real[u] ? exp(dots[u] - new_max) : Acc(0);
      step_sum += weights[u];
    }
    running_sum = running_sum * rescale + step_sum;
    running_max = new_max;

    for (int64_t p = threadIdx.x; p < packets; p += blockDim.x) {
      Acc sum_rgb[V], sum_flow[V];
#pragma unroll
      for (int i = 0; i < V; ++i) {
        sum_rgb[i] = acc_rgb[p * V + i] * rescale;
        sum_flow[i] = acc_flow[p * V + i] * rescale;
      }
#pragma unroll
      for (int u = 0; u < U; ++u) {
        if (!real[u]) continue;
        Acc x_rgb[V], x_flow[V];
        detail::load_packet<Acc, T, V>(f_rgb + (t0 + u) * channels + p * V, x_rgb);
        detail::load_packet<Acc, T, V>(f_flow + (t0 + u) * channels + p * V, x_flow);
#pragma unroll
        for (int i = 0; i < V; ++i) {
          sum_rgb[i] += weights[u] * x_rgb[i];
          sum_flow[i] += weights[u] * x_flow[i];
        }
      }
#pragma unroll
      for (int i = 0; i < V; ++i) {
        acc_rgb[p * V + i] = sum_rgb[i];
        acc_flow[p * V + i] = sum_flow[i];
      }
    }
  }
  __syncthreads();  // the scores thread 0 wrote

  const Acc inv_sum = running_sum > 0 ? Acc(1) / running_sum : Acc(0);
  for (int64_t p = threadIdx.x; p < packets; p += blockDim.x) {
    Acc out_rgb[V], out_flow[V];
#pragma unroll
    for (int i = 0; i < V; ++i) {
      out_rgb[i] = acc_rgb[p * V + i] * inv_sum;
      out_flow[i] = acc_flow[p * V + i] * inv_sum;
    }
    detail::store_packet<T, Acc, V>(args.p_rgb + clip * channels + p * V, out_rgb);
    detail::store_packet<T, Acc, V>(args.p_flow + clip * channels + p * V, out_flow);
  }
  for (int64_t t = threadIdx.x; t < segments; t += blockDim.x) {
    args.attention[clip * segments + t] = running_sum > 0 ? exp(scores[t] - running_max) * inv_sum : Acc(0);
  }
}

template <typename T, typename Acc>
struct PoolBackwardArgs {
  const Acc* grad_p_rgb;
  const Acc* grad_p_flow;
  const Acc* grad_attention;
  const T* f_rgb;
  const T* f_flow;
  const Acc* w_rgb;
  const Acc* w_flow;
  const Acc* attention;
  T* df_rgb;
  T* df_flow;
  Acc* dw_partials;   // [B, 2, C]
  Acc* global_state;  // [B, 4C + T] when the state does not fit in shared memory, else unused
  int64_t segments;
  int64_t channels;
};

template <typename T, int V>
__global__ void __launch_bounds__(kMaxThreads)
    pool_backward_kernel(PoolBackwardArgs<T, detail::AccType<T>> args, bool state_in_shared) {
  using Acc = detail::AccType<T>;
  constexpr int U = kSnippetsPerStep;
  __shared__ Acc scratch[U * detail::kMaxWarps];
  const int64_t clip = blockIdx.x;
  const int64_t segments = args.segments;
  const int64_t channels = args.channels;
  const int64_t packets = channels / V;
  Acc* state = clip_state(args.global_state, 4 * channels + segments, state_in_shared);
  Acc* mean_rgb = state;  // running a-weighted mean of f (Welford)
  Acc* mean_flow = state + channels;
  Acc* cov_rgb = state + 2 * channels;  // running sum_t a (g - mean_g)(f - mean_f)
  Acc* cov_flow = state + 3 * channels;
  Acc* de = state + 4 * channels;  // holds g[t] during the pass, then de[t]
  const T* f_rgb = args.f_rgb + clip * segments * channels;
  const T* f_flow = args.f_flow + clip * segments * channels;
  const Acc* dp_rgb = args.grad_p_rgb + clip * channels;
  const Acc* dp_flow = args.grad_p_flow + clip * channels;
  const Acc* attention = args.attention + clip * segments;

  for (int64_t p = threadIdx.x; p < packets; p += blockDim.x) {
#pragma unroll
    for (int i = 0; i < V; ++i) {
      mean_rgb[p * V + i] = 0;
      mean_flow[p * V + i] = 0;
      cov_rgb[p * V + i] = 0;
      cov_flow[p * V + i] = 0;
    }
  }
  // Block-uniform scalars: every thread computes them identically from the block sums.
  Acc weight_total = 0;  // W = sum of a so far
  Acc mean_g = 0;        // a-weighted mean of g so far
  Acc weighted_g = 0;    // s = sum of a g so far (the exact form the gradient formula uses)

  for (int64_t t0 = 0; t0 < segments; t0 += U) {
    Acc a[U];
#pragma unroll
    for (int u = 0; u < U; ++u) a[u] = t0 + u < segments ? attention[t0 + u] : Acc(0);
    Acc dots[U] = {};
    for (int64_t p = threadIdx.x; p < packets; p += blockDim.x) {
      Acc g_rgb[V], g_flow[V];
      detail::load_acc<Acc, V>(dp_rgb + p * V, g_rgb);
      detail::load_acc<Acc, V>(dp_flow + p * V, g_flow);
#pragma unroll
      for (int u = 0; u < U; ++u) {
        if (!(a[u] > 0)) continue;
        Acc x_rgb[V], x_flow[V];
        detail::load_packet<Acc, T, V>(f_rgb + (t0 + u) * channels + p * V, x_rgb);
        detail::load_packet<Acc, T, V>(f_flow + (t0 + u) * channels + p * V, x_flow);
#pragma unroll
        for (int i = 0; i < V; ++i) dots[u] += g_rgb[i] * x_rgb[i] + g_flow[i] * x_flow[i];
      }
    }
    detail::block_sum<U>(dots, scratch);

    // Welford coefficients of each real snippet: mean_f += ratio (f - mean_f); cov += a dg (f - mean_f_new).
    Acc ratio[U], weighted_dg[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      ratio[u] = 0;
      weighted_dg[u] = 0;
      if (!(a[u] > 0)) continue;
      const Acc g = dots[u] + args.grad_attention[clip * segments + t0 + u];
      if (threadIdx.x == 0) de[t0 + u] = g;
      weighted_g += a[u] * g;
      weight_total += a[u];
      ratio[u] = a[u] / weight_total;
      const Acc dg = g - mean_g;
      mean_g += ratio[u] * dg;
      weighted_dg[u] = a[u] * dg;
    }

    for (int64_t p = threadIdx.x; p < packets; p += blockDim.x) {
      Acc m_rgb[V], m_flow[V], c_rgb[V], c_flow[V];
#pragma unroll
      for (int i = 0; i < V; ++i) {
        m_rgb[i] = mean_rgb[p * V + i];
        m_flow[i] = mean_flow[p * V + i];
        c_rgb[i] = cov_rgb[p * V + i];
        c_flow[i] = cov_flow[p * V + i];
      }
#pragma unroll
      for (int u = 0; u < U; ++u) {
        if (!(a[u] > 0)) continue;
        Acc x_rgb[V], x_flow[V];
        detail::load_packet<Acc, T, V>(f_rgb + (t0 + u) * channels + p * V, x_rgb);
        detail::load_packet<Acc, T, V>(f_flow + (t0 + u) * channels + p * V, x_flow);
#pragma unroll
        for (int i = 0; i < V; ++i) {
          m_rgb[i] += ratio[u] * (x_rgb[i] - m_rgb[i]);
          m_flow[i] += ratio[u] * (x_flow[i] - m_flow[i]);
          c_rgb[i] += weighted_dg[u] * (x_rgb[i] - m_rgb[i]);
          c_flow[i] += weighted_dg[u] * (x_flow[i] - m_flow[i]);
        }
      }
#pragma unroll
      for (int i = 0; i < V; ++i) {
        mean_rgb[p * V + i] = m_rgb[i];
        mean_flow[p * V + i] = m_flow[i];
        cov_rgb[p * V + i] = c_rgb[i];
        cov_flow[p * V + i] = c_flow[i];
      }
    }
  }
  __syncthreads();  // g[t] written by thread 0

  // sum_t a (g - s) f = cov + W mean_f (mean_g - s): exact algebra, the second term is tiny (W ~ 1, mean_g ~ s).
  const Acc correction = weight_total * (mean_g - weighted_g);
  Acc* dw_rgb = args.dw_partials + clip * 2 * channels;
  Acc* dw_flow = dw_rgb + channels;
  for (int64_t c = threadIdx.x; c < channels; c += blockDim.x) {
    dw_rgb[c] = cov_rgb[c] + mean_rgb[c] * correction;
    dw_flow[c] = cov_flow[c] + mean_flow[c] * correction;
  }
  for (int64_t t = threadIdx.x; t < segments; t += blockDim.x) {
    const Acc a_t = attention[t];
    de[t] = a_t > 0 ? a_t * (de[t] - weighted_g) : Acc(0);
  }
  __syncthreads();  // de[t]

  // df[t] = a[t] dp + de[t] w, packet-major so dp and w are loaded once per packet; each t is one row store.
  T* df_rgb = args.df_rgb + clip * segments * channels;
  T* df_flow = args.df_flow + clip * segments * channels;
  for (int64_t p = threadIdx.x; p < packets; p += blockDim.x) {
    Acc g_rgb[V], g_flow[V], w_rgb[V], w_flow[V];
    detail::load_acc<Acc, V>(dp_rgb + p * V, g_rgb);
    detail::load_acc<Acc, V>(dp_flow + p * V, g_flow);
    detail::load_acc<Acc, V>(args.w_rgb + p * V, w_rgb);
    detail::load_acc<Acc, V>(args.w_flow + p * V, w_flow);
    for (int64_t t = 0; t < segments; ++t) {
      const Acc a_t = attention[t];
      const Acc de_t = de[t];
      Acc out_rgb[V], out_flow[V];
#pragma unroll
      for (int i = 0; i < V; ++i) {
        out_rgb[i] = a_t * g_rgb[i] + de_t * w_rgb[i];
        out_flow[i] = a_t * g_flow[i] + de_t * w_flow[i];
      }
      detail::store_packet<T, Acc, V>(df_rgb + t * channels + p * V, out_rgb);
      detail::store_packet<T, Acc, V>(df_flow + t * channels + p * V, out_flow);
    }
  }
}

int pool_threads(int64_t packets) {
  const int64_t rounded = detail::ceil_div(packets, detail::kWarpSize) * detail::kWarpSize;
  return static_cast<int>(std::min<int64_t>(kMaxThreads, std::max<int64_t>(kMinThreads, rounded)));
}

// Where the per-clip state of `state_elements` accumulators lives: shared memory when it fits the device's
// opt-in limit (after the static scratch), else a global workspace slice per clip.
struct StatePlacement {
  bool in_shared;
  size_t shared_bytes;  // dynamic shared memory of the launch
};

cudaError_t place_state(int64_t state_elements, DType features, StatePlacement* placement) {
  detail::DeviceLimits limits{};
  const cudaError_t err = detail::current_device_limits(&limits);
  if (err != cudaSuccess) return err;
  const size_t bytes = static_cast<size_t>(state_elements) * detail::acc_size(features);
  const size_t budget = static_cast<size_t>(limits.max_shared_optin) - kStaticSharedReserve;
  placement->in_shared = bytes <= budget;
  placement->shared_bytes = placement->in_shared ? bytes : 0;
  return cudaSuccess;
}

int64_t forward_state_elements(const PoolShape& shape) { return 2 * shape.channels + shape.segments; }
int64_t backward_state_elements(const PoolShape& shape) { return 4 * shape.channels + shape.segments; }

template <typename Kernel>
cudaError_t allow_dynamic_shared(Kernel kernel, size_t bytes) {
  if (bytes <= kDefaultDynamicShared) return cudaSuccess;
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
}

}  // namespace

cudaError_t joint_attention_pool_forward_workspace_elements(PoolShape shape, DType features, int64_t* elements) {
  StatePlacement placement{};
  const cudaError_t err = place_state(forward_state_elements(shape), features, &placement);
  if (err != cudaSuccess) return err;
  *elements = placement.in_shared ? 0 : shape.batch * forward_state_elements(shape);
  return cudaSuccess;
}

cudaError_t joint_attention_pool_forward(const void* f_rgb, const void* f_flow, const void* w_rgb_acc,
                                         const void* w_flow_acc, const bool* mask, void* p_rgb, void* p_flow,
                                         void* attention, void* workspace, PoolShape shape, DType features,
                                         cudaStream_t stream) {
  if (shape.batch == 0) return cudaSuccess;
  StatePlacement placement{};
  cudaError_t err = place_state(forward_state_elements(shape), features, &placement);
  if (err != cudaSuccess) return err;
  return detail::dispatch_dtype(features, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using Acc = detail::AccType<T>;
    const PoolForwardArgs<T, Acc> args{static_cast<const T*>(f_rgb), static_cast<const T*>(f_flow),
                                       static_cast<const Acc*>(w_rgb_acc), static_cast<const Acc*>(w_flow_acc),
                                       mask, static_cast<T*>(p_rgb), static_cast<T*>(p_flow),
                                       static_cast<Acc*>(attention), static_cast<Acc*>(workspace),
                                       shape.segments, shape.channels};
    const int width = detail::packet_width<T>(shape.channels, args.f_rgb, args.f_flow, args.p_rgb, args.p_flow);
    return detail::dispatch_packet<T>(width, [&](auto width_constant) {
      constexpr int V = decltype(width_constant)::value;
      const auto kernel = pool_forward_kernel<T, V>;
      const cudaError_t attr_err = allow_dynamic_shared(kernel, placement.shared_bytes);
      if (attr_err != cudaSuccess) return attr_err;
      kernel<<<static_cast<unsigned>(shape.batch), pool_threads(shape.channels / V), placement.shared_bytes,
               stream>>>(args, placement.in_shared);
      return cudaGetLastError();
    });
  });
}

cudaError_t joint_attention_pool_backward_workspace_elements(PoolShape shape, DType features, int64_t* elements) {
  StatePlacement placement{};
  const cudaError_t err = place_state(backward_state_elements(shape), features, &placement);
  if (err != cudaSuccess) return err;
  const int64_t partials = shape.batch * 2 * shape.channels;
  *elements = partials + (placement.in_shared ? 0 : shape.batch * backward_state_elements(shape));
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
  StatePlacement placement{};
  cudaError_t err = place_state(backward_state_elements(shape), features, &placement);
  if (err != cudaSuccess) return err;
  return detail::dispatch_dtype(features, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using Acc = detail::AccType<T>;
    Acc* partials = static_cast<Acc*>(workspace);
    const PoolBackwardArgs<T, Acc> args{static_cast<const Acc*>(grad_p_rgb_acc),
                                        static_cast<const Acc*>(grad_p_flow_acc),
                                        static_cast<const Acc*>(grad_attention_acc),
                                        static_cast<const T*>(f_rgb),
                                        static_cast<const T*>(f_flow),
                                        static_cast<const Acc*>(w_rgb_acc),
                                        static_cast<const Acc*>(w_flow_acc),
                                        static_cast<const Acc*>(attention_acc),
                                        static_cast<T*>(df_rgb),
                                        static_cast<T*>(df_flow),
                                        partials,
                                        partials + shape.batch * 2 * shape.channels,
                                        shape.segments,
                                        shape.channels};
    const int width = detail::packet_width<T>(shape.channels, args.f_rgb, args.f_flow, args.df_rgb, args.df_flow);
    const cudaError_t launch_err = detail::dispatch_packet<T>(width, [&](auto width_constant) {
      constexpr int V = decltype(width_constant)::value;
      const auto kernel = pool_backward_kernel<T, V>;
      const cudaError_t attr_err = allow_dynamic_shared(kernel, placement.shared_bytes);
      if (attr_err != cudaSuccess) return attr_err;
      kernel<<<static_cast<unsigned>(shape.batch), pool_threads(shape.channels / V), placement.shared_bytes,
               stream>>>(args, placement.in_shared);
      return cudaGetLastError();
    });
    if (launch_err != cudaSuccess) return launch_err;
    const int64_t row_stride = 2 * shape.channels;
    err = detail::launch_column_sum(static_cast<const Acc*>(partials), shape.batch, shape.channels, row_stride,
                                    dw_rgb, w_rgb_dtype, stream);
    if (err != cudaSuccess) return err;
    return detail::launch_column_sum(static_cast<const Acc*>(partials + shape.channels), shape.batch,
                                     shape.channels, row_stride, dw_flow, w_flow_dtype, stream);
  });
}

}  // namespace cuda
}  // namespace jna_fast
