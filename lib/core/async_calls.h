// Asynchronous calls waiting for their answer (presence, session data): the
// "answered exactly once" rule in one place. A call the C API accepted
// (WSG_OK) is either still in the mailbox, or registered here while Redis
// works on it; whichever way it ends, its AsyncReply runs once:
//   - answer(id, result): Redis (or the local store) answered;
//   - fail_all(): the server stops, every call still here gets WSG_ESTATE
//     ("the server stopped"), before the Redis links are freed (whose
//     failed commands then find nothing to answer);
//   - answer_abandoned(command): a command the mailbox still held when it
//     closed (commands carrying an AsyncReply name it `reply`).
// Threads: the service thread, or the thread that stops a server whose loop
// does not run.
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>

#include "core/async_result.h"

namespace wsgate {

// Answers `reply` at once with a status and message (no value, no entries).
void answer_now(const AsyncReply &reply, wsg_server *server, wsg_status status, std::string message);

// The message every call the server did not answer before stopping gets.
extern const char *const kStoppedMessage;

class AsyncCalls {
public:
    using Id = uint64_t;
    explicit AsyncCalls(wsg_server *server) : server_(server) {}
    AsyncCalls(const AsyncCalls &) = delete;
    AsyncCalls &operator=(const AsyncCalls &) = delete;
    ~AsyncCalls() { fail_all(WSG_ESTATE, kStoppedMessage); }

    // Keeps `reply` until its answer; the id names it in a Redis callback.
    Id add(AsyncReply reply);
    // Tells call `id` its outcome and forgets it. False (nothing runs) when
    // it was answered already: the server stopped first.
    bool answer(Id id, const wsg_result &result);
    // The same with a status and message only.
    bool answer(Id id, wsg_status status, std::string message);
    // Every call still waiting gets `status` and `message`, once.
    void fail_all(wsg_status status, const std::string &message);
    size_t size() const { return waiting_.size(); }

private:
    wsg_server *server_;
    Id next_ = 1;
    std::unordered_map<Id, AsyncReply> waiting_;
};

// A mailbox command left over at close: WSG_ESTATE for those that carry an
// AsyncReply (member `reply`), nothing for the others.
template <class T, class = void>
struct carries_reply : std::false_type {};
template <class T>
struct carries_reply<T, std::void_t<decltype(std::declval<T &>().reply)>>
    : std::is_same<std::decay_t<decltype(std::declval<T &>().reply)>, AsyncReply> {};

template <class Command>
void answer_abandoned(Command &c, wsg_server *server) {
    if constexpr (carries_reply<Command>::value) answer_now(c.reply, server, WSG_ESTATE, kStoppedMessage);
}

}  // namespace wsgate
