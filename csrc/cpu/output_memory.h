// Fresh output tensors for the CPU kernels: large ones come from a small pool of recycled, huge-page-backed
// buffers.
//
// Why: the CPU allocator hands large tensors straight from mmap (glibc's threshold for that moves between
// 128 KiB and 32 MiB with the process's history), so a kernel's first write to each page of its output takes a
// page fault, and the OS zeroes the page before our kernel overwrites it: writing fresh memory is several times
// slower than writing pre-faulted memory. With 2 MiB pages the faults are few but each zeroes 2 MiB, flushing the
// caches the kernel is working from. A kernel's time then depends on where glibc's threshold stands
// (docs/design.md §5.4 has the figures with and without this pool).
// A training loop allocates the same output shapes every step, so the buffers freed by one step serve the next:
// no faults, no zeroing, and timings that do not depend on the allocator's mood.
//
// The pool keeps at most JNA_FAST_CPU_OUTPUT_CACHE_MB (default 1024; 0 turns the pool off) of idle buffers,
// least recently freed evicted first; jna_fast.ops.empty_cpu_output_cache() frees them all. A buffer is idle
// only once every tensor and view of its storage is gone, so recycling can never alias live data. Under
// torch.utils.deterministic.fill_uninitialized_memory a recycled buffer is NaN-filled like any at::empty.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

namespace jna_fast::cpu {

// at::empty for a kernel output that is about to be written in full (see above).
at::Tensor empty_output(at::IntArrayRef sizes, const at::TensorOptions& options);

// Bytes of idle buffers the pool holds now.
int64_t output_cache_idle_bytes();

// Frees every idle buffer (buffers still in use return to the pool when their tensors die).
void empty_output_cache();

}  // namespace jna_fast::cpu
