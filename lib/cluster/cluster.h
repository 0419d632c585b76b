// The cluster: several wsgate instances behaving as one through Redis
// (cluster.redis). It owns two links (lib/cluster/redis_link.h): commands
// (PUBLISH, INCR..., pipelined) and subscriptions (nothing but
// (un)subscribe), this instance's node number, and the channels it listens
// to. Channels, under cluster.prefix:
//   PREFIX:t:<topic>   a topic's messages: listened to while a local
//                      connection subscribes to the topic
//   PREFIX:u:<user>    a user's messages and closes: listened to while the
//                      user has a local connection
//   PREFIX:n:<node>    messages and closes for connections of one node
//   PREFIX:hb:<tag>    this instance's heartbeat: the command link publishes
//                      on it, so a silent subscriber link is found
//   PREFIX:nodes       (key) INCR gives each instance a candidate node number,
//                      leased under PREFIX:lease:<node> (lib/cluster/presence.h)
//   PREFIX:s:<key>     (key) session data (core/sessions.h), with a TTL
// Presence (who is subscribed to a topic, a user's connections) lives in
// per-node hashes with the lease's TTL: lib/cluster/presence.h.
// Every message is one envelope (lib/cluster/envelope.h) naming its origin:
// an instance skips its own.
//
// Up: both links ready and the node number known. Down: cross-instance
// calls fail fast (the Server says WSG_ECLUSTER), publishes for other
// instances are counted as dropped; cluster_down is logged once per outage
// and cluster_up with the outage's duration when it ends.
//
// Threads: the service thread, except up(), node(), tag(), the channel
// names and down_reason(), which any thread may call.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "cluster/channels.h"
#include "cluster/config.h"
#include "cluster/envelope.h"
#include "cluster/presence.h"
#include "cluster/redis_link.h"
#include "observe/log.h"
#include "observe/metrics.h"
#include "transport/transport.h"

namespace wsgate {

// What the cluster hands to the server (service thread).
class ClusterSink {
public:
    virtual ~ClusterSink() = default;
    // A message from another instance, for local delivery.
    virtual void on_cluster_message(const Envelope &e) = 0;
    // This instance's node number is known (once per server).
    virtual void on_cluster_node(uint16_t node) = 0;
    // The cluster went up or down (readiness with cluster.require).
    virtual void on_cluster_state(bool up) = 0;
    // Every local presence entry (a resync of presence in Redis).
    virtual void on_presence_snapshot(std::vector<PresenceGroup> *out) = 0;
    // Redis confirmed that this instance listens to the topic's channel
    // (first subscriber, or again after a reconnect).
    virtual void on_topic_listening(const std::string &topic) = 0;
};

// Node numbers: 1..kMaxNode, in the top 16 bits of connection ids.
constexpr uint16_t kMaxNode = 65535;

class Cluster final : public RedisLink::Owner {
public:
    Cluster(const ClusterConfig &cfg, Transport &transport, Logger &log, Metrics &metrics, ClusterSink &sink);
    ~Cluster() override;
    bool enabled() const { return cfg_.enabled; }
    // Service thread, with the transport open: connect.
    void start();
    // Service thread, before the transport closes (LWS-NOTES: every hiredis
    // context is freed before lws_context_destroy and ev_loop_destroy).
    void stop();

    // Any thread.
    bool up() const { return up_.load(std::memory_order_acquire); }
    uint16_t node() const { return node_.load(std::memory_order_acquire); }
    uint64_t tag() const { return tag_; }
    std::string down_reason() const;
    std::string topic_channel(std::string_view topic) const { return cfg_.prefix + ":t:" + std::string(topic); }
    std::string user_channel(std::string_view user) const { return cfg_.prefix + ":u:" + std::string(user); }
    std::string node_channel(uint16_t node) const { return cfg_.prefix + ":n:" + std::to_string(node); }

    // Service thread: listen to a topic's or user's channel, or stop.
    void want_topic(std::string_view topic, bool on);
    void want_user(std::string_view user, bool on);
    // Service thread: one PUBLISH of `envelope` on `channel`. False when it
    // could not be handed to Redis (down, or cluster.max_pending waiting):
    // counted as dropped.
    bool relay(const std::string &channel, const std::string &envelope);
    // Service thread: how many connections `user` has on the other
    // instances (their presence entries), to done(n) later on the service
    // thread, n < 0 when Redis fails or times out. False (done never
    // called) when the cluster is down. lib/cluster/user_count.cpp.
    bool count_user(const std::string &user, std::function<void(int64_t)> done);
    // Service thread: one command on the command link whose answer is
    // wanted (session data). False when it could not be handed to Redis
    // (down, or cluster.max_pending waiting): `cb` never runs then.
    bool command(std::initializer_list<std::string_view> argv, RedisLink::ReplyFn cb);
    // The same with any number of arguments (the history's scripts).
    bool command(const std::vector<std::string> &argv, RedisLink::ReplyFn cb);
    std::string session_key(std::string_view key) const { return cfg_.prefix + ":s:" + std::string(key); }

    // Service thread: presence (lib/cluster/presence.h). kind 't' (a topic's
    // subscriber) or 'u' (a user's connection); value: encode_presence_value.
    void presence_add(char kind, const std::string &name, uint64_t conn, const std::string &value);
    void presence_remove(char kind, const std::string &name, uint64_t conn);
    // False (fn never called) when the read could not be sent.
    bool presence_read(char kind, const std::string &name, Presence::ReadFn fn);
    // Service thread, a clean stop before stop(): this node's presence and
    // lease deleted; `done` runs once (at once without a cluster).
    void leave(std::function<void()> done);
    // Between start() and stop().
    bool running() const { return running_; }

private:
    void on_link_ready(RedisLink *link) override;
    void on_link_lost(RedisLink *link, const std::string &why, bool was_ready) override;
    void on_link_message(RedisLink *link, std::string_view channel, std::string_view payload) override;
    void on_node(uint16_t node, bool conflict);
    void update();
    void on_check();

    const ClusterConfig &cfg_;
    Transport &transport_;
    Logger &log_;
    Metrics &metrics_;
    ClusterSink &sink_;
    const uint64_t tag_;
    const std::string hb_channel_;
    std::unique_ptr<RedisLink> cmd_, sub_;
    std::unique_ptr<ChannelSet> channels_;
    std::unique_ptr<Presence> presence_;
    std::atomic<bool> up_{false};
    std::atomic<uint16_t> node_{0};
    bool running_ = false;
    // The outage: since when, and whether cluster_down was logged.
    int64_t down_since_ms_ = 0;
    bool down_logged_ = false;
    int64_t check_every_ms_ = 0, hb_every_ms_ = 0, last_hb_ms_ = 0;
    // Since when the heartbeat could be heard (both links ready, its channel confirmed); 0: not.
    int64_t hb_watch_since_ms_ = 0;
    Transport::Timer check_timer_;
    mutable std::mutex reason_mu_;  // guards down_reason_
    std::string down_reason_;
};

}  // namespace wsgate
