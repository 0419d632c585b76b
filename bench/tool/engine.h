// One epoll event loop driving a share of the connections of a run.
//
// A worker process runs one Engine per thread; engines share nothing but
// the read-only Options, the SSL_CTX (thread-safe for SSL_new) and a few
// atomics with the process's coordinating thread (go time, stop flag,
// progress counters).
#pragma once

#include <openssl/ssl.h>
#include <sys/epoll.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "histogram.h"
#include "wsproto.h"

namespace bench {

enum class Mode { Connect, Echo, Fanout, Churn };
const char *mode_name(Mode m);

struct Options {
    Mode mode = Mode::Echo;
    Target url, pub_url;
    // fanout: every --url in order (urls[0] is url); subscriber i connects to
    // urls[i mod n], so subscribers can be spread over several servers.
    std::vector<Target> urls;
    uint64_t connections = 100;
    double duration = 10;
    double warmup = 0;
    uint32_t window = 1;
    size_t size = 64;
    bool text = false;
    double rate = -1;  // -1: the mode's default
    uint32_t publishers = 1;
    uint32_t topics = 0;    // fanout: 0 = every subscriber gets every message (broadcast)
    uint64_t slow = 0;      // fanout: subscribers that stop reading when the measurement starts
    uint32_t messages = 1;  // churn
    uint32_t concurrency = 256;
    std::vector<struct sockaddr_storage> sources;
    std::vector<std::string> source_names;
    int threads = 1;
    int processes = 0;  // 0: as many as the open-file limit needs
    double connect_timeout = 10;
    double drain_timeout = 5;
    double close_timeout = 2;
    double setup_timeout = 0;  // 0: derived from the others
    double settle = -1;        // -1: mode default
    std::vector<std::string> headers;
    std::string token, token_query, origin;
    std::string ca_file;
    int server_pid = 0;
    std::vector<int> also_pids;  // --also-pid: more local processes whose CPU time is sampled
    bool allow_remote = false;
    bool quiet = false;

    // Derived by the coordinator.
    std::string request_head;  // request up to (not including) Sec-WebSocket-Key
    std::string pub_request_head;
    // fanout: the subscribers' request heads, one per urls[k]; with --topics a
    // subscriber's request is topic_heads_a[k] + its topic + topic_heads_b[k].
    std::vector<std::string> sub_heads, topic_heads_a, topic_heads_b;

    // Fanout groups: one per topic, or a single one for broadcast.
    uint32_t groups() const { return topics ? topics : 1; }
};

// Counters of one engine, one process or the whole run: everything sums.
struct Stats {
    uint64_t attempted = 0, connected = 0, failed = 0, dropped = 0, protocol_errors = 0;
    std::map<std::string, uint64_t> failures;
    uint64_t open_at_end = 0;  // connect: open when the hold ended
    uint64_t sent = 0, received = 0, window_received = 0, window_sent = 0;
    uint64_t bytes_sent = 0, bytes_received = 0;
    uint64_t lost = 0, mismatched = 0;
    uint64_t subscribers = 0, publishers = 0;
    uint64_t published = 0, delivered = 0, window_delivered = 0, duplicates = 0, pub_received = 0;
    uint64_t publish_skipped = 0;
    // fanout --slow: the subscribers that stop reading are counted apart
    // (subscribers, delivered, dropped and failures above are the others').
    uint64_t slow_subscribers = 0, slow_delivered = 0, slow_dropped = 0;
    // fanout, per group (topic): messages published to it, subscribers
    // (others and slow) that opened on it. expected = sum published x subscribers.
    std::vector<uint64_t> group_published, group_subscribers, group_slow;
    uint64_t opened = 0, window_opened = 0, closed_clean = 0, close_timeouts = 0;
    uint64_t pings = 0, window_pings = 0;
    int64_t first_connect_ns = INT64_MAX, last_open_ns = 0;
    Histogram rtt, latency, handshake;
    std::vector<Histogram> latency_by_url;  // fanout with several --url: latency per subscriber URL

    void fail(const std::string &why) { failures[why]++; }
    void merge(const Stats &o);
    nlohmann::json to_json() const;
    static Stats from_json(const nlohmann::json &j);
};

// What an engine publishes for the progress line (relaxed atomics).
struct Live {
    std::atomic<uint64_t> open{0}, sent{0}, received{0}, delivered{0}, failed{0}, opened{0},
        published{0};
};

// Shared between the engines of a process and its coordinating thread.
struct Control {
    std::atomic<int64_t> go_ns{0};      // start of the measured phase (CLOCK_MONOTONIC)
    std::atomic<bool> stop{false};      // end the run early (SIGINT at the coordinator)
    std::atomic<int> ready{0};          // engines done with their setup phase
    std::atomic<int> finished{0};       // engines done entirely
    std::atomic<int> past_run{0};       // engines whose measured phase ended (publishing over)
    // fanout: messages published to each group by every publisher of the
    // run, once the coordinator has heard from every process: written once,
    // then expect_ready is set (release); readers check it first (acquire).
    std::vector<uint64_t> expected_groups;
    std::atomic<bool> expect_ready{false};
};

int64_t mono_ns();

class Engine {
public:
    // index: this engine's number among all engines of the run (process *
    // threads + thread); engines: how many there are in all.
    Engine(const Options &opt, SSL_CTX *tls, Control *ctl, int index, int engines);
    ~Engine();
    Engine(const Engine &) = delete;
    Engine &operator=(const Engine &) = delete;

    void run();
    const Stats &stats() const { return stats_; }
    // fanout: messages published per group; read by the process's thread
    // only once this engine is past its measured phase (Control::past_run).
    const std::vector<uint64_t> &published_per_group() const { return stats_.group_published; }
    Live live;

private:
    enum class St : uint8_t { Connecting, Tls, Upgrading, Open, Closing, Done };
    enum class Role : uint8_t { Client, Publisher, Churn };
    enum class Phase { Setup, WaitGo, Run, Drain, Closing, Finished };

    struct Conn {
        int fd = -1;
        St st = St::Connecting;
        Role role = Role::Client;
        bool want_out = false;
        bool close_sent = false, close_received = false;
        bool timed = false;
        bool counted_open = false;
        bool slow = false;    // fanout --slow: stops reading during the measured phase
        bool paused = false;  // not reading now (EPOLLIN off)
        uint8_t frag_op = 0;
        uint32_t pub_id = 0;
        uint32_t group = 0;  // fanout subscriber: its topic (0 for broadcast)
        uint32_t target = 0; // fanout subscriber: its server, an index into urls
        uint32_t inflight = 0;
        uint32_t msgs_left = 0;
        uint64_t index = 0;
        SSL *ssl = nullptr;
        int64_t t_start = 0, deadline = 0;
        uint8_t key[16];
        std::string in, out, frag;
        size_t out_off = 0;
        uint64_t send_seq = 0, recv_seq = 0;
        std::vector<int64_t> ts;            // echo: send times, ring of `window`
        std::vector<uint64_t> next_pub_seq; // subscriber: next seq per publisher
        Conn *prev = nullptr, *next = nullptr;  // live list
    };

    void tick(int64_t now);
    void launch(Role role, uint64_t index, int64_t now);
    void on_event(Conn *c, uint32_t events, int64_t now);
    void on_connected(Conn *c, int64_t now);
    void tls_handshake(Conn *c, int64_t now);
    const Target &target_of(const Conn *c) const;
    void send_upgrade(Conn *c);
    bool on_handshake_bytes(Conn *c, int64_t now);
    void on_open(Conn *c, int64_t now);
    bool read_some(Conn *c, int64_t now);
    bool process(Conn *c, const uint8_t *p, size_t n, int64_t now);
    bool on_frame(Conn *c, bool fin, int op, const uint8_t *p, size_t n, int64_t now);
    void on_message(Conn *c, const uint8_t *p, size_t n, int64_t now);
    void echo_send(Conn *c, int64_t now);
    void publish(Conn *c, int64_t now);
    void send_close(Conn *c, int code, int64_t now);
    bool flush(Conn *c);
    void set_out(Conn *c, bool on);
    void fail(Conn *c, const std::string &why, int64_t now);
    void finish(Conn *c, int64_t now);
    void arm(Conn *c, int64_t deadline);
    void check_deadlines(int64_t now);
    void begin_closing(int64_t now);
    void start_run(int64_t now);
    int64_t next_wake(int64_t now) const;
    uint32_t mask() { return static_cast<uint32_t>(rng_.next()); }
    void publish_live();
    void pause_slow(bool on);
    bool fanout_drained(int64_t now);

    const Options &opt_;
    SSL_CTX *tls_;
    Control *ctl_;
    int index_, engines_;
    int ep_ = -1;
    Rng rng_;
    Stats stats_;
    Phase phase_ = Phase::Setup;

    // Work assigned to this engine.
    std::vector<uint64_t> client_ids_;
    std::vector<uint32_t> pub_ids_;
    size_t launched_clients_ = 0, launched_pubs_ = 0;
    uint32_t max_pending_ = 1;
    double rate_ = 0;        // connect/churn: opens per second for this engine
    double pub_rate_ = 0;    // fanout: messages per second per publisher
    uint64_t churn_cap_ = 1; // churn: most connections at once
    uint64_t churn_seq_ = 0;

    // Live connections (intrusive list), those with a deadline, and those
    // finished in this loop iteration (freed after the event batch).
    Conn *head_ = nullptr;
    size_t live_count_ = 0;
    size_t pending_ = 0;  // in Connecting/Tls/Upgrading
    uint64_t open_ = 0;
    std::vector<Conn *> timed_;
    std::vector<Conn *> graveyard_;
    std::vector<Conn *> pubs_;

    int64_t setup_start_ = 0, setup_deadline_ = 0;
    int64_t go_ = 0, measure_from_ = 0, end_ = 0, drain_deadline_ = 0, close_deadline_ = 0;
    int64_t last_delivery_ = 0, last_scan_ = 0;
    int64_t last_slow_delivery_ = 0;
    bool slow_paused_ = false;
    uint64_t expected_ = 0;  // fanout: deliveries this engine's subscribers must get (once known)
    bool expected_known_ = false;
    uint64_t echo_inflight_ = 0;
    std::vector<uint8_t> payload_;  // echo/churn template; fanout scratch
    std::vector<uint8_t> rbuf_;
};

}  // namespace bench
