#include "core/sessions.h"

#include <hiredis/hiredis.h>

#include <cstring>

#include "base/error.h"
#include "base/time.h"

namespace wsgate {
namespace {

// Expired entries freed per heartbeat tick at most: a tick stays short even
// when many sessions end at once; the rest go on the next ticks (and none
// is ever returned once expired).
constexpr size_t kSweepPerTick = 256;

const char *verb(SessionOp::Kind kind) {
    switch (kind) {
    case SessionOp::Kind::Set: return "SET";
    case SessionOp::Kind::Get: return "GET";
    case SessionOp::Kind::Delete: return "DEL";
    }
    return "?";
}

wsg_result status_result(wsg_status status, std::string message) {
    wsg_result r;
    r.status = status;
    r.message = std::move(message);
    return r;
}

}  // namespace

Sessions::Sessions(const ClusterConfig &cfg, Cluster &cluster, AsyncCalls &calls, wsg_server *server)
    : cfg_(cfg), cluster_(cluster), calls_(calls), server_(server) {}

wsg_status Sessions::check(SessionOp::Kind kind, const char *key, const void *data, size_t len, int64_t ttl_ms,
                           SessionOp *op) const {
    if (!key) return fail(WSG_EINVAL, "key is NULL");
    const size_t klen = std::strlen(key);
    if (klen == 0 || klen > WSG_SESSION_KEY_MAX)
        return fail(WSG_EINVAL, "session key of " + std::to_string(klen) + " bytes: it must have 1.." +
                                    std::to_string(WSG_SESSION_KEY_MAX));
    op->kind = kind;
    op->key.assign(key, klen);
    if (kind != SessionOp::Kind::Set) return WSG_OK;
    if (!data && len) return fail(WSG_EINVAL, "data is NULL but len is " + std::to_string(len));
    if (ttl_ms < 0 || ttl_ms > kMaxSessionTtlMs)
        return fail(WSG_EINVAL, "ttl_ms " + std::to_string(ttl_ms) + " is out of range 0.." +
                                    std::to_string(kMaxSessionTtlMs) + " (0: cluster.session_ttl_ms)");
    if (len > cfg_.session_max_bytes)
        return fail(WSG_ELIMIT, "session value of " + std::to_string(len) + " bytes is larger than "
                                "cluster.session_max_bytes (" + std::to_string(cfg_.session_max_bytes) + ")");
    op->value.assign(static_cast<const char *>(data), len);
    op->ttl_ms = ttl_ms ? ttl_ms : cfg_.session_ttl_ms;
    return WSG_OK;
}

void Sessions::run(SessionOp &op, const AsyncReply &reply) {
    if (!cluster_.enabled()) return run_local(op, reply);
    if (!cluster_.up())
        return answer_now(reply, server_, WSG_ECLUSTER,
                          std::string("session data lives in Redis, and the cluster is down (") +
                              cluster_.down_reason() + ")");
    const AsyncCalls::Id id = calls_.add(reply);
    const std::string key = cluster_.session_key(op.key);
    const SessionOp::Kind kind = op.kind;
    auto cb = [this, id, kind](const redisReply *r) { on_reply(id, kind, r); };
    bool sent = false;
    switch (kind) {
    case SessionOp::Kind::Set: {
        const std::string ttl = std::to_string(op.ttl_ms);
        sent = cluster_.command({"SET", key, op.value, "PX", ttl}, cb);
        break;
    }
    case SessionOp::Kind::Get: sent = cluster_.command({"GET", key}, cb); break;
    case SessionOp::Kind::Delete: sent = cluster_.command({"DEL", key}, cb); break;
    }
    if (!sent)
        calls_.answer(id, WSG_ECLUSTER,
                      std::string("session ") + verb(kind) + " not handed to Redis (" +
                          (cluster_.up() ? std::string("cluster.max_pending commands are waiting")
                                         : cluster_.down_reason()) +
                          ")");
}

void Sessions::on_reply(AsyncCalls::Id id, SessionOp::Kind kind, const redisReply *r) {
    if (!r) {
        // The link failed or timed out (a stop answered its calls already).
        calls_.answer(id, WSG_ECLUSTER,
                      std::string("no answer from Redis at ") + cfg_.address.text() + " to session " + verb(kind) +
                          ": the connection failed or the reply took longer than cluster.command_timeout_ms (" +
                          std::to_string(cfg_.command_timeout_ms) + " ms)");
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        calls_.answer(id, WSG_ECLUSTER,
                      std::string("Redis refused session ") + verb(kind) + ": " + std::string(r->str, r->len));
        return;
    }
    wsg_result result;
    switch (kind) {
    case SessionOp::Kind::Set:
        if (r->type != REDIS_REPLY_STATUS) break;
        calls_.answer(id, result);
        return;
    case SessionOp::Kind::Get:
        if (r->type == REDIS_REPLY_NIL) {
            calls_.answer(id, status_result(WSG_ENOTFOUND, "no session data under this key (absent or expired)"));
            return;
        }
        if (r->type != REDIS_REPLY_STRING) break;
        result.has_value = true;
        result.value.assign(r->str, r->len);
        calls_.answer(id, result);
        return;
    case SessionOp::Kind::Delete:
        if (r->type != REDIS_REPLY_INTEGER) break;
        calls_.answer(id, result);
        return;
    }
    calls_.answer(id, WSG_ECLUSTER,
                  std::string("Redis answered session ") + verb(kind) + " with an unexpected reply type (" +
                      std::to_string(r->type) + "): is " + cluster_.session_key("*") + " used by something else?");
}

void Sessions::run_local(SessionOp &op, const AsyncReply &reply) {
    const int64_t now = mono_ms();
    switch (op.kind) {
    case SessionOp::Kind::Set: memory_.set(op.key, std::move(op.value), op.ttl_ms, now); break;
    case SessionOp::Kind::Delete: memory_.erase(op.key, now); break;
    case SessionOp::Kind::Get: {
        const std::string *v = memory_.get(op.key, now);
        if (!v) return reply(server_, status_result(WSG_ENOTFOUND, "no session data under this key (absent or expired)"));
        wsg_result r;
        r.has_value = true;
        r.value = *v;
        return reply(server_, r);
    }
    }
    reply(server_, wsg_result());
}

void Sessions::sweep() {
    if (!cluster_.enabled() && memory_.size()) memory_.sweep(mono_ms(), kSweepPerTick);
}

}  // namespace wsgate
