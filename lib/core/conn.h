// One connection's state, split by who may touch it:
//  - ConnShared: what other threads read (under Registry::mu): the facts
//    fixed at open, the counters, the application's pointer;
//  - the rest of Conn: the service thread's alone (queues, parser, close
//    state, heartbeat deadlines).
// It is allocated once per connection and lives in every idle connection, so
// it is kept compact: facts are packed into one allocation, rarely used
// state (reassembly, inflater, close reason) lives on the heap only while used.
#pragma once

#include <atomic>
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <type_traits>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "config/settings.h"
#include "core/topics.h"
#include "core/wheel.h"
#include "protocol/deflate.h"
#include "protocol/frame.h"
#include "protocol/frame_reader.h"
#include "protocol/utf8.h"
#include "security/limits.h"
#include "security/netaddr.h"
#include "wsgate/wsgate.h"

namespace wsgate {

struct Link;

// What a transport link's owner is: a request still in its handshake, an
// open connection, or a request to the metrics listener. All start with
// this, so the owner pointer tells, and each has one deadline timer
// (handshake timeout, or the heartbeat's).
struct LinkOwner {
    enum class Kind : uint8_t { Handshake, Conn, Probe };
    explicit LinkOwner(Kind k) : kind(k) {}
    WheelTimer timer;
    Kind kind;
    static LinkOwner *of(WheelTimer *t) {
        return reinterpret_cast<LinkOwner *>(reinterpret_cast<char *>(t) - offsetof(LinkOwner, timer));
    }
};
static_assert(std::is_standard_layout<LinkOwner>::value, "LinkOwner::of needs a standard layout");

// Several strings in one allocation: facts fixed at open (path, query...).
// Empty strings cost nothing; all empty costs no allocation.
template <int N>
class PackedStrings {
public:
    PackedStrings() = default;
    explicit PackedStrings(const std::string_view (&items)[N]);
    std::string_view get(int i) const {
        if (!blob_) return {};
        uint16_t off[2];
        std::memcpy(off, blob_.get() + sizeof(uint16_t) * i, sizeof off);
        return std::string_view(blob_.get() + off[0], off[1] - off[0]);
    }

private:
    std::unique_ptr<char[]> blob_;  // N+1 uint16 offsets, then the bytes
};

// The facts of a connection, fixed once it is open.
enum ConnFact { kPath, kQuery, kOrigin, kSubprotocol, kTlsSubject, kUserId, kClaims, kFactCount };

struct ConnShared {
    wsg_conn_id id = 0;
    PackedStrings<kFactCount> facts;
    IpAddr peer;                  // the TCP peer, or behind trusted proxies the client it forwards for
    int64_t opened_mono_ms = 0;   // monotonic; the Unix time of the upgrade is derived from it
    int64_t opened_unix_ms = 0;   // the upgrade's Unix time, as presence reports it (one value, everywhere)
    // Written by the service thread only, read by any thread.
    std::atomic<uint64_t> msgs_in{0}, bytes_in{0}, msgs_out{0}, bytes_out{0};
    std::atomic<uint64_t> msgs_dropped{0};  // by the queue policy
    std::atomic<uint64_t> queued_bytes{0};  // data and control frames in the queues
    std::atomic<int64_t> rtt_us{-1};
    std::atomic<void *> user{nullptr};
    uint16_t peer_port = 0;
    bool deflate = false;  // permessage-deflate negotiated
    // Set once a close is decided: by wsg_conn_close() off the service
    // thread before its command runs, and by the service thread whenever it
    // decides one (backpressure, timeouts, refusals, the peer, a stop), so
    // later sends and closes answer WSG_ECLOSED at once on every thread.
    std::atomic<bool> close_requested{false};
    std::atomic<uint8_t> queue_policy{WSG_QUEUE_CLOSE};  // a wsg_queue_policy

    std::string_view fact(ConnFact f) const { return facts.get(f); }
};

// Adds to a counter that only the service thread writes (other threads read it).
inline void bump(std::atomic<uint64_t> &c, uint64_t n) {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

// The key under which `conflate` keeps only the latest queued message (a
// topic); shared by every queue the message goes to.
using ConflateKey = std::shared_ptr<const std::string>;

// A connection that fell behind: its queue passed the high-water mark and
// has not yet come back to the low-water mark, or its queue policy is
// dropping messages. Lives in Conn::Extra only meanwhile.
struct Backlog {
    bool behind = false;    // passed the high-water mark: on_drain once back at the low
    bool dropping = false;  // an overflow episode, logged when it starts and ends
    uint64_t dropped_before = 0;  // msgs_dropped when the episode started
    int64_t since_ms = 0;         // when it started
    // conflate: the message of each key queued since the connection fell
    // behind, by the sequence number of its first frame in Conn::queue. The
    // entry holds that frame, so no other frame can take its address: the
    // frame found at `seq` is this one, or the entry is stale (written).
    struct Latest {
        ConflateKey key;
        uint64_t seq = 0;
        FrameRef first;
    };
    std::unordered_map<std::string_view, Latest> latest;  // views of Latest::key
};

// What happens to a connection's close, in order.
enum class CloseStage : uint8_t {
    Open,      // nothing decided
    Queued,    // our close frame waits behind the queued frames
    Sent,      // our close frame is out; waiting for the peer's
    Replying,  // the peer closed first; our reply waits to be written
    Done,      // both close frames exchanged: the TCP close follows the flush
};

// Fields are ordered so that the small ones pack together: this struct is
// the bulk of an idle connection's memory.
struct Conn : LinkOwner, ConnShared {
    Conn() : LinkOwner(Kind::Conn) {}
    Link *link = nullptr;

    // ---- service thread only from here on
    // The frame reader's state, only while something is pending between
    // reads (a partial header, frame or message; a fault; the peer's close):
    // an idle connection keeps none.
    std::unique_ptr<proto::FrameReader> reader;
    FrameQueue queue;    // data frames
    FrameQueue control;  // pongs: written before data, never dropped by a queue policy

    // What few connections need, or need only for a while, made on first
    // need and freed when it holds nothing again (trim_extra).
    struct Extra {
        std::string rx;                      // an inbound message in pieces (inflated, if compressed)
        std::unique_ptr<Inflater> inflater;  // a client that keeps its compression context
        std::unique_ptr<MessageRateLimiter> rate;  // with limits.messages_per_s
        std::unique_ptr<MessageRateLimiter> frame_rate;  // with limits.frames_per_s
        std::string close_reason;            // set with a close
        int64_t token_deadline_ms = 0;       // the JWT expires (plus grace) then
        std::unique_ptr<Backlog> backlog;    // while behind or dropping
    };
    std::unique_ptr<Extra> extra;  // service thread only
    // Its topics (see core/topics.h), while it has any. Apart from Extra:
    // guarded by Registry::mu, so a connection's info can list them from
    // any thread while the service thread makes and frees Extra freely.
    std::unique_ptr<std::vector<Subscription>> subs;

    // Heartbeat (the timer is LinkOwner's). Times are Clock milliseconds; 0 = none.
    const HeartbeatTimes *times = nullptr;  // the server's, or this connection's own
    int64_t last_alive_ms = 0;     // last pong (or frame) from the peer
    int64_t last_data_ms = 0;      // last whole data message
    int64_t next_ping_ms = 0;
    int64_t write_deadline_ms = 0; // pending output must make progress by then
    int64_t close_deadline_ms = 0; // our close frame must be answered by then
    uint64_t ping_payload = 0;     // timestamp (us) carried by the last ping

    uint16_t close_code = 0;  // what on_close reports (the code we sent, or the peer's)
    uint16_t peer_close_code = 0;  // in the peer's close frame, even one we refused (1005: none)
    CloseStage close_stage = CloseStage::Open;
    uint8_t cause = WSG_CAUSE_LOST;  // a wsg_close_cause
    uint8_t deflate_window_bits = 15;  // server_max_window_bits the client asked for
    bool writable_requested = false;
    bool flush_pending = false;  // in the outbox's flush list
    bool ping_due = false;
    bool ip_counted = false, user_counted = false;  // held in the per-IP/per-user counters
    bool link_counted = false;  // peer held in Admission::links_per_ip (from accept)
    bool inflate_keep_context = false;  // the client keeps its compression context
    bool own_times = false;             // times was allocated for this connection
    // Close: `closing` is set once a close is decided, by us or the peer.
    bool closing = false;
    // We refused what the peer sent (too big, bad data...): after our close
    // frame the TCP write side is shut, without waiting for its answer,
    // which we could not read anyway.
    bool refused_input = false;
    bool write_shut = false;

    Conn(const Conn &) = delete;
    Conn &operator=(const Conn &) = delete;
    ~Conn() {
        if (own_times) delete times;
    }

    wsg_close_cause close_cause() const { return static_cast<wsg_close_cause>(cause); }
    void set_cause(wsg_close_cause c) { cause = static_cast<uint8_t>(c); }
    Extra &more() {
        if (!extra) extra = std::make_unique<Extra>();
        return *extra;
    }
    // Frees the extra state once nothing in it is needed.
    void trim_extra() {
        if (extra && extra->rx.empty() && !extra->inflater && !extra->rate && !extra->frame_rate &&
            extra->close_reason.empty() && !extra->token_deadline_ms && !extra->backlog)
            extra.reset();
    }
    const std::string &reason() const {
        static const std::string empty;
        return extra ? extra->close_reason : empty;
    }
    void set_reason(std::string r) {
        if (r.empty() && !extra) return;
        more().close_reason = std::move(r);
    }
    int64_t token_deadline_ms() const { return extra ? extra->token_deadline_ms : 0; }
    Backlog *backlog() const { return extra ? extra->backlog.get() : nullptr; }
    wsg_queue_policy policy() const {
        return static_cast<wsg_queue_policy>(queue_policy.load(std::memory_order_relaxed));
    }
};

template <int N>
PackedStrings<N>::PackedStrings(const std::string_view (&items)[N]) {
    size_t total = 0;
    for (const auto &s : items) total += s.size();
    if (total == 0) return;
    const size_t head = sizeof(uint16_t) * (N + 1);
    // Offsets are 16-bit: the strings come from a request whose header block
    // is bounded far below 64 KiB, and a longer item is cut, never wrapped.
    if (head + total > 0xffff) total = 0xffff - head;
    blob_.reset(new char[head + total]);
    uint16_t off[N + 1];
    size_t at = head;
    for (int i = 0; i < N; i++) {
        off[i] = static_cast<uint16_t>(at);
        size_t n = std::min(items[i].size(), head + total - at);
        std::memcpy(blob_.get() + at, items[i].data(), n);
        at += n;
    }
    off[N] = static_cast<uint16_t>(at);
    std::memcpy(blob_.get(), off, head);
}

}  // namespace wsgate
