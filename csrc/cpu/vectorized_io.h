// Loads and stores between a feature dtype (float, double, BFloat16, Half) and vectors of its accumulation
// type (float; double for double), shared by the CPU kernels in this folder.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

namespace jna_fast::cpu {

template <typename scalar_t>
using acc_t = at::opmath_type<scalar_t>;

template <typename scalar_t>
using AccVec = at::vec::Vectorized<acc_t<scalar_t>>;

#if defined(CPU_CAPABILITY_AVX2)
// CMakeLists builds these files with -mavx2 -mfma; make sure at::vec picked its 256-bit vectors.
static_assert(at::vec::Vectorized<float>::size() == 8, "CPU_CAPABILITY_AVX2 set but at::vec is not 256-bit");
#endif

template <typename scalar_t>
constexpr bool kIsReduced = !std::is_same_v<scalar_t, acc_t<scalar_t>>;

// AccVec::size() elements from p, converted to the accumulation type.
template <typename scalar_t>
inline AccVec<scalar_t> load_acc(const scalar_t* p) {
  if constexpr (kIsReduced<scalar_t>) {
    at::vec::Vectorized<float> out;
    at::vec::load_to_float(p, out);
    return out;
  } else {
    return AccVec<scalar_t>::loadu(p);
  }
}

// The first `count` (< AccVec::size()) elements from p; the other lanes are zero.
template <typename scalar_t>
inline AccVec<scalar_t> load_acc(const scalar_t* p, int64_t count) {
  if constexpr (kIsReduced<scalar_t>) {
    return at::vec::convert<float>(at::vec::Vectorized<scalar_t>::loadu(p, count));
  } else {
    return AccVec<scalar_t>::loadu(p, count);
  }
}

// Stores AccVec::size() elements to p, rounded to scalar_t.
template <typename scalar_t>
inline void store_acc(scalar_t* p, const AccVec<scalar_t>& v) {
  if constexpr (kIsReduced<scalar_t>) {
    const auto narrow = at::vec::convert<scalar_t>(v);  // the 8 values sit in the low 128 bits
#if defined(CPU_CAPABILITY_AVX2)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_castsi256_si128(narrow));
#else
    narrow.store(p, AccVec<scalar_t>::size());
#endif
  } else {
    v.store(p);
  }
}

// Stores the first `count` (< AccVec::size()) lanes of v to p, rounded to scalar_t.
template <typename scalar_t>
inline void store_acc(scalar_t* p, const AccVec<scalar_t>& v, int64_t count) {
  if constexpr (kIsReduced<scalar_t>) {
    at::vec::convert<scalar_t>(v).store(p, count);
  } else {
    v.store(p, count);
  }
}

// `count` (1 ..= AccVec::size()) elements: the whole-vector path when count is the full width.
template <typename scalar_t>
inline AccVec<scalar_t> load_span(const scalar_t* p, int64_t count) {
  return count == AccVec<scalar_t>::size() ? load_acc(p) : load_acc(p, count);
}

template <typename scalar_t>
inline void store_span(scalar_t* p, const AccVec<scalar_t>& v, int64_t count) {
  if (count == AccVec<scalar_t>::size()) {
    store_acc(p, v);
  } else {
    store_acc(p, v, count);
  }
}

// Calls body(j, count) for the vector spans of [0, length): whole vectors (count is the constant `width`, so the
// span helpers above lose their branch once inlined), then one partial tail.
template <int64_t width, typename Body>
inline void for_each_span(int64_t length, Body&& body) {
  int64_t j = 0;
  for (; j + width <= length; j += width) {
    body(j, width);
  }
  if (j < length) {
    body(j, length - j);
  }
}

template <typename acc_type>
inline acc_type sum_lanes(const at::vec::Vectorized<acc_type>& v) {
  using Vec = at::vec::Vectorized<acc_type>;
  return at::vec::vec_reduce_all<acc_type>([](const Vec& a, const Vec& b) { return a + b; }, v);
}

// The lanes of a float vector as two double vectors (low half, high half), for sums that need double.
inline std::pair<at::vec::Vectorized<double>, at::vec::Vectorized<double>> widen(const at::vec::Vectorized<float>& v) {
  using Wide = at::vec::Vectorized<double>;
  static_assert(at::vec::Vectorized<float>::size() == 2 * Wide::size(), "a float vector widens to two doubles");
#if defined(CPU_CAPABILITY_AVX2)
  const __m256 x = v;
  return {Wide(_mm256_cvtps_pd(_mm256_castps256_ps128(x))), Wide(_mm256_cvtps_pd(_mm256_extractf128_ps(x, 1)))};
#else
  __at_align__ float narrow[at::vec::Vectorized<float>::size()];
  __at_align__ double wide[at::vec::Vectorized<float>::size()];
  v.store(narrow);
  for (int64_t i = 0; i < at::vec::Vectorized<float>::size(); ++i) {
    wide[i] = narrow[i];
  }
  return {Wide::loadu(wide), Wide::loadu(wide + Wide::size())};
#endif
}

// dst[0 .. x's width) += scale * x, summed in double (dst padded to a whole vector).
template <typename acc_type>
inline void fma_into_double(double* dst, double scale, const at::vec::Vectorized<acc_type>& x) {
  using Wide = at::vec::Vectorized<double>;
  const Wide scale_v(scale);
  if constexpr (std::is_same_v<acc_type, double>) {
    at::vec::fmadd(scale_v, x, Wide::loadu(dst)).store(dst);
  } else {
    const auto [low, high] = widen(x);
    at::vec::fmadd(scale_v, low, Wide::loadu(dst)).store(dst);
    at::vec::fmadd(scale_v, high, Wide::loadu(dst + Wide::size())).store(dst + Wide::size());
  }
}

inline int64_t round_up(int64_t value, int64_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}

// Per-thread partial sums of a reduction (dalpha, dw): each at::parallel_for thread adds into its own row,
// and the rows are summed in thread order afterwards, so a result does not depend on scheduling.
// Partials are double whatever the feature dtype: each thread adds up many per-plane/per-clip sums.
class ThreadPartials {
 public:
  explicit ThreadPartials(int64_t length)
      : length_(length), sums_(static_cast<size_t>(at::get_num_threads() * length), 0.0) {}

  double* mine() { return sums_.data() + at::get_thread_num() * length_; }

  // Sum over threads, element i into out[i].
  template <typename out_t>
  void sum_into(out_t* out) const {
    const int64_t threads = static_cast<int64_t>(sums_.size()) / (length_ > 0 ? length_ : 1);
    for (int64_t i = 0; i < length_; ++i) {
      double total = 0.0;
      for (int64_t thread = 0; thread < threads; ++thread) {
        total += sums_[thread * length_ + i];
      }
      out[i] = static_cast<out_t>(total);
    }
  }

 private:
  int64_t length_;
  std::vector<double> sums_;
};

// Small tensors (weights, alpha, output grads, dw, dalpha) are converted by serial loops, not ATen's copy: its
// kernel goes parallel even for [B, C], where starting the threads costs far more than the conversion itself.

// t as a contiguous tensor of out_t.
template <typename out_t>
at::Tensor converted(const at::Tensor& t) {
  const auto source = t.contiguous();
  constexpr auto out_type = c10::CppTypeToScalarType<out_t>::value;
  if (source.scalar_type() == out_type) {
    return source;
  }
  at::Tensor out = at::empty(source.sizes(), source.options().dtype(out_type));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, source.scalar_type(), "jna_fast_converted", [&] {
    const scalar_t* in = source.const_data_ptr<scalar_t>();
    out_t* o = out.template mutable_data_ptr<out_t>();
    for (int64_t i = 0; i < source.numel(); ++i) {
      o[i] = static_cast<out_t>(in[i]);
    }
  });
  return out;
}

// A fresh contiguous tensor of `sizes` and `options` with element i = values[index(i)].
template <typename Index>
at::Tensor tensor_from(const double* values, at::IntArrayRef sizes, const at::TensorOptions& options, Index&& index) {
  auto out = at::empty(sizes, options);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, out.scalar_type(), "jna_fast_tensor_from", [&] {
    scalar_t* o = out.mutable_data_ptr<scalar_t>();
    for (int64_t i = 0; i < out.numel(); ++i) {
      o[i] = static_cast<scalar_t>(values[index(i)]);
    }
  });
  return out;
}

// Adds a vector of accumulation-type sums into double partials at dst[0 .. count).
template <typename scalar_t>
inline void add_to_partials(double* dst, const acc_t<scalar_t>* src, int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    dst[i] += static_cast<double>(src[i]);
  }
}

}  // namespace jna_fast::cpu
