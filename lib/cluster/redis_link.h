// One connection to Redis: a hiredis async context on the service loop
// (LWS-NOTES.md, "hiredis 0.14.1 on the service loop"), made and kept:
//   - connect with a deadline (cluster.connect_timeout_ms), then AUTH (when
//     a password is set), SELECT (db > 0) and PING, pipelined; the link is
//     ready when PING answers PONG, so a server that is not Redis, a wrong
//     password or a missing one is found before anything else is sent;
//   - a deadline on the oldest command waiting for its reply
//     (cluster.command_timeout_ms): hiredis has none, and a hung Redis would
//     otherwise pile up commands forever;
//   - a cap on the commands waiting (cluster.max_pending);
//   - reconnect with jittered exponential backoff after any failure.
// A failed link frees its context with redisAsyncFree, never from inside a
// hiredis callback (a zero-delay timer does it), and fails every waiting
// command at once (their callbacks get nullptr).
//
// A subscriber link carries nothing but (un)subscribe once ready: replies
// and pushed messages are told apart by their first element.
//
// Threads: the service thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/address.h"
#include "cluster/backoff.h"
#include "transport/transport.h"

struct redisAsyncContext;
struct redisReply;

namespace wsgate {

class RedisLink {
public:
    // The reply (valid during the call only: copy what you keep), or nullptr
    // when the command failed (the link was lost, timed out or stopped).
    using ReplyFn = std::function<void(const redisReply *)>;

    class Owner {
    public:
        virtual ~Owner() = default;
        // Connected, authenticated, PING answered: commands may be sent.
        virtual void on_link_ready(RedisLink *link) = 0;
        // An attempt failed or a ready link was lost (`was_ready`); the link
        // retries by itself after its backoff.
        virtual void on_link_lost(RedisLink *link, const std::string &why, bool was_ready) = 0;
        // A subscriber link received a message on `channel`.
        virtual void on_link_message(RedisLink *link, std::string_view channel, std::string_view payload) = 0;
    };

    struct Options {
        std::string name;  // "commands" or "subscriptions", for messages
        bool subscriber = false;
        RedisAddress address;
        std::string password;
        int db = 0;
        int64_t connect_timeout_ms = 1000, command_timeout_ms = 1000;
        int64_t reconnect_min_ms = 50, reconnect_max_ms = 1000;
        size_t max_pending = 65536;
    };

    RedisLink(Options opts, Transport &transport, Owner &owner);
    ~RedisLink();
    RedisLink(const RedisLink &) = delete;
    RedisLink &operator=(const RedisLink &) = delete;

    // Connects now (the transport must be open). Service thread.
    void start();
    // Frees the context and fails every waiting command; no retry. Never from
    // inside a hiredis callback (the server's stop is not one).
    void stop();
    bool ready() const { return state_ == State::Ready; }
    // Sends one command; false (nothing sent, `cb` never called) when the
    // link is not ready or max_pending commands are waiting.
    bool command(std::initializer_list<std::string_view> argv, ReplyFn cb);
    // The same with any number of arguments (scripts with many entries).
    bool command(const std::vector<std::string> &argv, ReplyFn cb);
    // Subscriber links: SUBSCRIBE or UNSUBSCRIBE one channel; `cb` gets the
    // confirmation. Same return as command().
    bool subscribe(std::string_view channel, bool on, ReplyFn cb);
    // Checks the deadlines (call every few ms from a timer, not a hiredis
    // callback). `now` is monotonic ms.
    void check(int64_t now);
    // Drops the connection (soon, outside any hiredis callback) and
    // reconnects after the backoff: `why` is reported by on_link_lost.
    void reset(const std::string &why);
    size_t pending() const { return pending_.size(); }
    // Monotonic ms when the link last became ready.
    int64_t ready_since() const { return ready_since_ms_; }
    // The last pushed message (subscriber links), monotonic ms.
    int64_t last_message() const { return last_message_ms_; }
    // How many times the link became ready.
    uint64_t connects() const { return connects_; }
    const std::string &name() const { return opts_.name; }
    const RedisAddress &address() const { return opts_.address; }

private:
    enum class State { Idle, Connecting, Handshake, Ready, Failing, Waiting };
    struct Pending {
        int64_t sent_ms;
        ReplyFn cb;
    };
    static void on_connect_cb(const redisAsyncContext *ac, int status);
    static void on_disconnect_cb(const redisAsyncContext *ac, int status);
    static void on_reply_cb(redisAsyncContext *ac, void *reply, void *priv);
    void on_reply(const redisReply *r);
    void handshake();
    bool send(const std::string_view *argv, size_t argc, ReplyFn cb, bool handshake);
    // The context is gone (or freed by us): fail what waits, retry later.
    void lost(const std::string &why);
    void free_context();

    Options opts_;
    Transport &transport_;
    Owner &owner_;
    redisAsyncContext *ac_ = nullptr;
    State state_ = State::Idle;
    std::deque<Pending> pending_;
    Backoff backoff_;
    Transport::Timer retry_timer_, reset_timer_;
    std::string reset_why_;
    bool was_ready_ = false;
    int64_t attempt_start_ms_ = 0, ready_since_ms_ = 0, last_message_ms_ = 0;
    uint64_t connects_ = 0;
};

}  // namespace wsgate
