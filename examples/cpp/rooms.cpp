// wsgate-cpp-rooms: the C++ binding (wsgate/wsgate.hpp) in one small server.
//
//   wsgate-cpp-rooms [--port N] [--set KEY=VALUE]...
//
// A client joins the room named in its query (ws://HOST:PORT/?room=NAME,
// "lobby" without one). A text message "/echo WORDS" comes back to its
// sender alone; any other message (text or binary) goes to everyone in the
// sender's room, sender included, through a topic. Joins and leaves are
// announced to the room. Prints "listening on ws://HOST:PORT/" when ready.
// SIGTERM or SIGINT drain the server gracefully: new clients get 503, the
// connected ones close 1012 ("service restart", reconnect later) spread
// over server.drain_ms (1000 ms here unless --set), and the exit code is 0.
#include <wsgate/wsgate.hpp>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace {

// The server the signal handlers stop: a lock-free atomic is what a signal
// handler may read, and request_stop() is the one call it may make.
std::atomic<wsgate::ServerRef> g_running;
static_assert(std::atomic<wsgate::ServerRef>::is_always_lock_free, "");

extern "C" void on_signal(int) { g_running.load().request_stop(); }

// "room=NAME" anywhere in the query, else "lobby".
std::string room_of(std::string_view query) {
    for (std::size_t at = 0; at <= query.size();) {
        std::size_t end = query.find('&', at);
        if (end == std::string_view::npos) end = query.size();
        std::string_view pair = query.substr(at, end - at);
        if (pair.substr(0, 5) == "room=" && pair.size() > 5) return std::string(pair.substr(5));
        at = end + 1;
    }
    return "lobby";
}

// Each connection's topic. Handlers run on the service thread only, but the
// mutex keeps the map right if a future handler or thread reads it too.
class Rooms {
public:
    void join(wsgate::ConnId id, const std::string &topic) {
        std::lock_guard<std::mutex> lock(mu_);
        topics_[id] = topic;
    }
    std::string leave(wsgate::ConnId id) {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = topics_.find(id);
        if (it == topics_.end()) return "";
        std::string topic = std::move(it->second);
        topics_.erase(it);
        return topic;
    }
    std::string topic(wsgate::ConnId id) {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = topics_.find(id);
        return it == topics_.end() ? std::string() : it->second;
    }

private:
    std::mutex mu_;
    std::unordered_map<wsgate::ConnId, std::string> topics_;
};

int usage() {
    std::fprintf(stderr, "usage: wsgate-cpp-rooms [--port N] [--set KEY=VALUE]...\n");
    return 2;
}

}  // namespace

int main(int argc, char **argv) try {
    wsgate::Config cfg;
    cfg.set("server.drain_ms", 1000).set("log.level", "warn");
    for (int i = 1; i < argc; i++) {
        std::string_view arg = argv[i];
        if (i + 1 >= argc) return usage();
        if (arg == "--port")
            cfg.set_from_string(std::string("listen.port=") + argv[++i]);
        else if (arg == "--set")
            cfg.set_from_string(argv[++i]);
        else
            return usage();
    }

    wsgate::Server server(cfg);
    Rooms rooms;
    server.on_open([&rooms](wsgate::ServerRef s, wsgate::ConnId id) {
        std::string topic = "room:" + room_of(s.info(id).query);
        rooms.join(id, topic);
        s.subscribe(id, topic);
        s.publish(topic, "+ " + std::to_string(id.value()) + " joined " + topic.substr(5));
    });
    server.on_message([&rooms](wsgate::ServerRef s, wsgate::ConnId id, wsgate::Message msg) {
        if (msg.is_text() && msg.text().substr(0, 6) == "/echo ") {
            s.send(id, msg.text().substr(6));
            return;
        }
        std::error_code ec;  // a room being torn down is not an error here
        s.publish(rooms.topic(id), msg, ec);
    });
    server.on_close([&rooms](wsgate::ServerRef s, wsgate::ConnId id, const wsgate::CloseEvent &ev) {
        std::string topic = rooms.leave(id);
        std::error_code ec;  // during a drain the server may no longer publish
        if (!topic.empty())
            s.publish(topic, "- " + std::to_string(id.value()) + " left (" + wsgate::to_string(ev.cause) + ")", ec);
    });

    server.listen();
    std::string host = cfg.get_string("listen.host");
    std::printf("listening on ws://%s:%d/\n", host.empty() ? "0.0.0.0" : host.c_str(), server.port());
    std::fflush(stdout);

    g_running = server;
    std::signal(SIGTERM, on_signal);
    std::signal(SIGINT, on_signal);
    server.run();  // returns once the drain (server.drain_ms) and the stop are done
    g_running = wsgate::ServerRef();
    return 0;
} catch (const wsgate::Error &e) {
    std::fprintf(stderr, "wsgate-cpp-rooms: %s\n", e.what());
    return 1;
}
