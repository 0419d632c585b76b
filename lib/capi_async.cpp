// The C ABI of asynchronous results: wsg_result, wsg_completion, presence
// and session data calls. Plumbing only, like capi.cpp.
#include <new>
#include <string>

#include "base/error.h"
#include "capi_guard.h"
#include "core/completion.h"
#include "core/server.h"
#include "wsgate/wsgate.h"

using namespace wsgate;

namespace {

// A call that answers through `fn`: a completion passed with
// wsg_completion_callback is told when the call is accepted.
template <class F>
wsg_status async_call(wsg_server *server, wsg_result_fn fn, void *user, F &&call) {
    CompletionUse use(fn, user, server);
    if (wsg_status st = use.check()) return st;
    wsg_status st = call(AsyncReply{fn, user});
    if (st == WSG_OK) use.keep();
    return st;
}

}  // namespace

extern "C" {

// ---------------------------------------------------------------- results

WSG_API wsg_status wsg_result_status(const wsg_result *result) { return result ? result->status : WSG_EINVAL; }

WSG_API const char *wsg_result_message(const wsg_result *result) {
    return result ? result->message.c_str() : "result is NULL";
}

WSG_API wsg_status wsg_result_value(const wsg_result *result, const void **data, size_t *len) {
    return guard([&] {
        if (!result) return null_arg("result");
        if (!data) return null_arg("data");
        if (!len) return null_arg("len");
        if (!result->has_value) {
            *data = nullptr;
            *len = 0;
            return fail(WSG_ENOTFOUND, result->status == WSG_OK ? "this result holds no value (not a session get's)"
                                                                : "no value: " + result->message);
        }
        *data = result->value.c_str();
        *len = result->value.size();
        return WSG_OK;
    });
}

WSG_API size_t wsg_result_count(const wsg_result *result) { return result ? result->entries.size() : 0; }

WSG_API wsg_status wsg_result_presence(const wsg_result *result, size_t index, wsg_conn_id *conn,
                                       const char **user_id, int64_t *since_ms) {
    return guard([&] {
        if (!result) return null_arg("result");
        if (index >= result->entries.size())
            return fail(WSG_EINVAL, "presence index " + std::to_string(index) + " is out of range (the result has " +
                                        std::to_string(result->entries.size()) + " entries)");
        const wsg_result::Entry &e = result->entries[index];
        if (conn) *conn = e.conn;
        if (user_id) *user_id = e.user_id.c_str();
        if (since_ms) *since_ms = e.since_ms;
        return WSG_OK;
    });
}

// ---------------------------------------------------------------- completions

WSG_API wsg_status wsg_completion_new(wsg_completion **out) {
    return guard([&] {
        if (!out) return null_arg("out");
        *out = nullptr;
        *out = new wsg_completion();
        return WSG_OK;
    });
}

WSG_API void wsg_completion_callback(wsg_server *server, const wsg_result *result, void *user) {
    (void)server;
    if (result) return complete(static_cast<wsg_completion *>(user), *result);
    // Called by hand without a result: the waiter is woken all the same.
    wsg_result none;
    none.status = WSG_EINVAL;
    try {
        none.message = "wsg_completion_callback was called with a NULL result";
    } catch (...) {
    }
    complete(static_cast<wsg_completion *>(user), none);
}

WSG_API wsg_status wsg_completion_wait(wsg_completion *completion, int64_t timeout_ms) {
    return guard([&] { return completion ? wait_for(completion, timeout_ms) : null_arg("completion"); });
}

WSG_API const wsg_result *wsg_completion_result(const wsg_completion *completion) {
    if (!completion) return nullptr;
    std::lock_guard<std::mutex> lock(completion->mu);
    return completion->answered ? &completion->result : nullptr;
}

WSG_API void wsg_completion_free(wsg_completion *completion) { release(completion); }

// ---------------------------------------------------------------- presence

WSG_API wsg_status wsg_topic_presence(wsg_server *server, const char *topic, wsg_result_fn fn, void *user) {
    return guard([&] {
        if (!server) return null_arg("server");
        return async_call(server, fn, user, [&](AsyncReply reply) { return server->presence('t', topic, reply.fn, reply.user); });
    });
}

WSG_API wsg_status wsg_user_presence(wsg_server *server, const char *user_id, wsg_result_fn fn, void *user) {
    return guard([&] {
        if (!server) return null_arg("server");
        return async_call(server, fn, user, [&](AsyncReply reply) { return server->presence('u', user_id, reply.fn, reply.user); });
    });
}

// ---------------------------------------------------------------- session data

WSG_API wsg_status wsg_session_set(wsg_server *server, const char *key, const void *data, size_t len,
                                   int64_t ttl_ms, wsg_result_fn fn, void *user) {
    return guard([&] {
        if (!server) return null_arg("server");
        return async_call(server, fn, user, [&](AsyncReply reply) {
            return server->session(SessionOp::Kind::Set, key, data, len, ttl_ms, reply);
        });
    });
}

WSG_API wsg_status wsg_session_get(wsg_server *server, const char *key, wsg_result_fn fn, void *user) {
    return guard([&] {
        if (!server) return null_arg("server");
        if (!fn) return null_arg("fn (wsg_session_get's answer is its value)");
        return async_call(server, fn, user, [&](AsyncReply reply) {
            return server->session(SessionOp::Kind::Get, key, nullptr, 0, 0, reply);
        });
    });
}

WSG_API wsg_status wsg_session_delete(wsg_server *server, const char *key, wsg_result_fn fn, void *user) {
    return guard([&] {
        if (!server) return null_arg("server");
        return async_call(server, fn, user, [&](AsyncReply reply) {
            return server->session(SessionOp::Kind::Delete, key, nullptr, 0, 0, reply);
        });
    });
}

}  // extern "C"
