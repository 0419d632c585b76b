// Abuse limits: token buckets for handshake and message rates, and open
// connection counts per IP and per user. Pure logic, no lws, no clock of
// its own: every call takes the time (ms, from a wsgate::Clock) so tests
// drive a fake one.
//
// Threads: none of these types locks. They belong to the server's service
// thread, which is the only one that accepts, upgrades, reads and closes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "security/netaddr.h"

namespace wsgate {

// A rate and a burst, shared by every bucket that follows it (per server).
//
// Arithmetic is exact: a bucket holds micro-tokens (1 token = 1,000,000) and
// a rate of R tokens/s adds exactly R*1000 micro-tokens per ms, so the rate
// is kept in 0.001 tokens/s steps and refills never round. There is no drift
// however often or rarely a bucket is used.
class RateSpec {
public:
    static constexpr uint64_t kMicro = 1000000;           // micro-tokens per token
    static constexpr uint64_t kMaxMilliPerSecond = 1000000000000ull;  // 10^9 tokens/s

    // Unlimited.
    RateSpec() = default;

    // `per_second` <= 0 (or NaN): unlimited. Otherwise rounded to the nearest
    // 0.001/s, but never below 0.001/s (a tiny rate never turns into
    // "unlimited") nor above 10^9/s. `burst`: the bucket size in tokens, what
    // may be taken at once after an idle spell; 0 means one second's worth
    // (the rate rounded up, at least 1).
    static RateSpec per_second(double per_second, uint32_t burst);
    // The same from an integer count of tokens per 1000 s (0: unlimited):
    // per_second(0.5, b) == milli_per_second(500, b).
    static RateSpec milli_per_second(uint64_t milli, uint32_t burst);

    bool unlimited() const { return rate_ == 0; }
    uint64_t milli() const { return rate_; }  // tokens per 1000 s
    uint32_t burst() const { return burst_; }
    // Time for an empty bucket to fill up (ms, rounded up); 0 if unlimited.
    int64_t refill_ms() const;

    friend bool operator==(const RateSpec &a, const RateSpec &b) {
        return a.rate_ == b.rate_ && a.burst_ == b.burst_;
    }

private:
    friend class BucketState;
    uint64_t rate_ = 0;   // micro-tokens per ms (== tokens per 1000 s); 0: unlimited
    uint32_t burst_ = 0;  // tokens
};

// The state of one token bucket, 16 bytes; the RateSpec is passed in. A new
// bucket is full. O(1), no allocation, no overflow for any time values
// (a gap of any length just fills the bucket). Time going backwards counts
// as no time passing.
class BucketState {
public:
    // Takes `n` tokens if all are there (true), else takes none (false).
    // Unlimited spec: always true. n > burst: never true.
    bool take(const RateSpec &spec, int64_t now_ms, uint32_t n = 1);
    // Whole tokens available at `now_ms` (burst for an unlimited spec).
    uint64_t available(const RateSpec &spec, int64_t now_ms) const;
    // True when the bucket is (or would by now be) full: forgetting it
    // changes nothing, since a new bucket starts full.
    bool full(const RateSpec &spec, int64_t now_ms) const;

private:
    void refill(const RateSpec &spec, int64_t now_ms);
    static constexpr int64_t kNever = INT64_MIN;  // untouched: full (INT64_MIN as a time is read as +1)
    int64_t micro_ = 0;         // micro-tokens held at last_ms_
    int64_t last_ms_ = kNever;  // time of the last refill
};
static_assert(sizeof(BucketState) == 16, "BucketState lives in every connection");

// A self-contained token bucket: rate, burst and state.
class TokenBucket {
public:
    TokenBucket() = default;  // unlimited
    explicit TokenBucket(const RateSpec &spec) : spec_(spec) {}
    TokenBucket(double per_second, uint32_t burst) : spec_(RateSpec::per_second(per_second, burst)) {}

    bool take(int64_t now_ms, uint32_t n = 1) { return state_.take(spec_, now_ms, n); }
    uint64_t available(int64_t now_ms) const { return state_.available(spec_, now_ms); }
    const RateSpec &spec() const { return spec_; }

private:
    RateSpec spec_;
    BucketState state_;
};

// limits.messages_per_s and its burst (and limits.frames_per_s with its
// own): one per connection, embedded in the connection (16 bytes). The spec is the server's, passed in rather than
// pointed to, which keeps the connection small and has no lifetime to get
// wrong. What happens over the limit (close 1008, or drop the message) is
// limits.rate_policy, decided by the caller.
class MessageRateLimiter {
public:
    bool allow(const RateSpec &spec, int64_t now_ms) { return state_.take(spec, now_ms, 1); }

private:
    BucketState state_;
};
static_assert(sizeof(MessageRateLimiter) <= 16, "MessageRateLimiter lives in every connection");

// limits.handshakes_per_ip_per_s with its burst: one bucket per client
// address, in a table of fixed size so that a client cycling through
// addresses (an IPv6 /64 holds 2^64) cannot grow memory.
//
// Bound: at most `capacity` addresses are tracked. All memory is reserved at
// construction: capacity nodes of 40 bytes plus an index of 4-byte slots,
// at least twice as many as nodes (about 3.1 MB for 65,536). Lookups are
// O(1) (open addressing, load <= 1/2, hash seeded at random against
// flooding).
//
// Eviction: addresses are kept in least-recently-seen order. An address
// whose bucket has refilled is dropped at no cost (a new bucket starts full,
// so forgetting it changes nothing); each allow() drops up to two such
// addresses from the old end. When the table is full of addresses that are
// all still refilling, the least recently seen one is dropped and starts
// over with a full bucket if it comes back (counted in early_evictions(): a
// non-zero count means capacity is too small for the traffic, or an attack
// from more than `capacity` addresses within one refill time).
class HandshakeLimiter {
public:
    static constexpr size_t kDefaultCapacity = 65536;

    // capacity: clamped to 1..2^30. Unlimited spec: allow() is always true
    // and nothing is tracked.
    explicit HandshakeLimiter(const RateSpec &spec, size_t capacity = kDefaultCapacity);
    HandshakeLimiter(const RateSpec &spec, size_t capacity, uint64_t hash_seed);
    HandshakeLimiter(const HandshakeLimiter &) = delete;
    HandshakeLimiter &operator=(const HandshakeLimiter &) = delete;

    // One handshake from `ip` at `now_ms`: true if within its rate. Group
    // IPv6 clients by prefix by passing ip.masked(64) if wanted.
    bool allow(const IpAddr &ip, int64_t now_ms);

    size_t size() const { return size_; }          // addresses tracked now
    size_t capacity() const { return capacity_; }
    size_t index_slots() const { return slots_.size(); }
    uint64_t early_evictions() const { return early_evictions_; }
    const RateSpec &spec() const { return spec_; }

private:
    static constexpr uint32_t kNil = 0xffffffffu;
    struct Node {
        IpAddr ip;
        BucketState bucket;
        uint32_t prev = kNil, next = kNil;  // recency list; next doubles as free list link
    };
    size_t home(const IpAddr &ip) const { return hash_(ip) & mask_; }
    size_t find_slot(const IpAddr &ip) const;  // slot holding ip, or an empty one
    void erase_slot(size_t slot);
    void remove(uint32_t node);  // from index, recency list; to free list
    void unlink(uint32_t node);
    void push_front(uint32_t node);

    RateSpec spec_;
    size_t capacity_;
    IpAddrHash hash_;
    size_t mask_ = 0;
    std::vector<uint32_t> slots_;  // node index + 1; 0 is empty
    std::vector<Node> nodes_;      // grows up to capacity_, reserved up front
    uint32_t free_ = kNil;
    uint32_t head_ = kNil, tail_ = kNil;  // most, least recently seen
    size_t size_ = 0;
    uint64_t early_evictions_ = 0;
};

// Open connections per key, for limits.max_connections_per_ip and
// limits.max_connections_per_user. A key is stored only while it has open
// connections, so the table is at most as large as the connection count.
template <class Key, class Hash = std::hash<Key>>
class ConnCounter {
public:
    ConnCounter() = default;
    explicit ConnCounter(const Hash &h) : counts_(0, h) {}

    // Counts one more connection for `key` unless it already has `limit`
    // (0: no limit; counted all the same, so release() pairs with every
    // successful acquire). True when counted; false changes nothing.
    bool try_acquire(const Key &key, uint32_t limit) {
        auto it = counts_.find(key);
        uint32_t have = it == counts_.end() ? 0 : it->second;
        if ((limit != 0 && have >= limit) || have == UINT32_MAX) return false;
        if (it == counts_.end())
            counts_.emplace(key, 1u);
        else
            it->second++;
        total_++;
        return true;
    }
    // One connection of `key` ended. False (nothing changes) if `key` has
    // none: a release without its acquire, a bug for the caller to log.
    bool release(const Key &key) {
        auto it = counts_.find(key);
        if (it == counts_.end()) return false;
        if (--it->second == 0) counts_.erase(it);
        total_--;
        return true;
    }
    uint32_t count(const Key &key) const {
        auto it = counts_.find(key);
        return it == counts_.end() ? 0 : it->second;
    }
    size_t keys() const { return counts_.size(); }  // keys with open connections
    uint64_t total() const { return total_; }       // open connections counted

private:
    std::unordered_map<Key, uint32_t, Hash> counts_;
    uint64_t total_ = 0;
};

// A seed for hashes of client-chosen keys (std::random_device).
uint64_t random_hash_seed();

// Per client address, hashed with a random seed: a client picking many
// addresses from its IPv6 range cannot make them collide.
class IpConnCounter : public ConnCounter<IpAddr, IpAddrHash> {
public:
    IpConnCounter() : ConnCounter(IpAddrHash{random_hash_seed()}) {}
};

// Per authenticated user id (ids come from the application's tokens).
using UserConnCounter = ConnCounter<std::string>;

}  // namespace wsgate
