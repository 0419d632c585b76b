// libFuzzer target for what reads request headers before the upgrade: the
// Origin policy (lib/origin.h) and the client address behind trusted
// proxies (lib/netaddr.h).
//
// Build (clang only) and run:
//   CC=clang CXX=clang++ cmake -S . -B build-fuzz -DWSGATE_FUZZ=ON
//   cmake --build build-fuzz --target fuzz_origin
//   mkdir -p /tmp/origin && build-fuzz/tests/fuzz_origin -max_total_time=60 /tmp/origin tests/fuzz/origin_seeds tests/fuzz/origin_corpus
// (new inputs go to the first directory; tests/fuzz/README.md). ctest runs it
// for 20 s (fuzz_origin_smoke) in such a build, from a copy of the two corpora.
//
// Input: one flags byte (bit 0: TLS, bit 1: Origin required, bits 2-3:
// number of Origin headers, bits 4-5: security.allow_same_origin as
// auto/true/false), then fields split at '\n':
//   policy list \n Origin \n Host \n trusted proxies \n X-Forwarded-For
// (missing fields are empty; the last one takes the rest, '\n' included).
// Every input goes through OriginPolicy::parse/check, Origin::parse,
// CidrList::parse, IpAddr::parse, parse_forwarded_entry and client_ip.
// Crashes, sanitizer reports and leaks are failures; so is a broken
// invariant (checked with __builtin_trap).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "security/netaddr.h"
#include "security/origin.h"

namespace {

using wsgate::CidrList;
using wsgate::IpAddr;

void check(bool ok) {
    if (!ok) __builtin_trap();
}

IpAddr must_parse(const char *text) {
    std::optional<IpAddr> a = IpAddr::parse(text);
    check(a.has_value());
    return *a;
}

// A parsed address prints as text that parses back to it.
void round_trip(const std::optional<IpAddr> &a) {
    if (!a) return;
    std::optional<IpAddr> b = IpAddr::parse(a->to_string());
    check(b && *b == *a);
}

void fuzz_origin(uint8_t flags, std::string_view list, std::string_view origin,
                 std::string_view host) {
    wsgate::OriginPolicy policy;
    std::string err = wsgate::OriginPolicy::parse(list, &policy);
    wsgate::OriginPolicy::Request r;
    r.tls = flags & 1;
    r.origin_count = (flags >> 2) & 3;
    r.origin = origin;
    r.host = host;
    const bool require = flags & 2;
    using Mode = wsgate::OriginPolicy::SameOrigin;
    const Mode modes[] = {Mode::Auto, Mode::Always, Mode::Never, Mode::Auto};
    policy.set_same_origin(modes[(flags >> 4) & 3]);
    const std::string why = policy.check(r, require);

    // Trusting the Host header only ever lets more in: never <= auto <= always;
    // and once anything is listed, auto is never.
    bool allowed[3];
    for (int m = 0; m < 3; m++) {
        policy.set_same_origin(modes[m]);
        allowed[m] = policy.check(r, require).empty();
    }
    check(!allowed[2] || allowed[0]);
    check(!allowed[0] || allowed[1]);
    if (err.empty() && list.find_first_not_of(", \t") != std::string_view::npos)
        check(allowed[0] == allowed[2]);

    wsgate::Origin o;
    const bool parsed = wsgate::Origin::parse(origin, &o);
    if (r.origin_count == 0) check(why.empty() == !require);
    if (r.origin_count > 1) check(!why.empty());
    if (r.origin_count == 1 && !parsed && origin != "null") check(!why.empty());
    if (r.origin_count == 1 && parsed && err.empty() && policy.allows_any()) check(why.empty());
    if (parsed) {
        // The normal form parses back to itself.
        wsgate::Origin again;
        std::string text = o.scheme + "://" + o.host + ":" + std::to_string(o.port);
        check(wsgate::Origin::parse(text, &again));
        check(again.scheme == o.scheme && again.host == o.host && again.port == o.port);
    }
}

void fuzz_proxies(std::string_view list_text, std::string_view xff, std::string_view other) {
    std::string err;
    std::optional<CidrList> parsed = CidrList::parse(list_text, &err);
    check(parsed.has_value() == err.empty());
    CidrList list;
    if (parsed) {
        list = *parsed;
        // The printed list parses back to the same ranges; every range is a
        // network (no host bits) that contains its own address.
        std::optional<CidrList> again = CidrList::parse(list.to_string(), &err);
        check(again && again->ranges() == list.ranges());
        for (const wsgate::Cidr &c : list.ranges()) {
            check(c.contains(c.address()));
            check(c.address().masked(c.prefix()) == c.address());
            check(c.prefix() >= 0 && c.prefix() <= (c.is_v4() ? 32 : 128));
        }
    }
    round_trip(IpAddr::parse(other));
    round_trip(wsgate::parse_forwarded_entry(other));
    round_trip(wsgate::parse_forwarded_entry(xff));

    // Peers: fixed ones and each listed network's own address.
    std::vector<IpAddr> peers = {must_parse("10.0.0.1"), must_parse("203.0.113.5"),
                                 must_parse("::1"), must_parse("2001:db8::1")};
    for (const wsgate::Cidr &c : list.ranges()) {
        peers.push_back(c.address());
        if (peers.size() > 12) break;
    }
    const IpAddr outsider = must_parse("198.18.0.77");
    std::string appended(xff);
    appended += ", 198.18.0.77";
    std::string prefixed(other);
    prefixed += ",";
    prefixed += xff;
    for (const IpAddr &peer : peers) {
        const IpAddr got = wsgate::client_ip(peer, xff, list);
        // An untrusted peer is the client, whatever the header says.
        if (!list.contains(peer)) {
            check(got == peer);
            continue;
        }
        // Behind a trusted peer, an untrusted address appended last (what
        // the proxy saw) is the client: nothing to its left matters.
        if (!list.contains(outsider)) check(wsgate::client_ip(peer, appended, list) == outsider);
        // Once an untrusted entry is chosen, whatever the client put further
        // left cannot change the answer.
        if (!list.contains(got)) check(wsgate::client_ip(peer, prefixed, list) == got);
    }
    check(wsgate::client_ip(peers[0], xff, CidrList()) == peers[0]);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const uint8_t flags = data[0];
    std::string_view rest(reinterpret_cast<const char *>(data + 1), size - 1);
    std::string_view f[5];
    for (int i = 0; i < 4; i++) {
        size_t nl = rest.find('\n');
        if (nl == std::string_view::npos) {
            f[i] = rest;
            rest = {};
            break;
        }
        f[i] = rest.substr(0, nl);
        rest = rest.substr(nl + 1);
    }
    if (f[4].empty()) f[4] = rest;
    fuzz_origin(flags, f[0], f[1], f[2]);
    fuzz_proxies(f[3], f[4], f[1]);
    return 0;
}
