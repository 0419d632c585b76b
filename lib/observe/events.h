// Every structured log event wsgate emits: one list, from which the names
// and levels come, and the README's log-event table (tests/readme checks it).
//   X(name, level, fields)
// `level` is the event's usual severity (stop is warn when connections had
// to be dropped); `fields` is the README's description of what it carries.
#pragma once

#include "wsgate/wsgate.h"

#define WSGATE_LOG_EVENTS(X)                                                                          \
    X(listen, INFO,                                                                                   \
      "host, port, path, fd_limit (the open-file soft limit, raised at start as far as "              \
      "`limits.max_connections` needs and the hard limit allows), metrics_host and metrics_port "    \
      "(with `metrics.listen`)")                                                                      \
    X(fd_limit, WARN,                                                                                 \
      "soft, hard, needed, max_connections, message (the open-file limit cannot hold "                \
      "`limits.max_connections`: raise the hard limit, e.g. `ulimit -Hn` or systemd `LimitNOFILE=`)") \
    X(accept, DEBUG, "peer, peer_port (TCP accepted, before the upgrade)")                            \
    X(accept_refused, WARN,                                                                           \
      "peer, limit, refused, duration_ms, ended (TCP connections closed at accept, before any "       \
      "request is read: over `limits.max_connections_per_ip` + 1 from one address, or over "          \
      "`limits.max_connections` + 64 in all, counting those still in their handshake; logged when "  \
      "it starts, every 60 s while it lasts, and at info with ended once 2 s pass without one)")     \
    X(accept_failed, WARN,                                                                            \
      "errno, message, failures, closed, duration_ms, ended (accept() failed, e.g. out of file "     \
      "descriptors: waiting connections are accepted and closed with a reserve descriptor, counted " \
      "in closed; logged like accept_refused, never once per failure)")                               \
    X(open, INFO,                                                                                     \
      "conn, peer, peer_port, path, origin, subprotocol, tls_subject, user, compression "            \
      "(`permessage-deflate` when negotiated)")                                                       \
    X(reject, WARN,                                                                                   \
      "peer, peer_port, path, status, reason (the HTTP answer to a refused upgrade, or to a request "   \
      "for a static page with another method than GET or HEAD)")                                       \
    X(page, DEBUG, "peer, peer_port, method, path, status, bytes (a static page served: `wsg_server_add_page`)") \
    X(close, INFO,                                                                                    \
      "conn, peer, peer_port, code (the close code we sent, or echoed; 1006 when none was "          \
      "exchanged), peer_code (the code in the peer's close frame, also when we refused it with 1002 " \
      "or 1007; 1005 for an empty one; absent when the peer sent none or a 1-byte payload), cause, "  \
      "advice (what the client should do after code: the close-code contract), reason, duration_ms, msgs/bytes in/out, msgs_dropped (when a queue policy dropped some)")     \
    X(too_big, WARN, "conn, limit (an inbound message over `limits.max_message_bytes`; close 1009)") \
    X(backpressure, WARN,                                                                             \
      "conn, queued_bytes, limit (the send queue would pass `limits.max_queue_bytes` under "         \
      "`limits.queue_policy=close`; close `limits.queue_close_code`); with cap `total` and "          \
      "total_queued_bytes: the message would take all queues past `limits.max_total_queue_bytes`")   \
    X(queue_overflow, WARN,                                                                           \
      "conn, policy, queued_bytes, limit (a full send queue started dropping messages: "              \
      "drop_newest, drop_oldest or conflate; once per episode, never per message); with cap "        \
      "`total`: all queues reached `limits.max_total_queue_bytes` (conn and policy of the first "     \
      "connection charged, total_queued_bytes; one episode for the server, reminded every 60 s with " \
      "dropped and closed so far)")                                                                   \
    X(queue_recovered, INFO,                                                                          \
      "conn, policy, dropped, duration_ms, queued_bytes (the episode ended: the queue is back at "   \
      "`limits.queue_low_water_bytes`; dropped counts its messages); with cap `total`: dropped, "     \
      "closed, duration_ms, total_queued_bytes, ended (2 s without a refusal by the total cap)")      \
    X(rate_limited, WARN,                                                                             \
      "conn, then dropped_total (`limits.messages_per_s` under `limits.rate_policy=drop`: once per "  \
      "1,000 dropped messages), or limit, rate, burst (`limits.frames_per_s` passed: close 1008, "    \
      "once per connection)")                                                                         \
    X(bad_compression, WARN, "conn, message (why the permessage-deflate data was refused; close 1007)") \
    X(protocol_error, WARN,                                                                           \
      "conn, message (the RFC 6455 rule the client broke: unmasked frame, reserved bits, bad "       \
      "opcode or close code...; close 1002)")                                                         \
    X(handshake_timeout, WARN,                                                                        \
      "peer, peer_port, cause, timeout_ms (TCP connection that never completed the upgrade; cause "  \
      "`page_not_read` when a client did not take a static page in that time)")                        \
    X(write_failed, DEBUG, "conn, message (the peer went away mid-write; the connection is dropped)") \
    X(tls_refused, WARN, "message (a client certificate failed verification with `tls.client_auth`)") \
    X(tls_reloaded, INFO, "cert_file (`wsg_server_reload_tls` swapped the certificate)")             \
    X(tls_reload_failed, ERROR, "cert_file, message (the new files were refused; the old pair stays)") \
    X(memory_trim, DEBUG,                                                                             \
      "peak_queued_bytes, queued_bytes, took_us (the send queues fell below a quarter of a peak of 8 MiB " \
      "or more: freed memory went back to the system, `tuning.trim_memory`)")                          \
    X(heartbeat_stats, DEBUG,                                                                         \
      "every 10 s: window_ms, ticks, timers_fired, timers_armed, connections, tick_p50_us_le, "      \
      "tick_p99_us_le, tick_max_us")                                                                  \
    X(error, ERROR,                                                                                   \
      "where or source, message, conn when there is one (libwebsockets' own errors arrive as "       \
      "`source: libwebsockets`)")                                                                     \
    X(drain, INFO,                                                                                    \
      "connections, duration_ms (a drain began: `wsg_server_drain`, or `wsg_server_request_stop` "    \
      "with `server.drain_ms`; each connection gets 1012 at a steady pace, then `stop`)")             \
    X(cluster_start, INFO,                                                                            \
      "node_id, redis, prefix (the cluster is on, `cluster.redis`: this instance begins to connect)") \
    X(cluster_up, INFO,                                                                               \
      "node, node_id, redis, down_ms (the cluster works: both Redis connections ready, node number "  \
      "known; down_ms since the start or the `cluster_down`)")                                        \
    X(cluster_down, WARN,                                                                             \
      "redis, link, message (Redis cannot be reached, refused the password, hung or is no Redis: "   \
      "once per outage; cross-instance calls fail with WSG_ECLUSTER, publishes to other instances "   \
      "are dropped and counted, local delivery goes on)")                                             \
    X(cluster_retry, DEBUG, "link, message (another attempt to reach Redis failed during an outage)") \
    X(cluster_invalid, WARN,                                                                          \
      "channel, bytes (a message on a cluster channel was not a wsgate envelope: another program "   \
      "publishes under `cluster.prefix`; counted and ignored)")                                       \
    X(cluster_node_conflict, ERROR,                                                                   \
      "node, node_id, message (another server holds the lease of this instance's node number: Redis "  \
      "lost its data or this instance was cut off longer than `cluster.presence_ttl_ms`; it keeps its "\
      "number, its presence is not written until the lease is its own again; counted)")              \
    X(cluster_presence_resync, DEBUG,                                                                 \
      "node, names, entries, why (every local presence entry written to Redis again: a new "         \
      "connection to Redis, a lapsed lease, or writes that failed; counted)")                        \
    X(stop, INFO, "(warn with remaining and message, when the shutdown timeout dropped connections)")   \
    X(log_suppressed, WARN,                                                                           \
      "of, the key field of that event when it has one (status, cause), suppressed, window_ms "      \
      "(events of one kind past `log.max_per_s` in one second were not logged: one summary line "    \
      "per kind and second, when the second is over)")

// The events a flood can repeat (one per refused request, per misbehaving
// connection): each kind is limited to `log.max_per_s` lines per second, per
// value of its key field ("" for none), and the rest are counted into one
// `log_suppressed` line. Every other event (open, close, lifecycle, episodes
// that already summarise themselves) is always logged.
//   X(name, key_field)
#define WSGATE_LOG_FLOOD_EVENTS(X)        \
    X(accept, "")                         \
    X(reject, "status")                   \
    X(page, "status")                     \
    X(handshake_timeout, "cause")         \
    X(tls_refused, "")                    \
    X(too_big, "")                        \
    X(backpressure, "")                   \
    X(queue_overflow, "policy")           \
    X(queue_recovered, "policy")          \
    X(rate_limited, "")                   \
    X(bad_compression, "")                \
    X(protocol_error, "")                 \
    X(write_failed, "")                   \
    X(cluster_retry, "link")              \
    X(cluster_invalid, "")                \
    X(error, "source")

namespace wsgate {

enum class LogEvent {
#define WSGATE_LOG_EVENT_ENUM(name, level, fields) name,
    WSGATE_LOG_EVENTS(WSGATE_LOG_EVENT_ENUM)
#undef WSGATE_LOG_EVENT_ENUM
};

inline const char *log_event_name(LogEvent e) {
    switch (e) {
#define WSGATE_LOG_EVENT_NAME(name, level, fields) \
    case LogEvent::name: return #name;
        WSGATE_LOG_EVENTS(WSGATE_LOG_EVENT_NAME)
#undef WSGATE_LOG_EVENT_NAME
    }
    return "unknown";
}

// The key field of a flood-limited event ("" when it has none but is
// limited), or nullptr when the event is always logged.
inline const char *log_event_flood_key(LogEvent e) {
    switch (e) {
#define WSGATE_LOG_FLOOD_KEY(name, key) \
    case LogEvent::name: return key;
        WSGATE_LOG_FLOOD_EVENTS(WSGATE_LOG_FLOOD_KEY)
#undef WSGATE_LOG_FLOOD_KEY
    default: return nullptr;
    }
}

inline wsg_log_level log_event_level(LogEvent e) {
    switch (e) {
#define WSGATE_LOG_EVENT_LEVEL(name, level, fields) \
    case LogEvent::name: return WSG_LOG_##level;
        WSGATE_LOG_EVENTS(WSGATE_LOG_EVENT_LEVEL)
#undef WSGATE_LOG_EVENT_LEVEL
    }
    return WSG_LOG_ERROR;
}

}  // namespace wsgate
