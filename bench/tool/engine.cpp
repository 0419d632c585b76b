#include "engine.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace bench {

int64_t mono_ns() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

const char *mode_name(Mode m) {
    switch (m) {
    case Mode::Connect: return "connect";
    case Mode::Echo: return "echo";
    case Mode::Fanout: return "fanout";
    case Mode::Churn: return "churn";
    }
    return "?";
}

namespace {

constexpr int64_t kMs = 1000000;
constexpr int64_t kSec = 1000000000;
constexpr size_t kMaxFrame = 64u << 20;     // larger inbound frames are a protocol error
constexpr size_t kMaxHead = 16384;          // upgrade response head
constexpr size_t kPubBacklog = 16u << 20;   // publisher stops queueing past this
constexpr int64_t kQuiet = 2000 * kMs;      // fanout drain: give up after this long without deliveries
constexpr int64_t kSlowQuiet = 300 * kMs;   // fanout drain: a slow subscriber's backlog has come in
constexpr int kSlowRcvBuf = 4096;           // fanout --slow: keep the backlog in the server's queue,
constexpr int kSlowMss = 1448;              // not in socket buffers (see launch)
constexpr size_t kReadSize = 64 * 1024;
// Fanout payload: magic, publisher id (4 bytes), sequence number (8), send
// time (8), in this machine's byte order; a topic message ("WSGT") adds its
// topic's number (4), which wsgate-bench-server --topics publishes to.
const uint8_t kMagic[4] = {'W', 'S', 'G', 'B'};
const uint8_t kTopicMagic[4] = {'W', 'S', 'G', 'T'};
constexpr size_t kTopicAt = 24;

int64_t to_ns(double s) { return static_cast<int64_t>(s * 1e9); }

std::string errname(int e) {
    const char *n = strerrorname_np(e);
    return n ? n : std::to_string(e);
}

void put32(uint8_t *p, uint32_t v) { std::memcpy(p, &v, 4); }
void put64(uint8_t *p, uint64_t v) { std::memcpy(p, &v, 8); }
uint32_t get32(const uint8_t *p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}
uint64_t get64(const uint8_t *p) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}

// Sequence numbers in text payloads: 16 lowercase hex digits.
void put_hex(uint8_t *p, uint64_t v) {
    static const char d[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--, v >>= 4) p[i] = static_cast<uint8_t>(d[v & 15]);
}
bool get_hex(const uint8_t *p, uint64_t *out) {
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        int c = p[i];
        int x = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (x < 0) return false;
        v = (v << 4) | static_cast<uint64_t>(x);
    }
    *out = v;
    return true;
}

std::string tls_error(SSL *ssl, int r) {
    int e = SSL_get_error(ssl, r);
    unsigned long code = ERR_get_error();
    if (code) {
        const char *why = ERR_reason_error_string(code);
        return why ? why : "error " + std::to_string(code);
    }
    if (e == SSL_ERROR_SYSCALL) return errno ? errname(errno) : "eof";
    if (e == SSL_ERROR_ZERO_RETURN) return "closed";
    return "error " + std::to_string(e);
}

nlohmann::json hist_json(const Histogram &h) {
    nlohmann::json b = nlohmann::json::array();
    for (const auto &p : h.sparse()) b.push_back({p.first, p.second});
    return {{"b", b}, {"min", h.min()}, {"max", h.max()}, {"sum", h.sum()}};
}

void hist_from(const nlohmann::json &j, Histogram *h) {
    std::vector<std::pair<uint32_t, uint64_t>> pairs;
    for (const auto &p : j.at("b")) pairs.emplace_back(p.at(0).get<uint32_t>(), p.at(1).get<uint64_t>());
    h->add_sparse(pairs, j.at("min").get<uint64_t>(), j.at("max").get<uint64_t>(),
                  j.at("sum").get<uint64_t>());
}

}  // namespace

// ---------------------------------------------------------------- Stats

#define BENCH_COUNTERS(X)                                                                      \
    X(attempted) X(connected) X(failed) X(dropped) X(protocol_errors) X(open_at_end) X(sent)  \
    X(received) X(window_received) X(window_sent) X(bytes_sent) X(bytes_received) X(lost)     \
    X(mismatched) X(subscribers) X(publishers) X(published) X(delivered) X(window_delivered)  \
    X(duplicates) X(pub_received) X(publish_skipped) X(opened) X(window_opened)               \
    X(closed_clean) X(close_timeouts) X(pings) X(window_pings) X(slow_subscribers)          \
    X(slow_delivered) X(slow_dropped)

#define BENCH_GROUP_VECTORS(X) X(group_published) X(group_subscribers) X(group_slow)

namespace {
void add_into(std::vector<uint64_t> &to, const std::vector<uint64_t> &from) {
    if (to.size() < from.size()) to.resize(from.size());
    for (size_t i = 0; i < from.size(); i++) to[i] += from[i];
}
}  // namespace

void Stats::merge(const Stats &o) {
#define X(f) f += o.f;
    BENCH_COUNTERS(X)
#undef X
    for (const auto &kv : o.failures) failures[kv.first] += kv.second;
#define X(f) add_into(f, o.f);
    BENCH_GROUP_VECTORS(X)
#undef X
    first_connect_ns = std::min(first_connect_ns, o.first_connect_ns);
    last_open_ns = std::max(last_open_ns, o.last_open_ns);
    rtt.merge(o.rtt);
    latency.merge(o.latency);
    handshake.merge(o.handshake);
    if (latency_by_url.size() < o.latency_by_url.size()) latency_by_url.resize(o.latency_by_url.size());
    for (size_t i = 0; i < o.latency_by_url.size(); i++) latency_by_url[i].merge(o.latency_by_url[i]);
}

nlohmann::json Stats::to_json() const {
    nlohmann::json j;
#define X(f) j[#f] = f;
    BENCH_COUNTERS(X)
#undef X
    j["failures"] = failures;
#define X(f) j[#f] = f;
    BENCH_GROUP_VECTORS(X)
#undef X
    j["first_connect_ns"] = first_connect_ns;
    j["last_open_ns"] = last_open_ns;
    j["rtt"] = hist_json(rtt);
    j["latency"] = hist_json(latency);
    j["handshake"] = hist_json(handshake);
    j["latency_by_url"] = nlohmann::json::array();
    for (const Histogram &h : latency_by_url) j["latency_by_url"].push_back(hist_json(h));
    return j;
}

Stats Stats::from_json(const nlohmann::json &j) {
    Stats s;
#define X(f) s.f = j.at(#f).get<uint64_t>();
    BENCH_COUNTERS(X)
#undef X
    s.failures = j.at("failures").get<std::map<std::string, uint64_t>>();
#define X(f) s.f = j.at(#f).get<std::vector<uint64_t>>();
    BENCH_GROUP_VECTORS(X)
#undef X
    s.first_connect_ns = j.at("first_connect_ns").get<int64_t>();
    s.last_open_ns = j.at("last_open_ns").get<int64_t>();
    hist_from(j.at("rtt"), &s.rtt);
    hist_from(j.at("latency"), &s.latency);
    hist_from(j.at("handshake"), &s.handshake);
    const nlohmann::json &by_url = j.at("latency_by_url");
    s.latency_by_url.resize(by_url.size());
    for (size_t i = 0; i < by_url.size(); i++) hist_from(by_url[i], &s.latency_by_url[i]);
    return s;
}

// ---------------------------------------------------------------- Engine

Engine::Engine(const Options &opt, SSL_CTX *tls, Control *ctl, int index, int engines)
    : opt_(opt), tls_(tls), ctl_(ctl), index_(index), engines_(engines), rng_(0) {
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, 0) != sizeof seed) seed = static_cast<uint64_t>(mono_ns());
    rng_ = Rng(seed ^ (static_cast<uint64_t>(index) * 0x9e3779b97f4a7c15ull));
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    rbuf_.resize(kReadSize);

    if (opt_.mode != Mode::Churn)
        for (uint64_t i = static_cast<uint64_t>(index); i < opt_.connections; i += static_cast<uint64_t>(engines))
            client_ids_.push_back(i);
    if (opt_.mode == Mode::Fanout)
        for (uint32_t p = static_cast<uint32_t>(index); p < opt_.publishers; p += static_cast<uint32_t>(engines))
            pub_ids_.push_back(p);
    max_pending_ = std::max<uint32_t>(1, opt_.concurrency / static_cast<uint32_t>(engines));
    if (opt_.mode == Mode::Connect || opt_.mode == Mode::Churn)
        rate_ = opt_.rate > 0 ? opt_.rate / engines : 0;
    if (opt_.mode == Mode::Fanout) {
        pub_rate_ = opt_.rate / opt_.publishers;
        stats_.group_published.assign(opt_.groups(), 0);
        stats_.group_subscribers.assign(opt_.groups(), 0);
        stats_.group_slow.assign(opt_.groups(), 0);
    }
    churn_cap_ = std::max<uint64_t>(1, opt_.connections / static_cast<uint64_t>(engines));

    payload_.resize(std::max<size_t>(opt_.size, 24));
    for (size_t i = 0; i < payload_.size(); i++)
        payload_[i] = opt_.text ? static_cast<uint8_t>('a' + i % 26)
                                : static_cast<uint8_t>((i * 31 + 7) & 0xff);
}

Engine::~Engine() {
    while (head_) {
        Conn *c = head_;
        head_ = c->next;
        if (c->ssl) SSL_free(c->ssl);
        if (c->fd >= 0) ::close(c->fd);
        delete c;
    }
    for (Conn *c : graveyard_) delete c;
    if (ep_ >= 0) ::close(ep_);
}

void Engine::publish_live() {
    live.open.store(open_, std::memory_order_relaxed);
    live.sent.store(stats_.sent, std::memory_order_relaxed);
    live.received.store(stats_.received, std::memory_order_relaxed);
    live.delivered.store(stats_.delivered, std::memory_order_relaxed);
    live.failed.store(stats_.failed + stats_.dropped, std::memory_order_relaxed);
    live.opened.store(stats_.opened, std::memory_order_relaxed);
    live.published.store(stats_.published, std::memory_order_relaxed);
}

void Engine::run() {
    setup_start_ = mono_ns();
    setup_deadline_ = setup_start_ + to_ns(opt_.setup_timeout);
    std::vector<struct epoll_event> evs(512);
    while (phase_ != Phase::Finished) {
        int64_t now = mono_ns();
        tick(now);
        if (phase_ == Phase::Finished) break;
        if (now - last_scan_ >= 10 * kMs) {
            check_deadlines(now);
            last_scan_ = now;
        }
        publish_live();
        // Conns finished by tick or the deadline scan are freed before waiting.
        if (!graveyard_.empty()) {
            timed_.erase(std::remove_if(timed_.begin(), timed_.end(),
                                        [](Conn *c) { return c->st == St::Done; }),
                         timed_.end());
            for (Conn *c : graveyard_) delete c;
            graveyard_.clear();
        }
        int64_t wait = std::max<int64_t>(0, next_wake(now));
        struct timespec ts = {static_cast<time_t>(wait / kSec), static_cast<long>(wait % kSec)};
        int n = epoll_pwait2(ep_, evs.data(), static_cast<int>(evs.size()), &ts, nullptr);
        if (n < 0 && errno != EINTR) {
            std::perror("wsgate-bench: epoll_pwait2");
            break;
        }
        now = mono_ns();
        for (int i = 0; i < n; i++)
            on_event(static_cast<Conn *>(evs[static_cast<size_t>(i)].data.ptr),
                     evs[static_cast<size_t>(i)].events, now);
        if (!graveyard_.empty()) {
            timed_.erase(std::remove_if(timed_.begin(), timed_.end(),
                                        [](Conn *c) { return c->st == St::Done; }),
                         timed_.end());
            for (Conn *c : graveyard_) delete c;
            graveyard_.clear();
        }
    }
    int64_t now = mono_ns();
    while (head_) finish(head_, now);
    for (Conn *c : graveyard_) delete c;
    graveyard_.clear();
    timed_.clear();
    publish_live();
    ctl_->finished.fetch_add(1);
}

void Engine::tick(int64_t now) {
    switch (phase_) {
    case Phase::Setup: {
        size_t total = client_ids_.size() + pub_ids_.size();
        size_t launched = launched_clients_ + launched_pubs_;
        bool give_up = now >= setup_deadline_ || ctl_->stop.load(std::memory_order_relaxed);
        if (!give_up) {
            uint64_t allowed = rate_ > 0 ? static_cast<uint64_t>(static_cast<double>(now - setup_start_) * rate_ / 1e9) + 1
                                         : UINT64_MAX;
            while (launched < total && launched < allowed && pending_ < max_pending_) {
                if (launched_clients_ < client_ids_.size())
                    launch(Role::Client, client_ids_[launched_clients_++], now);
                else
                    launch(Role::Publisher, pub_ids_[launched_pubs_++], now);
                launched++;
            }
        }
        if ((launched == total && pending_ == 0) || give_up) {
            if (launched < total) {
                const char *why = now >= setup_deadline_ ? "setup timeout (never attempted)"
                                                         : "interrupted (never attempted)";
                uint64_t left = total - launched;
                stats_.attempted += left;
                stats_.failed += left;
                stats_.failures[why] += left;
                launched_clients_ = client_ids_.size();
                launched_pubs_ = pub_ids_.size();
            }
            // Handshakes still under way at the deadline fail.
            for (Conn *c = head_, *next; c; c = next) {
                next = c->next;
                if (c->st < St::Open) fail(c, "setup timeout", now);
            }
            phase_ = Phase::WaitGo;
            ctl_->ready.fetch_add(1);
        }
        break;
    }
    case Phase::WaitGo: {
        int64_t go = ctl_->go_ns.load();
        if (go && now >= go) start_run(go);
        break;
    }
    case Phase::Run:
        if (now >= end_ || ctl_->stop.load(std::memory_order_relaxed)) {
            if (now < end_) end_ = now;  // interrupted: the window ends here
            if (opt_.mode == Mode::Connect) stats_.open_at_end = open_;
            phase_ = Phase::Drain;
            int64_t drain = to_ns(opt_.drain_timeout);
            if (opt_.mode == Mode::Churn)
                drain = std::max(drain, to_ns(opt_.connect_timeout + opt_.close_timeout) + 2 * kSec);
            drain_deadline_ = now + drain;
            last_delivery_ = std::max(last_delivery_, now);
            if (slow_paused_) {
                // The slow subscribers read again, so that what the server
                // kept for them comes in (counted apart) and they close cleanly.
                pause_slow(false);
                last_slow_delivery_ = now;
            }
            publish_live();  // the final publish count, before saying so
            ctl_->past_run.fetch_add(1);
            break;
        }
        if (opt_.mode == Mode::Fanout && opt_.slow && !slow_paused_ && now >= measure_from_) pause_slow(true);
        if (opt_.mode == Mode::Fanout) {
            uint64_t due = static_cast<uint64_t>(static_cast<double>(now - go_) * pub_rate_ / 1e9) + 1;
            std::vector<Conn *> pubs = pubs_;  // flush() may finish one
            for (Conn *c : pubs) {
                if (c->st != St::Open) continue;
                if (c->send_seq < due && c->out.size() - c->out_off > kPubBacklog) {
                    // The server stopped reading: do not queue without bound.
                    stats_.publish_skipped += due - c->send_seq;
                    c->send_seq = due;
                    continue;
                }
                while (c->send_seq < due) publish(c, now);
                flush(c);
            }
        } else if (opt_.mode == Mode::Churn) {
            uint64_t due = static_cast<uint64_t>(static_cast<double>(now - go_) * rate_ / 1e9) + 1;
            while (churn_seq_ < due && live_count_ < churn_cap_) {
                launch(Role::Churn, churn_seq_ * static_cast<uint64_t>(engines_) + static_cast<uint64_t>(index_), now);
                churn_seq_++;
            }
            // Behind schedule because the cap was reached: do not burst later.
            if (churn_seq_ < due && live_count_ >= churn_cap_) churn_seq_ = due;
        }
        break;
    case Phase::Drain: {
        bool done = true;
        if (opt_.mode == Mode::Echo) done = echo_inflight_ == 0;
        if (opt_.mode == Mode::Fanout) done = fanout_drained(now);
        if (opt_.mode == Mode::Churn) done = live_count_ == 0;
        if (done || now >= drain_deadline_) begin_closing(now);
        break;
    }
    case Phase::Closing:
        if (live_count_ == 0 || now >= close_deadline_) {
            for (Conn *c = head_, *next; c; c = next) {
                next = c->next;
                stats_.close_timeouts++;
                finish(c, now);
            }
            phase_ = Phase::Finished;
        }
        break;
    case Phase::Finished: break;
    }
}

int64_t Engine::next_wake(int64_t now) const {
    int64_t w = 10 * kMs;
    switch (phase_) {
    case Phase::Setup:
        if (rate_ > 0 && launched_clients_ + launched_pubs_ < client_ids_.size() + pub_ids_.size()) {
            double launched = static_cast<double>(launched_clients_ + launched_pubs_);
            int64_t next = setup_start_ + static_cast<int64_t>(launched * 1e9 / rate_);
            w = std::min(w, next - now);
        }
        break;
    case Phase::WaitGo: {
        int64_t go = ctl_->go_ns.load();
        w = go ? std::min(w, go - now) : 2 * kMs;
        break;
    }
    case Phase::Run:
        w = std::min(w, end_ - now);
        if (opt_.mode == Mode::Fanout && pub_rate_ > 0) {
            for (const Conn *c : pubs_) {
                if (c->st != St::Open) continue;
                int64_t next = go_ + static_cast<int64_t>(static_cast<double>(c->send_seq) * 1e9 / pub_rate_);
                w = std::min(w, next - now);
            }
        } else if (opt_.mode == Mode::Churn && rate_ > 0 && live_count_ < churn_cap_) {
            int64_t next = go_ + static_cast<int64_t>(static_cast<double>(churn_seq_) * 1e9 / rate_);
            w = std::min(w, next - now);
        }
        break;
    default: break;
    }
    return w;
}

void Engine::start_run(int64_t go) {
    go_ = go;
    measure_from_ = go + to_ns(opt_.warmup);
    end_ = go + to_ns(opt_.duration);
    last_delivery_ = end_;
    phase_ = Phase::Run;
    int64_t now = mono_ns();
    if (opt_.mode == Mode::Echo) {
        for (Conn *c = head_, *next; c; c = next) {
            next = c->next;
            if (c->st != St::Open || c->role != Role::Client) continue;
            for (uint32_t i = 0; i < opt_.window; i++) echo_send(c, now);
            flush(c);
        }
    }
}

// Done when every subscriber has every message published to its topic in the
// run (the counts come from the coordinator) and the slow ones' backlog has
// come in, or when deliveries stopped coming (a subscriber was lost, or the
// server dropped some).
bool Engine::fanout_drained(int64_t now) {
    if (!expected_known_ && ctl_->expect_ready.load(std::memory_order_acquire)) {
        const std::vector<uint64_t> &published = ctl_->expected_groups;
        expected_ = 0;
        for (size_t g = 0; g < published.size() && g < stats_.group_subscribers.size(); g++)
            expected_ += published[g] * stats_.group_subscribers[g];
        expected_known_ = true;
    }
    bool slow_done = stats_.slow_subscribers == 0 || now - last_slow_delivery_ >= kSlowQuiet;
    return (expected_known_ && stats_.delivered >= expected_ && slow_done) || now - last_delivery_ >= kQuiet;
}

void Engine::pause_slow(bool on) {
    slow_paused_ = on;
    for (Conn *c = head_; c; c = c->next) {
        if (!c->slow || c->st != St::Open || c->paused == on) continue;
        c->paused = on;
        struct epoll_event ev {};
        ev.events = (on ? 0u : EPOLLIN) | (c->want_out ? EPOLLOUT : 0u);
        ev.data.ptr = c;
        epoll_ctl(ep_, EPOLL_CTL_MOD, c->fd, &ev);
    }
}

void Engine::begin_closing(int64_t now) {
    for (Conn *c = head_, *next; c; c = next) {
        next = c->next;
        if (c->inflight) {
            stats_.lost += c->inflight;
            echo_inflight_ -= c->inflight;
            c->inflight = 0;
        }
        if (c->st == St::Open)
            send_close(c, 1000, now);
        else if (c->st < St::Open)
            fail(c, "still connecting at the end", now);
    }
    close_deadline_ = now + to_ns(opt_.close_timeout);
    phase_ = Phase::Closing;
}

// ---------------------------------------------------------------- connections

void Engine::arm(Conn *c, int64_t deadline) {
    c->deadline = deadline;
    if (!c->timed) {
        c->timed = true;
        timed_.push_back(c);
    }
}

void Engine::check_deadlines(int64_t now) {
    for (size_t i = 0; i < timed_.size();) {
        Conn *c = timed_[i];
        if (c->st == St::Done || c->deadline == 0) {
            c->timed = false;
            timed_[i] = timed_.back();
            timed_.pop_back();
            continue;
        }
        if (now >= c->deadline) {
            if (c->st == St::Connecting)
                fail(c, "connect timeout", now);
            else if (c->st == St::Tls)
                fail(c, "tls handshake timeout", now);
            else if (c->st == St::Upgrading)
                fail(c, "upgrade timeout", now);
            else if (c->st == St::Closing) {
                stats_.close_timeouts++;
                finish(c, now);
            } else {
                c->deadline = 0;
            }
            continue;  // re-examined: now Done or disarmed
        }
        i++;
    }
}

void Engine::launch(Role role, uint64_t index, int64_t now) {
    auto *c = new Conn();
    c->role = role;
    c->index = index;
    c->pub_id = static_cast<uint32_t>(index);
    if (role == Role::Client && opt_.mode == Mode::Fanout) {
        // Subscribers go round the topics; the last --slow of them are the
        // slow ones (so they fall on different topics and engines).
        c->group = static_cast<uint32_t>(index % opt_.groups());
        c->slow = index >= opt_.connections - opt_.slow;
        c->target = static_cast<uint32_t>(index % opt_.urls.size());
    }
    c->t_start = now;
    c->next = head_;
    if (head_) head_->prev = c;
    head_ = c;
    live_count_++;
    pending_++;
    stats_.attempted++;
    stats_.first_connect_ns = std::min(stats_.first_connect_ns, now);
    arm(c, now + to_ns(opt_.connect_timeout));

    const Target &t = target_of(c);
    c->fd = socket(t.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        fail(c, "socket: " + errname(errno), now);
        return;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (c->slow) {
        // Set before connect(), so that what a slow subscriber does not read
        // piles up in the server's queue, where its delivery policy acts,
        // rather than in socket buffers: a small receive window, and an
        // Ethernet-sized MSS announced in the SYN (loopback's 64 KiB MSS lets
        // the server's kernel grow its send buffer to megabytes).
        int rcv = kSlowRcvBuf, mss = kSlowMss;
        setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
        setsockopt(c->fd, IPPROTO_TCP, TCP_MAXSEG, &mss, sizeof mss);
    }
    if (!opt_.sources.empty()) {
        const struct sockaddr_storage &src = opt_.sources[index % opt_.sources.size()];
        // Pick the port at connect(), per destination, not at bind().
        setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        socklen_t sl = src.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
        if (bind(c->fd, reinterpret_cast<const struct sockaddr *>(&src), sl) != 0) {
            fail(c, "bind: " + errname(errno), now);
            return;
        }
    }
    struct epoll_event ev {};
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.ptr = c;
    if (epoll_ctl(ep_, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        fail(c, "epoll_ctl: " + errname(errno), now);
        return;
    }
    c->want_out = true;
    if (connect(c->fd, reinterpret_cast<const struct sockaddr *>(&t.addr), t.addrlen) == 0) {
        on_connected(c, now);
    } else if (errno != EINPROGRESS) {
        fail(c, "connect: " + errname(errno), now);
    }
}

void Engine::on_event(Conn *c, uint32_t events, int64_t now) {
    if (c->st == St::Done) return;
    if (c->st == St::Connecting) {
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
            fail(c, "connect: " + errname(err), now);
            return;
        }
        on_connected(c, now);
        return;
    }
    if (c->st == St::Tls) {
        tls_handshake(c, now);
        return;
    }
    if ((events & EPOLLOUT) && !flush(c)) return;
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)) read_some(c, now);
}

const Target &Engine::target_of(const Conn *c) const {
    if (c->role == Role::Publisher) return opt_.pub_url;
    if (opt_.mode == Mode::Fanout) return opt_.urls[c->target];
    return opt_.url;
}

void Engine::on_connected(Conn *c, int64_t now) {
    const Target &t = target_of(c);
    if (!t.tls) {
        send_upgrade(c);
        return;
    }
    c->ssl = SSL_new(tls_);
    if (!c->ssl) {
        fail(c, "tls: SSL_new failed", now);
        return;
    }
    SSL_set_fd(c->ssl, c->fd);
    SSL_set_connect_state(c->ssl);
    if (!t.host_is_ip) SSL_set_tlsext_host_name(c->ssl, t.host.c_str());
    c->st = St::Tls;
    tls_handshake(c, now);
}

void Engine::tls_handshake(Conn *c, int64_t now) {
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        send_upgrade(c);
        return;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
        set_out(c, false);
        return;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        set_out(c, true);
        return;
    }
    fail(c, "tls: " + tls_error(c->ssl, r), now);
}

void Engine::send_upgrade(Conn *c) {
    c->st = St::Upgrading;
    uint64_t a = rng_.next(), b = rng_.next();
    std::memcpy(c->key, &a, 8);
    std::memcpy(c->key + 8, &b, 8);
    if (c->role == Role::Client && opt_.mode == Mode::Fanout && opt_.topics) {
        c->out += opt_.topic_heads_a[c->target];
        c->out += std::to_string(c->group);
        c->out += opt_.topic_heads_b[c->target];
    } else if (c->role == Role::Client && opt_.mode == Mode::Fanout) {
        c->out += opt_.sub_heads[c->target];
    } else {
        const std::string &head = c->role == Role::Publisher ? opt_.pub_request_head : opt_.request_head;
        c->out.reserve(head.size() + 52);
        c->out += head;
    }
    c->out += "Sec-WebSocket-Key: ";
    c->out += base64(c->key, 16);
    c->out += "\r\n\r\n";
    flush(c);
}

bool Engine::on_handshake_bytes(Conn *c, int64_t now) {
    size_t end = c->in.find("\r\n\r\n");
    if (end == std::string::npos) {
        if (c->in.size() > kMaxHead) {
            fail(c, "upgrade: response head too long", now);
            return false;
        }
        return true;
    }
    std::string head = c->in.substr(0, end);
    std::string rest = c->in.substr(end + 4);
    std::string().swap(c->in);
    int status = 0;
    if (std::sscanf(head.c_str(), "HTTP/1.%*d %d", &status) != 1) {
        fail(c, "upgrade: not an HTTP response", now);
        return false;
    }
    if (status != 101) {
        fail(c, "http " + std::to_string(status), now);
        return false;
    }
    bool found;
    std::string accept = header_value(head, "sec-websocket-accept", &found);
    if (!found || accept != accept_for(base64(c->key, 16))) {
        fail(c, "upgrade: bad Sec-WebSocket-Accept", now);
        return false;
    }
    on_open(c, now);
    if (c->st == St::Done) return false;
    if (!rest.empty()) return process(c, reinterpret_cast<const uint8_t *>(rest.data()), rest.size(), now);
    return true;
}

void Engine::on_open(Conn *c, int64_t now) {
    c->st = St::Open;
    c->deadline = 0;
    pending_--;
    open_++;
    c->counted_open = true;
    stats_.connected++;
    stats_.handshake.record(static_cast<uint64_t>(now - c->t_start));
    stats_.last_open_ns = std::max(stats_.last_open_ns, now);
    if (c->out_off >= c->out.size()) std::string().swap(c->out);
    switch (c->role) {
    case Role::Client:
        if (opt_.mode == Mode::Echo) c->ts.resize(opt_.window);
        if (opt_.mode == Mode::Fanout) {
            c->next_pub_seq.assign(opt_.publishers, 0);
            if (c->slow) {
                stats_.slow_subscribers++;
                stats_.group_slow[c->group]++;
            } else {
                stats_.subscribers++;
                stats_.group_subscribers[c->group]++;
            }
        }
        break;
    case Role::Publisher:
        stats_.publishers++;
        pubs_.push_back(c);
        break;
    case Role::Churn:
        stats_.opened++;
        if (now >= go_ && now < end_) stats_.window_opened++;
        c->ts.resize(1);
        c->msgs_left = opt_.messages;
        if (c->msgs_left) {
            echo_send(c, now);
            flush(c);
        } else {
            send_close(c, 1000, now);
        }
        break;
    }
}

bool Engine::read_some(Conn *c, int64_t now) {
    uint8_t *buf = rbuf_.data();
    if (c->ssl) {
        for (;;) {
            ERR_clear_error();
            int n = SSL_read(c->ssl, buf, static_cast<int>(rbuf_.size()));
            if (n > 0) {
                stats_.bytes_received += static_cast<uint64_t>(n);
                bool ok = c->st == St::Upgrading ? (c->in.append(reinterpret_cast<char *>(buf), static_cast<size_t>(n)),
                                                     on_handshake_bytes(c, now))
                                                  : process(c, buf, static_cast<size_t>(n), now);
                if (!ok || c->st == St::Done) return false;
                continue;
            }
            int e = SSL_get_error(c->ssl, n);
            if (e == SSL_ERROR_WANT_READ) break;
            if (e == SSL_ERROR_WANT_WRITE) {
                set_out(c, true);
                break;
            }
            if (c->close_received || c->st == St::Closing) {
                finish(c, now);
            } else {
                fail(c, std::string(c->st == St::Open ? "lost: " : "upgrade: ") +
                            (e == SSL_ERROR_ZERO_RETURN ? "eof" : "tls " + tls_error(c->ssl, n)),
                     now);
            }
            return false;
        }
    } else {
        ssize_t n = recv(c->fd, buf, rbuf_.size(), 0);
        if (n > 0) {
            stats_.bytes_received += static_cast<uint64_t>(n);
            bool ok = c->st == St::Upgrading ? (c->in.append(reinterpret_cast<char *>(buf), static_cast<size_t>(n)),
                                                 on_handshake_bytes(c, now))
                                              : process(c, buf, static_cast<size_t>(n), now);
            if (!ok || c->st == St::Done) return false;
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            int err = n == 0 ? 0 : errno;
            if (c->close_received || c->st == St::Closing) {
                finish(c, now);
            } else {
                fail(c, std::string(c->st == St::Open ? "lost: " : "upgrade: ") +
                            (err ? errname(err) : "eof"),
                     now);
            }
            return false;
        }
    }
    if (c->out_off < c->out.size()) return flush(c);
    return true;
}

bool Engine::process(Conn *c, const uint8_t *data, size_t len, int64_t now) {
    const uint8_t *p = data;
    size_t n = len;
    bool owned = !c->in.empty();
    if (owned) {
        c->in.append(reinterpret_cast<const char *>(data), len);
        p = reinterpret_cast<const uint8_t *>(c->in.data());
        n = c->in.size();
    }
    size_t pos = 0;
    while (n - pos >= 2) {
        const uint8_t *f = p + pos;
        bool fin = f[0] & 0x80;
        int op = f[0] & 0x0f;
        if (f[0] & 0x70) {
            stats_.protocol_errors++;
            fail(c, "protocol: reserved bits set", now);
            return false;
        }
        if (f[1] & 0x80) {
            stats_.protocol_errors++;
            fail(c, "protocol: masked server frame", now);
            return false;
        }
        size_t h = 2;
        uint64_t plen = f[1] & 0x7f;
        if (plen == 126) {
            if (n - pos < 4) break;
            plen = (static_cast<uint64_t>(f[2]) << 8) | f[3];
            h = 4;
        } else if (plen == 127) {
            if (n - pos < 10) break;
            plen = 0;
            for (int i = 0; i < 8; i++) plen = (plen << 8) | f[2 + i];
            h = 10;
        }
        if (plen > kMaxFrame) {
            stats_.protocol_errors++;
            fail(c, "protocol: frame larger than 64 MiB", now);
            return false;
        }
        if (n - pos < h + plen) break;
        if (!on_frame(c, fin, op, f + h, static_cast<size_t>(plen), now)) return false;
        pos += h + static_cast<size_t>(plen);
        if (c->st == St::Done) return false;
    }
    if (owned) {
        c->in.erase(0, pos);
        if (c->in.empty() && c->in.capacity() > kReadSize) std::string().swap(c->in);
    } else if (pos < n) {
        c->in.assign(reinterpret_cast<const char *>(p + pos), n - pos);
    }
    return true;
}

bool Engine::on_frame(Conn *c, bool fin, int op, const uint8_t *p, size_t n, int64_t now) {
    switch (op) {
    case 0x8: {  // close
        int code = n >= 2 ? (p[0] << 8) | p[1] : 1005;
        c->close_received = true;
        if (!c->close_sent) {
            // The server ended a connection we did not ask to end (a slow
            // subscriber's end is its delivery policy at work: counted apart).
            (c->slow ? stats_.slow_dropped : stats_.dropped)++;
            stats_.fail((c->slow ? "slow subscriber closed by server (" : "closed by server (") +
                        std::to_string(code) + ")");
            if (c->inflight) {
                stats_.lost += c->inflight;
                echo_inflight_ -= c->inflight;
                c->inflight = 0;
            }
            if (c->counted_open) {
                c->counted_open = false;
                open_--;
            }
            uint8_t reply[2] = {static_cast<uint8_t>(code >> 8), static_cast<uint8_t>(code)};
            append_frame(c->out, 0x8, reply, code == 1005 ? 0 : 2, mask());
            c->close_sent = true;
            c->st = St::Closing;
            arm(c, now + to_ns(opt_.close_timeout));
            return flush(c);
        }
        // Our close was answered. The server closes TCP first (RFC 6455
        // 7.1.1), so the TIME_WAIT lands on its side: wait for the EOF.
        stats_.closed_clean++;
        return true;
    }
    case 0x9:  // ping
        stats_.pings++;
        if (phase_ == Phase::Run && now < end_) stats_.window_pings++;
        if (n > 125) {
            stats_.protocol_errors++;
            fail(c, "protocol: ping longer than 125 bytes", now);
            return false;
        }
        if (!c->close_sent) append_frame(c->out, 0xA, p, n, mask());
        return true;
    case 0xA: return true;  // pong
    case 0x1:
    case 0x2:
        if (c->frag_op) {
            stats_.protocol_errors++;
            fail(c, "protocol: new message inside a fragmented one", now);
            return false;
        }
        if (fin) {
            on_message(c, p, n, now);
        } else {
            c->frag_op = static_cast<uint8_t>(op);
            c->frag.assign(reinterpret_cast<const char *>(p), n);
        }
        return true;
    case 0x0:
        if (!c->frag_op) {
            stats_.protocol_errors++;
            fail(c, "protocol: continuation without a message", now);
            return false;
        }
        c->frag.append(reinterpret_cast<const char *>(p), n);
        if (fin) {
            std::string msg;
            msg.swap(c->frag);
            c->frag_op = 0;
            on_message(c, reinterpret_cast<const uint8_t *>(msg.data()), msg.size(), now);
        }
        return true;
    default:
        stats_.protocol_errors++;
        fail(c, "protocol: reserved opcode " + std::to_string(op), now);
        return false;
    }
}

void Engine::on_message(Conn *c, const uint8_t *p, size_t n, int64_t now) {
    if (c->close_sent) return;  // late data after our close
    if (c->role == Role::Publisher) {
        stats_.pub_received++;
        return;
    }
    if (opt_.mode == Mode::Fanout) {
        stats_.received++;
        // A message of another topic (or a broadcast where topics were
        // asked for) is as wrong as a damaged one.
        bool ok = opt_.topics ? n >= kTopicAt + 4 && std::memcmp(p, kTopicMagic, 4) == 0 &&
                                    get32(p + kTopicAt) == c->group
                              : n >= 24 && std::memcmp(p, kMagic, 4) == 0;
        uint32_t pub = ok ? get32(p + 4) : 0;
        if (!ok || pub >= c->next_pub_seq.size()) {
            stats_.mismatched++;
            return;
        }
        uint64_t seq = get64(p + 8);
        int64_t sent_at = static_cast<int64_t>(get64(p + 16));
        if (seq < c->next_pub_seq[pub]) {
            stats_.duplicates++;
            return;
        }
        c->next_pub_seq[pub] = seq + 1;
        if (c->slow) {
            stats_.slow_delivered++;
            last_slow_delivery_ = now;
            return;
        }
        stats_.delivered++;
        if (now >= measure_from_ && now < end_) stats_.window_delivered++;
        // Latency of the messages published after the warm-up.
        if (sent_at >= measure_from_) {
            uint64_t took = static_cast<uint64_t>(std::max<int64_t>(0, now - sent_at));
            stats_.latency.record(took);
            if (opt_.urls.size() > 1) {
                if (stats_.latency_by_url.size() < opt_.urls.size()) stats_.latency_by_url.resize(opt_.urls.size());
                stats_.latency_by_url[c->target].record(took);
            }
        }
        last_delivery_ = now;
        return;
    }
    if (opt_.mode == Mode::Connect) {
        stats_.received++;
        return;
    }
    // Echo and churn: the reply to our oldest message in flight.
    if (c->inflight == 0) {
        stats_.received++;
        stats_.mismatched++;
        return;
    }
    bool ok = n == opt_.size;
    if (ok) {
        uint64_t seq = 0;
        if (!opt_.text && n >= 8)
            ok = get64(p) == c->recv_seq;
        else if (opt_.text && n >= 16)
            ok = get_hex(p, &seq) && seq == c->recv_seq;
    }
    if (!ok) stats_.mismatched++;
    size_t w = c->ts.size();
    int64_t t0 = c->ts[c->recv_seq % w];
    c->recv_seq++;
    c->inflight--;
    echo_inflight_--;
    stats_.received++;
    if (phase_ == Phase::Run && now >= measure_from_ && now < end_) {
        stats_.rtt.record(static_cast<uint64_t>(now - t0));
        stats_.window_received++;
    }
    if (c->role == Role::Churn) {
        if (phase_ != Phase::Run && phase_ != Phase::Drain) return;
        if (--c->msgs_left > 0)
            echo_send(c, now);
        else
            send_close(c, 1000, now);
        return;
    }
    if (phase_ == Phase::Run && now < end_ && !ctl_->stop.load(std::memory_order_relaxed))
        echo_send(c, now);
}

void Engine::echo_send(Conn *c, int64_t now) {
    uint64_t seq = c->send_seq++;
    size_t n = opt_.size;
    if (!opt_.text && n >= 8)
        put64(payload_.data(), seq);
    else if (opt_.text && n >= 16)
        put_hex(payload_.data(), seq);
    append_frame(c->out, opt_.text ? 0x1 : 0x2, payload_.data(), n, mask());
    c->ts[seq % c->ts.size()] = now;
    c->inflight++;
    echo_inflight_++;
    stats_.sent++;
    stats_.bytes_sent += n;
    if (phase_ == Phase::Run && now >= measure_from_ && now < end_) stats_.window_sent++;
}

void Engine::publish(Conn *c, int64_t now) {
    uint8_t *p = payload_.data();
    // Together the publishers go round the topics in turn: message s of
    // publisher k goes to topic (k + s * publishers) mod topics.
    uint32_t group = static_cast<uint32_t>(
        (c->pub_id + c->send_seq * opt_.publishers) % opt_.groups());
    std::memcpy(p, opt_.topics ? kTopicMagic : kMagic, 4);
    put32(p + 4, c->pub_id);
    put64(p + 8, c->send_seq++);
    put64(p + 16, static_cast<uint64_t>(now));
    if (opt_.topics) put32(p + kTopicAt, group);
    stats_.group_published[group]++;
    append_frame(c->out, 0x2, p, opt_.size, mask());
    stats_.published++;
    stats_.sent++;
    stats_.bytes_sent += opt_.size;
}

void Engine::send_close(Conn *c, int code, int64_t now) {
    if (c->close_sent || c->st == St::Done) return;
    uint8_t payload[2] = {static_cast<uint8_t>(code >> 8), static_cast<uint8_t>(code)};
    append_frame(c->out, 0x8, payload, 2, mask());
    c->close_sent = true;
    if (c->counted_open) {
        c->counted_open = false;
        open_--;
    }
    c->st = St::Closing;
    arm(c, now + to_ns(opt_.close_timeout));
    flush(c);
}

bool Engine::flush(Conn *c) {
    while (c->out_off < c->out.size()) {
        size_t len = c->out.size() - c->out_off;
        const char *p = c->out.data() + c->out_off;
        if (c->ssl) {
            ERR_clear_error();
            int n = SSL_write(c->ssl, p, static_cast<int>(std::min<size_t>(len, 1u << 30)));
            if (n > 0) {
                c->out_off += static_cast<size_t>(n);
                continue;
            }
            int e = SSL_get_error(c->ssl, n);
            if (e == SSL_ERROR_WANT_WRITE) {
                set_out(c, true);
                return true;
            }
            if (e == SSL_ERROR_WANT_READ) return true;
            fail(c, "lost: tls write " + tls_error(c->ssl, n), mono_ns());
            return false;
        }
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += static_cast<size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) {
            set_out(c, true);
            return true;
        }
        if (c->close_received) {
            finish(c, mono_ns());
        } else {
            fail(c, "lost: " + errname(n < 0 ? errno : EPIPE), mono_ns());
        }
        return false;
    }
    c->out.clear();
    c->out_off = 0;
    if (c->out.capacity() > (1u << 20)) std::string().swap(c->out);
    if (c->st != St::Connecting && c->st != St::Tls) set_out(c, false);
    return true;
}

void Engine::set_out(Conn *c, bool on) {
    if (c->want_out == on || c->fd < 0) return;
    struct epoll_event ev {};
    ev.events = (c->paused ? 0u : EPOLLIN) | (on ? EPOLLOUT : 0u);
    ev.data.ptr = c;
    epoll_ctl(ep_, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = on;
}

void Engine::fail(Conn *c, const std::string &why, int64_t now) {
    if (c->st == St::Done) return;
    if (c->st < St::Open) {
        stats_.failed++;
        stats_.fail(why);
    } else if (!c->close_sent && c->slow) {
        stats_.slow_dropped++;
        stats_.fail("slow subscriber " + why);
    } else {
        if (!c->close_sent) stats_.dropped++;
        stats_.fail(why);
    }
    finish(c, now);
}

void Engine::finish(Conn *c, int64_t now) {
    (void)now;
    if (c->st == St::Done) return;
    if (c->st < St::Open) pending_--;
    if (c->counted_open) {
        c->counted_open = false;
        open_--;
    }
    if (c->inflight) {
        stats_.lost += c->inflight;
        echo_inflight_ -= c->inflight;
        c->inflight = 0;
    }
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = nullptr;
    }
    if (c->fd >= 0) {
        ::close(c->fd);
        c->fd = -1;
    }
    c->st = St::Done;
    if (c->role == Role::Publisher) pubs_.erase(std::remove(pubs_.begin(), pubs_.end(), c), pubs_.end());
    if (c->prev)
        c->prev->next = c->next;
    else
        head_ = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = nullptr;
    live_count_--;
    graveyard_.push_back(c);
}

}  // namespace bench
