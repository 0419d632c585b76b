#include "core/heartbeat.h"

namespace wsgate {

void Heartbeat::start(Conn *c, int64_t now) {
    c->last_alive_ms = c->last_data_ms = now;
    c->next_ping_ms = c->times->ping_interval_ms ? now + c->times->ping_interval_ms : 0;
}

void Heartbeat::override(Conn *c, const std::string &key, int64_t value, int64_t now) {
    if (!c->own_times) {
        c->times = new HeartbeatTimes(*c->times);
        c->own_times = true;
    }
    HeartbeatTimes &t = const_cast<HeartbeatTimes &>(*c->times);
    if (key == "heartbeat.ping_interval_ms") {
        t.ping_interval_ms = value;
        c->next_ping_ms = value ? now + value : 0;
    } else if (key == "heartbeat.pong_wait_ms") {
        t.pong_wait_ms = value;
    } else if (key == "heartbeat.write_wait_ms") {
        t.write_wait_ms = value;
        if (c->write_deadline_ms) c->write_deadline_ms = value ? now + value : 0;
    } else if (key == "heartbeat.idle_timeout_ms") {
        t.idle_timeout_ms = value;
    } else if (key == "heartbeat.close_wait_ms") {
        t.close_wait_ms = value;
    }
}

Heartbeat::Action Heartbeat::check(Conn *c, int64_t now) {
    const HeartbeatTimes &t = *c->times;
    Action a;
    // A close already decided for a stop, for a peer that stopped reading,
    // or for input we refused explains why the peer neither answers nor
    // takes our output: keep it.
    bool explained = c->closing && (c->close_cause() == WSG_CAUSE_SHUTDOWN || c->close_cause() == WSG_CAUSE_BACKPRESSURE ||
                                    c->refused_input);
    if (c->close_deadline_ms && now >= c->close_deadline_ms) {
        a.kind = Action::Drop;
        a.cause = explained ? c->close_cause() : WSG_CAUSE_CLOSE_TIMEOUT;
        return a;  // code and reason: the close we sent
    }
    if (c->write_deadline_ms && now >= c->write_deadline_ms) {
        a.kind = Action::Drop;
        if (explained) {
            a.cause = c->close_cause();
        } else {
            a.code = 1006;
            a.reason = "write timeout";
            a.cause = WSG_CAUSE_WRITE_TIMEOUT;
        }
        return a;
    }
    if (!c->closing) {
        if (t.pong_wait_ms && now >= c->last_alive_ms + t.pong_wait_ms) {
            a.kind = Action::Drop;
            a.code = 1001;
            a.reason = "pong timeout";
            a.cause = WSG_CAUSE_PONG_TIMEOUT;
            return a;
        }
        const int64_t token_deadline = c->token_deadline_ms();
        if (token_deadline && now >= token_deadline) {
            a = {Action::Close, 1008, "token expired", WSG_CAUSE_TOKEN_EXPIRED};
        } else if (t.idle_timeout_ms && now >= c->last_data_ms + t.idle_timeout_ms) {
            a = {Action::Close, 1001, "idle timeout", WSG_CAUSE_IDLE_TIMEOUT};
        } else if (t.ping_interval_ms && now >= c->next_ping_ms) {
            a.kind = Action::Ping;
            c->next_ping_ms = now + t.ping_interval_ms;
        }
    }
    int64_t next = INT64_MAX;
    auto consider = [&next](int64_t when) {
        if (when && when < next) next = when;
    };
    consider(c->close_deadline_ms);
    consider(c->write_deadline_ms);
    if (!c->closing && a.kind != Action::Close) {
        if (t.pong_wait_ms) consider(c->last_alive_ms + t.pong_wait_ms);
        if (t.idle_timeout_ms) consider(c->last_data_ms + t.idle_timeout_ms);
        consider(c->token_deadline_ms());
        if (t.ping_interval_ms) consider(c->next_ping_ms);
    }
    if (next != INT64_MAX) wheel_.schedule(&c->timer, next);
    return a;
}

}  // namespace wsgate
