// The upgrade request parser (lib/protocol/http_request): real clients'
// requests, every limit at its boundary, the strictness rules, headers and
// targets, and the same result whatever way the bytes are split.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
extern "C" {
#include <cmocka.h>
}

#include <cstring>
#include <string>
#include <vector>

#include "protocol/http_samples.h"
#include "protocol/http_request.h"

using wsgate::proto::HttpLimits;
using wsgate::proto::HttpRequest;
using wsgate::proto::HttpRequestParser;
using State = HttpRequestParser::State;
using namespace std::string_literals;  // "...\0..."s keeps NUL bytes

namespace {

// Bytes a client may send right after its head (a masked text frame): they
// are never part of the request.
const std::string kEarlyFrame("\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11);

const char *state_name(State s) {
    switch (s) {
    case State::NeedMore: return "NeedMore";
    case State::Done: return "Done";
    case State::Error: return "Error";
    }
    return "?";
}

// Everything a parse produced, as one comparable text.
struct Outcome {
    State state = State::NeedMore;
    int status = 0;
    std::string error;
    size_t used = 0;  // summed over the calls (Done, NeedMore)
    std::string request;

    bool operator==(const Outcome &o) const {
        return state == o.state && status == o.status && error == o.error && used == o.used &&
               request == o.request;
    }
    std::string text() const {
        return std::string(state_name(state)) + " " + std::to_string(status) + " '" + error +
               "' used=" + std::to_string(used) + "\n" + request;
    }
};

std::string describe(const HttpRequest &r) {
    std::string out = r.method + "|" + r.target + "|" + r.path + "|" + r.query + "|" +
                      std::to_string(r.http_major) + "." + std::to_string(r.http_minor) + "\n";
    for (const auto &h : r.headers) out += "[" + h.name + "]=[" + h.value + "]\n";
    return out;
}

// Feeds `in` in the pieces that `cuts` (increasing offsets) mark, the way a
// transport would: after Done or Error nothing more is offered.
Outcome parse_pieces(const std::string &in, const std::vector<size_t> &cuts,
                     const HttpLimits &limits = HttpLimits()) {
    HttpRequestParser parser(limits);
    Outcome o;
    size_t at = 0;
    std::vector<size_t> ends = cuts;
    ends.push_back(in.size());
    for (size_t end : ends) {
        size_t used = 12345;
        o.state = parser.feed(in.data() + at, end - at, &used);
        if (o.state == State::NeedMore && used != end - at)
            fail_msg("NeedMore consumed %zu of %zu bytes", used, end - at);
        if (o.state == State::Error && used != 0) fail_msg("Error reported %zu bytes used", used);
        o.used += used;
        at = end;
        if (o.state != State::NeedMore) break;
    }
    if (o.state == State::Error) o.used = 0;  // what came before the refusal no longer counts
    o.status = parser.error_status();
    o.error = parser.error();
    o.request = describe(parser.request());
    if (o.state == State::Error && o.request != describe(HttpRequest()))
        fail_msg("a refused request kept data:\n%s", o.request.c_str());
    if ((o.state == State::Error) != (o.status != 0)) fail_msg("status %d in state %s", o.status, state_name(o.state));
    if ((o.state == State::Error) == o.error.empty()) fail_msg("error '%s' in state %s", o.error.c_str(), state_name(o.state));
    return o;
}

Outcome parse(const std::string &in, const HttpLimits &limits = HttpLimits()) {
    return parse_pieces(in, {}, limits);
}

// Whole, in two pieces at every split point, and byte by byte: one outcome.
// Inputs past 4 KiB (the limit tests' large heads) are cut at every point
// of their first and last 300 bytes and at ~1000 points between, so the
// suite stays quick under sanitizers.
Outcome parse_every_split(const std::string &in, const HttpLimits &limits = HttpLimits()) {
    const Outcome whole = parse(in, limits);
    const size_t stride = in.size() > 4096 ? in.size() / 1000 : 1;
    for (size_t cut = 0; cut <= in.size(); cut += (cut < 300 || cut + 300 >= in.size()) ? 1 : stride) {
        const Outcome split = parse_pieces(in, {cut}, limits);
        if (!(split == whole))
            fail_msg("split at %zu of %zu differs:\n%s\nwhole:\n%s", cut, in.size(), split.text().c_str(),
                     whole.text().c_str());
    }
    std::vector<size_t> bytes;
    for (size_t i = 1; i < in.size(); i++) bytes.push_back(i);
    const Outcome one_by_one = parse_pieces(in, bytes, limits);
    if (!(one_by_one == whole))
        fail_msg("byte by byte differs:\n%s\nwhole:\n%s", one_by_one.text().c_str(), whole.text().c_str());
    return whole;
}

void expect_done(const std::string &head, const HttpLimits &limits = HttpLimits()) {
    const Outcome o = parse_every_split(head + kEarlyFrame, limits);
    if (o.state != State::Done) fail_msg("refused: %s", o.text().c_str());
    assert_int_equal(o.used, head.size());
}

void expect_refused(const std::string &in, int status, const char *why_part,
                    const HttpLimits &limits = HttpLimits()) {
    const Outcome o = parse_every_split(in, limits);
    if (o.state != State::Error || o.status != status || o.error.find(why_part) == std::string::npos)
        fail_msg("expected %d '%s', got %s", status, why_part, o.text().c_str());
}

HttpRequest parsed(const std::string &head) {
    HttpRequestParser p;
    size_t used = 0;
    if (p.feed(head.data(), head.size(), &used) != State::Done)
        fail_msg("refused (%d %s): %s", p.error_status(), p.error().c_str(), head.c_str());
    return p.request();
}

std::string head_with(const std::string &request_line, const std::string &headers) {
    return request_line + "\r\n" + headers + "\r\n";
}

// ------------------------------------------------------------------ real clients

void real_clients_parse(void **) {
    using namespace wsgate_test;
    for (const std::string *s : {&kChrome, &kFirefox, &kCurl, &kPythonWebsockets, &kPlainGet}) expect_done(*s);

    HttpRequest r = parsed(kChrome);
    assert_string_equal(r.method.c_str(), "GET");
    assert_string_equal(r.target.c_str(), "/chat?room=1&access_token=abc%2B1");
    assert_string_equal(r.path.c_str(), "/chat");
    assert_string_equal(r.query.c_str(), "room=1&access_token=abc%2B1");
    assert_int_equal(r.http_major, 1);
    assert_int_equal(r.http_minor, 1);
    assert_int_equal(r.headers.size(), 14);
    assert_string_equal(r.headers[0].name.c_str(), "host");
    assert_string_equal(r.headers[0].value.c_str(), "example.com:8080");
    assert_string_equal(r.headers[13].name.c_str(), "sec-websocket-protocol");
    assert_string_equal(r.headers[13].value.c_str(), "chat, bearer.abc");
    assert_string_equal(r.get("User-Agent")->c_str(),
                        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                        "Chrome/120.0.0.0 Safari/537.36");

    r = parsed(kFirefox);
    assert_string_equal(r.get("connection")->c_str(), "keep-alive, Upgrade");
    assert_string_equal(r.path.c_str(), "/ws");
    assert_string_equal(r.query.c_str(), "");

    r = parsed(kPythonWebsockets);
    assert_string_equal(r.get("HOST")->c_str(), "[::1]:8765");
    assert_string_equal(r.query.c_str(), "topic=a+b");
}

// What follows the head (early WebSocket frames, a pipelined request) is
// left to the caller, and a finished parser takes nothing more.
void bytes_after_the_head_are_the_callers(void **) {
    const std::string in = wsgate_test::kCurl + wsgate_test::kCurl;
    HttpRequestParser p;
    size_t used = 0;
    assert_int_equal(p.feed(in.data(), in.size(), &used), State::Done);
    assert_int_equal(used, wsgate_test::kCurl.size());
    assert_int_equal(p.feed(in.data() + used, in.size() - used, &used), State::Done);
    assert_int_equal(used, 0);
    assert_int_equal(p.error_status(), 0);
    assert_string_equal(p.error().c_str(), "");

    // The head's last byte alone completes it.
    HttpRequestParser q;
    const std::string &c = wsgate_test::kCurl;
    assert_int_equal(q.feed(c.data(), c.size() - 1, &used), State::NeedMore);
    assert_int_equal(used, c.size() - 1);
    assert_int_equal(q.feed(c.data() + c.size() - 1, 1, nullptr), State::Done);

    // An empty feed changes nothing; a null `used` is allowed.
    HttpRequestParser e;
    assert_int_equal(e.feed(nullptr, 0, &used), State::NeedMore);
    assert_int_equal(used, 0);
    assert_int_equal(e.state(), State::NeedMore);
    assert_int_equal(e.feed("GET", 3, nullptr), State::NeedMore);

    // Error sticks.
    HttpRequestParser x;
    assert_int_equal(x.feed("GET / HTTP/1.1\n", 15, &used), State::Error);
    assert_int_equal(used, 0);
    assert_int_equal(x.feed(c.data(), c.size(), &used), State::Error);
    assert_int_equal(used, 0);
    assert_int_equal(x.error_status(), 400);
}

// ------------------------------------------------------------------ limits

std::string request_line_of(size_t len) {
    // "GET " + "/" + padding + " HTTP/1.1"
    return "GET /" + std::string(len - 4 - 1 - 9, 'a') + " HTTP/1.1";
}

void request_line_limit(void **) {
    const std::string headers = "Host: x\r\n";
    for (size_t limit : {size_t(20), size_t(100), HttpLimits().max_request_line}) {
        HttpLimits l;
        l.max_request_line = limit;
        expect_done(head_with(request_line_of(limit), headers), l);
        expect_refused(head_with(request_line_of(limit + 1), headers), 414,
                       ("request line longer than " + std::to_string(limit) + " bytes").c_str(), l);
    }
    // The default is 8192: a browser's long query fits, a longer one is refused.
    expect_done(head_with(request_line_of(8192), headers));
    expect_refused(head_with(request_line_of(8193), headers), 414, "longer than 8192");
}

// `count` header lines whose bytes (without CRLF) add up to `bytes`.
std::string headers_of(size_t count, size_t bytes) {
    std::string out;
    const size_t per = bytes / count;
    for (size_t i = 0; i < count; i++) {
        std::string name = "x-" + std::to_string(i);
        size_t len = per + (i + 1 == count ? bytes % count : 0);
        // "name: value": the value fills the rest.
        out += name + ": " + std::string(len - name.size() - 2, 'v') + "\r\n";
    }
    return out;
}

void header_bytes_limit(void **) {
    for (size_t limit : {size_t(64), size_t(1000), HttpLimits().max_header_bytes}) {
        HttpLimits l;
        l.max_header_bytes = limit;
        for (size_t count : {size_t(1), size_t(3)}) {
            expect_done(head_with("GET / HTTP/1.1", headers_of(count, limit)), l);
            expect_refused(head_with("GET / HTTP/1.1", headers_of(count, limit + 1)), 431,
                           ("header block larger than " + std::to_string(limit) + " bytes").c_str(), l);
        }
    }
    // Whitespace counts: padding after the colon is not free.
    HttpLimits l;
    l.max_header_bytes = 10;
    expect_done(head_with("GET / HTTP/1.1", "a:        \r\n"), l);   // 10 bytes
    expect_refused(head_with("GET / HTTP/1.1", "a:         \r\n"), 431, "larger than 10", l);
}

void header_count_limit(void **) {
    for (size_t limit : {size_t(0), size_t(1), size_t(5), HttpLimits().max_headers}) {
        HttpLimits l;
        l.max_headers = limit;
        std::string ok, over;
        for (size_t i = 0; i < limit; i++) ok += "x-" + std::to_string(i) + ": 1\r\n";
        over = ok + "x-last: 1\r\n";
        expect_done(head_with("GET / HTTP/1.1", ok), l);
        expect_refused(head_with("GET / HTTP/1.1", over), 431,
                       ("more than " + std::to_string(limit) + " header lines").c_str(), l);
    }
}

// A client sending a megabyte of headers is refused within the chunk that
// passes the limit, not after the megabyte.
void limits_apply_while_streaming(void **) {
    const size_t chunk = 4096;
    const std::string flood = "GET / HTTP/1.1\r\nX-Flood: " + std::string(1 << 20, 'a');
    HttpRequestParser p;
    size_t fed = 0, used = 0;
    State s = State::NeedMore;
    while (s == State::NeedMore && fed < flood.size()) {
        const size_t n = std::min(chunk, flood.size() - fed);
        s = p.feed(flood.data() + fed, n, &used);
        fed += n;
    }
    assert_int_equal(s, State::Error);
    assert_int_equal(p.error_status(), 431);
    assert_true(fed <= 16 + HttpLimits().max_header_bytes + chunk);
    assert_true(p.request().headers.empty());

    // The same for a request line that never ends, and for header lines.
    const std::string long_line = "GET /" + std::string(1 << 20, 'a');
    HttpRequestParser q;
    fed = 0;
    s = State::NeedMore;
    while (s == State::NeedMore && fed < long_line.size()) {
        const size_t n = std::min(chunk, long_line.size() - fed);
        s = q.feed(long_line.data() + fed, n, &used);
        fed += n;
    }
    assert_int_equal(s, State::Error);
    assert_int_equal(q.error_status(), 414);
    assert_true(fed <= HttpLimits().max_request_line + chunk);

    std::string many = "GET / HTTP/1.1\r\n";
    for (int i = 0; i < 100000; i++) many += "a:\r\n";
    HttpRequestParser m;
    assert_int_equal(m.feed(many.data(), many.size(), &used), State::Error);
    assert_int_equal(m.error_status(), 431);
    assert_string_equal(m.error().c_str(), "more than 64 header lines");
}

// Refused at the very byte past a limit: feeding exactly up to it is
// already an error, one byte less is not (yet).
void limits_apply_at_the_byte(void **) {
    struct Case {
        std::string head;
        size_t first_bad;  // offset of the byte that passes the limit
        int status;
    };
    HttpLimits l;
    l.max_request_line = 20;
    l.max_header_bytes = 30;
    l.max_headers = 2;
    const std::string line = request_line_of(20) + "\r\n";
    const Case cases[] = {
        {"GET /" + std::string(40, 'a') + " HTTP/1.1\r\n\r\n", 20, 414},
        {"GET /?" + std::string(40, 'a'), 20, 414},
        {"GET / HTTP/1.1\r\nx: " + std::string(40, 'v'), 16 + 30, 431},
        {"GET / HTTP/1.1\r\nx-" + std::string(40, 'n'), 16 + 30, 431},
        {"GET / HTTP/1.1\r\na: 1\r\nb:" + std::string(40, ' '), 16 + 30 + 2, 431},
        {line + "a:1\r\nb:2\r\nc:3\r\n\r\n", line.size() + 10, 431},
    };
    for (const Case &c : cases) {
        for (size_t prefix : {c.first_bad, c.first_bad + 1}) {
            HttpRequestParser p(l);
            const State s = p.feed(c.head.data(), prefix, nullptr);
            const State want = prefix > c.first_bad ? State::Error : State::NeedMore;
            if (s != want || (s == State::Error && p.error_status() != c.status))
                fail_msg("%zu bytes of '%s': %s %d", prefix, c.head.c_str(), state_name(s), p.error_status());
        }
    }
}

// Limits above http-parser's own 80 KiB cap on a head meet that cap, also
// as 431.
void http_parser_cap_is_431(void **) {
    HttpLimits l;
    l.max_header_bytes = 200000;
    expect_done(head_with("GET / HTTP/1.1", headers_of(4, 70000)), l);
    expect_refused(head_with("GET / HTTP/1.1", headers_of(4, 90000)), 431, "81920-byte cap", l);
}

// ------------------------------------------------------------------ strictness

void line_endings_are_crlf(void **) {
    expect_refused("GET / HTTP/1.1\nHost: x\r\n\r\n", 400, "bare LF");
    expect_refused("GET / HTTP/1.1\r\nHost: x\n\r\n", 400, "bare LF");
    expect_refused("GET / HTTP/1.1\r\nHost: x\r\n\n", 400, "bare LF");
    expect_refused("GET / HTTP/1.1\nHost: x\n\n", 400, "bare LF");
    expect_refused("GET / HTTP/1.1\rHost: x\r\n\r\n", 400, "CR not followed by LF");
    expect_refused("GET / HTTP/1.1\r\nHost: x\rY\r\n\r\n", 400, "CR not followed by LF");
    expect_refused("GET / HTTP/1.1\r\nHost: x\r\n\rX", 400, "CR not followed by LF");
    expect_refused("GET / HTTP/1.1\r\nHost: x\r\n\r\r\n", 400, "CR not followed by LF");
    expect_refused("\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "empty line before the request line");
    expect_refused("\nGET / HTTP/1.1\r\n\r\n", 400, "bare LF");
}

void request_line_shape(void **) {
    const std::string h = "Host: x\r\n";
    expect_done(head_with("GET / HTTP/1.1", h));
    expect_done(head_with("GET / HTTP/1.0", h));  // parses; check_upgrade refuses it
    for (const char *bad : {"GET  / HTTP/1.1", "GET /  HTTP/1.1", "GET / HTTP/1.1 ", " GET / HTTP/1.1",
                            "GET /", "GET", "GET / HTTP/1.1 x"})
        expect_refused(head_with(bad, h), 400, "malformed request line");
    for (const char *bad : {"GET / HTXP/1.1", "GET / http/1.1", "GET / HTTP/1.10", "GET / HTTP/11",
                            "GET / HTTP/1", "GET / HTTP/1.x", "GET / HTTP/1.1x", "GET / HTTP-1.1"})
        expect_refused(head_with(bad, h), 400, "malformed HTTP version");
    expect_refused(head_with("GET / HTTP/2.0", h), 505, "HTTP/2.0 is not supported");
    expect_refused(head_with("GET / HTTP/0.9", h), 505, "HTTP/0.9 is not supported");
    expect_refused(head_with("GET / HTTP/3.1", h), 505, "not supported");
    // Methods: known ones parse (check_upgrade wants GET), others are refused.
    expect_done(head_with("POST / HTTP/1.1", h));
    expect_done(head_with("M-SEARCH * HTTP/1.1", h));
    expect_refused(head_with("get / HTTP/1.1", h), 400, "invalid HTTP method");
    expect_refused(head_with("BREW / HTTP/1.1", h), 400, "invalid HTTP method");
    expect_refused(head_with("GET\t/ HTTP/1.1", h), 400, "invalid HTTP method");
    // A TLS ClientHello on the plain port.
    expect_refused(std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11), 400, "invalid HTTP method");
}

void targets_are_visible_ascii(void **) {
    const std::string h = "Host: x\r\n";
    expect_refused(head_with("GET /a\tb HTTP/1.1", h), 400, "request target");
    expect_refused(head_with("GET /\xc3\xa9 HTTP/1.1", h), 400, "request target");
    expect_refused(head_with("GET /\x7f HTTP/1.1", h), 400, "request target");
    expect_refused(head_with("GET /\0 HTTP/1.1"s, h), 400, "request target");
    expect_refused(head_with("GET /\x01 HTTP/1.1", h), 400, "request target");
    expect_refused(head_with("GET ? HTTP/1.1", h), 400, "invalid URL");
}

void obsolete_folding_and_header_syntax(void **) {
    const std::string rl = "GET / HTTP/1.1";
    expect_refused(head_with(rl, "Host: x\r\n continued\r\n"), 400, "obsolete line folding");
    expect_refused(head_with(rl, "Host: x\r\n\tcontinued\r\n"), 400, "obsolete line folding");
    expect_refused(head_with(rl, " Host: x\r\n"), 400, "whitespace before the first header line");
    expect_refused(head_with(rl, "Host : x\r\n"), 400, "invalid character in a header name");
    expect_refused(head_with(rl, "Ho st: x\r\n"), 400, "invalid character in a header name");
    expect_refused(head_with(rl, "Ho\"st: x\r\n"), 400, "invalid character in a header name");
    expect_refused(head_with(rl, "H\xc3\xa9: x\r\n"), 400, "invalid character in a header name");
    expect_refused(head_with(rl, "Host\x01: x\r\n"), 400, "invalid character in a header name");
    expect_refused(head_with(rl, ": x\r\n"), 400, "empty header name");
    expect_refused(head_with(rl, "Host\r\n"), 400, "header line without a colon");
    expect_refused(head_with(rl, "Host x\r\n"), 400, "invalid character in a header name");
    for (const std::string &v : {std::string("a\x01z"), std::string("a\x7fz"), "a\0z"s,
                                 std::string("\x01z"), std::string("\x7f"), "\0gzip"s,
                                 std::string("\x1b[31m"), std::string("a\x0b"), std::string("a\x0c")}) {
        expect_refused(head_with(rl, "X: " + v + "\r\n"), 400, "invalid character in a header value");
        expect_refused(head_with(rl, "X:" + v + "\r\n"), 400, "invalid character in a header value");
    }
    // HT is white space, inside a value too.
    assert_string_equal(parsed(head_with(rl, "X:\ta\tb\t\r\n")).get("x")->c_str(), "a\tb");
    // obs-text in values is allowed and kept as sent.
    HttpRequest r = parsed(head_with(rl, "X: caf\xc3\xa9\r\n"));
    assert_string_equal(r.get("x")->c_str(), "caf\xc3\xa9");
}

void no_body_on_an_upgrade(void **) {
    const std::string rl = "GET / HTTP/1.1";
    expect_done(head_with(rl, "Content-Length: 0\r\n"));
    expect_done(head_with(rl, "Content-Length: 00\r\n"));
    expect_refused(head_with(rl, "Content-Length: 5\r\n"), 400, "cannot have a body (Content-Length");
    expect_refused(head_with(rl, "Content-Length: 18446744073709551615\r\n"), 400, "");
    expect_refused(head_with(rl, "Content-Length: 1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"), 400,
                   "cannot have a body");
    expect_refused(head_with(rl, "Transfer-Encoding: chunked\r\n"), 400, "cannot have a body (Transfer-Encoding)");
    expect_refused(head_with(rl, "Transfer-Encoding: gzip\r\n"), 400, "cannot have a body (Transfer-Encoding)");
    expect_refused(head_with(rl, "Content-Length: 0\r\nTransfer-Encoding: chunked\r\n"), 400, "");
    expect_refused(head_with(rl, "Content-Length: 1\r\nContent-Length: 1\r\n"), 400, "content-length");
    expect_refused(head_with(rl, "Content-Length: x\r\n"), 400, "content-length");
    expect_refused(head_with(rl, "Content-Length: 0 0\r\n"), 400, "content-length");
    expect_refused(head_with(rl, "Content-Length:\r\n"), 400, "content-length");
}

// ------------------------------------------------------------------ headers and targets

void headers_keep_order_case_and_repeats(void **) {
    HttpRequest r = parsed(head_with("GET / HTTP/1.1",
                                     "HOST: a\r\n"
                                     "X-Multi: one\r\n"
                                     "x-multi:two  \r\n"
                                     "X-MULTI: \t three, four \t\r\n"
                                     "X-Empty:\r\n"
                                     "X-Blank:   \r\n"
                                     "X-Inner: a  b\tc\r\n"));
    assert_int_equal(r.headers.size(), 7);
    const char *names[] = {"host", "x-multi", "x-multi", "x-multi", "x-empty", "x-blank", "x-inner"};
    const char *values[] = {"a", "one", "two", "three, four", "", "", "a  b\tc"};
    for (size_t i = 0; i < 7; i++) {
        assert_string_equal(r.headers[i].name.c_str(), names[i]);
        assert_string_equal(r.headers[i].value.c_str(), values[i]);
    }
    assert_string_equal(r.get("X-Multi")->c_str(), "one");
    assert_int_equal(r.count("X-MULTI"), 3);
    assert_string_equal(r.joined("x-multi").c_str(), "one, two, three, four");
    assert_string_equal(r.get("x-empty")->c_str(), "");
    assert_int_equal(r.count("x-empty"), 1);
    assert_null(r.get("x-absent"));
    assert_int_equal(r.count("x-absent"), 0);
    assert_string_equal(r.joined("x-absent").c_str(), "");
    assert_null(r.get("x-multi "));
    assert_null(r.get("x-mult"));
    assert_null(r.get(""));
}

void path_and_query(void **) {
    struct Case {
        const char *target, *path, *query;
    } cases[] = {
        {"/", "/", ""},
        {"/chat", "/chat", ""},
        {"/chat?", "/chat", ""},
        {"/chat?a=1&b=2", "/chat", "a=1&b=2"},
        {"/chat?a=1#frag", "/chat", "a=1"},
        {"/chat#frag?x", "/chat", ""},
        {"/a%20b/c?q=%2F", "/a%20b/c", "q=%2F"},
        {"/?x?y", "/", "x?y"},
        {"//double", "//double", ""},
        {"http://example.com/ws?t=1", "/ws", "t=1"},
        {"http://example.com", "/", ""},
        {"http://example.com?x", "/", "x"},
        {"ws://u@example.com:80/a/b", "/a/b", ""},
        {"*", "*", ""},
    };
    for (const Case &c : cases) {
        HttpRequest r = parsed(head_with(std::string("GET ") + c.target + " HTTP/1.1", "Host: x\r\n"));
        assert_string_equal(r.target.c_str(), c.target);
        if (r.path != c.path || r.query != c.query)
            fail_msg("%s: path '%s' query '%s'", c.target, r.path.c_str(), r.query.c_str());
    }
    HttpRequest r = parsed(head_with("CONNECT example.com:443 HTTP/1.1", "Host: example.com:443\r\n"));
    assert_string_equal(r.method.c_str(), "CONNECT");
    assert_string_equal(r.path.c_str(), "");
}

// ------------------------------------------------------------------ every split point

// Each sample, valid or not, gives one outcome however it is cut.
void every_split_point_gives_the_same_result(void **) {
    using namespace wsgate_test;
    std::vector<std::string> samples = {
        kChrome, kFirefox, kCurl, kPythonWebsockets, kPlainGet,
        kChrome + kEarlyFrame, kCurl + kCurl,
        head_with("GET / HTTP/1.1", "A:\r\nB: \r\nC:  x  \r\n"),
        head_with("GET http://h/p?q#f HTTP/1.1", "Host: h\r\n"),
        // Refused ones, one per rule.
        "GET / HTTP/1.1\nHost: x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\n\rX",
        "GET / HTTP/1.1\r\nHost: x\r\n continued\r\n\r\n",
        "GET  / HTTP/1.1\r\n\r\n",
        "GET / HTTP/2.0\r\n\r\n",
        "GET / HTXP/1.1\r\n\r\n",
        "BREW / HTTP/1.1\r\n\r\n",
        "GET /a\tb HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHo st: x\r\n\r\n",
        "GET / HTTP/1.1\r\nAccept-Language9 en-US,en;q=0.9\r\n\r\n",  // found by fuzz_http
        "GET / HTTP/1.1\r\nX: a\x01z\r\n\r\n",
        "GET / HTTP/1.1\r\nX:\0gzip\r\n\r\n"s,  // found by fuzz_http
        "GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
        "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
        "\r\nGET / HTTP/1.1\r\n\r\n",
        std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11),
        // Incomplete: NeedMore whatever the cuts.
        "GET / HTTP/1.1\r\nHost: x\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\n\r",
        "GET / HTT",
        "",
    };
    for (const std::string &s : samples) parse_every_split(s);

    // And at the limits' boundaries, with small limits.
    HttpLimits l;
    l.max_request_line = 24;
    l.max_header_bytes = 40;
    l.max_headers = 3;
    for (const std::string &s : {head_with(request_line_of(24), headers_of(3, 40)),
                                 head_with(request_line_of(25), headers_of(3, 40)),
                                 head_with(request_line_of(24), headers_of(3, 41)),
                                 head_with(request_line_of(24), headers_of(3, 39) + "x:\r\n")})
        parse_every_split(s, l);
}

// The parser is cheap enough to exist per pending handshake.
void the_parser_is_small(void **) {
    assert_true(sizeof(HttpRequestParser) <= 512);
}

}  // namespace

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(real_clients_parse),
        cmocka_unit_test(bytes_after_the_head_are_the_callers),
        cmocka_unit_test(request_line_limit),
        cmocka_unit_test(header_bytes_limit),
        cmocka_unit_test(header_count_limit),
        cmocka_unit_test(limits_apply_while_streaming),
        cmocka_unit_test(limits_apply_at_the_byte),
        cmocka_unit_test(http_parser_cap_is_431),
        cmocka_unit_test(line_endings_are_crlf),
        cmocka_unit_test(request_line_shape),
        cmocka_unit_test(targets_are_visible_ascii),
        cmocka_unit_test(obsolete_folding_and_header_syntax),
        cmocka_unit_test(no_body_on_an_upgrade),
        cmocka_unit_test(headers_keep_order_case_and_repeats),
        cmocka_unit_test(path_and_query),
        cmocka_unit_test(every_split_point_gives_the_same_result),
        cmocka_unit_test(the_parser_is_small),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
