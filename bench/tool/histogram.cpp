#include "histogram.h"

#include <algorithm>
#include <cmath>

namespace bench {

uint64_t Histogram::lower_of(size_t i) {
    if (i < kExact) return i;
    size_t k = (i - kExact) / kSub;
    uint64_t top = kSub + (i - kExact) % kSub;
    return top << (k + 1);
}

uint64_t Histogram::upper_of(size_t i) {
    if (i < kExact) return i;
    size_t k = (i - kExact) / kSub;
    uint64_t top = kSub + (i - kExact) % kSub;
    return ((top + 1) << (k + 1)) - 1;  // wraps to UINT64_MAX for the last bucket
}

void Histogram::merge(const Histogram &o) {
    for (size_t i = 0; i < kBuckets; i++) counts_[i] += o.counts_[i];
    count_ += o.count_;
    sum_ += o.sum_;
    min_ = std::min(min_, o.min_);
    max_ = std::max(max_, o.max_);
}

uint64_t Histogram::quantile(double q) const {
    if (count_ == 0) return 0;
    q = std::min(1.0, std::max(0.0, q));
    uint64_t rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_)));
    if (rank == 0) rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < kBuckets; i++) {
        seen += counts_[i];
        if (seen >= rank) {
            uint64_t lo = lower_of(i), hi = upper_of(i);
            uint64_t mid = lo + (hi - lo) / 2;
            return std::min(max_, std::max(min_, mid));
        }
    }
    return max_;
}

std::vector<std::pair<uint32_t, uint64_t>> Histogram::sparse() const {
    std::vector<std::pair<uint32_t, uint64_t>> out;
    for (size_t i = 0; i < kBuckets; i++)
        if (counts_[i]) out.emplace_back(static_cast<uint32_t>(i), counts_[i]);
    return out;
}

void Histogram::add_sparse(const std::vector<std::pair<uint32_t, uint64_t>> &pairs, uint64_t min,
                           uint64_t max, uint64_t sum) {
    uint64_t n = 0;
    for (const auto &p : pairs) {
        if (p.first >= kBuckets) continue;
        counts_[p.first] += p.second;
        n += p.second;
    }
    if (n == 0) return;
    count_ += n;
    sum_ += sum;
    min_ = std::min(min_, min);
    max_ = std::max(max_, max);
}

}  // namespace bench
