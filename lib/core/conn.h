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
#include <cstring>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "config/settings.h"
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

// What a transport link's owner is: a request still in its handshake, or an
// open connection. Both start with this, so the owner pointer tells.
struct LinkOwner {
    enum class Kind : uint8_t { Handshake, Conn };
    explicit LinkOwner(Kind k) : kind(k) {}
    Kind kind;
};

// A wheel timer that knows whose deadline it holds.
struct OwnerTimer : WheelTimer {
    LinkOwner *owner = nullptr;
};

// Several strings in one allocation: facts fixed at open (path, query...).
// Empty strings cost nothing; all empty costs no allocation.
template <int N>
class PackedStrings {
public:
    PackedStrings() = default;
    explicit PackedStrings(const std::string_view (&items)[N]);
    std::string_view get(int i) const {
        if (!blob_) return {};
        const uint32_t *off = reinterpret_cast<const uint32_t *>(blob_.get());
        return std::string_view(blob_.get() + off[i], off[i + 1] - off[i]);
    }

private:
    std::unique_ptr<char[]> blob_;  // N+1 uint32 offsets, then the bytes
};

// The facts of a connection, fixed once it is open.
enum ConnFact { kPath, kQuery, kOrigin, kSubprotocol, kTlsSubject, kUserId, kClaims, kFactCount };

struct ConnShared {
    wsg_conn_id id = 0;
    PackedStrings<kFactCount> facts;
    IpAddr peer;               // the TCP peer, or behind trusted proxies the client it forwards for
    uint16_t peer_port = 0;
    bool deflate = false;      // permessage-deflate negotiated
    int64_t connected_at_ms = 0;  // Unix time
    int64_t opened_mono_ms = 0;   // monotonic, for durations
    // Written by the service thread only, read by any thread.
    std::atomic<uint64_t> msgs_in{0}, bytes_in{0}, msgs_out{0}, bytes_out{0};
    std::atomic<int64_t> rtt_us{-1};
    std::atomic<void *> user{nullptr};
    // Set by wsg_conn_close() off the service thread before its command
    // runs, so later sends and closes already answer WSG_ECLOSED.
    std::atomic<bool> close_requested{false};

    std::string_view fact(ConnFact f) const { return facts.get(f); }
    static void bump(std::atomic<uint64_t> &c, uint64_t n) {
        c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
};

// What happens to a connection's close, in order.
enum class CloseStage : uint8_t {
    Open,        // nothing decided
    Queued,      // our close frame waits behind the queued frames
    Sent,        // our close frame is out; waiting for the peer's
    Replying,    // the peer closed first; our reply waits to be written
    Done,        // both close frames exchanged: the TCP close follows the flush
};

struct Conn : LinkOwner, ConnShared {
    Conn() : LinkOwner(Kind::Conn) {}
    Link *link = nullptr;

    // ---- service thread only from here on
    proto::FrameReader reader;
    FrameQueue queue;       // data frames
    FrameQueue control;     // pongs: written before data, never dropped for backpressure
    bool writable_requested = false;
    bool ping_due = false;
    bool ip_counted = false, user_counted = false;  // held in the per-IP/per-user counters
    bool inflate_keep_context = false;  // the client keeps its compression context
    uint8_t deflate_window_bits = 15;   // server_max_window_bits the client asked for

    // Inbound message being reassembled (only while one is incomplete).
    std::unique_ptr<std::string> rx;
    std::unique_ptr<Inflater> inflater;  // context-keeping clients, or a message in pieces
    Utf8Validator rx_utf8;               // compressed text, validated after inflating
    MessageRateLimiter rate;

    // Close: `closing` is set once a close is decided, by us or the peer.
    bool closing = false;
    // We refused what the peer sent (too big, bad data...): after our close
    // frame the TCP write side is shut, without waiting for its answer,
    // which we could not read anyway.
    bool refused_input = false;
    bool write_shut = false;
    CloseStage close_stage = CloseStage::Open;
    wsg_close_cause cause = WSG_CAUSE_LOST;
    uint16_t close_code = 0;              // what on_close reports (the code we sent, or the peer's)
    std::unique_ptr<std::string> close_reason;  // set with a close

    // Heartbeat. Times are Clock milliseconds; 0 = none.
    OwnerTimer timer;
    const HeartbeatTimes *times = nullptr;  // the server's, or own_times
    std::unique_ptr<HeartbeatTimes> own_times;
    int64_t last_alive_ms = 0;     // last pong (or frame) from the peer
    int64_t last_data_ms = 0;      // last whole data message
    int64_t next_ping_ms = 0;
    int64_t write_deadline_ms = 0; // pending output must make progress by then
    int64_t close_deadline_ms = 0; // our close frame must be answered by then
    int64_t token_deadline_ms = 0; // the JWT expires (plus grace) then
    uint64_t ping_payload = 0;     // timestamp (us) carried by the last ping

    const std::string &reason() const {
        static const std::string empty;
        return close_reason ? *close_reason : empty;
    }
};

template <int N>
PackedStrings<N>::PackedStrings(const std::string_view (&items)[N]) {
    size_t total = 0;
    for (const auto &s : items) total += s.size();
    if (total == 0) return;
    const size_t head = sizeof(uint32_t) * (N + 1);
    blob_.reset(new char[head + total]);
    uint32_t off[N + 1];
    uint32_t at = static_cast<uint32_t>(head);
    for (int i = 0; i < N; i++) {
        off[i] = at;
        std::memcpy(blob_.get() + at, items[i].data(), items[i].size());
        at += static_cast<uint32_t>(items[i].size());
    }
    off[N] = at;
    std::memcpy(blob_.get(), off, head);
}

}  // namespace wsgate
