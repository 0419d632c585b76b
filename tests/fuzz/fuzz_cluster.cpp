// libFuzzer target for what the cluster reads from Redis and from its
// settings: the envelope every instance publishes (lib/cluster/envelope.h),
// a close's body inside it, a connection id as a target, cluster.redis
// (lib/cluster/address.h), and presence entries as the reader script returns
// them (lib/cluster/presence_keys.h).
//
// Build (clang only) and run:
//   CC=clang CXX=clang++ cmake -S . -B build-fuzz -DWSGATE_FUZZ=ON
//   cmake --build build-fuzz --target fuzz_cluster
//   mkdir -p /tmp/cluster && build-fuzz/tests/fuzz_cluster -max_total_time=60 /tmp/cluster tests/fuzz/cluster_seeds
// (tests/fuzz/README.md). ctest runs it for 20 s (fuzz_cluster_smoke).
//
// Input: one selector byte, then the bytes to read. Selector bit 0 clear:
// the rest is a message as Redis delivers it (decode_envelope); set: the
// rest is a cluster.redis value. Either way the other reader also sees the
// bytes, so every input exercises both. A body is also read as a history
// message's (TopicHistory: position then payload).
// Invariants (checked with __builtin_trap): a decoded envelope's views lie
// inside the input and encode back to the same bytes; a close body parses
// back to what close_body wrote; an 8-byte target round-trips; an address
// that parses prints as text that parses to the same address, and a socket
// path holds no NUL; a presence value that decodes encodes to one that
// decodes the same, and parsed entries have a node in 1..65535.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/address.h"
#include "cluster/envelope.h"
#include "cluster/presence_keys.h"

namespace {

void check(bool ok) {
    if (!ok) __builtin_trap();
}

bool inside(std::string_view part, std::string_view whole) {
    return part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size();
}

void fuzz_envelope(std::string_view data) {
    wsgate::Envelope e;
    if (!wsgate::decode_envelope(data, &e)) {
        check(data.size() < wsgate::kEnvelopeHeader || static_cast<uint8_t>(data[0]) != 1 ||
              data.size() < wsgate::kEnvelopeHeader + (static_cast<uint8_t>(data[14]) | static_cast<uint8_t>(data[15]) << 8));
        return;
    }
    check(inside(e.target, data) && inside(e.body, data));
    check(wsgate::kEnvelopeHeader + e.target.size() + e.body.size() == data.size());
    // The flags byte is written as 0 today: compare the rest.
    std::string again;
    wsgate::encode_envelope(e.kind, e.msg_type, e.origin_node, e.origin_tag, e.target, e.body, &again);
    check(again.size() == data.size());
    check(again.compare(0, 3, data.substr(0, 3)) == 0);
    check(again.compare(4, std::string::npos, data.substr(4)) == 0);

    int code = 0;
    std::string_view reason;
    if (wsgate::parse_close_body(e.body, &code, &reason)) {
        check(code >= 0 && code <= 0xffff && inside(reason, e.body));
        std::string body = wsgate::close_body(code, reason);
        check(body == e.body);
    } else {
        check(e.body.size() < 2);
    }
    // A history message's body (TopicHistory): position then payload.
    uint64_t epoch = 0, offset = 0;
    std::string_view payload;
    if (wsgate::parse_history_body(e.body, &epoch, &offset, &payload)) {
        check(epoch && offset && inside(payload, e.body) && payload.size() + 16 == e.body.size());
        check(wsgate::history_body(epoch, offset, payload) == e.body);
    } else {
        check(e.body.size() < 16 || epoch == 0 || offset == 0);
    }
    const uint64_t id = wsgate::conn_from_target(e.target);
    if (e.target.size() == 8)
        check(wsgate::conn_target(id) == e.target);
    else
        check(id == 0);
}

void fuzz_address(std::string_view text) {
    wsgate::RedisAddress a;
    const std::string err = wsgate::parse_redis_address(text, &a);
    if (!err.empty()) return;
    check(a.is_unix() ? a.host.empty() : (a.port > 0 && a.port < 65536 && !a.host.empty()));
    // hiredis copies the path as a C string: a NUL would silently cut it.
    check(a.unix_path.find('\0') == std::string::npos);
    wsgate::RedisAddress b;
    check(wsgate::parse_redis_address(a.text(), &b).empty());
    check(b.host == a.host && b.port == a.port && b.unix_path == a.unix_path);
}

// The bytes as presence values, and split at '\n' into node, connection,
// value triples as the reader script's reply.
void fuzz_presence(std::string_view text) {
    for (char kind : {'t', 'u'}) {
        int64_t since = 0;
        std::string user;
        if (wsgate::decode_presence_value(kind, text, &since, &user)) {
            check(since >= 0);
            int64_t since2 = -1;
            std::string user2;
            check(wsgate::decode_presence_value(kind, wsgate::encode_presence_value(kind, since, user), &since2,
                                                &user2));
            check(since2 == since && user2 == user);
        }
    }
    std::vector<std::string_view> flat;
    size_t start = 0;
    for (size_t i = 0; i <= text.size(); i++)
        if (i == text.size() || text[i] == '\n') {
            flat.push_back(text.substr(start, i - start));
            start = i + 1;
        }
    std::vector<wsgate::PresenceEntry> out;
    size_t invalid = 0;
    if (wsgate::parse_presence_reply('t', "topic", flat, &out, &invalid)) {
        check(out.size() + invalid == flat.size() / 3);
        for (const wsgate::PresenceEntry &e : out) check(e.node >= 1 && e.since_ms >= 0);
    } else {
        check(flat.size() % 3 != 0);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const std::string rest(reinterpret_cast<const char *>(data + 1), size - 1);
    if (data[0] & 1) {
        fuzz_address(rest);
        fuzz_envelope(rest);
    } else {
        fuzz_envelope(rest);
        fuzz_address(rest);
    }
    fuzz_presence(rest);
    return 0;
}
