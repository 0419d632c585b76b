// A hashed timing wheel for per-connection deadlines.
//
// Each timer sits in the slot of its deadline (slot = deadline / tick, modulo
// the wheel size). Activity that only pushes a deadline later does not touch
// the wheel: the owner stores the new deadline in its own state and, when the
// old slot fires, re-arms the timer for the real deadline. So a busy
// connection costs O(1) per message and a tick costs work proportional to
// the timers in the slots it passes, not to all timers. Deadlines further
// away than one revolution stay in their slot and are skipped (one compare)
// until their revolution comes.
#pragma once

#include <cstdint>
#include <cstddef>
#include <vector>

namespace wsgate {

// Monotonic milliseconds; tests drive a fake one.
class Clock {
public:
    virtual ~Clock() = default;
    virtual int64_t now_ms() = 0;
};

class SteadyClock : public Clock {
public:
    int64_t now_ms() override;
};

struct WheelTimer {
    int64_t deadline = 0;        // when it fires (ms, Clock time)
    WheelTimer *prev = nullptr;  // intrusive slot list
    WheelTimer *next = nullptr;
    uint32_t slot = 0;
    bool armed = false;
};

class TimingWheel {
public:
    // slots: rounded up to a power of two. start: Clock time of tick 0.
    TimingWheel(int64_t tick_ms, uint32_t slots, int64_t start_ms);
    TimingWheel(const TimingWheel &) = delete;
    TimingWheel &operator=(const TimingWheel &) = delete;

    int64_t tick_ms() const { return tick_ms_; }
    size_t size() const { return armed_; }

    // Arms (or moves) `t` to fire at `deadline`. A deadline at or before the
    // current position fires on the next advance().
    void schedule(WheelTimer *t, int64_t deadline);
    void cancel(WheelTimer *t);

    // Fires every timer whose deadline is <= now, in deadline order within
    // a slot pass, calling fire(t) after unlinking it (fire may re-schedule
    // or cancel any timer, including t). Returns how many fired.
    template <class F>
    size_t advance(int64_t now, F &&fire);

private:
    uint64_t tick_of(int64_t ms) const {
        return ms <= origin_ ? 0 : static_cast<uint64_t>((ms - origin_) / tick_ms_);
    }
    void link(WheelTimer *t, uint32_t slot);
    void unlink(WheelTimer *t);
    // Moves a slot's timers, sorted by deadline, to the in-flight list.
    void take_slot(uint32_t slot);
    static constexpr uint32_t kInflight = 0xffffffffu;

    int64_t tick_ms_;
    int64_t origin_;
    uint64_t mask_;
    uint64_t current_ = 0;  // next tick to process
    uint64_t floor_ = 0;    // earliest tick schedule() may use
    size_t armed_ = 0;
    std::vector<WheelTimer *> heads_;
    std::vector<int64_t> slot_min_;  // earliest deadline linked into each slot (may be stale-low)
    WheelTimer *inflight_ = nullptr;  // the slot being processed
    std::vector<WheelTimer *> scratch_;
};

template <class F>
size_t TimingWheel::advance(int64_t now, F &&fire) {
    size_t fired = 0;
    uint64_t target = tick_of(now);
    if (target < current_) target = current_;
    // Timers (re)scheduled while we walk land no earlier than the slot we
    // end on, which the next advance() visits again.
    floor_ = target;
    // Never walk more than one revolution: after that every slot was seen.
    uint64_t end = target + 1;
    if (end - current_ > heads_.size()) current_ = end - heads_.size();
    for (; current_ < end; current_++) {
        uint32_t slot = static_cast<uint32_t>(current_ & mask_);
        // Nothing in this slot is due yet (all in later revolutions): skip it.
        if (!heads_[slot] || slot_min_[slot] > now) continue;
        take_slot(slot);
        // One at a time from the in-flight list, so fire() may cancel or
        // re-schedule any timer (including ones still waiting here).
        while (WheelTimer *t = inflight_) {
            unlink(t);
            if (t->deadline <= now) {
                fired++;
                fire(t);
            } else {
                link(t, slot);  // a later revolution
            }
        }
    }
    // Stay on the current tick: timers scheduled for "now" still land in a
    // slot that the next advance() visits.
    current_ = target;
    return fired;
}

}  // namespace wsgate
