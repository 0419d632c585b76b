#include "security/origin.h"

#include <cctype>

#include "base/text.h"

namespace wsgate {
namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    for (char &c : out) c = ascii_lower(c);
    return out;
}

int default_port(const std::string &scheme) {
    if (scheme == "http" || scheme == "ws") return 80;
    if (scheme == "https" || scheme == "wss") return 443;
    return 0;
}

// Host names and IP literals as browsers serialise them: letters, digits,
// '-', '.', and for IPv6 a bracketed literal.
bool valid_host(std::string_view h) {
    if (h.empty()) return false;
    if (h.front() == '[') {
        if (h.size() < 3 || h.back() != ']') return false;
        for (char c : h.substr(1, h.size() - 2))
            if (!(std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.')) return false;
        return true;
    }
    if (h.front() == '.' || h.back() == '.' || h.find("..") != std::string_view::npos) return false;
    for (char c : h)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.')) return false;
    return true;
}

bool parse_port(std::string_view p, int *out) {
    if (p.empty() || p.size() > 5) return false;
    int v = 0;
    for (char c : p) {
        if (!std::isdigit(static_cast<unsigned char>(c))) return false;
        v = v * 10 + (c - '0');
    }
    if (v < 1 || v > 65535) return false;
    *out = v;
    return true;
}

// Splits "host[:port]" (host may be a bracketed IPv6 literal).
bool split_host_port(std::string_view hp, std::string_view *host, std::string_view *port) {
    *port = {};
    if (!hp.empty() && hp.front() == '[') {
        size_t close = hp.find(']');
        if (close == std::string_view::npos) return false;
        *host = hp.substr(0, close + 1);
        std::string_view rest = hp.substr(close + 1);
        if (rest.empty()) return true;
        if (rest.front() != ':') return false;
        *port = rest.substr(1);
        return !port->empty();
    }
    size_t colon = hp.rfind(':');
    if (colon == std::string_view::npos) {
        *host = hp;
        return true;
    }
    *host = hp.substr(0, colon);
    *port = hp.substr(colon + 1);
    return !port->empty();
}

}  // namespace

bool Origin::parse(std::string_view text, Origin *out) {
    size_t sep = text.find("://");
    if (sep == std::string_view::npos || sep == 0) return false;
    std::string scheme = lower(text.substr(0, sep));
    for (char c : scheme)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.'))
            return false;
    std::string_view rest = text.substr(sep + 3);
    // An origin has no path, query, fragment or userinfo.
    if (rest.find_first_of("/?#@\\ \t") != std::string_view::npos) return false;
    std::string_view host, port;
    if (!split_host_port(rest, &host, &port)) return false;
    if (!valid_host(host)) return false;
    int p = default_port(scheme);
    if (!port.empty() && !parse_port(port, &p)) return false;
    if (p == 0) return false;  // unknown scheme and no port
    out->scheme = scheme;
    out->host = lower(host);
    out->port = p;
    return true;
}

std::string OriginPolicy::parse(std::string_view list, OriginPolicy *out) {
    *out = OriginPolicy();
    size_t start = 0;
    while (start <= list.size()) {
        size_t comma = list.find(',', start);
        if (comma == std::string_view::npos) comma = list.size();
        std::string item(trim_ows(list.substr(start, comma - start)));
        start = comma + 1;
        if (item.empty()) {
            if (comma == list.size()) break;
            return "has an empty entry";
        }
        if (item == "*") {
            out->any_ = true;
            continue;
        }
        if (lower(item) == "null") {
            out->null_ = true;
            continue;
        }
        Entry e;
        std::string text = item;
        size_t sep = text.find("://");
        if (sep != std::string::npos && text.compare(sep + 3, 2, "*.") == 0) {
            e.wildcard = true;
            text.erase(sep + 3, 2);
        }
        if (text.find('*') != std::string::npos || !Origin::parse(text, &e.origin))
            return "entry '" + item +
                   "' is not an origin (scheme://host[:port], or scheme://*.domain for "
                   "subdomains, or * or null)";
        if (e.wildcard && e.origin.host.front() == '[')
            return "entry '" + item + "': a wildcard needs a domain name";
        out->entries_.push_back(std::move(e));
    }
    out->set_same_origin(SameOrigin::Auto);
    return {};
}

void OriginPolicy::set_same_origin(SameOrigin mode) {
    same_origin_ = mode == SameOrigin::Always ||
                   (mode == SameOrigin::Auto && entries_.empty() && !any_ && !null_);
}

std::string OriginPolicy::check(const Request &r, bool require_origin) const {
    if (r.origin_count == 0) return require_origin ? "Origin header required" : "";
    if (r.origin_count > 1) return "more than one Origin header";
    if (r.origin == "null") return null_ ? "" : "Origin null not allowed";
    Origin o;
    if (!Origin::parse(r.origin, &o)) return "malformed Origin header";
    if (any_) return "";
    // A page of the origin the client says it asked for (Host), when the
    // operator trusts that.
    std::string_view host, port;
    if (same_origin_ && split_host_port(r.host, &host, &port) && valid_host(host)) {
        Origin self;
        self.scheme = r.tls ? "https" : "http";
        self.host = lower(host);
        self.port = default_port(self.scheme);
        if ((port.empty() || parse_port(port, &self.port)) && o.scheme == self.scheme &&
            o.host == self.host && o.port == self.port)
            return "";
    }
    for (const Entry &e : entries_) {
        if (e.origin.scheme != o.scheme || e.origin.port != o.port) continue;
        if (!e.wildcard) {
            if (o.host == e.origin.host) return "";
            continue;
        }
        // "*.example.com": at least one label in front of ".example.com".
        const std::string &suffix = e.origin.host;
        if (o.host.size() > suffix.size() + 1 &&
            o.host.compare(o.host.size() - suffix.size(), suffix.size(), suffix) == 0 &&
            o.host[o.host.size() - suffix.size() - 1] == '.')
            return "";
    }
    if (!entries_.empty() || null_) return "Origin not allowed";
    return same_origin_ ? "Origin not allowed (same origin only)" : "Origin not allowed (no origin listed)";
}

}  // namespace wsgate
