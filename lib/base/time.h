// The clocks wsgate reads: monotonic for durations and deadlines, the wall
// clock for timestamps (Unix time) and token expiry.
#pragma once

#include <chrono>
#include <cstdint>

namespace wsgate {

inline int64_t mono_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

inline int64_t mono_us() {
    using namespace std::chrono;
    return duration_cast<microseconds>(steady_clock::now().time_since_epoch()).count();
}

inline int64_t unix_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

}  // namespace wsgate
