// A log-bucketed histogram of non-negative integer samples (nanoseconds in
// wsgate-bench), in the spirit of HdrHistogram: values below 128 are exact;
// above, each power of two is split into 64 linear sub-buckets, so any
// reported value is within 1/128 (0.8 %) of a sample in its bucket. Fixed
// size (about 30 KiB), O(1) record, mergeable, serialisable as sparse pairs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace bench {

class Histogram {
public:
    static constexpr int kSubBits = 6;                     // 64 sub-buckets per octave
    static constexpr uint64_t kSub = 1ull << kSubBits;     // 64
    static constexpr uint64_t kExact = 2 * kSub;           // 0..127 are their own bucket
    static constexpr size_t kBuckets = kExact + (63 - kSubBits) * kSub;

    Histogram() : counts_(kBuckets, 0) {}

    void record(uint64_t v) {
        counts_[index_of(v)]++;
        count_++;
        sum_ += v;
        if (v < min_) min_ = v;
        if (v > max_) max_ = v;
    }
    void merge(const Histogram &o);

    uint64_t count() const { return count_; }
    uint64_t min() const { return count_ ? min_ : 0; }
    uint64_t max() const { return max_; }
    double mean() const { return count_ ? static_cast<double>(sum_) / count_ : 0.0; }
    // The value at quantile q (0..1): the midpoint of the bucket holding the
    // ceil(q * count)-th smallest sample, clamped to [min, max]. 0 if empty.
    uint64_t quantile(double q) const;

    // Sparse form for transport between processes: (bucket, count) pairs.
    std::vector<std::pair<uint32_t, uint64_t>> sparse() const;
    // Adds a sparse form produced by sparse(), with its exact min, max and sum.
    void add_sparse(const std::vector<std::pair<uint32_t, uint64_t>> &pairs, uint64_t min,
                    uint64_t max, uint64_t sum);
    uint64_t sum() const { return sum_; }

    static size_t index_of(uint64_t v) {
        if (v < kExact) return static_cast<size_t>(v);
        int msb = 63 - __builtin_clzll(v);           // >= 7
        int shift = msb - kSubBits;                  // >= 1
        uint64_t top = v >> shift;                   // kSub .. 2*kSub-1
        return static_cast<size_t>(kExact + static_cast<uint64_t>(msb - kSubBits - 1) * kSub +
                                   (top - kSub));
    }
    // Smallest and largest value that fall into bucket i.
    static uint64_t lower_of(size_t i);
    static uint64_t upper_of(size_t i);

private:
    std::vector<uint64_t> counts_;
    uint64_t count_ = 0;
    uint64_t sum_ = 0;
    uint64_t min_ = UINT64_MAX;
    uint64_t max_ = 0;
};

}  // namespace bench
