// The C ABI of history positions and the history hook. Plumbing only, like
// capi.cpp.
#include <cstring>
#include <string>

#include "base/error.h"
#include "capi_guard.h"
#include "core/history.h"
#include "core/server.h"
#include "protocol/utf8.h"
#include "wsgate/wsgate.h"

using namespace wsgate;

extern "C" {

WSG_API wsg_status wsg_position_format(const wsg_position *pos, char *buf, size_t cap) {
    return guard([&] {
        if (!pos) return null_arg("pos");
        if (!buf) return null_arg("buf");
        const std::string text = format_position(*pos);
        if (cap < text.size() + 1)
            return fail(WSG_EINVAL, "buffer of " + std::to_string(cap) + " bytes is too small for position " + text +
                                        " (WSG_POSITION_TEXT_MAX is always enough)");
        std::memcpy(buf, text.c_str(), text.size() + 1);
        return WSG_OK;
    });
}

WSG_API wsg_status wsg_position_parse(const char *text, wsg_position *out) {
    return guard([&] {
        if (!text) return null_arg("text");
        if (!out) return null_arg("out");
        if (!parse_position(text, out))
            return fail(WSG_EINVAL, std::string("'") + std::string(text).substr(0, 64) +
                                        "' is no position: expected EPOCH-OFFSET in decimal (e.g. 1234-56, or 0-0)");
        return WSG_OK;
    });
}

WSG_API wsg_status wsg_history_message_payload(const wsg_history_message *msg, wsg_msg_type *type,
                                               const void **data, size_t *len) {
    return guard([&] {
        if (!msg) return null_arg("msg");
        if (type) *type = msg->type;
        if (data) *data = msg->payload.data();
        if (len) *len = msg->payload.size();
        return WSG_OK;
    });
}

WSG_API wsg_status wsg_history_message_set(wsg_history_message *msg, const void *data, size_t len) {
    return guard([&] {
        if (!msg) return null_arg("msg");
        if (!data && len) return fail(WSG_EINVAL, "data is NULL but len > 0");
        if (len > msg->max_bytes)
            return fail(WSG_EINVAL, "a message of " + std::to_string(len) +
                                        " bytes exceeds limits.max_queue_bytes (" + std::to_string(msg->max_bytes) +
                                        "): no send queue could hold it");
        if (msg->type == WSG_MSG_TEXT) {
            Utf8Validator v;
            if (!(v.feed(static_cast<const uint8_t *>(data), len) && v.complete()))
                return fail(WSG_EINVAL, "a text message must be valid UTF-8");
        }
        msg->replacement.assign(static_cast<const char *>(data ? data : ""), len);
        msg->replaced = true;
        return WSG_OK;
    });
}

WSG_API wsg_status wsg_server_on_history(wsg_server *server, wsg_history_fn fn, void *user, wsg_free_fn user_free) {
    return guard([&] {
        if (!server) return null_arg("server");
        if (!server->is_idle())
            return fail(WSG_ESTATE, "callbacks can only be registered before the server listens");
        server->app.on_history.set(fn, user, user_free);
        return WSG_OK;
    });
}

}  // extern "C"
