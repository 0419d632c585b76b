// The mailbox: commands from other threads to the service thread. Any thread
// posts a typed command (send, close, broadcast...); the service thread takes
// the whole batch at once when woken and carries each out in order. The
// queue is swapped under a short lock; nothing else is shared.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "core/async_result.h"
#include "core/outbox.h"
#include "core/sessions.h"
#include "transport/transport.h"
#include "wsgate/wsgate.h"

namespace wsgate {

namespace cmd {
struct Send {
    wsg_conn_id id;
    OutMessage msg;
};
struct Close {
    wsg_conn_id id;
    int code;
    std::string reason;
};
struct Broadcast {
    OutMessage msg;
    wsg_conn_id except;  // 0: none
};
struct SendMany {
    std::vector<wsg_conn_id> ids;
    OutMessage msg;
};
struct Subscribe {
    wsg_conn_id id;
    std::string topic;
    bool on;  // subscribe, or unsubscribe
};
// relay: the envelope for the other instances of a cluster (built by the
// caller's thread), "" for none.
struct Publish {
    std::string topic;
    OutMessage msg;
    std::string relay;
};
struct UserSend {
    std::string user;
    OutMessage msg;
    std::string relay;
};
struct UserClose {
    std::string user;
    int code;
    std::string reason;
    std::string relay;
};
// One envelope for another instance: a connection of another node.
struct Relay {
    std::string channel;
    std::string envelope;
};
// wsg_topic_presence ('t') and wsg_user_presence ('u').
struct Presence {
    char kind;
    std::string name;
    AsyncReply reply;
};
struct Stop {};
struct Drain {
    int64_t duration_ms;
};
struct SetTimeout {
    wsg_conn_id id;
    std::string key;
    int64_t value;
};
struct ReloadTls {};
struct SetQueuePolicy {
    wsg_conn_id id;
    wsg_queue_policy policy;
};
// Session data: answered through `reply` (left in the mailbox at a stop:
// answered WSG_ESTATE, see answer_abandoned).
struct Session {
    SessionOp op;
    AsyncReply reply;
};
// A publish on a history topic (core/history.h): positioned first.
struct HistoryPublish {
    std::string topic;
    wsg_msg_type type;
    std::string payload;
};
// wsg_conn_subscribe_from, answered through `reply`.
struct SubscribeFrom {
    wsg_conn_id id;
    std::string topic;
    bool has_from;
    wsg_position from;
    AsyncReply reply;
    bool subscribed;  // already, by a call on the service thread
};
}  // namespace cmd

using Command = std::variant<cmd::Send, cmd::Close, cmd::Broadcast, cmd::SendMany, cmd::Subscribe, cmd::Publish,
                             cmd::UserSend, cmd::UserClose, cmd::Stop, cmd::Drain, cmd::SetTimeout, cmd::ReloadTls,
                             cmd::SetQueuePolicy, cmd::Relay, cmd::Session, cmd::Presence, cmd::HistoryPublish,
                             cmd::SubscribeFrom>;

class Mailbox {
public:
    explicit Mailbox(Transport &transport) : transport_(transport) {}

    // Accepting commands: only while the loop can drain them, so waking the
    // transport under the lock never touches a closed one.
    void open() {
        std::lock_guard<std::mutex> lock(mu_);
        open_ = true;
    }
    // Returns what was posted but not drained: the caller answers the
    // commands that promise an answer (answer_abandoned).
    std::vector<Command> close() {
        std::lock_guard<std::mutex> lock(mu_);
        open_ = false;
        std::vector<Command> left;
        left.swap(queue_);
        return left;
    }
    // Any thread. WSG_ESTATE when the server is not serving.
    bool post(Command &&c) {
        std::lock_guard<std::mutex> lock(mu_);
        if (!open_) return false;
        queue_.push_back(std::move(c));
        // One wake-up per batch: the loop drains everything queued so far.
        if (!wake_pending_.exchange(true)) transport_.wake();
        return true;
    }
    // Service thread: runs f(command) for every command posted so far.
    // Cheap when there is none (the loop wakes often for its own reasons).
    template <class F>
    void drain(F &&f) {
        if (!wake_pending_.load(std::memory_order_acquire)) return;
        std::vector<Command> batch;
        {
            std::lock_guard<std::mutex> lock(mu_);
            batch.swap(queue_);
            wake_pending_.store(false);
        }
        for (Command &c : batch) std::visit(f, c);
    }
    // Makes the next drain() look (commands posted before the loop ran).
    void poke() { wake_pending_.store(true); }

private:
    Transport &transport_;
    std::mutex mu_;               // guards queue_ and open_
    std::vector<Command> queue_;
    bool open_ = false;
    std::atomic<bool> wake_pending_{false};
};

}  // namespace wsgate
