/*
 * wsgate: an embeddable WebSocket server library.
 *
 * This is the only public header and the stable C ABI (C99). Every type is
 * opaque and handled by pointer; configuration goes through setters keyed by
 * dotted option names, so new options never break old binaries.
 *
 * Conventions used by every declaration below:
 *  - Fallible calls return wsg_status (WSG_OK is 0). The thread-local detail
 *    of the last failure is wsg_last_error().
 *  - Constructors write the new handle through a first `out` parameter
 *    (NULL on failure). Every *_free accepts NULL.
 *  - "Any thread": callable from any thread, including the service thread
 *    inside callbacks. "Blocks": may wait for the service thread; never call
 *    it from a callback (it returns WSG_EBUSY there instead of deadlocking).
 *  - "Async-signal-safe": callable from a signal handler. Only one call is:
 *    wsg_server_request_stop(). No other call may be made from a handler
 *    (they may lock, allocate or set wsg_last_error()).
 *  - Strings passed to callbacks live until the callback returns.
 *  - Data passed to send calls is copied before the call returns.
 *  - No C++ exception and no abort crosses this ABI, on any input.
 */
#ifndef WSGATE_WSGATE_H
#define WSGATE_WSGATE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#  if defined(WSGATE_BUILDING)
#    define WSG_API __declspec(dllexport)
#  else
#    define WSG_API __declspec(dllimport)
#  endif
#else
#  define WSG_API __attribute__((visibility("default")))
#endif

/* Version policy. Releases are MAJOR.MINOR.PATCH; the ABI has its own
 * number, the SONAME (libwsgate.so.N), checked by wsg_version_num() against
 * WSG_VERSION_NUM. From 1.0 on, the ABI only grows within one SONAME: new
 * calls, new enum values and new options, never a changed signature. Before
 * 1.0 (SONAME 0) a minor release may change a signature; each such change is
 * listed here with its release:
 *  - 0.1.0 (unreleased): wsg_log_fn receives the server as its first
 *    argument, like every other callback. */

/** Release version of this header (added in 0.1.0). */
#define WSG_VERSION_MAJOR 0
#define WSG_VERSION_MINOR 1
#define WSG_VERSION_PATCH 0
/** MAJOR * 10000 + MINOR * 100 + PATCH: compare with wsg_version_num(). */
#define WSG_VERSION_NUM \
    (WSG_VERSION_MAJOR * 10000 + WSG_VERSION_MINOR * 100 + WSG_VERSION_PATCH)

/* ------------------------------------------------------------------ */
/* Versions and errors                                                 */
/* ------------------------------------------------------------------ */

/** Every status: XX(NAME, value, description). The single list from which
 *  the enum below, wsg_status_str() and the bindings' names come (the README
 *  table and the Python binding are checked against it by tests). Values are
 *  stable: append only, never renumber or reuse. Since 0.1.0. */
#define WSG_STATUS_MAP(XX)                                                              \
    XX(OK, 0, "success")                                                                \
    XX(EINVAL, 1, "invalid argument, unknown option or value out of range")             \
    XX(ENOTFOUND, 2, "no such connection (stale or unknown id) or item")                \
    XX(ECLOSED, 3, "the connection is closing or closed")                               \
    XX(ENOMEM, 4, "out of memory")                                                      \
    XX(ESTATE, 5, "not allowed in the object's current state")                          \
    XX(EIO, 6, "system or network error (bind, socket, thread)")                        \
    XX(ETLS, 7, "TLS setup or certificate error")                                       \
    XX(EBUSY, 8, "not allowed on the service thread (inside a callback)")               \
    XX(ELIMIT, 9, "a configured limit was reached")                                     \
    XX(EINTERNAL, 10, "broken internal invariant: please report it")                   \
    XX(ECLUSTER, 11, "the cluster is down (Redis unreachable, hung or refusing): a cross-instance call failed") \
    XX(ETIMEOUT, 12, "gave up waiting: the deadline passed before the result came")          \
    XX(EGONE, 13, "the position is no longer in the topic's history (trimmed, expired or another epoch): resync")

/** Status of every fallible call (WSG_OK, WSG_EINVAL, ...: see WSG_STATUS_MAP). */
typedef enum wsg_status {
#define WSG_STATUS_ENUM_(name, value, doc) WSG_##name = value,
    WSG_STATUS_MAP(WSG_STATUS_ENUM_)
#undef WSG_STATUS_ENUM_
    WSG_STATUS_MAX_ = 0x7fffffff /* keeps the enum int-sized; not a status */
} wsg_status;

/** Library version string, e.g. "0.1.0". Static storage. Any thread. Since 0.1.0. */
WSG_API const char *wsg_version(void);

/** Library version as WSG_VERSION_NUM, to check the header against the loaded library.
 *  Any thread. Since 0.1.0. */
WSG_API int wsg_version_num(void);

/** Short stable name of a status ("WSG_OK", "WSG_EINVAL", ...); "WSG_UNKNOWN" for
 *  values this library does not know. Static storage. Any thread. Since 0.1.0. */
WSG_API const char *wsg_status_str(wsg_status status);

/** Detail message of the last failed call on this thread: names the option,
 *  connection or system call involved and what to do. Never NULL; meaningful
 *  only right after a call returned a status other than WSG_OK. Valid until
 *  the next wsgate call on this thread. Any thread. Since 0.1.0. */
WSG_API const char *wsg_last_error(void);

/* ------------------------------------------------------------------ */
/* Configuration                                                       */
/* ------------------------------------------------------------------ */

/** A set of option values. Opaque. Not thread-safe: one thread at a time. */
typedef struct wsg_config wsg_config;

/** Create a configuration holding every option's default.
 *  @param out receives the new handle (NULL on failure); free with wsg_config_free.
 *  @return WSG_OK, WSG_EINVAL (out is NULL), WSG_ENOMEM. Any thread. Since 0.1.0. */
WSG_API wsg_status wsg_config_new(wsg_config **out);

/** Copy a configuration. @param out receives the copy. Since 0.1.0. */
WSG_API wsg_status wsg_config_copy(wsg_config **out, const wsg_config *src);

/** Free a configuration. NULL is accepted. Since 0.1.0. */
WSG_API void wsg_config_free(wsg_config *config);

/** Set an integer option (type "int"). Fails with WSG_EINVAL, and changes
 *  nothing, when the key is unknown, not an int option, or the value is out
 *  of the option's range; wsg_last_error() names the key and the range.
 *  @param key borrowed, dotted option name such as "listen.port". Since 0.1.0. */
WSG_API wsg_status wsg_config_set_int(wsg_config *config, const char *key, int64_t value);

/** Set a boolean option (type "bool"): value 0 is false, anything else true. Since 0.1.0. */
WSG_API wsg_status wsg_config_set_bool(wsg_config *config, const char *key, int value);

/** Set a string option (type "string" or "enum"; an enum takes one of the
 *  values its range lists). @param value borrowed, copied. Since 0.1.0. */
WSG_API wsg_status wsg_config_set_string(wsg_config *config, const char *key, const char *value);

/** Set any option from text "key=value" (split at the first '='; the value is
 *  parsed according to the option's type: decimal integers, bools as
 *  true/false/1/0/yes/no/on/off). Used for command lines and environment.
 *  Since 0.1.0. */
WSG_API wsg_status wsg_config_set_from_string(wsg_config *config, const char *assignment);

/** Read an int option. @param out receives the value. Since 0.1.0. */
WSG_API wsg_status wsg_config_get_int(const wsg_config *config, const char *key, int64_t *out);

/** Read a bool option as 0 or 1. Since 0.1.0. */
WSG_API wsg_status wsg_config_get_bool(const wsg_config *config, const char *key, int *out);

/** Read a string or enum option. @param out receives a pointer owned by the
 *  configuration, valid until that option is set again or the configuration
 *  is freed. Since 0.1.0. */
WSG_API wsg_status wsg_config_get_string(const wsg_config *config, const char *key,
                                         const char **out);

/* The option table: every option the library knows, for documentation,
 * command lines and bindings. Static data; any thread. */

/** Which column of the option table to read. */
typedef enum wsg_option_field {
    WSG_OPTION_NAME = 1,    /**< dotted name, e.g. "listen.port" */
    WSG_OPTION_TYPE = 2,    /**< "int", "bool", "string" or "enum" */
    WSG_OPTION_DEFAULT = 3, /**< default value as text */
    WSG_OPTION_RANGE = 4,   /**< "MIN..MAX" for int, "a|b|c" for enum, "" otherwise */
    WSG_OPTION_DOC = 5,     /**< one line of documentation */
    WSG_OPTION_MAX_ = 0x7fffffff /* keeps the enum int-sized */
} wsg_option_field;

/** Number of options in the table. Since 0.1.0. */
WSG_API size_t wsg_option_count(void);

/** Read one column of row `index` (0 .. wsg_option_count()-1).
 *  @param out receives a static string. @return WSG_OK, WSG_EINVAL. Since 0.1.0. */
WSG_API wsg_status wsg_option_describe(size_t index, wsg_option_field field, const char **out);

/** Find an option's row by name. @param index receives the row.
 *  @return WSG_OK, WSG_ENOTFOUND (unknown name), WSG_EINVAL (NULL argument). Since 0.1.0. */
WSG_API wsg_status wsg_option_find(const char *name, size_t *index);

/* ------------------------------------------------------------------ */
/* Server, connections and callbacks                                   */
/* ------------------------------------------------------------------ */

/** A WebSocket server. Opaque. */
typedef struct wsg_server wsg_server;

/** Names one connection for the life of its server: 64-bit, generational,
 *  never reused while the server lives, never 0. A stale id is harmless: calls
 *  taking it return WSG_ENOTFOUND. In a cluster (cluster.redis) the top 16
 *  bits are the node number of the instance that holds the connection, so
 *  an id is unique across the cluster and can be used on any instance as it
 *  is; 0 there means the connection opened before the instance got its node
 *  number (Redis was down at start): such an id works on its own instance only. */
typedef uint64_t wsg_conn_id;

/** Kind of a data message. */
typedef enum wsg_msg_type {
    WSG_MSG_TEXT = 1,  /**< UTF-8 text (validated on receive) */
    WSG_MSG_BINARY = 2, /**< binary */
    WSG_MSG_MAX_ = 0x7fffffff /* keeps the enum int-sized */
} wsg_msg_type;

/** Why a connection ended: XX(NAME, value, "name", description), the single
 *  list behind the enum, wsg_close_cause_str() and the README's table.
 *  Stable values: append only. */
#define WSG_CLOSE_CAUSE_MAP(XX)                                                                   \
    XX(PEER, 1, "peer", "the client sent a close frame (its code is reported)")                   \
    XX(APP, 2, "app", "the application called wsg_conn_close()")                                  \
    XX(SHUTDOWN, 3, "shutdown", "the server stopped (code 1001)")                                 \
    XX(LOST, 4, "lost", "TCP ended without a close handshake: reset, EOF (code 1006)")            \
    XX(TOO_BIG, 5, "too_big", "a message exceeded limits.max_message_bytes (code 1009)")          \
    XX(INVALID_UTF8, 6, "invalid_utf8", "a text message or close reason was not valid UTF-8 (code 1007)") \
    XX(BACKPRESSURE, 7, "backpressure",                                                           \
       "the send queue exceeded limits.max_queue_bytes under queue policy close (code limits.queue_close_code, default 1013)") \
    XX(PONG_TIMEOUT, 8, "pong_timeout",                                                           \
       "no pong (or frame) within heartbeat.pong_wait_ms: dropped, code 1001")                    \
    XX(WRITE_TIMEOUT, 9, "write_timeout",                                                         \
       "pending writes made no progress for heartbeat.write_wait_ms: dropped, code 1006")         \
    XX(IDLE_TIMEOUT, 10, "idle_timeout", "no data message for heartbeat.idle_timeout_ms: close 1001 sent") \
    XX(CLOSE_TIMEOUT, 11, "close_timeout",                                                        \
       "the peer did not answer our close frame within heartbeat.close_wait_ms; code is the one we sent") \
    XX(TOKEN_EXPIRED, 12, "token_expired",                                                        \
       "the connection's JWT passed its exp (plus auth.expiry_grace_ms): close 1008")             \
    XX(RATE_LIMIT, 13, "rate_limit",                                                              \
       "more messages than limits.messages_per_s allows (limits.rate_policy=close), or more "    \
       "frames than limits.frames_per_s: close 1008")                                             \
    XX(BAD_COMPRESSION, 14, "bad_compression",                                                    \
       "permessage-deflate misuse: data that does not inflate, RSV1 on a continuation or a control frame: close 1007") \
    XX(PROTOCOL_ERROR, 15, "protocol_error",                                                      \
       "the client broke RFC 6455 (unmasked frame, reserved bits or opcode, bad close code...): close 1002") \
    XX(DRAIN, 16, "drain",                                                                        \
       "wsg_server_drain (or wsg_server_request_stop with server.drain_ms) closed it: close 1012") 

/** Why a connection ended (WSG_CAUSE_PEER, ...: see WSG_CLOSE_CAUSE_MAP). Since 0.1.0. */
typedef enum wsg_close_cause {
#define WSG_CLOSE_CAUSE_ENUM_(name, value, text, doc) WSG_CAUSE_##name = value,
    WSG_CLOSE_CAUSE_MAP(WSG_CLOSE_CAUSE_ENUM_)
#undef WSG_CLOSE_CAUSE_ENUM_
    WSG_CAUSE_MAX_ = 0x7fffffff /* keeps the enum int-sized */
} wsg_close_cause;

/** Short stable name of a close cause (the third column of
 *  WSG_CLOSE_CAUSE_MAP: "peer", "app", ...); "unknown" otherwise. Static
 *  storage. Any thread. Since 0.1.0. */
WSG_API const char *wsg_close_cause_str(wsg_close_cause cause);

/** The close-code contract: what a client should do after each close code.
 *  XX(NAME, value, "name", description), the single list behind the enum,
 *  wsg_reconnect_str() and the README's table. Stable values: append only. */
#define WSG_RECONNECT_MAP(XX)                                                                     \
    XX(BACKOFF, 1, "backoff",                                                                     \
       "reconnect after a jittered delay that grows with each failed attempt: the server stopped, " \
       "restarts, is overloaded, or the network failed; the next attempt may succeed")           \
    XX(NO, 2, "no",                                                                               \
       "do not reconnect until something changes: the same client sending the same thing, or "   \
       "the same token, gets the same answer (get a new token, fix the client, ask the user)")   \
    XX(APP, 3, "app",                                                                             \
       "the application's protocol decides: a normal closure, or an application code (3000-4999) " \
       "without advice of its own (wsg_server_set_close_advice)")

/** What a client should do after a close code (WSG_RECONNECT_BACKOFF, ...:
 *  see WSG_RECONNECT_MAP). Since 0.1.0. */
typedef enum wsg_reconnect {
#define WSG_RECONNECT_ENUM_(name, value, text, doc) WSG_RECONNECT_##name = value,
    WSG_RECONNECT_MAP(WSG_RECONNECT_ENUM_)
#undef WSG_RECONNECT_ENUM_
    WSG_RECONNECT_MAX_ = 0x7fffffff /* keeps the enum int-sized */
} wsg_reconnect;

/** Short stable name of an advice ("backoff", "no", "app"); "unknown"
 *  otherwise. Static storage. Any thread. Since 0.1.0. */
WSG_API const char *wsg_reconnect_str(wsg_reconnect advice);

/** Every close code wsgate sends or reports, with its advice:
 *  XX(code, NAME, ADVICE, "the causes that use it", description). One code per
 *  cause (WSG_CLOSE_CAUSE_MAP); the README's close-code table and the chat
 *  demo's page come from this list. 1006 is never sent: it is what a
 *  connection that ended without a close frame reports. */
#define WSG_CLOSE_CODE_MAP(XX)                                                                    \
    XX(1000, NORMAL, APP, "app, peer", "normal closure: the application or the client ended it")   \
    XX(1001, GOING_AWAY, BACKOFF, "shutdown, pong_timeout, idle_timeout",                         \
       "going away: the server stopped, or the connection showed no life (no pong, no message)")  \
    XX(1002, PROTOCOL_ERROR, NO, "protocol_error", "the client broke RFC 6455")                   \
    XX(1003, UNSUPPORTED_DATA, NO, "app",                                                         \
       "the client sent a kind of data the application does not take (sent by applications)")   \
    XX(1006, ABNORMAL, BACKOFF, "lost, write_timeout",                                           \
       "no close frame: the connection was reset or dropped, or stopped taking data")             \
    XX(1007, INVALID_DATA, NO, "invalid_utf8, bad_compression",                                  \
       "text that is not UTF-8, or compressed data that does not inflate")                       \
    XX(1008, POLICY, NO, "rate_limit, token_expired",                                            \
       "policy: the client sent too fast (limits.messages_per_s, limits.frames_per_s) or its "    \
       "token expired; reconnect only with a new token or a slower client")                      \
    XX(1009, TOO_BIG, NO, "too_big", "a message over limits.max_message_bytes")                   \
    XX(1011, INTERNAL_ERROR, BACKOFF, "app",                                                      \
       "the server met a condition it could not handle (sent by applications)")                  \
    XX(1012, SERVICE_RESTART, BACKOFF, "drain, app",                                              \
       "the service restarts (a drain): reconnect, spread out")                                  \
    XX(1013, TRY_AGAIN_LATER, BACKOFF, "backpressure",                                           \
       "try again later: the client did not read fast enough and its send queue overflowed "     \
       "(limits.queue_close_code's default)")                                                    \
    XX(1014, BAD_GATEWAY, BACKOFF, "app", "a gateway's upstream failed (sent by applications)")

/** The advice for a close code: the list above for wsgate's codes, what
 *  wsg_server_set_close_advice() set on `server` (may be NULL) for an
 *  application code, WSG_RECONNECT_APP for other codes in 3000-4999 and
 *  WSG_RECONNECT_NO for any other code. Any thread. Since 0.1.0. */
WSG_API wsg_reconnect wsg_close_code_advice(const wsg_server *server, int code);

/** Declares the advice for the application's own close codes first..last
 *  (3000 <= first <= last <= 4999), e.g. 4000..4099 WSG_RECONNECT_NO for
 *  "this request is wrong": wsg_close_code_advice() and the `close` log
 *  event's `advice` then say so. A later declaration wins where ranges
 *  overlap. @return WSG_OK, WSG_EINVAL (NULL server, a range outside
 *  3000-4999 or reversed, an unknown advice). Any thread, any time.
 *  Since 0.1.0. */
WSG_API wsg_status wsg_server_set_close_advice(wsg_server *server, int first, int last, wsg_reconnect advice);

/** Severity of a log event (also the values of the option log.level). */
typedef enum wsg_log_level {
    WSG_LOG_DEBUG = 10,
    WSG_LOG_INFO = 20,
    WSG_LOG_WARN = 30,
    WSG_LOG_ERROR = 40,
    WSG_LOG_MAX_ = 0x7fffffff /* keeps the enum int-sized */
} wsg_log_level;

/** Releases a callback's user pointer; called exactly once when the
 *  registration ends (replaced, or the server freed). */
typedef void (*wsg_free_fn)(void *user);

/** A connection completed the upgrade. Service thread. */
typedef void (*wsg_open_fn)(wsg_server *server, wsg_conn_id conn, void *user);

/** A whole message arrived (fragments already reassembled, text already
 *  validated). `data` is valid until the callback returns. Service thread. */
typedef void (*wsg_message_fn)(wsg_server *server, wsg_conn_id conn, wsg_msg_type type,
                               const void *data, size_t len, void *user);

/** A connection ended; called exactly once for every connection that was
 *  opened. `code` is the close code (1006 when there was no close frame);
 *  `reason` is NUL-terminated, `reason_len` bytes, never NULL. The id still
 *  answers wsg_conn_get_user() and wsg_conn_info_get() during this callback
 *  and is stale afterwards. Service thread. */
typedef void (*wsg_close_fn)(wsg_server *server, wsg_conn_id conn, int code,
                             const char *reason, size_t reason_len,
                             wsg_close_cause cause, void *user);

/** One structured log event of `server`: `event` is its name (the README's
 *  log-event table lists every event with its level and fields; names may be
 *  added), `json` the whole event as one JSON object (no trailing newline),
 *  `json_len` its length. Only events at or above log.level arrive. Service
 *  thread, or the thread calling a lifecycle function (listen, start, run,
 *  stop) or wsg_server_reload_tls (whose refusal of bad files is logged as
 *  "tls_reload_failed" on the calling thread). Since 0.1.0 (the server
 *  argument: see the version policy). */
typedef void (*wsg_log_fn)(wsg_server *server, wsg_log_level level, const char *event,
                           const char *json, size_t json_len, void *user);

/** Create a server from a configuration (copied; NULL means all defaults).
 *  Nothing is bound yet, but TLS files are loaded and checked now.
 *  @param out receives the handle; free with wsg_server_free.
 *  @return WSG_OK, WSG_EINVAL (inconsistent options), WSG_ETLS (a TLS file
 *  cannot be loaded or the key does not match the certificate:
 *  wsg_last_error() names the file and the reason), WSG_ENOMEM.
 *  Any thread. Since 0.1.0. */
WSG_API wsg_status wsg_server_new(wsg_server **out, const wsg_config *config);

/** Stop (as wsg_server_stop) and free. NULL is accepted. Blocks. Must not be
 *  called from a callback (it then logs an error and does nothing). Since 0.1.0. */
WSG_API void wsg_server_free(wsg_server *server);

/** Register callbacks. Only before the server is listening (WSG_ESTATE after).
 *  `fn` may be NULL to unregister. A replaced registration's user_free runs
 *  at once. @param user_free may be NULL. Any thread. Since 0.1.0. */
WSG_API wsg_status wsg_server_on_open(wsg_server *server, wsg_open_fn fn, void *user,
                                      wsg_free_fn user_free);
WSG_API wsg_status wsg_server_on_message(wsg_server *server, wsg_message_fn fn, void *user,
                                         wsg_free_fn user_free);
WSG_API wsg_status wsg_server_on_close(wsg_server *server, wsg_close_fn fn, void *user,
                                       wsg_free_fn user_free);
/** Replace the default log sink (JSON lines on stderr). */
WSG_API wsg_status wsg_server_on_log(wsg_server *server, wsg_log_fn fn, void *user,
                                     wsg_free_fn user_free);

/** Serve a small static response at `path` from the server's own port, for
 *  example the HTML page whose script opens the WebSocket. A plain HTTP
 *  request (one that does not ask for WebSocket: no Upgrade header with the
 *  token "websocket") whose path is exactly `path` gets:
 *   - GET: 200 with `content-type: <content_type>`, `content-length`,
 *     `cache-control: no-cache`, `x-content-type-options: nosniff`,
 *     `connection: close`, then the body; HEAD: the same head, no body;
 *   - any other method: 405 with `allow: GET, HEAD`; HTTP/1.1 without
 *     exactly one Host header: 400.
 *  The connection is closed after the answer; bytes after the request
 *  (a body, a pipelined request) are ignored. The client has
 *  heartbeat.handshake_timeout_ms from connecting to send its request and
 *  take the whole answer; a slower one is cut off (log event
 *  "handshake_timeout", cause "page_not_read"). Plain requests for other
 *  paths keep their answer (426 Upgrade Required, whatever the path), and a
 *  WebSocket handshake on a page's path goes on as usual (101, or 404 when
 *  server.path does not cover it), so one path may be both. Pages are public: no Origin, authentication or rate check applies;
 *  put nothing secret in one. Each answer is logged as the debug event
 *  "page" (refusals as "reject"). Adding a page at a path that has one
 *  replaces it.
 *  @param path borrowed, copied: starts with '/', at most 1024 bytes of
 *         visible ASCII, no '?' or '#'; compared byte for byte with the
 *         request's path as sent (still percent-encoded; the query is not
 *         part of it: "/?room=a" is served by "/").
 *  @param content_type borrowed, copied: the content-type header's value,
 *         1..255 bytes of printable ASCII (e.g. "text/html; charset=utf-8").
 *  @param body borrowed, copied before return; may be NULL when len is 0.
 *  @param len body size, at most 1 MiB (1048576 bytes).
 *  @return WSG_OK, WSG_EINVAL (NULL server, path or content type, NULL body
 *  with len > 0, a bad path or content type, a body over 1 MiB:
 *  wsg_last_error() says which; nothing changes), WSG_ESTATE (the server is
 *  listening or running: add pages before wsg_server_listen, start or run,
 *  or after wsg_server_stop). Any thread. Since 0.1.0. */
WSG_API wsg_status wsg_server_add_page(wsg_server *server, const char *path,
                                       const char *content_type, const void *body, size_t len);

/** Bind the listening socket without serving yet, so the bound port is known
 *  before wsg_server_run(). Optional: start and run listen first if needed.
 *  @return WSG_OK, WSG_ESTATE (already listening or running), WSG_EIO (the
 *  address cannot be bound: wsg_last_error() says why). Blocks briefly. Since 0.1.0. */
WSG_API wsg_status wsg_server_listen(wsg_server *server);

/** Listen (if not yet) and serve on a new service thread; returns at once.
 *  @return WSG_OK, WSG_ESTATE (running), WSG_EIO. Since 0.1.0. */
WSG_API wsg_status wsg_server_start(wsg_server *server);

/** Listen (if not yet) and serve on the calling thread until
 *  wsg_server_stop() is called from another thread or
 *  wsg_server_request_stop() from anywhere (a signal handler, a callback);
 *  returns once the graceful stop is done. @return WSG_OK after a stop,
 *  WSG_ESTATE, WSG_EIO. Blocks. Since 0.1.0. */
WSG_API wsg_status wsg_server_run(wsg_server *server);

/** Stop gracefully: refuse new upgrades (503), send every client close 1001
 *  "going away" after the frames already queued for it, wait up to
 *  server.shutdown_timeout_ms for the close handshakes, then drop the rest,
 *  call on_close for each, and release the port. A stopped server can be
 *  started again. Stopping a server that is not running returns WSG_OK.
 *  Called during a drain, it ends the drain at once (1001 for those left).
 *  @return WSG_OK, WSG_EBUSY (called from a callback). Blocks. Since 0.1.0. */
WSG_API wsg_status wsg_server_stop(wsg_server *server);

/** Graceful drain for rolling restarts: the stop of wsg_server_stop()
 *  spread over `duration_ms`. At once the server is no longer ready
 *  (wsg_server_draining() is 1) and new upgrade requests get 503 with
 *  `retry-after`; the open connections are closed with 1012 "service
 *  restart" (cause WSG_CAUSE_DRAIN) in a random order at a steady pace over
 *  the duration, so their clients do not all reconnect in the same second;
 *  then the normal stop (server.shutdown_timeout_ms for the last close
 *  handshakes). Returns once the server has stopped, like wsg_server_stop.
 *  From a signal handler or a callback, use wsg_server_request_stop() with
 *  the option server.drain_ms instead. 0 is wsg_server_stop().
 *  @return WSG_OK, WSG_EINVAL (NULL server, duration outside 0..3600000),
 *  WSG_EBUSY (called from a callback). Blocks. Since 0.1.0. */
WSG_API wsg_status wsg_server_drain(wsg_server *server, int64_t duration_ms);

/** 1 from the start of a drain or a stop until the server listens again
 *  (not ready: a load balancer should send new clients elsewhere), else 0;
 *  0 for NULL. Any thread. Since 0.1.0. */
WSG_API int wsg_server_draining(const wsg_server *server);

/** Ask for the graceful stop of wsg_server_stop() without waiting for it:
 *  for signal handlers (SIGINT, SIGTERM) and callbacks. Returns at once;
 *  the service loop notices the request within heartbeat.tick_ms and stops
 *  as wsg_server_stop() does (or, with the option server.drain_ms, drains
 *  over that long as wsg_server_drain() does), so wsg_server_run() returns WSG_OK and a
 *  server started with wsg_server_start() ends its loop (then call
 *  wsg_server_stop() or wsg_server_free() to join it: they return at once
 *  when the stop is already done).
 *  When the server is not serving (new, only listening, or stopped), the
 *  request is kept and the next wsg_server_start() or wsg_server_run()
 *  stops at once: a signal that arrives just before the loop starts is not
 *  lost. A request made while a stop is under way is used up by it.
 *  `server` must stay valid while a handler may still call this: clear the
 *  handler's pointer (the call ignores NULL) before wsg_server_free().
 *  @return WSG_OK, WSG_EINVAL (server is NULL; wsg_last_error() is not set).
 *  Async-signal-safe (one lock-free atomic store: no lock, no allocation,
 *  no thread-local). Any thread, callbacks included. Since 0.1.0. */
WSG_API wsg_status wsg_server_request_stop(wsg_server *server);

/** Reload tls.cert_file and tls.key_file (same paths, new contents) without
 *  a restart: new connections get the new certificate, established ones keep
 *  theirs. The files are checked first; on failure the old pair stays.
 *  @return WSG_OK, WSG_ETLS (bad files: wsg_last_error() says which and why),
 *  WSG_ESTATE (TLS is off). Any thread. Since 0.1.0. */
WSG_API wsg_status wsg_server_reload_tls(wsg_server *server);

/** The bound TCP port (useful with listen.port=0). @return WSG_OK, WSG_ESTATE
 *  (not listening). Any thread. Since 0.1.0. */
WSG_API wsg_status wsg_server_port(wsg_server *server, int *out);

/** Number of open connections. Any thread. Since 0.1.0. */
WSG_API wsg_status wsg_server_conn_count(wsg_server *server, size_t *out);

/** The server's metrics as Prometheus text (exposition format 0.0.4, the
 *  same text the metrics listener serves at GET /metrics: see the option
 *  metrics.listen and the README's metric table), for an application that
 *  serves them from its own HTTP endpoint (content type
 *  "text/plain; version=0.0.4"). Counters start at 0 when the server is
 *  created and never go back, across stops and restarts.
 *  The text is written to `buf`, NUL-terminated, only when it fits:
 *  `*len` always receives its length without the NUL, so the call
 *  succeeded and wrote the text when *len < cap. To size the buffer, call
 *  with buf NULL and cap 0, then again with a little more than *len + 1
 *  bytes (values may grow between the two calls; about 20 KB in all).
 *  When it does not fit and cap > 0, buf receives "".
 *  @param buf caller's buffer of `cap` bytes; may be NULL when cap is 0.
 *  @return WSG_OK (also when the text did not fit: compare *len with cap),
 *  WSG_EINVAL (NULL server or len, NULL buf with cap > 0), WSG_ENOMEM.
 *  Any thread; never blocks the service thread. Since 0.1.0. */
WSG_API wsg_status wsg_server_metrics(wsg_server *server, char *buf, size_t cap, size_t *len);

/** Readiness, as the metrics listener's GET /readyz answers it: `*ready`
 *  receives 1 while the server accepts upgrades (from the return of
 *  wsg_server_start, or the start of wsg_server_run's loop, until a drain
 *  or a stop begins, as long as the loop turns), else 0 (not started, only
 *  listening, draining, stopping, stopped, or the loop stuck in a callback for more than
 *  max(5 * heartbeat.tick_ms, 1 s)). For a load balancer's probe.
 *  @return WSG_OK, WSG_EINVAL (NULL argument). Any thread. Since 0.1.0. */
WSG_API wsg_status wsg_server_ready(wsg_server *server, int *ready);

/** The bound port of the metrics listener (useful with metrics.listen port 0).
 *  @return WSG_OK, WSG_ESTATE (metrics.listen is not set, or the server is
 *  not listening), WSG_EINVAL. Any thread. Since 0.1.0. */
WSG_API wsg_status wsg_server_metrics_port(wsg_server *server, int *out);

/** Snapshot of the open connections' ids: writes up to `capacity` ids to
 *  `ids` (may be NULL when capacity is 0) and the total number open to
 *  `*count` (which may exceed capacity: call again with a larger array).
 *  Any thread. Since 0.1.0. */
WSG_API wsg_status wsg_server_conn_ids(wsg_server *server, wsg_conn_id *ids, size_t capacity,
                                       size_t *count);

/** Send one message to every open connection. The frame is built once and
 *  shared by every queue. @param data borrowed, copied before return.
 *  @return WSG_OK, WSG_EINVAL (bad type, NULL data with len > 0, or a message
 *  whose frames exceed limits.max_queue_bytes: no queue could ever hold it),
 *  WSG_ESTATE (not running). Any thread. Since 0.1.0. */
WSG_API wsg_status wsg_server_broadcast(wsg_server *server, wsg_msg_type type, const void *data,
                                        size_t len);

/** Queue one message to a connection; it is written when the socket is
 *  writable, after earlier messages. @param data borrowed, copied before return.
 *  Text is sent as given (the caller promises UTF-8). A message that would
 *  take the queue past limits.max_queue_bytes meets the connection's queue
 *  policy (WSG_QUEUE_POLICY_MAP) on the service thread: the call has
 *  returned WSG_OK by then; WSG_INFO_MESSAGES_DROPPED counts what was dropped.
 *  @return WSG_OK, WSG_ENOTFOUND (stale id), WSG_ECLOSED (closing: from the
 *  moment a close is decided, by wsg_conn_close, the peer, a timeout, a
 *  limit, backpressure or a stop, on every thread),
 *  WSG_EINVAL (bad type, NULL data with len > 0, or a message whose frames
 *  exceed limits.max_queue_bytes). Any thread. Since 0.1.0.
 *
 *  Cluster (cluster.redis): an id of a connection of another instance (its
 *  node number, in the top 16 bits, is another's) is sent there through
 *  Redis: WSG_OK then means "handed to the cluster", as whether that
 *  connection still exists is not known here (if it is gone, the message is
 *  dropped there); WSG_ECLUSTER when the cluster is down or
 *  cluster.max_pending commands wait for Redis. */
WSG_API wsg_status wsg_conn_send(wsg_server *server, wsg_conn_id conn, wsg_msg_type type,
                                 const void *data, size_t len);

/** Close a connection with `code` (1000..1003, 1007..1009, 1011..1014 or 3000..4999:
 *  the codes RFC 6455 lets an endpoint send)
 *  and a UTF-8 `reason` of at most 123 bytes (NULL means ""). The close frame
 *  goes out after the messages already queued. on_close reports WSG_CAUSE_APP.
 *  @return WSG_OK, WSG_ENOTFOUND, WSG_ECLOSED (already closing), WSG_EINVAL.
 *  Any thread. Since 0.1.0. With a cluster, a connection of another
 *  instance is closed as wsg_conn_send sends to one (WSG_OK: handed to the
 *  cluster; WSG_ECLUSTER). */
WSG_API wsg_status wsg_conn_close(wsg_server *server, wsg_conn_id conn, int code,
                                  const char *reason);

/** Attach an application pointer to a connection (the library never touches
 *  it; release it in on_close). Any thread. Since 0.1.0. */
WSG_API wsg_status wsg_conn_set_user(wsg_server *server, wsg_conn_id conn, void *ptr);

/** Read the pointer set by wsg_conn_set_user (NULL if none). Any thread. Since 0.1.0. */
WSG_API wsg_status wsg_conn_get_user(wsg_server *server, wsg_conn_id conn, void **out);

/** Override one heartbeat setting for one connection (for example a mobile
 *  client that needs longer waits). `key` is one of "heartbeat.ping_interval_ms",
 *  "heartbeat.pong_wait_ms", "heartbeat.write_wait_ms",
 *  "heartbeat.idle_timeout_ms", "heartbeat.close_wait_ms"; `value` must lie in
 *  that option's range (0 disables, where the option allows it). Deadlines
 *  already running are recomputed from the last activity. Applied on the
 *  service thread, in order with sends and closes.
 *  @return WSG_OK, WSG_EINVAL (key or value), WSG_ENOTFOUND, WSG_ECLOSED.
 *  Any thread. Since 0.1.0. */
WSG_API wsg_status wsg_conn_set_timeout(wsg_server *server, wsg_conn_id conn, const char *key,
                                        int64_t value);

/* ------------------------------------------------------------------ */
/* Delivery policies and backpressure                                  */
/* ------------------------------------------------------------------ */

/** What a connection's send queue does with a message that would take it
 *  past limits.max_queue_bytes: XX(NAME, value, "name", description), the
 *  single list behind the enum, wsg_queue_policy_str(), the choices of the
 *  option limits.queue_policy and the README's table. Control frames (pong,
 *  ping, close) are never dropped or delayed behind data by any policy. A
 *  message is only ever dropped whole: never one whose first fragment was
 *  written. Stable values: append only. Since 0.1.0. */
#define WSG_QUEUE_POLICY_MAP(XX)                                                                  \
    XX(CLOSE, 1, "close",                                                                         \
       "close the connection with limits.queue_close_code (cause backpressure): for clients that must get every message or none") \
    XX(DROP_NEWEST, 2, "drop_newest",                                                             \
       "drop the message that does not fit; what is queued goes out: for feeds where old news still counts") \
    XX(DROP_OLDEST, 3, "drop_oldest",                                                             \
       "drop the oldest queued whole messages until the new one fits: for feeds where only recent news counts") \
    XX(CONFLATE, 4, "conflate",                                                                   \
       "while the client is behind, a message replaces the queued one of the same topic in its place; messages without a topic, and any that still do not fit, are dropped as with drop_newest: for tickers and game state")

/** A send queue's policy (WSG_QUEUE_CLOSE, ...: see WSG_QUEUE_POLICY_MAP). Since 0.1.0. */
typedef enum wsg_queue_policy {
#define WSG_QUEUE_POLICY_ENUM_(name, value, text, doc) WSG_QUEUE_##name = value,
    WSG_QUEUE_POLICY_MAP(WSG_QUEUE_POLICY_ENUM_)
#undef WSG_QUEUE_POLICY_ENUM_
    WSG_QUEUE_POLICY_MAX_ = 0x7fffffff /* keeps the enum int-sized */
} wsg_queue_policy;

/** Short stable name of a queue policy (the third column of
 *  WSG_QUEUE_POLICY_MAP: "close", "drop_newest", ...; the values of the
 *  option limits.queue_policy); "unknown" otherwise. Static storage. Any
 *  thread. Since 0.1.0. */
WSG_API const char *wsg_queue_policy_str(wsg_queue_policy policy);

/** Give one connection its own queue policy instead of the server's
 *  limits.queue_policy (say, drop_newest for a dashboard, close for a
 *  client that must see everything). The queue limit, the close code and
 *  the water marks stay the server's. Applied on the service thread, in
 *  order with sends; messages already queued stay. WSG_INFO_QUEUE_POLICY
 *  reads it back.
 *  @return WSG_OK, WSG_EINVAL (not a wsg_queue_policy value), WSG_ENOTFOUND,
 *  WSG_ECLOSED (closing). Any thread. Since 0.1.0. */
WSG_API wsg_status wsg_conn_set_queue_policy(wsg_server *server, wsg_conn_id conn,
                                             wsg_queue_policy policy);

/** A connection's send queue fell to limits.queue_low_water_bytes or below
 *  after having passed limits.queue_high_water_bytes: the client caught up,
 *  and an application that paused sending to it may resume. Called once per
 *  such crossing, never for a connection that is closing. `queued_bytes` is
 *  what is still queued (data and control frames). Sending from the callback
 *  is allowed. Service thread. Since 0.1.0. */
typedef void (*wsg_drain_fn)(wsg_server *server, wsg_conn_id conn, size_t queued_bytes, void *user);

/** Register the drain callback (same rules as wsg_server_on_open: before the
 *  server listens; NULL unregisters). Pair it with WSG_INFO_QUEUED_BYTES: an
 *  application that stops sending to a connection whose queue is above the
 *  high-water mark and resumes on drain never loses a message to a queue
 *  policy. @return WSG_OK, WSG_ESTATE (listening or running), WSG_EINVAL.
 *  Any thread. Since 0.1.0. */
WSG_API wsg_status wsg_server_on_drain(wsg_server *server, wsg_drain_fn fn, void *user,
                                       wsg_free_fn user_free);

/* ------------------------------------------------------------------ */
/* Topics, users and sets of connections                               */
/* ------------------------------------------------------------------ */

/* A topic is a name a connection subscribes to; a publish reaches every
 * subscriber. Names are 1..WSG_TOPIC_MAX bytes of UTF-8 (NUL-terminated).
 * Subscriptions end when the connection ends. A publish to a topic nobody
 * follows is cheap and not an error. Costs: subscribe, unsubscribe and a
 * connection's end O(1) per subscription; a publish O(subscribers of the
 * topic), with the message framed (and compressed) once for all of them. */

/** Longest topic name, in bytes. Since 0.1.0. */
#define WSG_TOPIC_MAX 255

/** Subscribe a connection to `topic` (borrowed, copied). Subscribing twice is
 *  harmless. Applied on the service thread in order with sends.
 *  @return WSG_OK, WSG_EINVAL (NULL server or bad topic name), WSG_ENOTFOUND
 *  (stale id), WSG_ECLOSED (closing). Any thread. Since 0.1.0. */
WSG_API wsg_status wsg_conn_subscribe(wsg_server *server, wsg_conn_id conn, const char *topic);

/** End a subscription (harmless when there is none). Same rules as
 *  wsg_conn_subscribe. Any thread. Since 0.1.0. */
WSG_API wsg_status wsg_conn_unsubscribe(wsg_server *server, wsg_conn_id conn, const char *topic);

/** Send one message to every subscriber of `topic` at the time the service
 *  thread handles it (published from the service thread: at once).
 *  @param data borrowed, copied before return.
 *  @return WSG_OK (also with no subscriber), WSG_EINVAL (bad topic, type, data,
 *  or a message no send queue could hold), WSG_ESTATE (not running).
 *  Any thread. Since 0.1.0.
 *
 *  Cluster (cluster.redis): local subscribers get the message at once (no
 *  Redis round trip) and the other instances through one Redis PUBLISH (not
 *  one per subscriber); an instance listens to a topic only while it has a
 *  local subscriber. While the cluster is down the local delivery still
 *  happens, the call returns WSG_OK and the copy for the other instances is
 *  dropped and counted (wsgate_cluster_dropped_total). Pub/sub in Redis is
 *  at most once: a message published while an instance is disconnected
 *  from Redis does not reach it. */
WSG_API wsg_status wsg_server_publish(wsg_server *server, const char *topic, wsg_msg_type type,
                                      const void *data, size_t len);

/** Snapshot of a topic's subscribers: up to `capacity` ids to `ids` (may be
 *  NULL when capacity is 0) and their number to `*count` (0 for a topic
 *  nobody follows). Any thread. Since 0.1.0. */
WSG_API wsg_status wsg_topic_subscribers(wsg_server *server, const char *topic, wsg_conn_id *ids,
                                         size_t capacity, size_t *count);

/** Send one message to every open connection of an authenticated user (the
 *  user id given by the JWT or wsg_auth_accept; WSG_INFO_USER_ID).
 *  @return WSG_OK, WSG_ENOTFOUND (the user has no open connection), WSG_EINVAL,
 *  WSG_ESTATE. Any thread. Since 0.1.0.
 *
 *  Cluster (cluster.redis): the user's connections on every instance, the
 *  local ones at once and the others through one PUBLISH on the user's
 *  channel. WSG_ENOTFOUND is then never returned (whether the user has a
 *  connection elsewhere is not known here): WSG_OK means delivered here
 *  and/or handed to the cluster; WSG_ECLUSTER when the user has no local
 *  connection and the cluster is down (with a local one, the local
 *  delivery happens and the cluster's copy is counted as dropped). */
WSG_API wsg_status wsg_user_send(wsg_server *server, const char *user_id, wsg_msg_type type,
                                 const void *data, size_t len);

/** Close every open connection of a user, as wsg_conn_close (cause
 *  WSG_CAUSE_APP). @return WSG_OK, WSG_ENOTFOUND, WSG_EINVAL (code, reason).
 *  Any thread. Since 0.1.0. With a cluster: on every instance, with the
 *  statuses of wsg_user_send. */
WSG_API wsg_status wsg_user_close(wsg_server *server, const char *user_id, int code,
                                  const char *reason);

/** Snapshot of a user's open connections (their count is the user's
 *  connection count), as wsg_topic_subscribers. Any thread. Since 0.1.0. */
WSG_API wsg_status wsg_user_conn_ids(wsg_server *server, const char *user_id, wsg_conn_id *ids,
                                     size_t capacity, size_t *count);

/** Broadcast to every open connection but `except` (typically the sender;
 *  0 excludes none). Otherwise as wsg_server_broadcast. Any thread. Since 0.1.0. */
WSG_API wsg_status wsg_server_broadcast_except(wsg_server *server, wsg_conn_id except,
                                               wsg_msg_type type, const void *data, size_t len);

/** Send one message to each of `n` connections, framed once. Stale or
 *  closing ids are skipped. @param ids borrowed, copied.
 *  @return WSG_OK, WSG_EINVAL, WSG_ESTATE. Any thread. Since 0.1.0. */
WSG_API wsg_status wsg_conn_send_many(wsg_server *server, const wsg_conn_id *ids, size_t n,
                                      wsg_msg_type type, const void *data, size_t len);

/* ------------------------------------------------------------------ */
/* Asynchronous results: presence and session data                     */
/* ------------------------------------------------------------------ */

/* Presence and session calls may need Redis (cluster.redis), so they never
 * block: each takes a wsg_result_fn that runs once, on the service thread,
 * with the outcome. A call that returns anything but WSG_OK never runs its
 * callback; one that returns WSG_OK runs it exactly once, also when the
 * server stops first (status WSG_ESTATE) or Redis does not answer within
 * cluster.command_timeout_ms (WSG_ECLUSTER). The callback never runs inside
 * the call that starts it, even on the service thread (it comes on a later
 * turn of the loop); a server stopped before its loop ever ran answers on
 * the thread that stops it. To wait from your own thread,
 * pass wsg_completion_callback with a wsg_completion and wsg_completion_wait.
 * Without cluster.redis the same calls answer from this instance (presence
 * from its own connections, session data from an in-memory store with the
 * same TTL rules), still through the callback. */

/** The outcome of an asynchronous call. Opaque; borrowed by the callback
 *  (valid during the call only; copy what you keep), or owned by a
 *  wsg_completion. */
typedef struct wsg_result wsg_result;

/** Called once with the outcome (service thread; must not block). */
typedef void (*wsg_result_fn)(wsg_server *server, const wsg_result *result, void *user);

/** The call's status: WSG_OK, WSG_ENOTFOUND (wsg_session_get: no such key,
 *  or it expired), WSG_ECLUSTER (Redis down, hung or refusing; presence
 *  results then still hold this instance's own entries), WSG_ESTATE (the
 *  server stopped before the answer), WSG_EINVAL (NULL result). Since 0.1.0. */
WSG_API wsg_status wsg_result_status(const wsg_result *result);

/** A message for people when the status is not WSG_OK ("" when it is), owned
 *  by the result. Since 0.1.0. */
WSG_API const char *wsg_result_message(const wsg_result *result);

/** wsg_session_get's value: `*data` (owned by the result; NULL-terminated
 *  for convenience, the terminator not counted) and `*len`.
 *  @return WSG_OK, WSG_ENOTFOUND (no value: the key is absent or the result
 *  is not a get's), WSG_EINVAL. Since 0.1.0. */
WSG_API wsg_status wsg_result_value(const wsg_result *result, const void **data, size_t *len);

/** Number of presence entries (0 for results that are not presence). Since 0.1.0. */
WSG_API size_t wsg_result_count(const wsg_result *result);

/** Presence entry `index` (0 .. count-1): the connection id (its node is in
 *  the top 16 bits, see wsg_conn_id), the user id ("" when anonymous; owned
 *  by the result) and since when (Unix ms: the subscription for a topic, the
 *  upgrade for a user). Any out pointer may be NULL.
 *  @return WSG_OK, WSG_EINVAL (index out of range, NULL result). Since 0.1.0. */
WSG_API wsg_status wsg_result_presence(const wsg_result *result, size_t index, wsg_conn_id *conn,
                                       const char **user_id, int64_t *since_ms);

/** A result to wait for from a thread of yours. Opaque. Use each completion
 *  for one call: pass wsg_completion_callback as the call's callback and the
 *  completion as its `user`. */
typedef struct wsg_completion wsg_completion;

/** @return WSG_OK, WSG_EINVAL (NULL out), WSG_ENOMEM. Any thread. Since 0.1.0. */
WSG_API wsg_status wsg_completion_new(wsg_completion **out);

/** The callback that fills a completion (`user` is the wsg_completion). Since 0.1.0. */
WSG_API void wsg_completion_callback(wsg_server *server, const wsg_result *result, void *user);

/** Wait until the call answered, at most `timeout_ms` (< 0: no limit; 0:
 *  only look). @return WSG_OK (answered: read wsg_completion_result),
 *  WSG_ETIMEOUT (not yet), WSG_EBUSY (called on the service thread of the
 *  server the call was made on: that would wait forever), WSG_EINVAL (NULL).
 *  A completion may be waited on before its call is made (by another
 *  thread); one whose call did not return WSG_OK is never answered, so wait
 *  on it with a limit. WSG_EBUSY comes after the call was made (a set or a
 *  delete from a handler did happen): inside handlers, pass a callback of
 *  your own instead of a completion. Any thread. Since 0.1.0. */
WSG_API wsg_status wsg_completion_wait(wsg_completion *completion, int64_t timeout_ms);

/** The result once wsg_completion_wait returned WSG_OK, owned by the
 *  completion; NULL before. Since 0.1.0. */
WSG_API const wsg_result *wsg_completion_result(const wsg_completion *completion);

/** Free a completion. NULL is accepted. Freeing one whose call has not
 *  answered yet is allowed: the answer is then discarded. Any thread. Since 0.1.0. */
WSG_API void wsg_completion_free(wsg_completion *completion);

/** Presence: every connection subscribed to `topic` on every instance of the
 *  cluster (this instance's alone without cluster.redis). An instance that
 *  dies without a goodbye (kill -9, SIGSTOP, network loss) leaves no entry
 *  longer than cluster.presence_ttl_ms; a clean stop removes its entries at
 *  once. @return WSG_OK (the callback will run), WSG_EINVAL (bad topic, NULL
 *  fn), WSG_ESTATE (not running). Any thread. Since 0.1.0. */
WSG_API wsg_status wsg_topic_presence(wsg_server *server, const char *topic, wsg_result_fn fn,
                                      void *user);

/** Presence: every open connection of `user_id` on every instance (entries'
 *  user id is `user_id`). Same rules as wsg_topic_presence. Since 0.1.0. */
WSG_API wsg_status wsg_user_presence(wsg_server *server, const char *user_id, wsg_result_fn fn,
                                     void *user);

/** Longest session key, in bytes. Since 0.1.0. */
#define WSG_SESSION_KEY_MAX 255

/** Session data: store `len` bytes under `key` (1..WSG_SESSION_KEY_MAX bytes,
 *  e.g. a user id or a session token of yours) for `ttl_ms` (0:
 *  cluster.session_ttl_ms), shared by every instance (in Redis under
 *  cluster.prefix; in this instance's memory without cluster.redis). A set
 *  replaces the value and its TTL.
 *  @param data borrowed, copied before return; at most cluster.session_max_bytes.
 *  @param fn may be NULL (nobody is told the outcome).
 *  @return WSG_OK, WSG_EINVAL (bad key, ttl < 0 or above ten years
 *  (315360000000 ms), data NULL with len > 0, fn wsg_completion_callback
 *  with a NULL completion or one used by a call already),
 *  WSG_ELIMIT (value larger than cluster.session_max_bytes), WSG_ESTATE (not
 *  running). Any thread. Since 0.1.0. */
WSG_API wsg_status wsg_session_set(wsg_server *server, const char *key, const void *data,
                                   size_t len, int64_t ttl_ms, wsg_result_fn fn, void *user);

/** Session data: read the value under `key` (wsg_result_value; status
 *  WSG_ENOTFOUND when absent or expired). Same rules as wsg_session_set; fn
 *  must not be NULL. Since 0.1.0. */
WSG_API wsg_status wsg_session_get(wsg_server *server, const char *key, wsg_result_fn fn,
                                   void *user);

/** Session data: remove `key` (WSG_OK also when it was absent). Same rules as
 *  wsg_session_set; fn may be NULL. Since 0.1.0. */
WSG_API wsg_status wsg_session_delete(wsg_server *server, const char *key, wsg_result_fn fn,
                                      void *user);

/* ------------------------------------------------------------------ */
/* History and recovery                                                */
/* ------------------------------------------------------------------ */

/* Topics whose names match cluster.history_topics keep their last
 * cluster.history_size messages for cluster.history_ttl_ms (in a Redis stream
 * per topic with cluster.redis, in this instance's memory without). Every
 * message of such a topic gets a position: an epoch (the history's identity:
 * it changes when the history is lost, e.g. Redis restarted empty or the TTL
 * passed with no publish) and an offset (1, 2, 3... within the epoch). A
 * client that comes back (on any instance) is subscribed "from" the position
 * of the last message it saw and gets what it missed, then the live
 * messages, with no gap and no duplicate.
 *
 * With a cluster, a history topic's messages reach every subscriber, local
 * ones included, once Redis gave them their position (one round trip), so
 * all instances deliver them in the same order. A publish while Redis is
 * down is delivered locally at once and kept (up to cluster.history_size per
 * topic) to be written when Redis is back, which gives it its position and
 * delivers it to the other instances; an instance that missed messages while
 * cut off fetches them from the history when it reconnects and delivers them
 * to its subscribers. */

/** A message's place in a topic's history. Plain data; {0, 0} means "none"
 *  (before the first message). Since 0.1.0. */
typedef struct wsg_position {
    uint64_t epoch;
    uint64_t offset;
} wsg_position;

/** Longest text of a position ("EPOCH-OFFSET" in decimal), with its NUL. */
#define WSG_POSITION_TEXT_MAX 42

/** Write `pos` as text "EPOCH-OFFSET" into buf (cap >= WSG_POSITION_TEXT_MAX
 *  is always enough). @return WSG_OK, WSG_EINVAL (NULL, cap too small). Any
 *  thread. Since 0.1.0. */
WSG_API wsg_status wsg_position_format(const wsg_position *pos, char *buf, size_t cap);

/** Parse the text of wsg_position_format (e.g. from a client's query string).
 *  @return WSG_OK, WSG_EINVAL (not that form). Any thread. Since 0.1.0. */
WSG_API wsg_status wsg_position_parse(const char *text, wsg_position *out);

/** wsg_conn_subscribe_from's answer: the position of the last message the
 *  connection was given from the history, or the topic's current position
 *  when nothing was missed (or {0,0} when the topic has no history yet).
 *  @return WSG_OK, WSG_ENOTFOUND (not such a result), WSG_EINVAL. Since 0.1.0. */
WSG_API wsg_status wsg_result_position(const wsg_result *result, wsg_position *out);

/** Subscribe `conn` to a history topic and give it every message after `from`
 *  (NULL: nothing from the past, only the current position in the answer),
 *  then the live ones: no gap, no duplicate. Live messages published while
 *  the missed ones are fetched wait for them. The subscription itself
 *  happens at once, whatever the answer says. `from` = {0, 0} asks for the
 *  whole history: it replays everything only while offset 1 is still kept
 *  (else WSG_EGONE, as for any trimmed position).
 *  Answer (fn, may be NULL): WSG_OK (missed messages delivered; position in
 *  wsg_result_position), WSG_EGONE (`from` is older than the history keeps,
 *  ahead of it (a position this history never gave), or of another epoch:
 *  nothing was replayed; the application resyncs the client its own way),
 *  WSG_ECLUSTER (Redis down: live messages only), WSG_ENOTFOUND (the
 *  connection closed meanwhile).
 *  @return WSG_OK (the callback will run), WSG_EINVAL (bad topic, a topic
 *  without history: see cluster.history_topics, or the id of another
 *  instance's connection: subscribe on the instance that holds it),
 *  WSG_ENOTFOUND (stale id), WSG_ECLOSED, WSG_ESTATE. Any thread.
 *  Since 0.1.0. */
WSG_API wsg_status wsg_conn_subscribe_from(wsg_server *server, wsg_conn_id conn, const char *topic,
                                           const wsg_position *from, wsg_result_fn fn, void *user);

/** A history topic's message on its way to this instance's subscribers.
 *  Opaque; valid during the wsg_history_fn call only. */
typedef struct wsg_history_message wsg_history_message;

/** The message's payload as published. @return WSG_OK, WSG_EINVAL. Since 0.1.0. */
WSG_API wsg_status wsg_history_message_payload(const wsg_history_message *msg, wsg_msg_type *type,
                                               const void **data, size_t *len);

/** Replace what the subscribers get (copied; same type), e.g. the payload
 *  with its position embedded so the client knows where it is.
 *  @return WSG_OK, WSG_EINVAL (NULL data with len > 0, invalid UTF-8 for a
 *  text message, larger than a queue can hold). Since 0.1.0. */
WSG_API wsg_status wsg_history_message_set(wsg_history_message *msg, const void *data, size_t len);

/** Shapes a history message before this instance's subscribers get it, on
 *  the service thread; must not block. It runs once per live message per
 *  instance, and again for each connection a message is replayed to (a
 *  subscribe_from), so it must shape the same message the same way. It must
 *  not publish to history topics. Without it subscribers get the payload as
 *  published. */
typedef void (*wsg_history_fn)(wsg_server *server, const char *topic, const wsg_position *pos,
                               wsg_history_message *msg, void *user);

/** Register the history hook. Only before the server listens.
 *  @return WSG_OK, WSG_ESTATE. Since 0.1.0. */
WSG_API wsg_status wsg_server_on_history(wsg_server *server, wsg_history_fn fn, void *user,
                                         wsg_free_fn user_free);

/* ------------------------------------------------------------------ */
/* Authentication before the upgrade                                   */
/* ------------------------------------------------------------------ */

/** An upgrade request being authenticated. Opaque; valid only during the
 *  authenticator callback, on the service thread. */
typedef struct wsg_auth_request wsg_auth_request;

/** Fields of a wsg_auth_request. Stable values: append only. */
typedef enum wsg_auth_field {
    WSG_AUTH_PATH = 1,        /**< request path without the query */
    WSG_AUTH_QUERY = 2,       /**< the query string as sent (percent-encoded, no '?'), access_token removed */
    WSG_AUTH_PEER_ADDR = 3,   /**< peer IP address */
    WSG_AUTH_ORIGIN = 4,      /**< Origin header, "" if none */
    WSG_AUTH_TLS_SUBJECT = 5, /**< verified client certificate subject, "" if none */
    WSG_AUTH_TOKEN = 6,       /**< the token found in auth.token_sources, "" if none */
    WSG_AUTH_JWT_USER = 7,    /**< auth.mode=jwt+callback: the verified JWT's user id */
    WSG_AUTH_JWT_CLAIMS = 8,  /**< auth.mode=jwt+callback: the verified JWT's claims (JSON) */
    WSG_AUTH_FIELD_MAX_ = 0x7fffffff /* keeps the enum int-sized */
} wsg_auth_field;

/** Read a field of the request. @param out receives a string owned by the
 *  request (valid during the callback). @return WSG_OK, WSG_EINVAL.
 *  Service thread (authenticator callback only). Since 0.1.0. */
WSG_API wsg_status wsg_auth_request_get(const wsg_auth_request *req, wsg_auth_field field,
                                        const char **out);

/** Read a request header by name (case-insensitive, without the colon).
 *  Repeated headers are joined with ", ". @param out receives a string owned
 *  by the request. @return WSG_OK, WSG_ENOTFOUND (absent), WSG_EINVAL.
 *  Service thread (authenticator callback only). Since 0.1.0. */
WSG_API wsg_status wsg_auth_request_header(const wsg_auth_request *req, const char *name,
                                           const char **out);

/** Accept the request as `user_id` (copied; NULL keeps the JWT's user id in
 *  jwt+callback mode, or none). @return WSG_OK, WSG_EINVAL. Since 0.1.0. */
WSG_API wsg_status wsg_auth_accept(wsg_auth_request *req, const char *user_id);

/** Refuse the request with HTTP `status` 401 or 403 and a short `reason`
 *  (logged; the client sees only a generic body). @return WSG_OK, WSG_EINVAL.
 *  Since 0.1.0. */
WSG_API wsg_status wsg_auth_refuse(wsg_auth_request *req, int status, const char *reason);

/** Give the connection about to open its own heartbeat value (same keys and
 *  ranges as wsg_conn_set_timeout). @return WSG_OK, WSG_EINVAL. Since 0.1.0. */
WSG_API wsg_status wsg_auth_set_timeout(wsg_auth_request *req, const char *key, int64_t value);

/** The custom authenticator (auth.mode = callback or jwt+callback). Runs on
 *  the service thread for every upgrade request that passed the path,
 *  Origin and (in jwt+callback mode) JWT checks; it must decide at once with
 *  wsg_auth_accept() or wsg_auth_refuse() and must not block. Deciding
 *  nothing refuses with 401. */
typedef void (*wsg_auth_fn)(wsg_server *server, wsg_auth_request *req, void *user);

/** Register the authenticator. Only before the server listens.
 *  @return WSG_OK, WSG_ESTATE. Since 0.1.0. */
WSG_API wsg_status wsg_server_on_auth(wsg_server *server, wsg_auth_fn fn, void *user,
                                      wsg_free_fn user_free);

/** A snapshot of one connection's facts and counters. Opaque. */
typedef struct wsg_conn_info wsg_conn_info;

/** Fields of a wsg_conn_info. Stable values: append only. */
typedef enum wsg_info_key {
    WSG_INFO_PEER_ADDR = 1,       /**< string: peer IP ("127.0.0.1", "::1") */
    WSG_INFO_PEER_PORT = 2,       /**< int: peer TCP port */
    WSG_INFO_PATH = 3,            /**< string: request path without the query */
    WSG_INFO_QUERY = 4,           /**< string: the query string as sent (percent-encoded, no '?'), access_token removed; "" if none */
    WSG_INFO_ORIGIN = 5,          /**< string: Origin header, "" if none */
    WSG_INFO_SUBPROTOCOL = 6,     /**< string: subprotocol agreed (from server.subprotocols), "" if none */
    WSG_INFO_CONNECTED_AT_MS = 7, /**< int: Unix time of the upgrade, milliseconds */
    WSG_INFO_DURATION_MS = 8,     /**< int: time connected when the snapshot was taken */
    WSG_INFO_MESSAGES_IN = 9,     /**< int: whole messages received */
    WSG_INFO_BYTES_IN = 10,       /**< int: message payload bytes received */
    WSG_INFO_MESSAGES_OUT = 11,   /**< int: messages sent to this connection (queued; those a queue policy dropped included) */
    WSG_INFO_BYTES_OUT = 12,      /**< int: payload bytes of those messages */
    WSG_INFO_ID = 13,             /**< int: the connection id */
    WSG_INFO_RTT_US = 14,         /**< int: latest ping round trip in microseconds, -1 before the first pong. Since 0.1.0 */
    WSG_INFO_TLS_SUBJECT = 15,    /**< string: verified client certificate subject (RFC 2253), "" if none. Since 0.1.0 */
    WSG_INFO_USER_ID = 16,        /**< string: authenticated user id (JWT user claim or authenticator), "" if none. Since 0.1.0 */
    WSG_INFO_CLAIMS = 17,         /**< string: the verified JWT's claims as JSON text, "" without a JWT. Since 0.1.0 */
    WSG_INFO_COMPRESSION = 18,    /**< int: 1 when permessage-deflate was negotiated (compression.enabled), else 0. Since 0.1.0 */
    WSG_INFO_QUEUED_BYTES = 19,   /**< int: bytes waiting in the connection's send queue (data and control frames, not yet handed to the kernel). Since 0.1.0 */
    WSG_INFO_MESSAGES_DROPPED = 20, /**< int: messages the queue policy dropped (drop_newest, drop_oldest, conflate; counted in MESSAGES_OUT too). Since 0.1.0 */
    WSG_INFO_QUEUE_POLICY = 21,   /**< int: the connection's wsg_queue_policy (the server's, or its own from wsg_conn_set_queue_policy). Since 0.1.0 */
    WSG_INFO_MAX_ = 0x7fffffff /* keeps the enum int-sized */
} wsg_info_key;

/** Take a snapshot of a connection. @param out receives the snapshot; free
 *  with wsg_conn_info_free. @return WSG_OK, WSG_ENOTFOUND, WSG_ENOMEM.
 *  Any thread. Since 0.1.0. */
WSG_API wsg_status wsg_conn_info_get(wsg_server *server, wsg_conn_id conn, wsg_conn_info **out);

/** Free a snapshot. NULL is accepted. Since 0.1.0. */
WSG_API void wsg_conn_info_free(wsg_conn_info *info);

/** Read a string field. @param out receives a pointer owned by the snapshot.
 *  @return WSG_OK, WSG_EINVAL (not a string field). Since 0.1.0. */
WSG_API wsg_status wsg_conn_info_string(const wsg_conn_info *info, wsg_info_key key,
                                        const char **out);

/** Read an integer field. @return WSG_OK, WSG_EINVAL (not an int field). Since 0.1.0. */
WSG_API wsg_status wsg_conn_info_int(const wsg_conn_info *info, wsg_info_key key, int64_t *out);

/** Number of topics the connection was subscribed to when the snapshot was
 *  taken. Since 0.1.0. */
WSG_API wsg_status wsg_conn_info_topic_count(const wsg_conn_info *info, size_t *out);

/** Topic `index` (0 .. count-1) of the snapshot. @param out receives a string
 *  owned by the snapshot. @return WSG_OK, WSG_EINVAL (index out of range).
 *  Since 0.1.0. */
WSG_API wsg_status wsg_conn_info_topic(const wsg_conn_info *info, size_t index, const char **out);

#ifdef __cplusplus
}
#endif

#endif /* WSGATE_WSGATE_H */
