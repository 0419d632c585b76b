// wsgate-bench: a WebSocket load generator on epoll.
//
//   wsgate-bench MODE --url ws://HOST:PORT/PATH [flags]     (--help for all)
//
// The process that starts is the coordinator: it forks worker processes
// (each under its open-file limit), each running one epoll engine per
// thread. Workers report over a socketpair in JSON lines ("ready",
// "progress", "result"); the coordinator starts the measured phase in all of
// them at once ("go"), samples the server's CPU time and memory at the phase
// boundaries when given --server-pid, prints a progress line on stderr once
// a second and one JSON object with every figure on stdout at the end.
#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "engine.h"

using bench::Engine;
using bench::Histogram;
using bench::Mode;
using bench::mono_ns;
using bench::Options;
using bench::Stats;
using nlohmann::json;

namespace {

const char kVersion[] = "0.1.0";
constexpr int64_t kSec = 1000000000;

const char kUsage[] =
    "usage: wsgate-bench MODE --url ws://HOST:PORT/PATH [flags]\n"
    "\n"
    "A WebSocket load generator (epoll, one or more threads and processes).\n"
    "Prints a progress line on stderr once a second and one JSON object with every\n"
    "figure on stdout at the end. Every run is bounded: it stops by itself.\n"
    "\n"
    "Modes:\n"
    "  connect  open --connections (at --rate per second, --concurrency at a time), hold\n"
    "           them for --duration seconds answering pings, report the connect rate,\n"
    "           failures by reason and how many survived the hold.\n"
    "  echo     --connections each keep --window messages of --size bytes in flight for\n"
    "           --duration seconds: messages/s and round-trip percentiles.\n"
    "  fanout   --connections subscribers on --url and --publishers publishers on\n"
    "           --pub-url sending --rate messages/s in all: deliveries/s,\n"
    "           publish-to-delivery latency, lost and duplicated deliveries. With\n"
    "           --topics N the subscribers are spread over N topics and the\n"
    "           publishers publish to them in turn; with --slow K, K subscribers\n"
    "           stop reading while the run is measured.\n"
    "  churn    open connections at --rate per second (at most --connections at once),\n"
    "           echo --messages messages on each, close it; for soak tests.\n"
    "\n"
    "Target:\n"
    "  --url URL            ws://HOST[:PORT][/PATH][?QUERY] or wss://...; HOST is an IP\n"
    "                       literal ([::1] for IPv6) or localhost. Required. fanout:\n"
    "                       repeatable, subscriber i connects to the (i mod n)th --url\n"
    "  --pub-url URL        fanout: where publishers connect (default: --url with path /pub)\n"
    "  --allow-remote       allow a target outside 127.0.0.0/8 and ::1 (refused otherwise)\n"
    "\n"
    "Load:\n"
    "  --connections N      connect/echo: connections; fanout: subscribers; churn: most\n"
    "                       connections open at once (default 100, at most 1000000)\n"
    "  --duration SECONDS   length of the measured phase: the hold (connect), the run\n"
    "                       (echo, churn) or the publishing (fanout) (default 10)\n"
    "  --warmup SECONDS     echo, fanout: leading part of the run left out of rates and\n"
    "                       latencies (default 0)\n"
    "  --window W           echo: messages in flight per connection (default 1)\n"
    "  --size BYTES         payload bytes per message (default 64; fanout needs >= 24:\n"
    "                       magic, publisher, sequence number, send time)\n"
    "  --text               send text frames (default binary)\n"
    "  --rate R             connect: connections opened per second, 0 = as fast as\n"
    "                       --concurrency allows (default 0); fanout: messages per second\n"
    "                       from all publishers together (default 1000); churn:\n"
    "                       connections opened per second (default 100)\n"
    "  --publishers P       fanout: publisher connections (default 1)\n"
    "  --topics N           fanout: subscriber i asks for topic i mod N (query\n"
    "                       ?topic=NAME, NAME its number in decimal); message s of\n"
    "                       publisher k goes to topic (k + s * P) mod N, so together\n"
    "                       the publishers go round the topics; --size >= 28\n"
    "                       (default 0: every subscriber gets every message)\n"
    "  --slow K             fanout: the last K subscribers stop reading when the\n"
    "                       measurement starts (after --warmup) and read again when\n"
    "                       publishing ends; figures are the other subscribers', the\n"
    "                       slow ones' counts are reported apart under \"slow\"\n"
    "                       (default 0)\n"
    "  --messages M         churn: messages echoed on each connection before it closes\n"
    "                       (default 1; 0 closes right after the upgrade)\n"
    "  --concurrency C      most handshakes in progress at once, whole run (default 256)\n"
    "\n"
    "Scale:\n"
    "  --threads T          event-loop threads per process (default 1)\n"
    "  --processes P        worker processes (default: as few as keep each process under\n"
    "                       its open-file limit, which is raised to the hard limit)\n"
    "  --sources LIST       spread connections over these source addresses: comma-separated\n"
    "                       addresses or last-octet ranges (127.0.0.2-127.0.0.9); each\n"
    "                       address gives about 28,000 ports towards one server port\n"
    "\n"
    "Request:\n"
    "  --header 'N: V'      extra upgrade request header (repeatable)\n"
    "  --token TOKEN        send 'Authorization: Bearer TOKEN'\n"
    "  --token-query NAME   send the token as query parameter NAME instead of a header\n"
    "  --origin ORIGIN      send an Origin header\n"
    "  --ca FILE            wss: verify the server certificate against the CA in FILE\n"
    "                       (default: no verification, for self-signed test servers)\n"
    "\n"
    "Time limits (seconds):\n"
    "  --connect-timeout S  TCP connect + TLS + upgrade, per connection (default 10)\n"
    "  --setup-timeout S    the whole connecting phase (default: derived from the load)\n"
    "  --drain-timeout S    after the run, waiting for replies and deliveries still on\n"
    "                       their way (default 5)\n"
    "  --close-timeout S    waiting for the close handshake (default 2)\n"
    "\n"
    "Measurement:\n"
    "  --server-pid PID     sample this local server's CPU time (/proc/PID/task/*/schedstat)\n"
    "                       and resident memory at the phase boundaries: adds server CPU\n"
    "                       microseconds per message or handshake and KiB per connection\n"
    "  --also-pid PID       also sample this process's CPU time over the measured phase\n"
    "                       (repeatable, e.g. more servers and Redis): the JSON's \"also\"\n"
    "  --settle SECONDS     wait after the last connection opened before sampling memory\n"
    "                       and starting the measured phase (default 1 for connect, else 0)\n"
    "  --quiet              no progress line\n"
    "  --help               this text\n"
    "\n"
    "Exit status: 0 when the run completed (see \"errors\" in the JSON), 1 when no\n"
    "connection opened, 2 for a bad command line, 3 when a worker failed or the run\n"
    "overran its time budget.\n";

volatile sig_atomic_t g_signals = 0;
void on_signal(int) { g_signals = g_signals + 1; }

// ---------------------------------------------------------------- server sampling

struct Sample {
    bool taken = false;
    int64_t at = 0;
    int64_t cpu_ns = -1;
    int64_t rss_kib = -1;
};

int64_t server_cpu_ns(int pid) {
    // Sum over threads of the scheduler's runtime: nanosecond resolution.
    std::string dir = "/proc/" + std::to_string(pid) + "/task";
    DIR *d = opendir(dir.c_str());
    if (d) {
        int64_t total = 0;
        bool any = false;
        while (struct dirent *e = readdir(d)) {
            if (e->d_name[0] == '.') continue;
            std::ifstream f(dir + "/" + e->d_name + "/schedstat");
            long long ns;
            if (f >> ns) {
                total += ns;
                any = true;
            }
        }
        closedir(d);
        if (any) return total;
    }
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    size_t rp = s.rfind(')');
    if (rp == std::string::npos) return -1;
    std::istringstream in(s.substr(rp + 2));
    std::string field;
    long long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && in >> field; i++) {
        if (i == 14) utime = std::atoll(field.c_str());
        if (i == 15) stime = std::atoll(field.c_str());
    }
    return (utime + stime) * (kSec / sysconf(_SC_CLK_TCK));
}

int64_t server_rss_kib(int pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(f, line))
        if (line.compare(0, 6, "VmRSS:") == 0) return std::atoll(line.c_str() + 6);
    return -1;
}

Sample sample(int pid) {
    Sample s;
    s.at = mono_ns();
    s.taken = true;
    if (pid > 0) {
        s.cpu_ns = server_cpu_ns(pid);
        s.rss_kib = server_rss_kib(pid);
    }
    return s;
}

// ---------------------------------------------------------------- command line

bool to_double(const std::string &s, double lo, double hi, double *out) {
    char *end = nullptr;
    errno = 0;
    double v = std::strtod(s.c_str(), &end);
    if (s.empty() || *end || errno || !std::isfinite(v) || v < lo || v > hi) return false;
    *out = v;
    return true;
}

bool to_u64(const std::string &s, uint64_t lo, uint64_t hi, uint64_t *out) {
    char *end = nullptr;
    errno = 0;
    if (s.empty() || s[0] == '-') return false;
    unsigned long long v = std::strtoull(s.c_str(), &end, 10);
    if (*end || errno || v < lo || v > hi) return false;
    *out = v;
    return true;
}

std::string url_encode(const std::string &s) {
    static const char hex[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

bool parse_sources(const std::string &list, Options *o, std::string *err) {
    size_t start = 0;
    while (start <= list.size()) {
        size_t comma = list.find(',', start);
        if (comma == std::string::npos) comma = list.size();
        std::string item = list.substr(start, comma - start);
        start = comma + 1;
        if (item.empty()) continue;
        size_t dash = item.find('-');
        std::vector<std::string> names;
        if (dash != std::string::npos && item.find(':') == std::string::npos) {
            // a.b.c.X-a.b.c.Y (or a.b.c.X-Y)
            std::string from = item.substr(0, dash), to = item.substr(dash + 1);
            size_t dot = from.rfind('.');
            if (dot == std::string::npos) {
                *err = "bad source range: " + item;
                return false;
            }
            std::string prefix = from.substr(0, dot + 1);
            if (to.find('.') != std::string::npos) {
                if (to.compare(0, prefix.size(), prefix) != 0) {
                    *err = "a source range may only vary the last octet: " + item;
                    return false;
                }
                to = to.substr(prefix.size());
            }
            uint64_t a, b;
            if (!to_u64(from.substr(dot + 1), 0, 255, &a) || !to_u64(to, 0, 255, &b) || a > b) {
                *err = "bad source range: " + item;
                return false;
            }
            for (uint64_t x = a; x <= b; x++) names.push_back(prefix + std::to_string(x));
        } else {
            names.push_back(item);
        }
        for (const std::string &n : names) {
            struct sockaddr_storage ss;
            socklen_t sl;
            if (!bench::parse_address(n, &ss, &sl)) {
                *err = "bad source address: " + n;
                return false;
            }
            o->sources.push_back(ss);
            o->source_names.push_back(n);
        }
        if (comma == list.size()) break;
    }
    return true;
}

// Returns "" or an error message.
std::string parse_args(int argc, char **argv, Options *o, bool *help) {
    *help = false;
    if (argc < 2) return "missing MODE";
    std::string mode = argv[1];
    if (mode == "--help" || mode == "-h") {
        *help = true;
        return {};
    }
    if (mode == "connect") o->mode = Mode::Connect;
    else if (mode == "echo") o->mode = Mode::Echo;
    else if (mode == "fanout") o->mode = Mode::Fanout;
    else if (mode == "churn") o->mode = Mode::Churn;
    else return "unknown MODE '" + mode + "' (connect, echo, fanout or churn)";

    std::vector<std::string> urls;
    std::string pub_url;
    bool size_given = false;
    for (int i = 2; i < argc; i++) {
        std::string a = argv[i], v;
        bool has_value = false;
        size_t eq = a.find('=');
        if (a.compare(0, 2, "--") == 0 && eq != std::string::npos) {
            v = a.substr(eq + 1);
            a = a.substr(0, eq);
            has_value = true;
        }
        auto flag = [&](const char *name) { return a == name; };
        auto value = [&]() -> bool {
            if (has_value) return true;
            if (i + 1 >= argc) return false;
            v = argv[++i];
            return true;
        };
        auto bad = [&](const char *what) { return "bad value for " + a + ": '" + v + "' (" + what + ")"; };
        uint64_t u = 0;
        double d = 0;
        if (flag("--help") || flag("-h")) {
            *help = true;
            return {};
        } else if (flag("--text")) {
            o->text = true;
        } else if (flag("--quiet")) {
            o->quiet = true;
        } else if (flag("--allow-remote")) {
            o->allow_remote = true;
        } else if (!value()) {
            return "unknown flag or missing value: " + a + " (try --help)";
        } else if (flag("--url")) {
            urls.push_back(v);
        } else if (flag("--pub-url")) {
            pub_url = v;
        } else if (flag("--connections")) {
            if (!to_u64(v, 1, 1000000, &u)) return bad("1..1000000");
            o->connections = u;
        } else if (flag("--duration")) {
            if (!to_double(v, 0, 86400, &d)) return bad("0..86400 seconds");
            o->duration = d;
        } else if (flag("--warmup")) {
            if (!to_double(v, 0, 86400, &d)) return bad("0..86400 seconds");
            o->warmup = d;
        } else if (flag("--window")) {
            if (!to_u64(v, 1, 65536, &u)) return bad("1..65536");
            o->window = static_cast<uint32_t>(u);
        } else if (flag("--size")) {
            if (!to_u64(v, 0, 16u << 20, &u)) return bad("0..16777216 bytes");
            o->size = u;
            size_given = true;
        } else if (flag("--rate")) {
            if (!to_double(v, 0, 1e8, &d)) return bad("0..100000000 per second");
            o->rate = d;
        } else if (flag("--publishers")) {
            if (!to_u64(v, 1, 10000, &u)) return bad("1..10000");
            o->publishers = static_cast<uint32_t>(u);
        } else if (flag("--topics")) {
            if (!to_u64(v, 1, 100000, &u)) return bad("1..100000");
            o->topics = static_cast<uint32_t>(u);
        } else if (flag("--slow")) {
            if (!to_u64(v, 0, 999999, &u)) return bad("0..999999");
            o->slow = u;
        } else if (flag("--messages")) {
            if (!to_u64(v, 0, 1000000, &u)) return bad("0..1000000");
            o->messages = static_cast<uint32_t>(u);
        } else if (flag("--concurrency")) {
            if (!to_u64(v, 1, 1000000, &u)) return bad("1..1000000");
            o->concurrency = static_cast<uint32_t>(u);
        } else if (flag("--threads")) {
            if (!to_u64(v, 1, 64, &u)) return bad("1..64");
            o->threads = static_cast<int>(u);
        } else if (flag("--processes")) {
            if (!to_u64(v, 1, 256, &u)) return bad("1..256");
            o->processes = static_cast<int>(u);
        } else if (flag("--sources")) {
            std::string err;
            if (!parse_sources(v, o, &err)) return err;
        } else if (flag("--connect-timeout")) {
            if (!to_double(v, 0.001, 3600, &d)) return bad("0.001..3600 seconds");
            o->connect_timeout = d;
        } else if (flag("--setup-timeout")) {
            if (!to_double(v, 0.001, 86400, &d)) return bad("0.001..86400 seconds");
            o->setup_timeout = d;
        } else if (flag("--drain-timeout")) {
            if (!to_double(v, 0, 3600, &d)) return bad("0..3600 seconds");
            o->drain_timeout = d;
        } else if (flag("--close-timeout")) {
            if (!to_double(v, 0, 3600, &d)) return bad("0..3600 seconds");
            o->close_timeout = d;
        } else if (flag("--settle")) {
            if (!to_double(v, 0, 3600, &d)) return bad("0..3600 seconds");
            o->settle = d;
        } else if (flag("--header")) {
            if (v.find(':') == std::string::npos || v.find_first_of("\r\n") != std::string::npos)
                return bad("'Name: value'");
            o->headers.push_back(v);
        } else if (flag("--token")) {
            if (v.find_first_of("\r\n") != std::string::npos) return bad("no line breaks");
            o->token = v;
        } else if (flag("--token-query")) {
            if (v.empty()) return bad("a parameter name");
            o->token_query = v;
        } else if (flag("--origin")) {
            if (v.find_first_of("\r\n") != std::string::npos) return bad("no line breaks");
            o->origin = v;
        } else if (flag("--ca")) {
            o->ca_file = v;
        } else if (flag("--server-pid")) {
            if (!to_u64(v, 1, 1u << 30, &u)) return bad("a process id");
            o->server_pid = static_cast<int>(u);
        } else if (flag("--also-pid")) {
            if (!to_u64(v, 1, 1u << 30, &u)) return bad("a process id");
            if (o->also_pids.size() >= 16) return "at most 16 --also-pid";
            o->also_pids.push_back(static_cast<int>(u));
        } else {
            return "unknown flag: " + a + " (try --help)";
        }
    }

    if (urls.empty()) return "--url is required";
    if (urls.size() > 1 && o->mode != Mode::Fanout) return "--url more than once is for fanout only";
    if (urls.size() > 64) return "at most 64 --url";
    std::string err;
    for (const std::string &u : urls) {
        bench::Target t;
        err = bench::parse_url(u, &t);
        if (!err.empty()) return err;
        if (!o->allow_remote && !bench::is_loopback(t.addr))
            return "target " + t.host + " is not a loopback address (use --allow-remote)";
        if (!o->urls.empty() && t.addr.ss_family != o->urls[0].addr.ss_family)
            return "every --url must be of the same address family";
        o->urls.push_back(t);
    }
    o->url = o->urls[0];
    const std::string &url = urls[0];
    if (pub_url.empty()) {
        pub_url = url.substr(0, url.find("://") + 3) + o->url.host_header + "/pub";
    }
    err = bench::parse_url(pub_url, &o->pub_url);
    if (!err.empty()) return err;
    if (!o->allow_remote) {
        if (!bench::is_loopback(o->url.addr))
            return "target " + o->url.host + " is not a loopback address (use --allow-remote)";
        if (o->mode == Mode::Fanout && !bench::is_loopback(o->pub_url.addr))
            return "publisher target " + o->pub_url.host + " is not a loopback address (use --allow-remote)";
    }
    for (size_t i = 0; i < o->sources.size(); i++)
        if (o->sources[i].ss_family != o->url.addr.ss_family)
            return "source " + o->source_names[i] + " is not of the target's address family";
    if (o->rate < 0) o->rate = o->mode == Mode::Fanout ? 1000 : o->mode == Mode::Churn ? 100 : 0;
    if (o->mode == Mode::Fanout) {
        if (o->text) return "fanout sends binary payloads (drop --text)";
        if (!size_given) o->size = 64;
        if (o->size < 24) return "fanout needs --size >= 24";
        if (o->topics && o->size < 28) return "fanout --topics needs --size >= 28 (the topic's number)";
        if (o->rate <= 0) return "fanout needs --rate > 0";
        if (o->slow >= o->connections) return "--slow must leave at least one subscriber reading (< --connections)";
    } else if (o->topics || o->slow) {
        return "--topics and --slow are for fanout";
    }
    if (o->mode == Mode::Churn && o->rate <= 0) return "churn needs --rate > 0";
    if (o->warmup >= o->duration && o->warmup > 0) return "--warmup must be shorter than --duration";
    if (o->settle < 0) o->settle = o->mode == Mode::Connect ? 1.0 : 0.0;
    if (o->threads > 0 && static_cast<uint64_t>(o->threads) > o->connections + o->publishers)
        o->threads = static_cast<int>(o->connections + o->publishers);
    return {};
}

std::string request_head(const Options &o, const bench::Target &t) {
    std::string resource = t.resource;
    if (!o.token.empty() && !o.token_query.empty())
        resource += (resource.find('?') == std::string::npos ? "?" : "&") + url_encode(o.token_query) +
                    "=" + url_encode(o.token);
    std::string h = "GET " + resource + " HTTP/1.1\r\nHost: " + t.host_header +
                    "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n";
    if (!o.origin.empty()) h += "Origin: " + o.origin + "\r\n";
    if (!o.token.empty() && o.token_query.empty()) h += "Authorization: Bearer " + o.token + "\r\n";
    for (const std::string &x : o.headers) h += x + "\r\n";
    return h;
}

// ---------------------------------------------------------------- worker processes

bool send_line(int fd, const json &j) {
    std::string s = j.dump() + "\n";
    size_t off = 0;
    while (off < s.size()) {
        ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        off += static_cast<size_t>(n);
    }
    return true;
}

// Reads what is available; returns complete lines. eof set when the peer closed.
std::vector<std::string> read_lines(int fd, std::string *buf, bool *eof) {
    std::vector<std::string> lines;
    char tmp[65536];
    for (;;) {
        ssize_t n = recv(fd, tmp, sizeof tmp, MSG_DONTWAIT);
        if (n > 0) {
            buf->append(tmp, static_cast<size_t>(n));
            continue;
        }
        if (n == 0) *eof = true;
        else if (errno == EINTR) continue;
        else if (errno != EAGAIN) *eof = true;
        break;
    }
    size_t pos;
    while ((pos = buf->find('\n')) != std::string::npos) {
        lines.push_back(buf->substr(0, pos));
        buf->erase(0, pos + 1);
    }
    return lines;
}

double cpu_seconds_self() {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

int run_worker(const Options &opt, SSL_CTX *ctx, int proc, int procs, int fd, unsigned budget_s) {
    signal(SIGINT, SIG_IGN);  // the coordinator decides; it tells us "stop"
    signal(SIGTERM, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
    alarm(budget_s + 15);  // backstop should the coordinator vanish
    bench::Control ctl;
    int T = opt.threads;
    std::vector<std::unique_ptr<Engine>> engines;
    for (int t = 0; t < T; t++)
        engines.push_back(std::make_unique<Engine>(opt, ctx, &ctl, proc * T + t, procs * T));
    std::vector<std::thread> threads;
    for (auto &e : engines) threads.emplace_back([&e] { e->run(); });

    std::string buf;
    bool ready_sent = false, published_sent = false, parent_gone = false;
    // Four times a second, so the coordinator's once-a-second line is fresh.
    const int64_t progress_every = kSec / 4;
    int64_t next_progress = mono_ns() + progress_every;
    while (ctl.finished.load() < T) {
        struct pollfd p = {fd, POLLIN, 0};
        poll(&p, parent_gone ? 0 : 1, 50);
        bool eof = false;
        if (!parent_gone) {
            for (const std::string &line : read_lines(fd, &buf, &eof)) {
                json m = json::parse(line, nullptr, false);
                if (m.is_discarded()) continue;
                std::string t = m.value("t", "");
                if (t == "go") ctl.go_ns.store(m.value("t0", int64_t(0)));
                if (t == "expect" && !ctl.expect_ready.load()) {
                    ctl.expected_groups = m.value("groups", std::vector<uint64_t>());
                    ctl.expect_ready.store(true, std::memory_order_release);
                }
                if (t == "stop") {
                    ctl.stop.store(true);
                    int64_t zero = 0;
                    ctl.go_ns.compare_exchange_strong(zero, mono_ns());
                }
            }
        }
        if (eof && !parent_gone) {
            parent_gone = true;
            ctl.stop.store(true);
            int64_t zero = 0;
            ctl.go_ns.compare_exchange_strong(zero, mono_ns());
        }
        if (!ready_sent && ctl.ready.load() == T) {
            send_line(fd, {{"t", "ready"}});
            ready_sent = true;
        }
        if (!published_sent && ctl.past_run.load() == T) {
            uint64_t published = 0;
            std::vector<uint64_t> groups(opt.groups(), 0);
            for (auto &e : engines) {
                published += e->live.published.load();
                const std::vector<uint64_t> &g = e->published_per_group();
                for (size_t i = 0; i < g.size() && i < groups.size(); i++) groups[i] += g[i];
            }
            if (!parent_gone) send_line(fd, {{"t", "published"}, {"n", published}, {"groups", groups}});
            published_sent = true;
        }
        int64_t now = mono_ns();
        if (now >= next_progress) {
            next_progress += progress_every;
            json pr = {{"t", "progress"}};
            uint64_t open = 0, sent = 0, received = 0, delivered = 0, failed = 0, opened = 0, published = 0;
            for (auto &e : engines) {
                open += e->live.open.load(std::memory_order_relaxed);
                sent += e->live.sent.load(std::memory_order_relaxed);
                received += e->live.received.load(std::memory_order_relaxed);
                delivered += e->live.delivered.load(std::memory_order_relaxed);
                failed += e->live.failed.load(std::memory_order_relaxed);
                opened += e->live.opened.load(std::memory_order_relaxed);
                published += e->live.published.load(std::memory_order_relaxed);
            }
            pr["open"] = open;
            pr["sent"] = sent;
            pr["received"] = received;
            pr["delivered"] = delivered;
            pr["failed"] = failed;
            pr["opened"] = opened;
            pr["published"] = published;
            if (!parent_gone) send_line(fd, pr);
        }
    }
    for (auto &t : threads) t.join();
    Stats total;
    for (auto &e : engines) total.merge(e->stats());
    engines.clear();
    json r = {{"t", "result"}, {"stats", total.to_json()}, {"cpu_s", cpu_seconds_self()}};
    send_line(fd, r);
    return 0;
}

// ---------------------------------------------------------------- report

double round1(double v) { return std::round(v * 10.0) / 10.0; }
double round3(double v) { return std::round(v * 1000.0) / 1000.0; }

json percentiles_us(const Histogram &h) {
    auto us = [](uint64_t ns) { return round1(static_cast<double>(ns) / 1000.0); };
    return {{"count", h.count()},          {"min", us(h.min())},
            {"mean", round1(h.mean() / 1000.0)}, {"p50", us(h.quantile(0.50))},
            {"p90", us(h.quantile(0.90))}, {"p99", us(h.quantile(0.99))},
            {"p99.9", us(h.quantile(0.999))}, {"max", us(h.max())}};
}

struct ChildProc {
    pid_t pid = -1;
    int fd = -1;
    std::string buf;
    bool ready = false, closed = false, have_result = false, reported_published = false;
    uint64_t published = 0;
    std::vector<uint64_t> groups;  // published per group (topic)
    json progress, result;
};

void print_progress(const Options &o, const std::vector<ChildProc> &kids, const char *phase,
                    double elapsed, uint64_t *last_count, int64_t *last_at) {
    uint64_t open = 0, sent = 0, received = 0, delivered = 0, failed = 0, opened = 0, published = 0;
    for (const ChildProc &k : kids) {
        if (!k.progress.is_object()) continue;
        open += k.progress.value("open", uint64_t(0));
        sent += k.progress.value("sent", uint64_t(0));
        received += k.progress.value("received", uint64_t(0));
        delivered += k.progress.value("delivered", uint64_t(0));
        failed += k.progress.value("failed", uint64_t(0));
        opened += k.progress.value("opened", uint64_t(0));
        published += k.progress.value("published", uint64_t(0));
    }
    uint64_t count = o.mode == Mode::Fanout ? delivered : o.mode == Mode::Churn ? opened : received;
    int64_t now = mono_ns();
    double dt = static_cast<double>(now - *last_at) / 1e9;
    double rate = dt > 0 ? static_cast<double>(count - std::min(count, *last_count)) / dt : 0;
    *last_count = count;
    *last_at = now;
    char line[320];
    switch (o.mode) {
    case Mode::Connect:
        std::snprintf(line, sizeof line, "open %llu failed %llu", (unsigned long long)open,
                      (unsigned long long)failed);
        break;
    case Mode::Echo:
        std::snprintf(line, sizeof line, "open %llu failed %llu sent %llu received %llu (%.0f msg/s)",
                      (unsigned long long)open, (unsigned long long)failed, (unsigned long long)sent,
                      (unsigned long long)received, rate);
        break;
    case Mode::Fanout:
        std::snprintf(line, sizeof line,
                      "open %llu failed %llu published %llu delivered %llu (%.0f deliveries/s)",
                      (unsigned long long)open, (unsigned long long)failed,
                      (unsigned long long)published, (unsigned long long)delivered, rate);
        break;
    case Mode::Churn:
        std::snprintf(line, sizeof line, "open %llu opened %llu (%.0f/s) failed %llu",
                      (unsigned long long)open, (unsigned long long)opened, rate,
                      (unsigned long long)failed);
        break;
    }
    std::fprintf(stderr, "wsgate-bench %s %6.1fs %-7s %s\n", bench::mode_name(o.mode), elapsed, phase, line);
}

}  // namespace

int main(int argc, char **argv) {
    Options opt;
    bool help = false;
    std::string err = parse_args(argc, argv, &opt, &help);
    if (help) {
        std::fputs(kUsage, stdout);
        return 0;
    }
    if (!err.empty()) {
        std::fprintf(stderr, "wsgate-bench: %s\n", err.c_str());
        return 2;
    }

    // One file per connection: raise the soft limit to the hard one.
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    uint64_t per_proc = rl.rlim_cur == RLIM_INFINITY ? 1000000 : rl.rlim_cur;
    per_proc = per_proc > 64 + 16ull * static_cast<uint64_t>(opt.threads)
                   ? per_proc - 64 - 16ull * static_cast<uint64_t>(opt.threads)
                   : 1;
    uint64_t files = opt.connections + (opt.mode == Mode::Fanout ? opt.publishers : 0);
    if (opt.processes == 0) opt.processes = static_cast<int>(std::max<uint64_t>(1, (files + per_proc - 1) / per_proc));
    uint64_t need = (files + static_cast<uint64_t>(opt.processes) - 1) / static_cast<uint64_t>(opt.processes);
    if (need > per_proc) {
        std::fprintf(stderr,
                     "wsgate-bench: each of %d processes would need %llu connections but may open "
                     "%llu files (RLIMIT_NOFILE %llu): use --processes %llu or more\n",
                     opt.processes, (unsigned long long)need, (unsigned long long)per_proc,
                     (unsigned long long)rl.rlim_cur,
                     (unsigned long long)((files + per_proc - 1) / per_proc));
        return 2;
    }
    uint64_t engines = static_cast<uint64_t>(opt.processes) * static_cast<uint64_t>(opt.threads);
    if (engines > files && opt.mode != Mode::Churn) {
        // More engines than connections: shrink threads first.
        opt.threads = 1;
        if (static_cast<uint64_t>(opt.processes) > files) opt.processes = static_cast<int>(files);
    }
    if (opt.setup_timeout <= 0) {
        double n = static_cast<double>(opt.connections + opt.publishers);
        opt.setup_timeout = opt.connect_timeout + 5 + n / 2000.0 +
                            (opt.mode == Mode::Connect && opt.rate > 0 ? n / opt.rate : 0);
    }
    opt.request_head = request_head(opt, opt.url);
    opt.pub_request_head = request_head(opt, opt.pub_url);
    for (const bench::Target &t : opt.urls) {
        std::string head = request_head(opt, t);
        // "GET /sub?x=1 HTTP/1.1..." becomes "GET /sub?x=1&topic=" + N + " HTTP/1.1...".
        size_t at = head.find(" HTTP/1.1\r\n");
        std::string resource = head.substr(0, at);
        opt.topic_heads_a.push_back(resource + (resource.find('?') == std::string::npos ? "?" : "&") + "topic=");
        opt.topic_heads_b.push_back(head.substr(at));
        opt.sub_heads.push_back(head);
    }

    SSL_CTX *ctx = nullptr;
    bool any_tls = opt.url.tls || (opt.mode == Mode::Fanout && opt.pub_url.tls);
    for (const bench::Target &t : opt.urls) any_tls = any_tls || t.tls;
    if (any_tls) {
        ctx = SSL_CTX_new(TLS_client_method());
        if (!ctx) {
            std::fprintf(stderr, "wsgate-bench: cannot create the TLS context\n");
            return 3;
        }
        SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
        SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);  // a full handshake each time
        static const unsigned char alpn[] = "\x08http/1.1";
        SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn - 1);
        if (!opt.ca_file.empty()) {
            if (SSL_CTX_load_verify_locations(ctx, opt.ca_file.c_str(), nullptr) != 1) {
                std::fprintf(stderr, "wsgate-bench: cannot load CA file %s\n", opt.ca_file.c_str());
                SSL_CTX_free(ctx);
                return 2;
            }
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
        } else {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
        }
    }

    double budget = opt.setup_timeout + opt.settle + opt.duration + opt.drain_timeout +
                    opt.close_timeout + std::max(opt.connect_timeout, 0.0) + 30;
    unsigned budget_s = static_cast<unsigned>(std::ceil(budget));

    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    signal(SIGPIPE, SIG_IGN);

    const int pid = opt.server_pid;
    Sample s_before = sample(pid);
    if (pid > 0 && s_before.cpu_ns < 0) {
        std::fprintf(stderr, "wsgate-bench: cannot read /proc/%d: is the server running here?\n", pid);
        if (ctx) SSL_CTX_free(ctx);
        return 2;
    }
    const int64_t start = mono_ns();
    std::vector<ChildProc> kids(static_cast<size_t>(opt.processes));
    std::fflush(stdout);
    std::fflush(stderr);
    for (int p = 0; p < opt.processes; p++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
            std::perror("wsgate-bench: socketpair");
            return 3;
        }
        pid_t child = fork();
        if (child < 0) {
            std::perror("wsgate-bench: fork");
            return 3;
        }
        if (child == 0) {
            ::close(sv[0]);
            for (int q = 0; q < p; q++) ::close(kids[static_cast<size_t>(q)].fd);
            int rc = run_worker(opt, ctx, p, opt.processes, sv[1], budget_s);
            std::fflush(nullptr);
            _exit(rc);
        }
        ::close(sv[1]);
        kids[static_cast<size_t>(p)].pid = child;
        kids[static_cast<size_t>(p)].fd = sv[0];
    }

    enum class St { Setup, Settle, Run, Wait } st = St::Setup;
    const char *phase_name = "connect";
    Sample s_ready, s_from, s_end;
    // --also-pid: CPU time only, at the measured phase's ends.
    std::vector<int64_t> also_from(opt.also_pids.size(), -1), also_end(opt.also_pids.size(), -1);
    auto sample_also = [&](std::vector<int64_t> *into) {
        for (size_t i = 0; i < opt.also_pids.size(); i++) (*into)[i] = server_cpu_ns(opt.also_pids[i]);
    };
    int64_t settle_until = 0, go = 0, measure_from = 0, end = 0;
    int64_t setup_done_at = 0;
    int64_t next_progress = start + kSec;
    const int64_t hard_deadline = start + static_cast<int64_t>(budget) * kSec;
    bool stop_sent = false, killed = false, worker_failed = false, expect_sent = false;
    int handled_signals = 0;
    uint64_t last_count = 0;
    int64_t last_at = start;

    auto all = [&](auto pred) {
        for (const ChildProc &k : kids)
            if (!pred(k)) return false;
        return true;
    };
    auto broadcast = [&](const json &m) {
        for (ChildProc &k : kids)
            if (!k.closed) send_line(k.fd, m);
    };

    while (!all([](const ChildProc &k) { return k.closed; })) {
        int64_t now = mono_ns();
        int64_t wake = std::min(next_progress, hard_deadline);
        if (st == St::Settle) wake = std::min(wake, settle_until);
        if (st == St::Run) wake = std::min(wake, s_from.taken ? end : measure_from);
        int timeout_ms = static_cast<int>(std::max<int64_t>(0, (wake - now + 999999) / 1000000));
        std::vector<struct pollfd> pfds;
        for (const ChildProc &k : kids)
            pfds.push_back({k.closed ? -1 : k.fd, POLLIN, 0});
        poll(pfds.data(), pfds.size(), std::min(timeout_ms, 1000));
        for (ChildProc &k : kids) {
            if (k.closed) continue;
            bool eof = false;
            for (const std::string &line : read_lines(k.fd, &k.buf, &eof)) {
                json m = json::parse(line, nullptr, false);
                if (m.is_discarded()) continue;
                std::string t = m.value("t", "");
                if (t == "ready") k.ready = true;
                if (t == "progress") k.progress = m;
                if (t == "published") {
                    k.published = m.value("n", uint64_t(0));
                    k.groups = m.value("groups", std::vector<uint64_t>());
                    k.reported_published = true;
                }
                if (t == "result") {
                    k.result = m;
                    k.have_result = true;
                }
            }
            if (eof) {
                k.closed = true;
                ::close(k.fd);
                if (!k.have_result) worker_failed = true;
            }
        }
        now = mono_ns();
        if (g_signals > handled_signals) {
            handled_signals = g_signals;
            if (!stop_sent) {
                std::fprintf(stderr, "wsgate-bench: interrupted: finishing early (again to abort)\n");
                broadcast({{"t", "stop"}});
                stop_sent = true;
            } else {
                for (ChildProc &k : kids)
                    if (!k.closed) kill(k.pid, SIGKILL);
                killed = true;
            }
        }
        if (st == St::Setup && all([](const ChildProc &k) { return k.ready || k.closed; })) {
            setup_done_at = now;
            st = St::Settle;
            settle_until = stop_sent ? now : now + static_cast<int64_t>(opt.settle * 1e9);
            phase_name = "settle";
        }
        if (st == St::Settle && now >= settle_until) {
            s_ready = sample(pid);
            go = mono_ns() + 20 * 1000000;
            measure_from = go + static_cast<int64_t>(opt.warmup * 1e9);
            end = go + static_cast<int64_t>(opt.duration * 1e9);
            broadcast({{"t", "go"}, {"t0", go}});
            st = St::Run;
            phase_name = opt.mode == Mode::Connect ? "hold" : "run";
        }
        if (st == St::Run) {
            if (!s_from.taken && (now >= measure_from || stop_sent)) {
                s_from = sample(pid);
                sample_also(&also_from);
            }
            if (now >= end || stop_sent) {
                s_end = sample(pid);
                sample_also(&also_end);
                st = St::Wait;
                phase_name = "finish";
            }
        }
        if (!expect_sent && all([](const ChildProc &k) { return k.reported_published || k.closed; })) {
            // Every process has stopped publishing: tell them all how many
            // messages each subscriber must end up with.
            uint64_t total = 0;
            std::vector<uint64_t> groups(opt.groups(), 0);
            for (const ChildProc &k : kids) {
                total += k.published;
                for (size_t i = 0; i < k.groups.size() && i < groups.size(); i++) groups[i] += k.groups[i];
            }
            broadcast({{"t", "expect"}, {"published", total}, {"groups", groups}});
            expect_sent = true;
        }
        if (now >= next_progress) {
            next_progress += kSec;
            if (!opt.quiet)
                print_progress(opt, kids, phase_name, static_cast<double>(now - start) / 1e9,
                               &last_count, &last_at);
        }
        if (now >= hard_deadline && !killed) {
            std::fprintf(stderr, "wsgate-bench: the run overran its %u s budget: stopping the workers\n",
                         budget_s);
            for (ChildProc &k : kids)
                if (!k.closed) kill(k.pid, SIGKILL);
            killed = true;
            worker_failed = true;
        }
    }
    for (ChildProc &k : kids) {
        int status = 0;
        waitpid(k.pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) worker_failed = true;
    }
    if (ctx) SSL_CTX_free(ctx);

    // ------------------------------------------------------------ report
    Stats t;
    double client_cpu = 0;
    for (const ChildProc &k : kids) {
        if (!k.have_result) continue;
        try {
            t.merge(Stats::from_json(k.result.at("stats")));
            client_cpu += k.result.value("cpu_s", 0.0);
        } catch (const std::exception &e) {
            std::fprintf(stderr, "wsgate-bench: bad result from a worker: %s\n", e.what());
            worker_failed = true;
        }
    }
    if (!s_end.taken) {
        s_end = sample(pid);
        sample_also(&also_end);
    }
    if (!s_from.taken) {
        s_from = s_end;
        also_from = also_end;
    }
    // The measured window: as configured, or cut short by an interrupt.
    double window_s = opt.duration - opt.warmup;
    if (stop_sent)
        window_s = measure_from > 0 ? static_cast<double>(s_end.at - measure_from) / 1e9 : 0;
    if (window_s <= 0) window_s = 1e-9;

    json out;
    out["tool"] = "wsgate-bench";
    out["version"] = kVersion;
    out["mode"] = bench::mode_name(opt.mode);
    out["url"] = opt.url.url;
    if (opt.urls.size() > 1) {
        json us = json::array();
        for (const bench::Target &t : opt.urls) us.push_back(t.url);
        out["urls"] = us;
    }
    json cfg = {{"connections", opt.connections}, {"duration_s", opt.duration},
                {"warmup_s", opt.warmup},         {"size", opt.size},
                {"text", opt.text},               {"processes", opt.processes},
                {"threads", opt.threads},         {"concurrency", opt.concurrency},
                {"tls", opt.url.tls},             {"sources", opt.source_names}};
    if (opt.mode == Mode::Echo) cfg["window"] = opt.window;
    if (opt.mode != Mode::Echo) cfg["rate"] = opt.rate;
    if (opt.mode == Mode::Fanout) {
        cfg["publishers"] = opt.publishers;
        cfg["pub_url"] = opt.pub_url.url;
        cfg["topics"] = opt.topics;
        cfg["slow"] = opt.slow;
    }

    if (opt.mode == Mode::Churn) cfg["messages"] = opt.messages;
    out["config"] = cfg;
    out["interrupted"] = stop_sent;
    out["duration_s"] = round3(window_s);

    out["attempted"] = t.attempted;
    out["connected"] = t.connected;
    out["failed"] = t.failed;
    out["dropped"] = t.dropped;
    out["failures"] = t.failures;
    double connect_s = t.last_open_ns > t.first_connect_ns
                           ? static_cast<double>(t.last_open_ns - t.first_connect_ns) / 1e9
                           : 0;
    if (opt.mode != Mode::Churn) {
        out["connect_time_s"] = round3(connect_s);
        out["connect_rate_per_s"] = connect_s > 0 ? round1(static_cast<double>(t.connected) / connect_s) : 0.0;
    }
    out["handshake_us"] = percentiles_us(t.handshake);
    out["pings"] = t.pings;
    out["window_pings"] = t.window_pings;
    out["protocol_errors"] = t.protocol_errors;
    uint64_t errors = t.failed + t.dropped + t.mismatched;
    double per_msg_count = 0;  // what server CPU is divided by
    switch (opt.mode) {
    case Mode::Connect:
        out["survived"] = t.open_at_end;
        out["received"] = t.received;
        per_msg_count = static_cast<double>(t.open_at_end) * window_s;
        break;
    case Mode::Echo:
        out["sent"] = t.sent;
        out["received"] = t.received;
        out["lost"] = t.lost;
        out["mismatched"] = t.mismatched;
        out["messages_per_s"] = round1(static_cast<double>(t.window_received) / window_s);
        out["bytes_per_s"] = round1(static_cast<double>(t.window_received) * static_cast<double>(opt.size) / window_s);
        out["window_received"] = t.window_received;
        out["rtt_us"] = percentiles_us(t.rtt);
        per_msg_count = static_cast<double>(t.window_received);
        break;
    case Mode::Fanout: {
        // Each subscriber should get every message published to its topic.
        uint64_t expected = 0, slow_expected = 0;
        uint64_t subs_min = UINT64_MAX, subs_max = 0;
        for (size_t g = 0; g < t.group_published.size(); g++) {
            uint64_t subs = g < t.group_subscribers.size() ? t.group_subscribers[g] : 0;
            uint64_t slow = g < t.group_slow.size() ? t.group_slow[g] : 0;
            expected += t.group_published[g] * subs;
            slow_expected += t.group_published[g] * slow;
            subs_min = std::min(subs_min, subs + slow);
            subs_max = std::max(subs_max, subs + slow);
        }
        uint64_t lost = expected > t.delivered ? expected - t.delivered : 0;
        out["subscribers"] = t.subscribers;
        if (opt.topics) {
            out["topics"] = opt.topics;
            out["subscribers_per_topic"] = {{"min", subs_min == UINT64_MAX ? 0 : subs_min}, {"max", subs_max}};
        }
        if (opt.slow) {
            uint64_t slow_lost = slow_expected > t.slow_delivered ? slow_expected - t.slow_delivered : 0;
            out["slow"] = {{"subscribers", t.slow_subscribers}, {"expected", slow_expected},
                           {"delivered", t.slow_delivered}, {"lost", slow_lost},
                           {"dropped", t.slow_dropped}};
        }
        out["publishers"] = t.publishers;
        out["published"] = t.published;
        out["publish_skipped"] = t.publish_skipped;
        out["sent"] = t.sent;
        out["received"] = t.received;
        out["expected"] = expected;
        out["delivered"] = t.delivered;
        out["lost"] = lost;
        out["duplicates"] = t.duplicates;
        out["mismatched"] = t.mismatched;
        out["delivered_ratio"] = expected ? round3(static_cast<double>(t.delivered) / static_cast<double>(expected)) : 0.0;
        out["publish_rate_per_s"] = round1(static_cast<double>(t.published) / std::max(opt.duration, 1e-9));
        out["deliveries_per_s"] = round1(static_cast<double>(t.window_delivered) / window_s);
        out["window_delivered"] = t.window_delivered;
        out["latency_us"] = percentiles_us(t.latency);
        if (!t.latency_by_url.empty()) {
            json by = json::array();
            for (const bench::Histogram &h : t.latency_by_url) by.push_back(percentiles_us(h));
            out["latency_us_by_url"] = by;
        }
        errors += lost + t.duplicates;
        per_msg_count = static_cast<double>(t.window_delivered);
        break;
    }
    case Mode::Churn:
        out["opened"] = t.opened;
        out["window_opened"] = t.window_opened;
        out["opens_per_s"] = round1(static_cast<double>(t.window_opened) / window_s);
        out["closed_clean"] = t.closed_clean;
        out["sent"] = t.sent;
        out["received"] = t.received;
        out["lost"] = t.lost;
        out["mismatched"] = t.mismatched;
        out["rtt_us"] = percentiles_us(t.rtt);
        per_msg_count = static_cast<double>(t.window_opened);
        break;
    }
    out["close_timeouts"] = t.close_timeouts;
    out["errors"] = errors;
    if (pid > 0) {
        json s;
        s["pid"] = pid;
        if (s_ready.taken && s_before.cpu_ns >= 0 && s_ready.cpu_ns >= 0) {
            double setup_cpu = static_cast<double>(s_ready.cpu_ns - s_before.cpu_ns) / 1e9;
            s["cpu_s_setup"] = round3(setup_cpu);
            if (t.connected) s["cpu_us_per_handshake"] = round3(setup_cpu * 1e6 / static_cast<double>(t.connected));
        }
        if (s_from.cpu_ns >= 0 && s_end.cpu_ns >= 0) {
            double win_cpu = static_cast<double>(s_end.cpu_ns - s_from.cpu_ns) / 1e9;
            s["cpu_s_window"] = round3(win_cpu);
            s["cpu_percent_window"] = round1(100.0 * win_cpu / window_s);
            const char *key = opt.mode == Mode::Echo     ? "cpu_us_per_message"
                              : opt.mode == Mode::Fanout ? "cpu_us_per_delivery"
                              : opt.mode == Mode::Churn  ? "cpu_us_per_connection"
                                                         : "cpu_us_per_connection_second";
            if (per_msg_count > 0) s[key] = round3(win_cpu * 1e6 / per_msg_count);
        }
        s["rss_kib_before"] = s_before.rss_kib;
        if (s_ready.taken) s["rss_kib_loaded"] = s_ready.rss_kib;
        s["rss_kib_end"] = s_end.rss_kib;
        uint64_t held = opt.mode == Mode::Fanout ? t.subscribers + t.publishers : t.connected;
        if (s_ready.taken && held && opt.mode != Mode::Churn && s_ready.rss_kib >= 0)
            s["kib_per_connection"] = round3(static_cast<double>(s_ready.rss_kib - s_before.rss_kib) /
                                             static_cast<double>(held));
        out["server"] = s;
    }
    if (!opt.also_pids.empty()) {
        json also = json::array();
        for (size_t i = 0; i < opt.also_pids.size(); i++) {
            json a = {{"pid", opt.also_pids[i]}};
            if (also_from[i] >= 0 && also_end[i] >= 0) {
                double win_cpu = static_cast<double>(also_end[i] - also_from[i]) / 1e9;
                a["cpu_s_window"] = round3(win_cpu);
                if (window_s > 0) a["cpu_percent_window"] = round1(100.0 * win_cpu / window_s);
            }
            also.push_back(a);
        }
        out["also"] = also;
    }
    out["client"] = {{"cpu_s", round3(client_cpu)},
                     {"processes", opt.processes},
                     {"threads", opt.threads},
                     {"setup_s", round3(setup_done_at > start ? static_cast<double>(setup_done_at - start) / 1e9 : 0)}};
    if (worker_failed) out["error"] = killed ? "workers killed (budget overrun or second interrupt)"
                                             : "a worker process failed";
    std::printf("%s\n", out.dump().c_str());
    std::fflush(stdout);
    if (worker_failed) return 3;
    return t.connected == 0 ? 1 : 0;
}
