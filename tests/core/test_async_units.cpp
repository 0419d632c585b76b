// Internal unit tests of the pieces behind asynchronous calls:
//   - SessionMemory (lib/core/session_memory.h): TTL rules like Redis' SET
//     PX (a set replaces value and deadline; an expired key is never
//     returned and is freed on access), sweep() frees at most its bound per
//     call in deadline order, bytes() follows what is held; a random model
//     check against a plain map;
//   - AsyncCalls (lib/core/async_calls.h): each call answered exactly once,
//     by answer() or fail_all(), also when a callback adds calls during
//     fail_all; answer_abandoned answers only commands carrying a reply.
// Fake time throughout (explicit `now`).
#include <cstdarg>
#include <cstddef>
#include <csetjmp>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

extern "C" {
#include <cmocka.h>
}

#include "core/async_calls.h"
#include "core/session_memory.h"
#include "support/rng.h"

using wsgate::AsyncCalls;
using wsgate_test::Rng;
using wsgate::AsyncReply;
using wsgate::SessionMemory;

static void memory_ttl_rules(void **) {
    SessionMemory m;
    m.set("a", "1", 100, 1000);
    assert_int_equal(m.size(), 1);
    assert_int_equal(m.bytes(), 2);
    assert_non_null(m.get("a", 1099));
    assert_string_equal(m.get("a", 1099)->c_str(), "1");
    assert_null(m.get("a", 1100));  // the deadline is exclusive, as in Redis
    assert_int_equal(m.size(), 0);  // freed on access
    assert_int_equal(m.bytes(), 0);
    // A set replaces value and deadline.
    m.set("b", "old", 100, 0);
    m.set("b", "newer", 1000, 50);
    assert_int_equal(m.size(), 1);
    assert_int_equal(m.bytes(), 6);
    assert_string_equal(m.get("b", 500)->c_str(), "newer");
    assert_int_equal(m.sweep(500, 10), 0);  // the old deadline is gone
    // erase: true only for a live entry; an expired one is freed all the same.
    assert_true(m.erase("b", 600));
    assert_false(m.erase("b", 600));
    m.set("c", "x", 10, 0);
    assert_false(m.erase("c", 20));
    assert_int_equal(m.size(), 0);
    // Huge TTLs do not overflow.
    m.set("d", "x", INT64_MAX, 1000);
    assert_non_null(m.get("d", INT64_MAX - 1));
}

static void memory_sweep_is_bounded(void **) {
    SessionMemory m;
    for (int i = 0; i < 100; i++) m.set("k" + std::to_string(i), "v", 10 + i, 0);
    m.set("live", "v", 1000, 0);
    assert_int_equal(m.sweep(5, 1000), 0);
    assert_int_equal(m.sweep(200, 30), 30);  // the bound
    assert_int_equal(m.size(), 71);
    assert_null(m.get("k0", 1));  // swept first: the earliest deadlines
    assert_non_null(m.get("k30", 1));
    assert_int_equal(m.sweep(200, 1000), 70);
    assert_int_equal(m.size(), 1);
    assert_int_equal(m.bytes(), 5);
    assert_non_null(m.get("live", 200));
}

static void memory_model_check(void **) {
    SessionMemory m;
    std::map<std::string, std::pair<std::string, int64_t>> model;
    Rng rng(12345);
    int64_t now = 0;
    for (int step = 0; step < 20000; step++) {
        now += static_cast<int64_t>(rng.below(5));
        const std::string key = "k" + std::to_string(rng.below(50));
        switch (rng.below(4)) {
        case 0: {
            const std::string value(rng.below(20), 'v');
            const int64_t ttl = 1 + static_cast<int64_t>(rng.below(200));
            m.set(key, value, ttl, now);
            model[key] = {value, now + ttl};
            break;
        }
        case 1: {
            auto it = model.find(key);
            const bool live = it != model.end() && it->second.second > now;
            const std::string *got = m.get(key, now);
            assert_int_equal(got != nullptr, live);
            if (live) assert_true(*got == it->second.first);
            if (it != model.end() && !live) model.erase(it);
            break;
        }
        case 2: {
            auto it = model.find(key);
            const bool live = it != model.end() && it->second.second > now;
            assert_int_equal(m.erase(key, now), live);
            if (it != model.end()) model.erase(it);
            break;
        }
        default: {
            m.sweep(now, 3);
            break;
        }
        }
    }
    m.sweep(now + 1000, SIZE_MAX);
    assert_int_equal(m.size(), 0);
    assert_int_equal(m.bytes(), 0);
}

struct Tally {
    int calls = 0;
    wsg_status status = WSG_OK;
    std::string message;
};

static void tally(wsg_server *, const wsg_result *r, void *user) {
    auto *t = static_cast<Tally *>(user);
    t->calls++;
    t->status = r->status;
    t->message = r->message;
}

static void calls_answered_once(void **) {
    Tally a, b, c;
    AsyncCalls calls(nullptr);
    const AsyncCalls::Id ia = calls.add(AsyncReply{tally, &a});
    const AsyncCalls::Id ib = calls.add(AsyncReply{tally, &b});
    calls.add(AsyncReply{tally, &c});
    calls.add(AsyncReply{nullptr, nullptr});  // fn may be NULL: nobody told
    assert_int_equal(calls.size(), 4);
    wsg_result ok;
    assert_true(calls.answer(ia, ok));
    assert_false(calls.answer(ia, ok));  // once
    assert_true(calls.answer(ib, WSG_ECLUSTER, "down"));
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.status, WSG_ECLUSTER);
    calls.fail_all(WSG_ESTATE, wsgate::kStoppedMessage);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.status, WSG_ESTATE);
    assert_int_equal(calls.size(), 0);
    assert_false(calls.answer(ib, ok));
    calls.fail_all(WSG_ESTATE, "again");  // nothing left
    assert_int_equal(a.calls + b.calls + c.calls, 3);
}

// A callback that starts a new call while fail_all runs: answered too.
struct Chain {
    AsyncCalls *calls;
    Tally *next;
    int calls_seen = 0;
};

static void chain(wsg_server *, const wsg_result *, void *user) {
    auto *ch = static_cast<Chain *>(user);
    ch->calls_seen++;
    if (ch->next) ch->calls->add(AsyncReply{tally, ch->next});
}

static void calls_added_during_fail_all(void **) {
    AsyncCalls calls(nullptr);
    Tally later;
    Chain ch{&calls, &later};
    calls.add(AsyncReply{chain, &ch});
    calls.fail_all(WSG_ESTATE, "stop");
    assert_int_equal(ch.calls_seen, 1);
    assert_int_equal(later.calls, 1);
    assert_int_equal(calls.size(), 0);
}

struct WithReply {
    AsyncReply reply;
};
struct WithoutReply {
    int reply;  // same name, not an AsyncReply
};

static void abandoned_commands(void **) {
    static_assert(wsgate::carries_reply<WithReply>::value, "");
    static_assert(!wsgate::carries_reply<WithoutReply>::value, "");
    static_assert(!wsgate::carries_reply<int>::value, "");
    Tally t;
    WithReply w{AsyncReply{tally, &t}};
    WithoutReply n{0};
    wsgate::answer_abandoned(w, nullptr);
    wsgate::answer_abandoned(n, nullptr);
    assert_int_equal(t.calls, 1);
    assert_int_equal(t.status, WSG_ESTATE);
    assert_string_equal(t.message.c_str(), wsgate::kStoppedMessage);
}

int main() {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(memory_ttl_rules),        cmocka_unit_test(memory_sweep_is_bounded),
        cmocka_unit_test(memory_model_check),      cmocka_unit_test(calls_answered_once),
        cmocka_unit_test(calls_added_during_fail_all), cmocka_unit_test(abandoned_commands),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
