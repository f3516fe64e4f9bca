// The pool behind empty_output (output_memory.h).
#include "cpu/output_memory.h"
#include "cpu/vectorized_io.h"

#include <ATen/Context.h>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include <cstdlib>
#include <deque>
#include <limits>
#include <mutex>
#include <string>
#include <unordered_map>

namespace jna_fast::cpu {
namespace {

// Below this size a tensor spans few 2 MiB pages and comes from at::empty as usual.
constexpr int64_t kPooledOutputMinBytes = int64_t{4} << 20;
constexpr int64_t kHugePageBytes = int64_t{2} << 20;

int64_t cache_limit_bytes() {
  constexpr int64_t kDefaultMegabytes = 1024;
  const char* text = std::getenv("JNA_FAST_CPU_OUTPUT_CACHE_MB");
  if (text == nullptr || *text == '\0') {
    return kDefaultMegabytes << 20;
  }
  try {
    const int64_t megabytes = std::stoll(text);
    TORCH_CHECK_VALUE(megabytes >= 0, "JNA_FAST_CPU_OUTPUT_CACHE_MB must be >= 0, got ", text);
    return megabytes << 20;
  } catch (const std::logic_error&) {  // stoll: not a number, or out of range
    TORCH_CHECK_VALUE(false, "JNA_FAST_CPU_OUTPUT_CACHE_MB must be a whole number of MiB, got '", text, "'");
  }
}

class BufferPool {
 public:
  // Never destroyed: a tensor may free its buffer after static destructors have run (interpreter exit).
  static BufferPool& instance() {
    static auto* pool = new BufferPool(cache_limit_bytes());
    return *pool;
  }

  // A buffer of `bytes` (a multiple of kHugePageBytes), 2 MiB aligned: the most recently freed idle one of that
  // size, else a new one.
  void* acquire(int64_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto it = idle_.rbegin(); it != idle_.rend(); ++it) {
        if (sizes_.at(*it) == bytes) {
          void* buffer = *it;
          idle_.erase(std::next(it).base());
          idle_bytes_ -= bytes;
          return buffer;
        }
      }
    }
    void* buffer = std::aligned_alloc(static_cast<size_t>(kHugePageBytes), static_cast<size_t>(bytes));
    if (buffer == nullptr) {
      empty();  // idle buffers of other sizes may be what stands between us and the memory
      buffer = std::aligned_alloc(static_cast<size_t>(kHugePageBytes), static_cast<size_t>(bytes));
    }
    TORCH_CHECK(buffer != nullptr, "jna_fast: out of memory allocating a ", bytes, "-byte CPU output");
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    // Best effort: an error (THP off, old kernel) leaves ordinary pages, so it is ignored.
    (void)madvise(buffer, static_cast<size_t>(bytes), MADV_HUGEPAGE);
#endif
    std::lock_guard<std::mutex> lock(mutex_);
    sizes_[buffer] = bytes;
    return buffer;
  }

  // The deleter of every pooled tensor's storage.
  static void release(void* buffer) {
    auto& pool = instance();
    std::lock_guard<std::mutex> lock(pool.mutex_);
    const int64_t bytes = pool.sizes_.at(buffer);
    if (bytes > pool.limit_) {
      pool.free_locked(buffer);
      return;
    }
    pool.idle_.push_back(buffer);
    pool.idle_bytes_ += bytes;
    while (pool.idle_bytes_ > pool.limit_) {  // evict the least recently freed
      void* oldest = pool.idle_.front();
      pool.idle_.pop_front();
      pool.idle_bytes_ -= pool.sizes_.at(oldest);
      pool.free_locked(oldest);
    }
  }

  void empty() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (void* buffer : idle_) {
      free_locked(buffer);
    }
    idle_.clear();
    idle_bytes_ = 0;
  }

  int64_t idle_bytes() {
    std::lock_guard<std::mutex> lock(mutex_);
    return idle_bytes_;
  }

 private:
  explicit BufferPool(int64_t limit) : limit_(limit) {}

  void free_locked(void* buffer) {
    sizes_.erase(buffer);
    std::free(buffer);
  }

  const int64_t limit_;
  std::mutex mutex_;
  std::unordered_map<void*, int64_t> sizes_;  // every buffer the pool made and has not freed, idle or in use
  std::deque<void*> idle_;                    // least recently freed first
  int64_t idle_bytes_ = 0;
};

}  // namespace

at::Tensor empty_output(at::IntArrayRef sizes, const at::TensorOptions& options) {
  const auto layout = at::empty(sizes, options.device(at::kMeta));
  const int64_t bytes = static_cast<int64_t>(layout.nbytes());
  if (bytes < kPooledOutputMinBytes) {
    return at::empty(sizes, options);
  }
  // With the pool off (limit 0) the buffer is still huge-page-backed, and freed when its tensor dies.
  void* buffer = BufferPool::instance().acquire(round_up(bytes, kHugePageBytes));
  auto out = at::for_blob(buffer, sizes)
                 .strides(layout.strides())
                 .context(buffer, &BufferPool::release)
                 .options(options.memory_format(std::nullopt))
                 .make_tensor();
  if (at::globalContext().deterministicAlgorithms() && at::globalContext().deterministicFillUninitializedMemory()) {
    out.fill_(std::numeric_limits<double>::quiet_NaN());  // what at::empty does in this mode (floating dtypes)
  }
  return out;
}

int64_t output_cache_idle_bytes() {
  return BufferPool::instance().idle_bytes();
}

void empty_output_cache() {
  BufferPool::instance().empty();
}

}  // namespace jna_fast::cpu
