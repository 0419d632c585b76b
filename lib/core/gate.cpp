#include "core/gate.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <limits>

#include "base/time.h"
#include "protocol/deflate.h"
#include "protocol/handshake.h"
#include "security/tls.h"

namespace wsgate {
namespace {

// A path is served when it equals server.path or lies below it.
bool path_matches(const std::string &want, const std::string &path) {
    if (want == "/" || path == want) return true;
    if (path.compare(0, want.size(), want) != 0) return false;
    return want.back() == '/' || path[want.size()] == '/';
}

std::string first(const proto::HttpRequest &req, const char *name) {
    const std::string *v = req.get(name);
    return v ? *v : std::string();
}

// Every Cookie header as one cookie string (RFC 6265 5.4 joins with "; ").
std::string cookies_of(const proto::HttpRequest &req) {
    std::string out;
    for (const proto::HttpHeader &h : req.headers) {
        if (h.name != "cookie") continue;
        if (!out.empty()) out += "; ";
        out += h.value;
    }
    return out;
}

proto::HttpLimits http_limits_of(const Settings &cfg) {
    proto::HttpLimits l;
    l.max_request_line = cfg.max_request_line;
    l.max_header_bytes = cfg.max_header_bytes;
    l.max_headers = cfg.max_headers;
    return l;
}

// Bytes a client may send after its request while the upgrade waits for the
// cluster (a client waits for 101 before sending frames).
constexpr size_t kMaxParkedBytes = 64 * 1024;

}  // namespace

bool socket_peer(int fd, IpAddr *addr, uint16_t *port) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    *port = 0;
    if (fd < 0 || getpeername(fd, reinterpret_cast<struct sockaddr *>(&ss), &sl) != 0) return false;
    auto a = IpAddr::from_sockaddr(reinterpret_cast<struct sockaddr *>(&ss));
    if (!a) return false;
    *addr = *a;
    if (ss.ss_family == AF_INET)
        *port = ntohs(reinterpret_cast<struct sockaddr_in *>(&ss)->sin_port);
    else if (ss.ss_family == AF_INET6)
        *port = ntohs(reinterpret_cast<struct sockaddr_in6 *>(&ss)->sin6_port);
    return true;
}

int64_t token_deadline_ms(int64_t exp_s, int64_t grace_ms, int64_t unix_now_ms, int64_t mono_now_ms) {
    // A quarter of the range: the sums below cannot overflow for any clock
    // value or grace (both far smaller), and it still is 73 million years.
    constexpr int64_t kFar = std::numeric_limits<int64_t>::max() / 4;
    int64_t left = kFar;
    if (exp_s < kFar / 1000) left = std::min(std::max<int64_t>(exp_s, 0) * 1000 + grace_ms - unix_now_ms, kFar);
    return mono_now_ms + std::max<int64_t>(left, 0);
}

LogFields peer_fields(int fd) {
    IpAddr peer;
    uint16_t port = 0;
    socket_peer(fd, &peer, &port);
    LogFields f;
    f["peer"] = peer.to_string();
    f["peer_port"] = port;
    return f;
}

Gate::Gate(const Settings &cfg, Transport &transport, Logger &log, Clock &clock, TimingWheel &wheel,
           Registry &registry, AppCallbacks &app, Admission &admission, const Pages &pages, Metrics &metrics)
    : cfg_(cfg),
      transport_(transport),
      log_(log),
      clock_(clock),
      wheel_(wheel),
      registry_(registry),
      app_(app),
      admission_(admission),
      pages_(pages),
      metrics_(metrics),
      http_limits_(http_limits_of(cfg)) {}

Handshake *Gate::admit(Link *link, const IpAddr *peer) {
    Handshake *h;
    if (spare_.empty()) {
        h = new Handshake(http_limits_);
    } else {
        h = spare_.back().release();
        spare_.pop_back();
    }
    h->link = link;
    h->accepted_us = mono_us();
    h->serial = ++next_serial_;
    if (peer && admission_.links_per_ip.try_acquire(*peer, 0)) {
        h->tcp_peer = *peer;
        h->link_counted = true;
    }
    wheel_.schedule(&h->timer, clock_.now_ms() + cfg_.handshake_timeout_ms);
    Transport::set_owner(link, static_cast<LinkOwner *>(h));
    pending_++;
    metrics_.handshakes_pending.set(static_cast<int64_t>(pending_));
    return h;
}

void Gate::drop(Handshake *h) {
    wheel_.cancel(&h->timer);
    if (h->parked) {
        release(h->parked->ip, h->parked->ip_counted, h->parked->auth.user_id, h->parked->user_counted);
        parked_.erase(h->serial);
        h->parked.reset();
    }
    if (h->link) Transport::set_owner(h->link, nullptr);
    if (h->link_counted) admission_.links_per_ip.release(h->tcp_peer);
    h->link_counted = false;
    pending_--;
    metrics_.handshakes_pending.set(static_cast<int64_t>(pending_));
    if (spare_.size() < kSpareHandshakes) {
        h->link = nullptr;
        h->answered = false;
        h->parser = proto::HttpRequestParser(http_limits_);
        spare_.emplace_back(h);
    } else {
        delete h;
    }
}

void Gate::timed_out(Handshake *h) {
    metrics_.handshake_timeouts.inc();
    if (log_.enabled(LogEvent::handshake_timeout)) {
        LogFields f = peer_fields(Transport::fd(h->link));
        f["cause"] = h->answered ? "page_not_read" : "handshake_timeout";
        f["timeout_ms"] = cfg_.handshake_timeout_ms;
        log_.emit(LogEvent::handshake_timeout, f);
    }
    transport_.close_soon(h->link);
    drop(h);
}

Gate::Result Gate::refuse(Handshake *h, const proto::HttpRequest *req, metric::Refusal why, int status,
                          const std::string &reason, const char *extra_headers, const std::string &log_reason) {
    metrics_.handshakes_refused.add(why);
    std::string resp = proto::http_response(status, reason, extra_headers);
    transport_.write(h->link, reinterpret_cast<const uint8_t *>(resp.data()), resp.size());
    if (log_.enabled(LogEvent::reject)) {
        LogFields f = peer_fields(Transport::fd(h->link));
        f["path"] = req ? req->path : std::string();
        f["status"] = status;
        f["reason"] = log_reason.empty() ? reason : log_reason;
        log_.emit(LogEvent::reject, f);
    }
    Result r;
    r.kind = Result::Refused;
    return r;
}

Gate::Result Gate::read(Handshake *h, uint8_t *data, size_t len) {
    // Bytes after a page's request (a pipelined request, a late body) get
    // no answer: the connection ends with the page.
    if (h->answered) return Result();
    if (h->parked) {
        // Frames sent before our answer wait with the upgrade (a client
        // waits for 101; this bounds one that does not).
        if (h->parked->rest.size() + len > kMaxParkedBytes)
            return refuse(h, &h->parser.request(), metric::Refusal::protocol, 400,
                          "data sent before the upgrade was answered");
        h->parked->rest.append(reinterpret_cast<const char *>(data), len);
        return Result();
    }
    size_t used = 0;
    switch (h->parser.feed(reinterpret_cast<const char *>(data), len, &used)) {
    case proto::HttpRequestParser::State::NeedMore: return Result();
    case proto::HttpRequestParser::State::Error:
        return refuse(h, nullptr, metric::Refusal::protocol, h->parser.error_status(), h->parser.error());
    case proto::HttpRequestParser::State::Done: break;
    }
    return decide(h, data + used, len - used);
}

Gate::Result Gate::serve_page(Handshake *h, const proto::HttpRequest &req, const Pages::Page &page) {
    const bool head = req.method == "HEAD";
    if (!head && req.method != "GET")
        return refuse(h, &req, metric::Refusal::protocol, 405, "only GET and HEAD are served at this path", "allow: GET, HEAD\r\n");
    // RFC 7230 5.4: an HTTP/1.1 request needs exactly one Host.
    const size_t hosts = req.count("host");
    if (req.http_minor >= 1 && hosts != 1)
        return refuse(h, &req, metric::Refusal::protocol, 400, hosts ? "the Host header is repeated" : "the Host header is missing");
    // One write: lws keeps what the kernel does not take and flushes it
    // before the link closes (drained()).
    const size_t n = head ? page.head_len : page.response.size();
    if (!transport_.write(h->link, reinterpret_cast<const uint8_t *>(page.response.data()), n)) {
        Result r;
        r.kind = Result::Refused;  // the peer is gone: nothing to drain
        return r;
    }
    if (log_.enabled(LogEvent::page)) {
        LogFields f = peer_fields(Transport::fd(h->link));
        f["method"] = req.method;
        f["path"] = req.path;
        f["status"] = 200;
        f["bytes"] = head ? 0 : page.body_len();
        log_.emit(LogEvent::page, f);
    }
    h->answered = true;
    Result r;
    r.kind = Result::Answered;
    return r;
}

bool Gate::drained(Handshake *h) {
    // A write larger than the transport's batch is partly held by lws, and
    // closing the link now would lose that part.
    if (!Transport::write_pending(h->link)) return true;
    transport_.want_writable(h->link);
    return false;
}

void Gate::release(const IpAddr &ip, bool ip_counted, const std::string &user, bool user_counted) {
    if (ip_counted) admission_.per_ip.release(ip);
    if (user_counted) admission_.per_user.release(user);
}

Gate::Result Gate::decide(Handshake *h, uint8_t *rest, size_t rest_len) {
    const proto::HttpRequest &req = h->parser.request();
    // Pages are for plain HTTP: a WebSocket handshake on a page's path goes
    // on to the checks below (one path may be both).
    if (const Pages::Page *page = pages_.find(req.path); page && !proto::asks_for_websocket(req))
        return serve_page(h, req, *page);
    proto::Refusal bad = proto::check_upgrade(req);
    if (bad.status) return refuse(h, &req, metric::Refusal::protocol, bad.status, bad.reason, bad.extra_headers.c_str());
    if (!path_matches(cfg_.path, req.path)) return refuse(h, &req, metric::Refusal::path, 404, "no WebSocket endpoint at this path");
    IpAddr tcp_peer;
    uint16_t peer_port = 0;
    socket_peer(Transport::fd(h->link), &tcp_peer, &peer_port);
    // The client: the TCP peer, or behind a trusted proxy the rightmost
    // untrusted X-Forwarded-For hop.
    IpAddr ip = cfg_.trusted_proxies.empty() ? tcp_peer
                                             : client_ip(tcp_peer, req.joined("x-forwarded-for"), cfg_.trusted_proxies);
    if (admission_.handshakes && !admission_.handshakes->allow(ip, clock_.now_ms()))
        return refuse(h, &req, metric::Refusal::rate, 429, "too many connection attempts", "retry-after: 1\r\n",
                      "handshake rate limit for " + ip.to_string());
    OriginPolicy::Request oreq;
    const std::string origin = first(req, "origin"), host = first(req, "host");
    oreq.origin_count = static_cast<int>(req.count("origin"));
    oreq.origin = origin;
    oreq.host = host;
    oreq.tls = Transport::ssl(h->link) != nullptr;
    std::string why = cfg_.origins.check(oreq, cfg_.require_origin);
    if (!why.empty()) return refuse(h, &req, metric::Refusal::origin, 403, why);
    // The subprotocol: the client's first offer that we speak.
    std::string subprotocol;
    const std::string offered = req.joined("sec-websocket-protocol");
    if (!offered.empty()) {
        for (std::string_view name : proto::split_tokens(offered)) {
            if (cfg_.auth.from_subprotocol && name.compare(0, 7, "bearer.") == 0) continue;
            for (const std::string &ours : cfg_.subprotocols)
                if (subprotocol.empty() && name == ours) subprotocol = ours;
        }
        if (subprotocol.empty()) return refuse(h, &req, metric::Refusal::protocol, 400, "none of the offered subprotocols is spoken here");
    }
    if (stopping_) return refuse(h, &req, metric::Refusal::shutdown, 503, "server is shutting down", "retry-after: 5\r\n");
    if (registry_.count() >= cfg_.max_connections)
        return refuse(h, &req, metric::Refusal::limit, 503, "connection limit reached", "retry-after: 5\r\n");
    PmdAgreement pmd;
    if (cfg_.compression) {
        PmdPolicy policy;
        policy.ask_client_no_context_takeover = !cfg_.compress_client_context;
        pmd = pmd_negotiate(req.joined("sec-websocket-extensions"), policy);
    }
    bool ip_counted = false, user_counted = false;
    if (cfg_.max_per_ip) {
        if (!admission_.per_ip.try_acquire(ip, cfg_.max_per_ip))
            return refuse(h, &req, metric::Refusal::limit, 429, "too many connections", "retry-after: 5\r\n",
                          "per-IP connection limit for " + ip.to_string());
        ip_counted = true;
    }
    AuthOutcome auth;
    if (cfg_.auth.enabled()) {
        Result refused;
        if (!authenticate(h, req, tcp_peer, &auth, &refused)) {
            release(ip, ip_counted, std::string(), false);
            return refused;
        }
        if (cfg_.max_per_user && !auth.user_id.empty()) {
            if (!admission_.per_user.try_acquire(auth.user_id, cfg_.max_per_user)) {
                release(ip, ip_counted, std::string(), false);
                return refuse(h, &req, metric::Refusal::limit, 429, "too many connections", "retry-after: 5\r\n",
                              "per-user connection limit");
            }
            user_counted = true;
        }
    }
    ParkedUpgrade u;
    u.ip = ip;
    u.peer_port = peer_port;
    u.ip_counted = ip_counted;
    u.user_counted = user_counted;
    u.auth = std::move(auth);
    u.origin = origin;
    u.subprotocol = subprotocol;
    u.pmd = std::move(pmd);
    if (user_counted && remote_user_count_) {
        // The cluster's count decides with ours: the upgrade waits for it.
        const uint64_t serial = h->serial;
        const std::string user = u.auth.user_id;
        u.rest.assign(reinterpret_cast<const char *>(rest), rest_len);
        h->parked = std::make_unique<ParkedUpgrade>(std::move(u));
        parked_[serial] = h;
        if (remote_user_count_(user, [this, serial](int64_t n) { resume(serial, n); })) return Result();
        parked_.erase(serial);
        u = std::move(*h->parked);
        h->parked.reset();
        metrics_.cluster_user_count_unknown.inc();
    }
    return upgrade(h, u, rest, rest_len);
}

void Gate::resume(uint64_t serial, int64_t remote) {
    auto it = parked_.find(serial);
    if (it == parked_.end()) return;  // the link went away meanwhile
    Handshake *h = it->second;
    parked_.erase(it);
    std::unique_ptr<ParkedUpgrade> u = std::move(h->parked);
    const proto::HttpRequest &req = h->parser.request();
    Result r;
    const auto refused = [&](int status, const std::string &reason, const char *headers, const std::string &why) {
        release(u->ip, u->ip_counted, u->auth.user_id, u->user_counted);
        r = refuse(h, &req, status == 503 ? metric::Refusal::shutdown : metric::Refusal::limit, status, reason,
                   headers, why);
    };
    if (stopping_) {
        refused(503, "server is shutting down", "retry-after: 5\r\n", std::string());
    } else if (remote < 0) {
        metrics_.cluster_user_count_unknown.inc();
    } else if (admission_.per_user.count(u->auth.user_id) + static_cast<uint64_t>(remote) > cfg_.max_per_user) {
        refused(429, "too many connections", "retry-after: 5\r\n",
                "per-user connection limit (" + std::to_string(remote) + " on other instances of the cluster)");
    }
    if (r.kind != Result::Refused) r = upgrade(h, *u, reinterpret_cast<uint8_t *>(u->rest.data()), u->rest.size());
    if (r.kind == Result::Refused) {
        // Not inside a transport event: the link is closed here (after
        // the refusal's bytes).
        transport_.close_soon(h->link);
        drop(h);
        return;
    }
    resumed_(r);  // `u` (and the bytes r.rest points into) lives until it returns
}

Gate::Result Gate::upgrade(Handshake *h, ParkedUpgrade &u, uint8_t *rest, size_t rest_len) {
    const proto::HttpRequest &req = h->parser.request();
    const IpAddr &ip = u.ip;
    const uint16_t peer_port = u.peer_port;
    const bool ip_counted = u.ip_counted, user_counted = u.user_counted;
    AuthOutcome &auth = u.auth;
    const std::string &origin = u.origin, &subprotocol = u.subprotocol;
    const PmdAgreement &pmd = u.pmd;
    const std::string answer =
        proto::switching_protocols(proto::websocket_accept(first(req, "sec-websocket-key")), subprotocol,
                                   pmd.accepted ? pmd.response : std::string());
    if (!transport_.write(h->link, reinterpret_cast<const uint8_t *>(answer.data()), answer.size())) {
        release(ip, ip_counted, auth.user_id, user_counted);
        Result r;
        r.kind = Result::Refused;
        return r;
    }

    auto c = std::make_unique<Conn>();
    c->link = h->link;
    const std::string query = strip_access_token(req.query);
    const std::string tls_subject = cfg_.tls ? tls_peer_subject(Transport::ssl(h->link)) : std::string();
    const std::string_view facts[kFactCount] = {req.path, query,        origin, subprotocol,
                                                tls_subject, auth.user_id, auth.claims_json};
    c->facts = PackedStrings<kFactCount>(facts);
    c->peer = ip;
    c->peer_port = peer_port;
    c->ip_counted = ip_counted;
    c->user_counted = user_counted;
    // The TCP peer's count goes on with the connection, which releases it
    // by its peer address: the same one unless a trusted proxy forwarded
    // (and trusted proxies are not counted).
    if (h->link_counted && h->tcp_peer == ip) {
        c->link_counted = true;
        h->link_counted = false;
    }
    c->deflate = pmd.accepted;
    c->inflate_keep_context = pmd.accepted && !pmd.client_no_context_takeover;
    c->deflate_window_bits = static_cast<uint8_t>(pmd.server_window_bits);
    c->opened_mono_ms = mono_ms();
    c->opened_unix_ms = unix_ms();
    c->times = &cfg_.heartbeat;
    c->queue_policy.store(static_cast<uint8_t>(cfg_.queue_policy), std::memory_order_relaxed);
    if (!cfg_.message_rate.unlimited()) c->more().rate = std::make_unique<MessageRateLimiter>();
    if (!cfg_.frame_rate.unlimited()) c->more().frame_rate = std::make_unique<MessageRateLimiter>();
    if (auth.exp_s > 0) {
        // Wall-clock expiry as a monotonic deadline.
        c->more().token_deadline_ms =
            token_deadline_ms(auth.exp_s, cfg_.auth.expiry_grace_ms, unix_ms(), clock_.now_ms());
    }
    registry_.add(c.get());
    metrics_.handshakes_accepted.inc();
    metrics_.handshake_seconds.observe_us(mono_us() - h->accepted_us,
                                          cfg_.tls ? metric::TransportKind::tls : metric::TransportKind::tcp);
    Conn *conn = c.release();
    Link *link = h->link;
    h->link = nullptr;
    drop(h);
    Transport::set_owner(link, static_cast<LinkOwner *>(conn));
    Transport::handshake_done(link);
    Result r;
    r.kind = Result::Opened;
    r.conn = conn;
    r.rest = rest;
    r.rest_len = rest_len;
    r.timeouts = std::move(auth.timeouts);
    return r;
}

bool Gate::authenticate(Handshake *h, const proto::HttpRequest &req, const IpAddr &tcp_peer, AuthOutcome *out,
                        Result *refused) {
    const AuthSettings &a = cfg_.auth;
    wsg_auth_request ar;
    ar.request = &req;
    std::string token;
    if (a.from_header && token.empty()) token = bearer_token(first(req, "authorization"));
    if (a.from_query && token.empty()) {
        if (auto v = proto::query_param(req.query, "access_token")) token = *v;
    }
    if (a.from_cookie && token.empty()) token = cookie_value(cookies_of(req), a.cookie_name);
    if (a.from_subprotocol && token.empty()) token = subprotocol_token(req.joined("sec-websocket-protocol"));
    ar.fields[WSG_AUTH_PATH] = req.path;
    ar.fields[WSG_AUTH_QUERY] = strip_access_token(req.query);
    ar.fields[WSG_AUTH_PEER_ADDR] = tcp_peer.to_string();
    ar.fields[WSG_AUTH_ORIGIN] = first(req, "origin");
    if (cfg_.tls) ar.fields[WSG_AUTH_TLS_SUBJECT] = tls_peer_subject(Transport::ssl(h->link));
    ar.fields[WSG_AUTH_TOKEN] = token;

    static const char kChallenge[] = "www-authenticate: Bearer realm=\"wsgate\"\r\n";
    if (a.jwt) {
        if (token.empty()) {
            metrics_.auth_failures.add(metric::AuthFailure::missing_token);
            *refused = refuse(h, &req, metric::Refusal::auth, 401, "authentication required", kChallenge, "missing token");
            return false;
        }
        JwtResult r = jwt_verify(token, *a.keys, a.policy, unix_ms() / 1000);
        if (!r.ok()) {
            const bool expired = r.error == JwtError::Expired || r.error == JwtError::NotYetValid ||
                                 r.error == JwtError::IssuedInFuture;
            metrics_.auth_failures.add(expired ? metric::AuthFailure::expired_token
                                               : metric::AuthFailure::invalid_token);
            *refused = refuse(h, &req, metric::Refusal::auth, 401, "authentication required",
                              "www-authenticate: Bearer realm=\"wsgate\", error=\"invalid_token\"\r\n",
                              std::string("invalid token: ") + jwt_error_name(r.error) + ": " + r.message);
            return false;
        }
        ar.outcome.user_id = r.user_id;
        ar.outcome.claims_json = r.claims_json;
        ar.outcome.exp_s = r.exp;
        ar.fields[WSG_AUTH_JWT_USER] = r.user_id;
        ar.fields[WSG_AUTH_JWT_CLAIMS] = r.claims_json;
    }
    if (a.callback) {
        if (!app_.on_auth.fn) {
            LogFields f;
            f["where"] = "auth";
            f["message"] = "auth.mode needs an authenticator: register one with wsg_server_on_auth";
            log_.emit(LogEvent::error, f);
            metrics_.auth_failures.add(metric::AuthFailure::no_authenticator);
            *refused = refuse(h, &req, metric::Refusal::auth, 401, "authentication required", "", "no authenticator registered");
            return false;
        }
        app_.on_auth.fn(app_.server, &ar, app_.on_auth.user);
        if (ar.verdict != wsg_auth_request::Verdict::Accept) {
            bool by_app = ar.verdict == wsg_auth_request::Verdict::Refuse;
            metrics_.auth_failures.add(by_app ? metric::AuthFailure::refused : metric::AuthFailure::undecided);
            int status = by_app ? ar.status : 401;
            std::string why = by_app ? "refused by authenticator: " + ar.reason
                                     : std::string("authenticator decided nothing");
            *refused = refuse(h, &req, metric::Refusal::auth, status, status == 403 ? "forbidden" : "authentication required",
                              status == 401 ? kChallenge : "", why);
            return false;
        }
    }
    *out = std::move(ar.outcome);
    return true;
}

}  // namespace wsgate
