#include "core/async_calls.h"

#include <vector>

namespace wsgate {

const char *const kStoppedMessage = "the server stopped before the call was answered";

void answer_now(const AsyncReply &reply, wsg_server *server, wsg_status status, std::string message) {
    if (!reply.fn) return;
    wsg_result r;
    r.status = status;
    r.message = std::move(message);
    reply(server, r);
}

AsyncCalls::Id AsyncCalls::add(AsyncReply reply) {
    const Id id = next_++;
    waiting_.emplace(id, reply);
    return id;
}

bool AsyncCalls::answer(Id id, const wsg_result &result) {
    auto it = waiting_.find(id);
    if (it == waiting_.end()) return false;
    // Forgotten before the callback runs: whatever it calls, this id is done.
    const AsyncReply reply = it->second;
    waiting_.erase(it);
    reply(server_, result);
    return true;
}

bool AsyncCalls::answer(Id id, wsg_status status, std::string message) {
    auto it = waiting_.find(id);
    if (it == waiting_.end()) return false;
    const AsyncReply reply = it->second;
    waiting_.erase(it);
    answer_now(reply, server_, status, std::move(message));
    return true;
}

void AsyncCalls::fail_all(wsg_status status, const std::string &message) {
    // Taken out first: a callback may start new calls (refused by then) or
    // answer nothing here, but never sees a half-emptied table.
    while (!waiting_.empty()) {
        std::unordered_map<Id, AsyncReply> batch;
        batch.swap(waiting_);
        for (auto &entry : batch) answer_now(entry.second, server_, status, message);
    }
}

}  // namespace wsgate
