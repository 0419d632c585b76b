// Timing-wheel tick cost at up to 1,000,000 timers, on a fake clock.
// A figure, not a test (only --smoke checks anything).
//
// Each of N timers is a connection heartbeat: period 54 s, random phase,
// re-armed from its own fire(). The wheel (100 ms x 1024 slots, so one
// revolution, 102.4 s, covers a period) is advanced in 100 ms steps of fake
// time; each advance() is timed with the real steady clock (wall time) and,
// as a cross-check on a shared machine, with the thread's CPU clock.
// The point: a tick costs work proportional to the timers that expire in
// it, not to N, so "ns/fired" stays roughly flat while N grows 1000-fold
// (what growth remains is cache misses on a larger working set).
//
// Also measured, on the populated wheel: advance() called at 1 ms steps
// inside one tick ("sub-tick": what an event loop that wakes more often
// than the tick pays per call), and the lazy pattern's O(1) activity update
// (store the owner's new deadline, leave the wheel alone) against an eager
// schedule() that moves the timer in the wheel; both touch connections in
// the same random order.
//
// For figures build with optimisation:
//   cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=Release && cmake --build build-rel --target bench_wheel
//   build-rel/tests/bench_wheel
// --smoke: N up to 100,000 and 10 s of fake time; exits 0 only if every
// timer fired the expected number of times, none early and none a tick late.
#include "support/rng.h"
#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <time.h>

#include "core/wheel.h"

using wsgate::TimingWheel;
using wsgate::WheelTimer;

namespace {

constexpr int64_t kTickMs = 100;
constexpr uint32_t kSlots = 1024;
constexpr int64_t kPeriodMs = 54000;

using wsgate_test::Rng;

struct Conn {
    WheelTimer timer;  // first member: fire()'s pointer is the Conn
    int64_t real_deadline = 0;  // the owner's deadline (lazy pattern)
    uint32_t fires = 0;
    uint32_t bad = 0;  // fired early or more than a tick late
};

struct Result {
    size_t n = 0;
    size_t ticks = 0;
    double fired_per_tick = 0;
    double tick_mean_us = 0, tick_p50_us = 0, tick_p99_us = 0, tick_max_us = 0;
    double tick_cpu_p99_us = 0;  // thread CPU time: without preemption by other processes
    double ns_per_fired = 0;
    double ns_per_fired_p50 = 0;  // median over ticks that fired: robust to preemption
    double activity_ns = 0, schedule_ns = 0;
    double subtick_us = 0, subtick_fired = 0;
    size_t wrong = 0;  // timers with a wrong fire count or timing
};

int64_t ns_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
}

int64_t thread_cpu_ns() {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

int64_t p99(std::vector<int64_t> &v) {
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, v.size() * 99 / 100)];
}

volatile uint64_t g_sink;

Result run(size_t n, int64_t sim_ms, uint64_t seed) {
    Result r;
    r.n = n;
    Rng rng(seed);
    TimingWheel wheel(kTickMs, kSlots, 0);
    std::unique_ptr<Conn[]> conns(new Conn[n]);
    for (size_t i = 0; i < n; i++) {
        int64_t phase = static_cast<int64_t>(rng.next() % kPeriodMs);
        conns[i].real_deadline = phase;
        wheel.schedule(&conns[i].timer, phase);
    }

    std::vector<int64_t> tick_ns;
    tick_ns.reserve(static_cast<size_t>(sim_ms / kTickMs) + 1);
    std::vector<double> per_fired;
    std::vector<int64_t> tick_cpu_ns;
    tick_cpu_ns.reserve(tick_ns.capacity());
    size_t total_fired = 0;
    int64_t total_ns = 0;
    for (int64_t now = 0; now <= sim_ms; now += kTickMs) {
        const int64_t c0 = thread_cpu_ns();
        auto t0 = std::chrono::steady_clock::now();
        size_t fired = wheel.advance(now, [&](WheelTimer *t) {
            Conn &c = *reinterpret_cast<Conn *>(t);
            c.fires++;
            if (t->deadline > now || now - t->deadline >= kTickMs) c.bad++;
            c.real_deadline = t->deadline + kPeriodMs;
            wheel.schedule(t, c.real_deadline);  // the heartbeat re-arms
        });
        int64_t dt = ns_since(t0);
        tick_cpu_ns.push_back(thread_cpu_ns() - c0);
        tick_ns.push_back(dt);
        if (fired) per_fired.push_back(static_cast<double>(dt) / static_cast<double>(fired));
        total_ns += dt;
        total_fired += fired;
    }

    // Every timer fired once per period boundary it crossed, on time.
    for (size_t i = 0; i < n; i++) {
        int64_t phase = conns[i].real_deadline - kPeriodMs * conns[i].fires;
        uint32_t want = phase <= sim_ms ? static_cast<uint32_t>((sim_ms - phase) / kPeriodMs + 1) : 0;
        if (conns[i].fires != want || conns[i].bad) r.wrong++;
    }
    if (wheel.size() != n) r.wrong += n;

    r.ticks = tick_ns.size();
    r.fired_per_tick = static_cast<double>(total_fired) / static_cast<double>(r.ticks);
    r.tick_mean_us = static_cast<double>(total_ns) / static_cast<double>(r.ticks) / 1e3;
    r.tick_p99_us = static_cast<double>(p99(tick_ns)) / 1e3;  // sorts
    r.tick_p50_us = static_cast<double>(tick_ns[tick_ns.size() / 2]) / 1e3;
    r.tick_cpu_p99_us = static_cast<double>(p99(tick_cpu_ns)) / 1e3;
    r.tick_max_us = static_cast<double>(tick_ns.back()) / 1e3;
    r.ns_per_fired = total_fired ? static_cast<double>(total_ns) / static_cast<double>(total_fired) : 0;
    if (!per_fired.empty()) {
        std::nth_element(per_fired.begin(), per_fired.begin() + per_fired.size() / 2, per_fired.end());
        r.ns_per_fired_p50 = per_fired[per_fired.size() / 2];
    }

    // advance() called more often than the tick (1 ms apart, as an event
    // loop may): nearly nothing is due, but each call walks the current slot.
    {
        size_t fired = 0;
        auto t0 = std::chrono::steady_clock::now();
        for (int64_t now = sim_ms + 1; now < sim_ms + kTickMs; now++)
            fired += wheel.advance(now, [&](WheelTimer *t) {
                Conn &c = *reinterpret_cast<Conn *>(t);
                c.real_deadline = t->deadline + kPeriodMs;
                wheel.schedule(t, c.real_deadline);
            });
        r.subtick_us = static_cast<double>(ns_since(t0)) / static_cast<double>(kTickMs - 1) / 1e3;
        r.subtick_fired = static_cast<double>(fired) / static_cast<double>(kTickMs - 1);
    }

    // Activity on random connections: at least 1M operations, same order
    // for both variants.
    const size_t ops = std::max<size_t>(n, 1000000);
    std::vector<uint32_t> order(ops);
    for (size_t k = 0; k < ops; k++) order[k] = static_cast<uint32_t>(rng.next() % n);
    const int64_t now = sim_ms;

    auto t0 = std::chrono::steady_clock::now();
    for (size_t k = 0; k < ops; k++) conns[order[k]].real_deadline = now + kPeriodMs + static_cast<int64_t>(k & 63);
    r.activity_ns = static_cast<double>(ns_since(t0)) / static_cast<double>(ops);
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) sum += static_cast<uint64_t>(conns[i].real_deadline);
    g_sink = sum;

    t0 = std::chrono::steady_clock::now();
    for (size_t k = 0; k < ops; k++)
        wheel.schedule(&conns[order[k]].timer, now + kPeriodMs + static_cast<int64_t>(k % 3000));
    r.schedule_ns = static_cast<double>(ns_since(t0)) / static_cast<double>(ops);
    if (wheel.size() != n) r.wrong += n;
    return r;
}

}  // namespace

int main(int argc, char **argv) {
    bool smoke = false;
    for (int i = 1; i < argc; i++) {
        if (std::strcmp(argv[i], "--smoke") == 0) {
            smoke = true;
        } else {
            std::fprintf(stderr, "usage: %s [--smoke]\n", argv[0]);
            return 2;
        }
    }
    const std::vector<size_t> sizes =
        smoke ? std::vector<size_t>{1000, 10000, 100000} : std::vector<size_t>{1000, 10000, 100000, 1000000};
    const int64_t sim_ms = smoke ? 10000 : 120000;

    std::printf("timing wheel: tick %" PRId64 " ms x %u slots, heartbeat period %" PRId64
                " ms (random phase, re-armed on fire), %" PRId64 " s of fake time in %" PRId64 " ms steps%s\n",
                kTickMs, kSlots, kPeriodMs, sim_ms / 1000, kTickMs, smoke ? " [smoke]" : "");
#define HEAD "%9s %6s %10s %10s %10s %10s %10s %10s %9s %9s %10s %8s %11s %11s %4s\n"
    std::printf(HEAD, "N", "ticks", "fired/tick", "tick mean", "tick p50", "tick p99", "p99 cpu", "tick max",
                "ns/fired", "ns/fired", "sub-tick", "fired", "activity", "schedule", "ok");
    std::printf(HEAD, "", "", "", "(us)", "(us)", "(us)", "(us)", "(us)", "(mean)", "(p50)", "(us/call)", "/call",
                "(ns/op)", "(ns/op)", "");
#undef HEAD
    std::vector<Result> results;
    uint64_t seed = 1;
    bool ok = true;
    for (size_t n : sizes) {
        Result r = run(n, sim_ms, seed++);
        results.push_back(r);
        ok = ok && r.wrong == 0;
        std::printf("%9zu %6zu %10.1f %10.2f %10.2f %10.2f %10.2f %10.2f %9.1f %9.1f %10.2f %8.2f %11.2f %11.2f %4s\n",
                    r.n, r.ticks, r.fired_per_tick, r.tick_mean_us, r.tick_p50_us, r.tick_p99_us, r.tick_cpu_p99_us,
                    r.tick_max_us, r.ns_per_fired, r.ns_per_fired_p50, r.subtick_us, r.subtick_fired, r.activity_ns,
                    r.schedule_ns, r.wrong ? "NO" : "yes");
        if (r.wrong) std::printf("  %zu timers fired a wrong number of times or off time\n", r.wrong);
        std::fflush(stdout);
    }

    std::string json = "{\"bench\":\"wheel\",\"smoke\":" + std::string(smoke ? "true" : "false") +
                       ",\"tick_ms\":" + std::to_string(kTickMs) + ",\"slots\":" + std::to_string(kSlots) +
                       ",\"period_ms\":" + std::to_string(kPeriodMs) + ",\"sim_ms\":" + std::to_string(sim_ms) +
                       ",\"results\":[";
    char buf[512];
    for (size_t i = 0; i < results.size(); i++) {
        const Result &r = results[i];
        std::snprintf(buf, sizeof buf,
                      "%s{\"n\":%zu,\"ticks\":%zu,\"fired_per_tick\":%.2f,\"tick_mean_us\":%.3f,"
                      "\"tick_p50_us\":%.3f,\"tick_p99_us\":%.3f,\"tick_cpu_p99_us\":%.3f,\"tick_max_us\":%.3f,"
                      "\"ns_per_fired\":%.2f,\"ns_per_fired_p50\":%.2f,"
                      "\"subtick_us\":%.3f,\"subtick_fired\":%.2f,\"activity_ns\":%.3f,\"schedule_ns\":%.3f,"
                      "\"wrong\":%zu}",
                      i ? "," : "", r.n, r.ticks, r.fired_per_tick, r.tick_mean_us, r.tick_p50_us, r.tick_p99_us,
                      r.tick_cpu_p99_us, r.tick_max_us, r.ns_per_fired, r.ns_per_fired_p50, r.subtick_us,
                      r.subtick_fired, r.activity_ns, r.schedule_ns, r.wrong);
        json += buf;
    }
    json += "],\"ok\":" + std::string(ok ? "true" : "false") + "}";
    std::printf("%s\n", json.c_str());
    return ok ? 0 : 1;
}
