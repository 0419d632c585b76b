// IP addresses, CIDR ranges and the client address behind trusted proxies
// (server.trusted_proxies, X-Forwarded-For). Pure logic, no lws.
//
// One IpAddr type for both families: an IPv4 address is stored as its
// IPv4-mapped IPv6 form (::ffff:a.b.c.d), so "1.2.3.4" and
// "::ffff:1.2.3.4" (what a dual-stack socket reports for an IPv4 peer) are
// the same value: equal, same hash, same limits bucket, same log text.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct sockaddr;

namespace wsgate {

class IpAddr {
public:
    // The unspecified IPv6 address "::".
    IpAddr() = default;

    // An IPv4 or IPv6 literal as inet_pton takes it: dotted quad (no leading
    // zeros, no shorthand) or RFC 4291 text. No brackets, port, zone
    // ("%eth0"), spaces or NUL bytes. IPv4-mapped IPv6 becomes IPv4.
    static std::optional<IpAddr> parse(std::string_view text);
    // From an AF_INET or AF_INET6 socket address (e.g. getpeername);
    // nullopt for other families or a null pointer.
    static std::optional<IpAddr> from_sockaddr(const struct sockaddr *sa);
    static IpAddr v4(uint32_t host_order);
    // 16 bytes in network order; an IPv4-mapped value is IPv4.
    static IpAddr v6(const std::array<uint8_t, 16> &bytes);

    bool is_v4() const;
    // IPv4 in host order (meaningful only when is_v4()).
    uint32_t v4_value() const;
    // Always the 16-byte form (IPv4 as ::ffff:a.b.c.d).
    const std::array<uint8_t, 16> &bytes() const { return b_; }
    // Dotted quad for IPv4, RFC 5952 text for IPv6 (no brackets).
    std::string to_string() const;

    // The address with all but the first `bits` bits cleared, counted in
    // its own family (0..32 for IPv4, 0..128 for IPv6; larger is clamped).
    // E.g. masked(64) groups an IPv6 client by its /64 for per-IP limits.
    IpAddr masked(int bits) const;

    friend bool operator==(const IpAddr &a, const IpAddr &b) { return a.b_ == b.b_; }
    friend bool operator!=(const IpAddr &a, const IpAddr &b) { return a.b_ != b.b_; }
    // Total order: IPv6 below ::ffff:0:0/96, then IPv4, then the rest of IPv6.
    friend bool operator<(const IpAddr &a, const IpAddr &b) { return a.b_ < b.b_; }

private:
    std::array<uint8_t, 16> b_{};
};

// Hash for unordered containers. The seed makes bucket placement
// unpredictable to a client choosing addresses (hash flooding); tables fed
// by network input seed it at random, std::hash uses 0.
struct IpAddrHash {
    uint64_t seed = 0;
    size_t operator()(const IpAddr &a) const noexcept;
};

// A range of addresses of one family. An IPv4 range matches only IPv4
// addresses (mapped ones included) and an IPv6 range only IPv6 ones: even
// "::/0" does not match IPv4 clients; list "0.0.0.0/0" for those.
class Cidr {
public:
    // "10.0.0.0/8", "2001:db8::/32", or a single address ("192.168.1.7" is
    // /32, "::1" is /128). "::ffff:10.0.0.0/104" is read as 10.0.0.0/8.
    // Refused, with a message naming the entry: a bad address, a prefix that
    // is not decimal 0..32 (IPv4) or 0..128 (IPv6), and host bits set past
    // the prefix ("10.0.0.1/8"): such an entry is more likely a typo than
    // an intended range, so it is an error, not silently masked.
    static std::optional<Cidr> parse(std::string_view text, std::string *err);

    bool contains(const IpAddr &a) const;
    const IpAddr &address() const { return addr_; }
    int prefix() const { return prefix_; }  // in the range's own family
    bool is_v4() const { return addr_.is_v4(); }
    std::string to_string() const;  // "10.0.0.0/8", "::1/128"

    friend bool operator==(const Cidr &a, const Cidr &b) {
        return a.addr_ == b.addr_ && a.prefix_ == b.prefix_;
    }

private:
    IpAddr addr_;
    int prefix_ = 0;
};

class CidrList {
public:
    // Comma-separated Cidr entries; spaces and tabs around entries and one
    // trailing comma are fine; an empty or blank text is the empty list
    // (nothing trusted). An empty entry in the middle, or any bad entry, is
    // an error (the message names the entry). For an option validator:
    //   std::string err; CidrList::parse(v, &err); return err;
    static std::optional<CidrList> parse(std::string_view text, std::string *err);

    // Linear in the number of entries: proxy lists are short.
    bool contains(const IpAddr &a) const;
    bool empty() const { return ranges_.empty(); }
    const std::vector<Cidr> &ranges() const { return ranges_; }
    std::string to_string() const;  // "10.0.0.0/8, ::1/128" (parses back)

private:
    std::vector<Cidr> ranges_;
};

// The client's address for limits and logs.
//
// X-Forwarded-For is believed only as far as a chain of trusted proxies
// vouches for it. If `peer` (the TCP peer) is not in `trusted`, the header is
// ignored and the peer is the client. Otherwise the header is read from
// right to left (each proxy appends the address it received from): entries
// that are trusted proxies are skipped, and the first untrusted one is the
// client. Entries to its left were written by the client itself and are
// never used, so a spoofed leftmost entry cannot pick the address. When every
// entry is trusted, the leftmost one is the client.
//
// An entry that is not an address ("unknown", RFC 7239 obfuscated names like
// "_hidden", garbage) stops the walk: the client is the last good hop (the
// peer or the last trusted entry), never an address further left.
//
// `x_forwarded_for`: the header value; several headers joined with ", ".
// Empty elements and spaces/tabs are skipped. An entry is "1.2.3.4",
// "1.2.3.4:5678", "2001:db8::1", "[2001:db8::1]" or "[2001:db8::1]:1234".
// Time is linear in the header length.
IpAddr client_ip(const IpAddr &peer, std::string_view x_forwarded_for, const CidrList &trusted);

// One X-Forwarded-For entry (already trimmed) as client_ip reads it: an
// address with an optional port, IPv6 bracketed when it has a port.
std::optional<IpAddr> parse_forwarded_entry(std::string_view entry);

}  // namespace wsgate

namespace std {
template <>
struct hash<wsgate::IpAddr> {
    size_t operator()(const wsgate::IpAddr &a) const noexcept { return wsgate::IpAddrHash{}(a); }
};
}  // namespace std
