// The metrics listener's requests (metrics.listen): GET /metrics (the
// Prometheus text), /healthz and /readyz, anything else 404. Each request
// is parsed with the gate's HTTP parser under small limits, answered once
// and closed; a client has heartbeat.handshake_timeout_ms to send its
// request and take the answer. What the answers say is the server's
// business: this only parses, routes and writes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/conn.h"
#include "core/wheel.h"
#include "protocol/http_request.h"
#include "transport/transport.h"

namespace wsgate {

struct ProbeRequest : LinkOwner {
    explicit ProbeRequest(const proto::HttpLimits &limits) : LinkOwner(Kind::Probe), parser(limits) {}
    Link *link = nullptr;
    proto::HttpRequestParser parser;
    bool answered = false;  // input is ignored; the link closes once the answer is out
    bool head = false;      // a HEAD request: the answer goes without its body
};

class Probes {
public:
    Probes(Transport &transport, TimingWheel &wheel, Clock &clock, int64_t timeout_ms);

    // What a complete request asks for.
    enum class Route { Pending, Metrics, Health, Ready, NotFound, BadMethod, BadRequest };

    // A new link on the metrics listener. Null when too many are open
    // already (the link is to be closed).
    ProbeRequest *admit(Link *link);
    // Bytes of the request. Anything but Pending is to be answered now.
    Route read(ProbeRequest *p, const uint8_t *data, size_t len);
    // Writes the answer (once). False: close the link now (all written).
    bool answer(ProbeRequest *p, int status, const char *content_type, const std::string &body);
    // The answer for a route that is not the server's to decide (404, 405, 400).
    bool answer_error(ProbeRequest *p, Route route);
    // The link can take more: false once the answer is all out (close it).
    bool drained(ProbeRequest *p);
    // The deadline passed: the link is closed.
    void timed_out(ProbeRequest *p);
    // The link went away: forget the request.
    void drop(ProbeRequest *p);
    size_t open() const { return open_; }

    static constexpr size_t kMaxOpen = 64;

private:
    Transport &transport_;
    TimingWheel &wheel_;
    Clock &clock_;
    const int64_t timeout_ms_;
    const proto::HttpLimits limits_;
    size_t open_ = 0;
};

}  // namespace wsgate
