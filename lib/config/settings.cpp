#include "config/settings.h"

#include <arpa/inet.h>

#include "observe/log.h"

namespace wsgate {

std::vector<std::string> split_list(const std::string &s) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start < s.size()) {
        size_t comma = s.find(',', start);
        if (comma == std::string::npos) comma = s.size();
        std::string item = s.substr(start, comma - start);
        while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.pop_back();
        while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.erase(0, 1);
        if (!item.empty()) out.push_back(item);
        start = comma + 1;
    }
    return out;
}

bool queue_policy_from_name(const std::string &name, wsg_queue_policy *out) {
#define WSG_QUEUE_POLICY_FROM_NAME_(id, value, text, doc) \
    if (name == text) return *out = WSG_QUEUE_##id, true;
    WSG_QUEUE_POLICY_MAP(WSG_QUEUE_POLICY_FROM_NAME_)
#undef WSG_QUEUE_POLICY_FROM_NAME_
    return false;
}

Settings::Settings(const wsg_config &c)
    : host(c.string_of("listen.host")),
      port(static_cast<int>(c.int_of("listen.port"))),
      path(c.string_of("server.path")),
      subprotocols(split_list(c.string_of("server.subprotocols"))),
      shutdown_timeout_ms(c.int_of("server.shutdown_timeout_ms")),
      drain_ms(c.int_of("server.drain_ms")),
      max_message_bytes(static_cast<size_t>(c.int_of("limits.max_message_bytes"))),
      max_connections(static_cast<size_t>(c.int_of("limits.max_connections"))),
      max_queue_bytes(static_cast<size_t>(c.int_of("limits.max_queue_bytes"))),
      max_total_queue_bytes(static_cast<size_t>(c.int_of("limits.max_total_queue_bytes"))),
      trim_memory(c.bool_of("tuning.trim_memory")),
      max_request_line(static_cast<size_t>(c.int_of("limits.max_request_line_bytes"))),
      max_header_bytes(static_cast<size_t>(c.int_of("limits.max_header_bytes"))),
      max_headers(static_cast<size_t>(c.int_of("limits.max_headers"))),
      log_level(log_level_from_name(c.string_of("log.level"))),
      log_max_per_s(c.int_of("log.max_per_s")),
      rx_buffer_bytes(static_cast<size_t>(c.int_of("tuning.rx_buffer_bytes"))),
      write_batch_bytes(static_cast<size_t>(c.int_of("tuning.write_batch_bytes"))),
      tick_ms(c.int_of("heartbeat.tick_ms")),
      any_frame_is_alive(c.bool_of("heartbeat.any_frame_is_alive")),
      epoll_loop(c.string_of("tuning.event_loop") == "epoll"),
      compression(c.bool_of("compression.enabled")),
      compress_min_bytes(static_cast<size_t>(c.int_of("compression.min_bytes"))),
      compress_level(static_cast<int>(c.int_of("compression.level"))),
      compress_client_context(c.bool_of("compression.client_context_takeover")),
      require_origin(c.bool_of("security.require_origin")),
      tls(!c.string_of("tls.cert_file").empty()),
      tls_files{c.string_of("tls.cert_file"), c.string_of("tls.key_file"), c.string_of("tls.ca_file")},
      tls_client_auth(c.string_of("tls.client_auth")),
      tls_min_version(c.string_of("tls.min_version")),
      tls_ciphers(c.string_of("tls.ciphers")),
      tls_groups(c.string_of("tls.groups")),
      cluster(c) {
    auth_error = AuthSettings::build(c, &auth);
    trusted_proxies = *CidrList::parse(c.string_of("server.trusted_proxies"), nullptr);  // validated on set
    max_per_ip = static_cast<uint32_t>(c.int_of("limits.max_connections_per_ip"));
    max_per_user = static_cast<uint32_t>(c.int_of("limits.max_connections_per_user"));
    handshake_rate = RateSpec::per_second(static_cast<double>(c.int_of("limits.handshakes_per_ip_per_s")),
                                          static_cast<uint32_t>(c.int_of("limits.handshake_burst")));
    message_rate = RateSpec::per_second(static_cast<double>(c.int_of("limits.messages_per_s")),
                                        static_cast<uint32_t>(c.int_of("limits.message_burst")));
    frame_rate = RateSpec::per_second(static_cast<double>(c.int_of("limits.frames_per_s")),
                                      static_cast<uint32_t>(c.int_of("limits.frame_burst")));
    rate_drop = c.string_of("limits.rate_policy") == "drop";
    queue_policy_from_name(c.string_of("limits.queue_policy"), &queue_policy);  // validated on set
    queue_close_code = static_cast<int>(c.int_of("limits.queue_close_code"));
    queue_high_water = static_cast<size_t>(c.int_of("limits.queue_high_water_bytes"));
    if (!queue_high_water) queue_high_water = max_queue_bytes / 2;
    queue_low_water = static_cast<size_t>(c.int_of("limits.queue_low_water_bytes"));
    if (!queue_low_water) queue_low_water = queue_high_water / 4;
    // A cookie is sent by the browser on any page's behalf: a cross-site
    // page must not ride on it, so the Origin becomes mandatory.
    if (auth.enabled() && auth.from_cookie) require_origin = true;
    OriginPolicy::parse(c.string_of("security.allowed_origins"), &origins);  // validated on set
    const std::string &same = c.string_of("security.allow_same_origin");
    origins.set_same_origin(same == "true"    ? OriginPolicy::SameOrigin::Always
                            : same == "false" ? OriginPolicy::SameOrigin::Never
                                              : OriginPolicy::SameOrigin::Auto);
    if (!c.string_of("metrics.listen").empty())
        parse_host_port(c.string_of("metrics.listen"), &metrics_host, &metrics_port);  // validated on set
    const std::string &preset = c.string_of("heartbeat.preset");
    auto hb = [&](const char *key) {
        int64_t v = c.int_of(key);
        if (!c.is_set(key)) heartbeat_preset_value(preset, key, &v);
        return v;
    };
    ping_interval_ms = hb("heartbeat.ping_interval_ms");
    pong_wait_ms = hb("heartbeat.pong_wait_ms");
    write_wait_ms = hb("heartbeat.write_wait_ms");
    idle_timeout_ms = hb("heartbeat.idle_timeout_ms");
    handshake_timeout_ms = hb("heartbeat.handshake_timeout_ms");
    close_wait_ms = hb("heartbeat.close_wait_ms");
    heartbeat.ping_interval_ms = ping_interval_ms;
    heartbeat.pong_wait_ms = pong_wait_ms;
    heartbeat.write_wait_ms = write_wait_ms;
    heartbeat.idle_timeout_ms = idle_timeout_ms;
    heartbeat.close_wait_ms = close_wait_ms;
}

std::string Settings::check_tls() const {
    return tls ? tls_check_files(tls_files) : std::string();
}

std::string Settings::check() const {
    if (!auth_error.empty()) return auth_error;
    if (!cluster.error.empty()) return cluster.error;
    if (cluster.enabled && !epoll_loop)
        return "cluster.redis needs tuning.event_loop epoll (the Redis connections run on its libev loop)";
    if (!tls && (!tls_files.key_file.empty() || !tls_files.ca_file.empty()))
        return "tls.key_file and tls.ca_file need tls.cert_file (TLS is off without it)";
    if (tls_client_auth != "none" && tls_files.ca_file.empty())
        return "tls.client_auth=" + tls_client_auth + " needs tls.ca_file (the CAs that sign client certificates)";
    if (queue_high_water > max_queue_bytes)
        return "limits.queue_high_water_bytes (" + std::to_string(queue_high_water) +
               ") must not exceed limits.max_queue_bytes (" + std::to_string(max_queue_bytes) + ")";
    if (queue_low_water >= queue_high_water)
        return "limits.queue_low_water_bytes (" + std::to_string(queue_low_water) +
               ") must be below limits.queue_high_water_bytes (" + std::to_string(queue_high_water) +
               "; when 0 it is half of limits.max_queue_bytes)";
    if (metrics_port > 0 && metrics_port == port)
        return "metrics.listen uses listen.port (" + std::to_string(port) + "): give the metrics listener its own port";
    // lws turns IPv6 off for the whole context when the main listener is IPv4.
    unsigned char v4[4];
    if (metrics_port >= 0 && metrics_host.find(':') != std::string::npos && inet_pton(AF_INET, host.c_str(), v4) == 1)
        return "metrics.listen on IPv6 (" + metrics_host + ") needs listen.host to be IPv6 or empty (it is " + host +
               "): put the metrics listener on an IPv4 address";
    if (ping_interval_ms > 0 && pong_wait_ms > 0 && pong_wait_ms <= ping_interval_ms)
        return "heartbeat.pong_wait_ms (" + std::to_string(pong_wait_ms) +
               ") must exceed heartbeat.ping_interval_ms (" + std::to_string(ping_interval_ms) +
               "), or every healthy connection would time out between two pings";
    return {};
}

}  // namespace wsgate
