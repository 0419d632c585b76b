// The Origin policy: which web pages may open WebSockets here (against
// cross-site WebSocket hijacking). Pure logic, no lws.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace wsgate {

// An origin as RFC 6454 serialises it: scheme://host[:port], compared with
// scheme and host lower-cased and the port made explicit.
struct Origin {
    std::string scheme, host;
    int port = 0;
    // Parses an Origin header value; false when malformed (paths, userinfo,
    // bad ports, empty host, unknown scheme without a port...).
    static bool parse(std::string_view text, Origin *out);
};

class OriginPolicy {
public:
    // `list`: comma-separated entries, each an exact origin
    // ("https://app.example.com", "http://localhost:8080"), a subdomain
    // wildcard ("https://*.example.com"), "*" (any origin) or "null" (the
    // opaque origin of sandboxed pages and files). Empty: same origin only
    // (see SameOrigin). Returns "" or what is wrong with which entry.
    static std::string parse(std::string_view list, OriginPolicy *out);

    // Whether a page whose origin is the request's own (scheme of the
    // connection, host and port of the Host header) passes. The Host header
    // is the client's choice (DNS rebinding sends any name to our address),
    // so this trusts the client: Auto does so only while no list is set,
    // when nothing else would let a browser in.
    enum class SameOrigin { Auto, Always, Never };
    void set_same_origin(SameOrigin mode);

    struct Request {
        int origin_count = 0;         // Origin headers received
        std::string_view origin;      // the first one's value
        std::string_view host;        // the Host header
        bool tls = false;             // the request came over TLS
    };
    // "" when allowed, else a short reason for the log (never a secret).
    std::string check(const Request &r, bool require_origin) const;

    bool allows_any() const { return any_; }

private:
    struct Entry {
        Origin origin;
        bool wildcard = false;  // origin.host is the suffix after "*."
    };
    std::vector<Entry> entries_;
    bool any_ = false;
    bool null_ = false;
    bool same_origin_ = true;  // Auto with an empty list
};

}  // namespace wsgate
