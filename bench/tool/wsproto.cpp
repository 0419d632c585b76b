#include "wsproto.h"

#include <arpa/inet.h>
#include <openssl/evp.h>
#include <strings.h>

#include <cstring>

namespace bench {

bool parse_address(const std::string &text, struct sockaddr_storage *addr, socklen_t *len) {
    std::memset(addr, 0, sizeof *addr);
    auto *sin = reinterpret_cast<struct sockaddr_in *>(addr);
    if (inet_pton(AF_INET, text.c_str(), &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        *len = sizeof *sin;
        return true;
    }
    auto *s6 = reinterpret_cast<struct sockaddr_in6 *>(addr);
    if (inet_pton(AF_INET6, text.c_str(), &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        *len = sizeof *s6;
        return true;
    }
    return false;
}

bool is_loopback(const struct sockaddr_storage &addr) {
    if (addr.ss_family == AF_INET) {
        const auto *sin = reinterpret_cast<const struct sockaddr_in *>(&addr);
        return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
    }
    if (addr.ss_family == AF_INET6) {
        const auto *s6 = reinterpret_cast<const struct sockaddr_in6 *>(&addr);
        if (IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr)) return true;
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) return s6->sin6_addr.s6_addr[12] == 127;
    }
    return false;
}

std::string parse_url(const std::string &url, Target *t) {
    t->url = url;
    std::string rest;
    if (url.compare(0, 5, "ws://") == 0) {
        t->tls = false;
        rest = url.substr(5);
    } else if (url.compare(0, 6, "wss://") == 0) {
        t->tls = true;
        rest = url.substr(6);
    } else {
        return "URL must start with ws:// or wss://: " + url;
    }
    size_t slash = rest.find_first_of("/?");
    std::string authority = rest.substr(0, slash);
    t->resource = slash == std::string::npos ? "/" : rest.substr(slash);
    if (t->resource[0] == '?') t->resource = "/" + t->resource;
    std::string host, port;
    if (!authority.empty() && authority[0] == '[') {
        size_t close = authority.find(']');
        if (close == std::string::npos) return "bad IPv6 literal in URL: " + url;
        host = authority.substr(1, close - 1);
        if (close + 1 < authority.size()) {
            if (authority[close + 1] != ':') return "bad authority in URL: " + url;
            port = authority.substr(close + 2);
        }
    } else {
        size_t colon = authority.rfind(':');
        host = authority.substr(0, colon);
        if (colon != std::string::npos) port = authority.substr(colon + 1);
    }
    if (host.empty()) return "URL has no host: " + url;
    t->port = t->tls ? 443 : 80;
    if (!port.empty()) {
        char *end = nullptr;
        long p = std::strtol(port.c_str(), &end, 10);
        if (*end || p <= 0 || p > 65535) return "bad port in URL: " + url;
        t->port = static_cast<int>(p);
    }
    t->host = host;
    t->host_is_ip = host != "localhost";
    std::string numeric = host == "localhost" ? "127.0.0.1" : host;
    if (!parse_address(numeric, &t->addr, &t->addrlen))
        return "host must be an IP literal or localhost (no DNS lookups): " + host;
    if (t->addr.ss_family == AF_INET)
        reinterpret_cast<struct sockaddr_in *>(&t->addr)->sin_port = htons(static_cast<uint16_t>(t->port));
    else
        reinterpret_cast<struct sockaddr_in6 *>(&t->addr)->sin6_port = htons(static_cast<uint16_t>(t->port));
    bool v6 = host.find(':') != std::string::npos;
    t->host_header = (v6 ? "[" + host + "]" : host);
    if (!port.empty()) t->host_header += ":" + port;
    return {};
}

std::string base64(const uint8_t *p, size_t n) {
    std::string out(4 * ((n + 2) / 3) + 1, '\0');
    int len = EVP_EncodeBlock(reinterpret_cast<unsigned char *>(&out[0]), p, static_cast<int>(n));
    out.resize(static_cast<size_t>(len));
    return out;
}

std::string accept_for(const std::string &key_b64) {
    static const char kGuid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    std::string s = key_b64 + kGuid;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_Digest(s.data(), s.size(), md, &mdlen, EVP_sha1(), nullptr);
    return base64(md, mdlen);
}

void append_frame(std::string &out, int opcode, const uint8_t *payload, size_t len, uint32_t mask) {
    uint8_t h[14];
    size_t hl = 0;
    h[hl++] = static_cast<uint8_t>(0x80 | (opcode & 0x0f));
    if (len < 126) {
        h[hl++] = static_cast<uint8_t>(0x80 | len);
    } else if (len <= 0xffff) {
        h[hl++] = 0x80 | 126;
        h[hl++] = static_cast<uint8_t>(len >> 8);
        h[hl++] = static_cast<uint8_t>(len);
    } else {
        h[hl++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--) h[hl++] = static_cast<uint8_t>(static_cast<uint64_t>(len) >> (8 * i));
    }
    uint8_t m[4];
    std::memcpy(m, &mask, 4);
    std::memcpy(h + hl, m, 4);
    hl += 4;
    size_t start = out.size();
    out.resize(start + hl + len);
    uint8_t *dst = reinterpret_cast<uint8_t *>(&out[start]);
    std::memcpy(dst, h, hl);
    dst += hl;
    // Eight bytes at a time: the mask repeats every four bytes.
    uint64_t m8;
    std::memcpy(&m8, m, 4);
    std::memcpy(reinterpret_cast<uint8_t *>(&m8) + 4, m, 4);
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        std::memcpy(&w, payload + i, 8);
        w ^= m8;
        std::memcpy(dst + i, &w, 8);
    }
    for (; i < len; i++) dst[i] = payload[i] ^ m[i & 3];
}

std::string header_value(const std::string &head, const char *name, bool *found) {
    *found = false;
    size_t nl = std::strlen(name);
    size_t pos = head.find("\r\n");
    while (pos != std::string::npos && pos + 2 < head.size()) {
        size_t line = pos + 2;
        size_t end = head.find("\r\n", line);
        if (end == std::string::npos) end = head.size();
        if (end - line > nl && head[line + nl] == ':' &&
            strncasecmp(head.c_str() + line, name, nl) == 0) {
            size_t v = line + nl + 1;
            while (v < end && (head[v] == ' ' || head[v] == '\t')) v++;
            size_t e = end;
            while (e > v && (head[e - 1] == ' ' || head[e - 1] == '\t')) e--;
            *found = true;
            return head.substr(v, e - v);
        }
        pos = end;
    }
    return {};
}

}  // namespace bench
