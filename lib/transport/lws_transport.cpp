// The transport on libwebsockets 4.1.6: every accepted socket is adopted in
// lws' raw-skt role (LWS_SERVER_OPTION_ADOPT_APPLY_LISTEN_ACCEPT_CONFIG), so
// lws carries bytes (and TLS) and wsgate speaks HTTP and WebSocket itself.
// The traps this avoids are in LWS-NOTES (raw-skt transport): ALPN http/1.1
// only, lws' TLS handshake timeout cleared after the upgrade, libev for an
// O(ready) loop, lws' logging kept at errors.
//
// Accepting, in lws 4.1.6 (lib/roles/listen/ops-listen.c,
// rops_handle_POLLIN_listen): lws calls accept() itself. After a success,
// LWS_CALLBACK_FILTER_NETWORK_CONNECTION runs before any wsi exists, and a
// nonzero answer makes lws close the socket: on_accept applies the
// connection limits there. A failure other than EAGAIN is only logged,
// `accept: errno N` at LLL_ERR, and the handler returns with the connection
// still queued and the listener still armed for POLLIN (lws disarms its
// listeners only when its own fd table is full, lws_accept_modulation), so
// the loop wakes again at once: with EMFILE a busy loop writing that line on
// every turn. No callback reports it, and no public call disarms a listener
// (lws_accept_modulation is internal; the listener's wsi is seen only in the
// filter callback, after a success). What is done from outside: the log line
// is caught in our log hook (never logged as such), and the queued
// connections are accepted and closed with a descriptor kept in reserve
// (shed_pending), which empties the queue and ends the loop.
#include "transport/transport.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libwebsockets.h>
#include <ev.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace wsgate {
namespace {

const char kProtocolName[] = "wsgate";
const char kMetricsProtocolName[] = "wsgate-metrics";

bool is_ipv4_literal(const std::string &host) {
    unsigned char buf[4];
    return inet_pton(AF_INET, host.c_str(), buf) == 1;
}

// Tries to bind host:port the way lws will. "" when it can be bound, else a
// message saying why: lws_create_context() does not say why it failed.
std::string probe_bind(const std::string &host, int port) {
    std::string where = (host.empty() ? std::string("*") : host) + ":" + std::to_string(port);
    struct sockaddr_storage ss {};
    socklen_t sl;
    int family;
    if (host.empty() || !is_ipv4_literal(host)) {
        auto *s6 = reinterpret_cast<struct sockaddr_in6 *>(&ss);
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(static_cast<uint16_t>(port));
        if (!host.empty() && inet_pton(AF_INET6, host.c_str(), &s6->sin6_addr) != 1)
            return "cannot listen on " + where + ": listen.host is not an IPv4 or IPv6 address";
        sl = sizeof *s6;
        family = AF_INET6;
    } else {
        auto *sin = reinterpret_cast<struct sockaddr_in *>(&ss);
        sin->sin_family = AF_INET;
        sin->sin_port = htons(static_cast<uint16_t>(port));
        inet_pton(AF_INET, host.c_str(), &sin->sin_addr);
        sl = sizeof *sin;
        family = AF_INET;
    }
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return "cannot listen on " + where + ": socket: " + std::strerror(errno);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    std::string why;
    if (bind(fd, reinterpret_cast<struct sockaddr *>(&ss), sl) != 0) why = std::strerror(errno);
    ::close(fd);
    if (why.empty()) return {};
    return "cannot listen on " + where + ": " + why +
           " (pick another listen.port, or 0 for an ephemeral one)";
}

// The listening socket lws created for `port`: lws has no call that gives
// it (or its wsi) before a first connection is accepted, and a failed accept
// must be handled before any succeeded. Found among this process' open
// descriptors: a socket that listens on that port.
int find_listen_fd(int port) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int found = -1;
    const int self = dirfd(d);
    while (struct dirent *e = readdir(d)) {
        char *end;
        long fd = std::strtol(e->d_name, &end, 10);
        if (*end || end == e->d_name || fd == self) continue;
        int listening = 0;
        socklen_t ol = sizeof listening;
        if (getsockopt(static_cast<int>(fd), SOL_SOCKET, SO_ACCEPTCONN, &listening, &ol) != 0 || !listening)
            continue;
        struct sockaddr_storage ss {};
        socklen_t sl = sizeof ss;
        if (getsockname(static_cast<int>(fd), reinterpret_cast<struct sockaddr *>(&ss), &sl) != 0) continue;
        int p = ss.ss_family == AF_INET    ? ntohs(reinterpret_cast<struct sockaddr_in *>(&ss)->sin_port)
                : ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<struct sockaddr_in6 *>(&ss)->sin6_port)
                                           : -1;
        if (p == port) {
            found = static_cast<int>(fd);
            break;
        }
    }
    closedir(d);
    return found;
}

int open_reserve_fd() { return ::open("/dev/null", O_RDONLY | O_CLOEXEC); }

// Failures of accept() that come from a shortage of descriptors or kernel
// memory: the connection stays queued, so the listener stays readable.
bool is_shortage(int err) { return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM; }

struct lws *wsi_of(Link *link) { return reinterpret_cast<struct lws *>(link); }
Link *link_of(struct lws *wsi) { return reinterpret_cast<Link *>(wsi); }

// Where lws' log lines go (a transport). A function pointer, not a virtual
// call: lines come when descriptors have run out, and UBSan's first check of
// a virtual call needs a pipe (it reported a false "invalid vptr" there).
struct LogSink {
    void (*on_line)(LogSink *sink, const std::string &line) = nullptr;
};

}  // namespace

struct Transport::Timer::Impl {
    // lws hands the sul's address back; the node (standard layout) leads to us.
    struct Node {
        lws_sorted_usec_list_t sul;
        Impl *owner;
    } node{};
    std::function<void()> fn;
};

Transport::Timer::Timer() : impl_(new Impl()) {}
Transport::Timer::~Timer() = default;

struct Transport::Impl : LogSink {
    TransportEvents *events;
    struct lws_protocols protocols[2];
    struct lws_protocols metrics_protocols[2];
    struct lws_context *ctx = nullptr;
    struct lws_vhost *vhost = nullptr;
    struct lws_vhost *metrics_vhost = nullptr;
    int metrics_port = -1;
    struct ev_loop *evloop = nullptr;  // ours, when epoll
    void *foreign_loops[1] = {nullptr};
    int port = -1;
    int listen_fd = -1;   // lws' listening socket (not ours to close)
    int reserve_fd = -1;  // kept open to be given up when descriptors run out

    static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                        size_t len);
    int handle(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len);
    // One line of lws' log, while this transport's thread is inside lws.
    void lws_log(const std::string &line);
    void accept_failed(int err);
    size_t shed_pending();
    // The metrics listener: a second raw-skt vhost, plain. "" when listening.
    std::string open_metrics(const TransportConfig &cfg);
};

namespace {

// lws' logging is process-wide: its lines go to the transport whose thread
// is inside lws at the time (serving, opening, closing), else nowhere.
thread_local LogSink *t_log_sink = nullptr;

struct LogScope {
    LogSink *saved;
    explicit LogScope(LogSink *m) : saved(t_log_sink) { t_log_sink = m; }
    ~LogScope() { t_log_sink = saved; }
};

void lws_log_line(int level, const char *line) {
    (void)level;
    if (!t_log_sink) return;
    std::string msg(line ? line : "");
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == '\r')) msg.pop_back();
    t_log_sink->on_line(t_log_sink, msg);
}

void init_lws_logging() {
    static std::once_flag once;
    std::call_once(once, [] { lws_set_log_level(LLL_ERR, lws_log_line); });
}

}  // namespace

// lws 4.1.6 reports a failed accept() only as this error line (the listen
// role's POLLIN handler logs `accept: errno N` and returns; nothing reaches
// a callback), so the line is where the failure can be seen and handled.
void Transport::Impl::lws_log(const std::string &line) {
    static const char kAcceptFailed[] = "accept: errno ";
    const size_t at = line.find(kAcceptFailed);
    if (at != std::string::npos) {
        char *end;
        long err = std::strtol(line.c_str() + at + sizeof kAcceptFailed - 1, &end, 10);
        if (end != line.c_str() + at + sizeof kAcceptFailed - 1) {
            accept_failed(static_cast<int>(err));
            return;
        }
    }
    events->on_transport_error(line);
}

void Transport::Impl::accept_failed(int err) {
    // lws' listener is level-triggered and stays readable while connections
    // wait in its queue: without shedding them it retries at once, forever.
    size_t closed = is_shortage(err) ? shed_pending() : 0;
    events->on_accept_error(err, closed);
}

// The reserve descriptor trick: give up the reserve, so that one accept()
// can succeed, close what it returns, take the reserve back; until the
// listen queue is empty. The clients see their connection closed at once,
// rather than waiting in a queue no one serves.
size_t Transport::Impl::shed_pending() {
    size_t closed = 0;
    if (listen_fd < 0) return 0;
    // Bounded per wake-up: a flood keeps filling the queue.
    for (int i = 0; i < 1024; i++) {
        if (reserve_fd >= 0) {
            ::close(reserve_fd);
            reserve_fd = -1;
        }
        int fd = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) break;  // EAGAIN: the queue is empty
        ::close(fd);
        closed++;
        reserve_fd = open_reserve_fd();
        if (reserve_fd < 0) break;  // another thread took the descriptor
    }
    if (reserve_fd < 0) reserve_fd = open_reserve_fd();
    return closed;
}

Transport::Transport(TransportEvents *events) : impl_(new Impl()) {
    impl_->events = events;
    impl_->on_line = [](LogSink *sink, const std::string &line) { static_cast<Impl *>(sink)->lws_log(line); };
    std::memset(impl_->protocols, 0, sizeof impl_->protocols);
    std::memset(impl_->metrics_protocols, 0, sizeof impl_->metrics_protocols);
}

Transport::~Transport() { close(); }

std::string Transport::open(const TransportConfig &cfg) {
    Impl &m = *impl_;
    if (m.ctx) return "the transport is already open";
    init_lws_logging();
    LogScope log_scope(&m);
    // lws sizes its fd table from RLIMIT_NOFILE when the context is created:
    // the caller raises it first (transport/fd_limit.h).
    std::string why = probe_bind(cfg.host, cfg.port);
    if (!why.empty()) return why;
    if (cfg.metrics_port >= 0) {
        why = probe_bind(cfg.metrics_host, cfg.metrics_port);
        if (!why.empty()) return "metrics.listen: " + why;
    }

    struct lws_protocols &p = m.protocols[0];
    p.name = kProtocolName;
    p.callback = &Impl::callback;
    // lws splits one write at tx_packet_size; ours are whole batches.
    p.tx_packet_size = cfg.write_batch_bytes;

    struct lws_context_creation_info info;
    std::memset(&info, 0, sizeof info);
    info.port = cfg.port;
    info.iface = cfg.host.empty() ? nullptr : cfg.host.c_str();
    info.protocols = m.protocols;
    info.vhost_name = "default";
    info.user = &m;
    // Every accepted socket is a raw byte stream bound to our protocol.
    info.options = LWS_SERVER_OPTION_SKIP_SERVER_CANONICAL_NAME |
                   LWS_SERVER_OPTION_ADOPT_APPLY_LISTEN_ACCEPT_CONFIG;
    info.listen_accept_role = "raw-skt";
    info.listen_accept_protocol = kProtocolName;
    // lws' own "validity" keepalive is O(connections) per received frame;
    // wsgate's heartbeat replaces it.
    static const lws_retry_bo_t kNoValidity = {nullptr, 0, 0, 0, 0, 0};
    info.retry_and_idle_policy = &kNoValidity;
    // The one read buffer per service thread: the most bytes one read takes.
    info.pt_serv_buf_size = static_cast<unsigned int>(std::max<size_t>(4096, cfg.read_buffer_bytes));
    info.gid = -1;
    info.uid = -1;
    info.timeout_secs = static_cast<unsigned int>(std::max<int64_t>(1, (cfg.tls_handshake_timeout_ms + 999) / 1000));
    if (cfg.tls) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = cfg.tls_files.cert_file.c_str();
        info.ssl_private_key_filepath = cfg.tls_files.key_file.c_str();
        if (!cfg.tls_files.ca_file.empty()) info.ssl_ca_filepath = cfg.tls_files.ca_file.c_str();
        if (cfg.tls_client_auth == "required")
            info.options |= LWS_SERVER_OPTION_REQUIRE_VALID_OPENSSL_CLIENT_CERT;
        else if (cfg.tls_client_auth == "optional")
            info.options |= LWS_SERVER_OPTION_REQUIRE_VALID_OPENSSL_CLIENT_CERT |
                            LWS_SERVER_OPTION_PEER_CERT_NOT_REQUIRED;
        info.ssl_cipher_list = cfg.tls_ciphers.c_str();
        // HTTP/1.1 only: a client offering h2 must not be taken over by lws' h2 role.
        info.alpn = "http/1.1";
    }
    // lws ignores an IPv4 iface and listens everywhere unless IPv6 is off.
    if (!cfg.host.empty() && is_ipv4_literal(cfg.host)) info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    // The epoll loop (libev) costs per wake-up what is ready; lws' own poll()
    // loop scans every socket on every wake-up.
    if (cfg.epoll) {
        m.evloop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOENV);
        if (!m.evloop) return "cannot create the libev event loop";
        m.foreign_loops[0] = m.evloop;
        info.options |= LWS_SERVER_OPTION_LIBEV;
        info.foreign_loops = m.foreign_loops;
    }
    m.ctx = lws_create_context(&info);
    if (!m.ctx) {
        if (m.evloop) ev_loop_destroy(m.evloop);
        m.evloop = nullptr;
        return "cannot listen on " + (cfg.host.empty() ? std::string("*") : cfg.host) + ":" +
               std::to_string(cfg.port) + ": libwebsockets could not create the listener (see its error log)";
    }
    m.vhost = lws_get_vhost_by_name(m.ctx, "default");
    m.port = m.vhost ? lws_get_vhost_listen_port(m.vhost) : -1;
    if (m.port <= 0) {
        close();
        return "cannot listen: libwebsockets reported no listening port";
    }
    m.listen_fd = find_listen_fd(m.port);
    m.reserve_fd = open_reserve_fd();
    if (cfg.metrics_port >= 0) {
        why = m.open_metrics(cfg);
        if (!why.empty()) {
            close();
            return why;
        }
    }
    return {};
}

std::string Transport::Impl::open_metrics(const TransportConfig &cfg) {
    struct lws_protocols &p = metrics_protocols[0];
    p.name = kMetricsProtocolName;
    p.callback = &Impl::callback;
    struct lws_context_creation_info info;
    std::memset(&info, 0, sizeof info);
    info.port = cfg.metrics_port;
    info.iface = cfg.metrics_host.c_str();
    info.protocols = metrics_protocols;
    info.vhost_name = "metrics";
    info.options = LWS_SERVER_OPTION_SKIP_SERVER_CANONICAL_NAME | LWS_SERVER_OPTION_ADOPT_APPLY_LISTEN_ACCEPT_CONFIG;
    info.listen_accept_role = "raw-skt";
    info.listen_accept_protocol = kMetricsProtocolName;
    static const lws_retry_bo_t kNoValidity = {nullptr, 0, 0, 0, 0, 0};
    info.retry_and_idle_policy = &kNoValidity;
    // Per vhost: without it lws would listen on every interface for an IPv4 iface.
    if (is_ipv4_literal(cfg.metrics_host)) info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    metrics_vhost = lws_create_vhost(ctx, &info);
    metrics_port = metrics_vhost ? lws_get_vhost_listen_port(metrics_vhost) : -1;
    if (metrics_port <= 0)
        return "metrics.listen: cannot listen on " + cfg.metrics_host + ":" + std::to_string(cfg.metrics_port) +
               ": libwebsockets could not create the listener (see its error log)";
    return {};
}

bool Transport::is_open() const { return impl_->ctx != nullptr; }

int Transport::port() const { return impl_->port; }

int Transport::metrics_port() const { return impl_->metrics_port; }

void Transport::run_once() {
    Impl &m = *impl_;
    LogScope log_scope(&m);
    if (m.evloop)
        ev_run(m.evloop, EVRUN_ONCE);
    else
        lws_service(m.ctx, 0);
}

struct ev_loop *Transport::ev_loop() const { return impl_->ctx ? impl_->evloop : nullptr; }

void Transport::wake() {
    if (impl_->ctx) lws_cancel_service(impl_->ctx);
}

void Transport::close() {
    Impl &m = *impl_;
    if (!m.ctx) return;
    LogScope log_scope(&m);
    // Fires RAW_CLOSE (and so on_close) for every link still open.
    lws_context_destroy(m.ctx);
    m.ctx = nullptr;
    m.vhost = nullptr;
    m.metrics_vhost = nullptr;
    m.port = -1;
    m.metrics_port = -1;
    m.listen_fd = -1;
    if (m.reserve_fd >= 0) ::close(m.reserve_fd);
    m.reserve_fd = -1;
    if (m.evloop) {
        ev_loop_destroy(m.evloop);
        m.evloop = nullptr;
    }
}

void Transport::start_timer(Timer *t, int64_t delay_us, std::function<void()> fn) {
    Timer::Impl &ti = *t->impl_;
    ti.fn = std::move(fn);
    ti.node.owner = &ti;
    lws_sul_schedule(impl_->ctx, 0, &ti.node.sul,
                     [](lws_sorted_usec_list_t *sul) {
                         // Copied first: the function may start its timer again.
                         auto *node = lws_container_of(sul, Timer::Impl::Node, sul);
                         std::function<void()> f = node->owner->fn;
                         f();
                     },
                     delay_us);
}

void Transport::stop_timer(Timer *t) {
    if (impl_->ctx) lws_sul_cancel(&t->impl_->node.sul);
}

void Transport::set_owner(Link *link, void *owner) { lws_set_opaque_user_data(wsi_of(link), owner); }

void *Transport::owner(Link *link) { return lws_get_opaque_user_data(wsi_of(link)); }

bool Transport::write(Link *link, const uint8_t *data, size_t len) {
    // LWS_WRITE_RAW goes straight to the socket (through TLS); lws copies
    // what the kernel does not take and flushes it before the next event.
    return lws_write(wsi_of(link), const_cast<uint8_t *>(data), len, LWS_WRITE_RAW) >= 0;
}

bool Transport::write_pending(Link *link) { return lws_partial_buffered(wsi_of(link)) != 0; }

void Transport::want_writable(Link *link) { lws_callback_on_writable(wsi_of(link)); }

void Transport::close_soon(Link *link) {
    lws_set_timeout(wsi_of(link), PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

void Transport::shutdown_write(Link *link) {
    int fd = lws_get_socket_fd(wsi_of(link));
    if (fd >= 0) ::shutdown(fd, SHUT_WR);
}

void Transport::handshake_done(Link *link) { lws_set_timeout(wsi_of(link), NO_PENDING_TIMEOUT, 0); }

int Transport::fd(Link *link) { return lws_get_socket_fd(wsi_of(link)); }

SSL *Transport::ssl(Link *link) { return lws_get_ssl(wsi_of(link)); }

int Transport::Impl::callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                              void *in, size_t len) {
    auto *self = static_cast<Impl *>(lws_context_user(lws_get_context(wsi)));
    if (!self) return 0;
    try {
        return self->handle(wsi, reason, user, in, len);
    } catch (const std::exception &e) {
        self->events->on_transport_error(std::string("callback: ") + e.what());
    } catch (...) {
        self->events->on_transport_error("callback: unknown exception");
    }
    // Fail only this connection; the server goes on.
    return -1;
}

int Transport::Impl::handle(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                            void *in, size_t len) {
    switch (reason) {
    case LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS: {
        // `user` is the vhost's SSL_CTX.
        std::string why = events->on_tls_context(static_cast<SSL_CTX *>(user));
        if (why.empty()) return 0;
        events->on_transport_error("tls: " + why);
        return 1;
    }
    case LWS_CALLBACK_OPENSSL_PERFORM_CLIENT_CERT_VERIFICATION:
        // lws turns 0 into "accept" whatever OpenSSL concluded: pass on
        // OpenSSL's verdict (len is preverify_ok).
        return events->on_client_certificate(len != 0) ? 0 : 1;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED: events->on_wake(); return 0;
    case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
        // `wsi` is the listener here; nonzero makes lws close the new socket.
        // The metrics listener has no accept limits (Server::on_open bounds it).
        if (metrics_vhost && lws_get_vhost(wsi) == metrics_vhost) return 0;
        listen_fd = lws_get_socket_fd(wsi);
        return events->on_accept(static_cast<int>(reinterpret_cast<intptr_t>(in))) ? 0 : 1;
    case LWS_CALLBACK_RAW_ADOPT: {
        const bool metrics = metrics_vhost && lws_get_vhost(wsi) == metrics_vhost;
        return events->on_open(link_of(wsi), metrics ? Listener::Metrics : Listener::Main) ? 0 : -1;
    }
    case LWS_CALLBACK_RAW_RX: return events->on_read(link_of(wsi), static_cast<uint8_t *>(in), len) ? 0 : -1;
    case LWS_CALLBACK_RAW_WRITEABLE: return events->on_writable(link_of(wsi)) ? 0 : -1;
    case LWS_CALLBACK_RAW_CLOSE: events->on_close(link_of(wsi)); return 0;
    default: return 0;
    }
}

}  // namespace wsgate
