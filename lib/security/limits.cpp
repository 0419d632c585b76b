#include "security/limits.h"

#include <cmath>
#include <random>

namespace wsgate {

// ---------------------------------------------------------------- RateSpec

RateSpec RateSpec::per_second(double per_second, uint32_t burst) {
    if (!(per_second > 0)) return milli_per_second(0, burst);  // also NaN
    double milli = std::round(per_second * 1000.0);
    if (milli < 1) milli = 1;
    if (milli > double(kMaxMilliPerSecond)) milli = double(kMaxMilliPerSecond);
    return milli_per_second(static_cast<uint64_t>(milli), burst);
}

RateSpec RateSpec::milli_per_second(uint64_t milli, uint32_t burst) {
    RateSpec s;
    s.rate_ = milli < kMaxMilliPerSecond ? milli : kMaxMilliPerSecond;
    if (burst == 0) {
        uint64_t whole = (s.rate_ + 999) / 1000;  // one second's worth, rounded up
        burst = whole < 1 ? 1 : whole > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(whole);
    }
    s.burst_ = burst;
    return s;
}

int64_t RateSpec::refill_ms() const {
    if (rate_ == 0) return 0;
    uint64_t cap = uint64_t(burst_) * kMicro;
    return static_cast<int64_t>((cap + rate_ - 1) / rate_);
}

// ---------------------------------------------------------------- BucketState

// Bounds that keep every product below 2^63: capacity <= (2^32-1) * 10^6
// < 2^52, rate <= 10^12 < 2^40, and dt * rate is only formed when dt is under
// the time to fill the room, so it stays below capacity + rate.
void BucketState::refill(const RateSpec &spec, int64_t now_ms) {
    const uint64_t cap = uint64_t(spec.burst_) * RateSpec::kMicro;
    if (now_ms == kNever) now_ms++;  // the sentinel is not a time
    if (last_ms_ == kNever) {
        micro_ = static_cast<int64_t>(cap);
        last_ms_ = now_ms;
        return;
    }
    if (now_ms <= last_ms_) return;
    // Both are int64 and now > last: the difference fits in uint64.
    const uint64_t dt = uint64_t(now_ms) - uint64_t(last_ms_);
    const uint64_t room = cap - uint64_t(micro_);
    if (dt >= (room + spec.rate_ - 1) / spec.rate_)
        micro_ = static_cast<int64_t>(cap);  // the rest of the gap is lost, as in any bucket
    else
        micro_ += static_cast<int64_t>(dt * spec.rate_);
    last_ms_ = now_ms;
}

bool BucketState::take(const RateSpec &spec, int64_t now_ms, uint32_t n) {
    if (spec.unlimited()) return true;
    refill(spec, now_ms);
    const int64_t need = static_cast<int64_t>(uint64_t(n) * RateSpec::kMicro);
    if (micro_ < need) return false;
    micro_ -= need;
    return true;
}

uint64_t BucketState::available(const RateSpec &spec, int64_t now_ms) const {
    if (spec.unlimited()) return spec.burst_;
    BucketState b = *this;
    b.refill(spec, now_ms);
    return uint64_t(b.micro_) / RateSpec::kMicro;
}

bool BucketState::full(const RateSpec &spec, int64_t now_ms) const {
    if (spec.unlimited() || last_ms_ == kNever) return true;
    BucketState b = *this;
    b.refill(spec, now_ms);
    return uint64_t(b.micro_) == uint64_t(spec.burst_) * RateSpec::kMicro;
}

// ---------------------------------------------------------------- HandshakeLimiter

uint64_t random_hash_seed() {
    std::random_device rd;
    return (uint64_t(rd()) << 32) ^ rd();
}

HandshakeLimiter::HandshakeLimiter(const RateSpec &spec, size_t capacity)
    : HandshakeLimiter(spec, capacity, random_hash_seed()) {}

HandshakeLimiter::HandshakeLimiter(const RateSpec &spec, size_t capacity, uint64_t hash_seed)
    : spec_(spec), capacity_(capacity < 1 ? 1 : capacity > (size_t(1) << 30) ? size_t(1) << 30 : capacity),
      hash_{hash_seed} {
    static_assert(sizeof(Node) == 40, "the memory bound in limits.h counts 40-byte nodes");
    if (spec_.unlimited()) return;
    size_t n = 2;
    while (n < 2 * capacity_) n <<= 1;  // load factor <= 1/2: short probes
    slots_.assign(n, 0);
    mask_ = n - 1;
    nodes_.reserve(capacity_);
}

size_t HandshakeLimiter::find_slot(const IpAddr &ip) const {
    // Terminates: at least half the slots are empty.
    for (size_t s = home(ip);; s = (s + 1) & mask_) {
        uint32_t v = slots_[s];
        if (v == 0 || nodes_[v - 1].ip == ip) return s;
    }
}

// Linear probing deletion without tombstones: entries after the hole that
// may not stay where they are (their home is not cyclically in
// (hole, here]) move back into it, so lookups never stop early.
void HandshakeLimiter::erase_slot(size_t hole) {
    for (size_t s = (hole + 1) & mask_; slots_[s] != 0; s = (s + 1) & mask_) {
        size_t want = home(nodes_[slots_[s] - 1].ip);
        bool stays = hole <= s ? (hole < want && want <= s) : (hole < want || want <= s);
        if (stays) continue;
        slots_[hole] = slots_[s];
        hole = s;
    }
    slots_[hole] = 0;
}

void HandshakeLimiter::unlink(uint32_t i) {
    Node &n = nodes_[i];
    (n.prev == kNil ? head_ : nodes_[n.prev].next) = n.next;
    (n.next == kNil ? tail_ : nodes_[n.next].prev) = n.prev;
    n.prev = n.next = kNil;
}

void HandshakeLimiter::push_front(uint32_t i) {
    Node &n = nodes_[i];
    n.prev = kNil;
    n.next = head_;
    (head_ == kNil ? tail_ : nodes_[head_].prev) = i;
    head_ = i;
}

void HandshakeLimiter::remove(uint32_t i) {
    erase_slot(find_slot(nodes_[i].ip));
    unlink(i);
    nodes_[i].next = free_;
    free_ = i;
    size_--;
}

bool HandshakeLimiter::allow(const IpAddr &ip, int64_t now_ms) {
    if (spec_.unlimited()) return true;
    // Forget a couple of idle addresses: keeps size() near the number of
    // addresses seen within one refill time, at O(1) per call.
    for (int k = 0; k < 2 && tail_ != kNil && nodes_[tail_].ip != ip &&
                    nodes_[tail_].bucket.full(spec_, now_ms);
         k++)
        remove(tail_);
    size_t s = find_slot(ip);
    uint32_t i;
    if (slots_[s] != 0) {
        i = slots_[s] - 1;
        unlink(i);
    } else {
        if (size_ == capacity_) {
            if (!nodes_[tail_].bucket.full(spec_, now_ms)) early_evictions_++;
            remove(tail_);
            s = find_slot(ip);  // the deletion may have moved entries
        }
        if (free_ != kNil) {
            i = free_;
            free_ = nodes_[i].next;
            nodes_[i] = Node();
        } else {
            i = static_cast<uint32_t>(nodes_.size());
            nodes_.emplace_back();  // within the reserved capacity
        }
        nodes_[i].ip = ip;
        slots_[s] = i + 1;
        size_++;
    }
    push_front(i);
    return nodes_[i].bucket.take(spec_, now_ms);
}

}  // namespace wsgate
