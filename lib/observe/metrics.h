// Every Prometheus metric wsgate exports: one list (WSGATE_METRICS), from
// which the counters' storage, the text exposition (format 0.0.4) and the
// README's metric table come (tests/readme checks the table).
//
// Cost: every value is a relaxed atomic written by one thread at a time,
// the service thread (or a lifecycle call while no loop runs), as a load
// and a store, never a read-modify-write: the same instructions as a plain
// counter. Any thread may read them (wsg_server_metrics) without a race.
// Label values come from bounded sets below, never from the network or the
// application (no user id, topic or path).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "wsgate/wsgate.h"

// ---------------------------------------------------------------- label sets
// V(value): each set's values, in the order of its enum.

// Why an upgrade request was refused with an HTTP status.
#define WSGATE_REFUSAL_REASONS(V)                                                             \
    V(path)     /* 404: not under server.path */                                              \
    V(origin)   /* 403: the Origin policy */                                                  \
    V(auth)     /* 401/403: token or authenticator (wsgate_auth_failures_total says why) */   \
    V(rate)     /* 429: limits.handshakes_per_ip_per_s */                                     \
    V(limit)    /* 429/503: connections per IP, per user, in all */                           \
    V(protocol) /* 400/405/414/426/431...: not a valid upgrade, no common subprotocol */      \
    V(shutdown) /* 503: the server is stopping */

// Why authentication failed.
#define WSGATE_AUTH_FAILURES(V)                                                 \
    V(missing_token)    /* auth.mode jwt: no token in auth.token_sources */     \
    V(expired_token)    /* the JWT's exp (or nbf, iat) is out of range */       \
    V(invalid_token)    /* any other JWT fault: signature, key, claims... */    \
    V(refused)          /* the authenticator called wsg_auth_refuse */          \
    V(undecided)        /* the authenticator decided nothing */                 \
    V(no_authenticator) /* auth.mode needs one and none is registered */

// Which limit closed a TCP connection at accept.
#define WSGATE_ACCEPT_LIMITS(V) V(max_connections) V(max_connections_per_ip)

// The close codes counted one by one; the others by class.
#define WSGATE_CLOSE_CODES(V)                                                                     \
    V(1000) V(1001) V(1002) V(1003) V(1005) V(1006) V(1007) V(1008) V(1009) V(1010) V(1011) \
    V(1012) V(1013) V(1014) V(1015)

// Which rate limit refused input.
#define WSGATE_RATE_LIMITS(V) V(messages) V(frames)

#define WSGATE_DIRECTIONS(V) V(in) V(out)

#define WSGATE_TRANSPORTS(V) V(tcp) V(tls)

// Why a message for other instances was lost (lib/cluster).
#define WSGATE_CLUSTER_DROPS(V)                                                                  \
    V(down)        /* the cluster was down (Redis unreachable, or no node number yet) */        \
    V(full)        /* cluster.max_pending commands were waiting for Redis */                     \
    V(unconfirmed) /* sent, but the connection was lost before Redis confirmed it */             \
    V(invalid)     /* received from Redis, but not an envelope this version reads */             \
    V(history_full) /* a history topic's publish kept while Redis was down, past cluster.history_size */

// ---------------------------------------------------------------- the list
// X(id, kind, label_set, buckets, name, help)
//   kind: Counter, Gauge or Histogram; label_set: one of the sets below
//   (NoLabel for none); buckets: a bucket set for histograms, NoBuckets
//   otherwise. Names follow Prometheus' conventions: `wsgate_` prefix,
//   base units (`_seconds`, `_bytes`), `_total` on counters.
#define WSGATE_METRICS(X)                                                                          \
    X(connections, Gauge, NoLabel, NoBuckets, "wsgate_connections",                                \
      "Open WebSocket connections (upgraded, not yet closed).")                                    \
    X(handshakes_pending, Gauge, NoLabel, NoBuckets, "wsgate_handshakes_pending",                  \
      "TCP connections accepted and still in their HTTP upgrade (or taking a static page).")      \
    X(ready, Gauge, NoLabel, NoBuckets, "wsgate_ready",                                            \
      "1 while the server accepts upgrades (serving, not draining or stopping: /readyz), else 0.")          \
    X(handshakes_accepted, Counter, NoLabel, NoBuckets, "wsgate_handshakes_accepted_total",       \
      "Upgrade requests answered with 101 Switching Protocols.")                                   \
    X(handshakes_refused, Counter, RefusalLabel, NoBuckets, "wsgate_handshakes_refused_total",    \
      "Upgrade requests answered with an HTTP error, by reason.")                                  \
    X(handshake_timeouts, Counter, NoLabel, NoBuckets, "wsgate_handshake_timeouts_total",         \
      "TCP connections closed for not completing the upgrade within heartbeat.handshake_timeout_ms.") \
    X(handshake_seconds, Histogram, TransportLabel, HandshakeBuckets,                              \
      "wsgate_handshake_duration_seconds",                                                         \
      "Time from TCP accept to the 101 answer, by transport (tls: the TLS handshake included).")   \
    X(auth_failures, Counter, AuthLabel, NoBuckets, "wsgate_auth_failures_total",                  \
      "Upgrade requests refused by authentication, by reason.")                                    \
    X(accept_refused, Counter, AcceptLimitLabel, NoBuckets, "wsgate_accept_refused_total",        \
      "TCP connections closed at accept, before any request was read, by the limit they passed.") \
    X(accept_failures, Counter, NoLabel, NoBuckets, "wsgate_accept_failures_total",                \
      "Failed accept() calls (out of descriptors or memory...).")                                  \
    X(accept_shed, Counter, NoLabel, NoBuckets, "wsgate_accept_shed_total",                        \
      "Waiting TCP connections accepted and closed at once while accept() failed for want of descriptors.") \
    X(closes, Counter, CauseLabel, NoBuckets, "wsgate_closes_total",                               \
      "Connections ended, by close cause (WSG_CLOSE_CAUSE_MAP).")                                  \
    X(close_codes, Counter, CodeLabel, NoBuckets, "wsgate_close_codes_total",                      \
      "Connections ended, by the close code on_close reports (RFC 6455 codes one by one, "        \
      "application codes as 3xxx and 4xxx).")                                                      \
    X(messages_in, Counter, NoLabel, NoBuckets, "wsgate_received_messages_total",                  \
      "Whole data messages received and handed to the application.")                              \
    X(bytes_in, Counter, NoLabel, NoBuckets, "wsgate_received_bytes_total",                        \
      "Payload bytes of those messages (after inflating).")                                        \
    X(messages_out, Counter, NoLabel, NoBuckets, "wsgate_sent_messages_total",                     \
      "Data messages queued to connections (a broadcast counts once per recipient; those a "      \
      "queue policy dropped included).")                                                           \
    X(bytes_out, Counter, NoLabel, NoBuckets, "wsgate_sent_bytes_total",                           \
      "Payload bytes of those messages (before compressing).")                                     \
    X(queued_bytes, Gauge, NoLabel, NoBuckets, "wsgate_queued_bytes",                              \
      "Bytes waiting in every connection's send queue (data and control frames).")                 \
    X(behind, Gauge, NoLabel, NoBuckets, "wsgate_connections_behind",                              \
      "Connections whose send queue passed limits.queue_high_water_bytes and is not yet back at " \
      "the low-water mark.")                                                                       \
    X(dropped, Counter, PolicyLabel, NoBuckets, "wsgate_dropped_messages_total",                   \
      "Messages a full send queue dropped, by queue policy.")                                      \
    X(rate_limited, Counter, RateLabel, NoBuckets, "wsgate_rate_limited_total",                    \
      "Input over a rate limit: messages dropped or refused (limits.messages_per_s), frames "      \
      "that closed a connection (limits.frames_per_s).")                                           \
    X(ping_rtt, Histogram, NoLabel, RttBuckets, "wsgate_ping_rtt_seconds",                        \
      "Round trip of heartbeat pings (ping sent to its pong).")                                    \
    X(deflate_plain, Counter, DirectionLabel, NoBuckets, "wsgate_deflate_plain_bytes_total",      \
      "permessage-deflate: message bytes before compressing (out, per recipient) or after "        \
      "inflating (in).")                                                                           \
    X(deflate_compressed, Counter, DirectionLabel, NoBuckets, "wsgate_deflate_compressed_bytes_total", \
      "permessage-deflate: the same messages' compressed bytes (out: frames as queued; in: "       \
      "payload as received). plain / compressed is the compression ratio.")                        \
    X(topics, Gauge, NoLabel, NoBuckets, "wsgate_topics", "Topics with at least one subscriber.")  \
    X(subscriptions, Gauge, NoLabel, NoBuckets, "wsgate_subscriptions",                            \
      "Subscriptions (connection, topic) in all.")                                               \
    X(cluster_up, Gauge, NoLabel, NoBuckets, "wsgate_cluster_up",                                  \
      "1 while the cluster works (cluster.redis): both Redis connections ready and this instance's " \
      "node number known; 0 while it is down, and without a cluster.")                            \
    X(cluster_reconnects, Counter, NoLabel, NoBuckets, "wsgate_cluster_reconnects_total",          \
      "Connections to Redis made again after one was lost or failed (either of the two).")         \
    X(cluster_sent, Counter, NoLabel, NoBuckets, "wsgate_cluster_published_total",                 \
      "Messages handed to Redis for other instances (one PUBLISH per publish, user or remote "     \
      "connection call).")                                                                         \
    X(cluster_received, Counter, NoLabel, NoBuckets, "wsgate_cluster_received_total",             \
      "Messages received from other instances through Redis.")                                     \
    X(cluster_dropped, Counter, ClusterDropLabel, NoBuckets, "wsgate_cluster_dropped_total",      \
      "Messages between instances lost, by reason (WSGATE_CLUSTER_DROPS).")                        \
    X(cluster_publish_rtt, Histogram, NoLabel, ClusterBuckets, "wsgate_cluster_publish_seconds",   \
      "Round trip of a PUBLISH: sent to Redis' reply.")                                             \
    X(cluster_user_count_unknown, Counter, NoLabel, NoBuckets,                                     \
      "wsgate_cluster_user_count_unknown_total",                                                   \
      "Upgrades that limits.max_connections_per_user let through on this instance's count alone, " \
      "the cluster's being unknown (Redis down or too slow).")                                       \
    X(cluster_presence_resyncs, Counter, NoLabel, NoBuckets, "wsgate_cluster_presence_resyncs_total", \
      "Times every local presence entry was written to Redis again (new connection to Redis, "     \
      "lapsed lease, failed writes).")                                                             \
    X(cluster_node_conflicts, Counter, NoLabel, NoBuckets, "wsgate_cluster_node_conflicts_total",  \
      "Times another server was found holding the lease of this instance's node number.")         \
    X(history_replayed, Counter, NoLabel, NoBuckets, "wsgate_history_replayed_messages_total",     \
      "Missed messages given to connections subscribed from a position (wsg_conn_subscribe_from).") \
    X(history_gone, Counter, NoLabel, NoBuckets, "wsgate_history_gone_total",                      \
      "Subscriptions from a position the history no longer held (WSG_EGONE: the client resyncs).") \
    X(history_gap_messages, Counter, NoLabel, NoBuckets, "wsgate_history_gap_messages_total",     \
      "History messages this instance missed on the topic's channel (Redis outage, late "          \
      "subscription) and delivered from a read of the history instead.")                           \
    X(history_kept, Gauge, NoLabel, NoBuckets, "wsgate_history_kept_messages",                     \
      "History messages published while Redis was down, kept to be written when it is back.")

namespace wsgate {
namespace metric {

#define WSGATE_METRIC_ENUM_(v) v,
#define WSGATE_METRIC_TEXT_(v) #v,
#define WSGATE_METRIC_CODE_ENUM_(v) c##v,
enum class Refusal : uint8_t { WSGATE_REFUSAL_REASONS(WSGATE_METRIC_ENUM_) };
enum class AuthFailure : uint8_t { WSGATE_AUTH_FAILURES(WSGATE_METRIC_ENUM_) };
enum class AcceptLimit : uint8_t { WSGATE_ACCEPT_LIMITS(WSGATE_METRIC_ENUM_) };
enum class RateLimit : uint8_t { WSGATE_RATE_LIMITS(WSGATE_METRIC_ENUM_) };
enum class Direction : uint8_t { WSGATE_DIRECTIONS(WSGATE_METRIC_ENUM_) };
enum class TransportKind : uint8_t { WSGATE_TRANSPORTS(WSGATE_METRIC_ENUM_) };
enum class ClusterDrop : uint8_t { WSGATE_CLUSTER_DROPS(WSGATE_METRIC_ENUM_) };

// A label set: its label's name and values; index 0.. count-1.
struct NoLabel {
    static constexpr const char *name = nullptr;
    static constexpr const char *values[] = {""};
    static constexpr size_t count = 1;
};
#define WSGATE_LABEL_SET_(Type, label, LIST, TEXT)              \
    struct Type {                                               \
        static constexpr const char *name = label;              \
        static constexpr const char *values[] = {LIST(TEXT)};   \
        static constexpr size_t count = sizeof values / sizeof *values; \
    };
WSGATE_LABEL_SET_(RefusalLabel, "reason", WSGATE_REFUSAL_REASONS, WSGATE_METRIC_TEXT_)
WSGATE_LABEL_SET_(AuthLabel, "reason", WSGATE_AUTH_FAILURES, WSGATE_METRIC_TEXT_)
WSGATE_LABEL_SET_(AcceptLimitLabel, "limit", WSGATE_ACCEPT_LIMITS, WSGATE_METRIC_TEXT_)
WSGATE_LABEL_SET_(RateLabel, "limit", WSGATE_RATE_LIMITS, WSGATE_METRIC_TEXT_)
WSGATE_LABEL_SET_(DirectionLabel, "direction", WSGATE_DIRECTIONS, WSGATE_METRIC_TEXT_)
WSGATE_LABEL_SET_(TransportLabel, "transport", WSGATE_TRANSPORTS, WSGATE_METRIC_TEXT_)
WSGATE_LABEL_SET_(ClusterDropLabel, "reason", WSGATE_CLUSTER_DROPS, WSGATE_METRIC_TEXT_)
#define WSGATE_CAUSE_TEXT_(name, value, text, doc) text,
#define WSGATE_CAUSES_(V) WSG_CLOSE_CAUSE_MAP(V)
WSGATE_LABEL_SET_(CauseLabel, "cause", WSGATE_CAUSES_, WSGATE_CAUSE_TEXT_)
#define WSGATE_POLICIES_(V) WSG_QUEUE_POLICY_MAP(V)
WSGATE_LABEL_SET_(PolicyLabel, "policy", WSGATE_POLICIES_, WSGATE_CAUSE_TEXT_)
// Close codes: the RFC 6455 ones, then application codes by class.
#define WSGATE_CODE_CLASSES_(V) WSGATE_CLOSE_CODES(V) V(3xxx) V(4xxx) V(other)
WSGATE_LABEL_SET_(CodeLabel, "code", WSGATE_CODE_CLASSES_, WSGATE_METRIC_TEXT_)
#undef WSGATE_CAUSES_
#undef WSGATE_POLICIES_
#undef WSGATE_LABEL_SET_

// Index of a close cause, a queue policy and a close code in their sets.
size_t cause_index(wsg_close_cause cause);
size_t policy_index(wsg_queue_policy policy);
size_t code_index(int code);

// Histogram buckets: upper bounds in microseconds.
struct NoBuckets {
    static constexpr int64_t bounds_us[] = {0};
    static constexpr size_t count = 0;
};
struct RttBuckets {
    static constexpr int64_t bounds_us[] = {250,    500,    1000,    2500,    5000,    10000,   25000,
                                            50000,  100000, 250000,  500000,  1000000, 2500000, 5000000,
                                            10000000};
    static constexpr size_t count = sizeof bounds_us / sizeof *bounds_us;
};
struct HandshakeBuckets {
    static constexpr int64_t bounds_us[] = {500,    1000,   2500,    5000,    10000,   25000,   50000,
                                            100000, 250000, 500000,  1000000, 2500000, 5000000, 10000000};
    static constexpr size_t count = sizeof bounds_us / sizeof *bounds_us;
};

struct ClusterBuckets {
    static constexpr int64_t bounds_us[] = {50,    100,   250,    500,    1000,   2500,    5000,
                                            10000, 25000, 50000,  100000, 250000, 1000000, 5000000};
    static constexpr size_t count = sizeof bounds_us / sizeof *bounds_us;
};

// One writer at a time (see the top of this file): a load and a store.
inline void add_to(std::atomic<uint64_t> &c, uint64_t n) {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

template <class L, class B>
struct Counter {
    std::atomic<uint64_t> v[L::count]{};
    void add(size_t i, uint64_t n = 1) { add_to(v[i], n); }
    template <class E>
    void add(E e, uint64_t n = 1) {
        add(static_cast<size_t>(e), n);
    }
    void inc(uint64_t n = 1) { add(size_t{0}, n); }
    uint64_t get(size_t i = 0) const { return v[i].load(std::memory_order_relaxed); }
};

template <class L, class B>
struct Gauge {
    std::atomic<int64_t> v[L::count]{};
    void set(int64_t x, size_t i = 0) { v[i].store(x, std::memory_order_relaxed); }
    void add(int64_t d, size_t i = 0) { set(get(i) + d, i); }
    int64_t get(size_t i = 0) const { return v[i].load(std::memory_order_relaxed); }
};

template <class L, class B>
struct Histogram {
    // Per label value: one count per bucket (not cumulative; the last is
    // +Inf) and the sum. The count is the buckets' total, so a scrape never
    // sees _count differ from the +Inf bucket.
    std::atomic<uint64_t> buckets[L::count][B::count + 1]{};
    std::atomic<uint64_t> sum_us[L::count]{};
    void observe_us(int64_t us, size_t i = 0) {
        if (us < 0) us = 0;
        size_t b = 0;
        while (b < B::count && us > B::bounds_us[b]) b++;
        add_to(buckets[i][b], 1);
        add_to(sum_us[i], static_cast<uint64_t>(us));
    }
    template <class E>
    void observe_us(int64_t us, E e) {
        observe_us(us, static_cast<size_t>(e));
    }
    uint64_t count(size_t i = 0) const {
        uint64_t n = 0;
        for (const auto &b : buckets[i]) n += b.load(std::memory_order_relaxed);
        return n;
    }
};

}  // namespace metric

struct Metrics {
#define WSGATE_METRIC_MEMBER_(id, kind, labels, buckets, name, help) \
    metric::kind<metric::labels, metric::buckets> id;
    WSGATE_METRICS(WSGATE_METRIC_MEMBER_)
#undef WSGATE_METRIC_MEMBER_

    // The whole exposition, text format 0.0.4 (HELP and TYPE for each).
    std::string render() const;
};

}  // namespace wsgate
