// The outcome of an asynchronous call (presence, session data): the ABI type
// wsg_result, and who is told. A call that the C API accepted (WSG_OK) is
// answered exactly once, on the service thread: with Redis' answer, with
// WSG_ECLUSTER when Redis fails or times out, or with WSG_ESTATE when the
// server stops first. Nothing else about the caller is kept.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "wsgate/wsgate.h"

struct wsg_result {
    struct Entry {
        wsg_conn_id conn = 0;
        std::string user_id;
        int64_t since_ms = 0;  // Unix ms
    };
    wsg_status status = WSG_OK;
    std::string message;  // "" when OK
    bool has_value = false;
    std::string value;  // wsg_session_get's, when has_value
    std::vector<Entry> entries;  // presence
    bool has_position = false;   // wsg_conn_subscribe_from's
    wsg_position position{0, 0};
};

namespace wsgate {

// Who is told the outcome: the C callback and its user pointer (fn may be
// NULL for calls that allow it).
struct AsyncReply {
    wsg_result_fn fn = nullptr;
    void *user = nullptr;
    // Service thread.
    void operator()(wsg_server *server, const wsg_result &r) const {
        if (fn) fn(server, &r, user);
    }
};

}  // namespace wsgate
