// libFuzzer target for the upgrade request parser and the handshake helpers
// (lib/protocol/http_request.h, lib/protocol/handshake.h).
//
// Build (clang only) and run:
//   CC=clang CXX=clang++ cmake -S . -B build-fuzz -DWSGATE_FUZZ=ON
//   cmake --build build-fuzz --target fuzz_http
//   mkdir -p /tmp/http && build-fuzz/tests/fuzz_http -max_total_time=60 /tmp/http tests/fuzz/http_seeds tests/fuzz/http_corpus
// (new inputs go to the first directory; tests/fuzz/README.md). ctest runs it
// for 20 s (fuzz_http_smoke) in such a build, from a copy of the two corpora.
//
// Input: one flags byte (bits 0-1 choose the limits: default, small, tiny,
// one header), two bytes of split point (little-endian, taken modulo the
// length + 1), then the bytes a client sends.
// Checked: no crash, leak or sanitizer report; the outcome (state, status,
// reason, bytes used, request) is the same fed whole, in two pieces at the
// chosen point, and byte by byte; a Done request respects the limits and
// the parser's promises (lower-case token names, trimmed values, the head
// ends with CRLF CRLF, the head alone parses the same); an Error has a
// known status and keeps nothing; check_upgrade, websocket_accept,
// switching_protocols, http_response, split_tokens and query_param run on
// what was parsed and on the raw bytes. A broken invariant is a
// __builtin_trap.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/handshake.h"
#include "protocol/http_request.h"

namespace {

using wsgate::proto::HttpLimits;
using wsgate::proto::HttpRequest;
using wsgate::proto::HttpRequestParser;
using State = HttpRequestParser::State;

void check(bool ok) {
    if (!ok) __builtin_trap();
}

bool is_ows(char c) { return c == ' ' || c == '\t'; }

bool is_tchar(char c) {
    static constexpr std::string_view separators = "()<>@,;:\\\"/[]?={} \t";
    return c > 0x20 && c < 0x7f && separators.find(c) == std::string_view::npos;
}

struct Outcome {
    State state = State::NeedMore;
    int status = 0;
    std::string error;
    size_t used = 0;
    HttpRequest request;
};

bool same_request(const HttpRequest &a, const HttpRequest &b) {
    if (a.method != b.method || a.target != b.target || a.path != b.path || a.query != b.query ||
        a.http_major != b.http_major || a.http_minor != b.http_minor || a.headers.size() != b.headers.size())
        return false;
    for (size_t i = 0; i < a.headers.size(); i++)
        if (a.headers[i].name != b.headers[i].name || a.headers[i].value != b.headers[i].value) return false;
    return true;
}

bool same(const Outcome &a, const Outcome &b) {
    return a.state == b.state && a.status == b.status && a.error == b.error && a.used == b.used &&
           same_request(a.request, b.request);
}

// Feeds the pieces that `cuts` mark (increasing), stopping at Done or Error.
Outcome run(std::string_view in, const std::vector<size_t> &cuts, const HttpLimits &limits) {
    HttpRequestParser p(limits);
    Outcome o;
    size_t at = 0;
    for (size_t i = 0; i <= cuts.size(); i++) {
        const size_t end = i < cuts.size() ? cuts[i] : in.size();
        size_t used = 0;
        o.state = p.feed(in.data() + at, end - at, &used);
        if (o.state == State::NeedMore) check(used == end - at);
        if (o.state == State::Error) check(used == 0);
        o.used += used;
        at = end;
        if (o.state != State::NeedMore) break;
    }
    if (o.state == State::Error) o.used = 0;
    o.status = p.error_status();
    o.error = p.error();
    o.request = std::move(p.request());
    return o;
}

void check_done(std::string_view in, const Outcome &o, const HttpLimits &limits) {
    const HttpRequest &r = o.request;
    check(o.status == 0 && o.error.empty());
    check(o.used >= 4 && o.used <= in.size() && in.substr(o.used - 4, 4) == "\r\n\r\n");
    check(!r.method.empty() && r.http_major == 1 && r.http_minor >= 0 && r.http_minor <= 9);
    check(!r.target.empty() && r.target.size() + r.method.size() + 10 <= limits.max_request_line);
    for (char c : r.target) check(c > 0x20 && c < 0x7f);
    check(r.target.find(r.query) != std::string::npos);
    if (r.target[0] == '/') check(r.target.compare(0, r.path.size(), r.path) == 0);
    check(r.headers.size() <= limits.max_headers);
    size_t bytes = 0;
    for (const auto &h : r.headers) {
        check(!h.name.empty());
        for (char c : h.name) check(is_tchar(c) && !(c >= 'A' && c <= 'Z'));
        for (char c : h.value) check(c != '\r' && c != '\n' && c != '\0');
        if (!h.value.empty()) check(!is_ows(h.value.front()) && !is_ows(h.value.back()));
        bytes += h.name.size() + 1 + h.value.size();  // at least "name:value"
        check(r.get(h.name) != nullptr && r.count(h.name) >= 1);
        check(r.joined(h.name).find(h.value) != std::string::npos);
    }
    check(bytes <= limits.max_header_bytes);

    // The head alone parses the same: nothing after it mattered.
    const Outcome head = run(in.substr(0, o.used), {}, limits);
    check(same(head, o));

    const wsgate::proto::Refusal f = wsgate::proto::check_upgrade(r);
    check(f.status == 0 || f.status == 400 || f.status == 405 || f.status == 426 || f.status == 505);
    check((f.status == 0) == f.reason.empty());
    if (f.status == 0) {
        const std::string *key = r.get("sec-websocket-key");
        check(key && wsgate::proto::valid_websocket_key(*key));
        const std::string accept = wsgate::proto::websocket_accept(*key);
        check(accept.size() == 28);
        const std::string sp = wsgate::proto::switching_protocols(accept, r.path, "");
        check(sp.size() >= 4 && sp.compare(sp.size() - 4, 4, "\r\n\r\n") == 0);
    } else {
        const std::string resp = wsgate::proto::http_response(f.status, f.reason, f.extra_headers);
        check(resp.compare(0, 12, "HTTP/1.1 " + std::to_string(f.status)) == 0);
        const std::string len = "content-length: " + std::to_string(f.reason.size() + 1) + "\r\n";
        check(resp.find(len) != std::string::npos);
        check(resp.size() > f.reason.size() + 1 && resp.compare(resp.size() - f.reason.size() - 1, std::string::npos,
                                                                f.reason + "\n") == 0);
    }
    for (const char *name : {"access_token", "a", ""}) {
        std::optional<std::string> v = wsgate::proto::query_param(r.query, name);
        if (v) check(v->size() <= r.query.size());
    }
}

void check_tokens(std::string_view s) {
    for (std::string_view t : wsgate::proto::split_tokens(s)) {
        check(!t.empty() && !is_ows(t.front()) && !is_ows(t.back()));
        check(t.data() >= s.data() && t.data() + t.size() <= s.data() + s.size());
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3) return 0;
    const uint8_t flags = data[0];
    const size_t split_seed = static_cast<size_t>(data[1]) | static_cast<size_t>(data[2]) << 8;
    const std::string_view in(reinterpret_cast<const char *>(data + 3), size - 3);

    HttpLimits limits;
    switch (flags & 3) {
    case 0: break;
    case 1: limits = {64, 256, 8}; break;
    case 2: limits = {16, 24, 2}; break;
    case 3: limits = {40, 64, 1}; break;
    }

    const Outcome whole = run(in, {}, limits);
    const Outcome split = run(in, {split_seed % (in.size() + 1)}, limits);
    check(same(whole, split));
    if (in.size() <= 8192) {
        std::vector<size_t> every;
        for (size_t i = 1; i < in.size(); i++) every.push_back(i);
        check(same(whole, run(in, every, limits)));
    }

    switch (whole.state) {
    case State::NeedMore:
        check(whole.status == 0 && whole.error.empty() && whole.used == in.size());
        break;
    case State::Error:
        check(whole.status == 400 || whole.status == 414 || whole.status == 431 || whole.status == 505);
        check(!whole.error.empty());
        check(same_request(whole.request, HttpRequest()));
        break;
    case State::Done:
        check_done(in, whole, limits);
        break;
    }

    // The helpers on raw bytes.
    check(wsgate::proto::websocket_accept(in).size() == 28);
    if (wsgate::proto::valid_websocket_key(in)) check(in.size() == 24);
    check_tokens(in);
    std::optional<std::string> v = wsgate::proto::query_param(in, in.substr(0, in.find('=')));
    if (v) check(v->size() <= in.size());
    return 0;
}
