#include "core/server.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <random>

#include "base/error.h"
#include "base/time.h"
#include "core/service_thread.h"
#include "protocol/handshake.h"
#include "protocol/utf8.h"
#include "security/tls.h"
#include "transport/fd_limit.h"

namespace wsgate {
namespace {

// accept_refused / accept_failed episodes: over after this long without
// one, reminded this often while they last.
constexpr int64_t kEpisodeQuietMs = 2000;
constexpr int64_t kEpisodeRemindMs = 60000;

bool sendable_close_code(int code) {
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1009) ||
           (code >= 1011 && code <= 1014) || (code >= 3000 && code <= 4999);
}

}  // namespace

Server::Server(Settings settings, wsg_server *self)
    : cfg_(std::move(settings)),
      wheel_(cfg_.tick_ms, 4096, clock_.now_ms()),
      heartbeat_(wheel_),
      transport_(&events_),
      admission_(cfg_),
      outbox_(cfg_, transport_, log, clock_, heartbeat_, app, metrics_),
      inbox_(cfg_, outbox_, app, log, clock_, metrics_),
      gate_(cfg_, transport_, log, clock_, wheel_, registry_, app, admission_, pages_, metrics_),
      probes_(transport_, wheel_, clock_, cfg_.handshake_timeout_ms),
      mailbox_(transport_),
      cluster_(cfg_.cluster, transport_, log, metrics_, cluster_events_),
      calls_(self),
      sessions_(cfg_.cluster, cluster_, calls_, self),
      history_(cfg_.cluster, cluster_, calls_, metrics_, history_events_) {
    app.server = self;
    if (cluster_.enabled()) {
        // The channels follow the indexes: a topic's while it has a local
        // subscriber, a user's while the user has a local connection.
        topics_.on_first_last = [this](const std::string &name, bool first) {
            cluster_.want_topic(name, first);
            if (first)
                history_.topic_used(name);
            else
                history_.topic_unused(name);
        };
        users_.on_first_last = [this](const std::string &name, bool first) { cluster_.want_user(name, first); };
        if (cfg_.max_per_user)
            gate_.set_remote_user_count(
                [this](const std::string &user, std::function<void(int64_t)> done) {
                    return cluster_.count_user(user, std::move(done));
                },
                [this](Gate::Result &r) { upgraded_later(r); });
    }
    log.set_server(self);
    log.set_min_level(cfg_.log_level);
    log.set_max_per_s(static_cast<uint32_t>(cfg_.log_max_per_s));
}

Server::~Server() { stop(); }

bool Server::is_idle() {
    std::lock_guard<std::mutex> lock(life_mu_);
    return state_ == State::Idle;
}

// ---------------------------------------------------------------- lifecycle

wsg_status Server::listen() {
    std::lock_guard<std::mutex> lock(life_mu_);
    if (state_ != State::Idle) return fail(WSG_ESTATE, "server is already listening or running");
    return listen_locked();
}

wsg_status Server::listen_locked() {
    // Every connection is a descriptor; lws sizes its table from the soft
    // limit when the transport opens, so it is raised first.
    const uint64_t fds_wanted = fds_needed(cfg_.max_connections);
    const FdLimit fds = raise_fd_limit(fds_wanted);
    TransportConfig tc;
    tc.host = cfg_.host;
    tc.port = cfg_.port;
    tc.read_buffer_bytes = cfg_.rx_buffer_bytes;
    tc.write_batch_bytes = cfg_.write_batch_bytes;
    tc.epoll = cfg_.epoll_loop;
    tc.tls_handshake_timeout_ms = cfg_.handshake_timeout_ms;
    tc.tls = cfg_.tls;
    tc.tls_files = cfg_.tls_files;
    tc.tls_client_auth = cfg_.tls_client_auth;
    tc.tls_ciphers = cfg_.tls_ciphers;
    tc.metrics_host = cfg_.metrics_host;
    tc.metrics_port = cfg_.metrics_port;
    stopping_ = false;
    loop_exit_ = false;
    gate_.set_stopping(false);
    drain_ = Drain();
    draining_.store(false, std::memory_order_relaxed);
    // OpenSSL loads its digests on first use (about 2 MiB): now, not on the
    // first connection, whose memory would otherwise look like its own.
    proto::websocket_accept("dGhlIHNhbXBsZSBub25jZQ==");
    std::string why = transport_.open(tc);
    if (!why.empty()) return fail(WSG_EIO, why);
    port_.store(transport_.port());
    metrics_port_.store(transport_.metrics_port());
    state_ = State::Listening;
    mailbox_.open();
    LogFields f;
    f["host"] = cfg_.host.empty() ? "*" : cfg_.host;
    f["port"] = transport_.port();
    f["path"] = cfg_.path;
    f["fd_limit"] = fds.soft;
    if (transport_.metrics_port() > 0) {
        f["metrics_host"] = cfg_.metrics_host;
        f["metrics_port"] = transport_.metrics_port();
    }
    log.emit(LogEvent::listen, f);
    if (fds.soft < fds_wanted || !fds.error.empty()) {
        LogFields w;
        w["soft"] = fds.soft;
        if (fds.hard == UINT64_MAX)
            w["hard"] = "unlimited";
        else
            w["hard"] = fds.hard;
        w["needed"] = fds_wanted;
        w["max_connections"] = cfg_.max_connections;
        w["message"] = !fds.error.empty()
                           ? "cannot raise the open-file limit: " + fds.error
                           : "limits.max_connections (" + std::to_string(cfg_.max_connections) +
                                 ") cannot be reached: the open-file limit is " + std::to_string(fds.soft) +
                                 " (the hard limit), " + std::to_string(fds_wanted) +
                                 " are needed; raise the hard limit (ulimit -Hn, systemd LimitNOFILE=) or "
                                 "lower limits.max_connections";
        log.emit(LogEvent::fd_limit, w);
    }
    return WSG_OK;
}

wsg_status Server::start() {
    std::lock_guard<std::mutex> lock(life_mu_);
    if (state_ == State::Running) return fail(WSG_ESTATE, "server is already running");
    if (state_ == State::Idle) {
        if (wsg_status st = listen_locked()) return st;
    }
    loop_done_ = false;
    // Ready when this returns: the socket listens and the loop is about to
    // turn (the thread's start orders these writes before its own).
    serving_ = true;
    last_tick_ms_.store(mono_ms(), std::memory_order_relaxed);
    update_ready();
    try {
        thread_ = std::thread([this] { loop(); });
    } catch (const std::system_error &e) {
        serving_ = false;
        update_ready();
        return fail(WSG_EIO, std::string("cannot start the service thread: ") + e.what());
    }
    state_ = State::Running;
    return WSG_OK;
}

wsg_status Server::run() {
    {
        std::lock_guard<std::mutex> lock(life_mu_);
        if (state_ == State::Running) return fail(WSG_ESTATE, "server is already running");
        if (state_ == State::Idle) {
            if (wsg_status st = listen_locked()) return st;
        }
        loop_done_ = false;
        state_ = State::Running;
    }
    loop();
    {
        std::lock_guard<std::mutex> lock(life_mu_);
        state_ = State::Idle;
        loop_done_ = true;
    }
    life_cv_.notify_all();
    return WSG_OK;
}

void Server::loop() {
    service_tid_.store(std::this_thread::get_id(), std::memory_order_release);
    const ServiceThreadScope service_scope(app.server);
    // Commands posted before the loop started are waiting: look at them.
    mailbox_.poke();
    on_wake();
    tick_stats_ = TickStats();
    tick_stats_.window_start_ms = clock_.now_ms();
    transport_.start_timer(&tick_timer_, cfg_.tick_ms * 1000, [this] { on_tick(); });
    // Connects asynchronously: the loop serves at once, with or without Redis.
    cluster_.start();
    last_tick_ms_.store(mono_ms(), std::memory_order_relaxed);
    serving_ = true;
    update_ready();
    while (!loop_exit_) transport_.run_once();
    serving_ = false;
    update_ready();
    last_tick_ms_.store(0, std::memory_order_relaxed);
    // This loop is over: a request that came during its stop is used up.
    stop_requested_.store(false, std::memory_order_relaxed);
    close_transport();
    service_tid_.store(std::thread::id(), std::memory_order_release);
}

// Service thread, or a lifecycle call when the loop never ran.
void Server::close_transport() {
    // Every call accepted and not answered yet is answered now (WSG_ESTATE):
    // those still in the mailbox, then those waiting for Redis, whose
    // commands the links fail when they stop.
    for (Command &c : mailbox_.close()) std::visit([this](auto &cmd) { answer_abandoned(cmd, app.server); }, c);
    calls_.fail_all(WSG_ESTATE, kStoppedMessage);
    // Redis first: its contexts live on the loop the transport destroys
    // (LWS-NOTES.md: redisAsyncFree, then lws_context_destroy, then
    // ev_loop_destroy).
    cluster_.stop();
    if (transport_.is_open()) {
        transport_.stop_timer(&shutdown_timer_);
        transport_.stop_timer(&leave_timer_);
        transport_.stop_timer(&tick_timer_);
        // Fires on_close for every link still open.
        transport_.close();
    }
    // Anything the transport did not report is finished here, so on_close
    // fires once for every opened connection.
    while (!registry_.live().empty()) {
        Conn *c = registry_.live().back();
        c->link = nullptr;
        if (!c->closing) {
            c->closing = true;
            c->close_code = 1001;
            c->set_reason("going away");
            c->set_cause(WSG_CAUSE_SHUTDOWN);
        }
        finish(c);
    }
    port_.store(-1);
    metrics_port_.store(-1);
    LogFields f;
    log.emit(LogEvent::stop, f);
}

wsg_status Server::stop() { return stop_with(cmd::Stop{}); }

wsg_status Server::drain(int64_t duration_ms) {
    if (duration_ms < 0 || duration_ms > kMaxDrainMs)
        return fail(WSG_EINVAL, "drain duration " + std::to_string(duration_ms) + " ms is out of range 0.." +
                                    std::to_string(kMaxDrainMs));
    if (duration_ms == 0) return stop();
    return stop_with(cmd::Drain{duration_ms});
}

wsg_status Server::stop_with(Command command) {
    if (on_service_thread())
        return fail(WSG_EBUSY, "wsg_server_stop/drain/free cannot be called from a callback "
                               "(it would wait for the thread it runs on; wsg_server_request_stop works there)");
    std::lock_guard<std::mutex> serial(stop_mu_);
    std::unique_lock<std::mutex> lock(life_mu_);
    if (state_ == State::Idle) return WSG_OK;
    if (state_ == State::Listening) {
        close_transport();
        state_ = State::Idle;
        return WSG_OK;
    }
    lock.unlock();
    bool posted = mailbox_.post(std::move(command));
    lock.lock();
    if (thread_.joinable()) {
        lock.unlock();
        thread_.join();
        lock.lock();
        state_ = State::Idle;
    } else if (posted) {
        // wsg_server_run() on another thread: wait until its loop returns.
        life_cv_.wait(lock, [this] { return loop_done_; });
    }
    return WSG_OK;
}

wsg_status Server::add_page(const char *path, const char *content_type, const void *body, size_t len) {
    // Under the lifecycle lock: the service thread, which reads the pages,
    // is started under it too, so it sees every page added before.
    std::lock_guard<std::mutex> lock(life_mu_);
    if (state_ != State::Idle)
        return fail(WSG_ESTATE, "pages can only be added while the server is not listening "
                                "(before wsg_server_listen, start or run)");
    return pages_.add(path, content_type, body, len);
}

wsg_status Server::metrics_port(int *out) const {
    int p = metrics_port_.load();
    if (p <= 0)
        return fail(WSG_ESTATE, cfg_.metrics_port < 0 ? "no metrics listener: metrics.listen is not set"
                                                      : "server is not listening (call wsg_server_listen or start)");
    *out = p;
    return WSG_OK;
}

wsg_status Server::port(int *out) const {
    int p = port_.load();
    if (p <= 0) return fail(WSG_ESTATE, "server is not listening (call wsg_server_listen or start)");
    *out = p;
    return WSG_OK;
}

// wsg_server_request_stop: a drain of server.drain_ms, or the stop at once.
void Server::stop_requested() {
    if (cfg_.drain_ms > 0)
        begin_drain(cfg_.drain_ms);
    else
        begin_shutdown();
}

// Rolling restarts: clients told 1012 at a steady pace in a random order
// come back spread over the duration, not all in the same second.
void Server::begin_drain(int64_t duration_ms) {
    if (stopping_ || drain_.active) return;
    draining_.store(true, std::memory_order_relaxed);
    update_ready();
    gate_.set_stopping(true);
    drain_.active = true;
    drain_.start_ms = clock_.now_ms();
    drain_.duration_ms = duration_ms;
    drain_.next = 0;
    drain_.order.clear();
    for (Conn *c : registry_.live())
        if (!c->closing) drain_.order.push_back(c->id);
    std::mt19937_64 rng(std::random_device{}());
    std::shuffle(drain_.order.begin(), drain_.order.end(), rng);
    LogFields f;
    f["connections"] = drain_.order.size();
    f["duration_ms"] = duration_ms;
    log.emit(LogEvent::drain, f);
    drain_step(drain_.start_ms);
}

void Server::drain_step(int64_t now) {
    const int64_t elapsed = now - drain_.start_ms;
    const size_t n = drain_.order.size();
    const size_t due = elapsed >= drain_.duration_ms
                           ? n
                           : static_cast<size_t>(static_cast<double>(n) * static_cast<double>(elapsed) /
                                                 static_cast<double>(drain_.duration_ms));
    for (; drain_.next < due; drain_.next++) {
        Conn *c = registry_.get(drain_.order[drain_.next]);
        if (c && !c->closing) outbox_.close(c, 1012, "service restart", WSG_CAUSE_DRAIN, false);
    }
    if (elapsed >= drain_.duration_ms || drain_.next >= n) {
        drain_.active = false;
        drain_.order = std::vector<wsg_conn_id>();
        begin_shutdown();
    }
}

void Server::begin_shutdown() {
    if (stopping_) return;
    stopping_ = true;
    drain_.active = false;
    draining_.store(true, std::memory_order_relaxed);
    update_ready();
    gate_.set_stopping(true);
    std::vector<Conn *> targets = registry_.live();
    for (Conn *c : targets) outbox_.close(c, 1001, "going away", WSG_CAUSE_SHUTDOWN, false);
    if (registry_.count() == 0) {
        exit_loop();
        return;
    }
    transport_.start_timer(&shutdown_timer_, cfg_.shutdown_timeout_ms * 1000, [this] {
        if (registry_.count() > 0) {
            LogFields f;
            f["remaining"] = registry_.count();
            f["message"] = "shutdown timeout: dropping connections that did not finish closing";
            log.emit(WSG_LOG_WARN, LogEvent::stop, f);
        }
        exit_loop();
    });
}

// ---------------------------------------------------------------- transport events

// Limits apply from accept, before anything is allocated or read: a client
// holding silent TCP connections would otherwise use up the descriptors of
// everyone (issue 16). One connection beyond each limit is let through to
// have its request answered with a status (429, 503) by the gate.
bool Server::on_accept(int fd) {
    IpAddr peer;
    uint16_t peer_port = 0;
    // The address costs a system call: only when something needs it.
    const bool per_ip = cfg_.max_per_ip != 0;
    const bool have_peer = per_ip || log.enabled(LogEvent::accept);
    if (have_peer) socket_peer(fd, &peer, &peer_port);
    const char *limit = nullptr;
    metric::AcceptLimit which = metric::AcceptLimit::max_connections;
    if (registry_.count() + gate_.pending() >= cfg_.max_connections + kAcceptSlack) {
        limit = "limits.max_connections";
    } else if (per_ip && !cfg_.trusted_proxies.contains(peer) &&
               admission_.links_per_ip.count(peer) > cfg_.max_per_ip) {
        limit = "limits.max_connections_per_ip";
        which = metric::AcceptLimit::max_connections_per_ip;
    }
    if (limit) {
        metrics_.accept_refused.add(which);
        const int64_t now = clock_.now_ms();
        if (accept_refused_.hit(now)) {
            if (!have_peer) socket_peer(fd, &peer, &peer_port);
            refused_peer_ = peer;
            refused_limit_ = limit;
            log_accept_refused(now, false);
        }
        return false;
    }
    accepted_fd_ = per_ip ? fd : -1;
    accepted_peer_ = peer;
    if (log.enabled(LogEvent::accept)) {
        LogFields f;
        f["peer"] = peer.to_string();
        f["peer_port"] = peer_port;
        log.emit(LogEvent::accept, f);
    }
    return true;
}

void Server::on_accept_error(int err, size_t closed) {
    const int64_t now = clock_.now_ms();
    accept_errno_ = err;
    metrics_.accept_failures.inc();
    metrics_.accept_shed.inc(closed);
    if (accept_failed_.hit(now, closed)) log_accept_failed(now, false);
}

void Server::log_accept_refused(int64_t now, bool ended) {
    LogFields f;
    f["peer"] = refused_peer_.to_string();
    f["limit"] = refused_limit_;
    f["refused"] = accept_refused_.count();
    f["duration_ms"] = accept_refused_.duration_ms(now);
    if (ended) f["ended"] = true;
    log.emit(ended ? WSG_LOG_INFO : WSG_LOG_WARN, LogEvent::accept_refused, f);
}

void Server::log_accept_failed(int64_t now, bool ended) {
    LogFields f;
    f["errno"] = accept_errno_;
    std::string why = std::string("accept() failed: ") + std::strerror(accept_errno_);
    if (accept_errno_ == EMFILE || accept_errno_ == ENFILE)
        why += ": new connections are closed at once until descriptors are free; raise the open-file limit "
               "or lower limits.max_connections, and set limits.max_connections_per_ip";
    f["message"] = why;
    f["failures"] = accept_failed_.count();
    f["closed"] = accept_failed_.extra();
    f["duration_ms"] = accept_failed_.duration_ms(now);
    if (ended) f["ended"] = true;
    log.emit(ended ? WSG_LOG_INFO : WSG_LOG_WARN, LogEvent::accept_failed, f);
}

void Server::report_accept_episodes(int64_t now) {
    switch (accept_refused_.due(now, kEpisodeQuietMs, kEpisodeRemindMs)) {
    case Episode::Due::None: break;
    case Episode::Due::Remind: log_accept_refused(now, false); break;
    case Episode::Due::Ended: log_accept_refused(now, true); break;
    }
    switch (accept_failed_.due(now, kEpisodeQuietMs, kEpisodeRemindMs)) {
    case Episode::Due::None: break;
    case Episode::Due::Remind: log_accept_failed(now, false); break;
    case Episode::Due::Ended: log_accept_failed(now, true); break;
    }
}

bool Server::on_open(Link *link, Listener from) {
    if (from == Listener::Metrics) return probes_.admit(link) != nullptr;
    // Counted only when the per-IP limit is set (and not for trusted
    // proxies, which carry many clients).
    bool count = false;
    IpAddr peer;
    if (cfg_.max_per_ip) {
        const int fd = Transport::fd(link);
        uint16_t port = 0;
        bool known = fd >= 0 && fd == accepted_fd_;
        if (known)
            peer = accepted_peer_;
        else
            known = socket_peer(fd, &peer, &port);
        count = known && !cfg_.trusted_proxies.contains(peer);
    }
    accepted_fd_ = -1;
    gate_.admit(link, count ? &peer : nullptr);
    return true;
}

void Server::opened(Gate::Result &r) {
    Conn *c = r.conn;
    metrics_.connections.set(static_cast<int64_t>(registry_.count()));
    if (!c->fact(kUserId).empty()) {
        std::lock_guard<std::mutex> lock(registry_.mu);
        users_.add(std::string(c->fact(kUserId)), c);
    }
    if (!c->fact(kUserId).empty()) presence_changed('u', std::string(c->fact(kUserId)), c, c->opened_unix_ms, true);
    const int64_t now = clock_.now_ms();
    heartbeat_.start(c, now);
    for (const auto &kv : r.timeouts) heartbeat_.override(c, kv.first, kv.second, now);
    on_timer(&c->timer, now);
    if (log.enabled(LogEvent::open)) {
        LogFields f;
        f["conn"] = c->id;
        f["peer"] = c->peer.to_string();
        f["peer_port"] = c->peer_port;
        f["path"] = c->fact(kPath);
        if (!c->fact(kOrigin).empty()) f["origin"] = c->fact(kOrigin);
        if (!c->fact(kSubprotocol).empty()) f["subprotocol"] = c->fact(kSubprotocol);
        if (!c->fact(kTlsSubject).empty()) f["tls_subject"] = c->fact(kTlsSubject);
        if (!c->fact(kUserId).empty()) f["user"] = c->fact(kUserId);
        if (c->deflate) f["compression"] = "permessage-deflate";
        log.emit(LogEvent::open, f);
    }
    if (app.on_open.fn) app.on_open.fn(app.server, c->id, app.on_open.user);
}

bool Server::on_probe_read(ProbeRequest *p, const uint8_t *data, size_t len) {
    const Probes::Route route = probes_.read(p, data, len);
    bool keep = true;
    switch (route) {
    case Probes::Route::Pending: return true;
    case Probes::Route::Metrics:
        keep = probes_.answer(p, 200, "text/plain; version=0.0.4; charset=utf-8", metrics_.render());
        break;
    case Probes::Route::Health: {
        const bool ok = healthy();
        keep = probes_.answer(p, ok ? 200 : 503, "text/plain; charset=utf-8",
                              ok ? "ok\n" : "unhealthy: the service loop has not ticked lately\n");
        break;
    }
    case Probes::Route::Ready: {
        const bool ok = ready();
        keep = probes_.answer(p, ok ? 200 : 503, "text/plain; charset=utf-8",
                              ok ? "ready\n" : stopping_ ? "not ready: stopping\n" : "not ready\n");
        break;
    }
    default: keep = probes_.answer_error(p, route); break;
    }
    if (!keep) probes_.drop(p);
    return keep;
}

bool Server::on_read(Link *link, uint8_t *data, size_t len) {
    auto *owner = static_cast<LinkOwner *>(Transport::owner(link));
    if (!owner) return true;  // being dropped: input is discarded
    if (owner->kind == LinkOwner::Kind::Probe) return on_probe_read(static_cast<ProbeRequest *>(owner), data, len);
    if (owner->kind == LinkOwner::Kind::Handshake) {
        auto *h = static_cast<Handshake *>(owner);
        Gate::Result r = gate_.read(h, data, len);
        switch (r.kind) {
        case Gate::Result::Pending: return true;
        case Gate::Result::Refused: gate_.drop(h); return false;
        case Gate::Result::Answered:
            if (!gate_.drained(h)) return true;
            gate_.drop(h);
            return false;
        case Gate::Result::Opened: break;
        }
        Conn *c = r.conn;
        opened(r);
        // Frames the client sent right behind its request.
        if (r.rest_len && Transport::owner(link) == c) return inbox_.read(c, r.rest, r.rest_len);
        return true;
    }
    return inbox_.read(static_cast<Conn *>(owner), data, len);
}

// An upgrade that waited for the cluster's count of its user's connections
// (Gate::set_remote_user_count) went through: as on_read, outside any
// transport event.
void Server::upgraded_later(Gate::Result &r) {
    Conn *c = r.conn;
    Link *link = c->link;
    opened(r);
    if (r.rest_len && Transport::owner(link) == c && !inbox_.read(c, r.rest, r.rest_len)) transport_.close_soon(link);
    outbox_.flush();
}

bool Server::on_writable(Link *link) {
    auto *owner = static_cast<LinkOwner *>(Transport::owner(link));
    if (!owner) return true;
    if (owner->kind == LinkOwner::Kind::Probe) {
        auto *p = static_cast<ProbeRequest *>(owner);
        if (!p->answered || !probes_.drained(p)) return true;
        probes_.drop(p);
        return false;
    }
    if (owner->kind == LinkOwner::Kind::Handshake) {
        auto *h = static_cast<Handshake *>(owner);
        if (!h->answered || !gate_.drained(h)) return true;
        gate_.drop(h);
        return false;
    }
    return outbox_.on_writable(static_cast<Conn *>(owner));
}

void Server::on_close(Link *link) {
    auto *owner = static_cast<LinkOwner *>(Transport::owner(link));
    if (!owner) return;
    if (owner->kind == LinkOwner::Kind::Probe) {
        probes_.drop(static_cast<ProbeRequest *>(owner));
        return;
    }
    if (owner->kind == LinkOwner::Kind::Handshake) {
        gate_.drop(static_cast<Handshake *>(owner));
        return;
    }
    Conn *c = static_cast<Conn *>(owner);
    c->link = nullptr;
    Transport::set_owner(link, nullptr);
    finish(c);
}

void Server::on_wake() {
    if (stop_requested_.load(std::memory_order_relaxed)) stop_requested();
    mailbox_.drain([this](auto &command) { execute(command); });
}

std::string Server::on_tls_context(SSL_CTX *ctx) {
    ssl_ctx_ = ctx;
    return tls_configure(ctx, cfg_.tls_min_version, cfg_.tls_groups);
}

bool Server::on_client_certificate(bool verified) {
    if (verified) return true;
    LogFields f;
    f["message"] = "client certificate failed verification";
    log.emit(LogEvent::tls_refused, f);
    return false;
}

void Server::on_transport_error(const std::string &message) {
    LogFields f;
    f["source"] = "libwebsockets";
    f["message"] = message;
    log.emit(LogEvent::error, f);
}

// ---------------------------------------------------------------- ends

void Server::finish(Conn *c) {
    c->close_requested.store(true);
    if (!c->closing) {
        c->closing = true;
        c->close_code = 1006;
        c->set_cause(WSG_CAUSE_LOST);
    }
    const std::string &reason = c->reason();
    metrics_.closes.add(metric::cause_index(c->close_cause()));
    metrics_.close_codes.add(metric::code_index(c->close_code));
    if (app.on_close.fn)
        app.on_close.fn(app.server, c->id, c->close_code, reason.c_str(), reason.size(), c->close_cause(),
                        app.on_close.user);
    if (log.enabled(LogEvent::close)) {
        LogFields f;
        f["conn"] = c->id;
        f["peer"] = c->peer.to_string();
        f["peer_port"] = c->peer_port;
        f["code"] = c->close_code;
        if (c->peer_close_code) f["peer_code"] = c->peer_close_code;
        f["cause"] = wsg_close_cause_str(c->close_cause());
        f["advice"] = wsg_reconnect_str(close_advice_.of(c->close_code));
        if (!reason.empty()) f["reason"] = reason;
        f["duration_ms"] = mono_ms() - c->opened_mono_ms;
        f["msgs_in"] = c->msgs_in.load();
        f["bytes_in"] = c->bytes_in.load();
        f["msgs_out"] = c->msgs_out.load();
        f["bytes_out"] = c->bytes_out.load();
        if (uint64_t dropped = c->msgs_dropped.load()) f["msgs_dropped"] = dropped;
        log.emit(LogEvent::close, f);
    }
    wheel_.cancel(&c->timer);
    outbox_.forget(c);
    if (c->ip_counted) admission_.per_ip.release(c->peer);
    if (c->link_counted) admission_.links_per_ip.release(c->peer);
    if (c->user_counted) admission_.per_user.release(std::string(c->fact(kUserId)));
    if (cluster_.enabled()) {
        if (c->subs)
            for (const Subscription &sub : *c->subs) presence_changed('t', sub.topic->name, c, 0, false);
        if (!c->fact(kUserId).empty()) presence_changed('u', std::string(c->fact(kUserId)), c, 0, false);
    }
    {
        std::lock_guard<std::mutex> lock(registry_.mu);
        topics_.drop_all(c);
        if (!c->fact(kUserId).empty()) users_.remove(std::string(c->fact(kUserId)), c);
    }
    registry_.remove(c);
    metrics_.connections.set(static_cast<int64_t>(registry_.count()));
    count_topics();
    if (c->link) Transport::set_owner(c->link, nullptr);
    delete c;
    if (stopping_ && registry_.count() == 0) exit_loop();
}

void Server::drop(Conn *c, int code, const std::string &reason, wsg_close_cause cause) {
    if (code) {
        c->close_code = static_cast<uint16_t>(code);
        c->set_reason(reason);
    }
    c->closing = true;
    c->close_requested.store(true);
    c->set_cause(cause);
    Link *link = c->link;
    finish(c);
    if (link) transport_.close_soon(link);
}

// ---------------------------------------------------------------- heartbeat

void Server::on_timer(WheelTimer *t, int64_t now) {
    LinkOwner *owner = LinkOwner::of(t);
    if (owner->kind == LinkOwner::Kind::Handshake) return gate_.timed_out(static_cast<Handshake *>(owner));
    if (owner->kind == LinkOwner::Kind::Probe) return probes_.timed_out(static_cast<ProbeRequest *>(owner));
    Conn *c = static_cast<Conn *>(owner);
    Heartbeat::Action a = heartbeat_.check(c, now);
    switch (a.kind) {
    case Heartbeat::Action::None: break;
    case Heartbeat::Action::Ping: outbox_.ping(c); break;
    case Heartbeat::Action::Close: outbox_.close(c, a.code, a.reason, a.cause, false); break;
    case Heartbeat::Action::Drop: drop(c, a.code, a.reason, a.cause); break;
    }
}

void Server::on_tick() {
    if (stop_requested_.load(std::memory_order_relaxed)) stop_requested();
    last_tick_ms_.store(mono_ms(), std::memory_order_relaxed);
    const int64_t now = clock_.now_ms();
    if (drain_.active) drain_step(now);
    const int64_t t0 = mono_us();
    size_t fired = wheel_.advance(now, [this, now](WheelTimer *t) { on_timer(t, now); });
    TickStats &ts = tick_stats_;
    int64_t took = mono_us() - t0;
    int b = 0;
    while (b < 39 && (int64_t{1} << b) <= took) b++;
    ts.buckets[b]++;
    ts.ticks++;
    ts.fired += fired;
    if (took > ts.max_us) ts.max_us = took;
    outbox_.flush();
    outbox_.report(now);
    if (cfg_.trim_memory) trim_memory();
    report_accept_episodes(now);
    sessions_.sweep();
    history_.sweep();
    log.flush_suppressed();
    if (now - ts.window_start_ms >= 10000) report_tick_stats(now);
    transport_.start_timer(&tick_timer_, cfg_.tick_ms * 1000, [this] { on_tick(); });
}

bool Server::healthy() const {
    // A few ticks' worth, and at least a second: a callback that holds the
    // loop that long is a fault worth a failed probe; a busy second is not.
    const int64_t last = last_tick_ms_.load(std::memory_order_relaxed);
    return last != 0 && mono_ms() - last <= std::max<int64_t>(5 * cfg_.tick_ms, 1000);
}

void Server::update_ready() {
    const bool ready = serving_ && !stopping_ && !draining_.load(std::memory_order_relaxed) &&
                       (!cfg_.cluster.require || cluster_.up());
    metrics_.ready.set(ready ? 1 : 0);
}

void Server::trim_memory() {
    QueueLedger &q = outbox_.ledger();
    if (!memory_trim_.due(clock_.now_ms(), q.bytes, q.peak)) return;
    const size_t peak = q.peak;
    q.peak = q.bytes;  // the next trim needs a new burst
    const int64_t t0 = mono_us();
    if (!release_free_memory()) return;
    if (log.enabled(LogEvent::memory_trim)) {
        LogFields f;
        f["peak_queued_bytes"] = peak;
        f["queued_bytes"] = q.bytes;
        f["took_us"] = mono_us() - t0;
        log.emit(LogEvent::memory_trim, f);
    }
}

void Server::report_tick_stats(int64_t now) {
    TickStats &ts = tick_stats_;
    if (ts.ticks && log.enabled(LogEvent::heartbeat_stats)) {
        // Percentiles as bucket upper bounds (powers of two microseconds).
        auto pct = [&ts](double q) {
            uint64_t want = static_cast<uint64_t>(q * static_cast<double>(ts.ticks) + 0.999999), seen = 0;
            for (int b = 0; b < 40; b++)
                if ((seen += ts.buckets[b]) >= want) return int64_t{1} << b;
            return ts.max_us;
        };
        LogFields f;
        f["window_ms"] = now - ts.window_start_ms;
        f["ticks"] = ts.ticks;
        f["timers_fired"] = ts.fired;
        f["timers_armed"] = wheel_.size();
        f["connections"] = registry_.count();
        f["tick_p50_us_le"] = pct(0.50);
        f["tick_p99_us_le"] = pct(0.99);
        f["tick_max_us"] = ts.max_us;
        log.emit(LogEvent::heartbeat_stats, f);
    }
    ts = TickStats();
    ts.window_start_ms = now;
}

// ---------------------------------------------------------------- commands

void Server::execute(cmd::Send &c) {
    Conn *conn = registry_.get(c.id);
    if (conn) outbox_.deliver(conn, c.msg);
}

void Server::execute(cmd::Close &c) {
    Conn *conn = registry_.get(c.id);
    if (conn) outbox_.close(conn, c.code, c.reason, WSG_CAUSE_APP, false);
}

void Server::execute(cmd::Broadcast &c) {
    // Snapshot: closing one connection may reorder live().
    std::vector<Conn *> targets = registry_.live();
    for (Conn *conn : targets)
        if (conn->id != c.except) outbox_.deliver(conn, c.msg);
}

void Server::execute(cmd::SendMany &c) {
    for (wsg_conn_id id : c.ids)
        if (Conn *conn = registry_.get(id)) outbox_.deliver(conn, c.msg);
}

void Server::execute(cmd::Subscribe &c) {
    Conn *conn = registry_.get(c.id);
    if (!conn || conn->closing) return;
    const int64_t since = unix_ms();
    bool changed;
    {
        std::lock_guard<std::mutex> lock(registry_.mu);
        changed = c.on ? topics_.subscribe(conn, c.topic, since) : topics_.unsubscribe(conn, c.topic);
        count_topics();
    }
    if (changed) presence_changed('t', c.topic, conn, since, c.on);
}

void Server::count_topics() {
    metrics_.topics.set(static_cast<int64_t>(topics_.topics()));
    metrics_.subscriptions.set(static_cast<int64_t>(topics_.subscriptions()));
}

void Server::execute(cmd::Publish &c) {
    if (!c.relay.empty()) cluster_.relay(cluster_.topic_channel(c.topic), c.relay);
    const Topic *t = topics_.find(c.topic);
    if (!t) return;
    // Delivering never changes the member list (a close takes effect at
    // the connection's end), so it is walked as it is. The topic is the
    // conflation key, made only when a subscriber conflates.
    for (const Topic::Member &m : t->members) {
        if (!c.msg.conflate_key && m.conn->policy() == WSG_QUEUE_CONFLATE)
            c.msg.conflate_key = std::make_shared<const std::string>(c.topic);
        outbox_.deliver(m.conn, c.msg);
    }
}

void Server::execute(cmd::UserSend &c) {
    if (!c.relay.empty()) cluster_.relay(cluster_.user_channel(c.user), c.relay);
    if (const std::vector<Conn *> *conns = users_.find(c.user))
        for (Conn *conn : *conns) outbox_.deliver(conn, c.msg);
}

void Server::execute(cmd::UserClose &c) {
    if (!c.relay.empty()) cluster_.relay(cluster_.user_channel(c.user), c.relay);
    if (const std::vector<Conn *> *conns = users_.find(c.user)) {
        // Closing does not change the list until each connection ends.
        for (Conn *conn : *conns) outbox_.close(conn, c.code, c.reason, WSG_CAUSE_APP, false);
    }
}

void Server::execute(cmd::Stop &) { begin_shutdown(); }

void Server::execute(cmd::Drain &c) { begin_drain(c.duration_ms); }

void Server::execute(cmd::SetTimeout &c) {
    Conn *conn = registry_.get(c.id);
    if (!conn || conn->closing) return;
    const int64_t now = clock_.now_ms();
    heartbeat_.override(conn, c.key, c.value, now);
    on_timer(&conn->timer, now);
}

void Server::execute(cmd::SetQueuePolicy &c) {
    Conn *conn = registry_.get(c.id);
    if (conn) conn->queue_policy.store(static_cast<uint8_t>(c.policy), std::memory_order_relaxed);
}

void Server::execute(cmd::Relay &c) { cluster_.relay(c.channel, c.envelope); }

void Server::execute(cmd::Session &c) { sessions_.run(c.op, c.reply); }

void Server::execute(cmd::ReloadTls &) {
    std::string why = ssl_ctx_ ? tls_reload(ssl_ctx_, cfg_.tls_files) : std::string();
    LogFields f;
    f["cert_file"] = cfg_.tls_files.cert_file;
    if (!why.empty()) {
        f["message"] = why;
        log.emit(LogEvent::tls_reload_failed, f);
    } else {
        log.emit(LogEvent::tls_reloaded, f);
    }
}

// ---------------------------------------------------------------- any thread API

template <class Direct, class Make>
wsg_status Server::dispatch(wsg_conn_id id, bool claim_close, Direct &&direct, Make &&make) {
    // claim_close marks the connection closing at once, so a second close,
    // or a send after a close, is refused right away from any thread.
    auto closing = [&](Conn *c) {
        return claim_close ? c->close_requested.exchange(true) : c->close_requested.load();
    };
    if (on_service_thread()) {
        Conn *c = registry_.get(id);
        if (!c) return fail(WSG_ENOTFOUND, "no open connection with id " + std::to_string(id));
        if (c->closing || closing(c))
            return fail(WSG_ECLOSED, "connection " + std::to_string(id) + " is closing");
        direct(c);
        return WSG_OK;
    }
    {
        std::lock_guard<std::mutex> lock(registry_.mu);
        Conn *c = registry_.get(id);
        if (!c) return fail(WSG_ENOTFOUND, "no open connection with id " + std::to_string(id));
        if (closing(c)) return fail(WSG_ECLOSED, "connection " + std::to_string(id) + " is closing");
    }
    // The loop stopped between the lookup and the post: the id is gone.
    if (!mailbox_.post(make()))
        return fail(WSG_ENOTFOUND, "connection " + std::to_string(id) + " is gone (server stopping)");
    return WSG_OK;
}

wsg_status Server::check_message(wsg_msg_type type, const void *data, size_t len, const OutMessage *m) const {
    if (type != WSG_MSG_TEXT && type != WSG_MSG_BINARY)
        return fail(WSG_EINVAL, "message type must be WSG_MSG_TEXT or WSG_MSG_BINARY");
    if (!data && len) return fail(WSG_EINVAL, "data is NULL but len > 0");
    if (m && m->bytes() > cfg_.max_queue_bytes)
        return fail(WSG_EINVAL, "a message of " + std::to_string(len) + " bytes (" + std::to_string(m->bytes()) +
                                    " framed) exceeds limits.max_queue_bytes (" +
                                    std::to_string(cfg_.max_queue_bytes) + "): no send queue could hold it");
    return WSG_OK;
}

wsg_status Server::send(wsg_conn_id id, wsg_msg_type type, const void *data, size_t len) {
    if (wsg_status st = check_message(type, data, len, nullptr)) return st;
    if (remote_id(id))
        return relay(cluster_.node_channel(Registry::node_of(id)),
                     envelope(EnvelopeKind::ConnMessage, type, conn_target(id),
                              std::string_view(static_cast<const char *>(data), len)),
                     "send to connection " + std::to_string(id));
    OutMessage m(type, data, len, cfg_.write_batch_bytes);
    if (wsg_status st = check_message(type, data, len, &m)) return st;
    return dispatch(
        id, false, [&](Conn *c) { outbox_.deliver(c, m); },
        [&] { return Command(cmd::Send{id, std::move(m)}); });
}

wsg_status Server::check_close(int code, const char *reason, std::string *why) {
    if (!sendable_close_code(code))
        return fail(WSG_EINVAL, "close code " + std::to_string(code) +
                                    " is not sendable: use 1000-1003, 1007-1009, 1011-1014 or 3000-4999");
    *why = reason ? reason : "";
    Utf8Validator v;
    if (why->size() > 123 || !(v.feed(reinterpret_cast<const uint8_t *>(why->data()), why->size()) && v.complete()))
        return fail(WSG_EINVAL, "close reason must be UTF-8 of at most 123 bytes");
    return WSG_OK;
}

wsg_status Server::close(wsg_conn_id id, int code, const char *reason) {
    std::string why;
    if (wsg_status st = check_close(code, reason, &why)) return st;
    if (remote_id(id))
        return relay(cluster_.node_channel(Registry::node_of(id)),
                     envelope(EnvelopeKind::ConnClose, WSG_MSG_TEXT, conn_target(id), close_body(code, why)),
                     "close of connection " + std::to_string(id));
    return dispatch(
        id, true, [&](Conn *c) { outbox_.close(c, code, why, WSG_CAUSE_APP, false); },
        [&] { return Command(cmd::Close{id, code, why}); });
}

wsg_status check_conn_timeout(const char *key, int64_t value) {
    static const char *const keys[] = {"heartbeat.ping_interval_ms", "heartbeat.pong_wait_ms",
                                       "heartbeat.write_wait_ms", "heartbeat.idle_timeout_ms",
                                       "heartbeat.close_wait_ms"};
    if (!key) return fail(WSG_EINVAL, "key is NULL");
    bool known = false;
    for (const char *k : keys) known = known || std::strcmp(k, key) == 0;
    if (!known)
        return fail(WSG_EINVAL, std::string("'") + key +
                                    "' cannot be set per connection: use heartbeat.ping_interval_ms, "
                                    "pong_wait_ms, write_wait_ms, idle_timeout_ms or close_wait_ms");
    // The option table holds the range.
    wsg_config probe;
    return probe.set_int(key, value);
}

wsg_status Server::set_timeout(wsg_conn_id id, const char *key, int64_t value) {
    if (wsg_status st = check_conn_timeout(key, value)) return st;
    return dispatch(
        id, false,
        [&](Conn *c) {
            const int64_t now = clock_.now_ms();
            heartbeat_.override(c, key, value, now);
            on_timer(&c->timer, now);
        },
        [&] { return Command(cmd::SetTimeout{id, key, value}); });
}

wsg_status Server::set_queue_policy(wsg_conn_id id, wsg_queue_policy policy) {
    bool known = false;
#define WSG_QUEUE_POLICY_KNOWN_(name, value, text, doc) known = known || policy == WSG_QUEUE_##name;
    WSG_QUEUE_POLICY_MAP(WSG_QUEUE_POLICY_KNOWN_)
#undef WSG_QUEUE_POLICY_KNOWN_
    // The choices, named from the same list: "WSG_QUEUE_CLOSE WSG_QUEUE_DROP_NEWEST ...".
#define WSG_QUEUE_POLICY_ENUM_NAME_(name, value, text, doc) " WSG_QUEUE_" #name
    static const char kNames[] = WSG_QUEUE_POLICY_MAP(WSG_QUEUE_POLICY_ENUM_NAME_);
#undef WSG_QUEUE_POLICY_ENUM_NAME_
    if (!known)
        return fail(WSG_EINVAL, "queue policy " + std::to_string(static_cast<int>(policy)) +
                                    " is unknown: use one of" + kNames);
    return dispatch(
        id, false, [&](Conn *c) { c->queue_policy.store(static_cast<uint8_t>(policy), std::memory_order_relaxed); },
        [&] { return Command(cmd::SetQueuePolicy{id, policy}); });
}

wsg_status Server::reload_tls() {
    if (!cfg_.tls) return fail(WSG_ESTATE, "TLS is off (tls.cert_file is not set)");
    std::string why = tls_check_files(cfg_.tls_files);
    if (!why.empty()) {
        // The same event a reload that fails on the service thread gives.
        LogFields f;
        f["cert_file"] = cfg_.tls_files.cert_file;
        f["message"] = why;
        log.emit(LogEvent::tls_reload_failed, f);
        return fail(WSG_ETLS, why);
    }
    if (on_service_thread()) {
        cmd::ReloadTls c;
        execute(c);
        return WSG_OK;
    }
    // Not serving: the next listen reads the files anyway.
    mailbox_.post(cmd::ReloadTls{});
    return WSG_OK;
}

wsg_status Server::broadcast(wsg_msg_type type, const void *data, size_t len, wsg_conn_id except) {
    if (wsg_status st = check_message(type, data, len, nullptr)) return st;
    cmd::Broadcast c{OutMessage(type, data, len, cfg_.write_batch_bytes), except};
    if (wsg_status st = check_message(type, data, len, &c.msg)) return st;
    if (on_service_thread()) {
        execute(c);
        return WSG_OK;
    }
    if (!mailbox_.post(std::move(c))) return fail(WSG_ESTATE, "server is not running");
    return WSG_OK;
}

wsg_status Server::send_many(const wsg_conn_id *ids, size_t n, wsg_msg_type type, const void *data, size_t len) {
    if (!ids && n) return fail(WSG_EINVAL, "ids is NULL but n > 0");
    if (wsg_status st = check_message(type, data, len, nullptr)) return st;
    cmd::SendMany c{std::vector<wsg_conn_id>(ids, ids + n), OutMessage(type, data, len, cfg_.write_batch_bytes)};
    if (wsg_status st = check_message(type, data, len, &c.msg)) return st;
    if (on_service_thread()) {
        execute(c);
        return WSG_OK;
    }
    if (!mailbox_.post(std::move(c))) return fail(WSG_ESTATE, "server is not running");
    return WSG_OK;
}

wsg_status Server::subscribe(wsg_conn_id id, const char *topic, bool on) {
    if (!topic) return fail(WSG_EINVAL, "topic is NULL");
    std::string why = check_topic(topic);
    if (!why.empty()) return fail(WSG_EINVAL, why);
    return dispatch(
        id, false,
        [&](Conn *c) {
            cmd::Subscribe cmd{id, topic, on};
            (void)c;
            execute(cmd);
        },
        [&] { return Command(cmd::Subscribe{id, topic, on}); });
}

wsg_status Server::publish(const char *topic, wsg_msg_type type, const void *data, size_t len) {
    if (!topic) return fail(WSG_EINVAL, "topic is NULL");
    std::string why = check_topic(topic);
    if (!why.empty()) return fail(WSG_EINVAL, why);
    if (wsg_status st = check_message(type, data, len, nullptr)) return st;
    const bool here = on_service_thread();
    if (history_.topic(topic)) {
        // Positioned first (core/history.h): kept even when nobody listens here.
        OutMessage m(type, data, len, cfg_.write_batch_bytes);
        if (wsg_status st = check_message(type, data, len, &m)) return st;
        cmd::HistoryPublish c{topic, type, std::string(static_cast<const char *>(data), len)};
        if (here) {
            execute(c);
            return WSG_OK;
        }
        if (!mailbox_.post(std::move(c))) return fail(WSG_ESTATE, "server is not running");
        return WSG_OK;
    }
    // Nobody listens: nothing is built.
    if (here && !topics_.find(topic) && !cluster_.enabled()) return WSG_OK;
    cmd::Publish c{topic, OutMessage(type, data, len, cfg_.write_batch_bytes),
                   envelope(EnvelopeKind::TopicMessage, type, topic,
                            std::string_view(static_cast<const char *>(data), len))};
    if (wsg_status st = check_message(type, data, len, &c.msg)) return st;
    if (here) {
        execute(c);
        return WSG_OK;
    }
    if (!mailbox_.post(std::move(c))) return fail(WSG_ESTATE, "server is not running");
    return WSG_OK;
}

template <class F>
auto Server::locked(F &&f) {
    std::unique_lock<std::mutex> lock(registry_.mu, std::defer_lock);
    if (!on_service_thread()) lock.lock();
    return f();
}

// Copies up to `capacity` ids of `conns` to `ids` and the total to *count.
template <class List, class Id>
static void copy_ids(const List *conns, Id id_of, wsg_conn_id *ids, size_t capacity, size_t *count) {
    *count = conns ? conns->size() : 0;
    for (size_t i = 0; i < *count && i < capacity; i++) ids[i] = id_of((*conns)[i]);
}

wsg_status Server::topic_subscribers(const char *topic, wsg_conn_id *ids, size_t capacity, size_t *count) {
    if (!topic) return fail(WSG_EINVAL, "topic is NULL");
    if (!count) return fail(WSG_EINVAL, "count is NULL");
    if (!ids && capacity) return fail(WSG_EINVAL, "ids is NULL but capacity > 0");
    std::string why = check_topic(topic);
    if (!why.empty()) return fail(WSG_EINVAL, why);
    locked([&] {
        const Topic *t = topics_.find(topic);
        copy_ids(t ? &t->members : nullptr, [](const Topic::Member &m) { return m.conn->id; }, ids, capacity,
                 count);
    });
    return WSG_OK;
}

wsg_status Server::user_conn_ids(const char *user, wsg_conn_id *ids, size_t capacity, size_t *count) {
    if (!user || !*user) return fail(WSG_EINVAL, "user id is NULL or empty");
    if (!count) return fail(WSG_EINVAL, "count is NULL");
    if (!ids && capacity) return fail(WSG_EINVAL, "ids is NULL but capacity > 0");
    locked([&] { copy_ids(users_.find(user), [](Conn *c) { return c->id; }, ids, capacity, count); });
    return WSG_OK;
}

wsg_status Server::user_send(const char *user, wsg_msg_type type, const void *data, size_t len) {
    if (!user || !*user) return fail(WSG_EINVAL, "user id is NULL or empty");
    if (wsg_status st = check_message(type, data, len, nullptr)) return st;
    if (wsg_status st = user_reachable(user)) return st;
    cmd::UserSend c{user, OutMessage(type, data, len, cfg_.write_batch_bytes),
                    envelope(EnvelopeKind::UserMessage, type, user,
                             std::string_view(static_cast<const char *>(data), len))};
    if (wsg_status st = check_message(type, data, len, &c.msg)) return st;
    if (on_service_thread()) {
        execute(c);
        return WSG_OK;
    }
    if (!mailbox_.post(std::move(c)))
        return fail(WSG_ENOTFOUND, std::string("user '") + user + "' is gone (server stopping)");
    return WSG_OK;
}

wsg_status Server::user_close(const char *user, int code, const char *reason) {
    if (!user || !*user) return fail(WSG_EINVAL, "user id is NULL or empty");
    std::string why;
    if (wsg_status st = check_close(code, reason, &why)) return st;
    if (wsg_status st = user_reachable(user)) return st;
    cmd::UserClose c{user, code, why, envelope(EnvelopeKind::UserClose, WSG_MSG_TEXT, user, close_body(code, why))};
    if (on_service_thread()) {
        execute(c);
        return WSG_OK;
    }
    if (!mailbox_.post(std::move(c)))
        return fail(WSG_ENOTFOUND, std::string("user '") + user + "' is gone (server stopping)");
    return WSG_OK;
}

template <class F>
wsg_status Server::with_conn(wsg_conn_id id, F &&f) {
    std::unique_lock<std::mutex> lock(registry_.mu, std::defer_lock);
    if (!on_service_thread()) lock.lock();
    Conn *c = registry_.get(id);
    if (!c) return fail(WSG_ENOTFOUND, "no open connection with id " + std::to_string(id));
    f(c);
    return WSG_OK;
}

size_t Server::conn_ids(wsg_conn_id *ids, size_t capacity) {
    std::unique_lock<std::mutex> lock(registry_.mu, std::defer_lock);
    if (!on_service_thread()) lock.lock();
    const auto &live = registry_.live();
    for (size_t i = 0; i < live.size() && i < capacity; i++) ids[i] = live[i]->id;
    return live.size();
}

// Through the mailbox also on the service thread: the callback never runs
// inside the call that starts it.
wsg_status Server::session(SessionOp::Kind kind, const char *key, const void *data, size_t len, int64_t ttl_ms,
                           AsyncReply reply) {
    cmd::Session c;
    if (wsg_status st = sessions_.check(kind, key, data, len, ttl_ms, &c.op)) return st;
    c.reply = reply;
    if (!mailbox_.post(std::move(c))) return fail(WSG_ESTATE, "server is not running");
    return WSG_OK;
}

wsg_status Server::set_user(wsg_conn_id id, void *ptr) {
    return with_conn(id, [&](Conn *c) { c->user.store(ptr); });
}

wsg_status Server::get_user(wsg_conn_id id, void **out) {
    return with_conn(id, [&](Conn *c) { *out = c->user.load(); });
}

wsg_status Server::conn_info(wsg_conn_id id, wsg_conn_info *info) {
    return with_conn(id, [&](Conn *c) {
        info->peer_addr = c->peer.to_string();
        info->peer_port = c->peer_port;
        info->path = std::string(c->fact(kPath));
        info->query = std::string(c->fact(kQuery));
        info->origin = std::string(c->fact(kOrigin));
        info->subprotocol = std::string(c->fact(kSubprotocol));
        info->tls_subject = std::string(c->fact(kTlsSubject));
        info->user_id = std::string(c->fact(kUserId));
        info->claims = std::string(c->fact(kClaims));
        info->duration_ms = mono_ms() - c->opened_mono_ms;
        info->connected_at_ms = unix_ms() - info->duration_ms;
        info->msgs_in = static_cast<int64_t>(c->msgs_in.load());
        info->bytes_in = static_cast<int64_t>(c->bytes_in.load());
        info->msgs_out = static_cast<int64_t>(c->msgs_out.load());
        info->bytes_out = static_cast<int64_t>(c->bytes_out.load());
        info->id = static_cast<int64_t>(c->id);
        info->rtt_us = c->rtt_us.load(std::memory_order_relaxed);
        info->compression = c->deflate ? 1 : 0;
        info->queued_bytes = static_cast<int64_t>(c->queued_bytes.load(std::memory_order_relaxed));
        info->msgs_dropped = static_cast<int64_t>(c->msgs_dropped.load());
        info->queue_policy = c->queue_policy.load(std::memory_order_relaxed);
        if (c->subs)
            for (const Subscription &sub : *c->subs) info->topics.push_back(sub.topic->name);
    });
}

}  // namespace wsgate

namespace wsgate {

// ---------------------------------------------------------------- cluster

bool Server::remote_id(wsg_conn_id id) const {
    if (!cluster_.enabled()) return false;
    const uint16_t node = Registry::node_of(id);
    return node != 0 && node != cluster_.node();
}

// With a cluster the user may be on another instance: whether it is cannot
// be known here without a round trip.
wsg_status Server::user_reachable(const char *user) {
    if (locked([&] { return users_.find(user) != nullptr; })) return WSG_OK;
    if (!cluster_.enabled()) return fail(WSG_ENOTFOUND, std::string("user '") + user + "' has no open connection");
    if (!cluster_.up()) return cluster_down(std::string("user '") + user + "' has no connection on this instance");
    return WSG_OK;
}

wsg_status Server::cluster_down(const std::string &what) const {
    return fail(WSG_ECLUSTER, what + ", and the cluster is down (" + cluster_.down_reason() +
                                  "): nothing could be handed to the other instances");
}

std::string Server::envelope(EnvelopeKind kind, wsg_msg_type type, std::string_view target,
                             std::string_view body) const {
    std::string out;
    if (cluster_.enabled())
        encode_envelope(kind, static_cast<uint8_t>(type), cluster_.node(), cluster_.tag(), target, body, &out);
    return out;
}

wsg_status Server::relay(std::string channel, std::string envelope, const std::string &what) {
    if (!cluster_.up()) return cluster_down(what + " (a connection of another instance)");
    if (on_service_thread()) {
        if (!cluster_.relay(channel, envelope))
            return fail(WSG_ECLUSTER, what + ": not handed to Redis (" +
                                          (cluster_.up() ? std::string("cluster.max_pending commands are waiting")
                                                         : cluster_.down_reason()) +
                                          ")");
        return WSG_OK;
    }
    if (!mailbox_.post(cmd::Relay{std::move(channel), std::move(envelope)}))
        return fail(WSG_ESTATE, "server is not running");
    return WSG_OK;
}

void Server::on_cluster_node(uint16_t node) {
    std::lock_guard<std::mutex> lock(registry_.mu);
    registry_.set_node(node);
}

// A message from another instance: delivered here as if published here
// (without relaying it again). Envelopes come from Redis, so from the
// network: anything malformed is dropped, never trusted.
void Server::on_cluster_message(const Envelope &e) {
    const auto type = static_cast<wsg_msg_type>(e.msg_type);
    auto message = [&] { return OutMessage(type, e.body.data(), e.body.size(), cfg_.write_batch_bytes); };
    const bool data_kind = e.kind == EnvelopeKind::TopicMessage || e.kind == EnvelopeKind::UserMessage ||
                           e.kind == EnvelopeKind::ConnMessage || e.kind == EnvelopeKind::TopicHistory;
    if (data_kind && type != WSG_MSG_TEXT && type != WSG_MSG_BINARY) {
        metrics_.cluster_dropped.add(metric::ClusterDrop::invalid);
        return;
    }
    int code = 0;
    std::string_view reason;
    std::string why;
    const bool close_kind = e.kind == EnvelopeKind::UserClose || e.kind == EnvelopeKind::ConnClose;
    if (close_kind && (!parse_close_body(e.body, &code, &reason) ||
                       check_close(code, std::string(reason).c_str(), &why) != WSG_OK)) {
        metrics_.cluster_dropped.add(metric::ClusterDrop::invalid);
        return;
    }
    switch (e.kind) {
    case EnvelopeKind::TopicHistory: {
        if (topics_.find(e.target) && history_.topic(e.target)) history_.on_envelope(e);
        return;
    }
    case EnvelopeKind::TopicMessage: {
        if (!topics_.find(e.target)) return;
        cmd::Publish c{std::string(e.target), message(), std::string()};
        execute(c);
        return;
    }
    case EnvelopeKind::UserMessage: {
        if (!users_.find(e.target)) return;
        cmd::UserSend c{std::string(e.target), message(), std::string()};
        execute(c);
        return;
    }
    case EnvelopeKind::UserClose: {
        cmd::UserClose c{std::string(e.target), code, why, std::string()};
        execute(c);
        return;
    }
    case EnvelopeKind::ConnMessage: {
        Conn *conn = registry_.get(conn_from_target(e.target));
        if (conn && !conn->closing && !conn->close_requested.load()) {
            OutMessage m = message();
            outbox_.deliver(conn, m);
        }
        return;
    }
    case EnvelopeKind::ConnClose: {
        Conn *conn = registry_.get(conn_from_target(e.target));
        if (conn && !conn->closing && !conn->close_requested.exchange(true))
            outbox_.close(conn, code, why, WSG_CAUSE_APP, false);
        return;
    }
    }
    // A kind a newer version sends: ignored.
}

}  // namespace wsgate

namespace wsgate {

// ---------------------------------------------------------------- presence

// The loop ends once the cluster said goodbye (presence entries and lease
// deleted in Redis), but a hung Redis holds a stop for a second at most: the
// entries then lapse with the lease (cluster.presence_ttl_ms).
void Server::exit_loop() {
    if (cluster_.enabled())
        transport_.start_timer(&leave_timer_, std::min<int64_t>(cfg_.cluster.command_timeout_ms, kMaxLeaveMs) * 1000,
                               [this] { loop_exit_ = true; });
    cluster_.leave([this] { loop_exit_ = true; });
}

void Server::presence_changed(char kind, const std::string &name, const Conn *c, int64_t since_ms, bool on) {
    if (!cluster_.enabled()) return;
    if (!on) return cluster_.presence_remove(kind, name, c->id);
    cluster_.presence_add(kind, name, c->id, encode_presence_value(kind, since_ms, c->fact(kUserId)));
}

void Server::presence_snapshot(std::vector<PresenceGroup> *out) const {
    topics_.for_each([&](const Topic &t) {
        PresenceGroup g;
        g.kind = 't';
        g.name = t.name;
        for (const Topic::Member &m : t.members)
            g.fields.emplace_back(m.conn->id, encode_presence_value('t', (*m.conn->subs)[m.pos].since_ms,
                                                                     m.conn->fact(kUserId)));
        out->push_back(std::move(g));
    });
    users_.for_each([&](const std::string &user, const std::vector<Conn *> &conns) {
        PresenceGroup g;
        g.kind = 'u';
        g.name = user;
        for (const Conn *c : conns) g.fields.emplace_back(c->id, encode_presence_value('u', c->opened_unix_ms, {}));
        out->push_back(std::move(g));
    });
}

void Server::local_presence(char kind, const std::string &name, std::vector<wsg_result::Entry> *out) const {
    if (kind == 't') {
        if (const Topic *t = topics_.find(name))
            for (const Topic::Member &m : t->members)
                out->push_back({m.conn->id, std::string(m.conn->fact(kUserId)), (*m.conn->subs)[m.pos].since_ms});
    } else if (const std::vector<Conn *> *conns = users_.find(name))
        for (const Conn *c : *conns) out->push_back({c->id, name, c->opened_unix_ms});
}

wsg_status Server::presence(char kind, const char *name, wsg_result_fn fn, void *user) {
    if (kind == 't') {
        if (!name) return fail(WSG_EINVAL, "topic is NULL");
        std::string why = check_topic(name);
        if (!why.empty()) return fail(WSG_EINVAL, why);
    } else if (!name || !*name) {
        return fail(WSG_EINVAL, "user id is NULL or empty");
    }
    if (!fn) return fail(WSG_EINVAL, "fn is NULL: presence is answered through its callback");
    // Through the mailbox also on the service thread: the callback never
    // runs inside the call that starts it (a local answer would).
    cmd::Presence c{kind, name, AsyncReply{fn, user}};
    if (!mailbox_.post(std::move(c))) return fail(WSG_ESTATE, "server is not running");
    return WSG_OK;
}

// This instance's own entries come from its indexes, never from Redis: they
// are exact even when a write to Redis is late or was lost; the other
// instances' come from Redis.
void Server::execute(cmd::Presence &c) {
    const char kind = c.kind;
    const std::string name = std::move(c.name);
    const AsyncReply reply = c.reply;
    const std::string what = std::string(kind == 't' ? "presence of topic '" : "presence of user '") + name + "'";
    const std::string local_only = ": the result holds this instance's entries only";
    // Every answer holds this instance's entries, taken when it is given;
    // `remote` (Redis' answer) adds the other instances'.
    auto answer = [this, kind, name, reply](wsg_status status, std::string message, std::vector<PresenceEntry> *remote) {
        wsg_result r;
        r.status = status;
        r.message = std::move(message);
        local_presence(kind, name, &r.entries);
        if (remote) {
            const uint16_t self = cluster_.node();
            for (PresenceEntry &e : *remote)
                if (e.node != self) r.entries.push_back({e.conn, std::move(e.user_id), e.since_ms});
        }
        std::sort(r.entries.begin(), r.entries.end(),
                  [](const wsg_result::Entry &a, const wsg_result::Entry &b) { return a.conn < b.conn; });
        reply(app.server, r);
    };
    if (!cluster_.enabled()) return answer(WSG_OK, std::string(), nullptr);
    if (!cluster_.up())
        return answer(WSG_ECLUSTER, what + ": the cluster is down (" + cluster_.down_reason() + ")" + local_only,
                      nullptr);
    const bool sent = cluster_.presence_read(
        kind, name, [this, answer, what, local_only](bool ok, const std::string &why, std::vector<PresenceEntry> &remote) {
            if (ok) return answer(WSG_OK, std::string(), &remote);
            if (!cluster_.running())
                return answer(WSG_ESTATE, what + ": the server stopped before Redis answered", nullptr);
            answer(WSG_ECLUSTER, what + ": " + why + local_only, nullptr);
        });
    if (!sent)
        answer(WSG_ECLUSTER,
               what + ": not handed to Redis (" +
                   (cluster_.up() ? std::string("cluster.max_pending commands are waiting") : cluster_.down_reason()) +
                   ")" + local_only,
               nullptr);
}

}  // namespace wsgate

namespace wsgate {

// ---------------------------------------------------------------- history

// Through the mailbox also on the service thread: the callback never runs
// inside the call that starts it.
wsg_status Server::subscribe_from(wsg_conn_id id, const char *topic, const wsg_position *from, AsyncReply reply) {
    if (!topic) return fail(WSG_EINVAL, "topic is NULL");
    std::string why = check_topic(topic);
    if (!why.empty()) return fail(WSG_EINVAL, why);
    if (!history_.topic(topic))
        return fail(WSG_EINVAL, std::string("topic '") + topic +
                                    "' keeps no history: list it (or a prefix*) in cluster.history_topics");
    if (remote_id(id)) return fail(WSG_EINVAL, "connection " + std::to_string(id) + " is on another instance");
    if (!locked([&] {
            Conn *c = registry_.get(id);
            return c && !c->closing;
        }))
        return fail(WSG_ENOTFOUND, "no open connection with id " + std::to_string(id));
    cmd::SubscribeFrom c{id, topic, from != nullptr, from ? *from : wsg_position{0, 0}, reply, false};
    if (on_service_thread()) {
        // Subscribed at once, as the contract says (a publish later in the
        // same handler reaches the connection); live messages wait for the
        // replay from now on. Only the history part and the answer go
        // through the mailbox.
        cmd::Subscribe sub{id, c.topic, true};
        execute(sub);
        if (c.has_from) history_.begin_hold(c.topic, id);
        c.subscribed = true;
    }
    if (!mailbox_.post(std::move(c))) return fail(WSG_ESTATE, "server is not running");
    return WSG_OK;
}

void Server::execute(cmd::HistoryPublish &c) { history_.publish(c.topic, c.type, std::move(c.payload)); }

void Server::execute(cmd::SubscribeFrom &c) {
    Conn *conn = registry_.get(c.id);
    if (!conn || conn->closing) {
        history_.release(c.topic, c.id);
        return answer_now(c.reply, app.server, WSG_ENOTFOUND, "connection " + std::to_string(c.id) + " closed meanwhile");
    }
    if (!c.subscribed) {
        cmd::Subscribe sub{c.id, c.topic, true};
        execute(sub);
    }
    history_.subscribe_from(c.id, c.topic, c.has_from ? &c.from : nullptr, c.reply);
}

void Server::history_deliver(const std::string &topic, const wsg_position &pos, wsg_msg_type type,
                             std::string_view payload, wsg_conn_id only) {
    wsg_history_message hm;
    hm.type = type;
    hm.payload = payload;
    hm.max_bytes = cfg_.max_queue_bytes;
    if (app.on_history.fn) app.on_history.fn(app.server, topic.c_str(), &pos, &hm, app.on_history.user);
    const std::string_view out = hm.replaced ? std::string_view(hm.replacement) : payload;
    OutMessage m(type, out.data(), out.size(), cfg_.write_batch_bytes);
    if (only) {
        Conn *c = registry_.get(only);
        if (c && !c->closing) outbox_.deliver(c, m);
        return;
    }
    const Topic *t = topics_.find(topic);
    if (!t) return;
    for (const Topic::Member &mb : t->members) {
        if (!m.conflate_key && mb.conn->policy() == WSG_QUEUE_CONFLATE)
            m.conflate_key = std::make_shared<const std::string>(topic);
        if (history_.hold(topic, mb.conn->id, pos, m)) continue;
        outbox_.deliver(mb.conn, m);
    }
}

void Server::HistoryEvents::history_deliver_held(wsg_conn_id conn, OutMessage &m) {
    Conn *c = s->registry_.get(conn);
    if (c && !c->closing) s->outbox_.deliver(c, m);
}

bool Server::HistoryEvents::history_conn_open(wsg_conn_id conn) {
    Conn *c = s->registry_.get(conn);
    return c && !c->closing;
}

}  // namespace wsgate
