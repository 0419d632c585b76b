#include "observe/log.h"

#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>

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
}  // namespace

void Logger::emit(wsg_log_level level, LogEvent e, const LogFields &fields) const noexcept {
    const char *event = log_event_name(e);
    if (!enabled(level)) return;
    try {
        LogFields line;
        line["ts"] = utc_now();
        line["level"] = log_level_name(level);
        line["event"] = event;
        for (auto it = fields.begin(); it != fields.end(); ++it) line[it.key()] = it.value();
        // Network input (paths, origins, reasons) may hold invalid UTF-8:
        // replace it rather than fail.
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
