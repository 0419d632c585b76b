// One WebSocket server: the composition root. It builds the parts (transport,
// gate, inbox, outbox, heartbeat, mailbox, registry), owns the lifecycle
// (listen, serve, stop) and the end of every connection, and routes the
// transport's events to the parts. No part calls back into it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cluster/cluster.h"
#include "config/settings.h"
#include "core/callbacks.h"
#include "core/conn.h"
#include "core/gate.h"
#include "core/heartbeat.h"
#include "core/history.h"
#include "core/inbox.h"
#include "core/mailbox.h"
#include "core/memory_trim.h"
#include "core/outbox.h"
#include "core/pages.h"
#include "core/close_advice.h"
#include "core/async_calls.h"
#include "core/probes.h"
#include "core/registry.h"
#include "core/sessions.h"
#include "core/topics.h"
#include "core/wheel.h"
#include "observe/episode.h"
#include "observe/log.h"
#include "observe/metrics.h"
#include "transport/transport.h"

// The connection snapshot handed out by wsg_conn_info_get (ABI type).
struct wsg_conn_info {
    std::string peer_addr, path, query, origin, subprotocol, tls_subject, user_id, claims;
    int64_t peer_port = 0, connected_at_ms = 0, duration_ms = 0;
    int64_t msgs_in = 0, bytes_in = 0, msgs_out = 0, bytes_out = 0;
    int64_t id = 0;
    int64_t rtt_us = -1;
    int64_t compression = 0;
    int64_t queued_bytes = 0, msgs_dropped = 0, queue_policy = 0;
    std::vector<std::string> topics;
};

namespace wsgate {

// Checks a per-connection heartbeat override (key and range).
wsg_status check_conn_timeout(const char *key, int64_t value);

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
    // A graceful stop spread over duration_ms: new upgrades get 503, open
    // connections are closed with 1012 in a random order at an even pace,
    // then the normal stop. Waits until the server stopped (like stop()).
    wsg_status drain(int64_t duration_ms);
    static constexpr int64_t kMaxDrainMs = 3600000;
    // True from the start of a drain (or stop) until the server listens
    // again: not ready for new connections. Any thread.
    bool draining() const { return draining_.load(std::memory_order_relaxed); }
    // Async-signal-safe: one lock-free store, nothing else. The loop begins
    // the graceful stop when it next looks (at its start and every tick); a
    // request made while no loop runs waits for the next one.
    void request_stop() noexcept { stop_requested_.store(true, std::memory_order_relaxed); }
    wsg_status port(int *out) const;
    // The metrics listener's port (metrics.listen).
    wsg_status metrics_port(int *out) const;
    // Only while idle (WSG_ESTATE otherwise).
    wsg_status add_page(const char *path, const char *content_type, const void *body, size_t len);
    // The close-code contract (any thread).
    CloseAdvice &close_advice() { return close_advice_; }
    const CloseAdvice &close_advice() const { return close_advice_; }
    // True while the caller is this server's service thread.
    bool on_service_thread() const {
        return service_tid_.load(std::memory_order_acquire) == std::this_thread::get_id();
    }
    // Callbacks may be registered only while idle.
    bool is_idle();

    // Any thread.
    wsg_status send(wsg_conn_id id, wsg_msg_type type, const void *data, size_t len);
    wsg_status close(wsg_conn_id id, int code, const char *reason);
    // To every open connection but `except` (0: none).
    wsg_status broadcast(wsg_msg_type type, const void *data, size_t len, wsg_conn_id except = 0);
    wsg_status send_many(const wsg_conn_id *ids, size_t n, wsg_msg_type type, const void *data, size_t len);
    wsg_status subscribe(wsg_conn_id id, const char *topic, bool on);
    wsg_status publish(const char *topic, wsg_msg_type type, const void *data, size_t len);
    wsg_status topic_subscribers(const char *topic, wsg_conn_id *ids, size_t capacity, size_t *count);
    wsg_status user_send(const char *user, wsg_msg_type type, const void *data, size_t len);
    wsg_status user_close(const char *user, int code, const char *reason);
    wsg_status user_conn_ids(const char *user, wsg_conn_id *ids, size_t capacity, size_t *count);
    // wsg_topic_presence ('t') and wsg_user_presence ('u'). Any thread.
    wsg_status presence(char kind, const char *name, wsg_result_fn fn, void *user);
    wsg_status set_timeout(wsg_conn_id id, const char *key, int64_t value);
    wsg_status set_queue_policy(wsg_conn_id id, wsg_queue_policy policy);
    wsg_status reload_tls();
    size_t conn_count() const { return registry_.count(); }
    // Any thread: the Prometheus exposition (observe/metrics.h).
    std::string metrics_text() const { return metrics_.render(); }
    // Any thread. Alive: the service loop turns (its tick ran lately).
    bool healthy() const;
    // Any thread. Accepting upgrades: serving, not draining or stopping,
    // healthy, and with cluster.require the cluster up.
    bool ready() const { return metrics_.ready.get() == 1 && healthy(); }
    size_t conn_ids(wsg_conn_id *ids, size_t capacity);
    wsg_status conn_info(wsg_conn_id id, wsg_conn_info *out);
    wsg_status set_user(wsg_conn_id id, void *ptr);
    wsg_status get_user(wsg_conn_id id, void **out);
    // Any thread: wsg_session_set/get/delete. WSG_OK: `reply` runs once,
    // later, on the service thread (also when called there).
    wsg_status session(SessionOp::Kind kind, const char *key, const void *data, size_t len, int64_t ttl_ms,
                       AsyncReply reply);
    // Any thread: wsg_conn_subscribe_from (core/history.h). WSG_OK: `reply`
    // runs once, later, on the service thread.
    wsg_status subscribe_from(wsg_conn_id id, const char *topic, const wsg_position *from, AsyncReply reply);

    AppCallbacks app;
    Logger log;

private:
    enum class State { Idle, Listening, Running };

    // What the transport reports, routed through a member object: the
    // service thread calls it until stop() has joined, which ~Server does
    // before members are destroyed (a virtual call into Server itself would
    // race with its destructor rewriting its vptr).
    // Output queued while handling an event is written before it returns
    // (Outbox::flush).
    struct Events final : TransportEvents {
        explicit Events(Server *s) : s(s) {}
        Server *s;
        bool on_accept(int fd) override { return s->on_accept(fd); }
        void on_accept_error(int err, size_t closed) override { s->on_accept_error(err, closed); }
        bool on_open(Link *link, Listener from) override { return s->on_open(link, from); }
        bool on_read(Link *link, uint8_t *data, size_t len) override {
            bool keep = s->on_read(link, data, len);
            s->outbox_.flush();
            return keep;
        }
        bool on_writable(Link *link) override {
            bool keep = s->on_writable(link);
            s->outbox_.flush();
            return keep;
        }
        void on_close(Link *link) override {
            s->on_close(link);
            s->outbox_.flush();
        }
        void on_wake() override {
            s->on_wake();
            s->outbox_.flush();
        }
        std::string on_tls_context(SSL_CTX *ctx) override { return s->on_tls_context(ctx); }
        bool on_client_certificate(bool verified) override { return s->on_client_certificate(verified); }
        void on_transport_error(const std::string &message) override { s->on_transport_error(message); }
    };
    bool on_accept(int fd);
    void on_accept_error(int err, size_t closed);
    bool on_open(Link *link, Listener from);
    // A request to the metrics listener: read, answered, done.
    bool on_probe_read(ProbeRequest *p, const uint8_t *data, size_t len);
    bool on_read(Link *link, uint8_t *data, size_t len);
    void upgraded_later(Gate::Result &r);
    bool on_writable(Link *link);
    void on_close(Link *link);
    void on_wake();
    std::string on_tls_context(SSL_CTX *ctx);
    bool on_client_certificate(bool verified);
    void on_transport_error(const std::string &message);

    // What the cluster reports (service thread), through a member object
    // for the same reason as Events.
    struct ClusterEvents final : ClusterSink {
        explicit ClusterEvents(Server *s) : s(s) {}
        Server *s;
        void on_cluster_message(const Envelope &e) override {
            s->on_cluster_message(e);
            s->outbox_.flush();
        }
        void on_cluster_node(uint16_t node) override { s->on_cluster_node(node); }
        void on_cluster_state(bool up) override {
            s->update_ready();
            s->history_.on_cluster_state(up);
            s->outbox_.flush();
        }
        void on_presence_snapshot(std::vector<PresenceGroup> *out) override { s->presence_snapshot(out); }
        void on_topic_listening(const std::string &topic) override {
            s->history_.on_listening(topic);
            s->outbox_.flush();
        }
    };
    void on_cluster_message(const Envelope &e);
    void on_cluster_node(uint16_t node);
    // Every local presence entry, for the cluster's resync.
    void presence_snapshot(std::vector<PresenceGroup> *out) const;
    // Appends this instance's presence entries of a topic ('t') or user ('u').
    void local_presence(char kind, const std::string &name, std::vector<wsg_result::Entry> *out) const;
    // A subscription or a user's connection began or ended: presence in Redis follows.
    void presence_changed(char kind, const std::string &name, const Conn *c, int64_t since_ms, bool on);
    // The loop ends once the cluster said goodbye (a clean stop removes this
    // instance's presence at once), bounded by cluster.command_timeout_ms.
    void exit_loop();
    // A connection id of another node of the cluster (with the cluster on).
    bool remote_id(wsg_conn_id id) const;
    // Hands one envelope for other instances to the cluster, from any
    // thread: WSG_ECLUSTER when the cluster is down, saying why (`what`
    // names the call).
    wsg_status relay(std::string channel, std::string envelope, const std::string &what);
    // WSG_ECLUSTER with the reason the cluster is down.
    wsg_status cluster_down(const std::string &what) const;
    // Whether a message or close for `user` can go anywhere: WSG_OK when the
    // user has a local connection or, with the cluster up, may have one on
    // another instance; else WSG_ENOTFOUND (no cluster) or WSG_ECLUSTER.
    wsg_status user_reachable(const char *user);
    // The envelope of a message or close for other instances: "" without a
    // cluster.
    std::string envelope(EnvelopeKind kind, wsg_msg_type type, std::string_view target, std::string_view body) const;

    // Type, data and (with m) size of a message to send.
    wsg_status check_message(wsg_msg_type type, const void *data, size_t len, const OutMessage *m) const;
    // Checks a close code and reason as wsg_conn_close takes them.
    static wsg_status check_close(int code, const char *reason, std::string *why);
    // Runs f() with the registry locked unless on the service thread.
    template <class F>
    auto locked(F &&f);
    wsg_status listen_locked();
    void loop();
    void close_transport();
    void opened(Gate::Result &r);
    // Ends a connection: on_close, the close event, out of every index.
    void finish(Conn *c);
    // Ends it at once, no handshake (the peer is not answering).
    void drop(Conn *c, int code, const std::string &reason, wsg_close_cause cause);
    void on_tick();
    void on_timer(WheelTimer *t, int64_t now);
    void begin_shutdown();
    // wsg_server_stop and drain: post `c` to a running loop and wait for it
    // to end.
    wsg_status stop_with(Command c);
    void report_tick_stats(int64_t now);
    // Readiness changed (the loop started or ends, a stop began): the
    // /readyz answer and the wsgate_ready gauge follow.
    void update_ready();
    // The topics and subscriptions gauges, after the index changed.
    void count_topics();
    // After a burst of queued output, freed memory back to the system (tuning.trim_memory).
    void trim_memory();
    // accept_refused and accept_failed: ended or due for a reminder.
    void report_accept_episodes(int64_t now);
    void log_accept_refused(int64_t now, bool ended);
    void log_accept_failed(int64_t now, bool ended);
    void execute(cmd::Send &c);
    void execute(cmd::Close &c);
    void execute(cmd::Broadcast &c);
    void execute(cmd::SendMany &c);
    void execute(cmd::Subscribe &c);
    void execute(cmd::Publish &c);
    void execute(cmd::UserSend &c);
    void execute(cmd::UserClose &c);
    void execute(cmd::Stop &c);
    void execute(cmd::Drain &c);
    void execute(cmd::SetTimeout &c);
    void execute(cmd::ReloadTls &c);
    void execute(cmd::SetQueuePolicy &c);
    void execute(cmd::Relay &c);
    void execute(cmd::Session &c);
    void execute(cmd::Presence &c);
    void execute(cmd::HistoryPublish &c);
    void execute(cmd::SubscribeFrom &c);
    // What the history hands to the fan-out (service thread), through a
    // member object like Events.
    struct HistoryEvents final : HistorySink {
        explicit HistoryEvents(Server *s) : s(s) {}
        Server *s;
        void history_deliver(const std::string &topic, const wsg_position &pos, wsg_msg_type type,
                             std::string_view payload, wsg_conn_id only) override {
            s->history_deliver(topic, pos, type, payload, only);
        }
        void history_deliver_held(wsg_conn_id conn, OutMessage &m) override;
        bool history_conn_open(wsg_conn_id conn) override;
    };
    // A history message, shaped by the history hook, to the topic's local
    // subscribers (or to `only`).
    void history_deliver(const std::string &topic, const wsg_position &pos, wsg_msg_type type,
                         std::string_view payload, wsg_conn_id only);
    // Runs direct(conn) at once on the service thread; elsewhere checks the
    // id under the registry lock and posts make() for the loop.
    template <class Direct, class Make>
    wsg_status dispatch(wsg_conn_id id, bool claim_close, Direct &&direct, Make &&make);
    template <class F>
    wsg_status with_conn(wsg_conn_id id, F &&f);

    Settings cfg_;
    // Before the parts that count into it.
    Metrics metrics_;
    Registry registry_;
    TopicIndex topics_;  // changed under registry_.mu, like the registry
    UserIndex users_;    // the same
    SteadyClock clock_;
    TimingWheel wheel_;
    Heartbeat heartbeat_;
    Events events_{this};
    Transport transport_;
    Admission admission_;
    Pages pages_;
    CloseAdvice close_advice_;  // wsg_server_set_close_advice
    Outbox outbox_;
    Inbox inbox_;
    Gate gate_;
    Probes probes_;
    Mailbox mailbox_;
    ClusterEvents cluster_events_{this};
    Cluster cluster_;  // off without cluster.redis
    AsyncCalls calls_;   // asynchronous calls waiting for Redis
    Sessions sessions_;  // session data
    HistoryEvents history_events_{this};
    History history_;  // cluster.history_topics

    // Lifecycle: life_mu_ guards state_, the transport's opening and closing
    // and thread_; stop_mu_ serialises whole stop() calls.
    std::mutex life_mu_, stop_mu_;
    std::condition_variable life_cv_;
    State state_ = State::Idle;
    bool loop_done_ = false;
    std::atomic<int> port_{-1}, metrics_port_{-1};
    std::thread thread_;
    std::atomic<std::thread::id> service_tid_{};
    // Set by request_stop(), possibly from a signal handler: that is only
    // allowed for lock-free atomics. Read and cleared by the loop.
    std::atomic<bool> stop_requested_{false};
    static_assert(std::atomic<bool>::is_always_lock_free,
                  "wsg_server_request_stop must be async-signal-safe: needs a lock-free atomic bool");

    std::atomic<bool> draining_{false};  // see draining()

    // Monotonic ms of the last tick (0: no loop turns): healthy() reads it.
    std::atomic<int64_t> last_tick_ms_{0};
    // Service thread only (and lifecycle calls before it starts).
    bool serving_ = false;  // the loop runs (ready unless stopping)
    bool stopping_ = false;
    // The drain in progress: connections are closed in `order` (shuffled),
    // as many by now as the elapsed share of the duration; then the stop.
    struct Drain {
        bool active = false;
        int64_t start_ms = 0, duration_ms = 0;
        std::vector<wsg_conn_id> order;
        size_t next = 0;
    } drain_;
    void begin_drain(int64_t duration_ms);
    void stop_requested();
    void drain_step(int64_t now);
    bool loop_exit_ = false;
    Transport::Timer tick_timer_, shutdown_timer_, leave_timer_;
    static constexpr int64_t kMaxLeaveMs = 1000;  // see exit_loop()
    SSL_CTX *ssl_ctx_ = nullptr;  // the TLS server context, for reloads
    // The peer of the socket on_accept admitted last: on_open follows for
    // the same descriptor at once.
    int accepted_fd_ = -1;
    IpAddr accepted_peer_;
    // Connections closed at accept over a limit, and accept() failures.
    Episode accept_refused_, accept_failed_;
    MemoryTrim memory_trim_;  // tuning.trim_memory
    IpAddr refused_peer_;  // the first of the episode
    const char *refused_limit_ = "";
    int accept_errno_ = 0;
    // Cost of the heartbeat ticks, reported every 10 s as a debug event
    // "heartbeat_stats" (log2 buckets of microseconds).
    struct TickStats {
        uint64_t ticks = 0, fired = 0;
        uint64_t buckets[40] = {};
        int64_t max_us = 0;
        int64_t window_start_ms = 0;
    } tick_stats_;
};

}  // namespace wsgate

struct wsg_server : wsgate::Server {
    explicit wsg_server(wsgate::Settings settings) : Server(std::move(settings), this) {}
};
