#include "observe/log.h"

#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>

namespace wsgate {

int log_level_from_name(const std::string &name) {
    if (name == "debug") return WSG_LOG_DEBUG;
    if (name == "info") return WSG_LOG_INFO;
    if (name == "warn") return WSG_LOG_WARN;
    if (name == "error") return WSG_LOG_ERROR;
    return 1000;  // "off"
}

const char *log_level_name(wsg_log_level level) {
    switch (level) {
    case WSG_LOG_DEBUG: return "debug";
    case WSG_LOG_INFO: return "info";
    case WSG_LOG_WARN: return "warn";
    case WSG_LOG_ERROR: return "error";
    case WSG_LOG_MAX_: break;
    }
    return "info";
}

namespace {
std::string utc_now() {
    struct timeval tv;
    gettimeofday(&tv, nullptr);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char buf[64];
    snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             static_cast<int>(tv.tv_usec / 1000));
    return buf;
}

int64_t monotonic_ms() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// Cuts a string value longer than kLogMaxStringBytes at a UTF-8 boundary.
void cap_string(nlohmann::ordered_json &v) {
    if (!v.is_string()) return;
    const std::string &s = v.get_ref<const std::string &>();
    if (s.size() <= kLogMaxStringBytes) return;
    size_t cut = kLogMaxStringBytes;
    // Back off continuation bytes (10xxxxxx) so no character is split.
    while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) cut--;
    std::string capped = s.substr(0, cut);
    capped += "...(" + std::to_string(s.size() - cut) + " more bytes)";
    v = std::move(capped);
}

}  // namespace

bool LogFloodGate::admit(LogEvent e, const LogFields &fields, int64_t now_ms, LogFields *summary) {
    const char *key_field = log_event_flood_key(e);
    if (!key_field || max_per_s_ == 0) return true;
    std::string value;
    if (*key_field) {
        auto it = fields.find(key_field);
        if (it != fields.end()) value = it->is_string() ? it->get<std::string>() : it->dump();
    }
    std::lock_guard<std::mutex> lock(mu_);
    Key key(e, std::move(value));
    auto it = keys_.find(key);
    if (it == keys_.end()) {
        if (keys_.size() >= kMaxKeys) key.second = "(other)";
        it = keys_.emplace(std::move(key), Window{}).first;
        it->second.start_ms = now_ms;
    }
    Window &w = it->second;
    if (now_ms - w.start_ms >= 1000) {
        if (w.suppressed && summary) *summary = summary_of(it->first, w, now_ms);
        w.start_ms = now_ms;
        w.logged = 0;
        w.suppressed = 0;
    }
    if (w.logged < max_per_s_) {
        w.logged++;
        return true;
    }
    w.suppressed++;
    pending_.store(true, std::memory_order_relaxed);
    return false;
}

LogFields LogFloodGate::summary_of(const Key &k, const Window &w, int64_t now_ms) {
    LogFields f;
    f["of"] = log_event_name(k.first);
    const char *key_field = log_event_flood_key(k.first);
    if (key_field && *key_field && !k.second.empty()) {
        // The key's value as it was logged: a number stays a number.
        LogFields v = LogFields::parse(k.second, nullptr, false);
        f[key_field] = v.is_discarded() ? LogFields(k.second) : v;
    }
    f["suppressed"] = w.suppressed;
    f["window_ms"] = now_ms - w.start_ms;
    return f;
}

void Logger::emit(wsg_log_level level, LogEvent e, const LogFields &fields) const noexcept {
    if (!enabled(level)) return;
    try {
        LogFields summary;
        const bool admitted = flood_.admit(e, fields, monotonic_ms(), &summary);
        if (!summary.is_null()) deliver(log_event_level(LogEvent::log_suppressed), LogEvent::log_suppressed, summary);
        if (admitted) deliver(level, e, fields);
    } catch (...) {
    }
}

void Logger::flush_suppressed() const noexcept {
    try {
        flood_.flush(monotonic_ms(), [this](const LogFields &summary) {
            if (enabled(LogEvent::log_suppressed))
                deliver(log_event_level(LogEvent::log_suppressed), LogEvent::log_suppressed, summary);
        });
    } catch (...) {
    }
}

void Logger::deliver(wsg_log_level level, LogEvent e, const LogFields &fields) const noexcept {
    const char *event = log_event_name(e);
    try {
        LogFields line;
        line["ts"] = utc_now();
        line["level"] = log_level_name(level);
        line["event"] = event;
        for (auto it = fields.begin(); it != fields.end(); ++it) {
            line[it.key()] = it.value();
            cap_string(line[it.key()]);
        }
        // Network input (paths, origins, reasons) may hold invalid UTF-8:
        // replace it rather than fail. Control characters and quotes are
        // escaped by JSON, so no input can forge a line.
        std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        if (fn_) {
            fn_(server_, level, event, text.c_str(), text.size(), user_);
        } else {
            text.push_back('\n');
            // One write() per line keeps lines whole when threads interleave.
            ssize_t n = ::write(STDERR_FILENO, text.data(), text.size());
            (void)n;
        }
    } catch (...) {
    }
}

}  // namespace wsgate
