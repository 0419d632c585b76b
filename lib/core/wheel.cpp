#include "core/wheel.h"

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace wsgate {

int64_t SteadyClock::now_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

TimingWheel::TimingWheel(int64_t tick_ms, uint32_t slots, int64_t start_ms)
    : tick_ms_(tick_ms > 0 ? tick_ms : 1), origin_(start_ms) {
    uint32_t n = 1;
    while (n < slots && n < (1u << 24)) n <<= 1;
    heads_.assign(n, nullptr);
    slot_min_.assign(n, INT64_MAX);
    mask_ = n - 1;
}

void TimingWheel::link(WheelTimer *t, uint32_t slot) {
    WheelTimer *&head = slot == kInflight ? inflight_ : heads_[slot];
    t->slot = slot;
    if (slot != kInflight && t->deadline < slot_min_[slot]) slot_min_[slot] = t->deadline;
    t->prev = nullptr;
    t->next = head;
    if (t->next) t->next->prev = t;
    head = t;
    t->armed = true;
    armed_++;
}

void TimingWheel::unlink(WheelTimer *t) {
    if (t->prev)
        t->prev->next = t->next;
    else if (t->slot == kInflight)
        inflight_ = t->next;
    else
        heads_[t->slot] = t->next;
    if (t->next) t->next->prev = t->prev;
    t->prev = t->next = nullptr;
    t->armed = false;
    armed_--;
}

void TimingWheel::schedule(WheelTimer *t, int64_t deadline) {
    uint64_t tick = tick_of(deadline);
    if (tick < floor_) tick = floor_;  // overdue: the next advance sees it
    uint32_t slot = static_cast<uint32_t>(tick & mask_);
    t->deadline = deadline;
    if (t->armed) {
        if (t->slot == slot) {
            if (slot != kInflight && deadline < slot_min_[slot]) slot_min_[slot] = deadline;
            return;
        }
        unlink(t);
    }
    link(t, slot);
}

void TimingWheel::take_slot(uint32_t slot) {
    scratch_.clear();
    for (WheelTimer *t = heads_[slot]; t; t = t->next) scratch_.push_back(t);
    if (scratch_.empty()) return;
    std::stable_sort(scratch_.begin(), scratch_.end(),
                     [](const WheelTimer *a, const WheelTimer *b) { return a->deadline < b->deadline; });
    for (WheelTimer *t : scratch_) unlink(t);
    slot_min_[slot] = INT64_MAX;  // re-linked timers set it again
    // link() prepends: insert from the latest so the earliest ends up first.
    for (auto it = scratch_.rbegin(); it != scratch_.rend(); ++it) link(*it, kInflight);
}

void TimingWheel::cancel(WheelTimer *t) {
    if (t->armed) unlink(t);
}

}  // namespace wsgate
