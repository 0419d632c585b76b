#include "core/completion.h"

#include <chrono>
#include <new>

#include "base/error.h"
#include "core/service_thread.h"

namespace wsgate {

void complete(wsg_completion *c, const wsg_result &result) noexcept {
    if (!c) return;
    std::unique_lock<std::mutex> lock(c->mu);
    if (c->freed) {
        lock.unlock();
        delete c;
        return;
    }
    try {
        c->result = result;
    } catch (const std::bad_alloc &) {
        c->result = wsg_result();
        c->result.status = WSG_ENOMEM;
        // message stays "": nothing more can be allocated
    }
    c->answered = true;
    // Under the lock: a waiter that sees `answered` may free the completion
    // as soon as it has the lock, so nothing of it is touched after unlock.
    c->cv.notify_all();
}

void release(wsg_completion *c) noexcept {
    if (!c) return;
    {
        std::lock_guard<std::mutex> lock(c->mu);
        if (c->in_use && !c->answered) {
            c->freed = true;  // the callback frees it
            return;
        }
    }
    delete c;
}

wsg_status wait_for(wsg_completion *c, int64_t timeout_ms) {
    std::unique_lock<std::mutex> lock(c->mu);
    if (c->answered) return WSG_OK;
    // Not in use yet is waited on too: another thread (a handler) may be
    // about to make the call.
    if (c->server && c->server == current_service_server())
        return fail(WSG_EBUSY, "wsg_completion_wait on the service thread of the server the call was made on: "
                               "the answer runs on this thread, so it could never come (use a callback)");
    auto done = [c] { return c->answered; };
    // Beyond about 34 years is "no limit": the deadline would overflow the clock.
    if (timeout_ms < 0 || timeout_ms > (int64_t{1} << 40)) {
        c->cv.wait(lock, done);
        return WSG_OK;
    }
    if (!c->cv.wait_for(lock, std::chrono::milliseconds(timeout_ms), done))
        return fail(WSG_ETIMEOUT, "no answer within " + std::to_string(timeout_ms) + " ms");
    return WSG_OK;
}

CompletionUse::CompletionUse(wsg_result_fn fn, void *user, const void *server) {
    if (fn != wsg_completion_callback) return;
    auto *c = static_cast<wsg_completion *>(user);
    if (!c) {
        status_ = fail(WSG_EINVAL, "user is NULL: wsg_completion_callback needs the wsg_completion as its user");
        return;
    }
    std::lock_guard<std::mutex> lock(c->mu);
    if (c->in_use) {
        status_ = fail(WSG_EINVAL, "this wsg_completion was passed to a call already: use one per call");
        return;
    }
    c->in_use = true;
    c->server = server;
    c_ = c;
}

CompletionUse::~CompletionUse() {
    if (!c_ || kept_) return;
    // Refused: nothing will answer, so the completion is as it was.
    std::lock_guard<std::mutex> lock(c_->mu);
    c_->in_use = false;
    c_->server = nullptr;
}

}  // namespace wsgate
