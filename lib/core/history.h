// History and recovery (cluster.history_topics): every message of a history
// topic gets a position (epoch + offset) and the last cluster.history_size
// are kept, so a connection can be subscribed "from" a position and get
// what it missed, then the live messages, with no gap and no duplicate.
//
// With the cluster, the history lives in Redis, under cluster.prefix:
//   PREFIX:he:<topic>  the epoch (random, set by the first publish)
//   PREFIX:ho:<topic>  the last offset (INCR)
//   PREFIX:h:<topic>   a stream of the messages, entry id <offset>-0
// all three expiring cluster.history_ttl_ms after the last publish. One
// script per publish gives the position, appends to the stream and
// publishes the envelope (TopicHistory) on the topic's channel; every
// instance, the publisher included, delivers from that envelope, so all
// deliver in offset order. Each instance keeps per topic the last position
// it delivered: a message beyond last + 1 makes it fetch the gap first
// (XRANGE), holding the live ones meanwhile; one at or below last is a
// duplicate, skipped; another epoch starts over (nothing replayed).
// While Redis is down a publish is delivered here at once (position {0,0})
// and kept, up to history_size per topic (more are counted as dropped), to
// be written when Redis is back; its echo is marked so it is not delivered
// here twice.
//
// Without a cluster: a ring per topic in memory with the same positions
// (an epoch drawn at random when the topic's history starts).
//
// Threads: the service thread only (the C API posts through the mailbox).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "cluster/cluster.h"
#include "core/async_calls.h"
#include "core/outbox.h"
#include "wsgate/wsgate.h"

// The history hook's view of one message (ABI type): the payload as
// published, and what replaces it (wsg_history_message_set).
struct wsg_history_message {
    wsg_msg_type type = WSG_MSG_TEXT;
    std::string_view payload;
    bool replaced = false;
    std::string replacement;
    size_t max_bytes = 0;  // limits.max_queue_bytes
};

namespace wsgate {

// Where the history's messages go: the server's fan-out.
class HistorySink {
public:
    virtual ~HistorySink() = default;
    // One message to the topic's local subscribers (only != 0: to that
    // connection alone, a replay), shaped by the history hook. Returns the
    // message as delivered (for holding).
    virtual void history_deliver(const std::string &topic, const wsg_position &pos, wsg_msg_type type,
                                 std::string_view payload, wsg_conn_id only) = 0;
    // A message held for one connection while its replay ran.
    virtual void history_deliver_held(wsg_conn_id conn, OutMessage &m) = 0;
    // Whether the connection is open (not closing).
    virtual bool history_conn_open(wsg_conn_id conn) = 0;
};

class History {
public:
    History(const ClusterConfig &cfg, Cluster &cluster, AsyncCalls &calls, Metrics &metrics, HistorySink &sink);
    bool topic(std::string_view name) const { return cfg_.history_topic(name); }

    // A publish on a history topic (checked by the caller).
    void publish(const std::string &topic, wsg_msg_type type, std::string payload);
    // `conn` was just subscribed to `topic`: the missed messages after
    // `from` (nullptr: none), then the live ones; `reply` answered once.
    void subscribe_from(wsg_conn_id conn, const std::string &topic, const wsg_position *from, AsyncReply reply);
    // The fan-out asks, per subscriber: true when the message is held for
    // (or already given to) this connection by a replay in progress.
    bool hold(const std::string &topic, wsg_conn_id conn, const wsg_position &pos, const OutMessage &m);
    // A TopicHistory envelope from the topic's channel.
    void on_envelope(const Envelope &e);
    // The cluster came up (fetch the gaps, write what was kept) or went down.
    void on_cluster_state(bool up);
    // Redis confirmed that this instance listens to the topic's channel:
    // a message published before that, but after a read of the history
    // made earlier, reached neither; read again (once the base is known).
    void on_listening(const std::string &topic);
    // The topic got its first local subscriber (cluster mode): where the
    // history stands now is read, so what is published before Redis
    // confirms the channel is read again then (on_listening) rather than lost.
    void topic_used(const std::string &topic);
    // Live messages of `topic` for `conn` wait from now for its replay (a
    // subscribe_from made on the service thread, whose replay comes later).
    void begin_hold(const std::string &topic, wsg_conn_id conn);
    // The replay will not come (the connection closed): what waited goes.
    void release(const std::string &topic, wsg_conn_id conn) { end_replay(topic, conn, wsg_position{0, 0}); }
    // The topic lost its last local subscriber: its delivery state goes.
    void topic_unused(const std::string &topic);
    // Messages kept while Redis was down, not yet written (tests, metrics).
    size_t pending() const;
    // The heartbeat tick: frees in-memory histories that lapsed
    // (cluster.history_ttl_ms without a publish), one pass a second at most.
    void sweep();

private:
    struct Held {
        wsg_position pos;
        OutMessage msg;
    };
    // One connection's replay: live messages wait in `held` until it ends;
    // afterwards `floor` (the last replayed) keeps a late duplicate out.
    struct Replay {
        bool running = true;
        wsg_position floor{0, 0};
        std::vector<Held> held;
    };
    struct Live {
        wsg_position pos;
        wsg_msg_type type;
        std::string payload;
        bool delivered_here;  // (by this instance while Redis was down)
    };
    // What this instance delivered of a topic (cluster mode).
    struct TopicState {
        wsg_position last{0, 0};
        // Where this instance stands is known: `last`, or {0,0} for "the
        // history was empty" (every message is new here).
        bool known = false;
        bool fetching = false;
        bool refetch = false;  // the channel was confirmed while fetching or replaying
        std::vector<Live> waiting;  // live messages while fetching
        std::unordered_map<wsg_conn_id, Replay> replays;
    };
    // One message kept in memory (no cluster) or waiting for Redis.
    struct Kept {
        uint64_t offset;
        wsg_msg_type type;
        std::string payload;
    };
    struct Ring {
        uint64_t epoch = 0, last = 0;
        int64_t touched_ms = 0;
        std::deque<Kept> msgs;
    };

    void publish_local(const std::string &topic, wsg_msg_type type, std::string payload);
    void publish_redis(const std::string &topic, wsg_msg_type type, const std::string &payload, bool delivered_here);
    void subscribe_local(wsg_conn_id conn, const std::string &topic, const wsg_position *from, const AsyncReply &reply);
    void subscribe_redis(wsg_conn_id conn, const std::string &topic, const wsg_position *from, AsyncReply reply);
    // One message in offset order for the topic's subscribers here.
    void take(const std::string &topic, Live live);
    void fetch_gap(const std::string &topic);
    // A refetch asked for by on_listening, when nothing else runs.
    void refetch_if_asked(const std::string &topic);
    // Replay ended: held messages after the floor go, the rest are dropped.
    void end_replay(const std::string &topic, wsg_conn_id conn, const wsg_position &floor);
    std::vector<std::string> keys(const std::string &topic) const;
    bool eval(int script, std::vector<std::string> args, RedisLink::ReplyFn cb);
    uint64_t new_epoch();

    const ClusterConfig &cfg_;
    Cluster &cluster_;
    AsyncCalls &calls_;
    Metrics &metrics_;
    HistorySink &sink_;
    std::mt19937_64 rng_;
    std::unordered_map<std::string, TopicState> states_;
    std::unordered_map<std::string, Ring> rings_;  // no cluster
    int64_t swept_ms_ = 0;
    std::unordered_map<std::string, std::deque<Kept>> outage_;  // Redis down
};

// Position text: "EPOCH-OFFSET" in decimal. Any thread.
bool parse_position(std::string_view text, wsg_position *out);
std::string format_position(const wsg_position &pos);

}  // namespace wsgate
