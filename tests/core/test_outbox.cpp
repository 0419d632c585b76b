// Internal unit tests of the outbox's queue policies (lib/core/outbox.h):
// what a full queue keeps under close, drop_newest, drop_oldest and
// conflate, in which order, what is counted and what is logged. The
// connections have no transport link, so nothing is written and the queue
// is exactly what deliver() left: every case is deterministic (the C ABI
// tests in test_delivery.c cover the policies end to end, with publish,
// writes, drains and control frames).
#include <algorithm>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <csetjmp>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "config/options.h"
#include "config/settings.h"
#include "core/callbacks.h"
#include "core/conn.h"
#include "core/heartbeat.h"
#include "core/outbox.h"
#include "core/wheel.h"
#include "observe/log.h"
#include "transport/transport.h"

// Last: cmocka's fail() macro would rewrite std::ios::fail() in the headers above.
extern "C" {
#include <cmocka.h>
}

using namespace wsgate;

namespace {

class FakeClock : public Clock {
public:
    int64_t now_ms() override { return t; }
    int64_t t = 1000000;
};

// One outbox with its parts, and connections without a link.
struct Rig {
    explicit Rig(std::vector<std::string> options) : settings(config(options)) {
        log.set_min_level(WSG_LOG_DEBUG);
        log.set_sink(&Rig::on_log, this);
    }
    ~Rig() {
        for (auto &c : conns) wheel.cancel(&c->timer);
    }

    static wsg_config config(const std::vector<std::string> &options) {
        wsg_config cfg;
        // No write deadline: these connections are never written.
        cfg.set_from_string("heartbeat.write_wait_ms=0");
        for (const std::string &o : options) assert_int_equal(cfg.set_from_string(o.c_str()), WSG_OK);
        return cfg;
    }
    static void on_log(wsg_server *, wsg_log_level, const char *event, const char *json, size_t len, void *user) {
        static_cast<Rig *>(user)->events.emplace_back(std::string(event) + " " + std::string(json, len));
    }

    Conn *conn(wsg_queue_policy policy) {
        conns.push_back(std::make_unique<Conn>());
        Conn *c = conns.back().get();
        c->id = conns.size();
        c->times = &settings.heartbeat;
        c->queue_policy.store(static_cast<uint8_t>(policy));
        // As a socket the kernel takes nothing more from: what is queued stays.
        c->writable_requested = true;
        return c;
    }
    // A binary message of `len` bytes whose payload starts with `tag`.
    void send(Conn *c, char tag, size_t len = 1000, const char *key = nullptr) {
        std::string payload(len, '.');
        payload[0] = tag;
        OutMessage m(WSG_MSG_BINARY, payload.data(), payload.size(), settings.write_batch_bytes);
        if (key) m.conflate_key = std::make_shared<const std::string>(key);
        outbox.deliver(c, m);
    }
    // The first payload byte of every queued message, in order.
    static std::string tags(const Conn *c) {
        std::string out;
        if (c->queue.empty()) return out;
        size_t seen = 0;
        for (uint64_t s = c->queue.front_seq(); seen < c->queue.count(); s++) {
            const Frame *f = c->queue.at(s);
            if (!f) continue;  // a hole
            seen++;
            if (FrameQueue::opens_message(f))
                out += static_cast<char>(f->data()[FrameBuilder::header_size(f->payload())]);
        }
        return out;
    }
    int count(const char *event) const {
        int n = 0;
        for (const std::string &e : events)
            if (e.compare(0, std::strlen(event) + 1, std::string(event) + " ") == 0) n++;
        return n;
    }
    std::string last(const char *event) const {
        for (auto it = events.rbegin(); it != events.rend(); ++it)
            if (it->compare(0, std::strlen(event) + 1, std::string(event) + " ") == 0) return *it;
        return "";
    }

    Settings settings;
    FakeClock clock;
    TimingWheel wheel{100, 64, clock.t};
    Heartbeat heartbeat{wheel};
    Transport transport{nullptr};
    Logger log;
    AppCallbacks app;
    Metrics metrics;
    Outbox outbox{settings, transport, log, clock, heartbeat, app, metrics};
    std::vector<std::unique_ptr<Conn>> conns;
    std::vector<std::string> events;
};

constexpr size_t kFramed = 1004;  // a 1000-byte message: 4 bytes of header

void test_drop_newest_keeps_what_is_queued(void **) {
    Rig r({"limits.max_queue_bytes=4096", "limits.queue_policy=drop_newest"});
    Conn *c = r.conn(WSG_QUEUE_DROP_NEWEST);
    for (char t : std::string("abcdefg")) r.send(c, t);
    assert_string_equal(Rig::tags(c).c_str(), "abcd");
    assert_int_equal(c->msgs_out.load(), 7);
    assert_int_equal(c->msgs_dropped.load(), 3);
    assert_int_equal(c->queued_bytes.load(), 4 * kFramed);
    // A smaller message still fits in what is left.
    r.send(c, 'h', 70);
    assert_string_equal(Rig::tags(c).c_str(), "abcdh");
    // Logged once for the whole episode, with the policy.
    assert_int_equal(r.count("queue_overflow"), 1);
    assert_non_null(std::strstr(r.last("queue_overflow").c_str(), "\"policy\":\"drop_newest\""));
    assert_int_equal(r.count("queue_recovered"), 0);
    assert_false(c->closing);
}

void test_drop_oldest_drops_whole_messages_from_the_front(void **) {
    Rig r({"limits.max_queue_bytes=4096"});
    Conn *c = r.conn(WSG_QUEUE_DROP_OLDEST);
    for (char t : std::string("abcdef")) r.send(c, t);
    assert_string_equal(Rig::tags(c).c_str(), "cdef");
    assert_int_equal(c->msgs_dropped.load(), 2);
    assert_int_equal(c->queued_bytes.load(), 4 * kFramed);
    // A message three times as large makes room for itself: three go.
    r.send(c, 'g', 3000);
    assert_string_equal(Rig::tags(c).c_str(), "fg");
    assert_int_equal(c->msgs_dropped.load(), 5);
    assert_int_equal(r.count("queue_overflow"), 1);
    assert_non_null(std::strstr(r.last("queue_overflow").c_str(), "\"policy\":\"drop_oldest\""));
}

void test_drop_oldest_never_drops_a_message_being_written(void **) {
    // Fragments of 1000 bytes: a 2,500-byte message is three frames.
    Rig r({"limits.max_queue_bytes=4096", "tuning.write_batch_bytes=1024"});
    Conn *c = r.conn(WSG_QUEUE_DROP_OLDEST);
    r.send(c, 'a', 2500);
    r.send(c, 'b', 500);
    assert_int_equal(c->queue.count(), 4);
    // a's first fragment went out: its other two must follow it.
    c->queue.pop();
    r.send(c, 'c', 2200);  // needs room: b goes, not a's rest
    assert_int_equal(c->msgs_dropped.load(), 1);
    assert_false(FrameQueue::opens_message(c->queue.front()));
    assert_int_equal(c->queue.count(), 5);  // a's last two fragments, then c's three
    assert_string_equal(Rig::tags(c).c_str(), "c");
    // Nothing whole can make room for a message this large: it is dropped
    // itself, and c stays.
    r.send(c, 'd', 3000);
    assert_int_equal(c->msgs_dropped.load(), 2);
    assert_int_equal(c->queue.count(), 5);
    assert_string_equal(Rig::tags(c).c_str(), "c");
}

void test_conflate_replaces_a_topic_in_its_place_while_behind(void **) {
    Rig r({"limits.max_queue_bytes=16384", "limits.queue_high_water_bytes=2048",
           "limits.queue_low_water_bytes=1024"});
    Conn *c = r.conn(WSG_QUEUE_CONFLATE);
    r.send(c, 'A', 1000, "a");  // a1
    r.send(c, 'B', 1000, "b");  // b1: 2008 queued, not behind yet
    assert_null(c->backlog());
    assert_string_equal(Rig::tags(c).c_str(), "AB");
    r.send(c, 'C', 1000, "a");  // a2: passes the high-water mark
    assert_non_null(c->backlog());
    assert_true(c->backlog()->behind);
    // Messages queued before the connection fell behind stay; from now on
    // the latest of each topic replaces the one queued since.
    r.send(c, 'D', 1000, "b");  // b2
    r.send(c, 'E', 1000, "a");  // a3 replaces a2, in its place
    r.send(c, 'F', 1000, "b");  // b3 replaces b2
    r.send(c, 'G', 1000, "a");  // a4 replaces a3
    assert_string_equal(Rig::tags(c).c_str(), "ABGF");
    assert_int_equal(c->msgs_dropped.load(), 3);
    assert_int_equal(c->msgs_out.load(), 7);
    assert_int_equal(c->queued_bytes.load(), 4 * kFramed);
    // A message without a key is queued as usual while it fits.
    r.send(c, 'x', 1000);
    assert_string_equal(Rig::tags(c).c_str(), "ABGFx");
    // A different size in the same place: the byte count follows.
    r.send(c, 'H', 10, "a");
    assert_string_equal(Rig::tags(c).c_str(), "ABHFx");
    assert_int_equal(c->queued_bytes.load(), 4 * kFramed + 12);
    assert_int_equal(r.count("queue_overflow"), 1);
    assert_non_null(std::strstr(r.last("queue_overflow").c_str(), "\"policy\":\"conflate\""));
}

void test_conflate_drops_what_does_not_fit_like_drop_newest(void **) {
    Rig r({"limits.max_queue_bytes=4096", "limits.queue_high_water_bytes=1024",
           "limits.queue_low_water_bytes=512"});
    Conn *c = r.conn(WSG_QUEUE_CONFLATE);
    r.send(c, 'A', 1000, "a");
    r.send(c, 'B', 1000, "b");  // behind from here
    r.send(c, 'C', 1000, "c");
    r.send(c, 'D', 1000, "d");
    assert_string_equal(Rig::tags(c).c_str(), "ABCD");
    // Full. Without a key, or with a key not queued since: dropped.
    r.send(c, 'x', 1000);
    r.send(c, 'E', 1000, "e");
    assert_string_equal(Rig::tags(c).c_str(), "ABCD");
    assert_int_equal(c->msgs_dropped.load(), 2);
    // With a key queued since: replaced (the queue stays full).
    r.send(c, 'F', 1000, "c");
    assert_string_equal(Rig::tags(c).c_str(), "ABFD");
    // Larger than the room of the one it replaces: dropped, the queued one stays.
    r.send(c, 'G', 1100, "d");
    assert_string_equal(Rig::tags(c).c_str(), "ABFD");
    assert_int_equal(c->msgs_dropped.load(), 4);
}

void test_conflate_puts_a_longer_message_at_the_back(void **) {
    Rig r({"limits.max_queue_bytes=65536", "limits.queue_high_water_bytes=1024",
           "limits.queue_low_water_bytes=512", "tuning.write_batch_bytes=1024"});
    Conn *c = r.conn(WSG_QUEUE_CONFLATE);
    r.send(c, 'A', 1000, "a");
    r.send(c, 'B', 1000, "b");  // behind
    r.send(c, 'C', 1000, "c");
    // Three fragments cannot take the place of one: the old one goes and
    // the new one is queued last.
    r.send(c, 'D', 2500, "b");
    assert_string_equal(Rig::tags(c).c_str(), "ACD");
    assert_int_equal(c->queue.count(), 5);
    // And a shorter one takes the longer one's place, leaving holes.
    r.send(c, 'E', 10, "b");
    assert_string_equal(Rig::tags(c).c_str(), "ACE");
    assert_int_equal(c->queue.count(), 3);
    assert_int_equal(c->queued_bytes.load(), 2 * kFramed + 12);
    assert_int_equal(c->msgs_dropped.load(), 2);
}

void test_conflate_forgets_a_message_once_it_is_being_written(void **) {
    Rig r({"limits.max_queue_bytes=65536", "limits.queue_high_water_bytes=1024",
           "limits.queue_low_water_bytes=512"});
    Conn *c = r.conn(WSG_QUEUE_CONFLATE);
    r.send(c, 'A', 1000, "a");
    r.send(c, 'B', 1000, "b");  // behind; b recorded
    c->queue.pop();             // A written
    c->queue.pop();             // B written: no longer replaceable
    r.send(c, 'C', 1000, "b");
    assert_string_equal(Rig::tags(c).c_str(), "C");
    assert_int_equal(c->msgs_dropped.load(), 0);
    r.send(c, 'D', 1000, "b");
    assert_string_equal(Rig::tags(c).c_str(), "D");
    assert_int_equal(c->msgs_dropped.load(), 1);
}

void test_a_fast_client_is_never_conflated(void **) {
    // Below the high-water mark every message is kept, keys or not.
    Rig r({"limits.max_queue_bytes=65536"});
    Conn *c = r.conn(WSG_QUEUE_CONFLATE);
    for (char t : std::string("abcdefgh")) r.send(c, t, 100, "same");
    assert_string_equal(Rig::tags(c).c_str(), "abcdefgh");
    assert_int_equal(c->msgs_dropped.load(), 0);
    assert_null(c->extra.get());
}

void test_close_policy_closes_with_the_configured_code(void **) {
    Rig r({"limits.max_queue_bytes=4096", "limits.queue_close_code=4000"});
    Conn *c = r.conn(WSG_QUEUE_CLOSE);
    for (char t : std::string("abcd")) r.send(c, t);
    assert_false(c->closing);
    assert_false(c->close_requested.load());
    r.send(c, 'e');
    assert_true(c->closing);
    assert_true(c->close_requested.load());  // other threads' sends now get WSG_ECLOSED
    assert_int_equal(c->close_code, 4000);
    assert_int_equal(c->close_cause(), WSG_CAUSE_BACKPRESSURE);
    assert_true(c->queue.empty());
    assert_int_equal(c->queued_bytes.load(), 0);
    assert_int_equal(c->msgs_dropped.load(), 0);  // nothing dropped: the connection ends
    assert_int_equal(r.count("backpressure"), 1);
    assert_int_equal(r.count("queue_overflow"), 0);
    // Later sends are ignored.
    r.send(c, 'f');
    assert_true(c->queue.empty());
}

void test_pongs_are_never_dropped_by_any_policy(void **) {
    for (wsg_queue_policy p : {WSG_QUEUE_DROP_NEWEST, WSG_QUEUE_DROP_OLDEST, WSG_QUEUE_CONFLATE, WSG_QUEUE_CLOSE}) {
        Rig r({"limits.max_queue_bytes=4096"});
        Conn *c = r.conn(p);
        for (char t : std::string("abcd")) r.send(c, t);
        const uint8_t ping[4] = {1, 2, 3, 4};
        for (int i = 0; i < 10; i++) r.outbox.pong(c, ping, sizeof ping);
        // Past the limit: control frames do not wait for room.
        assert_int_equal(c->control.count(), 10);
        assert_int_equal(c->queued_bytes.load(), 4 * kFramed + 10 * 6);
        assert_false(c->closing);
        assert_string_equal(Rig::tags(c).c_str(), "abcd");
    }
}

void test_policy_of_each_connection_is_its_own(void **) {
    Rig r({"limits.max_queue_bytes=2048"});
    Conn *a = r.conn(WSG_QUEUE_DROP_NEWEST), *b = r.conn(WSG_QUEUE_DROP_OLDEST);
    for (char t : std::string("xyz")) {
        r.send(a, t);
        r.send(b, t);
    }
    assert_string_equal(Rig::tags(a).c_str(), "xy");
    assert_string_equal(Rig::tags(b).c_str(), "yz");
    // Switched at run time: applies to the next message.
    a->queue_policy.store(WSG_QUEUE_DROP_OLDEST);
    r.send(a, 'w');
    assert_string_equal(Rig::tags(a).c_str(), "yw");
    assert_int_equal(r.count("queue_overflow"), 2);  // one episode per connection
}

// ---- all queues together: limits.max_total_queue_bytes

void test_total_cap_charges_each_connection_behind_with_its_policy(void **) {
    // Room for 6 messages in all; each queue could hold 16.
    Rig r({"limits.max_queue_bytes=16384", "limits.max_total_queue_bytes=6100"});
    Conn *a = r.conn(WSG_QUEUE_DROP_NEWEST), *b = r.conn(WSG_QUEUE_DROP_NEWEST), *c = r.conn(WSG_QUEUE_DROP_OLDEST);
    size_t most = 0;
    for (char t : std::string("abcdefgh")) {
        for (Conn *x : {a, b, c}) {
            r.send(x, t);
            most = std::max(most, r.outbox.ledger().bytes);
        }
    }
    // Never past the cap: these connections are all behind.
    assert_true(most <= 6100);
    assert_int_equal(r.outbox.ledger().bytes, 6 * kFramed);
    // drop_newest kept what came first; drop_oldest made room in its own
    // queue for each newer message (its queue does not grow past the cap).
    assert_string_equal(Rig::tags(a).c_str(), "ab");
    assert_string_equal(Rig::tags(b).c_str(), "ab");
    assert_string_equal(Rig::tags(c).c_str(), "gh");
    assert_int_equal(a->msgs_dropped.load() + b->msgs_dropped.load() + c->msgs_dropped.load(), 24 - 6);
    assert_int_equal(a->queued_bytes.load() + b->queued_bytes.load() + c->queued_bytes.load(), 6 * kFramed);
    // One episode for the server, not one line per message or per connection.
    assert_int_equal(r.count("queue_overflow"), 1);
    const std::string first = r.last("queue_overflow");
    assert_non_null(std::strstr(first.c_str(), "\"cap\":\"total\""));
    assert_non_null(std::strstr(first.c_str(), "\"limit\":6100"));
    assert_null(a->backlog());  // no connection episode: its queue is small
    // Over once 2 s pass without a refusal, with the counts.
    r.clock.t += 1000;
    r.outbox.report(r.clock.t);
    assert_int_equal(r.count("queue_recovered"), 0);
    r.clock.t += 1000;
    r.outbox.report(r.clock.t);
    assert_int_equal(r.count("queue_recovered"), 1);
    const std::string end = r.last("queue_recovered");
    assert_non_null(std::strstr(end.c_str(), "\"dropped\":18"));
    assert_non_null(std::strstr(end.c_str(), "\"closed\":0"));
    assert_non_null(std::strstr(end.c_str(), "\"ended\":true"));
    r.clock.t += 5000;
    r.outbox.report(r.clock.t);
    assert_int_equal(r.count("queue_recovered"), 1);
}

void test_total_cap_reminds_while_it_lasts(void **) {
    Rig r({"limits.max_total_queue_bytes=2048"});
    Conn *a = r.conn(WSG_QUEUE_DROP_NEWEST);
    for (int s = 0; s < 70; s++) {
        r.send(a, 'x');
        r.clock.t += 1000;
        r.outbox.report(r.clock.t);
    }
    // Started once, reminded once after a minute, never ended meanwhile.
    assert_int_equal(r.count("queue_overflow"), 2);
    assert_int_equal(r.count("queue_recovered"), 0);
    assert_non_null(std::strstr(r.last("queue_overflow").c_str(), "\"dropped\":"));
}

void test_total_cap_charges_the_slow_not_the_fast(void **) {
    Rig r({"limits.max_total_queue_bytes=16384"});
    Conn *slow = r.conn(WSG_QUEUE_CLOSE), *fast = r.conn(WSG_QUEUE_CLOSE);
    fast->writable_requested = false;  // its socket took everything so far
    for (int i = 0; i < 16; i++) r.send(slow, 's');
    assert_int_equal(r.outbox.ledger().bytes, 16 * kFramed);  // 16,064: at the cap
    // The backlog is the slow one's: the fast one's messages pass the cap.
    for (char t : std::string("ab")) r.send(fast, t);
    assert_string_equal(Rig::tags(fast).c_str(), "ab");
    assert_false(fast->closing);
    assert_false(slow->closing);
    // The slow one pays with its own policy: close, with the queue's code,
    // and what it held is freed at once.
    r.send(slow, 'e');
    assert_true(slow->closing);
    assert_int_equal(slow->close_code, 1013);
    assert_int_equal(slow->close_cause(), WSG_CAUSE_BACKPRESSURE);
    assert_int_equal(r.count("backpressure"), 1);
    assert_non_null(std::strstr(r.last("backpressure").c_str(), "\"cap\":\"total\""));
    assert_int_equal(r.outbox.ledger().bytes, 2 * kFramed);
    assert_int_equal(r.count("queue_overflow"), 1);
    r.clock.t += 2000;
    r.outbox.report(r.clock.t);
    assert_non_null(std::strstr(r.last("queue_recovered").c_str(), "\"closed\":1"));
}

void test_total_cap_bounds_one_event_to_a_connection_that_keeps_up(void **) {
    // Sixteen slow connections hold the 64 KiB cap; a connection that keeps
    // up may be given up to its high-water mark (2 KiB here) past it within
    // one event; more, and it pays too.
    Rig r({"limits.max_queue_bytes=4096", "limits.max_total_queue_bytes=65536"});
    for (int i = 0; i < 16; i++) {
        Conn *slow = r.conn(WSG_QUEUE_DROP_NEWEST);
        for (int j = 0; j < 4; j++) r.send(slow, 's');
    }
    assert_int_equal(r.outbox.ledger().bytes, 64 * kFramed);
    Conn *fast = r.conn(WSG_QUEUE_DROP_NEWEST);
    fast->writable_requested = false;
    for (char t : std::string("abcd")) r.send(fast, t);
    assert_string_equal(Rig::tags(fast).c_str(), "ab");
    assert_int_equal(fast->msgs_dropped.load(), 2);
    assert_int_equal(r.count("queue_overflow"), 1);
    assert_non_null(std::strstr(r.last("queue_overflow").c_str(), "\"cap\":\"total\""));
}

void test_total_cap_keeps_a_reserve_of_an_eighth_for_connections_that_keep_up(void **) {
    // 8 KiB cap: 1 KiB of reserve above it for connections that keep up.
    Rig r({"limits.max_queue_bytes=65536", "limits.max_total_queue_bytes=8192"});
    Conn *slow = r.conn(WSG_QUEUE_DROP_NEWEST);
    for (int i = 0; i < 20; i++) r.send(slow, 's');
    assert_int_equal(r.outbox.ledger().bytes, 8 * kFramed);  // 8,032: at the cap
    std::vector<Conn *> fast;
    for (int i = 0; i < 3; i++) {
        fast.push_back(r.conn(WSG_QUEUE_DROP_NEWEST));
        fast.back()->writable_requested = false;
        r.send(fast.back(), 'f');
    }
    // The first fits in the reserve; nothing passes cap + cap/8.
    assert_int_equal(fast[0]->msgs_dropped.load(), 0);
    assert_int_equal(fast[1]->msgs_dropped.load(), 1);
    assert_int_equal(fast[2]->msgs_dropped.load(), 1);
    assert_true(r.outbox.ledger().bytes <= 8192 + 1024);
    // Written (the fast one keeps up): the reserve is free again.
    fast[0]->queue.clear();
    r.send(fast[1], 'g');
    assert_string_equal(Rig::tags(fast[1]).c_str(), "g");
}

void test_total_cap_counts_a_broadcast_once(void **) {
    // Eight connections behind, 4 KiB in all: one shared 1 KiB message per
    // connection costs 1 KiB, not 8.
    Rig r({"limits.max_total_queue_bytes=4096"});
    std::vector<Conn *> all;
    for (int i = 0; i < 8; i++) all.push_back(r.conn(WSG_QUEUE_DROP_NEWEST));
    for (char t : std::string("abc")) {
        std::string payload(1000, t);
        OutMessage m(WSG_MSG_BINARY, payload.data(), payload.size(), r.settings.write_batch_bytes);
        r.outbox.deliver(all, m);
    }
    assert_int_equal(r.outbox.ledger().bytes, 3 * kFramed);
    for (Conn *c : all) {
        assert_int_equal(c->queued_bytes.load(), 3 * kFramed);
        assert_int_equal(c->msgs_dropped.load(), 0);
    }
    // The next one would pass the cap: every connection behind drops it.
    std::string payload(1100, 'd');
    OutMessage m(WSG_MSG_BINARY, payload.data(), payload.size(), r.settings.write_batch_bytes);
    r.outbox.deliver(all, m);
    assert_int_equal(r.outbox.ledger().bytes, 3 * kFramed);
    for (Conn *c : all) assert_int_equal(c->msgs_dropped.load(), 1);
    // Leaving the queues frees the memory once the last one lets go.
    for (size_t i = 0; i + 1 < all.size(); i++) all[i]->queue.clear();
    assert_int_equal(r.outbox.ledger().bytes, 3 * kFramed);
    all.back()->queue.clear();
    assert_int_equal(r.outbox.ledger().bytes, 0);
}

void test_total_cap_lets_a_conflated_update_take_its_place(void **) {
    Rig r({"limits.max_queue_bytes=65536", "limits.queue_high_water_bytes=1024",
           "limits.queue_low_water_bytes=512", "limits.max_total_queue_bytes=3100"});
    Conn *c = r.conn(WSG_QUEUE_CONFLATE);
    r.send(c, 'A', 1000, "a");
    r.send(c, 'B', 1000, "b");  // behind from here
    r.send(c, 'C', 1000, "c");
    // Full in all: a new key is dropped, an update of a queued key replaces it.
    r.send(c, 'D', 1000, "d");
    r.send(c, 'E', 1000, "c");
    assert_string_equal(Rig::tags(c).c_str(), "ABE");
    // An update larger than what it replaces would pass the cap: dropped.
    r.send(c, 'F', 1200, "c");
    assert_string_equal(Rig::tags(c).c_str(), "ABE");
    assert_int_equal(c->msgs_dropped.load(), 3);
    assert_true(r.outbox.ledger().bytes <= 3100);
}

void test_no_total_cap_when_zero(void **) {
    Rig r({"limits.max_total_queue_bytes=0"});
    Conn *a = r.conn(WSG_QUEUE_DROP_NEWEST), *b = r.conn(WSG_QUEUE_DROP_NEWEST);
    for (int i = 0; i < 100; i++) {
        r.send(a, 'x');
        r.send(b, 'y');
    }
    assert_int_equal(r.outbox.ledger().bytes, 200 * kFramed);
    assert_int_equal(a->msgs_dropped.load() + b->msgs_dropped.load(), 0);
}

}  // namespace

int main() {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_drop_newest_keeps_what_is_queued),
        cmocka_unit_test(test_drop_oldest_drops_whole_messages_from_the_front),
        cmocka_unit_test(test_drop_oldest_never_drops_a_message_being_written),
        cmocka_unit_test(test_conflate_replaces_a_topic_in_its_place_while_behind),
        cmocka_unit_test(test_conflate_drops_what_does_not_fit_like_drop_newest),
        cmocka_unit_test(test_conflate_puts_a_longer_message_at_the_back),
        cmocka_unit_test(test_conflate_forgets_a_message_once_it_is_being_written),
        cmocka_unit_test(test_a_fast_client_is_never_conflated),
        cmocka_unit_test(test_close_policy_closes_with_the_configured_code),
        cmocka_unit_test(test_pongs_are_never_dropped_by_any_policy),
        cmocka_unit_test(test_policy_of_each_connection_is_its_own),
        cmocka_unit_test(test_total_cap_charges_each_connection_behind_with_its_policy),
        cmocka_unit_test(test_total_cap_reminds_while_it_lasts),
        cmocka_unit_test(test_total_cap_charges_the_slow_not_the_fast),
        cmocka_unit_test(test_total_cap_bounds_one_event_to_a_connection_that_keeps_up),
        cmocka_unit_test(test_total_cap_keeps_a_reserve_of_an_eighth_for_connections_that_keep_up),
        cmocka_unit_test(test_total_cap_counts_a_broadcast_once),
        cmocka_unit_test(test_total_cap_lets_a_conflated_update_take_its_place),
        cmocka_unit_test(test_no_total_cap_when_zero),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
