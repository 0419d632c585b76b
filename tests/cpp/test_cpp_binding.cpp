// The C++ binding (include/wsgate/wsgate.hpp) against the shared library, with
// real clients (tests/support/wsclient.c) over loopback: handlers fire with
// the right arguments, every way of sending arrives, failures throw
// wsgate::Error with the core's status and message (or set a
// std::error_code), a moved-from server is inert, a throwing handler neither
// crashes nor leaks, and handlers are destroyed exactly once (ASan/LSan in
// the asan stage prove nothing leaks). Compiled with -Wall -Wextra -Werror
// -pedantic -std=c++17 (tests/cpp/cpp.cmake).
#include <wsgate/wsgate.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include <unistd.h>

#include "testutil.h"
#include "wsclient.h"

namespace {

// ---------------------------------------------------------------- harness
// A failed REQUIRE throws, so the case's RAII objects (servers, clients)
// are torn down normally and the next case still runs.
struct Failure {
    std::string what;
};

#define REQUIRE(cond)                                                                        \
    do {                                                                                     \
        if (!(cond)) throw Failure{std::string(__FILE__ ":") + std::to_string(__LINE__) +   \
                                   ": REQUIRE(" #cond ") failed"};                           \
    } while (0)

// The call must throw wsgate::Error with `status`; returns its message.
template <class F>
std::string require_error(F &&f, wsgate::Status status, int line) {
    try {
        f();
    } catch (const wsgate::Error &e) {
        if (e.status() != status)
            throw Failure{"line " + std::to_string(line) + ": threw " + e.what() + ", want " +
                          wsgate::to_string(status)};
        return e.message();
    }
    throw Failure{"line " + std::to_string(line) + ": did not throw " +
                  std::string(wsgate::to_string(status))};
}
#define REQUIRE_ERROR(expr, status) require_error([&] { expr; }, status, __LINE__)

template <class Pred>
bool wait_until(Pred pred, int timeout_ms = 5000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (!pred()) {
        if (std::chrono::steady_clock::now() > deadline) return pred();
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return true;
}

// ---------------------------------------------------------------- helpers
wsgate::Config test_config() {
    wsgate::Config cfg;
    cfg.set("listen.host", "127.0.0.1").set("listen.port", 0).set("log.level", "error");
    return cfg;
}

// A client connection, closed without a close frame when it goes.
class Client {
public:
    Client(int port, const char *path = "/", const char *headers = nullptr) {
        c_ = wsc_connect("127.0.0.1", port, path, headers, 5000, &status_);
    }
    Client(const Client &) = delete;
    Client &operator=(const Client &) = delete;
    ~Client() {
        if (c_) wsc_free(c_);
    }
    bool ok() const { return c_ != nullptr; }
    int status() const { return status_; }
    void text(const std::string &s) { REQUIRE(wsc_send_frame(c_, 1, 1, s.data(), s.size()) == 0); }
    void binary(const std::string &s) { REQUIRE(wsc_send_frame(c_, 2, 1, s.data(), s.size()) == 0); }
    // Next data message as "T:payload" or "B:payload"; "close:CODE" for a
    // close frame; "" on timeout or error.
    std::string recv(int timeout_ms = 5000) {
        wsc_frame f{};
        int r = wsc_recv_message(c_, &f, timeout_ms);
        if (r != 1) return "";
        std::string out;
        if (f.opcode == 8) {
            out = "close:" + std::to_string(f.close_code);
            wsc_send_close(c_, f.close_code, "");  // answer it, as a real client does
        } else {
            out = std::string(f.opcode == 1 ? "T:" : f.opcode == 2 ? "B:" : "?:") +
                  std::string(reinterpret_cast<const char *>(f.data), f.len);
        }
        wsc_frame_free(&f);
        return out;
    }
    // Nothing arrives within `ms`.
    bool quiet(int ms = 150) { return recv(ms).empty(); }
    int close(int code = 1000) {
        int r = wsc_close(c_, code, 5000);
        c_ = nullptr;
        return r;
    }

private:
    wsc *c_ = nullptr;
    int status_ = 0;
};

// What handlers saw, guarded by one mutex (they run on the service thread).
struct Record {
    std::mutex mu;
    std::vector<wsgate::ConnId> opened;
    std::vector<std::string> messages;  // "T:..." / "B:..."
    std::map<wsgate::ConnId, wsgate::CloseEvent> closed;
    std::map<wsgate::ConnId, std::string> close_reasons;
    std::vector<std::string> errors;  // "handler|what|conn"
    size_t open_count() {
        std::lock_guard<std::mutex> lock(mu);
        return opened.size();
    }
    size_t close_count() {
        std::lock_guard<std::mutex> lock(mu);
        return closed.size();
    }
    wsgate::ConnId open_at(size_t i) {
        std::lock_guard<std::mutex> lock(mu);
        return i < opened.size() ? opened[i] : wsgate::ConnId();
    }
};

void record_handlers(wsgate::Server &srv, Record &rec, bool echo) {
    srv.on_open([&rec](wsgate::ServerRef, wsgate::ConnId id) {
        std::lock_guard<std::mutex> lock(rec.mu);
        rec.opened.push_back(id);
    });
    srv.on_message([&rec, echo](wsgate::ServerRef s, wsgate::ConnId id, wsgate::Message m) {
        {
            std::lock_guard<std::mutex> lock(rec.mu);
            rec.messages.push_back((m.is_text() ? "T:" : "B:") + m.bytes().to_string());
        }
        if (echo) s.send(id, m);
    });
    srv.on_close([&rec](wsgate::ServerRef, wsgate::ConnId id, const wsgate::CloseEvent &ev) {
        std::lock_guard<std::mutex> lock(rec.mu);
        rec.closed.emplace(id, ev);
        rec.close_reasons[id] = std::string(ev.reason);
    });
    srv.on_error([&rec](wsgate::ServerRef, const wsgate::HandlerError &e) {
        std::lock_guard<std::mutex> lock(rec.mu);
        rec.errors.push_back(std::string(e.handler) + "|" + e.what + "|" +
                             std::to_string(e.conn.value()));
    });
}

// Counts live copies of a handler, to prove each is destroyed exactly once.
struct Counted {
    std::shared_ptr<std::atomic<int>> live;
    explicit Counted(std::shared_ptr<std::atomic<int>> l) : live(std::move(l)) { ++*live; }
    Counted(const Counted &o) : live(o.live) { ++*live; }
    Counted(Counted &&o) noexcept : live(o.live) { ++*live; }
    Counted &operator=(const Counted &) = delete;
    ~Counted() { --*live; }
    void operator()(wsgate::ServerRef, wsgate::ConnId) const {}
    void operator()(wsgate::ServerRef, wsgate::ConnId, wsgate::Message) const {}
    void operator()(wsgate::ServerRef, wsgate::ConnId, const wsgate::CloseEvent &) const {}
    void operator()(wsgate::ServerRef, const wsgate::LogEvent &) const {}
    void operator()(wsgate::ServerRef, wsgate::ConnId, std::size_t) const {}
    void operator()(wsgate::ServerRef, wsgate::AuthRequest &) const {}
    void operator()(std::string_view, const wsgate::Position &, wsgate::HistoryMessage &) const {}
};

// ---------------------------------------------------------------- cases

void test_enums_and_values() {
    // Generated from the C lists: same values, same names.
    static_assert(static_cast<int>(wsgate::Status::kEINVAL) == WSG_EINVAL, "");
    static_assert(static_cast<int>(wsgate::Status::kEINTERNAL) == WSG_EINTERNAL, "");
    static_assert(static_cast<int>(wsgate::CloseCause::kDRAIN) == WSG_CAUSE_DRAIN, "");
    static_assert(static_cast<int>(wsgate::Reconnect::kAPP) == WSG_RECONNECT_APP, "");
    static_assert(static_cast<int>(wsgate::QueuePolicy::kCONFLATE) == WSG_QUEUE_CONFLATE, "");
    static_assert(wsgate::close_code::kTRY_AGAIN_LATER == 1013, "");
    static_assert(wsgate::close_code::kSERVICE_RESTART == 1012, "");
    REQUIRE(std::string(wsgate::to_string(wsgate::Status::kENOTFOUND)) == "WSG_ENOTFOUND");
    REQUIRE(std::string(wsgate::to_string(wsgate::CloseCause::kTOO_BIG)) == "too_big");
    REQUIRE(std::string(wsgate::to_string(wsgate::Reconnect::kBACKOFF)) == "backoff");
    REQUIRE(std::string(wsgate::to_string(wsgate::QueuePolicy::kDROP_OLDEST)) == "drop_oldest");
    REQUIRE(std::string(wsgate::describe(wsgate::Status::kOK)) == "success");
    REQUIRE(std::strlen(wsgate::describe(wsgate::CloseCause::kPEER)) > 10);
    REQUIRE(wsgate::close_advice(1013) == wsgate::Reconnect::kBACKOFF);
    REQUIRE(wsgate::close_advice(1008) == wsgate::Reconnect::kNO);
    REQUIRE(wsgate::version_num() == WSG_VERSION_NUM);
    REQUIRE(std::string(wsgate::version()).size() >= 5);

    // std::error_code integration.
    std::error_code ec = wsgate::Status::kECLOSED;
    REQUIRE(ec.category() == wsgate::category());
    REQUIRE(std::string(ec.category().name()) == "wsgate");
    REQUIRE(ec.message().find("WSG_ECLOSED") == 0);
    REQUIRE(ec == wsgate::Status::kECLOSED);

    // ConnId: a small value type.
    wsgate::ConnId none, a(7), b(9);
    REQUIRE(!none && a && a != b && a < b && b >= a && a == wsgate::ConnId(7));
    std::unordered_set<wsgate::ConnId> set{a, b, wsgate::ConnId(7)};
    REQUIRE(set.size() == 2);
    std::ostringstream os;
    os << a;
    REQUIRE(os.str() == "7");
    static_assert(sizeof(wsgate::ConnId) == sizeof(wsg_conn_id), "");

    // Message: string-like is text, byte containers binary, explicit helpers.
    std::string s = "hi";
    std::vector<unsigned char> bytes{1, 2, 3};
    REQUIRE(wsgate::Message("lit").is_text());
    REQUIRE(wsgate::Message(s).is_text() && wsgate::Message(s).text() == "hi");
    REQUIRE(wsgate::Message(std::string_view("x")).is_text());
    REQUIRE(wsgate::Message(bytes).is_binary() && wsgate::Message(bytes).size() == 3);
    REQUIRE(wsgate::binary(s).is_binary() && wsgate::text("t").is_text());
    wsgate::Bytes view(bytes);
    REQUIRE(std::vector<unsigned char>(view.begin(), view.end()) == bytes && view[2] == 3);
}

void test_config_and_options() {
    wsgate::Config cfg;
    cfg.set("listen.port", 9123).set("compression.enabled", true).set("server.path", std::string("/ws"));
    cfg.set("tls.cert_file", std::string_view("c.pem"));
    REQUIRE(cfg.get_int("listen.port") == 9123);
    REQUIRE(cfg.get_bool("compression.enabled"));
    REQUIRE(cfg.get_string("server.path") == "/ws");
    REQUIRE(cfg.get_string("tls.cert_file") == "c.pem");
    cfg.set_from_string("listen.port=9124");
    REQUIRE(cfg.get_int("listen.port") == 9124);

    // A copy is independent; a moved-from Config is empty.
    wsgate::Config copy = cfg;
    copy.set("listen.port", 1);
    REQUIRE(cfg.get_int("listen.port") == 9124 && copy.get_int("listen.port") == 1);
    wsgate::Config moved = std::move(copy);
    REQUIRE(moved.get_int("listen.port") == 1 && !copy);
    REQUIRE_ERROR(copy.get_int("listen.port"), wsgate::Status::kEINVAL);

    // Errors carry the core's status and message, and change nothing.
    std::string msg = REQUIRE_ERROR(cfg.set("listen.port", 70000), wsgate::Status::kEINVAL);
    REQUIRE(msg.find("listen.port") != std::string::npos);
    REQUIRE(cfg.get_int("listen.port") == 9124);
    msg = REQUIRE_ERROR(cfg.set("no.such.key", 1), wsgate::Status::kEINVAL);
    REQUIRE(msg.find("no.such.key") != std::string::npos);
    try {
        cfg.set("listen.port", -5);
        REQUIRE(false);
    } catch (const wsgate::Error &e) {
        REQUIRE(std::string(e.what()).find("WSG_EINVAL: ") == 0);
        REQUIRE(e.code() == wsgate::Status::kEINVAL);
    }

    // The non-throwing form: status in ec, detail in last_error().
    std::error_code ec;
    cfg.set("listen.port", 70000, ec);
    REQUIRE(ec == wsgate::Status::kEINVAL);
    REQUIRE(std::string(wsgate::last_error()).find("listen.port") != std::string::npos);
    REQUIRE(cfg.get_int("no.such", ec) == 0 && ec == wsgate::Status::kEINVAL);
    cfg.set("listen.port", 80, ec);
    REQUIRE(!ec && cfg.get_int("listen.port", ec) == 80 && !ec);

    // The option table.
    auto all = wsgate::options();
    REQUIRE(all.size() == wsgate::option_count() && all.size() > 20);
    auto port = wsgate::find_option("listen.port");
    REQUIRE(port.name == "listen.port" && port.type == "int" && port.range == "0..65535");
    REQUIRE_ERROR(wsgate::find_option("nope.nope"), wsgate::Status::kENOTFOUND);
    REQUIRE(wsgate::find_option("nope.nope", ec).name.empty() && ec == wsgate::Status::kENOTFOUND);
    REQUIRE_ERROR(wsgate::option(all.size()), wsgate::Status::kEINVAL);
}

void test_echo_and_handlers() {
    Record rec;
    wsgate::Server srv(test_config());
    record_handlers(srv, rec, true);
    REQUIRE_ERROR(srv.port(), wsgate::Status::kESTATE);  // not listening yet
    srv.start();
    REQUIRE(srv.ready() && !srv.draining());
    int port = srv.port();
    REQUIRE(port > 0);

    Client c(port, "/?room=a");
    REQUIRE(c.ok());
    REQUIRE(wait_until([&] { return rec.open_count() == 1; }));
    wsgate::ConnId id = rec.open_at(0);
    REQUIRE(id);
    c.text("hello");
    REQUIRE(c.recv() == "T:hello");
    c.binary(std::string("\0\1\2", 3));
    REQUIRE(c.recv() == "B:" + std::string("\0\1\2", 3));

    REQUIRE(srv.conn_count() == 1);
    auto ids = srv.conn_ids();
    REQUIRE(ids.size() == 1 && ids[0] == id);
    wsgate::ConnInfo info = srv.info(id);
    REQUIRE(info.id == id && info.peer_addr == "127.0.0.1" && info.peer_port > 0);
    REQUIRE(info.path == "/" && info.query == "room=a");
    REQUIRE(info.messages_in == 2 && info.bytes_in == 8);
    REQUIRE(info.queue_policy == wsgate::QueuePolicy::kCLOSE);
    REQUIRE(srv.metrics().find("wsgate_connections 1") != std::string::npos);

    // Per-connection calls.
    int marker = 0;
    srv.set_user_data(id, &marker);
    REQUIRE(srv.user_data(id) == &marker);
    srv.set_timeout(id, "heartbeat.pong_wait_ms", std::chrono::seconds(90));
    srv.set_queue_policy(id, wsgate::QueuePolicy::kDROP_NEWEST);
    REQUIRE(wait_until([&] { return srv.info(id).queue_policy == wsgate::QueuePolicy::kDROP_NEWEST; }));

    // The client closes: on_close with its code and reason, cause peer.
    REQUIRE(c.close(4001) == 4001);
    REQUIRE(wait_until([&] { return rec.close_count() == 1; }));
    {
        std::lock_guard<std::mutex> lock(rec.mu);
        const wsgate::CloseEvent &ev = rec.closed.at(id);
        REQUIRE(ev.code == 4001 && ev.cause == wsgate::CloseCause::kPEER);
        REQUIRE(rec.messages.size() == 2 && rec.errors.empty());
    }
    // The id is stale now: the error says so, in both forms.
    std::string msg = REQUIRE_ERROR(srv.send(id, "late"), wsgate::Status::kENOTFOUND);
    REQUIRE(!msg.empty());
    std::error_code ec;
    srv.send(id, "late", ec);
    REQUIRE(ec == wsgate::Status::kENOTFOUND);
    REQUIRE(srv.info(id, ec).id == wsgate::ConnId() && ec == wsgate::Status::kENOTFOUND);
    srv.stop();
    REQUIRE(srv.draining() || !srv.ready());
}

void test_topics_users_and_auth() {
    Record rec;
    wsgate::Config cfg = test_config();
    cfg.set("auth.mode", "callback");
    wsgate::Server srv(cfg);
    record_handlers(srv, rec, false);
    srv.on_auth([](wsgate::ServerRef, wsgate::AuthRequest &req) {
        std::optional<std::string_view> user = req.header("x-user");
        if (!user || req.path() != "/") {
            req.refuse(403, "no x-user header");
            return;
        }
        REQUIRE(!req.header("x-absent").has_value());
        REQUIRE(req.peer_addr() == "127.0.0.1");
        req.accept(std::string(*user));
    });
    srv.start();
    int port = srv.port();

    Client refused(port);
    REQUIRE(!refused.ok() && refused.status() == 403);

    // One at a time, so that the n-th open is the n-th client.
    Client a(port, "/", "x-user: ann\r\n");
    REQUIRE(a.ok() && wait_until([&] { return rec.open_count() == 1; }));
    Client b(port, "/", "x-user: bob\r\n");
    REQUIRE(b.ok() && wait_until([&] { return rec.open_count() == 2; }));
    Client c(port, "/", "x-user: ann\r\n");
    REQUIRE(c.ok() && wait_until([&] { return rec.open_count() == 3; }));
    wsgate::ConnId ann1 = rec.open_at(0), bob = rec.open_at(1), ann2 = rec.open_at(2);
    REQUIRE(srv.info(ann1).user_id == "ann" && srv.info(bob).user_id == "bob");

    // Users.
    auto ann_ids = srv.user_conn_ids("ann");
    std::unordered_set<wsgate::ConnId> ann_set(ann_ids.begin(), ann_ids.end());
    REQUIRE(ann_ids.size() == 2 && ann_set.count(ann1) && ann_set.count(ann2));
    srv.user_send("ann", "for ann");
    REQUIRE(a.recv() == "T:for ann" && c.recv() == "T:for ann" && b.quiet());
    REQUIRE_ERROR(srv.user_send("nobody", "x"), wsgate::Status::kENOTFOUND);

    // Topics.
    srv.subscribe(bob, "news");
    srv.subscribe(ann1, std::string("news"));
    REQUIRE(wait_until([&] { return srv.topic_subscribers("news").size() == 2; }));
    srv.publish("news", wsgate::binary(std::string("n1")));
    REQUIRE(b.recv() == "B:n1" && a.recv() == "B:n1" && c.quiet(100));
    REQUIRE(srv.info(bob).topics == std::vector<std::string>{"news"});
    srv.unsubscribe(bob, "news");
    REQUIRE(wait_until([&] { return srv.topic_subscribers("news").size() == 1; }));
    REQUIRE(srv.topic_subscribers("nobody-follows").empty());
    REQUIRE_ERROR(srv.subscribe(bob, ""), wsgate::Status::kEINVAL);

    // Broadcasts and a set of connections.
    srv.broadcast_except(bob, "not bob");
    REQUIRE(a.recv() == "T:not bob" && c.recv() == "T:not bob" && b.quiet(100));
    srv.broadcast("all");
    REQUIRE(a.recv() == "T:all" && b.recv() == "T:all" && c.recv() == "T:all");
    srv.send_many({bob, ann2}, std::vector<unsigned char>{'m'});
    REQUIRE(b.recv() == "B:m" && c.recv() == "B:m" && a.quiet(100));

    // Close advice, the server's own ranges included.
    srv.set_close_advice(4000, 4099, wsgate::Reconnect::kNO);
    REQUIRE(srv.close_advice(4050) == wsgate::Reconnect::kNO);
    REQUIRE(srv.close_advice(4100) == wsgate::Reconnect::kAPP);
    REQUIRE_ERROR(srv.set_close_advice(10, 20, wsgate::Reconnect::kNO), wsgate::Status::kEINVAL);

    // Closing: one connection, then a user's.
    srv.close(bob, 4000, "bye");
    REQUIRE(b.recv() == "close:4000");
    srv.user_close("ann", wsgate::close_code::kGOING_AWAY, "all of ann");
    REQUIRE(a.recv() == "close:1001" && c.recv() == "close:1001");
    REQUIRE(wait_until([&] { return rec.close_count() == 3; }));
    std::lock_guard<std::mutex> lock(rec.mu);
    REQUIRE(rec.closed.at(bob).cause == wsgate::CloseCause::kAPP);
    REQUIRE(rec.close_reasons.at(bob) == "bye");
    REQUIRE(rec.errors.empty());
}

void test_errors_and_error_codes() {
    // Constructor failure: kETLS with the file's name; the ec form leaves an empty server.
    wsgate::Config bad = test_config();
    bad.set("tls.cert_file", "/nonexistent/cert.pem").set("tls.key_file", "/nonexistent/key.pem");
    std::string msg = REQUIRE_ERROR(wsgate::Server srv(bad), wsgate::Status::kETLS);
    REQUIRE(msg.find("/nonexistent/") != std::string::npos);
    std::error_code ec;
    wsgate::Server empty(bad, ec);
    REQUIRE(ec == wsgate::Status::kETLS && !empty);

    // A moved-from Config is refused (not taken for "all defaults").
    wsgate::Config gone = test_config();
    wsgate::Config taken = std::move(gone);
    REQUIRE(REQUIRE_ERROR(wsgate::Server s(gone), wsgate::Status::kEINVAL).find("empty") != std::string::npos);
    wsgate::Server from_empty(gone, ec);
    REQUIRE(ec == wsgate::Status::kEINVAL && !from_empty);

    wsgate::Server srv(taken);
    srv.listen();
    // Handlers only before listening: kESTATE, in both forms, and the
    // callable is not kept (destroyed at once).
    auto live = std::make_shared<std::atomic<int>>(0);
    REQUIRE_ERROR(srv.on_open(Counted(live)), wsgate::Status::kESTATE);
    srv.on_message(Counted(live), ec);
    REQUIRE(ec == wsgate::Status::kESTATE && *live == 0);
    REQUIRE_ERROR(srv.on_error(nullptr), wsgate::Status::kESTATE);
    REQUIRE_ERROR(srv.listen(), wsgate::Status::kESTATE);
    srv.listen(ec);
    REQUIRE(ec == wsgate::Status::kESTATE);
    REQUIRE(srv.port(ec) > 0 && !ec);
    REQUIRE_ERROR(srv.metrics_port(), wsgate::Status::kESTATE);  // no metrics.listen
    REQUIRE_ERROR(srv.drain(std::chrono::hours(2)), wsgate::Status::kEINVAL);
    REQUIRE_ERROR(srv.close(wsgate::ConnId(12345), 999), wsgate::Status::kEINVAL);
    REQUIRE_ERROR(srv.add_page("/p", "text/plain", std::string("x")), wsgate::Status::kESTATE);
    REQUIRE_ERROR(srv.reload_tls(), wsgate::Status::kESTATE);  // TLS is off
    REQUIRE(srv.request_stop() == wsgate::Status::kOK);
    srv.stop(ec);
    REQUIRE(!ec);
}

void test_pages_and_run_on_caller_thread() {
    wsgate::Server srv(test_config());
    srv.add_page("/hello", "text/plain", std::string("hi there"));
    REQUIRE_ERROR(srv.add_page("no-slash", "text/plain", wsgate::Bytes()), wsgate::Status::kEINVAL);
    srv.listen();
    int port = srv.port();
    std::exception_ptr run_error;
    std::thread runner([&] {
        try {
            srv.run();  // serves on this thread until request_stop()
        } catch (...) {
            run_error = std::current_exception();
        }
    });
    REQUIRE(wait_until([&] { return srv.ready(); }));
    int fd = wsc_tcp_connect("127.0.0.1", port, 5000);
    REQUIRE(fd >= 0);
    const char req[] = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";
    REQUIRE(wsc_fd_send_all(fd, req, sizeof req - 1, 5000) == 0);
    char *head = nullptr;
    int status = wsc_fd_read_response(fd, 5000, &head);
    std::free(head);
    ::close(fd);
    REQUIRE(status == 200);
    wsgate::ServerRef ref = srv;  // what a signal handler would hold
    REQUIRE(ref.request_stop() == wsgate::Status::kOK);
    runner.join();
    REQUIRE(!run_error);
    REQUIRE(wsgate::ServerRef().request_stop() == wsgate::Status::kEINVAL);
}

void test_drain_and_metrics_listener() {
    Record rec;
    wsgate::Config cfg = test_config();
    cfg.set("metrics.listen", "127.0.0.1:0");
    wsgate::Server srv(cfg);
    record_handlers(srv, rec, true);
    srv.start();
    REQUIRE(srv.metrics_port() > 0 && srv.metrics_port() != srv.port());
    Client a(srv.port()), b(srv.port());
    REQUIRE(a.ok() && b.ok());
    REQUIRE(wait_until([&] { return rec.open_count() == 2; }));
    std::thread drainer([&] { srv.drain(std::chrono::milliseconds(100)); });
    // Each client gets 1012 "service restart" (and answers it) during the drain.
    std::string got_a = a.recv(), got_b = b.recv();
    drainer.join();
    REQUIRE(got_a == "close:1012" && got_b == "close:1012");
    REQUIRE(!srv.ready());
    std::lock_guard<std::mutex> lock(rec.mu);
    REQUIRE(rec.closed.size() == 2);
    for (const auto &kv : rec.closed) REQUIRE(kv.second.cause == wsgate::CloseCause::kDRAIN);
}

void test_move_semantics() {
    auto live = std::make_shared<std::atomic<int>>(0);
    Record rec;
    wsgate::Server a(test_config());
    record_handlers(a, rec, true);
    a.on_drain(Counted(live));
    REQUIRE(*live == 1);

    wsgate::Server b(std::move(a));
    // The moved-from server is inert: no handle, every call fails cleanly.
    REQUIRE(!a && a.handle() == nullptr);
    std::string msg = REQUIRE_ERROR(a.start(), wsgate::Status::kEINVAL);
    REQUIRE(msg.find("NULL") != std::string::npos);
    REQUIRE_ERROR(a.on_open(Counted(live)), wsgate::Status::kEINVAL);
    REQUIRE_ERROR(a.on_error(nullptr), wsgate::Status::kEINVAL);
    REQUIRE_ERROR(a.send(wsgate::ConnId(1), "x"), wsgate::Status::kEINVAL);
    REQUIRE(*live == 1 && !a.draining() && a.request_stop() == wsgate::Status::kEINVAL);
    std::error_code ec;
    REQUIRE(a.conn_ids(ec).empty() && ec == wsgate::Status::kEINVAL);

    // The new owner serves with the handlers (and on_error) of the old one.
    b.start();
    Client c(b.port());
    REQUIRE(c.ok());
    c.text("moved");
    REQUIRE(c.recv() == "T:moved");

    // Move assignment over a live server frees that one (and its handlers).
    wsgate::Server other(test_config());
    other.on_open(Counted(live));
    REQUIRE(*live == 2);
    other = std::move(b);
    REQUIRE(*live == 1 && !b);
    c.text("still");
    REQUIRE(c.recv() == "T:still");
    REQUIRE(c.close() == 1000);
    other = wsgate::Server();  // stops, frees it and every handler
    REQUIRE(*live == 0);
    REQUIRE(wait_until([&] { return rec.close_count() == 1; }));
}

void test_handler_lifetime() {
    auto live = std::make_shared<std::atomic<int>>(0);
    {
        wsgate::Server srv(test_config());
        srv.on_open(Counted(live));
        srv.on_message(Counted(live));
        srv.on_close(Counted(live));
        srv.on_log(Counted(live));
        srv.on_drain(Counted(live));
        srv.on_auth(Counted(live));
        srv.on_history(Counted(live));
        REQUIRE(*live == 7);  // one copy each, owned by the C library
        srv.on_open(Counted(live));  // replacing destroys the old one at once
        REQUIRE(*live == 7);
        srv.on_open(nullptr);  // unregistering too
        REQUIRE(*live == 6);
        srv.on_message(std::function<void(wsgate::ServerRef, wsgate::ConnId, wsgate::Message)>());
        REQUIRE(*live == 5);
        void (*none)(wsgate::ServerRef, wsgate::ConnId) = nullptr;
        std::error_code ec;
        srv.on_drain(std::function<void(wsgate::ServerRef, wsgate::ConnId, std::size_t)>(), ec);
        REQUIRE(!ec && *live == 4);
        srv.on_open(none);
        REQUIRE(*live == 4);
        srv.on_history(std::function<void(std::string_view, const wsgate::Position &, wsgate::HistoryMessage &)>());
        REQUIRE(*live == 3);
        srv.on_history(Counted(live));
        REQUIRE(*live == 4);
        srv.start();
    }
    REQUIRE(*live == 0);  // the server's destructor freed the rest
}

void test_throwing_handlers() {
    Record rec;
    wsgate::Config cfg = test_config();
    cfg.set("log.level", "info");  // so that on_log sees (and throws on) "close"
    wsgate::Server srv(cfg);
    record_handlers(srv, rec, true);
    srv.on_message([&rec](wsgate::ServerRef s, wsgate::ConnId id, wsgate::Message m) {
        if (m.text() == "boom") throw std::runtime_error("handler exploded");
        if (m.text() == "int") throw 42;
        {
            std::lock_guard<std::mutex> lock(rec.mu);
            rec.messages.push_back(std::string(m.text()));
        }
        s.send(id, m);
    });
    std::atomic<int> listen_events{0};
    srv.on_log([&listen_events](wsgate::ServerRef, const wsgate::LogEvent &ev) {
        if (ev.name == "listen" && ev.level == wsgate::LogLevel::kINFO &&
            ev.json.find("\"event\":\"listen\"") != std::string_view::npos)
            ++listen_events;
        if (ev.name == "close") throw std::logic_error("log handler failed");
    });
    srv.start();
    int port = srv.port();

    Client a(port), b(port);
    REQUIRE(a.ok() && b.ok());
    REQUIRE(wait_until([&] { return rec.open_count() == 2; }));
    a.text("boom");
    // The connection whose handler threw is closed with 1011; the other serves on.
    REQUIRE(a.recv() == "close:1011");
    b.text("fine");
    REQUIRE(b.recv() == "T:fine");
    b.text("int");
    REQUIRE(b.recv() == "close:1011");
    REQUIRE(wait_until([&] { return rec.close_count() == 2; }));
    REQUIRE(listen_events == 1);
    // Each failure reported once to on_error: the two messages (with their
    // connection) and the log handler's, once per "close" event.
    auto reported = [&](const std::string &prefix) {
        std::lock_guard<std::mutex> lock(rec.mu);
        int n = 0;
        for (const auto &e : rec.errors) n += e.rfind(prefix, 0) == 0;
        return n;
    };
    REQUIRE(wait_until([&] { return reported("on_log|log handler failed|0") == 2; }));
    REQUIRE(reported("on_message|handler exploded|") == 1);
    REQUIRE(reported("on_message|unknown exception|") == 1);
    std::lock_guard<std::mutex> lock(rec.mu);
    REQUIRE(rec.errors.size() == 4);
    for (const auto &kv : rec.closed) {
        REQUIRE(kv.second.code == 1011);
        REQUIRE(rec.close_reasons.at(kv.first) == "internal error");
        // The report names the connection that was closed.
        const std::string suffix = "|" + std::to_string(kv.first.value());
        int named = 0;
        for (const auto &e : rec.errors)
            named += e.rfind("on_message|", 0) == 0 && e.size() > suffix.size() &&
                     e.compare(e.size() - suffix.size(), suffix.size(), suffix) == 0;
        REQUIRE(named == 1);
    }
}

void test_throwing_authenticator_refuses() {
    Record rec;
    wsgate::Config cfg = test_config();
    cfg.set("auth.mode", "callback");
    wsgate::Server srv(cfg);
    record_handlers(srv, rec, false);
    srv.on_auth([](wsgate::ServerRef, wsgate::AuthRequest &req) {
        req.accept("someone");
        throw std::runtime_error("auth backend down");
    });
    srv.start();
    Client c(srv.port());
    REQUIRE(!c.ok() && c.status() == 401);
    std::lock_guard<std::mutex> lock(rec.mu);
    REQUIRE(rec.opened.empty());
    REQUIRE(rec.errors.size() == 1 && rec.errors[0] == "on_auth|auth backend down|0");
}

// A callback for results that counts its live copies (as Counted does).
struct CountedResult {
    std::shared_ptr<std::atomic<int>> live;
    std::shared_ptr<std::atomic<int>> calls;
    explicit CountedResult(std::shared_ptr<std::atomic<int>> l, std::shared_ptr<std::atomic<int>> c)
        : live(std::move(l)), calls(std::move(c)) {
        ++*live;
    }
    CountedResult(const CountedResult &o) : live(o.live), calls(o.calls) { ++*live; }
    CountedResult(CountedResult &&o) noexcept : live(o.live), calls(o.calls) { ++*live; }
    CountedResult &operator=(const CountedResult &) = delete;
    ~CountedResult() { --*live; }
    void operator()(wsgate::ServerRef, const wsgate::Result &) const { ++*calls; }
};

// A server whose authenticator takes the user id from the x-user header.
wsgate::Config user_config() {
    wsgate::Config cfg = test_config();
    cfg.set("auth.mode", "callback");
    return cfg;
}
void accept_x_user(wsgate::Server &srv) {
    srv.on_auth([](wsgate::ServerRef, wsgate::AuthRequest &req) {
        std::optional<std::string_view> user = req.header("x-user");
        req.accept(user ? std::string(*user) : std::string());
    });
}

std::int64_t unix_ms_now() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

void test_presence_local() {
    Record rec;
    wsgate::Server srv(user_config());
    record_handlers(srv, rec, false);
    accept_x_user(srv);
    // Not running: the call is refused at once, and a callback is not kept.
    auto live = std::make_shared<std::atomic<int>>(0), calls = std::make_shared<std::atomic<int>>(0);
    REQUIRE_ERROR(srv.topic_presence("news"), wsgate::Status::kESTATE);
    REQUIRE_ERROR(srv.topic_presence("news", CountedResult(live, calls)), wsgate::Status::kESTATE);
    REQUIRE(*live == 0 && *calls == 0);
    srv.start();
    int port = srv.port();
    std::int64_t before = unix_ms_now();
    Client a(port, "/", "x-user: ann\r\n");
    REQUIRE(a.ok() && wait_until([&] { return rec.open_count() == 1; }));
    Client b(port, "/", "x-user: bob\r\n");
    REQUIRE(b.ok() && wait_until([&] { return rec.open_count() == 2; }));
    Client c(port, "/", "x-user: ann\r\n");
    REQUIRE(c.ok() && wait_until([&] { return rec.open_count() == 3; }));
    wsgate::ConnId ann1 = rec.open_at(0), bob = rec.open_at(1), ann2 = rec.open_at(2);
    srv.subscribe(ann1, "news");
    srv.subscribe(bob, "news");
    REQUIRE(wait_until([&] { return srv.topic_subscribers("news").size() == 2; }));

    // Blocking: the values, copied.
    std::vector<wsgate::Presence> news = srv.topic_presence("news");
    REQUIRE(news.size() == 2);
    std::map<wsgate::ConnId, wsgate::Presence> by_conn;
    for (const auto &p : news) by_conn[p.conn] = p;
    REQUIRE(by_conn.count(ann1) && by_conn.count(bob));
    REQUIRE(by_conn[ann1].user_id == "ann" && by_conn[bob].user_id == "bob");
    REQUIRE(by_conn[ann1].since_ms >= before - 1000 && by_conn[ann1].since_ms <= unix_ms_now() + 1000);
    REQUIRE(by_conn[ann1].node() == (ann1.value() >> 48));
    std::vector<wsgate::Presence> ann = srv.user_presence("ann", std::chrono::seconds(5));
    REQUIRE(ann.size() == 2);
    REQUIRE((ann[0].conn == ann1 && ann[1].conn == ann2) || (ann[0].conn == ann2 && ann[1].conn == ann1));
    REQUIRE(ann[0].user_id == "ann" && ann[0].since_ms >= before - 1000);
    REQUIRE(srv.user_presence("nobody").empty());
    REQUIRE(srv.topic_presence("nobody-follows").empty());
    std::error_code ec;
    REQUIRE(srv.topic_presence("news", wsgate::wait_forever, ec).size() == 2 && !ec);

    // Bad input: the core's status and message, in both forms.
    std::string msg = REQUIRE_ERROR(srv.topic_presence(""), wsgate::Status::kEINVAL);
    REQUIRE(!msg.empty());
    REQUIRE(srv.user_presence("", wsgate::wait_forever, ec).empty() && ec == wsgate::Status::kEINVAL);
    REQUIRE_ERROR(srv.topic_presence("news", wsgate::ResultCallback()), wsgate::Status::kEINVAL);

    // The callback form: runs once on the service thread with a view of the
    // result, and its callable is freed right after.
    std::mutex mu;
    std::condition_variable cv;
    std::vector<wsgate::Presence> got;
    bool done = false;
    std::thread::id service_thread;
    srv.user_presence("ann", [&](wsgate::ServerRef s, const wsgate::Result &r) {
        std::lock_guard<std::mutex> lock(mu);
        REQUIRE(s.handle() == srv.handle() && r.ok() && !r.error() && r.message().empty());
        REQUIRE(r.size() == 2 && !r.empty() && !r.value());
        REQUIRE(r.at(0).user_id == "ann");
        REQUIRE_ERROR(r.at(2), wsgate::Status::kEINVAL);
        // Waiting here would never end: refused before the call is made.
        REQUIRE_ERROR(s.user_presence("ann"), wsgate::Status::kEBUSY);
        got = r.presence();
        service_thread = std::this_thread::get_id();
        done = true;
        cv.notify_all();
    });
    {
        std::unique_lock<std::mutex> lock(mu);
        REQUIRE(cv.wait_for(lock, std::chrono::seconds(5), [&] { return done; }));
        REQUIRE(got.size() == 2 && service_thread != std::this_thread::get_id());
    }
    srv.topic_presence("news", CountedResult(live, calls));
    REQUIRE(wait_until([&] { return *calls == 1 && *live == 0; }));

    // A throwing callback is reported (stderr) and freed; the server serves on.
    srv.topic_presence("news", [live](wsgate::ServerRef, const wsgate::Result &) {
        throw std::runtime_error("result callback failed (expected by the test)");
    });
    REQUIRE(wait_until([&] { return live.use_count() == 1; }));
    REQUIRE(srv.topic_presence("news").size() == 2);
    std::lock_guard<std::mutex> lock(rec.mu);
    REQUIRE(rec.errors.empty());
}

void test_session_local() {
    wsgate::Server srv(test_config());
    REQUIRE_ERROR(srv.session_get("k"), wsgate::Status::kESTATE);
    srv.start();

    REQUIRE(!srv.session_get("k").has_value());
    const std::string value("bin\0ary", 7);
    srv.session_set("k", value);
    std::optional<std::string> got = srv.session_get("k");
    REQUIRE(got && *got == value);
    srv.session_set("k", std::string("second"), std::chrono::minutes(5), std::chrono::seconds(5));
    REQUIRE(srv.session_get("k", std::chrono::seconds(5)) == std::string("second"));
    srv.session_set("empty", wsgate::Bytes());
    REQUIRE(srv.session_get("empty") == std::string());
    srv.session_delete("k");
    REQUIRE(!srv.session_get("k").has_value());
    srv.session_delete("k");  // absent: not an error

    // A short TTL ends the value (the in-memory store keeps Redis' rules).
    srv.session_set("brief", std::string("x"), std::chrono::milliseconds(50));
    REQUIRE(wait_until([&] { return !srv.session_get("brief").has_value(); }, 3000));

    // Bad input: refused before anything is stored.
    REQUIRE_ERROR(srv.session_set("", std::string("v")), wsgate::Status::kEINVAL);
    REQUIRE_ERROR(srv.session_set(std::string(256, 'k'), std::string("v")), wsgate::Status::kEINVAL);
    REQUIRE_ERROR(srv.session_set("neg", std::string("v"), std::chrono::milliseconds(-1)), wsgate::Status::kEINVAL);
    REQUIRE_ERROR(srv.session_set("big", std::string(65537, 'b')), wsgate::Status::kELIMIT);
    REQUIRE(!srv.session_get("big").has_value() && !srv.session_get("neg").has_value());
    REQUIRE_ERROR(srv.session_get("k", wsgate::ResultCallback()), wsgate::Status::kEINVAL);
    std::error_code ec;
    srv.session_set("", std::string("v"), std::chrono::milliseconds(0), wsgate::wait_forever, ec);
    REQUIRE(ec == wsgate::Status::kEINVAL);
    REQUIRE(!srv.session_get("", wsgate::wait_forever, ec) && ec == wsgate::Status::kEINVAL);
    srv.session_delete("", wsgate::wait_forever, ec);
    REQUIRE(ec == wsgate::Status::kEINVAL);
    srv.session_set("ok", std::string("1"), std::chrono::milliseconds(0), wsgate::wait_forever, ec);
    REQUIRE(!ec && srv.session_get("ok", wsgate::wait_forever, ec) == std::string("1") && !ec);

    // Callback forms: the value as a view; absent is kENOTFOUND; set and
    // delete may go without a callback.
    std::atomic<int> answered{0};
    std::string seen;
    std::mutex mu;
    srv.session_set("cb", std::string("via callback"), std::chrono::milliseconds(0),
                    [&](wsgate::ServerRef, const wsgate::Result &r) {
                        REQUIRE(r.ok() && !r.value());
                        ++answered;
                    });
    srv.session_get("cb", [&](wsgate::ServerRef, const wsgate::Result &r) {
        std::lock_guard<std::mutex> lock(mu);
        auto v = r.value();
        seen = v ? v->to_string() : "<none>";
        ++answered;
    });
    srv.session_get("absent", [&](wsgate::ServerRef, const wsgate::Result &r) {
        std::lock_guard<std::mutex> lock(mu);
        REQUIRE(r.status() == wsgate::Status::kENOTFOUND && r.error() == wsgate::Status::kENOTFOUND);
        REQUIRE(!r.value());
        ++answered;
    });
    REQUIRE(wait_until([&] { return answered == 3; }));
    {
        std::lock_guard<std::mutex> lock(mu);
        REQUIRE(seen == "via callback");
    }
    srv.session_delete("cb", nullptr);
    srv.session_set("nobody-told", std::string("v"), std::chrono::milliseconds(0), nullptr);
    REQUIRE(wait_until([&] { return !srv.session_get("cb").has_value(); }));
    REQUIRE(srv.session_get("nobody-told") == std::string("v"));
    srv.stop();
    REQUIRE_ERROR(srv.session_set("k", std::string("v")), wsgate::Status::kESTATE);
}

void test_session_from_handler_and_timeout() {
    wsgate::Server srv(test_config());
    std::atomic<int> busy{0};
    std::atomic<bool> holding{false};
    srv.on_message([&busy, &holding](wsgate::ServerRef s, wsgate::ConnId id, wsgate::Message m) {
        if (m.text() == "slow") {
            holding = true;
            // Holds the service thread (what a handler must not do), so that
            // a wait elsewhere gives up.
            std::this_thread::sleep_for(std::chrono::milliseconds(400));
            return;
        }
        // Blocking from a handler: kEBUSY at once, and nothing was stored.
        try {
            s.session_set("from-handler", std::string("no"));
        } catch (const wsgate::Error &e) {
            if (e.status() == wsgate::Status::kEBUSY) ++busy;
        }
        std::error_code ec;
        s.session_get("from-handler", wsgate::wait_forever, ec);
        if (ec == wsgate::Status::kEBUSY) ++busy;
        // The callback form is the way: the answer goes back to the client.
        s.session_set("greeting", m.bytes(), std::chrono::milliseconds(0), nullptr);
        s.session_get("greeting", [id](wsgate::ServerRef s2, const wsgate::Result &r) {
            auto v = r.value();
            s2.send(id, wsgate::text(v ? v->chars() : std::string_view("none")));
        });
    });
    srv.start();
    Client c(srv.port());
    REQUIRE(c.ok());
    c.text("hello");
    REQUIRE(c.recv() == "T:hello");
    REQUIRE(busy == 2);
    REQUIRE(!srv.session_get("from-handler").has_value());

    c.text("slow");
    REQUIRE(wait_until([&] { return holding.load(); }));
    auto t0 = std::chrono::steady_clock::now();
    std::string msg = REQUIRE_ERROR(srv.session_get("greeting", std::chrono::milliseconds(50)),
                                    wsgate::Status::kETIMEOUT);
    auto waited = std::chrono::steady_clock::now() - t0;
    REQUIRE(msg.find("50 ms") != std::string::npos);
    REQUIRE(waited >= std::chrono::milliseconds(40) && waited < std::chrono::milliseconds(350));
    // The answer that came after the wait gave up is dropped, not leaked;
    // the next call is answered.
    REQUIRE(srv.session_get("greeting", std::chrono::seconds(5)) == std::string("hello"));
}

// ---------------------------------------------------------------- history

void test_position_text() {
    const wsgate::Position p{1234, 56};
    REQUIRE(p.to_string() == "1234-56");
    REQUIRE(wsgate::Position::parse("1234-56") == p);
    REQUIRE(wsgate::Position::parse(std::string("1234-56")) != wsgate::Position{});
    REQUIRE(wsgate::Position{}.to_string() == "0-0");
    REQUIRE(wsgate::Position::parse("0-0") == wsgate::Position{});
    const wsgate::Position max{UINT64_MAX, UINT64_MAX};
    const std::string text = max.to_string();
    REQUIRE(text == "18446744073709551615-18446744073709551615");
    REQUIRE(text.size() + 1 == WSG_POSITION_TEXT_MAX);
    REQUIRE(wsgate::Position::parse(text) == max);
    const wsg_position c = p.c_value();
    REQUIRE(c.epoch == 1234 && c.offset == 56 && wsgate::Position::from_c(c) == p);
    std::ostringstream os;
    os << p;
    REQUIRE(os.str() == "1234-56");

    std::error_code ec;
    REQUIRE(wsgate::Position::parse("7-8", ec) == (wsgate::Position{7, 8}) && !ec);
    for (const char *bad : {"", "12", "12-", "-3", "01-2", "1-02", "1-0", "0-1", "a-b", "1-2 ", " 1-2",
                            "1-2-3", "18446744073709551616-1"}) {
        std::string msg = REQUIRE_ERROR(wsgate::Position::parse(bad), wsgate::Status::kEINVAL);
        REQUIRE(msg.find("EPOCH-OFFSET") != std::string::npos);
        REQUIRE(wsgate::Position::parse(bad, ec) == wsgate::Position{} && ec == wsgate::Status::kEINVAL);
        REQUIRE(std::string(wsgate::last_error()).find("EPOCH-OFFSET") != std::string::npos);
    }
    REQUIRE_ERROR(wsgate::Position::parse(nullptr), wsgate::Status::kEINVAL);
}

wsgate::Config history_config() {
    wsgate::Config cfg = test_config();
    cfg.set("cluster.history_topics", "h:*").set("cluster.history_size", 3);
    return cfg;
}

// What the history hook saw and did.
struct HookRecord {
    std::atomic<int> calls{0};
    std::atomic<int> kept_payload{0};  // payload() was still the published one after set()
    std::atomic<int> refused{0};       // set() of invalid UTF-8 on a text message was refused
};

// Prefixes each message with its position ("EPOCH-OFFSET|payload"); on
// "h:throw" it sets a replacement and throws.
void position_hook(wsgate::Server &srv, HookRecord &h) {
    srv.on_history([&h](std::string_view topic, const wsgate::Position &pos, wsgate::HistoryMessage &m) {
        ++h.calls;
        if (topic == "h:throw") {
            m.set(std::string("set before the throw"));
            throw std::runtime_error("hook exploded");
        }
        const std::string published(m.payload().text());
        std::error_code ec;
        m.set(std::string("\xff"), ec);
        if (ec == wsgate::Status::kEINVAL) ++h.refused;
        m.set(pos.to_string() + "|" + published);
        if (m.payload().text() == published && m.type() == wsgate::MsgType::kTEXT) ++h.kept_payload;
    });
}

// A subscribe_from answer as the callback form saw it.
struct FromAnswer {
    std::mutex mu;
    int calls = 0;
    wsgate::Status status = wsgate::Status::kOK;
    std::string message;
    std::optional<wsgate::Position> position;
    wsgate::ResultCallback callback() {
        return [this](wsgate::ServerRef, const wsgate::Result &r) {
            std::lock_guard<std::mutex> lock(mu);
            calls++;
            status = r.status();
            message = std::string(r.message());
            position = r.position();
        };
    }
    int count() {
        std::lock_guard<std::mutex> lock(mu);
        return calls;
    }
};

void test_history_local() {
    Record rec;
    HookRecord hook;
    wsgate::Server srv(history_config());
    record_handlers(srv, rec, false);
    position_hook(srv, hook);
    // A client asks to come back from the position it sends; the blocking
    // form is refused in the handler (kEBUSY), the callback form answers.
    std::atomic<int> busy{0};
    srv.on_message([&busy](wsgate::ServerRef s, wsgate::ConnId id, wsgate::Message m) {
        std::error_code ec;
        const wsgate::Position from = wsgate::Position::parse(std::string(m.text()), ec);
        if (ec) {
            s.send(id, wsgate::text("bad from: " + std::string(wsgate::last_error())));
            return;
        }
        try {
            s.subscribe_from(id, "h:1", from);
        } catch (const wsgate::Error &e) {
            if (e.status() == wsgate::Status::kEBUSY) ++busy;
        }
        s.subscribe_from(id, "h:1", from, [id](wsgate::ServerRef s2, const wsgate::Result &r) {
            std::optional<wsgate::Position> pos = r.position();
            s2.send(id, wsgate::text(r.ok() && pos ? "ok:" + pos->to_string()
                                                   : "failed:" + std::string(wsgate::to_string(r.status()))));
        });
    });
    // Not running: no connection yet.
    REQUIRE_ERROR(srv.subscribe_from(wsgate::ConnId(1), "h:1", std::nullopt), wsgate::Status::kENOTFOUND);
    srv.start();
    REQUIRE_ERROR(srv.on_history(nullptr), wsgate::Status::kESTATE);  // only before listening
    const int port = srv.port();

    Client a(port);
    REQUIRE(a.ok() && wait_until([&] { return rec.open_count() == 1; }));
    const wsgate::ConnId ida = rec.open_at(0);
    // No history yet: the current position is {0, 0}.
    REQUIRE(srv.subscribe_from(ida, "h:1", std::nullopt) == wsgate::Position{});
    const char *msgs[] = {"one", "two", "three", "four", "five"};
    for (const char *m : msgs) srv.publish("h:1", m);
    const std::string first = a.recv();
    const std::size_t bar = first.find('|');
    REQUIRE(first.rfind("T:", 0) == 0 && bar != std::string::npos && first.substr(bar) == "|one");
    const wsgate::Position p1 = wsgate::Position::parse(first.substr(2, bar - 2));
    REQUIRE(p1.epoch != 0 && p1.offset == 1);
    const std::uint64_t E = p1.epoch;
    auto shaped = [E](std::uint64_t offset, const char *text) {
        return "T:" + wsgate::Position{E, offset}.to_string() + "|" + text;
    };
    for (std::uint64_t i = 1; i < 5; i++) REQUIRE(a.recv() == shaped(i + 1, msgs[i]));
    REQUIRE(hook.calls == 5 && hook.kept_payload == 5 && hook.refused == 5);

    // Back after offset 3 (blocking form): four and five, shaped like the
    // live ones, then the live ones; the position reached is returned.
    Client b(port);
    REQUIRE(b.ok() && wait_until([&] { return rec.open_count() == 2; }));
    const wsgate::ConnId idb = rec.open_at(1);
    REQUIRE(srv.subscribe_from(idb, "h:1", wsgate::Position{E, 3}, std::chrono::seconds(5)) ==
            (wsgate::Position{E, 5}));
    REQUIRE(b.recv() == shaped(4, "four"));
    REQUIRE(b.recv() == shaped(5, "five"));
    srv.publish("h:1", "six");
    REQUIRE(b.recv() == shaped(6, "six"));
    REQUIRE(a.recv() == shaped(6, "six"));

    // Kept now: 4..6. Too old, ahead, another epoch: kEGONE with the
    // reason, nothing replayed, subscribed to the live messages all the same.
    Client c(port);
    REQUIRE(c.ok() && wait_until([&] { return rec.open_count() == 3; }));
    const wsgate::ConnId idc = rec.open_at(2);
    std::string why = REQUIRE_ERROR(srv.subscribe_from(idc, "h:1", wsgate::Position{E, 2}), wsgate::Status::kEGONE);
    REQUIRE(why.find("older than the oldest") != std::string::npos);
    std::error_code ec;
    REQUIRE(srv.subscribe_from(idc, "h:1", wsgate::Position{E, 9}, wsgate::wait_forever, ec) == wsgate::Position{});
    REQUIRE(ec == wsgate::Status::kEGONE);
    FromAnswer ans;
    srv.subscribe_from(idc, "h:1", wsgate::Position{E ^ 2, 5}, ans.callback());
    REQUIRE(wait_until([&] { return ans.count() == 1; }));
    {
        std::lock_guard<std::mutex> lock(ans.mu);
        REQUIRE(ans.status == wsgate::Status::kEGONE && !ans.position);
        REQUIRE(ans.message.find("another epoch") != std::string::npos);
    }
    REQUIRE(c.quiet(100));
    srv.publish("h:1", "seven");
    REQUIRE(c.recv() == shaped(7, "seven"));
    REQUIRE(a.recv() == shaped(7, "seven") && b.recv() == shaped(7, "seven"));

    // From a handler: the client sends its position (kEBUSY for the
    // blocking form there, the callback form replays and answers).
    Client d(port);
    REQUIRE(d.ok());
    d.text("junk");
    why = d.recv();
    REQUIRE(why.rfind("T:bad from: 'junk' is no position", 0) == 0);
    d.text(wsgate::Position{E, 6}.to_string());
    std::vector<std::string> got{d.recv(), d.recv()};
    std::sort(got.begin(), got.end());
    REQUIRE(got == (std::vector<std::string>{shaped(7, "seven"), "T:ok:" + wsgate::Position{E, 7}.to_string()}));
    REQUIRE(busy == 1);

    // Refused at once: the callback is not kept.
    auto live = std::make_shared<std::atomic<int>>(0), calls = std::make_shared<std::atomic<int>>(0);
    why = REQUIRE_ERROR(srv.subscribe_from(ida, "plain", wsgate::Position{E, 1}, CountedResult(live, calls)),
                        wsgate::Status::kEINVAL);
    REQUIRE(why.find("cluster.history_topics") != std::string::npos);
    REQUIRE_ERROR(srv.subscribe_from(wsgate::ConnId(ida.value() + 77), "h:1", std::nullopt), wsgate::Status::kENOTFOUND);
    srv.subscribe_from(ida, "", std::nullopt, wsgate::wait_forever, ec);
    REQUIRE(ec == wsgate::Status::kEINVAL && *live == 0 && *calls == 0);
    // An empty callback: subscribed, nobody told.
    srv.subscribe_from(ida, "h:2", std::nullopt, wsgate::ResultCallback());
    srv.publish("h:2", "two");
    const std::string two = a.recv();
    REQUIRE(two.rfind("T:", 0) == 0 && two.size() > 8 && two.compare(two.size() - 6, 6, "-1|two") == 0);

    // A throwing hook is reported (no connection closed); its message goes
    // as it stands.
    REQUIRE(srv.subscribe_from(ida, "h:throw", std::nullopt) == wsgate::Position{});
    srv.publish("h:throw", "x");
    REQUIRE(a.recv() == "T:set before the throw");
    REQUIRE(wait_until([&] {
        std::lock_guard<std::mutex> lock(rec.mu);
        return rec.errors.size() == 1;
    }));
    {
        std::lock_guard<std::mutex> lock(rec.mu);
        REQUIRE(rec.errors[0] == "on_history|hook exploded|0");
    }
    REQUIRE(a.quiet(100) && rec.close_count() == 0);
}

}  // namespace

int main() {
    struct Case {
        const char *name;
        void (*fn)();
    };
    const Case cases[] = {
        {"enums_and_values", test_enums_and_values},
        {"config_and_options", test_config_and_options},
        {"echo_and_handlers", test_echo_and_handlers},
        {"topics_users_and_auth", test_topics_users_and_auth},
        {"errors_and_error_codes", test_errors_and_error_codes},
        {"pages_and_run_on_caller_thread", test_pages_and_run_on_caller_thread},
        {"drain_and_metrics_listener", test_drain_and_metrics_listener},
        {"move_semantics", test_move_semantics},
        {"handler_lifetime", test_handler_lifetime},
        {"throwing_handlers", test_throwing_handlers},
        {"throwing_authenticator_refuses", test_throwing_authenticator_refuses},
        {"presence_local", test_presence_local},
        {"session_local", test_session_local},
        {"session_from_handler_and_timeout", test_session_from_handler_and_timeout},
        {"position_text", test_position_text},
        {"history_local", test_history_local},
    };
    int failed = 0;
    for (const Case &c : cases) {
        auto t0 = std::chrono::steady_clock::now();
        std::string error;
        try {
            c.fn();
        } catch (const Failure &f) {
            error = f.what;
        } catch (const std::exception &e) {
            error = std::string("unexpected exception: ") + e.what();
        }
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
        if (error.empty()) {
            std::printf("[ ok ] %s (%lld ms)\n", c.name, static_cast<long long>(ms));
        } else {
            std::printf("[FAIL] %s: %s\n", c.name, error.c_str());
            failed++;
        }
    }
    std::printf("%d of %zu cases failed\n", failed, sizeof cases / sizeof cases[0]);
    return failed ? 1 : 0;
}
