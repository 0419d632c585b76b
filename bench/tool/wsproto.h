// The client side of RFC 6455 that wsgate-bench needs: URL parsing, the
// upgrade request and its check, masked frame building. Frame parsing lives
// in the engine, where it feeds the per-mode counters directly.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace bench {

struct Target {
    std::string url;          // as given
    bool tls = false;         // wss://
    std::string host;         // without brackets
    int port = 0;
    std::string resource;     // path and query, as sent in the request line
    std::string host_header;  // Host: value
    bool host_is_ip = true;
    struct sockaddr_storage addr {};
    socklen_t addrlen = 0;
};

// Parses ws://HOST[:PORT][/PATH][?QUERY] (or wss://). HOST is an IPv4
// literal, a bracketed IPv6 literal or "localhost". Returns "" or an error.
std::string parse_url(const std::string &url, Target *out);

// True for 127.0.0.0/8, ::1 and IPv4-mapped loopback.
bool is_loopback(const struct sockaddr_storage &addr);

// Parses one address (IPv4 or IPv6 literal) into addr with port 0.
bool parse_address(const std::string &text, struct sockaddr_storage *addr, socklen_t *len);

std::string base64(const uint8_t *p, size_t n);
// base64(SHA-1(key_b64 + RFC 6455 GUID)): the expected Sec-WebSocket-Accept.
std::string accept_for(const std::string &key_b64);

// Appends one masked client frame (FIN set) to out. mask: the 4-byte key.
void append_frame(std::string &out, int opcode, const uint8_t *payload, size_t len,
                  uint32_t mask);

// Case-insensitive search for header `name` (without colon) in an HTTP
// response head; returns its trimmed value or "" with *found false.
std::string header_value(const std::string &head, const char *name, bool *found);

// Fast non-cryptographic generator for masks, keys and payload filler
// (RFC 6455 asks for unpredictable masks to defeat cache poisoning by
// intermediaries; on a benchmark of one's own server that threat is absent).
struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed ? seed : 0x9e3779b97f4a7c15ull) {}
    uint64_t next() {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        return s * 0x2545f4914f6cdd1dull;
    }
};

}  // namespace bench
