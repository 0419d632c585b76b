// Structured log events: one JSON object per accept, open, rejection, close
// and error, to stderr as JSON lines or to the application's callback.
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "observe/events.h"
#include "wsgate/wsgate.h"

namespace wsgate {

using LogFields = nlohmann::ordered_json;

// Parses the log.level option ("debug".."error", "off").
int log_level_from_name(const std::string &name);
const char *log_level_name(wsg_log_level level);

// Longest string field value written as is; longer ones (paths, origins,
// reasons: network input) are cut at a UTF-8 boundary and marked with how
// many bytes were left out.
constexpr size_t kLogMaxStringBytes = 512;

// Limits the events a flood repeats (WSGATE_LOG_FLOOD_EVENTS) to `max_per_s`
// lines per second for each kind and key value, and counts the rest into one
// `log_suppressed` summary per kind and second. Thread-safe.
class LogFloodGate {
public:
    void set_max_per_s(uint32_t n) { max_per_s_ = n; }
    // True when this event may be logged now. When the key's previous second
    // had suppressed lines, their summary is put in *summary first.
    bool admit(LogEvent e, const LogFields &fields, int64_t now_ms, LogFields *summary);
    // Summaries of seconds that are over, for keys that went quiet (from a
    // periodic tick; cheap when nothing was suppressed). Calls out(fields)
    // for each.
    template <class Out>
    void flush(int64_t now_ms, Out out) {
        if (!pending_.load(std::memory_order_relaxed)) return;
        std::lock_guard<std::mutex> lock(mu_);
        bool left = false;
        for (auto &kv : keys_) {
            Window &w = kv.second;
            if (!w.suppressed) continue;
            if (now_ms - w.start_ms < 1000) {
                left = true;
                continue;
            }
            out(summary_of(kv.first, w, now_ms));
            w.suppressed = 0;
            w.logged = 0;
            w.start_ms = now_ms;
        }
        pending_.store(left, std::memory_order_relaxed);
    }

private:
    using Key = std::pair<LogEvent, std::string>;
    struct Window {
        int64_t start_ms = 0;
        uint32_t logged = 0;
        uint64_t suppressed = 0;
    };
    static LogFields summary_of(const Key &k, const Window &w, int64_t now_ms);
    // Keys are bounded (event kinds times their key field's few values); past
    // this many, new values share one key per event.
    static constexpr size_t kMaxKeys = 256;
    uint32_t max_per_s_ = 0;
    std::mutex mu_;
    std::map<Key, Window> keys_;
    std::atomic<bool> pending_{false};
};

class Logger {
public:
    void set_min_level(int level) { min_level_ = level; }
    // Lines per second per flood-limited event kind (0: no limit). Set
    // before the server runs.
    void set_max_per_s(uint32_t n) { flood_.set_max_per_s(n); }
    // fn may be null: back to the default stderr sink. Not thread-safe:
    // set before the server runs.
    void set_sink(wsg_log_fn fn, void *user) {
        fn_ = fn;
        user_ = user;
    }
    // The handle the sink receives.
    void set_server(wsg_server *server) { server_ = server; }
    bool enabled(wsg_log_level level) const { return level >= min_level_; }
    bool enabled(LogEvent e) const { return enabled(log_event_level(e)); }
    // Adds "ts", "level" and "event" in front of `fields` and delivers the
    // line, at the event's own level (observe/events.h) or at `level`.
    // Flood-limited events past log.max_per_s are counted, not delivered.
    // Never throws: a failing sink loses the event, not the server.
    void emit(LogEvent e, const LogFields &fields) const noexcept { emit(log_event_level(e), e, fields); }
    void emit(wsg_log_level level, LogEvent e, const LogFields &fields) const noexcept;
    // Delivers the summaries of suppressed events whose second is over (the
    // service thread's tick calls this).
    void flush_suppressed() const noexcept;

private:
    void deliver(wsg_log_level level, LogEvent e, const LogFields &fields) const noexcept;
    int min_level_ = WSG_LOG_INFO;
    wsg_log_fn fn_ = nullptr;
    void *user_ = nullptr;
    wsg_server *server_ = nullptr;
    // Mutable: emit is const for its callers, the limiter counts.
    mutable LogFloodGate flood_;
};

}  // namespace wsgate
