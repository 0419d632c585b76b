// Where Redis is (cluster.redis): a numeric "host:port" or "unix:/path".
// Names are refused on purpose: hiredis resolves them with a blocking
// getaddrinfo() on the service thread (LWS-NOTES.md, hiredis).
#pragma once

#include <string>
#include <string_view>

namespace wsgate {

struct RedisAddress {
    std::string host;       // IPv4 or IPv6 literal (TCP)
    int port = 0;
    std::string unix_path;  // set for "unix:/path"
    bool is_unix() const { return !unix_path.empty(); }
    // As configured, for logs and error messages.
    std::string text() const;
};

// "" when `v` is a valid address (*out set when out is not null), else
// what is wrong with it.
std::string parse_redis_address(std::string_view v, RedisAddress *out);

}  // namespace wsgate
