// Device and launch helpers shared by the CUDA kernels of csrc/cuda: dtype dispatch, vectorised loads and
// stores, conversions to and from the accumulation type, a deterministic block reduction, and the column
// sum that turns per-block partials into parameter gradients. CUDA runtime only (no torch headers).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "cuda/launchers.h"

namespace jna_fast {
namespace cuda {
namespace detail {

template <typename T>
struct TypeTag {
  using type = T;
};

// Calls fn(TypeTag<T>{}) with the C++ type of `dtype`.
template <typename Fn>
cudaError_t dispatch_dtype(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::Float32:
      return fn(TypeTag<float>{});
    case DType::Float64:
      return fn(TypeTag<double>{});
    case DType::BFloat16:
      return fn(TypeTag<__nv_bfloat16>{});
    case DType::Float16:
      return fn(TypeTag<__half>{});
  }
  return cudaErrorInvalidValue;
}

// float64 features accumulate in double (gradcheck precision), every other dtype in float.
template <typename T>
using AccType = std::conditional_t<std::is_same_v<T, double>, double, float>;

inline size_t acc_size(DType features) { return features == DType::Float64 ? sizeof(double) : sizeof(float); }

template <typename Acc, typename T>
__device__ __forceinline__ Acc to_acc(T x) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    return static_cast<Acc>(__bfloat162float(x));
  } else if constexpr (std::is_same_v<T, __half>) {
    return static_cast<Acc>(__half2float(x));
  } else {
    return static_cast<Acc>(x);
  }
}

template <typename T, typename Acc>
__device__ __forceinline__ T from_acc(Acc x) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    return __float2bfloat16_rn(static_cast<float>(x));
  } else if constexpr (std::is_same_v<T, __half>) {
    return __float2half_rn(static_cast<float>(x));
  } else {
    return static_cast<T>(x);
  }
}

// V consecutive elements moved as one aligned load/store (16 bytes when V * sizeof(T) == 16).
template <typename T, int V>
struct alignas(sizeof(T) * V) Packet {
  T v[V];
};

template <typename Acc, typename T, int V>
__device__ __forceinline__ void load_packet(const T* ptr, Acc (&out)[V]) {
  const Packet<T, V> packet = *reinterpret_cast<const Packet<T, V>*>(ptr);
#pragma unroll
  for (int i = 0; i < V; ++i) out[i] = to_acc<Acc>(packet.v[i]);
}

template <typename T, typename Acc, int V>
__device__ __forceinline__ void store_packet(T* ptr, const Acc (&in)[V]) {
  Packet<T, V> packet;
#pragma unroll
  for (int i = 0; i < V; ++i) packet.v[i] = from_acc<T>(in[i]);
  *reinterpret_cast<Packet<T, V>*>(ptr) = packet;
}

// Parameters arrive in acc already; they are small and cache-resident, so plain element loads suffice.
template <typename Acc, int V>
__device__ __forceinline__ void load_acc(const Acc* ptr, Acc (&out)[V]) {
#pragma unroll
  for (int i = 0; i < V; ++i) out[i] = __ldg(ptr + i);
}

constexpr int kMaxPacketBytes = 16;
constexpr int kWarpSize = 32;
constexpr int kMaxWarps = 32;

template <typename Acc>
__device__ __forceinline__ Acc warp_sum(Acc v) {
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Sums N values over the block; every thread gets the same N totals (same order of additions everywhere, so
// the block agrees on the result bit for bit). `scratch` is shared memory of N * kMaxWarps elements.
// Contains __syncthreads(): every thread of the block must call it.
template <int N, typename Acc>
__device__ __forceinline__ void block_sum(Acc (&values)[N], Acc* scratch) {
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  const int warps = (blockDim.x + kWarpSize - 1) / kWarpSize;
#pragma unroll
  for (int i = 0; i < N; ++i) {
    values[i] = warp_sum(values[i]);
    if (lane == 0) scratch[i * kMaxWarps + warp] = values[i];
  }
  __syncthreads();
#pragma unroll
  for (int i = 0; i < N; ++i) {
    Acc total = 0;
    for (int w = 0; w < warps; ++w) total += scratch[i * kMaxWarps + w];
    values[i] = total;
  }
  __syncthreads();  // scratch may be reused right after
}

// out[col] = sum over rows of partials[row * row_stride + col], in a fixed order (deterministic).
// Block: kColumnTile columns x kRowLanes row lanes; the row lanes are combined through shared memory.
constexpr int kColumnTile = 32;
constexpr int kRowLanes = 8;

template <typename Acc, typename Out>
__global__ void column_sum_kernel(const Acc* __restrict__ partials, int64_t rows, int64_t cols,
                                  int64_t row_stride, Out* __restrict__ out) {
  __shared__ Acc lane_sums[kRowLanes][kColumnTile + 1];
  const int64_t col = static_cast<int64_t>(blockIdx.x) * kColumnTile + threadIdx.x;
  Acc sum = 0;
  if (col < cols) {
    for (int64_t row = threadIdx.y; row < rows; row += kRowLanes) sum += partials[row * row_stride + col];
  }
  lane_sums[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y == 0 && col < cols) {
    Acc total = 0;
#pragma unroll
    for (int lane = 0; lane < kRowLanes; ++lane) total += lane_sums[lane][threadIdx.x];
    out[col] = from_acc<Out>(total);
  }
}

template <typename Acc>
cudaError_t launch_column_sum(const Acc* partials, int64_t rows, int64_t cols, int64_t row_stride, void* out,
                              DType out_dtype, cudaStream_t stream) {
  if (cols == 0) return cudaSuccess;
  const dim3 block(kColumnTile, kRowLanes);
  const dim3 grid(static_cast<unsigned>((cols + kColumnTile - 1) / kColumnTile));
  return dispatch_dtype(out_dtype, [&](auto tag) {
    using Out = typename decltype(tag)::type;
    column_sum_kernel<Acc, Out><<<grid, block, 0, stream>>>(partials, rows, cols, row_stride, static_cast<Out*>(out));
    return cudaGetLastError();
  });
}

// ---- host-side planning helpers ----

inline bool aligned_to(const void* ptr, size_t bytes) { return reinterpret_cast<uintptr_t>(ptr) % bytes == 0; }

// The widest packet (a power of two, at most 16 bytes) that divides `run` (the length of a contiguous run of
// elements that share an indexing rule) and to which every pointer is aligned. 1 means scalar loads.
template <typename T, typename... Ptrs>
int packet_width(int64_t run, const Ptrs*... ptrs) {
  int width = kMaxPacketBytes / static_cast<int>(sizeof(T));
  while (width > 1) {
    const size_t bytes = static_cast<size_t>(width) * sizeof(T);
    if (run % width == 0 && (aligned_to(ptrs, bytes) && ...)) break;
    width /= 2;
  }
  return width;
}

// Calls fn(std::integral_constant<int, V>{}) for the runtime packet width V in {1, 2, 4, 8}, limited to
// widths that fit T in 16 bytes (the others are never chosen and not instantiated).
template <typename T, typename Fn>
cudaError_t dispatch_packet(int width, Fn&& fn) {
  constexpr int kMax = kMaxPacketBytes / static_cast<int>(sizeof(T));
  switch (width) {
    case 1:
      return fn(std::integral_constant<int, 1>{});
    case 2:
      if constexpr (kMax >= 2) return fn(std::integral_constant<int, 2>{});
      break;
    case 4:
      if constexpr (kMax >= 4) return fn(std::integral_constant<int, 4>{});
      break;
    case 8:
      if constexpr (kMax >= 8) return fn(std::integral_constant<int, 8>{});
      break;
    default:
      break;
  }
  return cudaErrorInvalidValue;
}

struct DeviceLimits {
  int sm_count;
  int max_shared_optin;  // bytes of shared memory a block may opt in to
};

inline cudaError_t current_device_limits(DeviceLimits* limits) {
  int device = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err != cudaSuccess) return err;
  err = cudaDeviceGetAttribute(&limits->sm_count, cudaDevAttrMultiProcessorCount, device);
  if (err != cudaSuccess) return err;
  return cudaDeviceGetAttribute(&limits->max_shared_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
}

__host__ __device__ inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace detail
}  // namespace cuda
}  // namespace jna_fast
