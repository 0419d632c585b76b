// The connection registry: live connections named by generational ids.
//
// Threads: the service thread owns every Conn and is the only writer of the
// registry. Other threads look connections up (send, close, info, ids) under
// `mu`, which guards the slot table and the live list; the service thread
// takes it only to add or remove a connection, never on the message path.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "protocol/deflate.h"
#include "protocol/frame.h"
#include "security/limits.h"
#include "security/netaddr.h"
#include "core/wheel.h"
#include "wsgate/wsgate.h"

struct lws;

namespace wsgate {

struct Conn;

// A connection's one wheel timer; its deadline is the earliest of the
// connection's heartbeat deadlines (or earlier: it is re-checked lazily).
struct ConnTimer : WheelTimer {
    Conn *conn = nullptr;
};

struct Conn {
    wsg_conn_id id = 0;
    struct lws *wsi = nullptr;

    // Facts fixed at open (read by other threads under Registry::mu).
    std::string peer_addr;
    int peer_port = 0;
    std::string path, query, origin, subprotocol;
    std::string tls_subject;  // verified client certificate subject
    std::string user_id, claims_json;  // from authentication
    IpAddr client_ip;                  // the peer, or the X-Forwarded-For client behind trusted proxies
    bool ip_counted = false, user_counted = false;  // held in the per-IP/per-user counters
    bool deflate = false;                           // permessage-deflate negotiated
    bool inflate_keep_context = true;               // the client keeps its compression context
    MessageRateLimiter rate;
    int64_t connected_at_ms = 0;  // Unix time
    int64_t opened_mono_ms = 0;   // monotonic

    // Counters: written by the service thread only, read by any thread.
    std::atomic<uint64_t> msgs_in{0}, bytes_in{0}, msgs_out{0}, bytes_out{0};
    std::atomic<void *> user{nullptr};
    // Set by wsg_conn_close() off the service thread before its command runs,
    // so later sends and closes already answer WSG_ECLOSED.
    std::atomic<bool> close_requested{false};

    // Service thread only from here on.
    FrameQueue queue;
    bool writable_requested = false;

    // Inbound message being reassembled.
    std::string rx;
    bool in_message = false;
    bool rx_binary = false;
    bool rx_compressed = false;         // RSV1: inflated into rx
    bool rx_frame_open = false;         // the last chunk left its frame unfinished
    std::unique_ptr<Inflater> inflater;  // from the first compressed message
    Utf8Validator utf8;

    // Close state. `closing` is set once a close was decided by us (queued
    // close frame) or received from the peer; later sends get WSG_ECLOSED.
    bool closing = false;
    bool close_queued = false;     // send our close frame when the queue drains
    int close_code = 0;            // what on_close reports
    std::string close_reason;
    wsg_close_cause cause = WSG_CAUSE_LOST;

    // Heartbeat (service thread). Times are Clock milliseconds; 0 = none.
    ConnTimer timer;
    int64_t ping_interval_ms = 0, pong_wait_ms = 0, write_wait_ms = 0, idle_timeout_ms = 0,
            close_wait_ms = 0;
    int64_t last_alive_ms = 0;     // last pong (or frame) from the peer
    int64_t last_data_ms = 0;      // last whole data message
    int64_t next_ping_ms = 0;
    int64_t write_deadline_ms = 0; // pending output must make progress by then
    int64_t close_deadline_ms = 0; // our close frame must be answered by then
    int64_t token_deadline_ms = 0; // the JWT expires (plus grace) then
    uint64_t ping_payload = 0;     // timestamp (us) carried by the last ping
    bool ping_due = false;
    std::atomic<int64_t> rtt_us{-1};

    static void bump(std::atomic<uint64_t> &c, uint64_t n) {
        c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
};

class Registry {
public:
    // Service thread. Assigns conn->id. Takes mu.
    void add(Conn *conn);
    // Service thread. The id becomes stale. Takes mu. Does not delete.
    void remove(Conn *conn);
    // Service thread (no lock), or any thread holding mu.
    Conn *get(wsg_conn_id id) const {
        uint32_t index = static_cast<uint32_t>(id & 0xffffffffu);
        uint32_t gen = static_cast<uint32_t>(id >> 32);
        if (index >= slots_.size()) return nullptr;
        const Slot &s = slots_[index];
        return (s.gen == gen && s.conn) ? s.conn : nullptr;
    }
    size_t count() const { return count_.load(std::memory_order_relaxed); }
    // Service thread (no lock), or any thread holding mu.
    const std::vector<Conn *> &live() const { return live_; }

    mutable std::mutex mu;

private:
    struct Slot {
        uint32_t gen = 0;  // generation of the current or last occupant
        Conn *conn = nullptr;
    };
    std::vector<Slot> slots_;
    std::vector<uint32_t> free_;       // reusable slot indices (FIFO order)
    size_t free_head_ = 0;
    std::vector<Conn *> live_;         // dense list for broadcast and shutdown
    std::vector<uint32_t> live_pos_;   // slot index -> position in live_
    std::atomic<size_t> count_{0};
};

}  // namespace wsgate
