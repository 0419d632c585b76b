// The cluster's pure parts: the envelope (every truncation of a valid one
// is refused, never read past its end), Redis addresses, the backoff's
// bounds, and the registry's node numbers in ids.
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

int main() {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_envelope_round_trip_and_truncations),
        cmocka_unit_test(test_redis_addresses),
        cmocka_unit_test(test_backoff_doubles_within_bounds),
        cmocka_unit_test(test_registry_ids_carry_the_node),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
