#include "server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "error.h"

#include <ev.h>

static_assert(LWS_PRE == wsgate::kFrameHeadroom, "frame headroom must equal LWS_PRE");

namespace wsgate {
namespace {

int64_t unix_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

int64_t mono_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

int64_t mono_us() {
    using namespace std::chrono;
    return duration_cast<microseconds>(steady_clock::now().time_since_epoch()).count();
}

bool is_ipv4_literal(const std::string &host) {
    unsigned char buf[4];
    return inet_pton(AF_INET, host.c_str(), buf) == 1;
}

// Copies an lws header into a string ("" when absent).
std::string header(struct lws *wsi, enum lws_token_indexes token) {
    int n = lws_hdr_total_length(wsi, token);
    if (n <= 0) return {};
    std::string s(static_cast<size_t>(n) + 1, '\0');
    int got = lws_hdr_copy(wsi, &s[0], n + 1, token);
    s.resize(got > 0 ? static_cast<size_t>(got) : 0);
    return s;
}

// The query string: lws keeps each parameter (URL-decoded) as a fragment.
std::string query_of(struct lws *wsi) {
    std::string q;
    char buf[1024];
    for (int i = 0; lws_hdr_copy_fragment(wsi, buf, sizeof buf, WSI_TOKEN_HTTP_URI_ARGS, i) > 0; i++) {
        if (!q.empty()) q += '&';
        q += buf;
    }
    return q;
}

// Peer IP (IPv4-mapped addresses unwrapped) and port of a socket.
void peer_of(int fd, std::string *addr, int *port) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    *port = 0;
    if (fd < 0 || getpeername(fd, reinterpret_cast<struct sockaddr *>(&ss), &sl) != 0) return;
    char buf[INET6_ADDRSTRLEN] = "";
    if (ss.ss_family == AF_INET) {
        auto *sin = reinterpret_cast<struct sockaddr_in *>(&ss);
        inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf);
        *port = ntohs(sin->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        auto *s6 = reinterpret_cast<struct sockaddr_in6 *>(&ss);
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
            inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], buf, sizeof buf);
        else
            inet_ntop(AF_INET6, &s6->sin6_addr, buf, sizeof buf);
        *port = ntohs(s6->sin6_port);
    }
    *addr = buf;
}

// "peer" and "peer_port" of a socket, to start a log event with.
LogFields peer_fields(int fd) {
    std::string addr;
    int port;
    peer_of(fd, &addr, &port);
    LogFields f;
    f["peer"] = addr;
    f["peer_port"] = port;
    return f;
}

// A path is served when it equals server.path or lies below it.
bool path_matches(const std::string &want, const std::string &path) {
    if (want == "/" || path == want) return true;
    if (path.compare(0, want.size(), want) != 0) return false;
    return want.back() == '/' || path[want.size()] == '/';
}

std::vector<std::string> split_list(const std::string &s) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start < s.size()) {
        size_t comma = s.find(',', start);
        if (comma == std::string::npos) comma = s.size();
        std::string item = s.substr(start, comma - start);
        while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.pop_back();
        while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.erase(0, 1);
        if (!item.empty()) out.push_back(item);
        start = comma + 1;
    }
    return out;
}

// Not a valid token, so lws can never match a client's offer against it.
const char kDefaultProtocol[] = "wsgate default";

bool valid_close_code(int code) {
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1009) ||
           (code >= 1011 && code <= 1014) || (code >= 3000 && code <= 4999);
}

// Tries to bind host:port the way lws will. Returns "" when it can be bound,
// else a message saying why. Checked before lws_create_context(), which does
// not say why it failed and leaks memory when it fails.
std::string probe_bind(const std::string &host, int port) {
    std::string where = (host.empty() ? std::string("*") : host) + ":" + std::to_string(port);
    struct sockaddr_storage ss{};
    socklen_t sl;
    int family;
    if (host.empty() || !is_ipv4_literal(host)) {
        auto *s6 = reinterpret_cast<struct sockaddr_in6 *>(&ss);
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(static_cast<uint16_t>(port));
        if (!host.empty()) inet_pton(AF_INET6, host.c_str(), &s6->sin6_addr);
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
    if (bind(fd, reinterpret_cast<struct sockaddr *>(&ss), sl) != 0)
        why = std::strerror(errno);
    ::close(fd);
    if (why.empty()) return {};
    return "cannot listen on " + where + ": " + why +
           " (pick another listen.port, or 0 for an ephemeral one)";
}

// lws logging is process-wide. Its lines go to the logger of the server
// whose thread is inside lws at the time (service loop or listen), so they
// honour that server's log.level and sink; elsewhere they are dropped.
thread_local const Logger *t_lws_logger = nullptr;

struct LwsLogScope {
    const Logger *saved;
    explicit LwsLogScope(const Logger *l) : saved(t_lws_logger) { t_lws_logger = l; }
    ~LwsLogScope() { t_lws_logger = saved; }
};

void lws_log_line(int level, const char *line) {
    const Logger *logger = t_lws_logger;
    if (!logger || !logger->enabled(WSG_LOG_ERROR)) return;
    std::string msg(line ? line : "");
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == '\r')) msg.pop_back();
    LogFields f;
    f["source"] = "libwebsockets";
    f["lws_level"] = level;
    f["message"] = msg;
    logger->emit(WSG_LOG_ERROR, "error", f);
}

void init_lws_logging() {
    static std::once_flag once;
    std::call_once(once, [] { lws_set_log_level(LLL_ERR, lws_log_line); });
}

}  // namespace

Settings::Settings(const wsg_config &c)
    : host(c.string_of("listen.host")),
      port(static_cast<int>(c.int_of("listen.port"))),
      path(c.string_of("server.path")),
      subprotocols(split_list(c.string_of("server.subprotocols"))),
      shutdown_timeout_ms(c.int_of("server.shutdown_timeout_ms")),
      max_message_bytes(static_cast<size_t>(c.int_of("limits.max_message_bytes"))),
      max_connections(static_cast<size_t>(c.int_of("limits.max_connections"))),
      max_queue_bytes(static_cast<size_t>(c.int_of("limits.max_queue_bytes"))),
      log_level(log_level_from_name(c.string_of("log.level"))),
      rx_buffer_bytes(static_cast<size_t>(c.int_of("tuning.rx_buffer_bytes"))),
      write_batch_bytes(static_cast<size_t>(c.int_of("tuning.write_batch_bytes"))),
      tick_ms(c.int_of("heartbeat.tick_ms")),
      any_frame_is_alive(c.bool_of("heartbeat.any_frame_is_alive")),
      epoll_loop(c.string_of("tuning.event_loop") == "epoll"),
      compression(c.bool_of("compression.enabled")),
      compress_min_bytes(static_cast<size_t>(c.int_of("compression.min_bytes"))),
      compress_level(static_cast<int>(c.int_of("compression.level"))),
      require_origin(c.bool_of("security.require_origin")),
      tls(!c.string_of("tls.cert_file").empty()),
      tls_files{c.string_of("tls.cert_file"), c.string_of("tls.key_file"), c.string_of("tls.ca_file")},
      tls_client_auth(c.string_of("tls.client_auth")),
      tls_min_version(c.string_of("tls.min_version")),
      tls_ciphers(c.string_of("tls.ciphers")),
      tls_groups(c.string_of("tls.groups")) {
    auth_error = AuthSettings::build(c, &auth);
    trusted_proxies = *CidrList::parse(c.string_of("server.trusted_proxies"), nullptr);  // validated on set
    max_per_ip = static_cast<uint32_t>(c.int_of("limits.max_connections_per_ip"));
    max_per_user = static_cast<uint32_t>(c.int_of("limits.max_connections_per_user"));
    handshake_rate = RateSpec::per_second(static_cast<double>(c.int_of("limits.handshakes_per_ip_per_s")),
                                          static_cast<uint32_t>(c.int_of("limits.handshake_burst")));
    message_rate = RateSpec::per_second(static_cast<double>(c.int_of("limits.messages_per_s")),
                                        static_cast<uint32_t>(c.int_of("limits.message_burst")));
    rate_drop = c.string_of("limits.rate_policy") == "drop";
    // A cookie is sent by the browser on any page's behalf: a cross-site
    // page must not ride on it, so the Origin becomes mandatory.
    if (auth.enabled() && auth.from_cookie) require_origin = true;
    OriginPolicy::parse(c.string_of("security.allowed_origins"), &origins);  // validated on set
    const std::string &preset = c.string_of("heartbeat.preset");
    auto hb = [&](const char *key) {
        int64_t v = c.int_of(key);
        if (!c.is_set(key)) heartbeat_preset_value(preset, key, &v);
        return v;
    };
    ping_interval_ms = hb("heartbeat.ping_interval_ms");
    pong_wait_ms = hb("heartbeat.pong_wait_ms");
    write_wait_ms = hb("heartbeat.write_wait_ms");
    idle_timeout_ms = hb("heartbeat.idle_timeout_ms");
    handshake_timeout_ms = hb("heartbeat.handshake_timeout_ms");
    close_wait_ms = hb("heartbeat.close_wait_ms");
}

std::string Settings::check_tls() const {
    return tls ? tls_check_files(tls_files) : std::string();
}

std::string Settings::check() const {
    if (!auth_error.empty()) return auth_error;
    if (!tls && (!tls_files.key_file.empty() || !tls_files.ca_file.empty()))
        return "tls.key_file and tls.ca_file need tls.cert_file (TLS is off without it)";
    if (tls_client_auth != "none" && tls_files.ca_file.empty())
        return "tls.client_auth=" + tls_client_auth + " needs tls.ca_file (the CAs that sign client certificates)";
    if (compression && rx_buffer_bytes < 128)
        return "compression.enabled needs tuning.rx_buffer_bytes of at least 128 (it is " +
               std::to_string(rx_buffer_bytes) + "): lws inflates into chunks of that size";
    if (ping_interval_ms > 0 && pong_wait_ms > 0 && pong_wait_ms <= ping_interval_ms)
        return "heartbeat.pong_wait_ms (" + std::to_string(pong_wait_ms) +
               ") must exceed heartbeat.ping_interval_ms (" + std::to_string(ping_interval_ms) +
               "), or every healthy connection would time out between two pings";
    return {};
}

Server::Server(Settings settings, wsg_server *self)
    : self_(self),
      cfg_(std::move(settings)),
      wheel_(cfg_.tick_ms, 4096, clock_.now_ms()),
      deflater_(cfg_.compress_level) {
    log.set_min_level(cfg_.log_level);
    protocols_.resize(cfg_.subprotocols.size() + 2);
    for (size_t i = 0; i <= cfg_.subprotocols.size(); i++) {
        struct lws_protocols &p = protocols_[i];
        std::memset(&p, 0, sizeof p);
        p.name = i == 0 ? kDefaultProtocol : cfg_.subprotocols[i - 1].c_str();
        p.callback = &Server::lws_callback;
        p.rx_buffer_size = cfg_.rx_buffer_bytes;
        p.tx_packet_size = cfg_.write_batch_bytes;
    }
    std::memset(&protocols_.back(), 0, sizeof(struct lws_protocols));
    scratch_.resize(LWS_PRE + cfg_.write_batch_bytes);
    if (!cfg_.handshake_rate.unlimited()) handshakes_ = std::make_unique<HandshakeLimiter>(cfg_.handshake_rate);
}

Server::~Server() {
    stop();
}

bool Server::is_idle() {
    std::lock_guard<std::mutex> lock(life_mu_);
    return state_ == State::Idle;
}

// ---------------------------------------------------------------- lifecycle

wsg_status Server::listen() {
    std::lock_guard<std::mutex> lock(life_mu_);
    if (state_ != State::Idle)
        return fail(WSG_ESTATE, "server is already listening or running");
    return listen_locked();
}

wsg_status Server::listen_locked() {
    init_lws_logging();
    LwsLogScope log_scope(&log);
    // lws sizes its fd table from RLIMIT_NOFILE when the context is created:
    // raise the soft limit (up to the hard one) so max_connections fit.
    struct rlimit rl;
    rlim_t want = static_cast<rlim_t>(cfg_.max_connections) + 64;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    struct lws_context_creation_info info;
    std::memset(&info, 0, sizeof info);
    info.port = cfg_.port;
    info.iface = cfg_.host.empty() ? nullptr : cfg_.host.c_str();
    info.protocols = protocols_.data();
    info.vhost_name = "default";
    info.user = this;
    // lws' own "validity" keepalive re-inserts every connection into one
    // sorted timer list on every received frame: O(connections) per frame.
    // Our heartbeat replaces it, so a policy with no hangup switches it off.
    static const lws_retry_bo_t kNoValidity = {nullptr, 0, 0, 0, 0, 0};
    info.retry_and_idle_policy = &kNoValidity;
    // lws reads at most pt_serv_buf_size (default 4096) per event whatever
    // the protocol's rx_buffer_size: size it so tuning.rx_buffer_bytes counts.
    info.pt_serv_buf_size = static_cast<unsigned int>(
        std::max<size_t>(4096, cfg_.rx_buffer_bytes + LWS_PRE + 64));
    info.gid = -1;
    info.uid = -1;
    // lws' own deadlines for unfinished handshakes sit above ours, so ours decide.
    info.timeout_secs = static_cast<unsigned int>(cfg_.handshake_timeout_ms / 1000 + 5);
    info.keepalive_timeout = static_cast<int>(cfg_.handshake_timeout_ms / 1000 + 5);
    info.options = LWS_SERVER_OPTION_SKIP_SERVER_CANONICAL_NAME;
    if (cfg_.tls) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = cfg_.tls_files.cert_file.c_str();
        info.ssl_private_key_filepath = cfg_.tls_files.key_file.c_str();
        if (!cfg_.tls_files.ca_file.empty()) info.ssl_ca_filepath = cfg_.tls_files.ca_file.c_str();
        if (cfg_.tls_client_auth == "required")
            info.options |= LWS_SERVER_OPTION_REQUIRE_VALID_OPENSSL_CLIENT_CERT;
        else if (cfg_.tls_client_auth == "optional")
            info.options |= LWS_SERVER_OPTION_REQUIRE_VALID_OPENSSL_CLIENT_CERT |
                            LWS_SERVER_OPTION_PEER_CERT_NOT_REQUIRED;
        info.ssl_cipher_list = cfg_.tls_ciphers.c_str();
        // HTTP/1.1 only: raw frame writes must not bypass HTTP/2 framing.
        info.alpn = "http/1.1";
    }
    // permessage-deflate: lws negotiates and inflates; we compress (raw
    // writes bypass lws' extension path).
    if (cfg_.compression) info.extensions = pmd_extensions();
    // lws ignores an IPv4 iface and listens everywhere unless IPv6 is off.
    if (!cfg_.host.empty() && is_ipv4_literal(cfg_.host))
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;

    stopping_ = false;
    loop_exit_ = false;
    std::string why = probe_bind(cfg_.host, cfg_.port);
    if (!why.empty()) return fail(WSG_EIO, why);
    // The epoll loop (libev) costs per wake-up what is ready, not what is
    // open: lws' own poll() loop scans every socket on every wake-up, which
    // dominates at thousands of connections.
    if (cfg_.epoll_loop) {
        evloop_ = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOENV);
        if (!evloop_) return fail(WSG_EIO, "cannot create the libev event loop");
        foreign_loops_[0] = evloop_;
        info.options |= LWS_SERVER_OPTION_LIBEV;
        info.foreign_loops = foreign_loops_;
    }
    ctx_ = lws_create_context(&info);
    if (!ctx_ && evloop_) {
        ev_loop_destroy(static_cast<struct ev_loop *>(evloop_));
        evloop_ = nullptr;
    }
    if (!ctx_)
        return fail(WSG_EIO, "cannot listen on " + (cfg_.host.empty() ? std::string("*") : cfg_.host) +
                                 ":" + std::to_string(cfg_.port) +
                                 ": libwebsockets could not create the listener (see its error log)");
    vhost_ = lws_get_vhost_by_name(ctx_, "default");
    int p = vhost_ ? lws_get_vhost_listen_port(vhost_) : -1;
    if (p <= 0) {
        lws_context_destroy(ctx_);
        ctx_ = nullptr;
        return fail(WSG_EIO, "cannot listen: libwebsockets reported no listening port");
    }
    port_.store(p);
    state_ = State::Listening;
    {
        std::lock_guard<std::mutex> cl(cmd_mu_);
        cmd_open_ = true;
    }
    LogFields f;
    f["host"] = cfg_.host.empty() ? "*" : cfg_.host;
    f["port"] = p;
    f["path"] = cfg_.path;
    log.emit(WSG_LOG_INFO, "listen", f);
    return WSG_OK;
}

wsg_status Server::start() {
    std::lock_guard<std::mutex> lock(life_mu_);
    if (state_ == State::Running) return fail(WSG_ESTATE, "server is already running");
    if (state_ == State::Idle) {
        if (wsg_status st = listen_locked()) return st;
    }
    loop_done_ = false;
    try {
        thread_ = std::thread([this] { loop(); });
    } catch (const std::system_error &e) {
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
    LwsLogScope log_scope(&log);
    service_tid_.store(std::this_thread::get_id(), std::memory_order_release);
    // Commands posted before the loop started are waiting: look at them.
    wake_pending_.store(true);
    drain_commands();
    tick_timer_.owner = this;
    tick_stats_ = TickStats();
    tick_stats_.window_start_ms = clock_.now_ms();
    lws_sul_schedule(ctx_, 0, &tick_timer_.sul, &Server::on_tick, cfg_.tick_ms * LWS_US_PER_MS);
    // A request made before this loop started (a signal that came early).
    check_stop_request();
    while (!loop_exit_) {
        if (evloop_) {
            ev_run(static_cast<struct ev_loop *>(evloop_), EVRUN_ONCE);
        } else if (lws_service(ctx_, 0) < 0) {
            break;
        }
    }
    // This loop is over: a request that came during its stop is used up.
    stop_requested_.store(false, std::memory_order_relaxed);
    destroy_context();
    service_tid_.store(std::thread::id(), std::memory_order_release);
}

// Service thread, or a lifecycle call when the loop never ran.
void Server::destroy_context() {
    {
        std::lock_guard<std::mutex> cl(cmd_mu_);
        cmd_open_ = false;
        cmds_.clear();
    }
    if (ctx_) {
        lws_sul_cancel(&shutdown_timer_.sul);
        lws_sul_cancel(&tick_timer_.sul);
        // Fires LWS_CALLBACK_CLOSED (and so on_close) for what is still open.
        lws_context_destroy(ctx_);
        ctx_ = nullptr;
        vhost_ = nullptr;
        if (evloop_) {
            ev_loop_destroy(static_cast<struct ev_loop *>(evloop_));
            evloop_ = nullptr;
        }
    }
    // Anything lws did not report is finished here, so on_close fires once
    // for every opened connection.
    while (!reg_.live().empty()) {
        Conn *c = reg_.live().back();
        c->wsi = nullptr;
        if (!c->closing) begin_close(c, 1001, "going away", WSG_CAUSE_SHUTDOWN);
        finish(c);
    }
    port_.store(-1);
    LogFields f;
    log.emit(WSG_LOG_INFO, "stop", f);
}

wsg_status Server::stop() {
    if (on_service_thread())
        return fail(WSG_EBUSY, "wsg_server_stop/free cannot be called from a callback "
                               "(it would wait for the thread it runs on)");
    std::lock_guard<std::mutex> serial(stop_mu_);
    std::unique_lock<std::mutex> lock(life_mu_);
    if (state_ == State::Idle) return WSG_OK;
    if (state_ == State::Listening) {
        LwsLogScope log_scope(&log);
        destroy_context();
        state_ = State::Idle;
        return WSG_OK;
    }
    Command cmd(Command::Stop);
    lock.unlock();
    wsg_status st = post(std::move(cmd));
    lock.lock();
    if (thread_.joinable()) {
        lock.unlock();
        thread_.join();
        lock.lock();
        state_ = State::Idle;
    } else if (st == WSG_OK) {
        // wsg_server_run() on another thread: wait until its loop returns.
        life_cv_.wait(lock, [this] { return loop_done_; });
    }
    return WSG_OK;
}

wsg_status Server::port(int *out) const {
    int p = port_.load();
    if (p <= 0) return fail(WSG_ESTATE, "server is not listening (call wsg_server_listen or start)");
    *out = p;
    return WSG_OK;
}

// ---------------------------------------------------------------- commands

wsg_status Server::post(Command &&cmd) {
    std::lock_guard<std::mutex> lock(cmd_mu_);
    if (!cmd_open_) return fail(WSG_ESTATE, "server is not running");
    cmds_.push_back(std::move(cmd));
    // One wake-up per batch: the loop drains everything queued so far.
    if (!wake_pending_.exchange(true)) lws_cancel_service(ctx_);
    return WSG_OK;
}

void Server::drain_commands() {
    // LWS_CALLBACK_EVENT_WAIT_CANCELLED arrives often and once per protocol:
    // keep the empty case to one atomic load.
    if (!wake_pending_.load(std::memory_order_acquire)) return;
    std::vector<Command> batch;
    {
        std::lock_guard<std::mutex> lock(cmd_mu_);
        batch.swap(cmds_);
        wake_pending_.store(false);
    }
    for (Command &c : batch) execute(c);
}

void Server::execute(Command &cmd) {
    switch (cmd.kind) {
    case Command::Send: {
        Conn *c = reg_.get(cmd.id);
        if (c && !c->closing) enqueue(c, cmd.msg);
        break;
    }
    case Command::Close: {
        Conn *c = reg_.get(cmd.id);
        if (c && !c->closing) begin_close(c, cmd.code, cmd.reason, WSG_CAUSE_APP);
        break;
    }
    case Command::Broadcast: {
        // Snapshot: closing one connection may reorder live().
        std::vector<Conn *> targets = reg_.live();
        for (Conn *c : targets)
            if (!c->closing) enqueue(c, cmd.msg);
        break;
    }
    case Command::Stop: begin_shutdown(); break;
    case Command::ReloadTls: {
        std::string why = ssl_ctx_ ? tls_reload(ssl_ctx_, cfg_.tls_files) : std::string();
        LogFields f;
        f["cert_file"] = cfg_.tls_files.cert_file;
        if (!why.empty()) {
            f["message"] = why;
            log.emit(WSG_LOG_ERROR, "tls_reload_failed", f);
        } else {
            log.emit(WSG_LOG_INFO, "tls_reloaded", f);
        }
        break;
    }
    case Command::SetTimeout: {
        Conn *c = reg_.get(cmd.id);
        if (c && !c->closing) apply_timeout(c, cmd.reason, cmd.value);
        break;
    }
    }
}

void Server::begin_shutdown() {
    if (stopping_) return;
    stopping_ = true;
    std::vector<Conn *> targets = reg_.live();
    for (Conn *c : targets)
        if (!c->closing) begin_close(c, 1001, "going away", WSG_CAUSE_SHUTDOWN);
    if (reg_.count() == 0) {
        loop_exit_ = true;
        return;
    }
    shutdown_timer_.owner = this;
    lws_sul_schedule(ctx_, 0, &shutdown_timer_.sul, &Server::shutdown_timer,
                     cfg_.shutdown_timeout_ms * LWS_US_PER_MS);
}

void Server::check_stop_request() {
    if (stop_requested_.load(std::memory_order_relaxed)) begin_shutdown();
}

void Server::shutdown_timer(lws_sorted_usec_list_t *sul) {
    Server *self = reinterpret_cast<Timer *>(sul)->owner;
    if (self->reg_.count() > 0) {
        LogFields f;
        f["remaining"] = self->reg_.count();
        f["message"] = "shutdown timeout: dropping connections that did not finish closing";
        self->log.emit(WSG_LOG_WARN, "stop", f);
    }
    self->loop_exit_ = true;
}

// ---------------------------------------------------------------- heartbeat

void Server::on_tick(lws_sorted_usec_list_t *sul) {
    Server *self = reinterpret_cast<Timer *>(sul)->owner;
    self->check_stop_request();
    int64_t now = self->clock_.now_ms();
    int64_t t0 = mono_us();
    size_t fired = self->wheel_.advance(now, [self, now](WheelTimer *t) {
        self->heartbeat_check(static_cast<ConnTimer *>(t)->conn, now);
    });
    TickStats &ts = self->tick_stats_;
    int64_t took = mono_us() - t0;
    int b = 0;
    while (b < 39 && (int64_t{1} << b) <= took) b++;
    ts.buckets[b]++;
    ts.ticks++;
    ts.fired += fired;
    if (took > ts.max_us) ts.max_us = took;
    if (now - ts.window_start_ms >= 10000) self->report_tick_stats(now);
    lws_sul_schedule(self->ctx_, 0, &self->tick_timer_.sul, &Server::on_tick,
                     self->cfg_.tick_ms * LWS_US_PER_MS);
}

void Server::report_tick_stats(int64_t now) {
    TickStats &ts = tick_stats_;
    if (ts.ticks && log.enabled(WSG_LOG_DEBUG)) {
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
        f["connections"] = reg_.count();
        f["tick_p50_us_le"] = pct(0.50);
        f["tick_p99_us_le"] = pct(0.99);
        f["tick_max_us"] = ts.max_us;
        log.emit(WSG_LOG_DEBUG, "heartbeat_stats", f);
    }
    ts = TickStats();
    ts.window_start_ms = now;
}

void Server::ensure_timer(Conn *c, int64_t deadline) {
    // Later deadlines are found lazily when the current one fires.
    if (!c->timer.armed || deadline < c->timer.deadline) wheel_.schedule(&c->timer, deadline);
}

// Runs when a connection's timer fires: acts on whatever is due, then arms
// the timer for the earliest deadline still ahead.
void Server::heartbeat_check(Conn *c, int64_t now) {
    // A close already decided for a stop or for a peer that stopped reading
    // explains why the peer neither answers nor takes our output: keep it.
    bool explained = c->closing && (c->cause == WSG_CAUSE_SHUTDOWN || c->cause == WSG_CAUSE_BACKPRESSURE);
    if (c->close_deadline_ms && now >= c->close_deadline_ms)
        return reap(c, c->close_code, c->close_reason, explained ? c->cause : WSG_CAUSE_CLOSE_TIMEOUT);
    if (c->write_deadline_ms && now >= c->write_deadline_ms) {
        if (explained) return reap(c, c->close_code, c->close_reason, c->cause);
        return reap(c, 1006, "write timeout", WSG_CAUSE_WRITE_TIMEOUT);
    }
    if (!c->closing) {
        if (c->pong_wait_ms && now >= c->last_alive_ms + c->pong_wait_ms)
            return reap(c, 1001, "pong timeout", WSG_CAUSE_PONG_TIMEOUT);
        if (c->token_deadline_ms && now >= c->token_deadline_ms) {
            begin_close(c, 1008, "token expired", WSG_CAUSE_TOKEN_EXPIRED);
        } else if (c->idle_timeout_ms && now >= c->last_data_ms + c->idle_timeout_ms) {
            begin_close(c, 1001, "idle timeout", WSG_CAUSE_IDLE_TIMEOUT);
        } else if (c->ping_interval_ms && now >= c->next_ping_ms) {
            c->ping_due = true;
            c->next_ping_ms = now + c->ping_interval_ms;
            request_writable(c);
        }
    }
    int64_t next = INT64_MAX;
    auto consider = [&next](int64_t t) {
        if (t && t < next) next = t;
    };
    consider(c->close_deadline_ms);
    consider(c->write_deadline_ms);
    if (!c->closing) {
        if (c->pong_wait_ms) consider(c->last_alive_ms + c->pong_wait_ms);
        if (c->idle_timeout_ms) consider(c->last_data_ms + c->idle_timeout_ms);
        consider(c->token_deadline_ms);
        if (c->ping_interval_ms) consider(c->next_ping_ms);
    }
    if (next != INT64_MAX) wheel_.schedule(&c->timer, next);
}

void Server::apply_timeout(Conn *c, const std::string &key, int64_t value) {
    int64_t now = clock_.now_ms();
    if (key == "heartbeat.ping_interval_ms") {
        c->ping_interval_ms = value;
        c->next_ping_ms = value ? now + value : 0;
    } else if (key == "heartbeat.pong_wait_ms") {
        c->pong_wait_ms = value;
    } else if (key == "heartbeat.write_wait_ms") {
        c->write_wait_ms = value;
        if (c->write_deadline_ms) c->write_deadline_ms = value ? now + value : 0;
    } else if (key == "heartbeat.idle_timeout_ms") {
        c->idle_timeout_ms = value;
    } else if (key == "heartbeat.close_wait_ms") {
        c->close_wait_ms = value;
    }
    heartbeat_check(c, now);
}

// Ends a connection at once, without waiting for lws: on_close now, then
// lws drops the socket (no close handshake: the peer is not answering).
void Server::reap(Conn *c, int code, const std::string &reason, wsg_close_cause cause) {
    c->closing = true;
    c->close_queued = false;
    c->close_code = code;
    c->close_reason = reason;
    c->cause = cause;
    c->queue.clear();
    struct lws *wsi = c->wsi;
    finish(c);
    if (wsi) lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

// ---------------------------------------------------------------- any thread API

// Runs direct(conn) at once on the service thread; elsewhere checks the id
// under the registry lock and posts make() for the loop. The connection must
// be open and not closing; claim_close marks it closing at once (so a second
// close, or a send after a close, is refused right away from any thread).
template <class Direct, class Make>
wsg_status Server::dispatch(wsg_conn_id id, bool claim_close, Direct &&direct, Make &&make) {
    auto closing = [&](Conn *c) {
        return claim_close ? c->close_requested.exchange(true) : c->close_requested.load();
    };
    if (on_service_thread()) {
        Conn *c = reg_.get(id);
        if (!c) return fail(WSG_ENOTFOUND, "no open connection with id " + std::to_string(id));
        if (c->closing || closing(c))
            return fail(WSG_ECLOSED, "connection " + std::to_string(id) + " is closing");
        direct(c);
        return WSG_OK;
    }
    {
        std::lock_guard<std::mutex> lock(reg_.mu);
        Conn *c = reg_.get(id);
        if (!c) return fail(WSG_ENOTFOUND, "no open connection with id " + std::to_string(id));
        if (closing(c)) return fail(WSG_ECLOSED, "connection " + std::to_string(id) + " is closing");
    }
    Command cmd = make();
    cmd.id = id;
    wsg_status st = post(std::move(cmd));
    // The loop stopped between the lookup and the post: the id is gone.
    if (st == WSG_ESTATE)
        return fail(WSG_ENOTFOUND, "connection " + std::to_string(id) + " is gone (server stopping)");
    return st;
}

wsg_status Server::send(wsg_conn_id id, wsg_msg_type type, const void *data, size_t len) {
    if (type != WSG_MSG_TEXT && type != WSG_MSG_BINARY)
        return fail(WSG_EINVAL, "message type must be WSG_MSG_TEXT or WSG_MSG_BINARY");
    if (!data && len) return fail(WSG_EINVAL, "data is NULL but len > 0");
    auto message = [&] {
        OutMessage m;
        m.frames = FrameBuilder::message(type, data, len, cfg_.write_batch_bytes);
        m.payload = len;
        return m;
    };
    return dispatch(
        id, false,
        [&](Conn *c) {
            OutMessage m = message();
            enqueue(c, m);
        },
        [&] {
            Command cmd(Command::Send);
            cmd.msg = message();
            return cmd;
        });
}

wsg_status Server::close(wsg_conn_id id, int code, const char *reason) {
    if (!valid_close_code(code))
        return fail(WSG_EINVAL, "close code " + std::to_string(code) +
                                    " is not sendable: use 1000-1003, 1007-1009, 1011-1014 or "
                                    "3000-4999");
    std::string why = reason ? reason : "";
    Utf8Validator v;
    if (why.size() > 123 ||
        !(v.feed(reinterpret_cast<const uint8_t *>(why.data()), why.size()) && v.complete()))
        return fail(WSG_EINVAL, "close reason must be UTF-8 of at most 123 bytes");
    return dispatch(
        id, true, [&](Conn *c) { begin_close(c, code, why, WSG_CAUSE_APP); },
        [&] {
            Command cmd(Command::Close);
            cmd.code = code;
            cmd.reason = why;
            return cmd;
        });
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
        id, false, [&](Conn *c) { apply_timeout(c, key, value); },
        [&] {
            Command cmd(Command::SetTimeout);
            cmd.reason = key;
            cmd.value = value;
            return cmd;
        });
}

wsg_status Server::reload_tls() {
    if (!cfg_.tls) return fail(WSG_ESTATE, "TLS is off (tls.cert_file is not set)");
    std::string why = tls_check_files(cfg_.tls_files);
    if (!why.empty()) return fail(WSG_ETLS, why);
    Command cmd(Command::ReloadTls);
    if (on_service_thread()) {
        execute(cmd);
        return WSG_OK;
    }
    // Not serving: the next listen reads the files anyway.
    if (post(std::move(cmd)) == WSG_ESTATE) return WSG_OK;
    return WSG_OK;
}

wsg_status Server::broadcast(wsg_msg_type type, const void *data, size_t len) {
    if (type != WSG_MSG_TEXT && type != WSG_MSG_BINARY)
        return fail(WSG_EINVAL, "message type must be WSG_MSG_TEXT or WSG_MSG_BINARY");
    if (!data && len) return fail(WSG_EINVAL, "data is NULL but len > 0");
    Command cmd(Command::Broadcast);
    cmd.msg.frames = FrameBuilder::message(type, data, len, cfg_.write_batch_bytes);
    cmd.msg.payload = len;
    if (on_service_thread()) {
        execute(cmd);
        return WSG_OK;
    }
    return post(std::move(cmd));
}

// ---------------------------------------------------------------- send path

void Server::request_writable(Conn *c) {
    if (c->writable_requested || !c->wsi) return;
    c->writable_requested = true;
    lws_callback_on_writable(c->wsi);
}

const FrameList &Server::frames_for(Conn *c, OutMessage &m) {
    if (!c->deflate || m.payload < cfg_.compress_min_bytes) return m.frames;
    if (!m.deflate_tried) {
        m.deflate_tried = true;
        m.deflated = deflater_.compress(m.frames, m.payload, cfg_.write_batch_bytes);
    }
    return m.deflated.empty() ? m.frames : m.deflated;
}

void Server::enqueue(Conn *c, OutMessage &m) {
    for (const FrameRef &f : frames_for(c, m)) c->queue.push(f);
    Conn::bump(c->msgs_out, 1);
    Conn::bump(c->bytes_out, m.payload);
    if (c->queue.bytes() > cfg_.max_queue_bytes) {
        // The peer stopped reading: drop what it will never get and close.
        LogFields f;
        f["conn"] = c->id;
        f["queued_bytes"] = c->queue.bytes();
        f["limit"] = cfg_.max_queue_bytes;
        log.emit(WSG_LOG_WARN, "backpressure", f);
        c->queue.clear();
        begin_close(c, 1013, "send queue full", WSG_CAUSE_BACKPRESSURE);
        return;
    }
    if (c->write_wait_ms && !c->write_deadline_ms) {
        c->write_deadline_ms = clock_.now_ms() + c->write_wait_ms;
        ensure_timer(c, c->write_deadline_ms);
    }
    request_writable(c);
}

void Server::begin_close(Conn *c, int code, const std::string &reason, wsg_close_cause cause) {
    if (c->closing) return;
    c->closing = true;
    c->close_queued = true;
    c->close_code = code;
    c->close_reason = reason;
    c->cause = cause;
    // The close frame waits behind the queue: bound that wait by write
    // progress (write_wait) or, with write_wait off, by close_wait.
    int64_t now = clock_.now_ms();
    if (c->write_wait_ms) {
        if (!c->write_deadline_ms) c->write_deadline_ms = now + c->write_wait_ms;
        ensure_timer(c, c->write_deadline_ms);
    } else {
        c->close_deadline_ms = now + c->close_wait_ms;
        ensure_timer(c, c->close_deadline_ms);
    }
    request_writable(c);
}

// Fails the connection for what the peer sent: what was queued for it is
// dropped and the close frame goes out from WRITEABLE like every close of
// ours (returning -1 from RECEIVE instead makes lws lose the close frame
// when more input is already buffered). Later input is discarded unread.
int Server::fail_close(Conn *c, int code, const char *reason, wsg_close_cause cause) {
    c->queue.clear();
    begin_close(c, code, reason, cause);
    return 0;
}

int Server::on_writeable(Conn *c) {
    c->writable_requested = false;
    if (!c->queue.empty() || c->ping_due) {
        const size_t batch = cfg_.write_batch_bytes;
        int n;
        if (!c->ping_due && (c->queue.count() == 1 || c->queue.front()->size() >= batch / 2)) {
            // One frame: write it from its own buffer (it has LWS_PRE headroom).
            Frame *first = c->queue.front();
            n = lws_write(c->wsi, first->data(), first->size(), LWS_WRITE_RAW);
            c->queue.pop();
        } else {
            // Coalesce whole frames: one write, one syscall for many messages.
            // A due ping goes first: control frames never wait behind data.
            uint8_t *out = scratch_.data() + LWS_PRE;
            size_t used = 0;
            if (c->ping_due) {
                c->ping_due = false;
                c->ping_payload = static_cast<uint64_t>(mono_us());  // echoed back: RTT
                out[0] = 0x89;  // FIN + ping
                out[1] = 8;
                for (int i = 0; i < 8; i++) out[2 + i] = static_cast<uint8_t>(c->ping_payload >> (56 - 8 * i));
                used = 10;
            }
            while (!c->queue.empty() && used + c->queue.front()->size() <= batch) {
                Frame *f = c->queue.front();
                std::memcpy(out + used, f->data(), f->size());
                used += f->size();
                c->queue.pop();
            }
            n = used ? lws_write(c->wsi, out, used, LWS_WRITE_RAW) : 0;
        }
        if (n < 0) {
            // The peer went away mid-write: an expected network event.
            LogFields f;
            f["conn"] = c->id;
            f["message"] = "write failed (peer gone); dropping the connection";
            log.emit(WSG_LOG_DEBUG, "write_failed", f);
            return -1;
        }
        // Progress: the write deadline restarts while output is pending (lws
        // withholds WRITEABLE until its own buffer drained, so ask to hear).
        bool pending = !c->queue.empty() || c->close_queued || lws_partial_buffered(c->wsi);
        if (c->write_wait_ms) c->write_deadline_ms = pending ? clock_.now_ms() + c->write_wait_ms : 0;
        if (pending) request_writable(c);
        return 0;
    }
    if (c->close_queued) {
        // Our queue is empty and lws has flushed its own buffer (it withholds
        // WRITEABLE until then), so the close frame cannot be lost. lws sends
        // it and waits for the peer's; close_wait bounds that wait.
        c->close_queued = false;
        c->write_deadline_ms = 0;
        c->close_deadline_ms = clock_.now_ms() + c->close_wait_ms;
        ensure_timer(c, c->close_deadline_ms);
        lws_close_reason(c->wsi, static_cast<enum lws_close_status>(c->close_code),
                         reinterpret_cast<unsigned char *>(&c->close_reason[0]),
                         c->close_reason.size());
        return -1;
    }
    if (c->write_wait_ms && !lws_partial_buffered(c->wsi)) c->write_deadline_ms = 0;
    return 0;
}

// ---------------------------------------------------------------- receive path

int Server::too_big(Conn *c) {
    LogFields f;
    f["conn"] = c->id;
    f["limit"] = cfg_.max_message_bytes;
    log.emit(WSG_LOG_WARN, "too_big", f);
    return fail_close(c, 1009, "message too big", WSG_CAUSE_TOO_BIG);
}

int Server::bad_compression(Conn *c, const char *detail) {
    LogFields f;
    f["conn"] = c->id;
    f["message"] = std::string("permessage-deflate data refused: ") + detail;
    log.emit(WSG_LOG_WARN, "bad_compression", f);
    return fail_close(c, 1007, "invalid compressed data", WSG_CAUSE_BAD_COMPRESSION);
}

// A compressed message's bytes (RSV1 on its first frame) go through an
// inflater into *out; the limit counts inflated bytes. A whole message from
// a client that resets its context per message uses the server's shared
// inflater: such a connection holds no zlib state at all. False when the
// connection is being failed (too big, corrupt).
bool Server::inflate_into(Conn *c, const uint8_t *p, size_t len, std::string *out, bool whole,
                          bool final) {
    bool shared = whole && !c->inflate_keep_context && !c->inflater;
    if (!shared && !c->inflater) c->inflater = std::make_unique<Inflater>();
    Inflater &inf = shared ? shared_inflater_ : *c->inflater;
    Inflater::Result r = inf.feed(p, len, final, out, cfg_.max_message_bytes);
    if (shared)
        inf.reset();
    else if (final || r != Inflater::Result::Ok)
        c->inflater->end_message(c->inflate_keep_context);
    switch (r) {
    case Inflater::Result::Ok: return true;
    case Inflater::Result::TooBig: too_big(c); return false;
    case Inflater::Result::Corrupt: bad_compression(c, inf.error()); return false;
    }
    return false;
}

int Server::on_receive(Conn *c, const void *in, size_t len) {
    if (c->closing) return 0;  // a close is under way; late data is dropped
    int64_t now = clock_.now_ms();
    if (cfg_.any_frame_is_alive) c->last_alive_ms = now;
    const uint8_t *p = static_cast<const uint8_t *>(in);
    // lws hands a frame over in chunks: whether this one starts and ends it.
    bool frame_starts = !c->rx_frame_open;
    bool frame_ends = lws_remaining_packet_payload(c->wsi) == 0;
    c->rx_frame_open = !frame_ends;
    bool final = frame_ends && lws_is_final_fragment(c->wsi);
    bool starts = !c->in_message;
    if (starts) {
        c->in_message = true;
        c->rx_binary = lws_frame_is_binary(c->wsi) != 0;
        c->utf8.reset();
        // The message's first frame carries RSV1 when it is compressed (lws
        // lets RSV1 through only where the extension was negotiated).
        c->rx_compressed = (lws_get_reserved_bits(c->wsi) & 0x40) != 0;
    } else if (c->deflate && frame_starts && (lws_get_reserved_bits(c->wsi) & 0x40) != 0) {
        return bad_compression(c, "RSV1 on a continuation frame");
    }
    const void *data = p;
    size_t n = len;
    if (c->rx_compressed) {
        // A message that arrived in one piece inflates into the server's
        // scratch buffer: nothing of it stays with the connection.
        bool whole = starts && final;
        std::string *out = whole ? &inflated_ : &c->rx;
        if (whole) inflated_.clear();
        if (!inflate_into(c, p, len, out, whole, final) || !final) return 0;
        // Inflated bytes are validated once the whole message is in.
        if (!c->rx_binary && !(c->utf8.feed(reinterpret_cast<const uint8_t *>(out->data()), out->size()) &&
                               c->utf8.complete()))
            return fail_close(c, 1007, "invalid UTF-8", WSG_CAUSE_INVALID_UTF8);
        data = out->data();
        n = out->size();
    } else {
        if (c->rx.size() + len > cfg_.max_message_bytes) return too_big(c);
        if (!c->rx_binary && !c->utf8.feed(p, len))
            return fail_close(c, 1007, "invalid UTF-8", WSG_CAUSE_INVALID_UTF8);
        if (!final) {
            c->rx.append(reinterpret_cast<const char *>(p), len);
            return 0;
        }
        if (!c->rx_binary && !c->utf8.complete())
            return fail_close(c, 1007, "invalid UTF-8", WSG_CAUSE_INVALID_UTF8);
        if (!c->rx.empty()) {
            c->rx.append(reinterpret_cast<const char *>(p), len);
            data = c->rx.data();
            n = c->rx.size();
        }
    }
    c->in_message = false;
    c->last_data_ms = now;
    if (!cfg_.message_rate.unlimited() && !c->rate.allow(cfg_.message_rate, now)) {
        if (!cfg_.rate_drop) return fail_close(c, 1008, "message rate limit", WSG_CAUSE_RATE_LIMIT);
        // Drop: counted, and logged once per 1,000 so a flood cannot flood the log.
        if (dropped_messages_++ % 1000 == 0) {
            LogFields f;
            f["conn"] = c->id;
            f["dropped_total"] = dropped_messages_;
            log.emit(WSG_LOG_WARN, "rate_limited", f);
        }
        release_rx(c);
        return 0;
    }
    Conn::bump(c->msgs_in, 1);
    Conn::bump(c->bytes_in, n);
    if (on_message.fn)
        on_message.fn(self_, c->id, c->rx_binary ? WSG_MSG_BINARY : WSG_MSG_TEXT, data, n,
                      on_message.user);
    release_rx(c);
    return 0;
}

// After a message: an idle connection keeps no reassembly buffer, and the
// scratch buffer does not pin a huge message's memory.
void Server::release_rx(Conn *c) {
    if (c->rx.capacity()) std::string().swap(c->rx);
    if (inflated_.capacity() > 256 * 1024) std::string().swap(inflated_);
}

void Server::on_peer_close(Conn *c, const void *in, size_t len) {
    if (c->closing) return;  // we started the close: keep our cause
    c->closing = true;
    c->close_queued = false;
    c->cause = WSG_CAUSE_PEER;
    const uint8_t *p = static_cast<const uint8_t *>(in);
    if (len >= 2) {
        c->close_code = (p[0] << 8) | p[1];
        c->close_reason.assign(reinterpret_cast<const char *>(p + 2), len - 2);
    } else {
        c->close_code = 1005;  // no status received
    }
}

// ---------------------------------------------------------------- open and close

int Server::reject(struct lws *wsi, int status, const char *reason, const char *extra,
                   const std::string &log_reason) {
    static const struct {
        int code;
        const char *text;
    } names[] = {{400, "Bad Request"}, {401, "Unauthorized"},     {403, "Forbidden"},
                 {404, "Not Found"},   {426, "Upgrade Required"}, {429, "Too Many Requests"},
                 {503, "Service Unavailable"}};
    const char *text = "Error";
    for (const auto &n : names)
        if (n.code == status) text = n.text;
    std::string body = std::string(reason) + "\n";
    std::string resp = "HTTP/1.1 " + std::to_string(status) + " " + text +
                       "\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: " +
                       std::to_string(body.size()) + "\r\nconnection: close\r\n" +
                       (extra ? extra : "") + "\r\n" + body;
    std::vector<uint8_t> buf(LWS_PRE + resp.size());
    std::memcpy(buf.data() + LWS_PRE, resp.data(), resp.size());
    lws_write(wsi, buf.data() + LWS_PRE, resp.size(), LWS_WRITE_HTTP_HEADERS);

    if (log.enabled(WSG_LOG_WARN)) {
        LogFields f = peer_fields(lws_get_socket_fd(wsi));
        f["path"] = header(wsi, WSI_TOKEN_GET_URI);
        f["status"] = status;
        f["reason"] = log_reason.empty() ? std::string(reason) : log_reason;
        log.emit(WSG_LOG_WARN, "reject", f);
    }
    return 1;
}

int Server::on_confirm_upgrade(struct lws *wsi, const char *upgrade) {
    if (!upgrade || strcasecmp(upgrade, "websocket") != 0)
        return reject(wsi, 400, "only WebSocket upgrades are served here", nullptr);
    std::string path = header(wsi, WSI_TOKEN_GET_URI);
    if (!path_matches(cfg_.path, path)) return reject(wsi, 404, "no WebSocket endpoint at this path", nullptr);
    IpAddr ip = client_of(wsi);
    if (handshakes_ && !handshakes_->allow(ip, clock_.now_ms()))
        return reject(wsi, 429, "too many connection attempts", "retry-after: 1\r\n",
                      "handshake rate limit for " + ip.to_string());
    OriginPolicy::Request req;
    // lws joins repeated headers into one value; judge the first and count them.
    std::string origin, host = header(wsi, WSI_TOKEN_HOST);
    if (int n = lws_hdr_fragment_length(wsi, WSI_TOKEN_ORIGIN, 0); n > 0) {
        origin.resize(static_cast<size_t>(n) + 1);
        n = lws_hdr_copy_fragment(wsi, &origin[0], n + 1, WSI_TOKEN_ORIGIN, 0);
        origin.resize(n > 0 ? static_cast<size_t>(n) : 0);
    }
    // lws keeps each Origin header as one fragment of the token.
    for (int i = 0; i < 8 && lws_hdr_fragment_length(wsi, WSI_TOKEN_ORIGIN, i) > 0; i++)
        req.origin_count++;
    req.origin = origin;
    req.host = host;
    req.tls = lws_is_ssl(wsi) != 0;
    std::string why = cfg_.origins.check(req, cfg_.require_origin);
    if (!why.empty()) return reject(wsi, 403, why.c_str(), nullptr);
    std::string extensions = header(wsi, WSI_TOKEN_EXTENSIONS);
    // lws drops the TCP connection without a word on a longer value.
    if (extensions.size() >= kMaxExtensionsHeader)
        return reject(wsi, 400,
                      "Sec-WebSocket-Extensions too long (254 bytes at most here)", nullptr);
    std::string offered = header(wsi, WSI_TOKEN_PROTOCOL);
    // lws 4.1.6 copies the offer into a 128-byte buffer and drops the TCP
    // connection without a word when it is longer: answer instead.
    if (offered.size() > 126)
        return reject(wsi, 400,
                      "Sec-WebSocket-Protocol too long (126 bytes at most here); send tokens in "
                      "the Authorization header or the access_token query parameter",
                      nullptr);
    if (!offered.empty()) {
        // lws would drop the TCP connection without a word: answer instead.
        bool ok = false;
        for (const std::string &name : split_list(offered)) {
            if (cfg_.auth.from_subprotocol && name.compare(0, 7, "bearer.") == 0) continue;
            for (const std::string &ours : cfg_.subprotocols) ok = ok || name == ours;
        }
        if (!ok) return reject(wsi, 400, "none of the offered subprotocols is spoken here", nullptr);
    }
    if (stopping_) return reject(wsi, 503, "server is shutting down", "retry-after: 5\r\n");
    if (reg_.count() >= cfg_.max_connections)
        return reject(wsi, 503, "connection limit reached", "retry-after: 5\r\n");
    Pending p;
    p.wsi = wsi;
    p.ip = ip;
    if (cfg_.compression) p.pmd = pmd_pick_offer(extensions);
    if (cfg_.max_per_ip) {
        if (!per_ip_.try_acquire(ip, cfg_.max_per_ip))
            return reject(wsi, 429, "too many connections", "retry-after: 5\r\n",
                          "per-IP connection limit for " + ip.to_string());
        p.ip_counted = true;
    }
    if (cfg_.auth.enabled()) {
        if (int refused = authenticate(wsi, &p.auth)) {
            release_counts(p.ip, p.ip_counted, std::string(), false);
            return refused;
        }
        p.authed = true;
        if (cfg_.max_per_user && !p.auth.user_id.empty()) {
            if (!per_user_.try_acquire(p.auth.user_id, cfg_.max_per_user)) {
                release_counts(p.ip, p.ip_counted, std::string(), false);
                return reject(wsi, 429, "too many connections", "retry-after: 5\r\n",
                              "per-user connection limit");
            }
            p.user_counted = true;
        }
    }
    pending_.push_back(std::move(p));
    return 0;
}

void Server::release_counts(const IpAddr &ip, bool ip_counted, const std::string &user,
                            bool user_counted) {
    if (ip_counted) per_ip_.release(ip);
    if (user_counted) per_user_.release(user);
}

// The client's address: the TCP peer, or behind a trusted proxy the
// rightmost untrusted X-Forwarded-For hop.
IpAddr Server::client_of(struct lws *wsi) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    IpAddr peer;
    int fd = lws_get_socket_fd(wsi);
    if (fd >= 0 && getpeername(fd, reinterpret_cast<struct sockaddr *>(&ss), &sl) == 0)
        if (auto a = IpAddr::from_sockaddr(reinterpret_cast<struct sockaddr *>(&ss))) peer = *a;
    if (cfg_.trusted_proxies.empty()) return peer;
    return client_ip(peer, header(wsi, WSI_TOKEN_X_FORWARDED_FOR), cfg_.trusted_proxies);
}

// JWT and/or the application's authenticator. On success the outcome goes
// to *out (kept for LWS_CALLBACK_ESTABLISHED); otherwise the refusal is sent.
int Server::authenticate(struct lws *wsi, AuthOutcome *out) {
    const AuthSettings &a = cfg_.auth;
    wsg_auth_request req;
    req.wsi = wsi;
    std::string token;
    if (a.from_header && token.empty()) token = bearer_token(header(wsi, WSI_TOKEN_HTTP_AUTHORIZATION));
    if (a.from_query && token.empty()) {
        char buf[8192];
        if (const char *v = lws_get_urlarg_by_name(wsi, "access_token=", buf, sizeof buf)) token = v;
    }
    if (a.from_cookie && token.empty()) token = cookie_value(header(wsi, WSI_TOKEN_HTTP_COOKIE), a.cookie_name);
    if (a.from_subprotocol && token.empty()) token = subprotocol_token(header(wsi, WSI_TOKEN_PROTOCOL));
    int port;
    req.fields[WSG_AUTH_PATH] = header(wsi, WSI_TOKEN_GET_URI);
    req.fields[WSG_AUTH_QUERY] = strip_access_token(query_of(wsi));
    peer_of(lws_get_socket_fd(wsi), &req.fields[WSG_AUTH_PEER_ADDR], &port);
    req.fields[WSG_AUTH_ORIGIN] = header(wsi, WSI_TOKEN_ORIGIN);
    if (cfg_.tls) req.fields[WSG_AUTH_TLS_SUBJECT] = tls_peer_subject(lws_get_ssl(wsi));
    req.fields[WSG_AUTH_TOKEN] = token;

    if (a.jwt) {
        if (token.empty())
            return reject(wsi, 401, "authentication required",
                          "www-authenticate: Bearer realm=\"wsgate\"\r\n", "missing token");
        JwtResult r = jwt_verify(token, *a.keys, a.policy, unix_ms() / 1000);
        if (!r.ok())
            return reject(wsi, 401, "authentication required",
                          "www-authenticate: Bearer realm=\"wsgate\", error=\"invalid_token\"\r\n",
                          std::string("invalid token: ") + jwt_error_name(r.error) + ": " + r.message);
        req.outcome.user_id = r.user_id;
        req.outcome.claims_json = r.claims_json;
        req.outcome.exp_s = r.exp;
        req.fields[WSG_AUTH_JWT_USER] = r.user_id;
        req.fields[WSG_AUTH_JWT_CLAIMS] = r.claims_json;
    }
    if (a.callback) {
        if (!on_auth.fn) {
            log_error("auth", "auth.mode needs an authenticator: register one with wsg_server_on_auth");
            return reject(wsi, 401, "authentication required", nullptr, "no authenticator registered");
        }
        on_auth.fn(self_, &req, on_auth.user);
        if (req.verdict != wsg_auth_request::Verdict::Accept) {
            bool refused = req.verdict == wsg_auth_request::Verdict::Refuse;
            int status = refused ? req.status : 401;
            std::string why = refused ? "refused by authenticator: " + req.reason
                                      : std::string("authenticator decided nothing");
            return reject(wsi, status, status == 403 ? "forbidden" : "authentication required",
                          status == 401 ? "www-authenticate: Bearer realm=\"wsgate\"\r\n" : nullptr,
                          why);
        }
    }
    *out = std::move(req.outcome);
    return 0;
}

void Server::on_established(struct lws *wsi) {
    auto *c = new Conn();
    c->wsi = wsi;
    peer_of(lws_get_socket_fd(wsi), &c->peer_addr, &c->peer_port);
    c->path = header(wsi, WSI_TOKEN_GET_URI);
    c->query = strip_access_token(query_of(wsi));
    c->origin = header(wsi, WSI_TOKEN_ORIGIN);
    const struct lws_protocols *proto = lws_get_protocol(wsi);
    if (proto && proto->name && std::strcmp(proto->name, kDefaultProtocol) != 0)
        c->subprotocol = proto->name;
    if (cfg_.tls) c->tls_subject = tls_peer_subject(lws_get_ssl(wsi));
    AuthOutcome auth;
    bool authed = false;
    for (auto it = pending_.begin(); it != pending_.end(); ++it)
        if (it->wsi == wsi) {
            auth = std::move(it->auth);
            authed = it->authed;
            c->client_ip = it->ip;
            c->ip_counted = it->ip_counted;
            c->user_counted = it->user_counted;
            c->deflate = it->pmd.index >= 0 && pmd_active(wsi);
            c->inflate_keep_context = !it->pmd.client_no_context_takeover;
            if (!cfg_.trusted_proxies.empty()) c->peer_addr = it->ip.to_string();
            pending_.erase(it);
            break;
        }
    c->user_id = auth.user_id;
    c->claims_json = std::move(auth.claims_json);
    c->connected_at_ms = unix_ms();
    c->opened_mono_ms = mono_ms();
    try {
        reg_.add(c);
    } catch (...) {
        delete c;
        throw;
    }
    lws_set_opaque_user_data(wsi, c);
    lws_set_timer_usecs(wsi, LWS_SET_TIMER_USEC_CANCEL);  // the handshake timer
    int64_t now = clock_.now_ms();
    c->timer.conn = c;
    c->ping_interval_ms = cfg_.ping_interval_ms;
    c->pong_wait_ms = cfg_.pong_wait_ms;
    c->write_wait_ms = cfg_.write_wait_ms;
    c->idle_timeout_ms = cfg_.idle_timeout_ms;
    c->close_wait_ms = cfg_.close_wait_ms;
    c->last_alive_ms = c->last_data_ms = now;
    c->next_ping_ms = c->ping_interval_ms ? now + c->ping_interval_ms : 0;
    if (authed && auth.exp_s > 0) {
        // Wall-clock expiry as a monotonic deadline.
        int64_t left = auth.exp_s * 1000 + cfg_.auth.expiry_grace_ms - unix_ms();
        c->token_deadline_ms = now + (left > 0 ? left : 0);
    }
    for (const auto &kv : auth.timeouts) apply_timeout(c, kv.first, kv.second);
    heartbeat_check(c, now);
    if (log.enabled(WSG_LOG_INFO)) {
        LogFields f;
        f["conn"] = c->id;
        f["peer"] = c->peer_addr;
        f["peer_port"] = c->peer_port;
        f["path"] = c->path;
        if (!c->origin.empty()) f["origin"] = c->origin;
        if (!c->subprotocol.empty()) f["subprotocol"] = c->subprotocol;
        if (!c->tls_subject.empty()) f["tls_subject"] = c->tls_subject;
        if (!c->user_id.empty()) f["user"] = c->user_id;
        if (c->deflate) f["compression"] = "permessage-deflate";
        log.emit(WSG_LOG_INFO, "open", f);
    }
    if (on_open.fn) on_open.fn(self_, c->id, on_open.user);
}

void Server::finish(Conn *c) {
    if (!c->closing) {
        c->closing = true;
        c->close_code = 1006;
        c->cause = WSG_CAUSE_LOST;
    }
    if (on_close.fn)
        on_close.fn(self_, c->id, c->close_code, c->close_reason.c_str(), c->close_reason.size(),
                    c->cause, on_close.user);
    if (log.enabled(WSG_LOG_INFO)) {
        LogFields f;
        f["conn"] = c->id;
        f["peer"] = c->peer_addr;
        f["peer_port"] = c->peer_port;
        f["code"] = c->close_code;
        f["cause"] = wsg_close_cause_str(c->cause);
        if (!c->close_reason.empty()) f["reason"] = c->close_reason;
        f["duration_ms"] = mono_ms() - c->opened_mono_ms;
        f["msgs_in"] = c->msgs_in.load();
        f["bytes_in"] = c->bytes_in.load();
        f["msgs_out"] = c->msgs_out.load();
        f["bytes_out"] = c->bytes_out.load();
        log.emit(WSG_LOG_INFO, "close", f);
    }
    wheel_.cancel(&c->timer);
    release_counts(c->client_ip, c->ip_counted, c->user_id, c->user_counted);
    reg_.remove(c);
    if (c->wsi) lws_set_opaque_user_data(c->wsi, nullptr);
    delete c;
    if (stopping_ && reg_.count() == 0) loop_exit_ = true;
}

void Server::log_error(const char *what, const std::string &detail, wsg_conn_id id) {
    LogFields f;
    if (id) f["conn"] = id;
    f["where"] = what;
    f["message"] = detail;
    log.emit(WSG_LOG_ERROR, "error", f);
}

// ---------------------------------------------------------------- dispatch

int Server::lws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                         size_t len) {
    auto *self = static_cast<Server *>(lws_context_user(lws_get_context(wsi)));
    if (!self) return 0;
    try {
        return self->handle(wsi, reason, user, in, len);
    } catch (const std::exception &e) {
        self->log_error("callback", e.what());
    } catch (...) {
        self->log_error("callback", "unknown exception");
    }
    // Fail only this connection; the server goes on.
    return -1;
}

int Server::handle(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                   size_t len) {
    Conn *c = wsi ? static_cast<Conn *>(lws_get_opaque_user_data(wsi)) : nullptr;
    switch (reason) {
    case LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS: {
        // `user` is the vhost's SSL_CTX: set what lws 4.1.6 has no field for.
        ssl_ctx_ = static_cast<SSL_CTX *>(user);
        std::string why = tls_configure(ssl_ctx_, cfg_.tls_min_version, cfg_.tls_groups);
        if (!why.empty()) {
            log_error("tls", why);
            return 1;
        }
        return 0;
    }

    case LWS_CALLBACK_OPENSSL_PERFORM_CLIENT_CERT_VERIFICATION:
        // lws turns our 0 into "accept" whatever OpenSSL concluded: pass on
        // OpenSSL's verdict (len is preverify_ok).
        if (len == 0) {
            LogFields f;
            f["message"] = "client certificate failed verification";
            log.emit(WSG_LOG_WARN, "tls_refused", f);
            return 1;
        }
        return 0;

    case LWS_CALLBACK_EVENT_WAIT_CANCELLED: drain_commands(); return 0;

    case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
        if (log.enabled(WSG_LOG_DEBUG))
            log.emit(WSG_LOG_DEBUG, "accept", peer_fields(static_cast<int>(reinterpret_cast<intptr_t>(in))));
        return 0;

    case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
        // Slowloris guard: the upgrade must complete in time.
        lws_set_timer_usecs(wsi, cfg_.handshake_timeout_ms * LWS_US_PER_MS);
        return 0;

    case LWS_CALLBACK_TIMER:
        if (c) return 0;
        if (log.enabled(WSG_LOG_WARN)) {
            LogFields f = peer_fields(lws_get_socket_fd(wsi));
            f["cause"] = "handshake_timeout";
            f["timeout_ms"] = cfg_.handshake_timeout_ms;
            log.emit(WSG_LOG_WARN, "handshake_timeout", f);
        }
        return -1;

    case LWS_CALLBACK_RECEIVE_PONG:
        if (c && c->deflate && !c->closing && (lws_get_reserved_bits(wsi) & 0x40) != 0)
            return bad_compression(c, "RSV1 on a pong");
        if (c) {
            int64_t now = clock_.now_ms();
            c->last_alive_ms = now;
            if (len == 8) {
                const uint8_t *p = static_cast<const uint8_t *>(in);
                uint64_t ts = 0;
                for (int i = 0; i < 8; i++) ts = (ts << 8) | p[i];
                if (ts == c->ping_payload)
                    c->rtt_us.store(mono_us() - static_cast<int64_t>(ts), std::memory_order_relaxed);
            }
        }
        return 0;

    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return on_confirm_upgrade(wsi, static_cast<const char *>(in));

    case LWS_CALLBACK_HTTP:
        // A plain HTTP request on the WebSocket port.
        return reject(wsi, 426, "this endpoint speaks WebSocket only", "upgrade: websocket\r\n")
                   ? -1
                   : 0;

    case LWS_CALLBACK_CONFIRM_EXTENSION_OKAY:
        // lws asks about each permessage-deflate offer in turn (in = the
        // extension's name); 0 accepts. Only the one pmd_pick_offer chose.
        for (Pending &p : pending_)
            if (p.wsi == wsi) return p.pmd_asked++ == p.pmd.index ? 0 : 1;
        return 1;

    case LWS_CALLBACK_ESTABLISHED: on_established(wsi); return 0;

    case LWS_CALLBACK_RECEIVE: return c ? on_receive(c, in, len) : -1;

    case LWS_CALLBACK_SERVER_WRITEABLE: return c ? on_writeable(c) : 0;

    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (c) on_peer_close(c, in, len);
        return 0;

    case LWS_CALLBACK_CLOSED:
        if (c) finish(c);
        return 0;

    case LWS_CALLBACK_WSI_DESTROY:
        // An accepted request that never reached ESTABLISHED.
        for (auto it = pending_.begin(); it != pending_.end(); ++it)
            if (it->wsi == wsi) {
                release_counts(it->ip, it->ip_counted, it->auth.user_id, it->user_counted);
                pending_.erase(it);
                break;
            }
        return 0;

    default: return 0;
    }
}

}  // namespace wsgate
