// Fresh output tensors for the CPU kernels, backed by transparent huge pages where the OS allows it.
//
// Why: the CPU allocator hands large tensors straight from mmap, so the kernel's first write to each 4 KiB page
// takes a page fault. For feature-map-sized outputs that first touch costs several times the kernel's own
// memory traffic (measured on the 2-core dev machine: 77 MB written in 9 ms pre-faulted, 50+ ms fresh).
// With MADV_HUGEPAGE (honoured when /sys/kernel/mm/transparent_hugepage/enabled is "madvise" or "always")
// one fault maps 2 MiB. The advice only changes how pages are backed, never their contents or lifetime.
#pragma once

#include <ATen/ATen.h>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include <cstdint>

namespace jna_fast::cpu {

// Below this size a tensor spans few 2 MiB pages and the advice buys nothing.
constexpr int64_t kHugePageAdviceMinBytes = int64_t{4} << 20;

inline void advise_huge_pages(const at::Tensor& t) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHugePage = uintptr_t{2} << 20;
  const int64_t bytes = static_cast<int64_t>(t.nbytes());
  if (bytes < kHugePageAdviceMinBytes) {
    return;
  }
  const auto begin = reinterpret_cast<uintptr_t>(t.data_ptr());
  const uintptr_t first = (begin + kHugePage - 1) & ~(kHugePage - 1);
  const uintptr_t last = (begin + static_cast<uintptr_t>(bytes)) & ~(kHugePage - 1);
  if (last > first) {
    // Advice is best effort: an error (THP off, old kernel) leaves ordinary pages, so it is ignored.
    (void)madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
  }
#endif
}

// at::empty for a kernel output that is about to be written in full.
inline at::Tensor empty_output(at::IntArrayRef sizes, const at::TensorOptions& options) {
  auto t = at::empty(sizes, options);
  advise_huge_pages(t);
  return t;
}

}  // namespace jna_fast::cpu
