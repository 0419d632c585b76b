// Abuse limits (lib/limits) and client addresses (lib/netaddr): exact token
// buckets, the per-IP handshake table and its memory bound, connection
// counters against a model, CIDR parsing and matching, and the
// X-Forwarded-For matrix. Time comes from a fake clock.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
extern "C" {
#include <cmocka.h>
}

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmath>
#include <cstring>
#include <list>
#include <map>
#include <random>
#include <string>
#include <unordered_set>

#include "security/limits.h"
#include "security/netaddr.h"
#include "core/wheel.h"

using wsgate::BucketState;
using wsgate::Cidr;
using wsgate::CidrList;
using wsgate::HandshakeLimiter;
using wsgate::IpAddr;
using wsgate::IpConnCounter;
using wsgate::MessageRateLimiter;
using wsgate::RateSpec;
using wsgate::TokenBucket;
using wsgate::UserConnCounter;

namespace {

class FakeClock : public wsgate::Clock {
public:
    int64_t now_ms() override { return now; }
    void advance(int64_t ms) { now += ms; }
    int64_t now = 1000;
};

IpAddr ip(const char *text) {
    std::optional<IpAddr> a = IpAddr::parse(text);
    if (!a) fail_msg("'%s' did not parse as an address", text);
    return *a;
}

CidrList cidrs(const char *text) {
    std::string err;
    std::optional<CidrList> l = CidrList::parse(text, &err);
    if (!l) fail_msg("list '%s' refused: %s", text, err.c_str());
    return *l;
}

// Takes as many single tokens as the bucket gives at this instant.
int drain(TokenBucket &b, int64_t now) {
    int n = 0;
    while (b.take(now)) n++;
    return n;
}

}  // namespace

// ---------------------------------------------------------------- token buckets

static void bucket_burst_then_rate(void **) {
    FakeClock clock;
    TokenBucket b(10, 5);  // 10/s: one token per 100 ms
    assert_int_equal(drain(b, clock.now_ms()), 5);
    clock.advance(99);
    assert_false(b.take(clock.now_ms()));
    clock.advance(1);
    assert_true(b.take(clock.now_ms()));
    assert_false(b.take(clock.now_ms()));
    // Fractions of a token accumulate across calls: 50 + 50 ms is one token.
    clock.advance(50);
    assert_false(b.take(clock.now_ms()));
    clock.advance(50);
    assert_true(b.take(clock.now_ms()));
    // A refused take leaves the state alone: no token lost or borrowed.
    clock.advance(250);
    assert_int_equal(b.available(clock.now_ms()), 2);
    assert_false(b.take(clock.now_ms(), 3));
    assert_int_equal(b.available(clock.now_ms()), 2);
    assert_true(b.take(clock.now_ms(), 2));
    assert_int_equal(b.available(clock.now_ms()), 0);
    // n > burst can never be granted; n == burst after a full refill can.
    clock.advance(10000);
    assert_false(b.take(clock.now_ms(), 6));
    assert_true(b.take(clock.now_ms(), 5));
    assert_true(b.take(clock.now_ms() + 100, 0) && b.take(clock.now_ms() + 100, 1));
}

static void bucket_fractional_rates_are_exact(void **) {
    TokenBucket half(0.5, 1);  // one token every 2 s
    assert_true(half.take(0));
    assert_false(half.take(1999));
    assert_true(half.take(2000));
    assert_false(half.take(3999));
    assert_true(half.take(4000));

    // 3/s: tokens fall due every 333.33.. ms, which no whole-ms interval
    // expresses. Polled every ms for 1000 s, the k-th token after the burst
    // comes exactly at ceil(k * 1000 / 3) ms, and 3000 come in all: no drift.
    // (Burst 2 so the bucket never caps: with burst 1 the fraction beyond
    // one whole token would be lost at each take, as a full bucket should.)
    TokenBucket three(3, 2);
    assert_int_equal(drain(three, 0), 2);
    int64_t k = 0;
    for (int64_t t = 1; t <= 1000000; t++) {
        if (!three.take(t)) continue;
        k++;
        if (t != (k * 1000 + 2) / 3) fail_msg("token %lld at %lld ms", (long long)k, (long long)t);
    }
    assert_int_equal(k, 3000);

    // The same rate sampled rarely gives the same count.
    TokenBucket sparse(3, 1000000);
    assert_int_equal(drain(sparse, 0), 1000000);
    int64_t got = 0;
    for (int64_t t = 7777; t <= 1000000; t += 7777) got += drain(sparse, t);
    assert_int_equal(got, (999999 / 7777 * 7777) * 3 / 1000);

    // 0.001/s is the smallest step; smaller positive rates round up to it
    // rather than down to "unlimited".
    RateSpec tiny = RateSpec::per_second(0.0000001, 1);
    assert_false(tiny.unlimited());
    assert_int_equal(tiny.milli(), 1);
    TokenBucket slow(tiny);
    assert_true(slow.take(0));
    assert_false(slow.take(999999));
    assert_true(slow.take(1000000));
    assert_true(RateSpec::per_second(0.5, 4) == RateSpec::milli_per_second(500, 4));
    assert_int_equal(RateSpec::per_second(2.0004, 1).milli(), 2000);
    assert_int_equal(RateSpec::per_second(2.0005, 1).milli(), 2001);
}

static void bucket_idle_caps_at_burst(void **) {
    TokenBucket b(100, 7);
    assert_int_equal(drain(b, 0), 7);
    assert_int_equal(b.available(3600 * 1000), 7);  // an hour idle: still 7
    assert_int_equal(drain(b, 3600 * 1000), 7);
    assert_int_equal(b.available(3600 * 1000 + 10), 1);
    // refill_ms: empty to full.
    assert_int_equal(b.spec().refill_ms(), 70);
    assert_int_equal(RateSpec::per_second(3, 1).refill_ms(), 334);
    assert_int_equal(RateSpec().refill_ms(), 0);
}

static void bucket_huge_gaps_and_backwards_time(void **) {
    // Largest rate and burst, extreme times: any overflow would trip UBSan.
    RateSpec big = RateSpec::milli_per_second(UINT64_MAX, UINT32_MAX);
    assert_int_equal(big.milli(), RateSpec::kMaxMilliPerSecond);
    TokenBucket b(big);
    assert_true(b.take(INT64_MIN + 1, UINT32_MAX));
    assert_false(b.take(INT64_MIN + 1));
    assert_true(b.take(INT64_MAX, UINT32_MAX));  // the whole range apart
    assert_false(b.take(INT64_MAX));
    assert_int_equal(b.available(INT64_MAX), 0);

    TokenBucket small(0.001, 1);
    assert_true(small.take(INT64_MIN));
    assert_false(small.take(INT64_MIN + 999999));
    assert_true(small.take(INT64_MAX));
    // Time going backwards adds nothing and does not move the refill point.
    TokenBucket c(1, 1);
    assert_true(c.take(5000));
    assert_false(c.take(-1000000));
    assert_false(c.take(5999));
    assert_true(c.take(6000));
}

static void bucket_rate_zero_is_unlimited(void **) {
    TokenBucket b(0, 1);
    for (int i = 0; i < 100000; i++) assert_true(b.take(0, UINT32_MAX));
    assert_true(TokenBucket().take(0));
    assert_true(RateSpec::per_second(-5, 3).unlimited());
    assert_true(RateSpec::per_second(std::nan(""), 3).unlimited());
    assert_true(RateSpec::milli_per_second(0, 3).unlimited());
    assert_int_equal(TokenBucket(0, 9).available(0), 9);
}

static void rate_spec_burst_default(void **) {
    assert_int_equal(RateSpec::per_second(10, 0).burst(), 10);
    assert_int_equal(RateSpec::per_second(2.5, 0).burst(), 3);
    assert_int_equal(RateSpec::per_second(0.1, 0).burst(), 1);
    assert_int_equal(RateSpec::per_second(10, 25).burst(), 25);
    assert_int_equal(RateSpec::per_second(1e12, 0).milli(), RateSpec::kMaxMilliPerSecond);
    assert_int_equal(RateSpec::per_second(1e12, 0).burst(), 1000000000);
}

static void message_limiter_is_small_and_limits(void **) {
    static_assert(sizeof(MessageRateLimiter) <= 16, "embedded in every connection");
    static_assert(sizeof(BucketState) == 16, "embedded in every connection");
    FakeClock clock;
    RateSpec spec = RateSpec::per_second(20, 10);
    MessageRateLimiter a, b;
    for (int i = 0; i < 10; i++) assert_true(a.allow(spec, clock.now_ms()));
    assert_false(a.allow(spec, clock.now_ms()));
    assert_true(b.allow(spec, clock.now_ms()));  // per connection
    clock.advance(50);
    assert_true(a.allow(spec, clock.now_ms()));
    assert_false(a.allow(spec, clock.now_ms()));
    MessageRateLimiter c;
    for (int i = 0; i < 1000; i++) assert_true(c.allow(RateSpec(), clock.now_ms()));
}

// ---------------------------------------------------------------- handshakes per IP

static void handshake_limits_each_ip_alone(void **) {
    FakeClock clock;
    HandshakeLimiter h(RateSpec::per_second(2, 3));
    IpAddr a = ip("198.51.100.1"), b = ip("198.51.100.2"), c = ip("2001:db8::1");
    for (int i = 0; i < 3; i++) assert_true(h.allow(a, clock.now_ms()));
    assert_false(h.allow(a, clock.now_ms()));
    assert_true(h.allow(b, clock.now_ms()));
    assert_true(h.allow(c, clock.now_ms()));
    assert_int_equal(h.size(), 3);
    clock.advance(499);
    assert_false(h.allow(a, clock.now_ms()));
    clock.advance(1);
    assert_true(h.allow(a, clock.now_ms()));
    assert_false(h.allow(a, clock.now_ms()));
    // b and c have refilled by now: forgotten, as if never seen.
    assert_int_equal(h.size(), 1);
    // IPv4 and its IPv4-mapped IPv6 form are one client.
    IpAddr m = ip("::ffff:198.51.100.1");
    assert_true(m == a);
    assert_false(h.allow(m, clock.now_ms()));
    assert_int_equal(h.size(), 1);
    assert_true(h.allow(b, clock.now_ms()));
    assert_int_equal(h.size(), 2);
    // Grouping IPv6 by /64 is the caller's choice, through masked().
    HandshakeLimiter g(RateSpec::per_second(1, 1));
    assert_true(g.allow(ip("2001:db8:1:2::aaaa").masked(64), 0));
    assert_false(g.allow(ip("2001:db8:1:2:ffff::1").masked(64), 0));
    assert_true(g.allow(ip("2001:db8:1:3::1").masked(64), 0));
}

static void handshake_unlimited_tracks_nothing(void **) {
    HandshakeLimiter h(RateSpec(), 4);
    for (uint32_t i = 0; i < 1000; i++) assert_true(h.allow(IpAddr::v4(i), 0));
    assert_int_equal(h.size(), 0);
    assert_int_equal(h.index_slots(), 0);
}

static void handshake_memory_bound_under_a_million_addresses(void **) {
    FakeClock clock;
    const size_t cap = 4096;
    HandshakeLimiter h(RateSpec::per_second(1, 5), cap);
    const size_t slots = h.index_slots();
    assert_true(slots >= 2 * cap);
    IpAddr victim = ip("198.51.100.77");
    for (int i = 0; i < 5; i++) assert_true(h.allow(victim, clock.now_ms()));
    assert_false(h.allow(victim, clock.now_ms()));
    // Fewer new addresses than the capacity do not push the victim out.
    for (uint32_t i = 0; i < cap - 1; i++) h.allow(IpAddr::v4(0x0a000000u + i), clock.now_ms());
    assert_false(h.allow(victim, clock.now_ms()));
    // An attacker cycling through a million addresses (IPv4 and IPv6, one
    // new one every 10 us) never grows the table.
    std::array<uint8_t, 16> v6 = {0x20, 0x01, 0x0d, 0xb8};
    for (uint32_t i = 0; i < 1000000; i++) {
        if (i % 100 == 0) clock.advance(1);
        IpAddr a;
        if (i % 2) {
            a = IpAddr::v4(0xc6000000u + i);
        } else {
            std::memcpy(v6.data() + 8, &i, sizeof i);
            a = IpAddr::v6(v6);
        }
        assert_true(h.allow(a, clock.now_ms()));  // each one new: full bucket
        if (h.size() > cap) fail_msg("%zu addresses tracked, capacity %zu", h.size(), cap);
    }
    assert_int_equal(h.size(), cap);
    assert_int_equal(h.index_slots(), slots);
    // Addresses still refilling were pushed out: counted.
    assert_true(h.early_evictions() > 0);
    // The victim was pushed out too: it comes back with a full bucket.
    assert_true(h.allow(victim, clock.now_ms()));
    // Quiet time: idle addresses drain away, two per call.
    clock.advance(10000);
    for (size_t i = 0; i < cap / 2; i++) h.allow(victim, clock.now_ms());
    assert_int_equal(h.size(), 1);
    uint64_t early = h.early_evictions();
    for (uint32_t i = 0; i < 100000; i++) h.allow(IpAddr::v4(i), clock.now_ms() + i * 10000);
    assert_int_equal(h.early_evictions(), early);  // all refilled: no early eviction
    assert_true(h.size() <= 2);
}

namespace {

// The limiter's documented behaviour, written the obvious way.
struct HandshakeModel {
    RateSpec spec;
    size_t cap;
    std::list<IpAddr> lru;  // front: most recent
    std::map<IpAddr, std::pair<BucketState, std::list<IpAddr>::iterator>> m;

    bool allow(const IpAddr &a, int64_t now) {
        for (int k = 0; k < 2 && !lru.empty() && lru.back() != a &&
                        m.at(lru.back()).first.full(spec, now);
             k++) {
            m.erase(lru.back());
            lru.pop_back();
        }
        auto it = m.find(a);
        if (it == m.end()) {
            if (m.size() == cap) {
                m.erase(lru.back());
                lru.pop_back();
            }
            lru.push_front(a);
            it = m.emplace(a, std::make_pair(BucketState(), lru.begin())).first;
        } else {
            lru.erase(it->second.second);
            lru.push_front(a);
            it->second.second = lru.begin();
        }
        return it->second.first.take(spec, now);
    }
};

}  // namespace

static void handshake_matches_model(void **) {
    // Small tables and pools: many collisions, deletions and reuses, which
    // is where open addressing goes wrong if it does.
    std::mt19937_64 rng(42);
    for (uint64_t seed : {0ull, 1ull, 0xdeadbeefull, 12345678901ull}) {
        for (size_t cap : {1, 2, 3, 8, 13, 64}) {
            RateSpec spec = RateSpec::per_second(5, 3);
            HandshakeLimiter h(spec, cap, seed);
            HandshakeModel model{spec, cap, {}, {}};
            int64_t now = 0;
            const uint32_t pool = static_cast<uint32_t>(cap * 3 + 2);
            for (int op = 0; op < 20000; op++) {
                now += static_cast<int64_t>(rng() % 4 == 0 ? rng() % 700 : rng() % 3);
                uint32_t n = static_cast<uint32_t>(rng() % pool);
                IpAddr a = n % 2 ? IpAddr::v4(n) : IpAddr::v6({0x20, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                                               static_cast<uint8_t>(n)});
                bool want = model.allow(a, now);
                if (h.allow(a, now) != want)
                    fail_msg("seed %llu cap %zu op %d: allow differs from the model",
                             (unsigned long long)seed, cap, op);
                if (h.size() != model.m.size())
                    fail_msg("seed %llu cap %zu op %d: size %zu, model %zu", (unsigned long long)seed,
                             cap, op, h.size(), model.m.size());
            }
        }
    }
}

// ---------------------------------------------------------------- connection counters

static void counters_acquire_release_limit(void **) {
    IpConnCounter c;
    IpAddr a = ip("198.51.100.1"), b = ip("::ffff:198.51.100.2");
    assert_true(c.try_acquire(a, 2));
    assert_true(c.try_acquire(a, 2));
    assert_false(c.try_acquire(a, 2));  // refused: nothing counted
    assert_int_equal(c.count(a), 2);
    assert_true(c.try_acquire(b, 2));
    assert_true(c.try_acquire(ip("198.51.100.2"), 2));  // same address as b
    assert_false(c.try_acquire(b, 2));
    assert_int_equal(c.keys(), 2);
    assert_int_equal(c.total(), 4);
    assert_true(c.release(a));
    assert_true(c.try_acquire(a, 2));
    for (int i = 0; i < 2; i++) assert_true(c.release(a));
    assert_int_equal(c.count(a), 0);
    assert_int_equal(c.keys(), 1);  // no entry kept at zero
    assert_false(c.release(a));     // unpaired release: refused, nothing changes
    assert_int_equal(c.total(), 2);
    // Limit 0: never refused, still counted so release pairs.
    UserConnCounter u;
    for (int i = 0; i < 1000; i++) assert_true(u.try_acquire("alice", 0));
    assert_int_equal(u.count("alice"), 1000);
    assert_false(u.try_acquire("alice", 1000));
    assert_true(u.try_acquire("alice", 1001));
    for (int i = 0; i < 1001; i++) assert_true(u.release("alice"));
    assert_int_equal(u.keys(), 0);
    assert_int_equal(u.total(), 0);
    assert_false(u.release("bob"));
}

template <class Counter, class Key, class MakeKey>
static void run_counter_model(Counter &c, MakeKey make_key) {
    std::mt19937_64 rng(7);
    std::map<Key, uint32_t> model;
    uint64_t total = 0;
    for (int op = 0; op < 100000; op++) {
        Key k = make_key(static_cast<uint32_t>(rng() % 50));
        uint32_t limit = static_cast<uint32_t>(rng() % 6);  // 0: unlimited
        if (rng() % 2) {
            uint32_t have = model.count(k) ? model[k] : 0;
            bool want = limit == 0 || have < limit;
            if (c.try_acquire(k, limit) != want) fail_msg("op %d: acquire differs", op);
            if (want) {
                model[k]++;
                total++;
            }
        } else {
            auto it = model.find(k);
            bool want = it != model.end();
            if (c.release(k) != want) fail_msg("op %d: release differs", op);
            if (want) {
                total--;
                if (--it->second == 0) model.erase(it);
            }
        }
        if (c.keys() != model.size() || c.total() != total) fail_msg("op %d: sizes differ", op);
        if (c.count(k) != (model.count(k) ? model[k] : 0)) fail_msg("op %d: count differs", op);
    }
    for (auto &kv : model) assert_int_equal(c.count(kv.first), kv.second);
    // Release everything: nothing is left behind.
    for (auto &kv : model)
        for (uint32_t i = 0; i < kv.second; i++) assert_true(c.release(kv.first));
    assert_int_equal(c.keys(), 0);
    assert_int_equal(c.total(), 0);
}

static void counters_match_model(void **) {
    IpConnCounter by_ip;
    run_counter_model<IpConnCounter, IpAddr>(by_ip, [](uint32_t n) { return IpAddr::v4(n * 7919); });
    UserConnCounter by_user;
    run_counter_model<UserConnCounter, std::string>(by_user,
                                                    [](uint32_t n) { return "user-" + std::to_string(n); });
}

// ---------------------------------------------------------------- addresses

static void addresses_parse_and_print(void **) {
    IpAddr a = ip("192.0.2.1");
    assert_true(a.is_v4());
    assert_int_equal(a.v4_value(), 0xc0000201u);
    assert_string_equal(a.to_string().c_str(), "192.0.2.1");
    IpAddr m = ip("::ffff:192.0.2.1");
    assert_true(m.is_v4());
    assert_true(m == a);
    assert_true(std::hash<IpAddr>{}(m) == std::hash<IpAddr>{}(a));
    assert_true(wsgate::IpAddrHash{99}(m) == wsgate::IpAddrHash{99}(a));
    assert_string_equal(ip("::FFFF:c000:0201").to_string().c_str(), "192.0.2.1");
    assert_string_equal(ip("2001:DB8:0:0:0:0:0:1").to_string().c_str(), "2001:db8::1");
    assert_string_equal(ip("::").to_string().c_str(), "::");
    assert_true(IpAddr() == ip("::"));
    assert_false(ip("::1").is_v4());
    assert_false(ip("::192.0.2.1").is_v4());  // IPv4-compatible (deprecated) is IPv6
    assert_true(ip("10.0.0.1") < ip("10.0.0.2"));
    assert_true(ip("::1") < ip("0.0.0.0"));
    assert_true(ip("255.255.255.255") < ip("2001:db8::"));
    std::unordered_set<IpAddr> set{ip("1.2.3.4"), ip("::ffff:1.2.3.4"), ip("::1")};
    assert_int_equal(set.size(), 2);
    // Round trip through text.
    for (const char *t : {"0.0.0.0", "255.255.255.255", "fe80::1", "2001:db8:85a3::8a2e:370:7334"})
        assert_string_equal(ip(t).to_string().c_str(), t);
    const char *bad[] = {"", " 1.2.3.4", "1.2.3.4 ", "1.2.3", "1.2.3.4.5", "01.2.3.4", "1.2.3.256",
                         "[::1]", "::1%eth0", "1.2.3.4:80", "::g", "1:2:3:4:5:6:7:8:9", "unknown",
                         "_hidden", "localhost", "0x7f.0.0.1", "2001:db8::1/64",
                         "1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb"};
    for (const char *b : bad)
        if (IpAddr::parse(b)) fail_msg("'%s' parsed as an address", b);
    assert_false(IpAddr::parse(std::string_view("1.2.3.4\0", 8)).has_value());
    assert_false(IpAddr::parse(std::string_view("1.2.3.4\0" "5", 9)).has_value());
}

static void addresses_from_sockaddr_and_masked(void **) {
    sockaddr_in in{};
    in.sin_family = AF_INET;
    in.sin_addr.s_addr = htonl(0x7f000001u);
    std::optional<IpAddr> a = IpAddr::from_sockaddr(reinterpret_cast<sockaddr *>(&in));
    assert_true(a && *a == ip("127.0.0.1"));
    sockaddr_in6 in6{};
    in6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "::ffff:127.0.0.1", &in6.sin6_addr);
    a = IpAddr::from_sockaddr(reinterpret_cast<sockaddr *>(&in6));
    assert_true(a && *a == ip("127.0.0.1"));
    inet_pton(AF_INET6, "2001:db8::5", &in6.sin6_addr);
    a = IpAddr::from_sockaddr(reinterpret_cast<sockaddr *>(&in6));
    assert_true(a && *a == ip("2001:db8::5"));
    sockaddr un{};
    un.sa_family = AF_UNIX;
    assert_false(IpAddr::from_sockaddr(&un).has_value());
    assert_false(IpAddr::from_sockaddr(nullptr).has_value());

    assert_true(ip("192.0.2.130").masked(25) == ip("192.0.2.128"));
    assert_true(ip("192.0.2.130").masked(0) == ip("0.0.0.0"));
    assert_true(ip("192.0.2.130").masked(99) == ip("192.0.2.130"));
    assert_true(ip("192.0.2.130").masked(-3) == ip("0.0.0.0"));
    assert_true(ip("2001:db8:1:2:3:4:5:6").masked(64) == ip("2001:db8:1:2::"));
    assert_true(ip("2001:db8:1:2:3:4:5:6").masked(0) == ip("::"));
}

static void cidr_parse_and_match(void **) {
    std::string err;
    std::optional<Cidr> c = Cidr::parse("10.0.0.0/8", &err);
    assert_true(c.has_value());
    assert_true(c->is_v4());
    assert_int_equal(c->prefix(), 8);
    assert_string_equal(c->to_string().c_str(), "10.0.0.0/8");
    assert_true(c->contains(ip("10.255.1.2")));
    assert_true(c->contains(ip("::ffff:10.1.1.1")));
    assert_false(c->contains(ip("11.0.0.0")));
    assert_false(c->contains(ip("::a00:1")));  // IPv4-compatible is IPv6

    c = Cidr::parse("192.168.1.7", &err);
    assert_int_equal(c->prefix(), 32);
    assert_true(c->contains(ip("192.168.1.7")));
    assert_false(c->contains(ip("192.168.1.6")));
    c = Cidr::parse("192.168.1.7/32", &err);
    assert_true(c->contains(ip("192.168.1.7")));

    c = Cidr::parse("0.0.0.0/0", &err);
    assert_true(c->contains(ip("1.2.3.4")) && c->contains(ip("255.255.255.255")));
    assert_false(c->contains(ip("::1")));
    c = Cidr::parse("::/0", &err);
    assert_true(c->contains(ip("2001:db8::1")) && c->contains(ip("::")));
    assert_false(c->contains(ip("1.2.3.4")));  // IPv6 ranges never match IPv4
    assert_false(c->contains(ip("::ffff:1.2.3.4")));

    c = Cidr::parse("::1", &err);
    assert_int_equal(c->prefix(), 128);
    assert_true(c->contains(ip("::1")));
    assert_false(c->contains(ip("::2")));
    c = Cidr::parse("2001:db8::/32", &err);
    assert_true(c->contains(ip("2001:db8:ffff::1")));
    assert_false(c->contains(ip("2001:db9::")));
    c = Cidr::parse("2001:db8:0:80::/57", &err);
    assert_true(c->contains(ip("2001:db8:0:ff::1")));
    assert_false(c->contains(ip("2001:db8:0:7f::1")));
    assert_true(Cidr::parse("172.16.0.0/12", &err)->contains(ip("172.31.255.255")));
    assert_false(Cidr::parse("172.16.0.0/12", &err)->contains(ip("172.32.0.0")));

    // A mapped range is the IPv4 range.
    c = Cidr::parse("::ffff:10.0.0.0/104", &err);
    assert_true(c.has_value());
    assert_true(c->is_v4());
    assert_int_equal(c->prefix(), 8);
    assert_string_equal(c->to_string().c_str(), "10.0.0.0/8");
    assert_true(c->contains(ip("10.9.9.9")));
    assert_int_equal(Cidr::parse("::ffff:0:0/96", &err)->prefix(), 0);

    const char *bad[] = {"", "/8", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/+8",
                         "10.0.0.0/08", "10.0.0.0/8/8", "10.0.0.0/ 8", "10.0.0.0 /8", "::/129",
                         "::/1000", "10.0.0.1/8", "192.168.1.7/24", "2001:db8::1/64",
                         "::ffff:10.0.0.0/80", "::ffff:0:0/95", "[::1]/128", "10.0.0.0/8a",
                         "host.example/8", "*", "10.0.0.0-10.0.0.9", "10.0.0.0/0x8"};
    for (const char *b : bad) {
        err.clear();
        if (Cidr::parse(b, &err)) fail_msg("'%s' parsed as a range", b);
        if (err.empty()) fail_msg("'%s' refused without a message", b);
    }
    assert_false(Cidr::parse("10.0.0.1/8", &err).has_value());
    assert_non_null(strstr(err.c_str(), "'10.0.0.1/8'"));
    assert_non_null(strstr(err.c_str(), "10.0.0.0/8"));  // the suggestion
    assert_false(Cidr::parse("2001:db8::1/64", &err).has_value());
    assert_non_null(strstr(err.c_str(), "2001:db8::/64"));
    assert_false(Cidr::parse("10.0.0.0/33", &err).has_value());
    assert_non_null(strstr(err.c_str(), "0..32"));
    assert_false(Cidr::parse("10.0.0.0/8", nullptr) == std::nullopt);  // err is optional
    assert_false(Cidr::parse("junk", nullptr).has_value());
}

static void cidr_lists(void **) {
    assert_true(cidrs("").empty());
    assert_true(cidrs("  \t ").empty());
    assert_false(cidrs("").contains(ip("127.0.0.1")));
    CidrList l = cidrs(" 10.0.0.0/8 ,192.168.0.0/16,\t::1, 2001:db8::/32,");
    assert_int_equal(l.ranges().size(), 4);
    assert_string_equal(l.to_string().c_str(), "10.0.0.0/8, 192.168.0.0/16, ::1/128, 2001:db8::/32");
    assert_true(cidrs(l.to_string().c_str()).ranges() == l.ranges());
    assert_true(l.contains(ip("10.1.2.3")));
    assert_true(l.contains(ip("192.168.7.7")));
    assert_true(l.contains(ip("::1")));
    assert_true(l.contains(ip("2001:db8::99")));
    assert_false(l.contains(ip("127.0.0.1")));
    assert_false(l.contains(ip("::2")));

    std::string err;
    const char *bad[] = {",", ", 10.0.0.0/8", "10.0.0.0/8,,::1", "10.0.0.0/8, , ::1", "10.0.0.0/8 ::1",
                         "10.0.0.0/8;::1", "10.0.0.1/8", "10.0.0.0/8,,"};
    for (const char *b : bad) {
        err.clear();
        if (CidrList::parse(b, &err)) fail_msg("list '%s' accepted", b);
        if (err.empty()) fail_msg("list '%s' refused without a message", b);
    }
    assert_false(CidrList::parse("10.0.0.0/8, 172.16.0.1/12", &err).has_value());
    assert_non_null(strstr(err.c_str(), "172.16.0.1/12"));
    assert_non_null(CidrList::parse("::1", &err) ? "" : nullptr);
    assert_string_equal(err.c_str(), "");  // cleared on success (option validators)
}

// ---------------------------------------------------------------- client address

static void forwarded_entries(void **) {
    struct {
        const char *entry, *want;  // want nullptr: malformed
    } cases[] = {
        {"198.51.100.7", "198.51.100.7"},
        {"198.51.100.7:5678", "198.51.100.7"},
        {"198.51.100.7:0", "198.51.100.7"},
        {"198.51.100.7:65535", "198.51.100.7"},
        {"2001:db8::1", "2001:db8::1"},
        {"[2001:db8::1]", "2001:db8::1"},
        {"[2001:db8::1]:1234", "2001:db8::1"},
        {"::ffff:198.51.100.7", "198.51.100.7"},
        {"[::ffff:198.51.100.7]:80", "198.51.100.7"},
        {"", nullptr},
        {"unknown", nullptr},
        {"_hidden", nullptr},
        {"_SEVKISEK", nullptr},
        {"\"198.51.100.7\"", nullptr},
        {"198.51.100.7:", nullptr},
        {"198.51.100.7:65536", nullptr},
        {"198.51.100.7:123456", nullptr},
        {"198.51.100.7:08", nullptr},
        {"198.51.100.7:http", nullptr},
        {"[198.51.100.7]", nullptr},
        {"[198.51.100.7]:80", nullptr},
        {"[2001:db8::1", nullptr},
        {"[2001:db8::1]x", nullptr},
        {"[2001:db8::1]:", nullptr},
        {"[2001:db8::1]:99999", nullptr},
        {"[]", nullptr},
        {"[2001:db8::1%eth0]", nullptr},
        {"198.51.100.7 1", nullptr},
        {"for=198.51.100.7", nullptr},
        {"localhost", nullptr},
    };
    for (const auto &c : cases) {
        std::optional<IpAddr> a = wsgate::parse_forwarded_entry(c.entry);
        if (!c.want && a) fail_msg("'%s' read as %s", c.entry, a->to_string().c_str());
        if (c.want && (!a || *a != ip(c.want))) fail_msg("'%s' not read as %s", c.entry, c.want);
    }
}

static void client_ip_matrix(void **) {
    CidrList trusted = cidrs("10.0.0.0/8, 127.0.0.1, 2001:db8:ffff::/48");
    IpAddr proxy = ip("10.0.0.1"), stranger = ip("203.0.113.5"), v6proxy = ip("2001:db8:ffff::1");
    struct {
        const IpAddr *peer;
        const char *xff, *want;
    } cases[] = {
        // Untrusted peer: the header is the client's own claim, ignored.
        {&stranger, "198.51.100.7", "203.0.113.5"},
        {&stranger, "10.0.0.2", "203.0.113.5"},
        {&stranger, "", "203.0.113.5"},
        // Trusted peer: one hop, several hops, trusted hops skipped.
        {&proxy, "198.51.100.7", "198.51.100.7"},
        {&proxy, "198.51.100.7, 10.0.0.2", "198.51.100.7"},
        {&proxy, "198.51.100.7,10.0.0.2,10.0.0.3", "198.51.100.7"},
        {&proxy, "2001:db8::5, 10.0.0.2", "2001:db8::5"},
        // Spoofed entries left of the first untrusted hop are never chosen,
        // whether they look public or look like a trusted proxy.
        {&proxy, "1.1.1.1, 198.51.100.7", "198.51.100.7"},
        {&proxy, "1.1.1.1, 2.2.2.2, 198.51.100.7, 10.0.0.2", "198.51.100.7"},
        {&proxy, "10.0.0.9, 198.51.100.7", "198.51.100.7"},
        {&proxy, "127.0.0.1, 198.51.100.7", "198.51.100.7"},
        {&proxy, "unknown, _x, 198.51.100.7", "198.51.100.7"},
        // All hops trusted: the leftmost one.
        {&proxy, "10.0.0.3, 10.0.0.2", "10.0.0.3"},
        {&proxy, "127.0.0.1", "127.0.0.1"},
        // Empty, blank, or only commas: the peer.
        {&proxy, "", "10.0.0.1"},
        {&proxy, "   ", "10.0.0.1"},
        {&proxy, " , ,, \t,", "10.0.0.1"},
        // Several headers joined with ", ", with empty elements and tabs.
        {&proxy, "1.1.1.1, , 198.51.100.7,\t10.0.0.2 ,", "198.51.100.7"},
        // Malformed: stop at the last good hop (the peer or a trusted entry).
        {&proxy, "198.51.100.7, unknown", "10.0.0.1"},
        {&proxy, "198.51.100.7, unknown, 10.0.0.2", "10.0.0.2"},
        {&proxy, "198.51.100.7, _hidden", "10.0.0.1"},
        {&proxy, "_hidden", "10.0.0.1"},
        {&proxy, "garbage", "10.0.0.1"},
        {&proxy, "198.51.100.7, 10.0.0.256", "10.0.0.1"},
        {&proxy, "198.51.100.7, \"10.0.0.2\"", "10.0.0.1"},
        {&proxy, "198.51.100.7 10.0.0.2", "10.0.0.1"},
        {&proxy, "198.51.100.7; 10.0.0.2", "10.0.0.1"},
        {&proxy, "for=198.51.100.7", "10.0.0.1"},
        {&proxy, "[198.51.100.7]:80", "10.0.0.1"},
        // Ports and brackets.
        {&proxy, "198.51.100.7:5678", "198.51.100.7"},
        {&proxy, "[2001:db8::1]:1234", "2001:db8::1"},
        {&proxy, "[2001:db8::1], 10.0.0.2:443", "2001:db8::1"},
        {&proxy, "198.51.100.7, [2001:db8:ffff::9]:8080", "198.51.100.7"},
        // Mapped forms on either side.
        {&proxy, "::ffff:198.51.100.7, ::ffff:10.0.0.2", "198.51.100.7"},
        // An IPv6 proxy.
        {&v6proxy, "[2001:db8::5]:443", "2001:db8::5"},
        {&v6proxy, "2001:db8:ffff::2", "2001:db8:ffff::2"},
    };
    for (const auto &c : cases) {
        IpAddr got = wsgate::client_ip(*c.peer, c.xff, trusted);
        if (got != ip(c.want))
            fail_msg("peer %s, X-Forwarded-For '%s': got %s, want %s", c.peer->to_string().c_str(),
                     c.xff, got.to_string().c_str(), c.want);
    }
    // A mapped peer is the same trusted proxy.
    assert_true(wsgate::client_ip(ip("::ffff:10.0.0.1"), "198.51.100.7", trusted) == ip("198.51.100.7"));
    // Nothing trusted: always the peer.
    assert_true(wsgate::client_ip(proxy, "198.51.100.7", CidrList()) == proxy);
    // Long chains are walked in one pass.
    std::string chain = "6.6.6.6, 198.51.100.7";
    for (int i = 0; i < 20000; i++) chain += ", 10.0.0." + std::to_string(i % 250);
    assert_true(wsgate::client_ip(proxy, chain, trusted) == ip("198.51.100.7"));
    // Embedded NUL is malformed, not a terminator.
    assert_true(wsgate::client_ip(proxy, std::string_view("198.51.100.7\0" "1", 14), trusted) == proxy);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bucket_burst_then_rate),
        cmocka_unit_test(bucket_fractional_rates_are_exact),
        cmocka_unit_test(bucket_idle_caps_at_burst),
        cmocka_unit_test(bucket_huge_gaps_and_backwards_time),
        cmocka_unit_test(bucket_rate_zero_is_unlimited),
        cmocka_unit_test(rate_spec_burst_default),
        cmocka_unit_test(message_limiter_is_small_and_limits),
        cmocka_unit_test(handshake_limits_each_ip_alone),
        cmocka_unit_test(handshake_unlimited_tracks_nothing),
        cmocka_unit_test(handshake_memory_bound_under_a_million_addresses),
        cmocka_unit_test(handshake_matches_model),
        cmocka_unit_test(counters_acquire_release_limit),
        cmocka_unit_test(counters_match_model),
        cmocka_unit_test(addresses_parse_and_print),
        cmocka_unit_test(addresses_from_sockaddr_and_masked),
        cmocka_unit_test(cidr_parse_and_match),
        cmocka_unit_test(cidr_lists),
        cmocka_unit_test(forwarded_entries),
        cmocka_unit_test(client_ip_matrix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
