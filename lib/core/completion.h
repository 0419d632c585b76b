// wsg_completion: one asynchronous call's result, waited for from a thread
// of the application's. The call's callback is wsg_completion_callback with
// the completion as `user`; the C API tells the completion when such a call
// is accepted (CompletionUse), so that
//   - wsg_completion_wait knows the server, and refuses (WSG_EBUSY) to wait
//     on its service thread, where the answer could never come;
//   - wsg_completion_free before the answer is safe: the completion then
//     outlives the free until the callback, which discards the answer and
//     frees it (the call owns it meanwhile).
// Threads: any; mu guards everything below it.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>

#include "core/async_result.h"

struct wsg_completion {
    mutable std::mutex mu;
    std::condition_variable cv;
    bool in_use = false;      // passed to a call that was accepted (or is being made)
    bool answered = false;    // the callback ran: result holds the answer
    bool freed = false;       // wsg_completion_free came first: the callback frees it
    const void *server = nullptr;  // the server of the call (compared, never dereferenced)
    wsg_result result;
};

namespace wsgate {

// The completion side of wsg_completion_callback: copies the result and
// wakes the waiters, or frees a completion that was freed first.
void complete(wsg_completion *c, const wsg_result &result) noexcept;
// wsg_completion_free.
void release(wsg_completion *c) noexcept;
// wsg_completion_wait (the arguments checked).
wsg_status wait_for(wsg_completion *c, int64_t timeout_ms);

// An asynchronous call's callback and user, seen by the C API before it
// makes the call: when the callback is wsg_completion_callback, the
// completion is marked in use for `server` (check() says whether it can be),
// and released again unless keep() says the call was accepted.
class CompletionUse {
public:
    CompletionUse(wsg_result_fn fn, void *user, const void *server);
    ~CompletionUse();
    CompletionUse(const CompletionUse &) = delete;
    CompletionUse &operator=(const CompletionUse &) = delete;
    // WSG_OK, or WSG_EINVAL (NULL completion, or one used already) with the
    // reason recorded.
    wsg_status check() const { return status_; }
    // The call was accepted: its callback will run.
    void keep() { kept_ = true; }

private:
    wsg_completion *c_ = nullptr;  // only when fn is wsg_completion_callback and it was free
    wsg_status status_ = WSG_OK;
    bool kept_ = false;
};

}  // namespace wsgate
