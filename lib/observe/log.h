// Structured log events: one JSON object per accept, open, rejection, close
// and error, to stderr as JSON lines or to the application's callback.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "observe/events.h"
#include "wsgate/wsgate.h"

namespace wsgate {

using LogFields = nlohmann::ordered_json;

// Parses the log.level option ("debug".."error", "off").
int log_level_from_name(const std::string &name);
const char *log_level_name(wsg_log_level level);

class Logger {
public:
    void set_min_level(int level) { min_level_ = level; }
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
    // Never throws: a failing sink loses the event, not the server.
    void emit(LogEvent e, const LogFields &fields) const noexcept { emit(log_event_level(e), e, fields); }
    void emit(wsg_log_level level, LogEvent e, const LogFields &fields) const noexcept;

private:
    int min_level_ = WSG_LOG_INFO;
    wsg_log_fn fn_ = nullptr;
    void *user_ = nullptr;
    wsg_server *server_ = nullptr;
};

}  // namespace wsgate
