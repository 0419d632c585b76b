// Internal unit tests of the hashed timing wheel (lib/wheel.h).
//
// Time is fake throughout: a FakeClock (the injectable wsgate::Clock) or
// explicit `now` values, so every case is deterministic and runs in
// microseconds of fake time per step. What is checked, from the header's
// contract:
//   - a timer fires at the first advance() whose `now` >= its deadline, never
//     earlier, exactly once (fire-time checks in every case);
//   - within a slot pass timers fire in deadline order (and with steps
//     shorter than a revolution, globally in deadline order);
//   - schedule() moves an armed timer (earlier, later, same slot, a later
//     revolution of the same slot); cancel() disarms, also from inside fire();
//   - fire() may re-schedule or cancel itself or any other timer;
//   - deadlines more than one revolution ahead stay armed and fire once;
//   - huge jumps in time fire everything due exactly once;
//   - overdue deadlines fire on the next advance();
//   - size() and WheelTimer::armed agree with what is armed;
//   - 1,000,000 timers, and two random-operation model checks against a
//     std::multimap reference.
//
// Memory errors in the intrusive lists are left to the sanitizer build
// (WSGATE_SANITIZE=ON), which runs these same cases.
#include "support/rng.h"
#include <algorithm>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <csetjmp>
#include <cstdio>
#include <limits>
#include <map>
#include <memory>
#include <vector>

extern "C" {
#include <cmocka.h>
}

#include "core/wheel.h"

using wsgate::Clock;
using wsgate::SteadyClock;
using wsgate::TimingWheel;
using wsgate::WheelTimer;

namespace {

// ------------------------------------------------------------------ helpers

using wsgate_test::Rng;

// The wheel's time source, driven by hand.
class FakeClock : public Clock {
public:
    explicit FakeClock(int64_t t) : t_(t) {}
    int64_t now_ms() override { return t_; }
    void set(int64_t t) { t_ = t; }
    void step(int64_t d) { t_ += d; }

private:
    int64_t t_;
};

// A wheel, a fake clock and a pool of timers addressed by index. tick()
// advances the wheel to the clock's time and records what fired; the
// optional hook runs inside fire() (after the record) to re-schedule or
// cancel.
struct Harness {
    FakeClock clock;
    TimingWheel wheel;
    std::vector<WheelTimer> timers;
    std::vector<size_t> fired;        // ids fired by the last tick()
    std::vector<int64_t> fire_now;    // matching `now` of each fire
    std::vector<unsigned> fire_count;  // per id, over the whole run

    Harness(int64_t tick_ms, uint32_t slots, int64_t start_ms, size_t n)
        : clock(start_ms), wheel(tick_ms, slots, start_ms), timers(n), fire_count(n, 0) {}

    WheelTimer *t(size_t i) { return &timers.at(i); }
    size_t id(const WheelTimer *p) const {
        assert_true(p >= timers.data() && p < timers.data() + timers.size());
        return static_cast<size_t>(p - timers.data());
    }
    void schedule(size_t i, int64_t deadline) { wheel.schedule(t(i), deadline); }
    void cancel(size_t i) { wheel.cancel(t(i)); }

    template <class Hook>
    size_t tick_at(int64_t now, Hook &&hook) {
        clock.set(now);
        fired.clear();
        fire_now.clear();
        const int64_t at = clock.now_ms();
        size_t n = wheel.advance(at, [&](WheelTimer *p) {
            size_t i = id(p);
            // Unlinked before fire(), never early.
            assert_false(p->armed);
            assert_true(p->deadline <= at);
            fired.push_back(i);
            fire_now.push_back(at);
            fire_count[i]++;
            hook(i, p);
        });
        assert_int_equal(n, fired.size());
        return n;
    }
    size_t tick_at(int64_t now) {
        return tick_at(now, [](size_t, WheelTimer *) {});
    }
    size_t armed_count() const {
        size_t n = 0;
        for (const WheelTimer &x : timers) n += x.armed ? 1 : 0;
        return n;
    }
};

std::vector<size_t> sorted(std::vector<size_t> v) {
    std::sort(v.begin(), v.end());
    return v;
}

void assert_fired(const Harness &h, std::vector<size_t> want) {
    std::vector<size_t> got = sorted(h.fired);
    want = sorted(want);
    if (got != want) {
        print_error("fired:");
        for (size_t i : got) print_error(" %zu", i);
        print_error("\nwanted:");
        for (size_t i : want) print_error(" %zu", i);
        print_error("\n");
        fail();
    }
}

// The default fixture: 10 ms x 64 slots (one revolution = 640 ms), start 0.
int setup(void **state) {
    *state = new Harness(10, 64, 0, 64);
    return 0;
}

int teardown(void **state) {
    delete static_cast<Harness *>(*state);
    return 0;
}

Harness &H(void **state) { return *static_cast<Harness *>(*state); }

// ------------------------------------------------------------------ basic firing

void test_fires_at_deadline_not_before(void **state) {
    Harness &h = H(state);
    assert_int_equal(h.wheel.tick_ms(), 10);
    assert_int_equal(h.wheel.size(), 0);
    assert_int_equal(h.tick_at(0), 0);  // empty wheel: nothing, no crash

    h.schedule(0, 1234);  // mid-tick
    h.schedule(1, 1240);  // on a tick boundary
    h.schedule(2, 1241);  // one ms after it
    assert_int_equal(h.wheel.size(), 3);
    assert_true(h.t(0)->armed);
    assert_int_equal(h.t(0)->deadline, 1234);

    assert_int_equal(h.tick_at(1233), 0);
    assert_int_equal(h.tick_at(1233), 0);  // same now again: still nothing
    assert_int_equal(h.tick_at(1234), 1);
    assert_fired(h, {0});
    assert_false(h.t(0)->armed);
    assert_int_equal(h.wheel.size(), 2);
    assert_int_equal(h.tick_at(1234), 0);  // not twice

    assert_int_equal(h.tick_at(1239), 0);
    assert_int_equal(h.tick_at(1240), 1);
    assert_fired(h, {1});
    assert_int_equal(h.tick_at(1240), 0);
    assert_int_equal(h.tick_at(1241), 1);
    assert_fired(h, {2});
    assert_int_equal(h.wheel.size(), 0);
    assert_int_equal(h.tick_at(100000), 0);
    for (size_t i = 0; i < 3; i++) assert_int_equal(h.fire_count[i], 1);
}

// Non-zero origin, deadlines at and before it, time before it.
void test_origin_and_early_times(void **state) {
    (void)state;
    Harness h(10, 64, 5000, 4);
    h.schedule(0, 5000);  // at the origin
    h.schedule(1, 5003);  // inside tick 0
    h.schedule(2, 4000);  // before the origin: tick 0, already due at 4000
    h.schedule(3, -7);    // negative times are just times
    assert_int_equal(h.tick_at(-10), 0);  // before everything
    assert_int_equal(h.tick_at(3000), 1);
    assert_fired(h, {3});
    assert_int_equal(h.tick_at(3999), 0);
    assert_int_equal(h.tick_at(4000), 1);
    assert_fired(h, {2});
    assert_int_equal(h.tick_at(5000), 1);
    assert_fired(h, {0});
    assert_int_equal(h.tick_at(5002), 0);
    assert_int_equal(h.tick_at(5003), 1);
    assert_fired(h, {1});
    assert_int_equal(h.wheel.size(), 0);
}

// Out-of-range construction is clamped, not undefined: tick <= 0 means 1 ms;
// 0 slots means 1; a non power of two is rounded up. All still fire right.
void test_constructor_edges(void **state) {
    (void)state;
    const struct {
        int64_t tick;
        uint32_t slots;
        int64_t want_tick;
    } cases[] = {{0, 0, 1}, {-5, 1, 1}, {10, 3, 10}, {7, 100, 7}};
    for (const auto &c : cases) {
        Harness h(c.tick, c.slots, 0, 3);
        assert_int_equal(h.wheel.tick_ms(), c.want_tick);
        h.schedule(0, 5);
        h.schedule(1, 1000);
        h.schedule(2, 0);
        assert_int_equal(h.tick_at(0), 1);
        assert_fired(h, {2});
        assert_int_equal(h.tick_at(4), 0);
        assert_int_equal(h.tick_at(5), 1);
        assert_fired(h, {0});
        assert_int_equal(h.tick_at(999), 0);
        assert_int_equal(h.tick_at(1000), 1);
        assert_fired(h, {1});
        assert_int_equal(h.wheel.size(), 0);
    }
}

// The wheel takes times from any Clock; the real one is monotonic.
void test_clocks(void **state) {
    (void)state;
    SteadyClock steady;
    Clock &c = steady;
    int64_t a = c.now_ms();
    int64_t b = c.now_ms();
    assert_true(b >= a);

    FakeClock fake(100);
    Clock &f = fake;
    assert_int_equal(f.now_ms(), 100);
    fake.step(5);
    assert_int_equal(f.now_ms(), 105);
}

// ------------------------------------------------------------------ ordering

// Distinct deadlines over ~3 revolutions, several per tick,
// advanced in random steps of 1..49 ms (sub-tick and multi-tick): global
// deadline order, each at the first advance with now >= deadline.
void test_order_small_steps(void **state) {
    (void)state;
    const size_t n = 3000;
    Harness h(10, 256, 0, n);  // revolution 2,560 ms
    Rng rng(11);
    // n distinct values out of [0, 8000): ~4 per tick, over ~3 revolutions,
    // scheduled in random order.
    std::vector<int64_t> pick(8000);
    for (size_t i = 0; i < pick.size(); i++) pick[i] = static_cast<int64_t>(i);
    for (size_t i = pick.size() - 1; i > 0; i--) std::swap(pick[i], pick[rng.below(static_cast<uint32_t>(i + 1))]);
    std::vector<int64_t> deadline(pick.begin(), pick.begin() + n);
    for (size_t i = 0; i < n; i++) h.schedule(i, deadline[i]);
    assert_int_equal(h.wheel.size(), n);

    int64_t prev_now = -1, last_deadline = -1;
    size_t total = 0;
    for (int64_t now = 0; now <= 8100; now += rng.range(1, 49)) {
        h.tick_at(now);
        for (size_t i : h.fired) {
            assert_true(deadline[i] > last_deadline);  // strictly: deadlines are distinct
            last_deadline = deadline[i];
            assert_true(deadline[i] <= now);
            assert_true(deadline[i] > prev_now);  // the first advance that covers it
        }
        total += h.fired.size();
        prev_now = now;
    }
    h.tick_at(8100);
    total += h.fired.size();
    assert_int_equal(total, n);
    assert_int_equal(h.wheel.size(), 0);
}

// Equal deadlines in one slot, and a slot mixing this revolution with later
// ones: the due ones fire, in deadline order, the rest stay.
void test_order_within_slot(void **state) {
    Harness &h = H(state);
    // All in tick 10 (slot 10); 5 of them one and two revolutions later.
    const int64_t d[] = {109, 100, 105, 105, 101, 740, 105 + 640, 1380, 108, 100};
    for (size_t i = 0; i < 10; i++) h.schedule(i, d[i]);
    assert_int_equal(h.tick_at(105), 5);
    std::vector<int64_t> got;
    for (size_t i : h.fired) got.push_back(d[i]);
    assert_true(std::is_sorted(got.begin(), got.end()));
    assert_fired(h, {1, 9, 4, 2, 3});
    assert_int_equal(h.tick_at(109), 2);
    assert_fired(h, {0, 8});
    assert_int_equal(h.fired[0], 8);
    assert_int_equal(h.wheel.size(), 3);
    assert_int_equal(h.tick_at(739), 0);
    assert_int_equal(h.tick_at(745), 2);
    assert_fired(h, {5, 6});
    assert_int_equal(h.fired[0], 5);
    assert_int_equal(h.tick_at(1380), 1);
    assert_fired(h, {7});
}

// ------------------------------------------------------------------ re-arm and cancel

// The lazy pattern: activity only stores the owner's deadline; when the
// timer fires early-by-design the owner re-arms it for the real deadline.
// Each connection must time out exactly when its last activity + idle is
// reached, and the wheel must see ~one operation per idle period, not one
// per message.
void test_lazy_rearm_later(void **state) {
    (void)state;
    struct Conn {
        WheelTimer timer;  // first member: the fire() pointer is the Conn
        int64_t real_deadline = 0;
        int64_t last_activity = 0;
        int64_t active_until = 0;
        int64_t next_msg = 0;
        int64_t timed_out_at = -1;
        unsigned wheel_fires = 0;
    };
    const int64_t idle = 1000, step = 10;
    const size_t n = 200;
    Rng rng(23);
    TimingWheel wheel(step, 64, 0);
    std::vector<Conn> conns(n);
    size_t activity = 0, wheel_ops = 0;
    for (Conn &c : conns) {
        c.active_until = rng.range(0, 2000) * step;
        c.next_msg = rng.range(1, 8) * step;
        c.real_deadline = idle;
        wheel.schedule(&c.timer, c.real_deadline);
        wheel_ops++;
    }
    for (int64_t now = step; now <= 25000; now += step) {
        for (Conn &c : conns) {
            if (c.timed_out_at < 0 && now < c.active_until && now >= c.next_msg) {
                c.real_deadline = now + idle;  // O(1): the wheel is not touched
                c.last_activity = now;
                c.next_msg = now + rng.range(2, 8) * step;
                activity++;
            }
        }
        wheel.advance(now, [&](WheelTimer *t) {
            Conn &c = *reinterpret_cast<Conn *>(t);
            c.wheel_fires++;
            wheel_ops++;
            assert_true(c.timed_out_at < 0);
            if (c.real_deadline > now) {
                wheel.schedule(t, c.real_deadline);  // fired early by design
                wheel_ops++;
            } else {
                c.timed_out_at = now;
            }
        });
    }
    for (const Conn &c : conns) {
        assert_int_equal(c.timed_out_at, c.last_activity + idle);
        // O(active time / idle) fires: each re-arm moves the deadline by
        // nearly a full idle period (here at least idle - 80 ms).
        assert_true(c.wheel_fires <= static_cast<unsigned>(c.last_activity / (idle / 2)) + 2);
    }
    assert_int_equal(wheel.size(), 0);
    // ~20 messages per second of activity against ~2 wheel ops per second.
    assert_true(activity > 10000);
    assert_true(wheel_ops * 5 < activity);
}

void test_rearm_earlier_moves(void **state) {
    Harness &h = H(state);
    h.schedule(0, 5000);
    h.schedule(0, 300);  // earlier: moves
    assert_int_equal(h.wheel.size(), 1);
    assert_int_equal(h.t(0)->deadline, 300);

    h.schedule(1, 300);
    h.schedule(1, 5000);  // later, eagerly (not the lazy pattern): moves too

    h.schedule(2, 305);
    h.schedule(2, 301);  // earlier within the same tick (same slot)
    h.schedule(3, 301);
    h.schedule(3, 308);  // later within the same tick

    h.schedule(4, 200);
    h.schedule(4, 200 + 3 * 640);  // same slot, three revolutions later

    h.schedule(5, 700);
    h.schedule(5, 700);  // idempotent
    assert_int_equal(h.wheel.size(), 6);

    assert_int_equal(h.tick_at(200), 0);
    assert_int_equal(h.tick_at(299), 0);
    assert_int_equal(h.tick_at(300), 1);
    assert_fired(h, {0});
    assert_int_equal(h.tick_at(301), 1);
    assert_fired(h, {2});
    assert_int_equal(h.tick_at(307), 0);
    assert_int_equal(h.tick_at(308), 1);
    assert_fired(h, {3});
    assert_int_equal(h.tick_at(700), 1);
    assert_fired(h, {5});
    assert_int_equal(h.tick_at(2119), 0);
    assert_int_equal(h.tick_at(2120), 1);
    assert_fired(h, {4});
    assert_int_equal(h.tick_at(4999), 0);
    assert_int_equal(h.tick_at(5000), 1);
    assert_fired(h, {1});
    for (size_t i = 0; i < 6; i++) assert_int_equal(h.fire_count[i], 1);
    assert_int_equal(h.wheel.size(), 0);
}

void test_cancel_before_fire(void **state) {
    Harness &h = H(state);
    h.schedule(0, 500);
    h.schedule(1, 500);
    h.schedule(2, 500 + 50 * 640);  // many revolutions away
    h.schedule(3, 900);
    assert_int_equal(h.wheel.size(), 4);

    h.cancel(0);
    assert_false(h.t(0)->armed);
    assert_int_equal(h.wheel.size(), 3);
    h.cancel(0);  // twice: nothing changes
    h.cancel(9);  // never scheduled: nothing changes
    assert_int_equal(h.wheel.size(), 3);
    assert_true(h.t(1)->armed && h.t(2)->armed && h.t(3)->armed);

    h.cancel(2);
    assert_int_equal(h.tick_at(500), 1);
    assert_fired(h, {1});  // the cancel of 0 did not take its slot-mate

    // Re-arming after cancel works like a fresh schedule.
    h.schedule(0, 600);
    assert_int_equal(h.tick_at(600), 1);
    assert_fired(h, {0});
    h.cancel(3);
    for (int64_t now = 610; now <= 500 + 51 * 640; now += 640) assert_int_equal(h.tick_at(now), 0);
    assert_int_equal(h.fire_count[2], 0);
    assert_int_equal(h.fire_count[3], 0);
    assert_int_equal(h.wheel.size(), 0);
}

// fire() of one timer cancels or moves others still due in the same
// advance: in the same slot, and in a later slot of the same walk.
void test_cancel_inside_fire(void **state) {
    Harness &h = H(state);
    // Same slot (tick 100): 0 fires first (deadline order) and cancels 1.
    h.schedule(0, 1001);
    h.schedule(1, 1005);
    h.schedule(2, 1003);  // fires between them, untouched
    assert_int_equal(h.tick_at(1010, [&](size_t i, WheelTimer *) {
                         if (i == 0) {
                             h.cancel(1);
                             h.cancel(0);  // itself: already unlinked, a no-op
                         }
                     }),
                     2);
    assert_fired(h, {0, 2});
    assert_false(h.t(1)->armed);
    assert_int_equal(h.wheel.size(), 0);

    // Across slots in one walk (ticks 102, 104, 105 from 1010 to 1100):
    // 3 cancels 4 and moves 5 to later; 6 (same tick as 5) is untouched.
    h.schedule(3, 1025);
    h.schedule(4, 1047);
    h.schedule(5, 1058);
    h.schedule(6, 1059);
    h.schedule(7, 5000);  // not due: cancelled from inside fire too
    assert_int_equal(h.tick_at(1100, [&](size_t i, WheelTimer *) {
                         if (i == 3) {
                             h.cancel(4);
                             h.schedule(5, 2000);
                             h.cancel(7);
                         }
                     }),
                     2);
    assert_fired(h, {3, 6});
    assert_int_equal(h.wheel.size(), 1);
    assert_int_equal(h.tick_at(1999), 0);
    assert_int_equal(h.tick_at(2000), 1);
    assert_fired(h, {5});
    assert_int_equal(h.tick_at(10000), 0);
    assert_int_equal(h.fire_count[4], 0);
    assert_int_equal(h.fire_count[7], 0);
    assert_int_equal(h.wheel.size(), 0);
}

// A periodic timer re-schedules itself from its own fire(): over N periods
// it fires exactly N times, each at the first step covering k * period.
void run_periodic(int64_t tick, uint32_t slots, int64_t period, int64_t step, int periods) {
    Harness h(tick, slots, 0, 1);
    h.schedule(0, period);
    int k = 0;
    for (int64_t now = 0; now <= period * periods; now += step) {
        h.tick_at(now, [&](size_t, WheelTimer *t) {
            k++;
            assert_int_equal(t->deadline, period * k);
            h.wheel.schedule(t, t->deadline + period);
        });
        if (!h.fired.empty()) {
            assert_int_equal(h.fired.size(), 1);
            // fired at the first step >= deadline
            assert_true(h.fire_now[0] - period * k < step);
        }
        assert_int_equal(h.wheel.size(), 1);
    }
    if (k != periods) print_error("period %lld step %lld: %d fires\n", (long long)period, (long long)step, k);
    assert_int_equal(k, periods);
}

void test_periodic_reschedule_in_own_fire(void **state) {
    (void)state;
    run_periodic(10, 64, 250, 10, 100);    // aligned with the steps
    run_periodic(10, 64, 37, 10, 100);     // not aligned
    run_periodic(10, 64, 640, 10, 100);    // exactly one revolution: same slot each time
    run_periodic(10, 64, 1000, 10, 100);   // longer than a revolution
    run_periodic(10, 64, 250, 1, 20);      // sub-tick steps
    run_periodic(10, 64, 25, 20, 100);     // period shorter than two steps: at most once per advance here
}

// ------------------------------------------------------------------ revolutions and jumps

// 64 x 10 ms: a deadline 100 revolutions away fires once, exactly when due,
// not at each pass of its slot.
void test_long_delay_past_one_revolution(void **state) {
    Harness &h = H(state);
    const int64_t rev = 640;
    h.schedule(0, 100 * rev + 5);
    h.schedule(1, 100 * rev);
    h.schedule(2, rev);          // exactly one revolution
    h.schedule(3, rev - 1);      // just under
    h.schedule(4, 2 * rev + 1);  // just over two
    for (int64_t now = 0; now <= 101 * rev; now++) {
        h.tick_at(now);
        for (size_t i : h.fired) assert_int_equal(h.t(i)->deadline, now);
    }
    for (size_t i = 0; i < 5; i++) assert_int_equal(h.fire_count[i], 1);
    assert_int_equal(h.wheel.size(), 0);
}

// Slot indices wrap ~1000 times with a population that re-arms itself on
// every fire with delays of up to 5 revolutions, random steps (0..30 ms),
// and a large origin as a real monotonic clock would give.
void test_wrap_around_many_revolutions(void **state) {
    (void)state;
    const size_t n = 500;
    const int64_t origin = int64_t(1) << 40, tick = 5;
    const int64_t rev = tick * 16;  // 80 ms
    Harness h(tick, 16, origin, n);
    Rng rng(31);
    for (size_t i = 0; i < n; i++) h.schedule(i, origin + rng.range(0, 5 * rev));
    int64_t prev = origin - 1;
    size_t total = 0;
    for (int64_t now = origin; now < origin + 1000 * rev; now += rng.range(0, 30)) {
        h.tick_at(now, [&](size_t, WheelTimer *t) {
            assert_true(t->deadline > prev);  // the first advance covering it
            h.wheel.schedule(t, now + rng.range(1, 5 * rev));
        });
        total += h.fired.size();
        assert_int_equal(h.wheel.size(), n);
        prev = now;
    }
    // ~ n fires per 2.5 revolutions on average
    assert_true(total > n * 300);
    for (size_t i = 0; i < n; i++) assert_true(h.fire_count[i] > 100);
}

// One advance from 0 to 10^9 ms (over a million revolutions): everything
// due fires exactly once, the rest stays armed and fires on a later jump.
void test_huge_jump(void **state) {
    (void)state;
    const size_t n = 3000;
    const int64_t far = 1000000000;
    Harness h(10, 64, 0, n);
    Rng rng(41);
    size_t due = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t d;
        switch (i % 6) {
        case 0: d = far; break;                                  // exactly now
        case 1: d = far + rng.range(1, 1000000); break;          // just after
        case 2: d = rng.range(0, 640); break;                    // first revolution
        case 3: d = far - rng.range(0, 640); break;              // last revolution
        case 4: d = 2 * far + rng.range(0, 10); break;           // next jump's end
        default: d = rng.range(0, far); break;                   // anywhere
        }
        h.schedule(i, d);
        if (d <= far) due++;
    }
    assert_int_equal(h.tick_at(far), due);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(h.fire_count[i], h.t(i)->deadline <= far ? 1u : 0u);
    assert_int_equal(h.wheel.size(), n - due);
    assert_int_equal(h.tick_at(far), 0);  // nothing twice
    size_t second = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t d = h.t(i)->deadline;
        second += d > far && d <= 2 * far + 5 ? 1 : 0;
    }
    assert_int_equal(h.tick_at(2 * far + 5), second);
    assert_int_equal(h.tick_at(3 * far), n - due - second);
    for (size_t i = 0; i < n; i++) assert_int_equal(h.fire_count[i], 1);
    assert_int_equal(h.wheel.size(), 0);
}

// A deadline at or before the current position fires on the next advance,
// even one to the same `now`.
void test_overdue_fires_next_advance(void **state) {
    Harness &h = H(state);
    assert_int_equal(h.tick_at(1000), 0);
    h.schedule(0, 500);   // in the past
    h.schedule(1, 1000);  // now
    h.schedule(2, 995);   // earlier in the current tick
    h.schedule(3, -5);    // before the origin
    h.schedule(4, 1003);  // later in the current tick: not due yet
    assert_int_equal(h.tick_at(1000), 4);
    assert_fired(h, {0, 1, 2, 3});
    assert_int_equal(h.tick_at(1002), 0);
    assert_int_equal(h.tick_at(1003), 1);
    assert_fired(h, {4});

    // After a jump of many revolutions.
    assert_int_equal(h.tick_at(50000), 0);
    h.schedule(5, 10);
    assert_int_equal(h.tick_at(50000), 1);
    assert_fired(h, {5});

    // Overdue scheduled from inside fire(): fires by the next advance, once.
    h.schedule(6, 50100);
    h.tick_at(50100, [&](size_t i, WheelTimer *) {
        if (i == 6) h.schedule(7, 40000);
    });
    h.tick_at(50100);
    assert_int_equal(h.fire_count[6], 1);
    assert_int_equal(h.fire_count[7], 1);
    assert_int_equal(h.wheel.size(), 0);
}

// size() and the armed flag follow schedule, move, cancel and fire,
// including inside fire().
void test_size_bookkeeping(void **state) {
    Harness &h = H(state);
    for (size_t i = 0; i < 10; i++) h.schedule(i, 100 + static_cast<int64_t>(i) * 100);
    assert_int_equal(h.wheel.size(), 10);
    h.schedule(0, 150);
    h.schedule(1, 5000);
    h.schedule(2, 100000);
    assert_int_equal(h.wheel.size(), 10);
    h.cancel(3);
    h.cancel(4);
    h.cancel(4);
    h.cancel(20);
    assert_int_equal(h.wheel.size(), 8);
    assert_int_equal(h.armed_count(), 8);

    // Due at 600: 0 (150), 5 (600) -- plus 6..9 later. Inside fire, the one
    // firing no longer counts; 5 re-arms itself.
    size_t before = h.wheel.size();
    size_t seen = 0;
    h.tick_at(600, [&](size_t i, WheelTimer *t) {
        seen++;
        assert_int_equal(h.wheel.size(), before - seen);
        assert_int_equal(h.armed_count(), before - seen);
        if (i == 5) {
            h.wheel.schedule(t, 10000);
            assert_int_equal(h.wheel.size(), before - seen + 1);
            assert_true(t->armed);
        }
    });
    assert_fired(h, {0, 5});
    assert_int_equal(h.wheel.size(), 7);
    assert_int_equal(h.armed_count(), 7);
    h.tick_at(100000);
    assert_int_equal(h.wheel.size(), 0);
    assert_int_equal(h.armed_count(), 0);
}

// ------------------------------------------------------------------ scale

// 1,000,000 timers, deadlines over 10 minutes, 100 ms x 4096 slots
// (409.6 s: a third of them are beyond one revolution), 100 ms steps: each
// fires exactly once, never early, never a tick late.
void test_million_timers(void **state) {
    (void)state;
    const size_t n = 1000000;
    const int64_t tick = 100, end = 600000;
    TimingWheel wheel(tick, 4096, 0);
    std::unique_ptr<WheelTimer[]> timers(new WheelTimer[n]);
    std::vector<int32_t> fired_at(n, -1);
    Rng rng(53);
    for (size_t i = 0; i < n; i++) wheel.schedule(&timers[i], rng.range(0, end));
    assert_int_equal(wheel.size(), n);
    size_t total = 0, bad = 0;
    for (int64_t now = 0; now <= end; now += tick) {
        total += wheel.advance(now, [&](WheelTimer *t) {
            size_t i = static_cast<size_t>(t - timers.get());
            bool ok = i < n && fired_at[i] < 0 && t->deadline <= now && now - t->deadline < tick;
            if (!ok && bad++ < 5)
                print_error("timer %zu deadline %lld fired at %lld (before: %d)\n", i,
                            (long long)t->deadline, (long long)now, i < n ? fired_at[i] : -2);
            if (i < n) fired_at[i] = static_cast<int32_t>(now);
        });
    }
    assert_int_equal(bad, 0);
    assert_int_equal(total, n);
    assert_int_equal(wheel.size(), 0);
    for (size_t i = 0; i < n; i++) assert_true(fired_at[i] >= 0);
}

// ------------------------------------------------------------------ model checks

struct WheelShape {
    int64_t tick;
    uint32_t slots;
    int64_t origin;
};

// Mixed schedule / cancel / advance from outside fire(), checked against a
// std::multimap of armed deadlines: the set fired by each advance must be
// exactly the model's timers with deadline <= now (no more, no fewer, none
// twice), and size() / armed must match after every operation.
void run_model(const WheelShape &shape, uint64_t seed, int ops) {
    const size_t n = 300;
    Harness h(shape.tick, shape.slots, shape.origin, n);
    const int64_t rev = h.wheel.tick_ms() * [&] {
        int64_t s = 1;
        while (s < shape.slots) s <<= 1;
        return s;
    }();
    std::multimap<int64_t, size_t> model;
    std::vector<std::multimap<int64_t, size_t>::iterator> where(n, model.end());
    Rng rng(seed);
    int64_t now = shape.origin - rng.range(0, 100);
    auto model_cancel = [&](size_t i) {
        if (where[i] != model.end()) {
            model.erase(where[i]);
            where[i] = model.end();
        }
    };
    for (int op = 0; op < ops; op++) {
        uint32_t r = rng.below(100);
        size_t i = rng.below(static_cast<uint32_t>(n));
        if (r < 45) {
            int64_t d;
            uint32_t k = rng.below(100);
            if (k < 10) d = now - rng.range(0, 3 * rev);
            else if (k < 70) d = now + rng.range(0, 3 * rev);
            else if (k < 95) d = now + rng.range(0, 30 * rev);
            else d = now + rng.range(0, 10000000);
            h.schedule(i, d);
            model_cancel(i);
            where[i] = model.emplace(d, i);
        } else if (r < 65) {
            h.cancel(i);
            model_cancel(i);
        } else {
            uint32_t k = rng.below(100);
            if (k < 80) now += rng.range(0, 2 * h.wheel.tick_ms());
            else if (k < 95) now += rng.range(0, 3 * rev);
            else if (k < 99) now += rng.range(0, 40 * rev);
            else now += rng.range(0, 100000000);
            std::vector<size_t> want;
            for (auto it = model.begin(); it != model.end() && it->first <= now; it = model.begin()) {
                want.push_back(it->second);
                where[it->second] = model.end();
                model.erase(it);
            }
            h.tick_at(now);
            std::vector<size_t> got = sorted(h.fired);
            want = sorted(want);
            if (got != want) {
                print_error("op %d (seed %llu, tick %lld, slots %u): advance to %lld fired %zu, model %zu\n", op,
                            (unsigned long long)seed, (long long)shape.tick, shape.slots, (long long)now,
                            got.size(), want.size());
                fail();
            }
        }
        if (h.wheel.size() != model.size()) {
            print_error("op %d: size %zu, model %zu\n", op, h.wheel.size(), model.size());
            fail();
        }
        for (size_t j = 0; j < n; j++) assert_int_equal(h.t(j)->armed, where[j] != model.end());
    }
}

void test_model_random_ops(void **state) {
    (void)state;
    const WheelShape shapes[] = {
        {10, 16, 0},      // small wheel: many revolutions
        {7, 1, 0},        // one slot: everything shares it
        {10, 3, 12345},   // rounded to 4 slots, non-zero origin
        {1, 64, -1000},   // 1 ms tick, negative origin
        {100, 4096, 0},   // the production shape
    };
    uint64_t seed = 1000;
    for (const WheelShape &s : shapes) run_model(s, seed++, 6000);
}

// The same, with fire() itself re-scheduling (to the future and to the
// past) and cancelling random timers, others still due in the same advance
// included. Invariants, order-independent:
//   - each fire() is of a timer the model has armed with deadline <= now
//     (so never early, never twice, never after cancel or a move later);
//   - after the advance every due timer has fired, except ones that fire()
//     re-scheduled to a deadline <= now during this advance, which may wait
//     for the next advance (and the next advance's check covers them);
//   - size() matches the model.
void run_model_fire_ops(const WheelShape &shape, uint64_t seed, int ops) {
    const size_t n = 200;
    Harness h(shape.tick, shape.slots, shape.origin, n);
    const int64_t rev = h.wheel.tick_ms() * 64;  // a scale, not the exact revolution
    std::map<size_t, int64_t> model;              // id -> deadline
    std::vector<bool> late_ok(n, false);
    Rng rng(seed);
    int64_t now = shape.origin;
    auto sched = [&](size_t i, int64_t d) {
        h.schedule(i, d);
        model[i] = d;
    };
    auto cancel = [&](size_t i) {
        h.cancel(i);
        model.erase(i);
    };
    for (int op = 0; op < ops; op++) {
        uint32_t r = rng.below(100);
        size_t i = rng.below(static_cast<uint32_t>(n));
        if (r < 40) {
            sched(i, now + rng.range(-2 * rev, 3 * rev));
        } else if (r < 55) {
            cancel(i);
        } else {
            uint32_t k = rng.below(100);
            if (k < 85) now += rng.range(0, 3 * h.wheel.tick_ms());
            else if (k < 98) now += rng.range(0, 2 * rev);
            else now += rng.range(0, 1000000);
            std::fill(late_ok.begin(), late_ok.end(), false);
            size_t fires = 0;
            h.tick_at(now, [&](size_t f, WheelTimer *t) {
                auto it = model.find(f);
                if (it == model.end() || it->second > now || it->second != t->deadline) {
                    print_error("op %d: fired %zu at %lld, model %s %lld\n", op, f, (long long)now,
                                it == model.end() ? "unarmed" : "deadline",
                                it == model.end() ? 0LL : (long long)it->second);
                    fail();
                }
                model.erase(it);
                if (++fires > 20 * n) return;  // a runaway would show as a count below
                uint32_t a = rng.below(100);
                size_t o = rng.below(static_cast<uint32_t>(n));
                if (a < 30) {
                    sched(f, now + rng.range(1, 3 * rev));  // periodic, future
                } else if (a < 45) {
                    cancel(o);  // maybe due and not yet fired
                } else if (a < 60) {
                    sched(o, now + rng.range(1, 3 * rev));  // moved later
                } else if (a < 70) {
                    size_t v = rng.below(2) ? f : o;
                    sched(v, now - rng.range(0, 2 * rev));  // overdue
                    late_ok[v] = true;
                }
            });
            assert_true(fires <= 20 * n);
            for (const auto &[id, d] : model) {
                if (d <= now && !late_ok[id]) {
                    print_error("op %d (seed %llu): timer %zu due at %lld not fired by %lld\n", op,
                                (unsigned long long)seed, id, (long long)d, (long long)now);
                    fail();
                }
            }
        }
        assert_int_equal(h.wheel.size(), model.size());
    }
}

void test_model_random_ops_inside_fire(void **state) {
    (void)state;
    const WheelShape shapes[] = {{10, 8, 0}, {5, 32, 777}, {3, 1, 0}, {100, 4096, 0}};
    uint64_t seed = 2000;
    for (const WheelShape &s : shapes) run_model_fire_ops(s, seed++, 6000);
}

}  // namespace

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fires_at_deadline_not_before, setup, teardown),
        cmocka_unit_test(test_origin_and_early_times),
        cmocka_unit_test(test_constructor_edges),
        cmocka_unit_test(test_clocks),
        cmocka_unit_test(test_order_small_steps),
        cmocka_unit_test_setup_teardown(test_order_within_slot, setup, teardown),
        cmocka_unit_test(test_lazy_rearm_later),
        cmocka_unit_test_setup_teardown(test_rearm_earlier_moves, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_before_fire, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_inside_fire, setup, teardown),
        cmocka_unit_test(test_periodic_reschedule_in_own_fire),
        cmocka_unit_test_setup_teardown(test_long_delay_past_one_revolution, setup, teardown),
        cmocka_unit_test(test_wrap_around_many_revolutions),
        cmocka_unit_test(test_huge_jump),
        cmocka_unit_test_setup_teardown(test_overdue_fires_next_advance, setup, teardown),
        cmocka_unit_test_setup_teardown(test_size_bookkeeping, setup, teardown),
        cmocka_unit_test(test_million_timers),
        cmocka_unit_test(test_model_random_ops),
        cmocka_unit_test(test_model_random_ops_inside_fire),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
