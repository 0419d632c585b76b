// Session data (wsg_session_set/get/delete): with the cluster, in Redis
// under PREFIX:s:<key> (SET PX, GET, DEL on the command link, pipelined);
// while the cluster is down every call is answered WSG_ECLUSTER, never from
// a local copy (the data must be the same on every instance). Without
// cluster.redis, in this instance's memory (SessionMemory) with the same TTL
// rules. Every call is answered once through its AsyncReply (AsyncCalls
// holds those waiting for Redis).
// Threads: check() any thread; the rest the service thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "cluster/cluster.h"
#include "core/async_calls.h"
#include "core/session_memory.h"

namespace wsgate {

// One call, as the mailbox carries it.
struct SessionOp {
    enum class Kind { Set, Get, Delete };
    Kind kind = Kind::Get;
    std::string key;
    std::string value;  // Set
    int64_t ttl_ms = 0;  // Set: > 0 once checked (0 given: cluster.session_ttl_ms)
};

// The longest TTL taken (ten years; cluster.session_ttl_ms has the same
// bound): Redis refuses deadlines past its clock's range.
constexpr int64_t kMaxSessionTtlMs = int64_t{10} * 365 * 24 * 3600 * 1000;

class Sessions {
public:
    Sessions(const ClusterConfig &cfg, Cluster &cluster, AsyncCalls &calls, wsg_server *server);
    // The C API's checks: key 1..WSG_SESSION_KEY_MAX bytes, value at most
    // cluster.session_max_bytes (WSG_ELIMIT), 0 <= ttl <= kMaxSessionTtlMs.
    // Fills `op` (ttl 0 becomes the default). Any thread.
    wsg_status check(SessionOp::Kind kind, const char *key, const void *data, size_t len, int64_t ttl_ms,
                     SessionOp *op) const;
    // Carries the call out and answers `reply` (now, or when Redis does).
    void run(SessionOp &op, const AsyncReply &reply);
    // The heartbeat tick: frees expired entries of the local store, a
    // bounded number per call.
    void sweep();
    // Entries of the local store (tests, metrics).
    size_t local_size() const { return memory_.size(); }

private:
    void run_local(SessionOp &op, const AsyncReply &reply);
    void on_reply(AsyncCalls::Id id, SessionOp::Kind kind, const struct redisReply *r);

    const ClusterConfig &cfg_;
    Cluster &cluster_;
    AsyncCalls &calls_;
    wsg_server *server_;
    SessionMemory memory_;
};

}  // namespace wsgate
