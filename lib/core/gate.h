// The gate: the HTTP/1.1 upgrade. A new link's bytes are parsed as a request
// (protocol::HttpRequestParser, with hard limits); then, in order, the
// handshake rules (RFC 6455 4.2.1), the path, the handshake rate, the Origin
// policy, the subprotocol, shutdown and connection limits, authentication
// and the per-user limit. A refusal is a real HTTP response written here and
// logged; nothing is allocated for the refused connection beyond its
// request. An accepted request is answered with 101, becomes a Conn and is
// registered. A plain HTTP request (no Upgrade: websocket) for a registered
// static page (core/pages.h) is answered with that page instead. The gate
// never touches a connection's queues.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "config/settings.h"
#include "core/callbacks.h"
#include "core/conn.h"
#include "core/pages.h"
#include "core/registry.h"
#include "core/wheel.h"
#include "observe/log.h"
#include "observe/metrics.h"
#include "protocol/deflate.h"
#include "protocol/http_request.h"
#include "security/auth.h"
#include "security/limits.h"
#include "transport/transport.h"

namespace wsgate {

// Connection counts and rates that admission checks and closes release.
struct Admission {
    explicit Admission(const Settings &cfg) {
        if (!cfg.handshake_rate.unlimited()) handshakes = std::make_unique<HandshakeLimiter>(cfg.handshake_rate);
    }
    std::unique_ptr<HandshakeLimiter> handshakes;
    IpConnCounter per_ip;
    UserConnCounter per_user;
    // TCP connections per peer address from accept to close, upgraded or
    // not (limits.max_connections_per_ip applies from accept). Kept only
    // when that limit is set; trusted proxies are not counted.
    IpConnCounter links_per_ip;
};

// What the checks found about an upgrade that waits for the cluster's count
// of the user's connections (limits.max_connections_per_user with a cluster):
// everything the 101 answer and the Conn need besides the request, which the
// Handshake's parser still holds.
struct ParkedUpgrade {
    IpAddr ip;
    uint16_t peer_port = 0;
    bool ip_counted = false, user_counted = false;
    AuthOutcome auth;
    std::string origin, subprotocol;
    PmdAgreement pmd;
    std::string rest;  // bytes that came after the request meanwhile
};

// A link still in its opening handshake.
struct Handshake : LinkOwner {
    explicit Handshake(const proto::HttpLimits &limits) : LinkOwner(Kind::Handshake), parser(limits) {}
    Link *link = nullptr;  // the deadline is heartbeat.handshake_timeout_ms, on LinkOwner's timer
    proto::HttpRequestParser parser;
    IpAddr tcp_peer;            // counted in Admission::links_per_ip when link_counted
    bool link_counted = false;  // passes to the Conn at the upgrade
    // Answered with a page whose bytes are still being written: input is
    // ignored and the link closes once lws holds nothing more (Gate::drained).
    bool answered = false;
    int64_t accepted_us = 0;  // monotonic: the handshake's duration is measured from here
    // Waiting for the cluster's count (Gate::set_remote_user_count); its
    // serial finds it again when the answer comes.
    std::unique_ptr<ParkedUpgrade> parked;
    uint64_t serial = 0;
};

class Gate {
public:
    Gate(const Settings &cfg, Transport &transport, Logger &log, Clock &clock, TimingWheel &wheel,
         Registry &registry, AppCallbacks &app, Admission &admission, const Pages &pages, Metrics &metrics);

    // A new link: its handshake starts, bounded by the handshake timeout.
    // `peer`, when given, is counted in Admission::links_per_ip until the
    // link ends (or passed to its Conn).
    Handshake *admit(Link *link, const IpAddr *peer);
    struct Result {
        enum Kind {
            Pending,  // more request bytes to come
            Refused,  // answered with an HTTP error: close the link
            Answered,  // answered with a static page: close the link once drained()
            Opened,   // upgraded: `conn` is registered; bytes after the request start at `rest`
        } kind = Pending;
        Conn *conn = nullptr;
        uint8_t *rest = nullptr;
        size_t rest_len = 0;
        // Per-connection heartbeat values the authenticator gave.
        std::vector<std::pair<std::string, int64_t>> timeouts;
    };
    Result read(Handshake *h, uint8_t *data, size_t len);
    // The deadline passed before the request was complete (slowloris), or
    // before the client took an answered page.
    void timed_out(Handshake *h);
    // The link of an answered page can close: everything was handed to the
    // kernel. Asks for a writable event otherwise.
    bool drained(Handshake *h);
    // The link went away (or timed out): forget the handshake.
    void drop(Handshake *h);
    // While stopping, upgrades are refused with 503.
    void set_stopping(bool stopping) { stopping_ = stopping; }

    // limits.max_connections_per_user across a cluster. `count(user, done)`
    // asks the other instances how many connections `user` has and calls
    // done(n) later on the service thread (n < 0: unknown, e.g. Redis down or
    // slow); it returns false when it cannot ask at all. Either way an
    // unknown count lets the local count decide (a short outage does not
    // lock users out). The upgrade waits for the answer, bounded by the
    // handshake timeout; `resumed` then gets what read() would have returned
    // (Opened or Refused; the link of a refusal is closed by the gate).
    using RemoteUserCount = std::function<bool(const std::string &user, std::function<void(int64_t)> done)>;
    void set_remote_user_count(RemoteUserCount count, std::function<void(Result &)> resumed) {
        remote_user_count_ = std::move(count);
        resumed_ = std::move(resumed);
    }
    size_t pending() const { return pending_; }

private:
    // Answers with an HTTP/1.1 status and logs it (log_reason, when given,
    // is what the log says instead of `reason`).
    // `why` is the bounded reason the metrics count it under.
    Result refuse(Handshake *h, const proto::HttpRequest *req, metric::Refusal why, int status,
                  const std::string &reason, const char *extra_headers = "",
                  const std::string &log_reason = std::string());
    Result decide(Handshake *h, uint8_t *rest, size_t rest_len);
    // The 101 answer and the new Conn, once every check passed.
    Result upgrade(Handshake *h, ParkedUpgrade &u, uint8_t *rest, size_t rest_len);
    // The cluster's count came for the handshake `serial` (gone: ignored).
    void resume(uint64_t serial, int64_t remote);
    // GET and HEAD get the page; other methods 405.
    Result serve_page(Handshake *h, const proto::HttpRequest &req, const Pages::Page &page);
    // JWT and/or the application's authenticator; 0 when accepted (outcome
    // in *out), else the refusal already sent.
    bool authenticate(Handshake *h, const proto::HttpRequest &req, const IpAddr &tcp_peer,
                      AuthOutcome *out, Result *refused);
    void release(const IpAddr &ip, bool ip_counted, const std::string &user, bool user_counted);

    const Settings &cfg_;
    Transport &transport_;
    Logger &log_;
    Clock &clock_;
    TimingWheel &wheel_;
    Registry &registry_;
    AppCallbacks &app_;
    Admission &admission_;
    const Pages &pages_;
    Metrics &metrics_;
    const proto::HttpLimits http_limits_;
    bool stopping_ = false;
    size_t pending_ = 0;
    RemoteUserCount remote_user_count_;
    std::function<void(Result &)> resumed_;
    // Handshakes waiting for the cluster's count, by serial.
    std::unordered_map<uint64_t, Handshake *> parked_;
    uint64_t next_serial_ = 0;
    // Finished handshakes kept for the next ones: a handshake lives between
    // long-lived allocations (the transport's, the connection's), and freeing
    // it each time left a hole per connection in the heap (measured: about
    // 120 bytes per idle connection at 10,000).
    std::vector<std::unique_ptr<Handshake>> spare_;
    static constexpr size_t kSpareHandshakes = 256;
};

// The monotonic time (ms) at which a connection whose token expires at
// `exp_s` (Unix seconds) is closed, `grace_ms` later: never before
// `mono_now_ms`, and saturated instead of overflowing, since exp is any
// number a signed token carries: an exp above about 9.2e15 s once wrapped
// to a negative deadline, and the connection was closed as token_expired
// at its first heartbeat check. Millions of years away stays far away.
int64_t token_deadline_ms(int64_t exp_s, int64_t grace_ms, int64_t unix_now_ms, int64_t mono_now_ms);

// Peer address and port of a socket (IPv4-mapped addresses unwrapped).
bool socket_peer(int fd, IpAddr *addr, uint16_t *port);
// "peer" and "peer_port" of a socket, to start a log event with.
LogFields peer_fields(int fd);

}  // namespace wsgate
