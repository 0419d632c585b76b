// The C ABI: argument checks, exception barrier and handle plumbing. Logic
// lives in the modules; every entry runs its body inside guard().
#include <cstring>
#include <new>
#include <string>

#include "base/error.h"
#include "capi_guard.h"
#include "config/options.h"
#include "core/async_result.h"
#include "core/server.h"
#include "wsgate/wsgate.h"

using namespace wsgate;

extern "C" {

WSG_API const char *wsg_version(void) {
#define WSG_STR2(x) #x
#define WSG_STR(x) WSG_STR2(x)
    return WSG_STR(WSG_VERSION_MAJOR) "." WSG_STR(WSG_VERSION_MINOR) "." WSG_STR(WSG_VERSION_PATCH);
}

WSG_API int wsg_version_num(void) { return WSG_VERSION_NUM; }

WSG_API const char *wsg_status_str(wsg_status status) {
    switch (status) {
#define WSG_STATUS_NAME_(name, value, doc) \
    case WSG_##name: return "WSG_" #name;
        WSG_STATUS_MAP(WSG_STATUS_NAME_)
#undef WSG_STATUS_NAME_
    case WSG_STATUS_MAX_: break;
    }
    return "WSG_UNKNOWN";
}

WSG_API const char *wsg_last_error(void) { return last_error(); }

WSG_API const char *wsg_close_cause_str(wsg_close_cause cause) {
    switch (cause) {
#define WSG_CAUSE_NAME_(name, value, text, doc) \
    case WSG_CAUSE_##name: return text;
        WSG_CLOSE_CAUSE_MAP(WSG_CAUSE_NAME_)
#undef WSG_CAUSE_NAME_
    case WSG_CAUSE_MAX_: break;
    }
    return "unknown";
}

WSG_API const char *wsg_reconnect_str(wsg_reconnect advice) {
    switch (advice) {
#define WSG_RECONNECT_NAME_(name, value, text, doc) \
    case WSG_RECONNECT_##name: return text;
        WSG_RECONNECT_MAP(WSG_RECONNECT_NAME_)
#undef WSG_RECONNECT_NAME_
    case WSG_RECONNECT_MAX_: break;
    }
    return "unknown";
}

WSG_API wsg_reconnect wsg_close_code_advice(const wsg_server *server, int code) {
    if (server) return server->close_advice().of(code);
    static const wsgate::CloseAdvice none;
    return none.of(code);
}

WSG_API wsg_status wsg_server_set_close_advice(wsg_server *server, int first, int last, wsg_reconnect advice) {
    return guard([&] { return server ? server->close_advice().set(first, last, advice) : null_arg("server"); });
}

WSG_API const char *wsg_queue_policy_str(wsg_queue_policy policy) {
    switch (policy) {
#define WSG_QUEUE_POLICY_NAME_(name, value, text, doc) \
    case WSG_QUEUE_##name: return text;
        WSG_QUEUE_POLICY_MAP(WSG_QUEUE_POLICY_NAME_)
#undef WSG_QUEUE_POLICY_NAME_
    case WSG_QUEUE_POLICY_MAX_: break;
    }
    return "unknown";
}

// ---------------------------------------------------------------- config

WSG_API wsg_status wsg_config_new(wsg_config **out) {
    return guard([&] {
        if (!out) return null_arg("out");
        *out = nullptr;
        *out = new wsg_config();
        return WSG_OK;
    });
}

WSG_API wsg_status wsg_config_copy(wsg_config **out, const wsg_config *src) {
    return guard([&] {
        if (!out) return null_arg("out");
        *out = nullptr;
        if (!src) return null_arg("src");
        *out = new wsg_config(*src);
        return WSG_OK;
    });
}

WSG_API void wsg_config_free(wsg_config *config) { delete config; }

WSG_API wsg_status wsg_config_set_int(wsg_config *config, const char *key, int64_t value) {
    return guard([&] { return config ? config->set_int(key, value) : null_arg("config"); });
}

WSG_API wsg_status wsg_config_set_bool(wsg_config *config, const char *key, int value) {
    return guard([&] { return config ? config->set_bool(key, value != 0) : null_arg("config"); });
}

WSG_API wsg_status wsg_config_set_string(wsg_config *config, const char *key, const char *value) {
    return guard([&] { return config ? config->set_string(key, value) : null_arg("config"); });
}

WSG_API wsg_status wsg_config_set_from_string(wsg_config *config, const char *assignment) {
    return guard([&] { return config ? config->set_from_string(assignment) : null_arg("config"); });
}

WSG_API wsg_status wsg_config_get_int(const wsg_config *config, const char *key, int64_t *out) {
    return guard([&] { return config ? config->get_int(key, out) : null_arg("config"); });
}

WSG_API wsg_status wsg_config_get_bool(const wsg_config *config, const char *key, int *out) {
    return guard([&] { return config ? config->get_bool(key, out) : null_arg("config"); });
}

WSG_API wsg_status wsg_config_get_string(const wsg_config *config, const char *key,
                                         const char **out) {
    return guard([&] { return config ? config->get_string(key, out) : null_arg("config"); });
}

WSG_API size_t wsg_option_count(void) { return option_table().size(); }

WSG_API wsg_status wsg_option_describe(size_t index, wsg_option_field field, const char **out) {
    return guard([&] {
        if (!out) return null_arg("out");
        const auto &t = option_table();
        if (index >= t.size())
            return fail(WSG_EINVAL, "option index " + std::to_string(index) + " is out of range 0.." +
                                        std::to_string(t.size() - 1));
        const OptionDef &d = t[index];
        switch (field) {
        case WSG_OPTION_NAME: *out = d.name; return WSG_OK;
        case WSG_OPTION_TYPE: *out = option_type_name(d.type); return WSG_OK;
        case WSG_OPTION_DEFAULT: *out = d.default_text; return WSG_OK;
        case WSG_OPTION_RANGE: *out = option_range_text(index); return WSG_OK;
        case WSG_OPTION_DOC: *out = d.doc; return WSG_OK;
        case WSG_OPTION_MAX_: break;
        }
        return fail(WSG_EINVAL, "unknown option field " + std::to_string(static_cast<int>(field)));
    });
}

WSG_API wsg_status wsg_option_find(const char *name, size_t *index) {
    return guard([&] {
        if (!name) return null_arg("name");
        if (!index) return null_arg("index");
        int i = find_option(name);
        if (i < 0) return fail(WSG_ENOTFOUND, unknown_option_message(name));
        *index = static_cast<size_t>(i);
        return WSG_OK;
    });
}

// ---------------------------------------------------------------- server

WSG_API wsg_status wsg_server_new(wsg_server **out, const wsg_config *config) {
    return guard([&] {
        if (!out) return null_arg("out");
        *out = nullptr;
        wsg_config defaults;
        const wsg_config &cfg = config ? *config : defaults;
        Settings settings(cfg);
        std::string why = settings.check();
        if (!why.empty()) return fail(WSG_EINVAL, why);
        why = settings.check_tls();
        if (!why.empty()) return fail(WSG_ETLS, why);
        *out = new wsg_server(std::move(settings));
        return WSG_OK;
    });
}

WSG_API void wsg_server_free(wsg_server *server) {
    if (!server) return;
    if (server->on_service_thread()) {
        LogFields f;
        f["where"] = "wsg_server_free";
        f["message"] = "called from a callback on the service thread: ignored (the server leaks)";
        server->log.emit(LogEvent::error, f);
        return;
    }
    try {
        delete server;
    } catch (...) {
    }
}

}  // extern "C"
namespace {
template <class Fn>
wsg_status set_callback(wsg_server *server, Callback<Fn> AppCallbacks::*slot, Fn fn, void *user,
                        wsg_free_fn user_free) {
    if (!server) return null_arg("server");
    if (!server->is_idle())
        return fail(WSG_ESTATE, "callbacks can only be registered before the server listens");
    (server->app.*slot).set(fn, user, user_free);
    return WSG_OK;
}
}  // namespace
extern "C" {

WSG_API wsg_status wsg_server_on_open(wsg_server *server, wsg_open_fn fn, void *user,
                                      wsg_free_fn user_free) {
    return guard([&] { return set_callback(server, &AppCallbacks::on_open, fn, user, user_free); });
}

WSG_API wsg_status wsg_server_on_message(wsg_server *server, wsg_message_fn fn, void *user,
                                         wsg_free_fn user_free) {
    return guard([&] { return set_callback(server, &AppCallbacks::on_message, fn, user, user_free); });
}

WSG_API wsg_status wsg_server_on_close(wsg_server *server, wsg_close_fn fn, void *user,
                                       wsg_free_fn user_free) {
    return guard([&] { return set_callback(server, &AppCallbacks::on_close, fn, user, user_free); });
}

WSG_API wsg_status wsg_server_on_log(wsg_server *server, wsg_log_fn fn, void *user,
                                     wsg_free_fn user_free) {
    return guard([&] {
        wsg_status st = set_callback(server, &AppCallbacks::on_log, fn, user, user_free);
        if (st == WSG_OK) server->log.set_sink(fn, user);
        return st;
    });
}

WSG_API wsg_status wsg_server_on_drain(wsg_server *server, wsg_drain_fn fn, void *user,
                                       wsg_free_fn user_free) {
    return guard([&] { return set_callback(server, &AppCallbacks::on_drain, fn, user, user_free); });
}

WSG_API wsg_status wsg_server_on_auth(wsg_server *server, wsg_auth_fn fn, void *user,
                                      wsg_free_fn user_free) {
    return guard([&] { return set_callback(server, &AppCallbacks::on_auth, fn, user, user_free); });
}

WSG_API wsg_status wsg_auth_request_get(const wsg_auth_request *req, wsg_auth_field field,
                                        const char **out) {
    return guard([&] {
        if (!req) return null_arg("req");
        if (!out) return null_arg("out");
        if (field < WSG_AUTH_PATH || field > WSG_AUTH_JWT_CLAIMS)
            return fail(WSG_EINVAL, "unknown auth request field " + std::to_string(static_cast<int>(field)));
        *out = req->fields[field].c_str();
        return WSG_OK;
    });
}

WSG_API wsg_status wsg_auth_request_header(const wsg_auth_request *req, const char *name,
                                           const char **out) {
    return guard([&] {
        if (!req) return null_arg("req");
        if (!name || !*name) return null_arg("name");
        if (!out) return null_arg("out");
        const std::string *v = req->header(name);
        if (!v) return fail(WSG_ENOTFOUND, std::string("no '") + name + "' header in the request");
        *out = v->c_str();
        return WSG_OK;
    });
}

WSG_API wsg_status wsg_auth_accept(wsg_auth_request *req, const char *user_id) {
    return guard([&] {
        if (!req) return null_arg("req");
        req->verdict = wsg_auth_request::Verdict::Accept;
        if (user_id) req->outcome.user_id = user_id;
        return WSG_OK;
    });
}

WSG_API wsg_status wsg_auth_refuse(wsg_auth_request *req, int status, const char *reason) {
    return guard([&] {
        if (!req) return null_arg("req");
        if (status != 401 && status != 403)
            return fail(WSG_EINVAL, "refusal status must be 401 or 403, not " + std::to_string(status));
        req->verdict = wsg_auth_request::Verdict::Refuse;
        req->status = status;
        req->reason = reason ? reason : "";
        if (req->reason.size() > 200) req->reason.resize(200);
        return WSG_OK;
    });
}

WSG_API wsg_status wsg_auth_set_timeout(wsg_auth_request *req, const char *key, int64_t value) {
    return guard([&] {
        if (!req) return null_arg("req");
        wsg_status st = check_conn_timeout(key, value);
        if (st != WSG_OK) return st;
        req->outcome.timeouts.emplace_back(key, value);
        return WSG_OK;
    });
}

WSG_API wsg_status wsg_server_add_page(wsg_server *server, const char *path, const char *content_type,
                                       const void *body, size_t len) {
    return guard([&] { return server ? server->add_page(path, content_type, body, len) : null_arg("server"); });
}

WSG_API wsg_status wsg_server_listen(wsg_server *server) {
    return guard([&] { return server ? server->listen() : null_arg("server"); });
}

WSG_API wsg_status wsg_server_start(wsg_server *server) {
    return guard([&] { return server ? server->start() : null_arg("server"); });
}

WSG_API wsg_status wsg_server_run(wsg_server *server) {
    return guard([&] {
        if (!server) return null_arg("server");
        if (server->on_service_thread())
            return fail(WSG_EBUSY, "wsg_server_run cannot be called from a callback");
        return server->run();
    });
}

WSG_API wsg_status wsg_server_stop(wsg_server *server) {
    return guard([&] { return server ? server->stop() : null_arg("server"); });
}

WSG_API wsg_status wsg_server_drain(wsg_server *server, int64_t duration_ms) {
    return guard([&] { return server ? server->drain(duration_ms) : null_arg("server"); });
}

WSG_API int wsg_server_draining(const wsg_server *server) { return server && server->draining() ? 1 : 0; }

// Outside guard(): a signal handler may call it, so it touches no
// thread-local (wsg_last_error's string), takes no lock and allocates nothing.
WSG_API wsg_status wsg_server_request_stop(wsg_server *server) {
    if (!server) return WSG_EINVAL;
    server->request_stop();
    return WSG_OK;
}

WSG_API wsg_status wsg_server_port(wsg_server *server, int *out) {
    return guard([&] {
        if (!server) return null_arg("server");
        if (!out) return null_arg("out");
        return server->port(out);
    });
}

WSG_API wsg_status wsg_server_conn_count(wsg_server *server, size_t *out) {
    return guard([&] {
        if (!server) return null_arg("server");
        if (!out) return null_arg("out");
        *out = server->conn_count();
        return WSG_OK;
    });
}

WSG_API wsg_status wsg_server_metrics(wsg_server *server, char *buf, size_t cap, size_t *len) {
    return guard([&] {
        if (!server) return null_arg("server");
        if (!len) return null_arg("len");
        if (!buf && cap) return null_arg("buf");
        const std::string text = server->metrics_text();
        *len = text.size();
        if (text.size() < cap)
            std::memcpy(buf, text.c_str(), text.size() + 1);
        else if (cap)
            buf[0] = '\0';
        return WSG_OK;
    });
}

WSG_API wsg_status wsg_server_ready(wsg_server *server, int *ready) {
    return guard([&] {
        if (!server) return null_arg("server");
        if (!ready) return null_arg("ready");
        *ready = server->ready() ? 1 : 0;
        return WSG_OK;
    });
}

WSG_API wsg_status wsg_server_metrics_port(wsg_server *server, int *out) {
    return guard([&] {
        if (!server) return null_arg("server");
        if (!out) return null_arg("out");
        return server->metrics_port(out);
    });
}

WSG_API wsg_status wsg_server_conn_ids(wsg_server *server, wsg_conn_id *ids, size_t capacity,
                                       size_t *count) {
    return guard([&] {
        if (!server) return null_arg("server");
        if (!count) return null_arg("count");
        if (!ids && capacity) return null_arg("ids");
        *count = server->conn_ids(ids, capacity);
        return WSG_OK;
    });
}

WSG_API wsg_status wsg_server_broadcast(wsg_server *server, wsg_msg_type type, const void *data,
                                        size_t len) {
    return guard([&] { return server ? server->broadcast(type, data, len) : null_arg("server"); });
}

WSG_API wsg_status wsg_conn_send(wsg_server *server, wsg_conn_id conn, wsg_msg_type type,
                                 const void *data, size_t len) {
    return guard([&] { return server ? server->send(conn, type, data, len) : null_arg("server"); });
}

WSG_API wsg_status wsg_conn_set_timeout(wsg_server *server, wsg_conn_id conn, const char *key,
                                        int64_t value) {
    return guard([&] { return server ? server->set_timeout(conn, key, value) : null_arg("server"); });
}

WSG_API wsg_status wsg_conn_set_queue_policy(wsg_server *server, wsg_conn_id conn,
                                             wsg_queue_policy policy) {
    return guard([&] { return server ? server->set_queue_policy(conn, policy) : null_arg("server"); });
}

WSG_API wsg_status wsg_server_reload_tls(wsg_server *server) {
    return guard([&] { return server ? server->reload_tls() : null_arg("server"); });
}

WSG_API wsg_status wsg_conn_close(wsg_server *server, wsg_conn_id conn, int code,
                                  const char *reason) {
    return guard([&] { return server ? server->close(conn, code, reason) : null_arg("server"); });
}

WSG_API wsg_status wsg_conn_subscribe(wsg_server *server, wsg_conn_id conn, const char *topic) {
    return guard([&] { return server ? server->subscribe(conn, topic, true) : null_arg("server"); });
}

WSG_API wsg_status wsg_conn_unsubscribe(wsg_server *server, wsg_conn_id conn, const char *topic) {
    return guard([&] { return server ? server->subscribe(conn, topic, false) : null_arg("server"); });
}

WSG_API wsg_status wsg_server_publish(wsg_server *server, const char *topic, wsg_msg_type type,
                                      const void *data, size_t len) {
    return guard([&] { return server ? server->publish(topic, type, data, len) : null_arg("server"); });
}

WSG_API wsg_status wsg_topic_subscribers(wsg_server *server, const char *topic, wsg_conn_id *ids,
                                         size_t capacity, size_t *count) {
    return guard([&] {
        return server ? server->topic_subscribers(topic, ids, capacity, count) : null_arg("server");
    });
}

WSG_API wsg_status wsg_user_send(wsg_server *server, const char *user_id, wsg_msg_type type,
                                 const void *data, size_t len) {
    return guard([&] { return server ? server->user_send(user_id, type, data, len) : null_arg("server"); });
}

WSG_API wsg_status wsg_user_close(wsg_server *server, const char *user_id, int code, const char *reason) {
    return guard([&] { return server ? server->user_close(user_id, code, reason) : null_arg("server"); });
}

WSG_API wsg_status wsg_user_conn_ids(wsg_server *server, const char *user_id, wsg_conn_id *ids,
                                     size_t capacity, size_t *count) {
    return guard([&] {
        return server ? server->user_conn_ids(user_id, ids, capacity, count) : null_arg("server");
    });
}

WSG_API wsg_status wsg_server_broadcast_except(wsg_server *server, wsg_conn_id except, wsg_msg_type type,
                                               const void *data, size_t len) {
    return guard([&] { return server ? server->broadcast(type, data, len, except) : null_arg("server"); });
}

WSG_API wsg_status wsg_conn_send_many(wsg_server *server, const wsg_conn_id *ids, size_t n,
                                      wsg_msg_type type, const void *data, size_t len) {
    return guard([&] { return server ? server->send_many(ids, n, type, data, len) : null_arg("server"); });
}

WSG_API wsg_status wsg_conn_set_user(wsg_server *server, wsg_conn_id conn, void *ptr) {
    return guard([&] { return server ? server->set_user(conn, ptr) : null_arg("server"); });
}

WSG_API wsg_status wsg_conn_get_user(wsg_server *server, wsg_conn_id conn, void **out) {
    return guard([&] {
        if (!server) return null_arg("server");
        if (!out) return null_arg("out");
        return server->get_user(conn, out);
    });
}

WSG_API wsg_status wsg_conn_info_get(wsg_server *server, wsg_conn_id conn, wsg_conn_info **out) {
    return guard([&] {
        if (!out) return null_arg("out");
        *out = nullptr;
        if (!server) return null_arg("server");
        auto info = std::make_unique<wsg_conn_info>();
        wsg_status st = server->conn_info(conn, info.get());
        if (st == WSG_OK) *out = info.release();
        return st;
    });
}

WSG_API void wsg_conn_info_free(wsg_conn_info *info) { delete info; }

WSG_API wsg_status wsg_conn_info_topic_count(const wsg_conn_info *info, size_t *out) {
    return guard([&] {
        if (!info) return null_arg("info");
        if (!out) return null_arg("out");
        *out = info->topics.size();
        return WSG_OK;
    });
}

WSG_API wsg_status wsg_conn_info_topic(const wsg_conn_info *info, size_t index, const char **out) {
    return guard([&] {
        if (!info) return null_arg("info");
        if (!out) return null_arg("out");
        if (index >= info->topics.size())
            return fail(WSG_EINVAL, "topic index " + std::to_string(index) + " is out of range (the snapshot has " +
                                        std::to_string(info->topics.size()) + ")");
        *out = info->topics[index].c_str();
        return WSG_OK;
    });
}

WSG_API wsg_status wsg_conn_info_string(const wsg_conn_info *info, wsg_info_key key,
                                        const char **out) {
    return guard([&] {
        if (!info) return null_arg("info");
        if (!out) return null_arg("out");
        switch (key) {
        case WSG_INFO_PEER_ADDR: *out = info->peer_addr.c_str(); return WSG_OK;
        case WSG_INFO_PATH: *out = info->path.c_str(); return WSG_OK;
        case WSG_INFO_QUERY: *out = info->query.c_str(); return WSG_OK;
        case WSG_INFO_ORIGIN: *out = info->origin.c_str(); return WSG_OK;
        case WSG_INFO_SUBPROTOCOL: *out = info->subprotocol.c_str(); return WSG_OK;
        case WSG_INFO_TLS_SUBJECT: *out = info->tls_subject.c_str(); return WSG_OK;
        case WSG_INFO_USER_ID: *out = info->user_id.c_str(); return WSG_OK;
        case WSG_INFO_CLAIMS: *out = info->claims.c_str(); return WSG_OK;
        default: break;
        }
        return fail(WSG_EINVAL, "info key " + std::to_string(static_cast<int>(key)) +
                                    " is not a string field");
    });
}

WSG_API wsg_status wsg_conn_info_int(const wsg_conn_info *info, wsg_info_key key, int64_t *out) {
    return guard([&] {
        if (!info) return null_arg("info");
        if (!out) return null_arg("out");
        switch (key) {
        case WSG_INFO_PEER_PORT: *out = info->peer_port; return WSG_OK;
        case WSG_INFO_CONNECTED_AT_MS: *out = info->connected_at_ms; return WSG_OK;
        case WSG_INFO_DURATION_MS: *out = info->duration_ms; return WSG_OK;
        case WSG_INFO_MESSAGES_IN: *out = info->msgs_in; return WSG_OK;
        case WSG_INFO_BYTES_IN: *out = info->bytes_in; return WSG_OK;
        case WSG_INFO_MESSAGES_OUT: *out = info->msgs_out; return WSG_OK;
        case WSG_INFO_BYTES_OUT: *out = info->bytes_out; return WSG_OK;
        case WSG_INFO_ID: *out = info->id; return WSG_OK;
        case WSG_INFO_RTT_US: *out = info->rtt_us; return WSG_OK;
        case WSG_INFO_COMPRESSION: *out = info->compression; return WSG_OK;
        case WSG_INFO_QUEUED_BYTES: *out = info->queued_bytes; return WSG_OK;
        case WSG_INFO_MESSAGES_DROPPED: *out = info->msgs_dropped; return WSG_OK;
        case WSG_INFO_QUEUE_POLICY: *out = info->queue_policy; return WSG_OK;
        default: break;
        }
        return fail(WSG_EINVAL, "info key " + std::to_string(static_cast<int>(key)) +
                                    " is not an integer field");
    });
}

}  // extern "C"
