// Session data without a cluster: keys and values in this instance's memory,
// each with a deadline, following the same TTL rules as Redis' SET PX: a set
// replaces value and deadline, an expired key is never returned and is
// freed, either when it is next looked at or by sweep(), which the
// heartbeat tick calls with a bound on the work per call.
// Threads: the service thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>

namespace wsgate {

class SessionMemory {
public:
    // `now_ms` is monotonic; the entry expires at now_ms + ttl_ms (ttl_ms > 0).
    void set(const std::string &key, std::string value, int64_t ttl_ms, int64_t now_ms);
    // The value, or nullptr when absent or expired (then freed). Valid until
    // the next call.
    const std::string *get(const std::string &key, int64_t now_ms);
    // True when a live entry was removed.
    bool erase(const std::string &key, int64_t now_ms);
    // Frees at most `max` entries whose deadline passed; returns how many.
    size_t sweep(int64_t now_ms, size_t max);
    size_t size() const { return entries_.size(); }
    // Bytes of keys and values held (what the store costs, roughly).
    size_t bytes() const { return bytes_; }

private:
    struct Entry;
    using ByDeadline = std::multimap<int64_t, const std::string *>;
    struct Entry {
        std::string value;
        ByDeadline::iterator deadline;
    };
    using Entries = std::unordered_map<std::string, Entry>;
    void remove(Entries::iterator it);

    Entries entries_;
    // Deadline -> key (pointing into entries_, whose node addresses are stable).
    ByDeadline by_deadline_;
    size_t bytes_ = 0;
};

}  // namespace wsgate
