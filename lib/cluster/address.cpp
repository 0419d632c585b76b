#include "cluster/address.h"

#include "security/netaddr.h"

namespace wsgate {

std::string RedisAddress::text() const {
    if (is_unix()) return "unix:" + unix_path;
    if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
    return host + ":" + std::to_string(port);
}

std::string parse_redis_address(std::string_view v, RedisAddress *out) {
    static const char kForm[] =
        "must be HOST:PORT with HOST an IP address literal (127.0.0.1:6379, [::1]:6379) or unix:/path/to/socket";
    RedisAddress a;
    if (v.substr(0, 5) == "unix:") {
        std::string_view path = v.substr(5);
        if (path.empty() || path[0] != '/') return "unix: needs an absolute socket path, e.g. unix:/run/redis/redis.sock";
        if (path.size() > 107) return "unix socket path is longer than 107 bytes (the sun_path limit)";
        if (path.find('\0') != std::string_view::npos) return "unix socket path contains a NUL byte";
        a.unix_path = std::string(path);
    } else {
        std::string_view h, p;
        if (!v.empty() && v[0] == '[') {
            const size_t close = v.find(']');
            if (close == std::string_view::npos || close + 1 >= v.size() || v[close + 1] != ':') return kForm;
            h = v.substr(1, close - 1);
            p = v.substr(close + 2);
        } else {
            const size_t colon = v.rfind(':');
            if (colon == std::string_view::npos) return kForm;
            h = v.substr(0, colon);
            p = v.substr(colon + 1);
            if (h.find(':') != std::string_view::npos) return "an IPv6 address needs brackets: [::1]:6379";
        }
        if (p.empty() || p.size() > 5) return kForm;
        int n = 0;
        for (char c : p) {
            if (c < '0' || c > '9') return kForm;
            n = n * 10 + (c - '0');
        }
        if (n < 1 || n > 65535) return "has a port outside 1..65535";
        std::string hs(h);
        if (!IpAddr::parse(h))
            return "'" + hs +
                   "' is not an IP address literal: names are not resolved (hiredis would block the service "
                   "thread in getaddrinfo); resolve it before configuring, e.g. 127.0.0.1:6379";
        a.host = hs;
        a.port = n;
    }
    if (out) *out = a;
    return {};
}

}  // namespace wsgate
