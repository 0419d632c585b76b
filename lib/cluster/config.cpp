#include "cluster/config.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "config/options.h"

namespace wsgate {

std::string generate_node_id() {
    char host[64] = {};
    if (gethostname(host, sizeof host - 1) != 0 || !host[0]) std::strcpy(host, "node");
    char tail[32];
    std::snprintf(tail, sizeof tail, "-%ld-%06x", static_cast<long>(getpid()),
                  static_cast<unsigned>(std::random_device{}() & 0xffffffu));
    return std::string(host) + tail;
}

namespace {

// The password is the file's first line (a trailing CR or LF is not part of it).
std::string read_password(const std::string &path, std::string *out) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return "cluster.password_file: cannot read '" + path + "': " + std::strerror(errno);
    std::ostringstream ss;
    ss << in.rdbuf();
    std::string s = ss.str();
    const size_t eol = s.find_first_of("\r\n");
    if (eol != std::string::npos) s.resize(eol);
    if (s.empty()) return "cluster.password_file: '" + path + "' holds no password (its first line is empty)";
    *out = s;
    return {};
}

}  // namespace

ClusterConfig::ClusterConfig(const wsg_config &c) {
    const std::string &redis = c.string_of("cluster.redis");
    enabled = !redis.empty();
    if (enabled) parse_redis_address(redis, &address);  // validated on set
    node_id = c.string_of("cluster.node_id");
    if (node_id.empty()) node_id = generate_node_id();
    prefix = c.string_of("cluster.prefix");
    password_file = c.string_of("cluster.password_file");
    db = static_cast<int>(c.int_of("cluster.db"));
    connect_timeout_ms = c.int_of("cluster.connect_timeout_ms");
    command_timeout_ms = c.int_of("cluster.command_timeout_ms");
    reconnect_min_ms = c.int_of("cluster.reconnect_min_ms");
    reconnect_max_ms = c.int_of("cluster.reconnect_max_ms");
    max_pending = static_cast<size_t>(c.int_of("cluster.max_pending"));
    require = c.bool_of("cluster.require");
    session_ttl_ms = c.int_of("cluster.session_ttl_ms");
    session_max_bytes = static_cast<size_t>(c.int_of("cluster.session_max_bytes"));
    presence_ttl_ms = c.int_of("cluster.presence_ttl_ms");
    if (reconnect_min_ms > reconnect_max_ms)
        error = "cluster.reconnect_min_ms (" + std::to_string(reconnect_min_ms) +
                ") is above cluster.reconnect_max_ms (" + std::to_string(reconnect_max_ms) + ")";
    else if (enabled && !password_file.empty())
        error = read_password(password_file, &password);
    else if (!enabled && require)
        error = "cluster.require is set but cluster.redis is empty (the cluster is off)";
}

}  // namespace wsgate
