// Waits between attempts to reach Redis: exponential from min to max, each
// drawn at random from the upper half of its step, so instances that lost
// Redis together do not all come back in the same millisecond.
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>

namespace wsgate {

class Backoff {
public:
    Backoff(int64_t min_ms, int64_t max_ms) : min_(min_ms), max_(max_ms), rng_(std::random_device{}()) {}
    // The next wait; each call doubles the step up to max.
    int64_t next() {
        int64_t step = min_;
        for (int i = 0; i < attempt_ && step < max_; i++) step *= 2;
        step = std::min(step, max_);
        if (attempt_ < 62) attempt_++;
        std::uniform_int_distribution<int64_t> half(0, step / 2);
        return step - step / 2 + half(rng_);
    }
    void reset() { attempt_ = 0; }

private:
    int64_t min_, max_;
    int attempt_ = 0;
    std::mt19937_64 rng_;
};

}  // namespace wsgate
