#include "config/options.h"

#include <arpa/inet.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <stdexcept>

#include "base/error.h"
#include "security/netaddr.h"
#include "security/origin.h"
#include "base/text.h"
#include "config/suggest.h"
#include "cluster/address.h"

namespace wsgate {
namespace {

std::string valid_host(std::string_view v) {
    if (v.empty()) return {};
    std::string s(v);
    unsigned char buf[16];
    if (inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1)
        return {};
    return "must be an IPv4 or IPv6 address literal such as 127.0.0.1 or ::1, or empty for "
           "every interface";
}

std::string valid_path(std::string_view v) {
    if (v.empty() || v[0] != '/') return "must start with '/'";
    for (char c : v)
        if (c == '?' || c == '#' || static_cast<unsigned char>(c) <= 0x20)
            return "must be a plain path (no query, fragment, spaces or control characters)";
    return {};
}

std::string valid_subprotocols(std::string_view v) {
    // RFC 6455 subprotocol names are RFC 7230 tokens.
    bool empty_item = true;
    for (char c : v) {
        if (c == ',') {
            if (empty_item) return "has an empty name (use a comma-separated list of tokens)";
            empty_item = true;
            continue;
        }
        if (!is_tchar(c)) return "must be a comma-separated list of tokens without spaces";
        empty_item = false;
    }
    if (!v.empty() && empty_item) return "has an empty name (use a comma-separated list of tokens)";
    return {};
}

std::string valid_origins(std::string_view v) {
    OriginPolicy p;
    return OriginPolicy::parse(v, &p);
}

std::string valid_token_sources(std::string_view v) {
    std::string item;
    for (size_t i = 0; i <= v.size(); i++) {
        if (i < v.size() && v[i] != ',') {
            if (v[i] != ' ') item += v[i];
            continue;
        }
        if (item != "header" && item != "query" && item != "cookie" && item != "subprotocol")
            return "must be a comma-separated list of header, query, cookie, subprotocol";
        item.clear();
    }
    return {};
}

std::string valid_listen_address(std::string_view v) {
    if (v.empty()) return {};
    std::string host;
    int port = 0;
    return parse_host_port(v, &host, &port);
}

std::string valid_cidrs(std::string_view v) {
    std::string err;
    CidrList::parse(v, &err);
    return err;
}

std::string valid_redis(std::string_view v) {
    if (v.empty()) return {};
    return parse_redis_address(v, nullptr);
}

// cluster.node_id and cluster.prefix: part of log lines, keys and channel
// names, so printable and without spaces.
std::string valid_name(std::string_view v) {
    if (v.size() > 64) return "must be at most 64 bytes";
    for (char c : v)
        if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return "must be printable with no spaces";
    return {};
}

std::string valid_prefix(std::string_view v) {
    if (v.empty()) return "must not be empty (it keeps clusters sharing one Redis apart)";
    return valid_name(v);
}

constexpr int64_t kKiB = 1024, kMiB = 1024 * 1024, kGiB = 1024 * kMiB;

// "|close|drop_newest|...": the policies of the header's list, in its order
// (the table points past the first bar).
#define WSG_QUEUE_POLICY_CHOICE_(name, value, text, doc) "|" text
constexpr char kQueuePolicyChoices[] = WSG_QUEUE_POLICY_MAP(WSG_QUEUE_POLICY_CHOICE_);
#undef WSG_QUEUE_POLICY_CHOICE_

// Keep sorted by section; README's option table is generated from this.
const std::vector<OptionDef> kTable = {
    {"listen.host", OptType::String, "", 0, 0, nullptr,
     "Address to listen on: an IPv4 or IPv6 literal; empty listens on every interface "
     "(IPv4 and IPv6).",
     valid_host},
    {"listen.port", OptType::Int, "8080", 0, 65535, nullptr,
     "TCP port; 0 picks a free ephemeral port (read it back with wsg_server_port).", nullptr},
    {"server.path", OptType::String, "/", 0, 0, nullptr,
     "URL path that accepts upgrades: this path and paths below it; others get 404.",
     valid_path},
    {"server.subprotocols", OptType::String, "", 0, 0, nullptr,
     "Comma-separated subprotocols the server speaks (Sec-WebSocket-Protocol); a request "
     "offering only others gets 400. Empty: none offered is accepted.",
     valid_subprotocols},
    {"server.trusted_proxies", OptType::String, "", 0, 0, nullptr,
     "Comma-separated CIDRs of reverse proxies: only from these peers is X-Forwarded-For "
     "believed (rightmost untrusted hop) for limits and logs.",
     valid_cidrs},
    {"server.shutdown_timeout_ms", OptType::Int, "2000", 0, 600000, nullptr,
     "How long a stop waits for close handshakes before it drops the remaining connections.",
     nullptr},
    {"server.drain_ms", OptType::Int, "0", 0, 3600000, nullptr,
     "What wsg_server_request_stop does (SIGTERM in wsgate-echo and wsgate-chat, Python's "
     "serve_forever): 0 stops at once (1001 to every client); more drains over this long like "
     "wsg_server_drain (not ready, new upgrades 503, clients closed with 1012 at a steady pace "
     "in random order), then stops.",
     nullptr},
    {"limits.max_message_bytes", OptType::Int, "1048576", 1, kGiB, nullptr,
     "Largest inbound message after reassembly; a larger one closes the connection with 1009.",
     nullptr},
    {"limits.max_connections", OptType::Int, "10000", 1, 10000000, nullptr,
     "Open connections allowed at once; further upgrade requests get 503. Connections still in their "
     "handshake count from accept: past this + 64, new TCP connections are closed at once. The open-file "
     "limit is raised to fit at start (an fd_limit warning when the hard limit is too low).",
     nullptr},
    {"limits.max_connections_per_ip", OptType::Int, "0", 0, 10000000, nullptr,
     "Open connections allowed per client IP (see server.trusted_proxies); further upgrades get "
     "429. Counted from accept for the TCP peer (unless a trusted proxy), upgraded or not: past "
     "this + 1, its new TCP connections are closed at once. 0: no per-IP limit.",
     nullptr},
    {"limits.max_connections_per_user", OptType::Int, "0", 0, 10000000, nullptr,
     "Open connections allowed per authenticated user; further upgrades get 429. With "
     "cluster.redis the user's connections on every instance count (the upgrade waits for one "
     "Redis round trip; while Redis is down or slow, this instance's count alone decides). 0: no "
     "limit.",
     nullptr},
    {"limits.handshakes_per_ip_per_s", OptType::Int, "0", 0, 1000000, nullptr,
     "Upgrade requests accepted per client IP per second (token bucket); more get 429. 0: no "
     "limit.",
     nullptr},
    {"limits.handshake_burst", OptType::Int, "0", 0, 1000000, nullptr,
     "Burst of upgrade requests per IP above the rate; 0: one second's worth.", nullptr},
    // The ranges keep a whole head under http-parser's own 80 KiB cap
    // (16384 + 61440 + 2 * 1000 CRLFs), so each limit answers with its own status.
    {"limits.max_request_line_bytes", OptType::Int, "8192", 64, 16384, nullptr,
     "Longest HTTP request line (method, URL with its query, version) of an upgrade request; "
     "longer gets 414. A token in the URL (auth.token_sources=query) counts.",
     nullptr},
    {"limits.max_header_bytes", OptType::Int, "16384", 512, 61440, nullptr,
     "Most bytes of all header lines of an upgrade request together (cookies and an "
     "Authorization token count); more gets 431.",
     nullptr},
    {"limits.max_headers", OptType::Int, "64", 8, 1000, nullptr,
     "Most header lines in an upgrade request; more gets 431.", nullptr},
    {"limits.messages_per_s", OptType::Int, "0", 0, 100000000, nullptr,
     "Inbound messages per connection per second (token bucket); over it, limits.rate_policy "
     "applies. 0: no limit.",
     nullptr},
    {"limits.message_burst", OptType::Int, "0", 0, 100000000, nullptr,
     "Burst of inbound messages above the rate; 0: one second's worth.", nullptr},
    {"limits.frames_per_s", OptType::Int, "0", 0, 100000000, nullptr,
     "Inbound frames per connection per second (token bucket): every data fragment, ping and "
     "pong counts, so floods of control frames and tiny fragments are bounded too; over it, "
     "close with 1008 (cause rate_limit), logged once. 0: no limit.",
     nullptr},
    {"limits.frame_burst", OptType::Int, "0", 0, 100000000, nullptr,
     "Burst of inbound frames above the rate; 0: one second's worth.", nullptr},
    {"limits.rate_policy", OptType::Enum, "close", 0, 0, "close|drop",
     "Over limits.messages_per_s: close with 1008 (cause rate_limit), or drop the message "
     "(counted and logged).",
     nullptr},
    {"limits.max_queue_bytes", OptType::Int, "16777216", 1 * kKiB, 64 * kGiB, nullptr,
     "Bytes one connection's send queue may hold (data and control frames not yet taken by "
     "the kernel); a message that would pass it meets limits.queue_policy.",
     nullptr},
    {"limits.max_total_queue_bytes", OptType::Int, "1073741824", 0, 64 * kGiB, nullptr,
     "Bytes all send queues may hold together (frames not yet taken by the kernel; a broadcast "
     "frame counts once however many queues hold it; what lws holds back from a short write is "
     "not counted). A message that would pass it meets the queue_policy of the connection it is "
     "for when that connection is behind (its socket takes nothing more); one that keeps up is "
     "not charged for the others' backlog: it may use a reserve of an eighth of the cap above it, "
     "up to its high-water mark within one event, so nothing passes the cap plus an eighth. "
     "1 GiB: 64 full default queues, far above a healthy "
     "server's backlog, below what slow readers could otherwise pin (limits.max_connections times "
     "limits.max_queue_bytes). 0: no cap.",
     nullptr},
    {"limits.queue_policy", OptType::Enum, "close", 0, 0, kQueuePolicyChoices + 1,
     "What a full send queue does with one more message: close the connection "
     "(limits.queue_close_code), drop_newest (that message), drop_oldest (the oldest whole "
     "messages queued), conflate (while behind, the latest message per topic). "
     "wsg_conn_set_queue_policy overrides it per connection.",
     nullptr},
    {"limits.queue_close_code", OptType::Int, "1013", 1008, 4999, "1008|1013|4000..4999",
     "Close code of a connection whose queue overflowed under limits.queue_policy=close: 1013 "
     "(try again later), 1008 (policy violation), or one of your own protocol (4000..4999).",
     nullptr},
    {"limits.queue_high_water_bytes", OptType::Int, "0", 0, 64 * kGiB, nullptr,
     "Queued bytes above which a connection is behind: conflate starts, and on_drain fires once "
     "it is back at the low-water mark. At most limits.max_queue_bytes; 0: half of it.",
     nullptr},
    {"limits.queue_low_water_bytes", OptType::Int, "0", 0, 64 * kGiB, nullptr,
     "Queued bytes at or below which a connection that was behind has caught up (on_drain, the "
     "queue_recovered event). Below the high-water mark; 0: a quarter of it.",
     nullptr},
    {"compression.enabled", OptType::Bool, "false", 0, 0, nullptr,
     "Offer permessage-deflate (RFC 7692) to clients that ask. Inbound messages are bounded "
     "by limits.max_message_bytes after inflation.",
     nullptr},
    {"compression.client_context_takeover", OptType::Bool, "false", 0, 0, nullptr,
     "Let clients keep their compression context between messages (better ratio on similar "
     "messages, about 40 KiB more per such connection). Off: the answer asks every client for "
     "client_no_context_takeover, and no inflater state is kept per connection.",
     nullptr},
    {"compression.min_bytes", OptType::Int, "128", 0, 1 * kGiB, nullptr,
     "Outbound messages shorter than this go uncompressed (deflate does not pay below it).",
     nullptr},
    {"compression.level", OptType::Int, "1", 1, 9, nullptr,
     "zlib level for outbound messages: 1 fastest, 9 smallest.", nullptr},
    {"heartbeat.preset", OptType::Enum, "default", 0, 0, "default|chat|game",
     "Named set of heartbeat values: default (Go's: ping 54 s, pong wait 60 s), chat (minutes: "
     "ping 30 s, pong wait 120 s), game (seconds: ping 1 s, pong wait 3 s). Heartbeat options set "
     "explicitly override it.",
     nullptr},
    {"heartbeat.ping_interval_ms", OptType::Int, "54000", 0, 86400000, nullptr,
     "Server ping period per connection; 0 sends no pings.", nullptr},
    {"heartbeat.pong_wait_ms", OptType::Int, "60000", 0, 86400000, nullptr,
     "Close (cause pong_timeout, code 1001) when no pong (or, with any_frame_is_alive, no frame) "
     "arrived for this long; must exceed the ping interval; 0 disables.",
     nullptr},
    {"heartbeat.write_wait_ms", OptType::Int, "10000", 0, 86400000, nullptr,
     "Drop a connection (cause write_timeout) whose pending writes make no progress for this "
     "long (the peer stopped reading); 0 disables.",
     nullptr},
    {"heartbeat.idle_timeout_ms", OptType::Int, "0", 0, 604800000, nullptr,
     "Close (cause idle_timeout, code 1001) when no data message arrived for this long; 0 is "
     "off.",
     nullptr},
    {"heartbeat.handshake_timeout_ms", OptType::Int, "10000", 100, 3600000, nullptr,
     "Drop a TCP connection that has not completed the HTTP upgrade by then (slowloris).",
     nullptr},
    {"heartbeat.close_wait_ms", OptType::Int, "2000", 10, 600000, nullptr,
     "After sending a close frame, how long to wait for the peer's before dropping the "
     "connection (cause close_timeout).",
     nullptr},
    {"heartbeat.any_frame_is_alive", OptType::Bool, "true", 0, 0, nullptr,
     "Whether any inbound frame, not only a pong, proves the peer alive.", nullptr},
    {"heartbeat.tick_ms", OptType::Int, "100", 10, 1000, nullptr,
     "Resolution of every heartbeat deadline (one timer tick drives them all); deadlines fire "
     "at most one tick late.",
     nullptr},
    {"tls.cert_file", OptType::String, "", 0, 0, nullptr,
     "PEM certificate chain (leaf first); set with tls.key_file to serve wss://. Checked when "
     "the server is created.",
     nullptr},
    {"tls.key_file", OptType::String, "", 0, 0, nullptr,
     "PEM private key matching tls.cert_file.", nullptr},
    {"tls.ca_file", OptType::String, "", 0, 0, nullptr,
     "PEM CA certificates that sign acceptable client certificates (mutual TLS).", nullptr},
    {"tls.client_auth", OptType::Enum, "none", 0, 0, "none|optional|required",
     "Client certificates: none asked, optional (verified when sent), required (handshake "
     "fails without one). Needs tls.ca_file.",
     nullptr},
    {"tls.min_version", OptType::Enum, "1.2", 0, 0, "1.2|1.3",
     "Oldest TLS version accepted; 1.0 and 1.1 never are.", nullptr},
    {"tls.ciphers", OptType::String,
     "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
     "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305",
     0, 0, nullptr,
     "TLS 1.2 cipher suites (OpenSSL names): forward-secret AEAD only by default. TLS 1.3 "
     "suites are OpenSSL's (all AEAD).",
     nullptr},
    {"tls.groups", OptType::String, "X25519:P-256:P-384", 0, 0, nullptr,
     "Key-exchange groups offered, in preference order.", nullptr},
    {"auth.mode", OptType::Enum, "none", 0, 0, "none|jwt|callback|jwt+callback",
     "Authentication before the upgrade: a JWT (auth.jwt.*), the application's authenticator "
     "(wsg_server_on_auth), or a JWT then the authenticator. Refused requests get 401/403.",
     nullptr},
    {"auth.token_sources", OptType::String, "header", 0, 0, nullptr,
     "Where the token travels, tried in this order: header (Authorization: Bearer), query "
     "(access_token), cookie (auth.cookie_name), subprotocol (an offered bearer.TOKEN).",
     valid_token_sources},
    {"auth.cookie_name", OptType::String, "access_token", 0, 0, nullptr,
     "Cookie holding the token when auth.token_sources has cookie (then Origin is required).",
     nullptr},
    {"auth.expiry_grace_ms", OptType::Int, "0", 0, 86400000, nullptr,
     "After a connection's JWT expires (exp), how long before it is closed with 1008 "
     "(cause token_expired).",
     nullptr},
    {"auth.jwt.jwks_file", OptType::String, "", 0, 0, nullptr,
     "JWKS document with the verification keys (chosen by kid; each key's alg honoured).",
     nullptr},
    {"auth.jwt.key_file", OptType::String, "", 0, 0, nullptr,
     "PEM public key (or certificate) for RS*, PS*, ES* or EdDSA tokens.", nullptr},
    {"auth.jwt.secret_file", OptType::String, "", 0, 0, nullptr,
     "File holding the HMAC secret for HS* tokens (at least as long as the hash).", nullptr},
    {"auth.jwt.algorithms", OptType::String, "", 0, 0, nullptr,
     "Comma-separated allowlist of JWS algorithms; empty: whatever each key is bound to. "
     "none is never accepted.",
     nullptr},
    {"auth.jwt.leeway_s", OptType::Int, "60", 0, 86400, nullptr,
     "Clock skew allowed on exp, nbf and iat, in seconds.", nullptr},
    {"auth.jwt.require_exp", OptType::Bool, "true", 0, 0, nullptr,
     "Refuse tokens without an exp claim.", nullptr},
    {"auth.jwt.issuer", OptType::String, "", 0, 0, nullptr,
     "Required iss claim; empty: not checked.", nullptr},
    {"auth.jwt.audience", OptType::String, "", 0, 0, nullptr,
     "Comma-separated accepted aud values (string or array claim); empty: tokens with an aud "
     "are refused.",
     nullptr},
    {"auth.jwt.user_claim", OptType::String, "sub", 0, 0, nullptr,
     "Claim holding the user id.", nullptr},
    {"security.allowed_origins", OptType::String, "", 0, 0, nullptr,
     "Comma-separated origins whose pages may connect: exact (https://app.example.com), "
     "subdomain wildcard (https://*.example.com), * for any, null for opaque origins; others "
     "get 403. List your own public origin here (see security.allow_same_origin).",
     valid_origins},
    {"security.allow_same_origin", OptType::Enum, "auto", 0, 0, "auto|true|false",
     "Also allow a page whose origin matches the request's own Host header (chosen by the "
     "client, so DNS rebinding passes it): auto does so only while security.allowed_origins is "
     "empty.",
     nullptr},
    {"security.require_origin", OptType::Bool, "false", 0, 0, nullptr,
     "Refuse (403) requests without an Origin header (native clients send none; browsers always "
     "do).",
     nullptr},
    {"log.level", OptType::Enum, "info", 0, 0, "debug|info|warn|error|off",
     "Least severe event logged (accept is debug; open and close info; reject warn).", nullptr},
    {"log.max_per_s", OptType::Int, "20", 0, 1000000, nullptr,
     "Lines per second for each kind of event a flood repeats (reject, handshake_timeout, "
     "protocol_error, rate_limited...: the README's event table says which), per status or cause; "
     "the rest are counted into one log_suppressed line per kind and second. open and close are "
     "always logged. 0: no limit.",
     nullptr},
    {"metrics.listen", OptType::String, "", 0, 0, nullptr,
     "Address of the metrics listener (GET /metrics: Prometheus text; /healthz; /readyz): PORT "
     "(on 127.0.0.1), HOST:PORT or [IPv6]:PORT; port 0 picks a free one. Empty: off. Plain HTTP: "
     "keep it on loopback or a private network.",
     valid_listen_address},
    {"cluster.redis", OptType::String, "", 0, 0, nullptr,
     "Redis of the cluster (several instances behaving as one: README, Cluster): HOST:PORT with an IP "
     "address literal, or unix:/path. Names are refused (resolving would block the service thread). "
     "Empty: no cluster, nothing about Redis runs.",
     valid_redis},
    {"cluster.node_id", OptType::String, "", 0, 0, nullptr,
     "This instance's name in the cluster's logs; empty: generated (host-pid-random), logged by "
     "cluster_start.",
     valid_name},
    {"cluster.prefix", OptType::String, "wsgate", 0, 0, nullptr,
     "Namespace of the cluster's Redis keys and channels, so two clusters can share one Redis.",
     valid_prefix},
    {"cluster.password_file", OptType::String, "", 0, 0, nullptr,
     "File whose first line is the Redis password (AUTH), read when the server is created. Empty: no "
     "AUTH.",
     nullptr},
    {"cluster.db", OptType::Int, "0", 0, 65535, nullptr,
     "Redis database (SELECT) of the cluster's keys; channels are shared by every database.", nullptr},
    {"cluster.connect_timeout_ms", OptType::Int, "1000", 10, 600000, nullptr,
     "Most time a connection to Redis may take (TCP, AUTH, SELECT, first reply) before it is "
     "abandoned and retried.",
     nullptr},
    {"cluster.command_timeout_ms", OptType::Int, "1000", 10, 600000, nullptr,
     "Most time the oldest command may wait for Redis' reply: past it the connection is dropped and "
     "made again (a hung Redis is detected by this); also how long the subscriber connection may "
     "miss its heartbeat.",
     nullptr},
    {"cluster.reconnect_min_ms", OptType::Int, "50", 1, 600000, nullptr,
     "First wait before connecting to Redis again; doubled on each failure up to "
     "cluster.reconnect_max_ms, each wait drawn at random from its upper half.",
     nullptr},
    {"cluster.reconnect_max_ms", OptType::Int, "1000", 1, 3600000, nullptr,
     "Longest wait between attempts to reach Redis (so delivery resumes within about this long of "
     "Redis returning).",
     nullptr},
    {"cluster.max_pending", OptType::Int, "65536", 16, 10000000, nullptr,
     "Commands waiting for Redis' reply on the command connection at most; past it publishes are "
     "dropped (counted) and other cross-instance calls fail with WSG_ECLUSTER.",
     nullptr},
    {"cluster.session_ttl_ms", OptType::Int, "86400000", 1000, 315360000000, nullptr,
     "Lifetime of session data (wsg_session_set with ttl 0): a day, so an abandoned session does not "
     "stay forever; each set starts it again. Also without cluster.redis (the in-memory store).",
     nullptr},
    {"cluster.session_max_bytes", OptType::Int, "65536", 1, 512 * kMiB, nullptr,
     "Largest session value (wsg_session_set: larger is WSG_ELIMIT): session data is small, and each "
     "value crosses Redis whole.",
     nullptr},
    {"cluster.require", OptType::Bool, "false", 0, 0, nullptr,
     "Not ready (/readyz 503, wsgate_ready 0) while the cluster is down (Redis unreachable, or this "
     "instance has no node number yet).",
     nullptr},
    {"cluster.presence_ttl_ms", OptType::Int, "30000", 300, 3600000, nullptr,
     "Lease of this instance's node number and life of its presence entries in Redis, renewed every "
     "third of it: the entries of an instance that dies without a goodbye (kill -9, SIGSTOP, network "
     "loss) are gone within this long; a clean stop removes them at once.",
     nullptr},
    {"tuning.rx_buffer_bytes", OptType::Int, "65536", 125, 1 * kMiB, nullptr,
     "Most bytes read per read event (at least 4096 are), into one buffer shared by every "
     "connection, so it costs nothing per connection: larger lets one read (and one coalesced "
     "reply) carry more pipelined messages.",
     nullptr},
    {"tuning.event_loop", OptType::Enum, "epoll", 0, 0, "epoll|poll",
     "Event loop: epoll (through libev; a wake-up costs what is ready) or "
     "poll (lws' own; every wake-up scans every socket, fine below a few hundred).",
     nullptr},
    {"tuning.trim_memory", OptType::Bool, "true", 0, 0, nullptr,
     "After a burst of queued output (the queues held 8 MiB or more, then fell below a quarter of "
     "that), return the freed memory to the system with malloc_trim, from the heartbeat tick, at "
     "most once every 5 s. glibc only; turn it off under an allocator that returns memory itself "
     "(jemalloc, tcmalloc).",
     nullptr},
    {"tuning.write_batch_bytes", OptType::Int, "65536", 1 * kKiB, 16 * kMiB, nullptr,
     "Most bytes of whole frames written per writable event; larger messages go out as "
     "fragments of about this size. Larger batches mean fewer system calls per message.",
     nullptr},
};

}  // namespace

std::string parse_host_port(std::string_view v, std::string *host, int *port) {
    static const char kForm[] = "must be PORT, HOST:PORT or [IPv6]:PORT, with HOST an IP address literal";
    std::string_view h, p = v;
    if (!v.empty() && v[0] == '[') {
        const size_t close = v.find(']');
        if (close == std::string_view::npos || close + 1 >= v.size() || v[close + 1] != ':') return kForm;
        h = v.substr(1, close - 1);
        p = v.substr(close + 2);
    } else if (const size_t colon = v.rfind(':'); colon != std::string_view::npos) {
        h = v.substr(0, colon);
        p = v.substr(colon + 1);
        if (h.find(':') != std::string_view::npos) return kForm;  // IPv6 needs brackets
    }
    if (p.empty() || p.size() > 5) return kForm;
    int n = 0;
    for (char c : p) {
        if (c < '0' || c > '9') return kForm;
        n = n * 10 + (c - '0');
    }
    if (n > 65535) return "has a port above 65535";
    std::string hs = h.empty() ? std::string("127.0.0.1") : std::string(h);
    unsigned char buf[16];
    if (inet_pton(AF_INET, hs.c_str(), buf) != 1 && inet_pton(AF_INET6, hs.c_str(), buf) != 1) return kForm;
    *host = hs;
    *port = n;
    return {};
}

namespace {

bool parse_int(const std::string &s, int64_t *out) {
    // Plain decimal only: strtoll alone would also take spaces and '+'.
    if (s.empty() || !(std::isdigit(static_cast<unsigned char>(s[0])) || s[0] == '-')) return false;
    errno = 0;
    char *end = nullptr;
    long long v = std::strtoll(s.c_str(), &end, 10);
    if (errno != 0 || *end != '\0' || end == s.c_str()) return false;
    *out = v;
    return true;
}

bool parse_bool(std::string s, bool *out) {
    for (char &c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (s == "1" || s == "true" || s == "yes" || s == "on") return *out = true, true;
    if (s == "0" || s == "false" || s == "no" || s == "off") return *out = false, true;
    return false;
}

// Whether `pred` holds for one of the '|'-separated items of `choices`.
template <class Pred>
bool any_choice(std::string_view choices, Pred pred) {
    if (choices.empty()) return false;
    for (;;) {
        size_t bar = choices.find('|');
        if (pred(choices.substr(0, bar))) return true;
        if (bar == std::string_view::npos) return false;
        choices.remove_prefix(bar + 1);
    }
}

// An Int option with choices takes only the values listed: numbers and
// MIN..MAX ranges separated by '|' (its range column stays MIN..MAX, the
// bounds of the list; its doc names the values).
bool int_in_choices(const char *choices, int64_t v) {
    return any_choice(choices, [v](std::string_view item) {
        std::string text(item);
        size_t dots = text.find("..");
        int64_t lo = std::strtoll(text.substr(0, dots).c_str(), nullptr, 10);
        int64_t hi = dots == std::string::npos ? lo : std::strtoll(text.substr(dots + 2).c_str(), nullptr, 10);
        return v >= lo && v <= hi;
    });
}

bool enum_has(const char *choices, std::string_view v) {
    return any_choice(choices, [v](std::string_view item) { return item == v; });
}

struct Preset {
    const char *name;
    int64_t ping, pong, write, idle, handshake, close;
};
const Preset kPresets[] = {
    {"default", 54000, 60000, 10000, 0, 10000, 2000},
    {"chat", 30000, 120000, 30000, 0, 15000, 5000},
    {"game", 1000, 3000, 2000, 0, 5000, 1000},
};

}  // namespace

bool heartbeat_preset_value(const std::string &preset, const char *key, int64_t *out) {
    for (const Preset &p : kPresets) {
        if (preset != p.name) continue;
        std::string_view k(key);
        if (k == "heartbeat.ping_interval_ms") *out = p.ping;
        else if (k == "heartbeat.pong_wait_ms") *out = p.pong;
        else if (k == "heartbeat.write_wait_ms") *out = p.write;
        else if (k == "heartbeat.idle_timeout_ms") *out = p.idle;
        else if (k == "heartbeat.handshake_timeout_ms") *out = p.handshake;
        else if (k == "heartbeat.close_wait_ms") *out = p.close;
        else return false;
        return true;
    }
    return false;
}

const std::vector<OptionDef> &option_table() { return kTable; }

int find_option(std::string_view name) {
    for (size_t i = 0; i < kTable.size(); i++)
        if (name == kTable[i].name) return static_cast<int>(i);
    return -1;
}

std::string unknown_option_message(std::string_view key) {
    static const std::vector<std::string_view> names = [] {
        std::vector<std::string_view> n;
        for (const OptionDef &d : kTable) n.emplace_back(d.name);
        return n;
    }();
    std::string msg = "unknown option '" + std::string(key) + "'";
    std::vector<std::string_view> close = closest_names(key, names, 3);
    if (close.empty()) return msg + " (wsg_option_count/wsg_option_describe list the options)";
    msg += " (did you mean ";
    for (size_t i = 0; i < close.size(); i++) {
        if (i > 0) msg += i + 1 == close.size() ? " or " : ", ";
        msg += close[i];
    }
    return msg + "?)";
}

const char *option_type_name(OptType type) {
    switch (type) {
    case OptType::Int: return "int";
    case OptType::Bool: return "bool";
    case OptType::String: return "string";
    case OptType::Enum: return "enum";
    }
    return "?";
}

const char *option_range_text(size_t index) {
    static const std::vector<std::string> texts = [] {
        std::vector<std::string> t;
        for (const auto &d : kTable) {
            if (d.type == OptType::Int)
                t.push_back(std::to_string(d.min) + ".." + std::to_string(d.max));
            else if (d.type == OptType::Enum)
                t.push_back(d.choices);
            else
                t.emplace_back();
        }
        return t;
    }();
    return index < texts.size() ? texts[index].c_str() : "";
}

}  // namespace wsgate

using namespace wsgate;

wsg_config::wsg_config() {
    values.resize(kTable.size());
    for (size_t i = 0; i < kTable.size(); i++) {
        const OptionDef &d = kTable[i];
        Value &v = values[i];
        switch (d.type) {
        case OptType::Int: parse_int(d.default_text, &v.i); break;
        case OptType::Bool: {
            bool b = false;
            parse_bool(d.default_text, &b);
            v.i = b;
            break;
        }
        case OptType::String:
        case OptType::Enum: v.s = d.default_text; break;
        }
    }
}

wsg_status wsg_config::lookup(const char *key, OptType want, int *index) const {
    if (!key) return fail(WSG_EINVAL, "option key is NULL");
    int i = find_option(key);
    if (i < 0) return fail(WSG_EINVAL, unknown_option_message(key));
    OptType have = kTable[i].type;
    bool same = have == want ||
                (want == OptType::String && (have == OptType::Enum || have == OptType::String));
    if (!same)
        return fail(WSG_EINVAL, std::string("option '") + key + "' is of type " +
                                    option_type_name(have) + ", not " + option_type_name(want));
    *index = i;
    return WSG_OK;
}

wsg_status wsg_config::set_int(const char *key, int64_t v) {
    int i;
    if (wsg_status st = lookup(key, OptType::Int, &i)) return st;
    const OptionDef &d = kTable[i];
    if (v < d.min || v > d.max)
        return fail(WSG_EINVAL, std::string("option '") + key + "': " + std::to_string(v) +
                                    " is out of range " + option_range_text(i));
    if (d.choices && !int_in_choices(d.choices, v))
        return fail(WSG_EINVAL, std::string("option '") + key + "': " + std::to_string(v) +
                                    " is not one of " + d.choices);
    values[i].i = v;
    values[i].set = true;
    return WSG_OK;
}

wsg_status wsg_config::set_bool(const char *key, bool v) {
    int i;
    if (wsg_status st = lookup(key, OptType::Bool, &i)) return st;
    values[i].i = v;
    values[i].set = true;
    return WSG_OK;
}

wsg_status wsg_config::set_string(const char *key, const char *v) {
    int i;
    if (wsg_status st = lookup(key, OptType::String, &i)) return st;
    if (!v) return fail(WSG_EINVAL, std::string("option '") + key + "': value is NULL");
    const OptionDef &d = kTable[i];
    if (d.type == OptType::Enum && !enum_has(d.choices, v))
        return fail(WSG_EINVAL, std::string("option '") + key + "': '" + v +
                                    "' is not one of " + d.choices);
    if (d.validate) {
        std::string why = d.validate(v);
        if (!why.empty())
            return fail(WSG_EINVAL, std::string("option '") + key + "': '" + v + "' " + why);
    }
    values[i].s = v;
    values[i].set = true;
    return WSG_OK;
}

wsg_status wsg_config::set_from_string(const char *assignment) {
    if (!assignment) return fail(WSG_EINVAL, "assignment is NULL");
    std::string a(assignment);
    size_t eq = a.find('=');
    if (eq == std::string::npos || eq == 0)
        return fail(WSG_EINVAL, "'" + a + "' is not of the form key=value");
    std::string key = a.substr(0, eq), value = a.substr(eq + 1);
    int i = find_option(key);
    if (i < 0) return fail(WSG_EINVAL, unknown_option_message(key));
    switch (kTable[i].type) {
    case OptType::Int: {
        int64_t v;
        if (!parse_int(value, &v))
            return fail(WSG_EINVAL, "option '" + key + "': '" + value +
                                        "' is not a decimal integer in range " +
                                        option_range_text(i));
        return set_int(key.c_str(), v);
    }
    case OptType::Bool: {
        bool b;
        if (!parse_bool(value, &b))
            return fail(WSG_EINVAL, "option '" + key + "': '" + value +
                                        "' is not a bool (true/false, 1/0, yes/no, on/off)");
        return set_bool(key.c_str(), b);
    }
    case OptType::String:
    case OptType::Enum: return set_string(key.c_str(), value.c_str());
    }
    return fail(WSG_EINTERNAL, "bad option type");
}

wsg_status wsg_config::get_int(const char *key, int64_t *out) const {
    int i;
    if (wsg_status st = lookup(key, OptType::Int, &i)) return st;
    if (!out) return fail(WSG_EINVAL, "out is NULL");
    *out = values[i].i;
    return WSG_OK;
}

wsg_status wsg_config::get_bool(const char *key, int *out) const {
    int i;
    if (wsg_status st = lookup(key, OptType::Bool, &i)) return st;
    if (!out) return fail(WSG_EINVAL, "out is NULL");
    *out = values[i].i ? 1 : 0;
    return WSG_OK;
}

wsg_status wsg_config::get_string(const char *key, const char **out) const {
    int i;
    if (wsg_status st = lookup(key, OptType::String, &i)) return st;
    if (!out) return fail(WSG_EINVAL, "out is NULL");
    *out = values[i].s.c_str();
    return WSG_OK;
}

int64_t wsg_config::int_of(const char *key) const {
    int i = find_option(key);
    if (i < 0 || kTable[i].type != OptType::Int) throw std::logic_error(key);
    return values[i].i;
}

bool wsg_config::bool_of(const char *key) const {
    int i = find_option(key);
    if (i < 0 || kTable[i].type != OptType::Bool) throw std::logic_error(key);
    return values[i].i != 0;
}

bool wsg_config::is_set(const char *key) const {
    int i = find_option(key);
    return i >= 0 && values[i].set;
}

const std::string &wsg_config::string_of(const char *key) const {
    int i = find_option(key);
    if (i < 0 || (kTable[i].type != OptType::String && kTable[i].type != OptType::Enum))
        throw std::logic_error(key);
    return values[i].s;
}
