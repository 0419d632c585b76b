// One WebSocket server: the lws context, its service thread, the protocol
// callback, the cross-thread command queue and the send/close paths.
#pragma once

#include <libwebsockets.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "deflate.h"
#include "frame.h"
#include "log.h"
#include "options.h"
#include "origin.h"
#include "registry.h"
#include "auth.h"
#include "tls.h"
#include "wheel.h"

namespace wsgate {

// A registered callback with its user pointer, released exactly once.
template <class Fn>
struct Callback {
    Fn fn = nullptr;
    void *user = nullptr;
    wsg_free_fn user_free = nullptr;

    void set(Fn f, void *u, wsg_free_fn uf) {
        release();
        fn = f;
        user = u;
        user_free = uf;
    }
    void release() {
        wsg_free_fn uf = user_free;
        void *u = user;
        fn = nullptr;
        user = nullptr;
        user_free = nullptr;
        if (uf) uf(u);
    }
    ~Callback() { release(); }
};

// Checks a per-connection heartbeat override (key and range).
wsg_status check_conn_timeout(const char *key, int64_t value);

// The typed view of a wsg_config that a server runs with.
struct Settings {
    std::string host;
    int port = 0;
    std::string path;
    std::vector<std::string> subprotocols;
    int64_t shutdown_timeout_ms = 0;
    size_t max_message_bytes = 0;
    size_t max_connections = 0;
    size_t max_queue_bytes = 0;
    int log_level = 0;
    size_t rx_buffer_bytes = 0;
    size_t write_batch_bytes = 0;
    // Heartbeat, with heartbeat.preset applied to the options not set explicitly.
    int64_t ping_interval_ms = 0, pong_wait_ms = 0, write_wait_ms = 0, idle_timeout_ms = 0,
            handshake_timeout_ms = 0, close_wait_ms = 0, tick_ms = 0;
    bool any_frame_is_alive = true;
    bool epoll_loop = true;  // tuning.event_loop
    bool compression = false;  // compression.enabled
    size_t compress_min_bytes = 0;
    int compress_level = 1;
    OriginPolicy origins;
    bool require_origin = false;
    // TLS: on when tls.cert_file is set.
    bool tls = false;
    TlsFiles tls_files;
    std::string tls_client_auth, tls_min_version, tls_ciphers, tls_groups;
    AuthSettings auth;
    CidrList trusted_proxies;
    uint32_t max_per_ip = 0, max_per_user = 0;
    RateSpec handshake_rate, message_rate;
    bool rate_drop = false;
    std::string auth_error;  // from AuthSettings::build, reported by check()

    explicit Settings(const wsg_config &cfg);
    // Checks rules that involve several options; "" when consistent.
    std::string check() const;
    // Checks the TLS files (when TLS is on); "" when usable.
    std::string check_tls() const;
};

// A message on its way to one or more connections: the frames as built and,
// made on first need and then shared, the same message compressed.
struct OutMessage {
    FrameList frames;
    size_t payload = 0;
    FrameList deflated;
    bool deflate_tried = false;
};

class Server {
public:
    Server(Settings settings, wsg_server *self);
    ~Server();
    Server(const Server &) = delete;
    Server &operator=(const Server &) = delete;

    wsg_status listen();
    wsg_status start();
    wsg_status run();
    wsg_status stop();
    // Async-signal-safe: one lock-free store, nothing else. The loop begins
    // the graceful stop when it next looks (at its start and every tick); a
    // request made while no loop runs waits for the next one.
    void request_stop() noexcept { stop_requested_.store(true, std::memory_order_relaxed); }
    wsg_status port(int *out) const;
    // True while the caller is this server's service thread.
    bool on_service_thread() const {
        return service_tid_.load(std::memory_order_acquire) == std::this_thread::get_id();
    }
    // Lifecycle checks for callback registration.
    bool is_idle();

    // Any thread.
    wsg_status send(wsg_conn_id id, wsg_msg_type type, const void *data, size_t len);
    wsg_status close(wsg_conn_id id, int code, const char *reason);
    wsg_status broadcast(wsg_msg_type type, const void *data, size_t len);
    wsg_status set_timeout(wsg_conn_id id, const char *key, int64_t value);
    wsg_status reload_tls();

    Registry &registry() { return reg_; }

    Callback<wsg_open_fn> on_open;
    Callback<wsg_message_fn> on_message;
    Callback<wsg_close_fn> on_close;
    Callback<wsg_log_fn> on_log;
    Callback<wsg_auth_fn> on_auth;
    Logger log;

private:
    enum class State { Idle, Listening, Running };
    struct Command {
        enum Kind { Send, Close, Broadcast, Stop, SetTimeout, ReloadTls } kind;
        explicit Command(Kind k) : kind(k) {}
        wsg_conn_id id = 0;
        OutMessage msg;  // Send, Broadcast
        int code = 0;
        std::string reason;  // SetTimeout: the key
        int64_t value = 0;   // SetTimeout
    };

    static int lws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                            void *in, size_t len);
    int handle(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len);

    wsg_status listen_locked();
    void loop();
    void destroy_context();
    wsg_status post(Command &&cmd);
    template <class Direct, class Make>
    wsg_status dispatch(wsg_conn_id id, bool claim_close, Direct &&direct, Make &&make);
    void drain_commands();
    void execute(Command &cmd);
    void begin_shutdown();
    static void shutdown_timer(lws_sorted_usec_list_t *sul);
    static void on_tick(lws_sorted_usec_list_t *sul);

    // Heartbeat.
    void heartbeat_check(Conn *c, int64_t now);
    void ensure_timer(Conn *c, int64_t deadline);
    void apply_timeout(Conn *c, const std::string &key, int64_t value);
    void reap(Conn *c, int code, const std::string &reason, wsg_close_cause cause);

    int on_confirm_upgrade(struct lws *wsi, const char *upgrade);
    int authenticate(struct lws *wsi, AuthOutcome *out);
    void on_established(struct lws *wsi);
    int on_receive(Conn *c, const void *in, size_t len);
    bool inflate_into(Conn *c, const uint8_t *p, size_t len, std::string *out, bool whole, bool final);
    void release_rx(Conn *c);
    int too_big(Conn *c);
    int bad_compression(Conn *c, const char *detail);
    int on_writeable(Conn *c);
    void on_peer_close(Conn *c, const void *in, size_t len);
    void finish(Conn *c);

    void enqueue(Conn *c, OutMessage &m);
    // What goes to c: the message compressed when c negotiated it and it pays.
    const FrameList &frames_for(Conn *c, OutMessage &m);
    void request_writable(Conn *c);
    void begin_close(Conn *c, int code, const std::string &reason, wsg_close_cause cause);
    int fail_close(Conn *c, int code, const char *reason, wsg_close_cause cause);
    // Answers an upgrade request with a real HTTP/1.1 status and logs it
    // (log_reason, when given, is what the log says instead of `reason`).
    int reject(struct lws *wsi, int status, const char *reason, const char *extra_headers,
               const std::string &log_reason = std::string());
    void log_error(const char *what, const std::string &detail, wsg_conn_id id = 0);

    wsg_server *self_;
    Settings cfg_;
    Registry reg_;
    // protocols_[0] takes requests that offer no subprotocol; then one entry
    // per server.subprotocols name; then the terminator.
    std::vector<struct lws_protocols> protocols_;

    // Lifecycle: life_mu_ guards state_, ctx_ (creation and destruction) and
    // thread_; stop_mu_ serialises whole stop() calls.
    std::mutex life_mu_, stop_mu_;
    std::condition_variable life_cv_;
    State state_ = State::Idle;
    bool loop_done_ = false;
    struct lws_context *ctx_ = nullptr;
    struct lws_vhost *vhost_ = nullptr;
    std::atomic<int> port_{-1};
    std::thread thread_;
    std::atomic<std::thread::id> service_tid_{};

    // Cross-thread commands. cmd_mu_ guards cmds_ and cmd_open_; cmd_open_
    // is true only while the loop can drain, so lws_cancel_service() under
    // the lock never touches a destroyed context.
    std::mutex cmd_mu_;
    std::vector<Command> cmds_;
    bool cmd_open_ = false;
    std::atomic<bool> wake_pending_{false};

    // Set by request_stop(), possibly from a signal handler: that is only
    // allowed for lock-free atomics. Read and cleared by the loop.
    std::atomic<bool> stop_requested_{false};
    static_assert(std::atomic<bool>::is_always_lock_free,
                  "wsg_server_request_stop must be async-signal-safe: needs a lock-free atomic bool");
    void check_stop_request();

    // Service thread only.
    bool stopping_ = false;
    bool loop_exit_ = false;
    // The sul comes first so the timer callback can recover its owner.
    struct Timer {
        lws_sorted_usec_list_t sul;
        Server *owner;
    } shutdown_timer_{}, tick_timer_{};
    SteadyClock clock_;
    TimingWheel wheel_;
    // Cost of the heartbeat ticks, reported every 10 s as a debug event
    // "heartbeat_stats" (log2 buckets of microseconds).
    struct TickStats {
        uint64_t ticks = 0, fired = 0;
        uint64_t buckets[40] = {};
        int64_t max_us = 0;
        int64_t window_start_ms = 0;
    } tick_stats_;
    void report_tick_stats(int64_t now);
    std::vector<uint8_t> scratch_;  // LWS_PRE + write batch, for coalesced writes
    Deflater deflater_;             // compression.enabled: outbound messages
    Inflater shared_inflater_;      // whole inbound messages without client context
    std::string inflated_;          // a whole inbound message, inflated
    SSL_CTX *ssl_ctx_ = nullptr;    // lws' server context, for reloads
    void *evloop_ = nullptr;        // libev loop (tuning.event_loop=epoll), ours
    void *foreign_loops_[1] = {nullptr};
    // Accepted requests between CONFIRM_UPGRADE and ESTABLISHED: what the
    // checks learnt, and the per-IP/per-user counts they hold.
    struct Pending {
        struct lws *wsi = nullptr;
        AuthOutcome auth;
        bool authed = false;
        IpAddr ip;
        bool ip_counted = false, user_counted = false;
        // permessage-deflate: the offer to accept (pmd_pick_offer) and how
        // many offers lws has asked about so far.
        PmdOffer pmd;
        int pmd_asked = 0;
    };
    std::vector<Pending> pending_;
    void release_counts(const IpAddr &ip, bool ip_counted, const std::string &user, bool user_counted);
    IpAddr client_of(struct lws *wsi);
    // Service thread only.
    std::unique_ptr<HandshakeLimiter> handshakes_;
    IpConnCounter per_ip_;
    UserConnCounter per_user_;
    uint64_t dropped_messages_ = 0;
};

}  // namespace wsgate

struct wsg_server : wsgate::Server {
    explicit wsg_server(wsgate::Settings settings) : Server(std::move(settings), this) {}
};
