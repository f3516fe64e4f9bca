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

#include "cpu/vectorized_io.h"

namespace jna_fast::cpu {

// Below this size a tensor spans few 2 MiB pages and the advice buys nothing.
constexpr int64_t kHugePageAdviceMinBytes = int64_t{4} << 20;
constexpr int64_t kHugePageBytes = int64_t{2} << 20;

// at::empty for a kernel output that is about to be written in full. Large outputs are placed at the first
// 2 MiB boundary of a byte buffer from the ordinary CPU allocator that runs on to the next 2 MiB boundary past
// their end, and advised MADV_HUGEPAGE: every page of the output can then be a huge page (a 6.5 MB output
// straddling 2 MiB boundaries would otherwise keep ~600 small pages, measured 2-3 ms of faults per call here).
// The tensor keeps the buffer alive; a buffer from at::empty is NaN-poisoned under
// torch.utils.deterministic.fill_uninitialized_memory like any other (0xFF bytes are NaN in every float dtype).
inline at::Tensor empty_output(at::IntArrayRef sizes, const at::TensorOptions& options) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  const auto layout = at::empty(sizes, options.device(at::kMeta));
  const int64_t bytes = static_cast<int64_t>(layout.nbytes());
  if (bytes >= kHugePageAdviceMinBytes) {
    const int64_t span = round_up(bytes, kHugePageBytes);
    auto buffer = at::empty({span + kHugePageBytes}, options.dtype(at::kByte).memory_format(std::nullopt));
    const auto start = static_cast<int64_t>(reinterpret_cast<uintptr_t>(buffer.data_ptr()));
    auto* aligned = static_cast<uint8_t*>(buffer.data_ptr()) + (round_up(start, kHugePageBytes) - start);
    // Advice is best effort: an error (THP off, old kernel) leaves ordinary pages, so it is ignored.
    (void)madvise(aligned, static_cast<size_t>(span), MADV_HUGEPAGE);
    return at::from_blob(aligned, sizes, layout.strides(), [buffer](void*) {},
                         options.memory_format(std::nullopt));
  }
#endif
  return at::empty(sizes, options);
}

}  // namespace jna_fast::cpu
