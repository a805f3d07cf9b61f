// How the programs' heap grows when they are linked with tcmalloc (the
// WEBTIER_TCMALLOC build option): in whole 2 MiB chunks, each asked for as
// transparent huge pages and populated in one system call, instead of one
// page fault per 4 KiB page the first time each page is touched.
//
// Why: a cache that fills (the balancer's edge cache, the webnode's hot
// copies) touches new memory with every object it keeps. On a virtual
// machine a page fault costs several microseconds (on the 2-vCPU machine of
// docs/benchmarks.md, the balancer's edge cache spent about 40 µs of CPU per
// stored answer, most of it first touches of new heap pages). A populated
// chunk costs one call for 512 pages, or one huge page where the kernel has
// them (`madvise` mode of /sys/kernel/mm/transparent_hugepage/enabled).
//
// What it does not change: tcmalloc still decides how much it takes (at least
// 1 MiB each time its page heap runs short, now rounded up to 2 MiB) and
// still hands free memory back to the system at its release rate; the RSS
// bound of --edge-cache-bytes holds as before. Only compiled into the two
// programs, never into tests or sanitizer builds.
#include <sys/mman.h>

#include <cstddef>
#include <cstdint>

#include <gperftools/malloc_extension.h>

namespace {

constexpr size_t kChunk = size_t{2} << 20;

class PopulatingSysAllocator final : public SysAllocator {
 public:
  explicit PopulatingSysAllocator(SysAllocator* fallback) : fallback_(fallback) {}

  void* Alloc(size_t size, size_t* actual_size, size_t alignment) override {
    if (alignment > kChunk || size > (SIZE_MAX >> 2)) return Fallback(size, actual_size, alignment);
    const size_t length = (size + kChunk - 1) & ~(kChunk - 1);
    // Over-map by one chunk so that the part kept starts on a chunk boundary
    // (a huge page needs a 2 MiB-aligned range).
    void* mapped = mmap(nullptr, length + kChunk, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mapped == MAP_FAILED) return Fallback(size, actual_size, alignment);
    const auto start = reinterpret_cast<uintptr_t>(mapped);
    const uintptr_t aligned = (start + kChunk - 1) & ~(uintptr_t{kChunk} - 1);
    if (aligned > start) munmap(mapped, aligned - start);
    const uintptr_t end = start + length + kChunk;
    if (end > aligned + length) munmap(reinterpret_cast<void*>(aligned + length), end - (aligned + length));
    void* p = reinterpret_cast<void*>(aligned);
    // Both are hints: without huge pages or MADV_POPULATE_WRITE (Linux 5.14)
    // the memory is faulted in page by page, as before.
    madvise(p, length, MADV_HUGEPAGE);
#ifdef MADV_POPULATE_WRITE
    madvise(p, length, MADV_POPULATE_WRITE);
#endif
    if (actual_size != nullptr) *actual_size = length;
    return p;
  }

 private:
  void* Fallback(size_t size, size_t* actual_size, size_t alignment) {
    return fallback_ != nullptr ? fallback_->Alloc(size, actual_size, alignment) : nullptr;
  }

  SysAllocator* const fallback_;
};

// Installed before main() runs, while the program is still one thread (the
// interface asks its caller for the locking).
const bool kInstalled = [] {
  MallocExtension* extension = MallocExtension::instance();
  static PopulatingSysAllocator allocator(extension->GetSystemAllocator());
  extension->SetSystemAllocator(&allocator);
  return true;
}();

}  // namespace
