// The typed view of a wsg_config that a server runs with: read once when
// the server is created, then shared read-only by every part of it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "cluster/config.h"
#include "config/options.h"
#include "security/auth.h"
#include "security/limits.h"
#include "security/netaddr.h"
#include "security/origin.h"
#include "security/tls.h"

namespace wsgate {

// A connection's heartbeat settings (the server's defaults, or one
// connection's own copy once overridden).
struct HeartbeatTimes {
    int64_t ping_interval_ms = 0, pong_wait_ms = 0, write_wait_ms = 0, idle_timeout_ms = 0,
            close_wait_ms = 0;
};

// A queue policy by its name (WSG_QUEUE_POLICY_MAP); false when unknown.
bool queue_policy_from_name(const std::string &name, wsg_queue_policy *out);

// Comma-separated items, trimmed of spaces and tabs, empty ones dropped.
std::vector<std::string> split_list(const std::string &s);

// The typed view of a wsg_config that a server runs with.
struct Settings {
    std::string host;
    int port = 0;
    std::string path;
    std::vector<std::string> subprotocols;
    int64_t shutdown_timeout_ms = 0;
    int64_t drain_ms = 0;  // what wsg_server_request_stop does: 0 stop at once, else drain this long
    size_t max_message_bytes = 0;
    size_t max_connections = 0;
    size_t max_queue_bytes = 0;
    size_t max_total_queue_bytes = 0;  // 0: no cap
    bool trim_memory = true;  // tuning.trim_memory
    // Limits of an upgrade request's head (limits.max_request_line_bytes, ...).
    size_t max_request_line = 0, max_header_bytes = 0, max_headers = 0;
    // What a full send queue does (limits.queue_policy), the close code of
    // the close policy, and the water marks with their defaults applied.
    wsg_queue_policy queue_policy = WSG_QUEUE_CLOSE;
    int queue_close_code = 1013;
    size_t queue_high_water = 0, queue_low_water = 0;
    int log_level = 0;
    int64_t log_max_per_s = 0;  // lines per second per flood-limited event kind
    size_t rx_buffer_bytes = 0;
    size_t write_batch_bytes = 0;
    // Heartbeat, with heartbeat.preset applied to the options not set explicitly.
    int64_t ping_interval_ms = 0, pong_wait_ms = 0, write_wait_ms = 0, idle_timeout_ms = 0,
            handshake_timeout_ms = 0, close_wait_ms = 0, tick_ms = 0;
    HeartbeatTimes heartbeat;  // the same, as every new connection starts with them
    bool any_frame_is_alive = true;
    bool epoll_loop = true;  // tuning.event_loop
    bool compression = false;  // compression.enabled
    size_t compress_min_bytes = 0;
    int compress_level = 1;
    bool compress_client_context = false;  // compression.client_context_takeover
    OriginPolicy origins;
    bool require_origin = false;
    // TLS: on when tls.cert_file is set.
    bool tls = false;
    TlsFiles tls_files;
    std::string tls_client_auth, tls_min_version, tls_ciphers, tls_groups;
    AuthSettings auth;
    CidrList trusted_proxies;
    uint32_t max_per_ip = 0, max_per_user = 0;
    RateSpec handshake_rate, message_rate, frame_rate;
    bool rate_drop = false;
    // metrics.listen: the metrics listener's address; port -1 when off.
    std::string metrics_host;
    int metrics_port = -1;
    std::string auth_error;  // from AuthSettings::build, reported by check()
    ClusterConfig cluster;  // cluster.*: off unless cluster.redis is set

    explicit Settings(const wsg_config &cfg);
    // Checks rules that involve several options; "" when consistent.
    std::string check() const;
    // Checks the TLS files (when TLS is on); "" when usable.
    std::string check_tls() const;
};

}  // namespace wsgate
