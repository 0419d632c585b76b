// The heartbeat policy: which of a connection's deadlines (ping, pong wait,
// idle, token expiry, write progress, close answer) is due, what to do about
// it, and when to look again. It decides; the server carries the decision
// out, so this depends on nothing but the connection's times and the wheel.
#pragma once

#include <cstdint>
#include <string>

#include "core/conn.h"
#include "core/wheel.h"

namespace wsgate {

class Heartbeat {
public:
    struct Action {
        enum Kind {
            None,
            Ping,   // send a ping now
            Close,  // start a close handshake (code, reason, cause)
            Drop,   // end the connection at once, no handshake (peer not answering)
        } kind = None;
        int code = 0;
        const char *reason = "";
        wsg_close_cause cause = WSG_CAUSE_LOST;
    };

    explicit Heartbeat(TimingWheel &wheel) : wheel_(wheel) {}

    // Makes sure the connection's timer fires no later than `deadline`
    // (later deadlines are found lazily when the current one fires).
    void arm(Conn *c, int64_t deadline) {
        if (!c->timer.armed || deadline < c->timer.deadline) wheel_.schedule(&c->timer, deadline);
    }
    // What is due at `now`, and the timer armed for the next deadline.
    Action check(Conn *c, int64_t now);
    // Starts a connection's deadlines at open.
    void start(Conn *c, int64_t now);
    // Applies one per-connection override (key checked by check_conn_timeout).
    void override(Conn *c, const std::string &key, int64_t value, int64_t now);

private:
    TimingWheel &wheel_;
};

}  // namespace wsgate
