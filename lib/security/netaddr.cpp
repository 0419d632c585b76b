#include "security/netaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>

#include "base/text.h"

namespace wsgate {
namespace {

constexpr std::array<uint8_t, 12> kMappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

// Clears every bit after the first `bits` (0..128) of the 16-byte form.
std::array<uint8_t, 16> mask128(std::array<uint8_t, 16> b, int bits) {
    for (int i = 0; i < 16; i++) {
        int keep = bits - i * 8;
        if (keep >= 8) continue;
        b[i] = keep <= 0 ? 0 : static_cast<uint8_t>(b[i] & (0xff00u >> keep));
    }
    return b;
}

// Unsigned decimal with 1..max_digits digits and no leading zero (so one
// spelling per value: "08" is not a prefix length).
bool parse_decimal(std::string_view s, size_t max_digits, unsigned *out) {
    if (s.empty() || s.size() > max_digits || (s.size() > 1 && s[0] == '0')) return false;
    unsigned v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + static_cast<unsigned>(c - '0');
    }
    *out = v;
    return true;
}

uint64_t mix64(uint64_t x) {  // splitmix64's finaliser
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

}  // namespace

std::optional<IpAddr> IpAddr::parse(std::string_view text) {
    // inet_pton wants a C string: copy, and refuse what would be cut short.
    char buf[INET6_ADDRSTRLEN + 1];
    if (text.empty() || text.size() >= sizeof buf || std::memchr(text.data(), 0, text.size()))
        return std::nullopt;
    std::memcpy(buf, text.data(), text.size());
    buf[text.size()] = 0;
    if (text.find(':') == std::string_view::npos) {
        in_addr a4;
        if (inet_pton(AF_INET, buf, &a4) != 1) return std::nullopt;
        return v4(ntohl(a4.s_addr));
    }
    std::array<uint8_t, 16> b;
    if (inet_pton(AF_INET6, buf, b.data()) != 1) return std::nullopt;
    return v6(b);
}

std::optional<IpAddr> IpAddr::from_sockaddr(const struct sockaddr *sa) {
    if (!sa) return std::nullopt;
    // memcpy: the caller's storage need not be aligned for the wider type.
    if (sa->sa_family == AF_INET) {
        sockaddr_in in;
        std::memcpy(&in, sa, sizeof in);
        return v4(ntohl(in.sin_addr.s_addr));
    }
    if (sa->sa_family == AF_INET6) {
        sockaddr_in6 in6;
        std::memcpy(&in6, sa, sizeof in6);
        std::array<uint8_t, 16> b;
        std::memcpy(b.data(), &in6.sin6_addr, 16);
        return v6(b);
    }
    return std::nullopt;
}

IpAddr IpAddr::v4(uint32_t host_order) {
    IpAddr a;
    std::memcpy(a.b_.data(), kMappedPrefix.data(), 12);
    a.b_[12] = static_cast<uint8_t>(host_order >> 24);
    a.b_[13] = static_cast<uint8_t>(host_order >> 16);
    a.b_[14] = static_cast<uint8_t>(host_order >> 8);
    a.b_[15] = static_cast<uint8_t>(host_order);
    return a;
}

IpAddr IpAddr::v6(const std::array<uint8_t, 16> &bytes) {
    IpAddr a;
    a.b_ = bytes;  // a mapped address is already the IPv4 form
    return a;
}

bool IpAddr::is_v4() const { return std::memcmp(b_.data(), kMappedPrefix.data(), 12) == 0; }

uint32_t IpAddr::v4_value() const {
    return uint32_t(b_[12]) << 24 | uint32_t(b_[13]) << 16 | uint32_t(b_[14]) << 8 | b_[15];
}

std::string IpAddr::to_string() const {
    char buf[INET6_ADDRSTRLEN];
    if (is_v4()) {
        in_addr a4;
        a4.s_addr = htonl(v4_value());
        inet_ntop(AF_INET, &a4, buf, sizeof buf);
    } else {
        inet_ntop(AF_INET6, b_.data(), buf, sizeof buf);
    }
    return buf;
}

IpAddr IpAddr::masked(int bits) const {
    int width = is_v4() ? 32 : 128;
    if (bits < 0) bits = 0;
    if (bits > width) bits = width;
    IpAddr a;
    a.b_ = mask128(b_, bits + (128 - width));
    return a;
}

size_t IpAddrHash::operator()(const IpAddr &a) const noexcept {
    uint64_t hi, lo;
    std::memcpy(&hi, a.bytes().data(), 8);
    std::memcpy(&lo, a.bytes().data() + 8, 8);
    // Two rounds so that every input bit and the seed reach every output bit.
    return static_cast<size_t>(mix64(mix64(lo ^ seed) ^ hi ^ (seed * 0x9e3779b97f4a7c15ull)));
}

std::optional<Cidr> Cidr::parse(std::string_view text, std::string *err) {
    std::string item(text);
    auto fail = [&](const std::string &why) -> std::optional<Cidr> {
        if (err) *err = "'" + item + "': " + why;
        return std::nullopt;
    };
    size_t slash = text.find('/');
    std::string_view addr_text = text.substr(0, slash);
    std::optional<IpAddr> addr = IpAddr::parse(addr_text);
    if (!addr) return fail("not an IPv4 or IPv6 address (or address/prefix)");
    // Prefix length as written, in the family of the text ("::ffff:..."
    // counts 128 bits even though it names IPv4 addresses).
    bool v6_text = addr_text.find(':') != std::string_view::npos;
    unsigned width = v6_text ? 128 : 32, bits = width;
    if (slash != std::string_view::npos && !parse_decimal(text.substr(slash + 1), 3, &bits))
        return fail("the prefix length must be a decimal number");
    if (bits > width)
        return fail("the prefix length must be 0.." + std::to_string(width));
    int bits128 = static_cast<int>(bits + (128 - width));
    std::array<uint8_t, 16> net = mask128(addr->bytes(), bits128);
    if (net != addr->bytes()) {
        Cidr hint;
        hint.addr_ = IpAddr::v6(net);
        hint.prefix_ = hint.addr_.is_v4() ? bits128 - 96 : bits128;
        return fail("host bits are set past the prefix (did you mean " + hint.to_string() + "?)");
    }
    // A mapped network with a prefix under 96 has the ffff bits past the
    // prefix, so it was refused above: here a mapped one is >= /96.
    Cidr c;
    c.addr_ = *addr;
    c.prefix_ = addr->is_v4() ? bits128 - 96 : bits128;
    return c;
}

bool Cidr::contains(const IpAddr &a) const {
    if (a.is_v4() != addr_.is_v4()) return false;
    int bits128 = addr_.is_v4() ? prefix_ + 96 : prefix_;
    return mask128(a.bytes(), bits128) == addr_.bytes();
}

std::string Cidr::to_string() const { return addr_.to_string() + "/" + std::to_string(prefix_); }

std::optional<CidrList> CidrList::parse(std::string_view text, std::string *err) {
    CidrList out;
    size_t start = 0;
    while (start <= text.size()) {
        size_t comma = text.find(',', start);
        if (comma == std::string_view::npos) comma = text.size();
        std::string_view item = trim_ows(text.substr(start, comma - start));
        start = comma + 1;
        if (item.empty()) {
            // A blank list, or a trailing comma, is fine.
            if (comma == text.size()) break;
            if (err) *err = "has an empty entry";
            return std::nullopt;
        }
        std::string why;
        std::optional<Cidr> c = Cidr::parse(item, &why);
        if (!c) {
            if (err) *err = "entry " + why;
            return std::nullopt;
        }
        out.ranges_.push_back(*c);
    }
    if (err) err->clear();
    return out;
}

bool CidrList::contains(const IpAddr &a) const {
    for (const Cidr &c : ranges_)
        if (c.contains(a)) return true;
    return false;
}

std::string CidrList::to_string() const {
    std::string out;
    for (const Cidr &c : ranges_) {
        if (!out.empty()) out += ", ";
        out += c.to_string();
    }
    return out;
}

std::optional<IpAddr> parse_forwarded_entry(std::string_view e) {
    std::string_view host = e, port;
    if (!e.empty() && e.front() == '[') {
        // "[v6]" or "[v6]:port"; brackets are for IPv6 text only.
        size_t close = e.find(']');
        if (close == std::string_view::npos) return std::nullopt;
        host = e.substr(1, close - 1);
        std::string_view rest = e.substr(close + 1);
        if (host.find(':') == std::string_view::npos) return std::nullopt;
        if (!rest.empty()) {
            if (rest.front() != ':') return std::nullopt;
            port = rest.substr(1);
            if (port.empty()) return std::nullopt;
        }
    } else {
        // One colon: IPv4 with a port. More: bare IPv6 (a port after bare
        // IPv6 cannot be told apart from the address; proxies bracket it).
        size_t colon = e.find(':');
        if (colon != std::string_view::npos && e.find(':', colon + 1) == std::string_view::npos) {
            host = e.substr(0, colon);
            port = e.substr(colon + 1);
            if (port.empty()) return std::nullopt;
        }
    }
    unsigned p = 0;
    if (!port.empty() && (!parse_decimal(port, 5, &p) || p > 65535)) return std::nullopt;
    return IpAddr::parse(host);
}

IpAddr client_ip(const IpAddr &peer, std::string_view xff, const CidrList &trusted) {
    if (!trusted.contains(peer)) return peer;
    IpAddr hop = peer;  // the nearest address a trusted party vouched for
    size_t end = xff.size();
    for (;;) {
        size_t comma = end == 0 ? std::string_view::npos : xff.rfind(',', end - 1);
        size_t begin = comma == std::string_view::npos ? 0 : comma + 1;
        std::string_view item = trim_ows(xff.substr(begin, end - begin));
        if (!item.empty()) {
            std::optional<IpAddr> a = parse_forwarded_entry(item);
            if (!a) return hop;  // unreadable: nothing further left is vouched for
            if (!trusted.contains(*a)) return *a;
            hop = *a;
        }
        if (comma == std::string_view::npos) return hop;
        end = comma;
    }
}

}  // namespace wsgate
