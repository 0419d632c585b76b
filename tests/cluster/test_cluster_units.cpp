// The cluster's pure parts: the envelope (every truncation of a valid one
// is refused, never read past its end), Redis addresses, the backoff's
// bounds, the registry's node numbers in ids, and presence's keys, values
// and reader reply.
#include <algorithm>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <csetjmp>
#include <string>

extern "C" {
#include <cmocka.h>
}

#include "cluster/address.h"
#include "cluster/backoff.h"
#include "cluster/envelope.h"
#include "cluster/presence_keys.h"
#include "core/registry.h"

using namespace wsgate;

namespace {

void test_envelope_round_trip_and_truncations(void **) {
    std::string buf;
    encode_envelope(EnvelopeKind::TopicMessage, 2, 513, 0x0102030405060708ull, "news", std::string("p\0q", 3), &buf);
    Envelope e;
    assert_true(decode_envelope(buf, &e));
    assert_int_equal(static_cast<int>(e.kind), static_cast<int>(EnvelopeKind::TopicMessage));
    assert_int_equal(e.msg_type, 2);
    assert_int_equal(e.origin_node, 513);
    assert_true(e.origin_tag == 0x0102030405060708ull);
    assert_true(e.target == "news");
    assert_true(e.body == std::string_view("p\0q", 3));
    // Shorter than header + target: refused; a shorter body is just a shorter body.
    for (size_t n = 0; n < kEnvelopeHeader + 4; n++) assert_false(decode_envelope(std::string_view(buf).substr(0, n), &e));
    assert_true(decode_envelope(std::string_view(buf).substr(0, kEnvelopeHeader + 4), &e));
    assert_true(e.body.empty());
    // Another version: refused.
    std::string v2 = buf;
    v2[0] = 2;
    assert_false(decode_envelope(v2, &e));
    // A target length past the end.
    std::string bad = buf.substr(0, kEnvelopeHeader);
    bad[14] = static_cast<char>(0xff);
    bad[15] = static_cast<char>(0xff);
    assert_false(decode_envelope(bad, &e));
    // Connection ids and close bodies.
    assert_true(conn_from_target(conn_target(0xfedcba9876543210ull)) == 0xfedcba9876543210ull);
    assert_true(conn_from_target("short") == 0);
    int code = 0;
    std::string_view reason;
    const std::string body = close_body(4001, "moved");  // reason points into it
    assert_true(parse_close_body(body, &code, &reason));
    assert_int_equal(code, 4001);
    assert_true(reason == "moved");
    assert_false(parse_close_body("x", &code, &reason));
}

void test_redis_addresses(void **) {
    RedisAddress a;
    assert_string_equal(parse_redis_address("127.0.0.1:6379", &a).c_str(), "");
    assert_string_equal(a.host.c_str(), "127.0.0.1");
    assert_int_equal(a.port, 6379);
    assert_string_equal(a.text().c_str(), "127.0.0.1:6379");
    assert_string_equal(parse_redis_address("[::1]:7000", &a).c_str(), "");
    assert_string_equal(a.text().c_str(), "[::1]:7000");
    assert_string_equal(parse_redis_address("unix:/run/redis.sock", &a).c_str(), "");
    assert_true(a.is_unix());
    assert_string_equal(a.text().c_str(), "unix:/run/redis.sock");
    for (const char *bad : {"", "redis:6379", "localhost:6379", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0",
                            "127.0.0.1:65536", "::1:6379", "[::1]6379", "unix:", "unix:rel/path", "1.2.3.4:6x79"})
        assert_false(parse_redis_address(bad, nullptr).empty());
    // Found by fuzz_cluster: hiredis copies the path as a C string.
    using namespace std::string_view_literals;
    assert_string_equal(parse_redis_address("unix:/tmp/a\0b"sv, nullptr).c_str(), "unix socket path contains a NUL byte");
}

void test_backoff_doubles_within_bounds(void **) {
    Backoff b(50, 1000);
    int64_t step = 50;
    for (int i = 0; i < 12; i++) {
        int64_t d = b.next();
        assert_true(d >= step - step / 2 && d <= step);
        step = std::min<int64_t>(step * 2, 1000);
    }
    b.reset();
    int64_t d = b.next();
    assert_true(d >= 25 && d <= 50);
}

void test_registry_ids_carry_the_node(void **) {
    Registry reg;
    Conn before, after;
    reg.add(&before);
    assert_int_equal(Registry::node_of(before.id), 0);
    reg.set_node(4242);
    reg.add(&after);
    assert_int_equal(Registry::node_of(after.id), 4242);
    // Both found; the same slot and generation under another node is not.
    assert_ptr_equal(reg.get(before.id), &before);
    assert_ptr_equal(reg.get(after.id), &after);
    assert_null(reg.get(after.id ^ (uint64_t(1) << Registry::kNodeShift)));
    assert_null(reg.get(before.id | (uint64_t(4242) << Registry::kNodeShift)));
    reg.remove(&before);
    reg.remove(&after);
}

}  // namespace

void test_presence_keys_and_values(void **) {
    // A node's hash puts the node before the name, the node set has its own
    // prefix: no topic's keys can be another topic's.
    assert_true(presence_hash_key("P", 't', 7, "a:1") == "P:pt:7:a:1");
    assert_true(presence_set_key("P", 't', "a:1") == "P:ptn:a:1");
    assert_true(presence_hash_key("P", 'u', 65535, "bob") == "P:pu:65535:bob");
    assert_true(presence_set_key("P", 'u', "bob") == "P:pun:bob");
    assert_true(presence_hash_key("P", 't', 1, "a") != presence_set_key("P", 't', "a:1"));
    assert_true(presence_keyset_key("P", 3) == "P:pk:3");
    assert_true(lease_key("P", 3) == "P:lease:3");
    // Values: a topic's carries the user id (any bytes, ':' too), a user's only since.
    int64_t since = 0;
    std::string user;
    assert_true(encode_presence_value('t', 1700000000123, "a:b") == "1700000000123:a:b");
    assert_true(decode_presence_value('t', "1700000000123:a:b", &since, &user));
    assert_int_equal(since, 1700000000123);
    assert_true(user == "a:b");
    assert_true(decode_presence_value('t', "5:", &since, &user) && since == 5 && user.empty());
    assert_true(encode_presence_value('u', 42, "ignored") == "42");
    assert_true(decode_presence_value('u', "42", &since, &user) && since == 42 && user.empty());
    assert_false(decode_presence_value('t', "42", &since, &user));   // no user part
    assert_false(decode_presence_value('u', "4x2", &since, &user));
    assert_false(decode_presence_value('u', "", &since, &user));
    assert_false(decode_presence_value('u', "99999999999999999999", &since, &user));  // > INT64_MAX
    assert_false(decode_presence_value('t', "-1:x", &since, &user));
    uint64_t v = 0;
    assert_true(parse_u64("18446744073709551615", &v) && v == UINT64_MAX);
    assert_false(parse_u64("18446744073709551616", &v));
    assert_false(parse_u64("", &v));
    assert_false(parse_u64("+1", &v));
}

void test_presence_reply(void **) {
    std::vector<PresenceEntry> out;
    size_t invalid = 0;
    // Triples: node, connection id, value; what is not wsgate's is skipped and counted.
    std::vector<std::string_view> flat = {"2", "562949953421313", "100:alice",  // ok
                                          "0", "5", "1:x",                       // node 0
                                          "70000", "5", "1:x",                   // node out of range
                                          "3", "abc", "1:x",                     // not an id
                                          "3", "9", "nocolon",                   // bad value
                                          "3", "844424930131969", "7:"};         // ok, anonymous
    assert_true(parse_presence_reply('t', "room", flat, &out, &invalid));
    assert_int_equal(invalid, 4);
    assert_int_equal(out.size(), 2);
    assert_int_equal(out[0].node, 2);
    assert_true(out[0].conn == 562949953421313ull);
    assert_true(out[0].user_id == "alice");
    assert_int_equal(out[0].since_ms, 100);
    assert_int_equal(out[1].node, 3);
    assert_true(out[1].user_id.empty());
    // A user's entries take the user id from the name.
    out.clear();
    assert_true(parse_presence_reply('u', "bob", {"1", "10", "55"}, &out, &invalid));
    assert_int_equal(out.size(), 1);
    assert_true(out[0].user_id == "bob");
    // Not triples: refused as a whole.
    assert_false(parse_presence_reply('u', "bob", {"1", "10"}, &out, &invalid));
    // EVALSHA names the scripts by SHA1 (hex).
    assert_true(script_sha1("") == "da39a3ee5e6b4b0d3255bfef95601890afd80709");
}

int main() {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_envelope_round_trip_and_truncations),
        cmocka_unit_test(test_redis_addresses),
        cmocka_unit_test(test_backoff_doubles_within_bounds),
        cmocka_unit_test(test_registry_ids_carry_the_node),
        cmocka_unit_test(test_presence_keys_and_values),
        cmocka_unit_test(test_presence_reply),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
