// The outbox: everything a connection sends. Messages are queued as shared,
// pre-built frames (a broadcast is framed, and compressed, once) and written
// when the socket can take them, many whole frames per write. Control frames
// (pong, ping, close) go out before queued data, never inside a message's
// frames, and no queue policy drops them. A queue that is full applies the
// connection's policy (close, drop_newest, drop_oldest, conflate); a queue
// that fell behind and caught up calls on_drain. It also runs our side of
// the close handshake. `deliver(targets, message)` is the one door for
// every send: one connection, a broadcast, topics and the cluster alike.
//
// All queues together are bounded too (limits.max_total_queue_bytes): a
// ledger counts the memory they hold, a broadcast frame once. A message that
// would pass that cap meets the policy of the connection it is for when that
// connection is behind (waiting for its socket): the connections that hold
// the backlog pay for it. One that keeps up (its socket took everything, so
// its queue holds only what this event gave it) does not pay for the others
// (one fast producer to many slow consumers locks nobody out): it may use a
// reserve of an eighth of the cap above it, up to its high-water mark. So
// nothing passes cap + cap/8, and only connections that kept up and fell
// behind within one event take the total past the cap; from their next
// message on they pay like the others.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "config/settings.h"
#include "core/callbacks.h"
#include "core/conn.h"
#include "core/heartbeat.h"
#include "observe/episode.h"
#include "observe/log.h"
#include "observe/metrics.h"
#include "protocol/deflate.h"
#include "protocol/frame.h"
#include "transport/transport.h"

namespace wsgate {

// A message on its way to one or more connections: its frames and, made on
// first need and then shared, the same message compressed (one copy per
// window size a recipient asked for).
struct OutMessage {
    FrameList frames;
    size_t payload = 0;
    std::vector<std::pair<int, FrameList>> deflated;  // window bits -> frames (empty: does not pay)
    // Set by the publisher (a topic): under the conflate policy, a
    // connection that is behind keeps only the latest message per key.
    ConflateKey conflate_key;

    OutMessage() = default;
    // Bytes its plain frames take in a queue.
    size_t bytes() const {
        size_t n = 0;
        for (const FrameRef &f : frames) n += f->size();
        return n;
    }
    OutMessage(wsg_msg_type type, const void *data, size_t len, size_t max_frame)
        : frames(FrameBuilder::message(type, data, len, max_frame)), payload(len) {}
};

class Outbox {
public:
    Outbox(const Settings &cfg, Transport &transport, Logger &log, Clock &clock, Heartbeat &heartbeat,
           AppCallbacks &app, Metrics &metrics);

    // Queues the message to every target that is open and not closing.
    template <class Targets>
    void deliver(const Targets &targets, OutMessage &m) {
        for (Conn *c : targets) deliver(c, m);
    }
    void deliver(Conn *c, OutMessage &m);

    // Answers a ping (RFC 6455 5.5.2): every ping gets its pong.
    void pong(Conn *c, const uint8_t *payload, size_t len);
    // Sends a heartbeat ping (its payload, a timestamp, comes back for the RTT).
    void ping(Conn *c);
    // Starts our close: the close frame goes out after what is queued (or,
    // with drop_queued, instead of it: a peer we refuse gets no more data).
    void close(Conn *c, int code, const std::string &reason, wsg_close_cause cause, bool drop_queued);
    // The peer's close frame arrived. False: the close handshake is complete
    // and the link may close now (after its pending output).
    bool peer_closed(Conn *c, int code, const uint8_t *reason, size_t len);
    // The socket can take more. False: close the link (after its output).
    bool on_writable(Conn *c);
    // Writes what the current event queued (the server calls it at the end
    // of every event); only what the kernel does not take waits for a
    // writable event.
    void flush();
    // The connection ends: it leaves the flush list and the metrics' totals.
    void forget(Conn *c);
    // From the heartbeat tick: the total cap's refusals, logged as an
    // episode (when it starts, every minute while it lasts, when it ends).
    void report(int64_t now_ms);
    // What every queue holds together (and its peak, which the memory trim resets).
    QueueLedger &ledger() { return ledger_; }

private:
    const FrameList &frames_for(Conn *c, OutMessage &m);
    // Queue policies. Each returns true when the message (of `need` bytes)
    // was handled, false when it is to be queued as usual.
    // Which limit a message would pass: the connection's queue
    // (limits.max_queue_bytes) or all queues together (limits.max_total_queue_bytes).
    enum class Cap { Connection, Total };
    bool overflow(Conn *c, size_t need, Cap cap);
    // The message would take every queue together past the cap, and `c`
    // pays: it is behind (its socket takes nothing more), or this event gave
    // it more than its high-water mark, or the reserve for connections that
    // keep up (an eighth of the cap above it) is used up too.
    bool over_total(const Conn *c, size_t need) const {
        const size_t cap = cfg_.max_total_queue_bytes;
        if (!cap || ledger_.bytes + need <= cap) return false;
        const bool keeps_up = !c->writable_requested && queued(c) + need <= cfg_.queue_high_water &&
                              ledger_.bytes + need <= cap + cap / 8;
        return !keeps_up;
    }
    bool conflate(Conn *c, const FrameList &frames, size_t need, const ConflateKey &key);
    // The queue policy dropped `n` messages: counted, and the first drop of
    // an episode logged (the connection's episode, or the total cap's).
    void dropped(Conn *c, uint64_t n, Cap cap = Cap::Connection);
    // The total cap refused a message to `c` (dropped messages or its close).
    void total_refused(Conn *c, uint64_t dropped, bool closed);
    void log_total_episode(int64_t now_ms, bool ended);
    size_t queued(const Conn *c) const { return c->queue.bytes() + c->control.bytes(); }
    // Output was queued: published, bounded by the write deadline, written
    // at the next flush.
    void enqueued(Conn *c);
    // After the queues grew: publishes their size and notes passing the
    // high-water mark while the socket is full.
    void grew(Conn *c);
    // After a write: publishes the size, notes passing the high-water mark
    // while the socket is full; back at the low-water mark, the backlog ends
    // (on_drain, the queue_recovered event).
    void settle(Conn *c);
    Backlog &backlog(Conn *c);
    // Sets the connection's queued_bytes, keeping the metrics' total. Once
    // per queued message: inline.
    void publish_queued(Conn *c, size_t q) {
        const uint64_t was = c->queued_bytes.load(std::memory_order_relaxed);
        c->queued_bytes.store(q, std::memory_order_relaxed);
        metrics_.queued_bytes.add(static_cast<int64_t>(q) - static_cast<int64_t>(was));
    }
    // Its queue passed the high-water mark while the socket is full.
    void fell_behind(Conn *c);
    void end_backlog(Conn *c, size_t queued);
    // Output is queued: written at the next flush().
    void mark(Conn *c);
    void want_writable(Conn *c);
    bool write_some(Conn *c);   // write_queued, then settle
    bool write_queued(Conn *c);
    // Writes queued frames, controls first, as one batch.
    bool write_batch(Conn *c);
    void note_progress(Conn *c, bool pending);

    const Settings &cfg_;
    Transport &transport_;
    Logger &log_;
    Clock &clock_;
    Heartbeat &heartbeat_;
    AppCallbacks &app_;
    Metrics &metrics_;
    std::vector<uint8_t> scratch_;  // one coalesced write
    std::vector<std::unique_ptr<Deflater>> deflaters_;  // by window bits, made on first need
    std::vector<Conn *> dirty_;  // output queued during the current event (null: finished since)
    QueueLedger ledger_;         // every connection's queues (outlives them: the server finishes all first)
    // The total cap refusing messages: an episode, with its counts.
    Episode total_full_;
    uint64_t total_dropped_ = 0, total_closed_ = 0;
};

}  // namespace wsgate
