// One recurring condition (connections refused at accept, accept() failing)
// logged as an episode: when it starts, a reminder while it lasts, and once
// when it has been quiet for a while, each time with counts; never one line
// per occurrence, which under attack is a log flood.
#pragma once

#include <cstdint>

namespace wsgate {

class Episode {
public:
    // One more occurrence at now_ms (`extra`: a second count to carry, such
    // as connections closed). True when it starts an episode: log it now.
    bool hit(int64_t now_ms, uint64_t extra = 0) {
        last_ms_ = now_ms;
        if (active_) {
            count_++;
            extra_ += extra;
            return false;
        }
        active_ = true;
        count_ = 1;
        extra_ = extra;
        start_ms_ = reminded_ms_ = now_ms;
        return true;
    }

    enum class Due { None, Remind, Ended };
    // From a periodic tick: Ended once `quiet_ms` passed without an
    // occurrence (report the counts; the next hit starts a new episode),
    // Remind every `remind_ms` while it lasts.
    Due due(int64_t now_ms, int64_t quiet_ms, int64_t remind_ms) {
        if (!active_) return Due::None;
        if (now_ms - last_ms_ >= quiet_ms) {
            active_ = false;
            return Due::Ended;
        }
        if (now_ms - reminded_ms_ >= remind_ms) {
            reminded_ms_ = now_ms;
            return Due::Remind;
        }
        return Due::None;
    }
    // Counts of the current (or just ended) episode.
    uint64_t count() const { return count_; }
    uint64_t extra() const { return extra_; }
    int64_t duration_ms(int64_t now_ms) const { return now_ms - start_ms_; }
    bool active() const { return active_; }

private:
    bool active_ = false;
    uint64_t count_ = 0, extra_ = 0;
    int64_t start_ms_ = 0, last_ms_ = 0, reminded_ms_ = 0;
};

}  // namespace wsgate
