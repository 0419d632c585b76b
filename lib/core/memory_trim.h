// Returning memory to the system after a burst of queued output. Freed
// queue memory stays with the allocator (glibc keeps freed pages in its
// arenas unless they sit at the very top of a heap), so after slow readers
// filled their queues and left, the process kept hundreds of MiB it no
// longer used. The heartbeat tick asks this when to give it back: once the
// queues fell far below a recent peak that was worth it, and not often,
// since a trim walks every arena under its lock.
#pragma once

#include <cstddef>
#include <cstdint>

namespace wsgate {

class MemoryTrim {
public:
    // A peak below this is not worth a trim (the allocator's own
    // thresholds keep about this much anyway).
    static constexpr size_t kMinPeakBytes = size_t{8} << 20;
    // Trim once the queues hold at most a quarter of their peak.
    static constexpr size_t kFallDivisor = 4;
    // At most one trim this often.
    static constexpr int64_t kIntervalMs = 5000;

    // From the tick, with what the queues hold now and their peak since the
    // last trim. True: trim now, then lower the peak to `bytes` (the
    // caller's ledger), so the next trim needs a new burst.
    bool due(int64_t now_ms, size_t bytes, size_t peak) {
        if (peak < kMinPeakBytes || bytes > peak / kFallDivisor) return false;
        if (trimmed_ && now_ms - last_ms_ < kIntervalMs) return false;
        trimmed_ = true;
        last_ms_ = now_ms;
        return true;
    }

private:
    bool trimmed_ = false;
    int64_t last_ms_ = 0;
};

// Gives free heap memory back to the system (glibc's malloc_trim on every
// arena). False where the C library has no such call: nothing was done.
bool release_free_memory();

}  // namespace wsgate
