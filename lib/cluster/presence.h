// Presence in Redis and the lease on this instance's node number, on the
// command link (keys: presence_keys.h; scripts: presence_scripts.h).
//
// - The node number is leased: P:lease:N holds this server's tag for
//   cluster.presence_ttl_ms, renewed every third of it. Entries live in
//   per-node hashes whose TTL never exceeds the lease's, so the entries of
//   an instance that dies (kill -9, SIGSTOP, network loss) go with its
//   lease, within the TTL; a clean stop deletes them and the lease at once.
// - Writes follow every local event (subscribe, unsubscribe, a user's
//   connection opening or ending): one command each, pipelined, no reply
//   awaited beyond bookkeeping. A write that could not be made (link down,
//   lease not ours, Redis refused) marks the whole as dirty.
// - Resync: every local entry written again (this node's hashes cleared
//   first) when the link becomes ready (a new connection may face a Redis
//   that restarted empty), when a renewal finds the lease had lapsed, and
//   when dirty. Meanwhile readers may briefly see fewer entries of this node.
// - Readers run one script: the node set, each node's hash, one round trip.
//
// Threads: the service thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "cluster/config.h"
#include "cluster/presence_keys.h"
#include "cluster/redis_link.h"
#include "observe/log.h"
#include "observe/metrics.h"

namespace wsgate {

// One name's local entries (field: connection id; value: presence_keys.h).
struct PresenceGroup {
    char kind = 't';  // 't' topic, 'u' user
    std::string name;
    std::vector<std::pair<uint64_t, std::string>> fields;
};

class Presence {
public:
    // Every local entry, for a resync.
    using SnapshotFn = std::function<void(std::vector<PresenceGroup> *)>;
    // The node number taken (`conflict`: another server holds its lease).
    using NodeFn = std::function<void(uint16_t node, bool conflict)>;
    // A read's outcome: ok, or why not; the entries of every node.
    using ReadFn = std::function<void(bool ok, const std::string &why, std::vector<PresenceEntry> &entries)>;

    Presence(const ClusterConfig &cfg, RedisLink &cmd, uint64_t tag, Logger &log, Metrics &metrics,
             SnapshotFn snapshot, NodeFn on_node);

    // The command link became ready: load the scripts, take the node number
    // (again: the one already known, if any), then resync.
    void link_ready(uint16_t node);
    // The command link was lost: what was in flight is failed by the link.
    void link_lost();
    // From the cluster's check timer: renewal when due, a retry of the
    // node number, a resync when dirty.
    void tick(int64_t now);
    // Local events (service thread).
    void add(char kind, const std::string &name, uint64_t conn, const std::string &value);
    void remove(char kind, const std::string &name, uint64_t conn);
    // False when the read could not be sent (link down or full).
    bool read(char kind, const std::string &name, ReadFn fn);
    // Clean stop: this node's entries and its lease deleted; `done` runs
    // once, when Redis answered or the link gave up (cluster.command_timeout_ms),
    // or at once when nothing can be sent. Writes and renewals end here.
    void leave(std::function<void()> done);
    // Back to the start (a server that listens again).
    void reset();
    // The lease is this server's (last known).
    bool held() const { return held_; }

private:
    bool eval(int script, std::vector<std::string> argv, RedisLink::ReplyFn cb);
    void load_scripts();
    void take();
    void renew(int64_t now);
    void resync(const char *why);
    // A reply that says the write did not happen.
    void write_failed(const redisReply *r);
    bool noscript(const redisReply *r);

    const ClusterConfig &cfg_;
    RedisLink &cmd_;
    const std::string tag_;
    Logger &log_;
    Metrics &metrics_;
    SnapshotFn snapshot_;
    NodeFn on_node_;
    uint16_t node_ = 0;
    bool held_ = false, taking_ = false, renewing_ = false, dirty_ = false, leaving_ = false;
    bool conflict_logged_ = false;
    int64_t renewed_ms_ = 0, tried_ms_ = 0;
    // Bumped whenever the link is lost: a reply of an older generation is
    // about a connection that is gone.
    uint64_t gen_ = 0;
};

}  // namespace wsgate
