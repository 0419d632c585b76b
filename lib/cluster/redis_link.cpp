#include "cluster/redis_link.h"

#include <hiredis/adapters/libev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <cstring>
#include <utility>

#include "base/time.h"

namespace wsgate {
namespace {

std::string_view str_of(const redisReply *r) { return std::string_view(r->str, r->len); }

const char *type_name(int type) {
    switch (type) {
    case REDIS_REPLY_STRING: return "a string";
    case REDIS_REPLY_ARRAY: return "an array";
    case REDIS_REPLY_INTEGER: return "an integer";
    case REDIS_REPLY_NIL: return "nil";
    case REDIS_REPLY_STATUS: return "a status";
    case REDIS_REPLY_ERROR: return "an error";
    default: return "an unknown reply";
    }
}

}  // namespace

RedisLink::RedisLink(Options opts, Transport &transport, Owner &owner)
    : opts_(std::move(opts)),
      transport_(transport),
      owner_(owner),
      backoff_(opts_.reconnect_min_ms, opts_.reconnect_max_ms) {}

RedisLink::~RedisLink() { stop(); }

void RedisLink::start() {
    if (state_ == State::Connecting || state_ == State::Handshake || state_ == State::Ready) return;
    transport_.stop_timer(&retry_timer_);
    attempt_start_ms_ = mono_ms();
    redisAsyncContext *ac = opts_.address.is_unix() ? redisAsyncConnectUnix(opts_.address.unix_path.c_str())
                                                    : redisAsyncConnect(opts_.address.host.c_str(), opts_.address.port);
    if (!ac) return lost("cannot create a Redis context (out of memory)");
    if (ac->err) {
        std::string why = std::string("cannot connect to ") + opts_.address.text() + ": " + ac->errstr;
        redisAsyncFree(ac);
        return lost(why);
    }
    struct ev_loop *loop = transport_.ev_loop();
    if (!loop || redisLibevAttach(loop, ac) != REDIS_OK) {
        redisAsyncFree(ac);
        return lost("the service loop is not libev (tuning.event_loop must be epoll)");
    }
    ac->data = this;
    // Attached first: setting the connect callback arms the write watcher.
    redisAsyncSetConnectCallback(ac, on_connect_cb);
    redisAsyncSetDisconnectCallback(ac, on_disconnect_cb);
    ac_ = ac;
    state_ = State::Connecting;
}

void RedisLink::stop() {
    transport_.stop_timer(&retry_timer_);
    transport_.stop_timer(&reset_timer_);
    free_context();
    std::deque<Pending> failed;
    failed.swap(pending_);
    state_ = State::Idle;
    for (Pending &p : failed) p.cb(nullptr);
}

void RedisLink::free_context() {
    if (!ac_) return;
    // Forgotten first: redisAsyncFree runs every callback with NULL and the
    // disconnect callback, which then see a context that is not ours.
    redisAsyncContext *ac = ac_;
    ac_ = nullptr;
    ac->data = nullptr;
    redisAsyncFree(ac);
}

void RedisLink::on_connect_cb(const redisAsyncContext *ac, int status) {
    auto *self = static_cast<RedisLink *>(ac->data);
    if (!self || self->ac_ != ac) return;
    if (status != REDIS_OK) {
        // hiredis frees this context when we return; a reset under way
        // reports its own reason.
        self->ac_ = nullptr;
        if (self->state_ == State::Failing) return;
        std::string err = ac->c.errstr[0] ? ac->c.errstr : "connection failed";
        self->lost("cannot connect to " + self->opts_.address.text() + ": " + err);
        return;
    }
    if (self->state_ == State::Failing) return;
    self->state_ = State::Handshake;
    self->handshake();
}

void RedisLink::on_disconnect_cb(const redisAsyncContext *ac, int status) {
    auto *self = static_cast<RedisLink *>(ac->data);
    if (!self || self->ac_ != ac) return;
    // hiredis frees the context after this returns.
    self->ac_ = nullptr;
    if (self->state_ == State::Failing) return;
    std::string why = status == REDIS_OK || !ac->c.errstr[0]
                          ? "Redis at " + self->opts_.address.text() + " closed the connection"
                          : "connection to Redis at " + self->opts_.address.text() + " lost: " + ac->c.errstr;
    self->lost(why);
}

void RedisLink::handshake() {
    auto step = [this](const char *what) {
        return [this, what](const redisReply *r) {
            if (!r) return;
            if (r->type == REDIS_REPLY_ERROR) {
                std::string err(str_of(r));
                std::string why;
                if (std::strcmp(what, "AUTH") == 0)
                    why = "Redis refused the password (AUTH: " + err + "): check cluster.password_file";
                else if (err.rfind("NOAUTH", 0) == 0)
                    why = "Redis requires a password (" + err + "): set cluster.password_file";
                else
                    why = std::string(what) + " failed: " + err;
                return reset(why);
            }
            if (std::strcmp(what, "PING") != 0) return;
            if (r->type != REDIS_REPLY_STATUS || str_of(r) != "PONG")
                return reset("the server at " + opts_.address.text() + " does not answer like Redis (PING got " +
                             type_name(r->type) + ")");
            state_ = State::Ready;
            was_ready_ = true;
            connects_++;
            ready_since_ms_ = mono_ms();
            last_message_ms_ = ready_since_ms_;
            backoff_.reset();
            owner_.on_link_ready(this);
        };
    };
    if (!opts_.password.empty()) {
        std::string_view argv[] = {"AUTH", opts_.password};
        if (!send(argv, 2, step("AUTH"), true)) return;
    }
    if (opts_.db > 0) {
        std::string db = std::to_string(opts_.db);
        std::string_view argv[] = {"SELECT", db};
        if (!send(argv, 2, step("SELECT"), true)) return;
    }
    std::string_view argv[] = {"PING"};
    send(argv, 1, step("PING"), true);
}

bool RedisLink::command(std::initializer_list<std::string_view> argv, ReplyFn cb) {
    if (state_ != State::Ready) return false;
    return send(argv.begin(), argv.size(), std::move(cb), false);
}

bool RedisLink::command(const std::vector<std::string> &argv, ReplyFn cb) {
    if (state_ != State::Ready) return false;
    std::vector<std::string_view> views(argv.begin(), argv.end());
    return send(views.data(), views.size(), std::move(cb), false);
}

bool RedisLink::subscribe(std::string_view channel, bool on, ReplyFn cb) {
    if (state_ != State::Ready || !opts_.subscriber) return false;
    std::string_view argv[] = {on ? "SUBSCRIBE" : "UNSUBSCRIBE", channel};
    return send(argv, 2, std::move(cb), false);
}

bool RedisLink::send(const std::string_view *argv, size_t argc, ReplyFn cb, bool in_handshake) {
    if (!ac_ || (!in_handshake && pending_.size() >= opts_.max_pending) || argc == 0) return false;
    // Most commands have a few arguments: on the stack; scripts with many
    // entries on the heap.
    const char *small_args[8];
    size_t small_lens[8];
    std::vector<const char *> big_args;
    std::vector<size_t> big_lens;
    const char **args = small_args;
    size_t *lens = small_lens;
    if (argc > 8) {
        big_args.resize(argc);
        big_lens.resize(argc);
        args = big_args.data();
        lens = big_lens.data();
    }
    for (size_t i = 0; i < argc; i++) {
        args[i] = argv[i].data();
        lens[i] = argv[i].size();
    }
    if (redisAsyncCommandArgv(ac_, on_reply_cb, this, static_cast<int>(argc), args, lens) != REDIS_OK) {
        reset(std::string("hiredis refused a command: ") + (ac_->errstr ? ac_->errstr : "context failing"));
        return false;
    }
    pending_.push_back(Pending{mono_ms(), std::move(cb)});
    return true;
}

void RedisLink::on_reply_cb(redisAsyncContext *ac, void *reply, void *priv) {
    auto *self = static_cast<RedisLink *>(priv);
    // NULL: the context is being freed (what waits is failed by lost()).
    if (!reply || !self || self->ac_ != ac) return;
    self->on_reply(static_cast<const redisReply *>(reply));
}

void RedisLink::on_reply(const redisReply *r) {
    if (state_ == State::Failing) return;
    if (opts_.subscriber && r->type == REDIS_REPLY_ARRAY && r->elements >= 3 &&
        r->element[0]->type == REDIS_REPLY_STRING) {
        std::string_view kind = str_of(r->element[0]);
        if (kind == "message") {
            last_message_ms_ = mono_ms();
            if (r->element[1]->type == REDIS_REPLY_STRING && r->element[2]->type == REDIS_REPLY_STRING)
                owner_.on_link_message(this, str_of(r->element[1]), str_of(r->element[2]));
            return;
        }
    }
    if (pending_.empty()) return reset("Redis sent a reply nothing was waiting for");
    Pending p = std::move(pending_.front());
    pending_.pop_front();
    p.cb(r);
}

void RedisLink::reset(const std::string &why) {
    if (state_ == State::Failing || state_ == State::Idle || state_ == State::Waiting) return;
    state_ = State::Failing;
    reset_why_ = why;
    transport_.start_timer(&reset_timer_, 0, [this] {
        if (state_ != State::Failing) return;
        free_context();
        lost(reset_why_);
    });
}

void RedisLink::check(int64_t now) {
    switch (state_) {
    case State::Connecting:
    case State::Handshake:
        if (now - attempt_start_ms_ > opts_.connect_timeout_ms)
            reset("Redis at " + opts_.address.text() + " did not " +
                  (state_ == State::Connecting ? "accept the connection" : "answer") + " within cluster.connect_timeout_ms (" +
                  std::to_string(opts_.connect_timeout_ms) + " ms)");
        break;
    case State::Ready:
        if (!pending_.empty() && now - pending_.front().sent_ms > opts_.command_timeout_ms)
            reset("Redis at " + opts_.address.text() + " did not reply within cluster.command_timeout_ms (" +
                  std::to_string(opts_.command_timeout_ms) + " ms; " + std::to_string(pending_.size()) +
                  " commands waiting)");
        break;
    default: break;
    }
}

void RedisLink::lost(const std::string &why) {
    const bool was_ready = was_ready_;
    was_ready_ = false;
    state_ = State::Waiting;
    std::deque<Pending> failed;
    failed.swap(pending_);
    for (Pending &p : failed) p.cb(nullptr);
    transport_.start_timer(&retry_timer_, backoff_.next() * 1000, [this] {
        state_ = State::Idle;
        start();
    });
    owner_.on_link_lost(this, why, was_ready);
}

}  // namespace wsgate
