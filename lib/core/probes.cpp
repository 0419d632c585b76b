#include "core/probes.h"

#include "protocol/handshake.h"

namespace wsgate {
namespace {

// A probe is a short GET: these bound what a client can make us hold.
proto::HttpLimits probe_limits() {
    proto::HttpLimits l;
    l.max_request_line = 2048;
    l.max_header_bytes = 8192;
    l.max_headers = 32;
    return l;
}

}  // namespace

Probes::Probes(Transport &transport, TimingWheel &wheel, Clock &clock, int64_t timeout_ms)
    : transport_(transport), wheel_(wheel), clock_(clock), timeout_ms_(timeout_ms), limits_(probe_limits()) {}

ProbeRequest *Probes::admit(Link *link) {
    if (open_ >= kMaxOpen) return nullptr;
    auto *p = new ProbeRequest(limits_);
    p->link = link;
    wheel_.schedule(&p->timer, clock_.now_ms() + timeout_ms_);
    Transport::set_owner(link, static_cast<LinkOwner *>(p));
    open_++;
    return p;
}

Probes::Route Probes::read(ProbeRequest *p, const uint8_t *data, size_t len) {
    if (p->answered) return Route::Pending;  // bytes after the request: ignored
    size_t used = 0;
    switch (p->parser.feed(reinterpret_cast<const char *>(data), len, &used)) {
    case proto::HttpRequestParser::State::NeedMore: return Route::Pending;
    case proto::HttpRequestParser::State::Error: return Route::BadRequest;
    case proto::HttpRequestParser::State::Done: break;
    }
    const proto::HttpRequest &req = p->parser.request();
    p->head = req.method == "HEAD";
    const bool known = req.path == "/metrics" || req.path == "/healthz" || req.path == "/readyz";
    if (!known) return Route::NotFound;
    if (req.method != "GET" && !p->head) return Route::BadMethod;
    if (req.path == "/metrics") return Route::Metrics;
    return req.path == "/healthz" ? Route::Health : Route::Ready;
}

bool Probes::answer(ProbeRequest *p, int status, const char *content_type, const std::string &body) {
    std::string out = "HTTP/1.1 " + std::to_string(status) + " ";
    out += proto::reason_phrase(status);
    out += "\r\ncontent-type: ";
    out += content_type;
    out += "\r\ncontent-length: " + std::to_string(body.size());
    out += "\r\ncache-control: no-cache\r\nconnection: close\r\n";
    if (status == 405) out += "allow: GET, HEAD\r\n";
    out += "\r\n";
    if (!p->head) out += body;
    p->answered = true;
    if (!transport_.write(p->link, reinterpret_cast<const uint8_t *>(out.data()), out.size())) return false;
    return !drained(p);
}

bool Probes::answer_error(ProbeRequest *p, Route route) {
    static const char kText[] = "text/plain; charset=utf-8";
    switch (route) {
    case Route::NotFound: return answer(p, 404, kText, "not found: try /metrics, /healthz or /readyz\n");
    case Route::BadMethod: return answer(p, 405, kText, "only GET and HEAD are served\n");
    default: break;
    }
    const int status = p->parser.error_status() ? p->parser.error_status() : 400;
    return answer(p, status, kText, p->parser.error() + "\n");
}

bool Probes::drained(ProbeRequest *p) {
    // lws holds what the kernel did not take; closing now would lose it.
    if (!Transport::write_pending(p->link)) return true;
    transport_.want_writable(p->link);
    return false;
}

void Probes::timed_out(ProbeRequest *p) {
    transport_.close_soon(p->link);
    drop(p);
}

void Probes::drop(ProbeRequest *p) {
    wheel_.cancel(&p->timer);
    if (p->link) Transport::set_owner(p->link, nullptr);
    open_--;
    delete p;
}

}  // namespace wsgate
