// The opening handshake helpers (lib/protocol/handshake): every
// check_upgrade rule and their order, Sec-WebSocket-Key and -Accept, the
// 101 and refusal responses (read back with http-parser as a client would),
// token lists and query parameters.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
extern "C" {
#include <cmocka.h>
}

#include <http_parser.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "protocol/http_samples.h"
#include "protocol/handshake.h"
#include "protocol/http_request.h"

using wsgate::proto::HttpRequest;
using wsgate::proto::HttpRequestParser;
using wsgate::proto::Refusal;

namespace {

HttpRequest parsed(const std::string &head) {
    HttpRequestParser p;
    size_t used = 0;
    if (p.feed(head.data(), head.size(), &used) != HttpRequestParser::State::Done)
        fail_msg("refused (%d %s): %s", p.error_status(), p.error().c_str(), head.c_str());
    return p.request();
}

const char *kKey = "dGhlIHNhbXBsZSBub25jZQ==";

// A minimal valid upgrade request with `line` as request line, the given
// headers replacing the defaults of the same name, and `drop` removed.
struct Req {
    std::string line = "GET /ws HTTP/1.1";
    std::vector<std::pair<std::string, std::string>> headers = {
        {"Host", "example.com"},
        {"Upgrade", "websocket"},
        {"Connection", "Upgrade"},
        {"Sec-WebSocket-Version", "13"},
        {"Sec-WebSocket-Key", kKey},
    };
    Req &set(const std::string &name, const std::string &value) {
        for (auto &h : headers)
            if (h.first == name) {
                h.second = value;
                return *this;
            }
        headers.emplace_back(name, value);
        return *this;
    }
    Req &add(const std::string &name, const std::string &value) {
        headers.emplace_back(name, value);
        return *this;
    }
    Req &drop(const std::string &name) {
        headers.erase(std::remove_if(headers.begin(), headers.end(), [&](const auto &h) { return h.first == name; }),
                      headers.end());
        return *this;
    }
    HttpRequest request() const {
        std::string head = line + "\r\n";
        for (const auto &h : headers) head += h.first + ": " + h.second + "\r\n";
        head += "\r\n";
        return parsed(head);
    }
    Refusal check() const { return wsgate::proto::check_upgrade(request()); }
    bool asks() const { return wsgate::proto::asks_for_websocket(request()); }
};

void expect_ok(const Req &r) {
    Refusal f = r.check();
    if (f.status != 0) fail_msg("refused %d: %s", f.status, f.reason.c_str());
    assert_string_equal(f.reason.c_str(), "");
    assert_string_equal(f.extra_headers.c_str(), "");
}

void expect(const Req &r, int status, const char *reason_part, const char *extra = "") {
    Refusal f = r.check();
    if (f.status != status || f.reason.find(reason_part) == std::string::npos || f.extra_headers != extra)
        fail_msg("expected %d '%s' [%s], got %d '%s' [%s]", status, reason_part, extra, f.status, f.reason.c_str(),
                 f.extra_headers.c_str());
}

// ------------------------------------------------------------------ check_upgrade

void real_clients_pass(void **) {
    using namespace wsgate_test;
    for (const std::string *s : {&kChrome, &kFirefox, &kCurl, &kPythonWebsockets}) {
        Refusal f = wsgate::proto::check_upgrade(parsed(*s));
        if (f.status != 0) fail_msg("refused %d %s:\n%s", f.status, f.reason.c_str(), s->c_str());
    }
    Refusal f = wsgate::proto::check_upgrade(parsed(kPlainGet));
    assert_int_equal(f.status, 426);
    assert_string_equal(f.extra_headers.c_str(), "upgrade: websocket\r\n");
    expect_ok(Req());
}

void method_must_be_get(void **) {
    for (const char *m : {"POST", "HEAD", "PUT", "OPTIONS", "DELETE", "CONNECT"}) {
        Req r;
        r.line = std::string(m) + (std::strcmp(m, "CONNECT") == 0 ? " example.com:443" : " /ws") + " HTTP/1.1";
        expect(r, 405, "GET", "allow: GET\r\n");
    }
}

void version_must_be_1_1_or_later_1_x(void **) {
    Req r;
    r.line = "GET /ws HTTP/1.0";
    expect(r, 400, "HTTP/1.0");
    r.line = "GET /ws HTTP/1.2";
    expect_ok(r);
    r.line = "GET /ws HTTP/1.9";
    expect_ok(r);
    // Other majors never get this far (the parser answers 505); a request
    // built by hand still gets 505.
    HttpRequest h = parsed("GET / HTTP/1.1\r\n\r\n");
    h.http_major = 2;
    h.http_minor = 0;
    assert_int_equal(wsgate::proto::check_upgrade(h).status, 505);
}

void upgrade_needs_the_websocket_token(void **) {
    expect(Req().drop("Upgrade"), 426, "Upgrade: websocket", "upgrade: websocket\r\n");
    expect(Req().set("Upgrade", "h2c"), 426, "", "upgrade: websocket\r\n");
    expect(Req().set("Upgrade", "websockets"), 426, "", "upgrade: websocket\r\n");
    expect(Req().set("Upgrade", "websocket/13"), 426, "", "upgrade: websocket\r\n");
    expect(Req().set("Upgrade", ""), 426, "", "upgrade: websocket\r\n");
    expect(Req().set("Upgrade", "\"websocket\""), 426, "", "upgrade: websocket\r\n");
    expect_ok(Req().set("Upgrade", "WebSocket"));
    expect_ok(Req().set("Upgrade", "WEBSOCKET"));
    expect_ok(Req().set("Upgrade", "h2c, websocket"));
    expect_ok(Req().set("Upgrade", "h2c").add("Upgrade", "websocket"));
    expect_ok(Req().set("Upgrade", " ,websocket , "));
    // asks_for_websocket (the gate's test before serving a static page) is
    // exactly this rule: a request that gets 426 here does not ask.
    for (const Req &r : {Req().drop("Upgrade"), Req().set("Upgrade", "h2c"), Req().set("Upgrade", "websockets"),
                         Req().set("Upgrade", "")})
        assert_false(r.asks());
    for (const Req &r : {Req(), Req().set("Upgrade", "WEBSOCKET"), Req().set("Upgrade", "h2c").add("Upgrade", "websocket"),
                         Req().drop("Connection").drop("Sec-WebSocket-Key")})
        assert_true(r.asks());
    assert_false(wsgate::proto::asks_for_websocket(parsed(wsgate_test::kPlainGet)));
}

void connection_needs_the_upgrade_token(void **) {
    expect(Req().drop("Connection"), 400, "Connection");
    expect(Req().set("Connection", "keep-alive"), 400, "upgrade token");
    expect(Req().set("Connection", "upgraded"), 400, "upgrade token");
    expect(Req().set("Connection", "keep-alive upgrade"), 400, "upgrade token");
    expect_ok(Req().set("Connection", "upgrade"));
    expect_ok(Req().set("Connection", "UPGRADE"));
    expect_ok(Req().set("Connection", "keep-alive, Upgrade"));
    expect_ok(Req().set("Connection", "keep-alive").add("Connection", "Upgrade"));
}

void host_exactly_once(void **) {
    expect(Req().drop("Host"), 400, "Host header is missing");
    expect(Req().add("Host", "example.com"), 400, "Host header is repeated");
    expect(Req().add("HOST", "other.example"), 400, "Host header is repeated");
    expect_ok(Req().set("Host", "[::1]:8080"));
}

void version_13_exactly(void **) {
    const char *extra = "sec-websocket-version: 13\r\n";
    expect(Req().drop("Sec-WebSocket-Version"), 426, "missing", extra);
    expect(Req().add("Sec-WebSocket-Version", "13"), 426, "repeated", extra);
    for (const char *v : {"8", "12", "14", "13, 8", "013", "13.0", "", "thirteen"})
        expect(Req().set("Sec-WebSocket-Version", v), 426, "unsupported", extra);
    expect_ok(Req().drop("Sec-WebSocket-Version").add("sec-websocket-version", "13"));
    expect_ok(Req().set("Sec-WebSocket-Version", " 13 "));  // OWS is not part of a value
}

void key_is_base64_of_16_bytes(void **) {
    expect(Req().drop("Sec-WebSocket-Key"), 400, "Sec-WebSocket-Key header is missing");
    expect(Req().add("Sec-WebSocket-Key", kKey), 400, "Sec-WebSocket-Key header is repeated");
    for (const char *k : {"", "dGhlIHNhbXBsZSBub25jZQ", "dGhlIHNhbXBsZSBub25jZQ=", "dGhlIHNhbXBsZSBub25jZQ===",
                          "dGhlIHNhbXBsZSBub25jZR==", "SGVsbG8sIHdvcmxkIQ==", "dGhlIHNhbXBsZSBub25jZQ-=",
                          "dGhlIHNhbXBsZSBub25j_Q==", "dGhlIHNhbXBsZSBub25jZ.==", "dGhl IHNhbXBsZSBub25jZQ=="})
        expect(Req().set("Sec-WebSocket-Key", k), 400, "not the base64 of 16 bytes");
    expect_ok(Req().set("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAA=="));
    expect_ok(Req().set("Sec-WebSocket-Key", "/////////////////////w=="));
    expect_ok(Req().set("Sec-WebSocket-Key", "+++++++++++++++++++++w=="));
}

void valid_websocket_key_matches_its_definition(void **) {
    using wsgate::proto::valid_websocket_key;
    assert_true(valid_websocket_key(kKey));
    assert_true(valid_websocket_key("x3JJHMbDL1EzLkh9GBhXDw=="));
    // The last character before "==" carries 2 bits: only A, Q, g and w are
    // canonical there.
    const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (char c : alphabet) {
        std::string k = "AAAAAAAAAAAAAAAAAAAAA" + std::string(1, c) + "==";
        const bool canonical = c == 'A' || c == 'Q' || c == 'g' || c == 'w';
        if (valid_websocket_key(k) != canonical) fail_msg("%s", k.c_str());
    }
    assert_false(valid_websocket_key(std::string("dGhlIHNhbXBsZSBub25jZQ=\0", 24)));
    assert_false(valid_websocket_key("dGhlIHNhbXBsZSBub25jZQ==\r"));
    assert_false(valid_websocket_key("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="));  // 25 bytes
}

// The first failing rule wins, in the documented order.
void rules_apply_in_order(void **) {
    Req all;
    all.line = "POST /ws HTTP/1.0";
    all.drop("Upgrade").drop("Connection").drop("Host").drop("Sec-WebSocket-Version").set("Sec-WebSocket-Key", "x");
    expect(all, 405, "GET", "allow: GET\r\n");
    all.line = "GET /ws HTTP/1.0";
    expect(all, 400, "HTTP/1.0");
    all.line = "GET /ws HTTP/1.1";
    expect(all, 426, "Upgrade", "upgrade: websocket\r\n");
    all.set("Upgrade", "websocket");
    expect(all, 400, "Connection");
    all.set("Connection", "Upgrade");
    expect(all, 400, "Host");
    all.set("Host", "h");
    expect(all, 426, "Sec-WebSocket-Version", "sec-websocket-version: 13\r\n");
    all.set("Sec-WebSocket-Version", "13");
    expect(all, 400, "Sec-WebSocket-Key");
    all.set("Sec-WebSocket-Key", kKey);
    expect_ok(all);
}

// ------------------------------------------------------------------ accept and responses

void accept_matches_rfc_6455(void **) {
    // RFC 6455 section 1.3 (the brief's copy of this value had a typo).
    assert_string_equal(wsgate::proto::websocket_accept("dGhlIHNhbXBsZSBub25jZQ==").c_str(),
                        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    // Values checked with Python's hashlib and base64.
    assert_string_equal(wsgate::proto::websocket_accept("x3JJHMbDL1EzLkh9GBhXDw==").c_str(),
                        "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
    assert_string_equal(wsgate::proto::websocket_accept("").c_str(), "Kfh9QIsMVZcl6xEPYxPHzW8SZ8w=");
    assert_int_equal(wsgate::proto::websocket_accept(std::string(100000, 'k')).size(), 28);
}

void switching_protocols_bytes(void **) {
    using wsgate::proto::switching_protocols;
    assert_string_equal(switching_protocols("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "", "").c_str(),
                        "HTTP/1.1 101 Switching Protocols\r\n"
                        "upgrade: websocket\r\n"
                        "connection: Upgrade\r\n"
                        "sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                        "\r\n");
    assert_string_equal(switching_protocols("A", "chat", "permessage-deflate; server_no_context_takeover").c_str(),
                        "HTTP/1.1 101 Switching Protocols\r\n"
                        "upgrade: websocket\r\n"
                        "connection: Upgrade\r\n"
                        "sec-websocket-accept: A\r\n"
                        "sec-websocket-protocol: chat\r\n"
                        "sec-websocket-extensions: permessage-deflate; server_no_context_takeover\r\n"
                        "\r\n");
    assert_string_equal(switching_protocols("A", "", "x").c_str(),
                        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
                        "sec-websocket-accept: A\r\nsec-websocket-extensions: x\r\n\r\n");
}

// What a client's HTTP parser reads from a response.
struct ClientView {
    int status = 0;
    int major = 0, minor = 0;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    bool complete = false;
    size_t used = 0;
};

ClientView read_response(const std::string &bytes) {
    ClientView v;
    http_parser p;
    http_parser_init(&p, HTTP_RESPONSE);
    p.data = &v;
    http_parser_settings s;
    http_parser_settings_init(&s);
    s.on_header_field = [](http_parser *q, const char *at, size_t n) {
        static_cast<ClientView *>(q->data)->headers.emplace_back(std::string(at, n), "");
        return 0;
    };
    s.on_header_value = [](http_parser *q, const char *at, size_t n) {
        static_cast<ClientView *>(q->data)->headers.back().second.append(at, n);
        return 0;
    };
    s.on_body = [](http_parser *q, const char *at, size_t n) {
        static_cast<ClientView *>(q->data)->body.append(at, n);
        return 0;
    };
    s.on_message_complete = [](http_parser *q) {
        static_cast<ClientView *>(q->data)->complete = true;
        return 0;
    };
    v.used = http_parser_execute(&p, &s, bytes.data(), bytes.size());
    if (HTTP_PARSER_ERRNO(&p) != HPE_OK) fail_msg("client cannot read: %s", http_errno_description(HTTP_PARSER_ERRNO(&p)));
    v.status = static_cast<int>(p.status_code);
    v.major = p.http_major;
    v.minor = p.http_minor;
    return v;
}

void refusal_responses(void **) {
    using wsgate::proto::http_response;
    assert_string_equal(http_response(400, "the Host header is missing", "").c_str(),
                        "HTTP/1.1 400 Bad Request\r\n"
                        "content-type: text/plain; charset=utf-8\r\n"
                        "content-length: 27\r\n"
                        "connection: close\r\n"
                        "\r\n"
                        "the Host header is missing\n");
    assert_string_equal(http_response(405, "use GET", "allow: GET\r\n").c_str(),
                        "HTTP/1.1 405 Method Not Allowed\r\n"
                        "content-type: text/plain; charset=utf-8\r\n"
                        "content-length: 8\r\n"
                        "connection: close\r\n"
                        "allow: GET\r\n"
                        "\r\n"
                        "use GET\n");
    // Sending Upgrade obliges Connection to list it (RFC 7230 6.7).
    assert_string_equal(http_response(426, "x", "upgrade: websocket\r\n").c_str(),
                        "HTTP/1.1 426 Upgrade Required\r\n"
                        "content-type: text/plain; charset=utf-8\r\n"
                        "content-length: 2\r\n"
                        "connection: upgrade, close\r\n"
                        "upgrade: websocket\r\n"
                        "\r\n"
                        "x\n");
    assert_string_equal(http_response(426, "x", "sec-websocket-version: 13\r\n").c_str(),
                        "HTTP/1.1 426 Upgrade Required\r\n"
                        "content-type: text/plain; charset=utf-8\r\n"
                        "content-length: 2\r\n"
                        "connection: close\r\n"
                        "sec-websocket-version: 13\r\n"
                        "\r\n"
                        "x\n");

    struct {
        int status;
        const char *phrase;
    } phrases[] = {{400, "Bad Request"},       {401, "Unauthorized"},
                   {403, "Forbidden"},         {404, "Not Found"},
                   {405, "Method Not Allowed"}, {414, "URI Too Long"},
                   {426, "Upgrade Required"},  {429, "Too Many Requests"},
                   {431, "Request Header Fields Too Large"}, {500, "Internal Server Error"},
                   {503, "Service Unavailable"}, {505, "HTTP Version Not Supported"}};
    for (const auto &p : phrases) {
        assert_string_equal(std::string(wsgate::proto::reason_phrase(p.status)).c_str(), p.phrase);
        const std::string body = "reason " + std::to_string(p.status);
        const std::string bytes = http_response(p.status, body, "www-authenticate: Bearer\r\n");
        assert_true(bytes.rfind("HTTP/1.1 " + std::to_string(p.status) + " " + p.phrase + "\r\n", 0) == 0);
        ClientView v = read_response(bytes);
        assert_int_equal(v.status, p.status);
        assert_int_equal(v.major, 1);
        assert_int_equal(v.minor, 1);
        assert_true(v.complete);
        assert_int_equal(v.used, bytes.size());
        assert_string_equal(v.body.c_str(), (body + "\n").c_str());
        assert_int_equal(v.headers.size(), 4);
        assert_string_equal(v.headers[3].first.c_str(), "www-authenticate");
    }
    assert_string_equal(std::string(wsgate::proto::reason_phrase(499)).c_str(), "");
    // Out of range: 500.
    for (int bad : {0, -1, 99, 101, 199, 600, 1000})
        assert_true(http_response(bad, "x", "").rfind("HTTP/1.1 500 Internal Server Error\r\n", 0) == 0);
    // No reason phrase known: the line is still valid.
    ClientView v = read_response(http_response(499, "", ""));
    assert_int_equal(v.status, 499);
    assert_string_equal(v.body.c_str(), "\n");
    // A refusal from check_upgrade, end to end.
    Refusal f = Req().set("Sec-WebSocket-Version", "8").check();
    v = read_response(http_response(f.status, f.reason, f.extra_headers));
    assert_int_equal(v.status, 426);
    assert_string_equal(v.headers.back().first.c_str(), "sec-websocket-version");
    assert_string_equal(v.headers.back().second.c_str(), "13");
}

// A request from a real client, accepted: the 101 a client reads back.
void chrome_end_to_end(void **) {
    HttpRequest r = parsed(wsgate_test::kChrome);
    assert_int_equal(wsgate::proto::check_upgrade(r).status, 0);
    const std::string accept = wsgate::proto::websocket_accept(*r.get("sec-websocket-key"));
    const std::string bytes = wsgate::proto::switching_protocols(accept, "chat", "");
    http_parser p;
    http_parser_init(&p, HTTP_RESPONSE);
    http_parser_settings s;
    http_parser_settings_init(&s);
    assert_int_equal(http_parser_execute(&p, &s, bytes.data(), bytes.size()), bytes.size());
    assert_int_equal(p.status_code, 101);
    assert_int_equal(p.upgrade, 1);
}

// ------------------------------------------------------------------ tokens and query

void split_tokens_cases(void **) {
    struct Case {
        const char *in;
        std::vector<std::string> out;
    } cases[] = {
        {"", {}},
        {" ", {}},
        {",", {}},
        {" , ,, ", {}},
        {"a", {"a"}},
        {"a,b", {"a", "b"}},
        {" a , b ,c ", {"a", "b", "c"}},
        {"\ta\t,\tb", {"a", "b"}},
        {"keep-alive, Upgrade", {"keep-alive", "Upgrade"}},
        {"a b, c", {"a b", "c"}},
        {"x; p=\"1,2\", y", {"x; p=\"1,2\"", "y"}},
        {"x; p=\"a\\\",b\", y", {"x; p=\"a\\\",b\"", "y"}},
        {"x; p=\"unterminated, y", {"x; p=\"unterminated, y"}},
        {"x; p=\"a\\", {"x; p=\"a\\"}},
        {"permessage-deflate; client_max_window_bits, permessage-deflate",
         {"permessage-deflate; client_max_window_bits", "permessage-deflate"}},
    };
    for (const Case &c : cases) {
        std::vector<std::string_view> got = wsgate::proto::split_tokens(c.in);
        bool same = got.size() == c.out.size();
        for (size_t i = 0; same && i < got.size(); i++) same = got[i] == c.out[i];
        if (!same) {
            std::string g;
            for (auto t : got) g += "[" + std::string(t) + "]";
            fail_msg("'%s' -> %s", c.in, g.c_str());
        }
    }
}

void query_param_cases(void **) {
    using wsgate::proto::query_param;
    struct Case {
        const char *query, *name;
        const char *value;  // nullptr: absent
    } cases[] = {
        {"", "a", nullptr},
        {"a=1", "a", "1"},
        {"a=1&b=2", "b", "2"},
        {"a=1&a=2", "a", "1"},
        {"ab=1&a=2", "a", "2"},
        {"a", "a", ""},
        {"a=", "a", ""},
        {"a=&a=2", "a", ""},
        {"&&a=1&&", "a", "1"},
        {"b=1", "a", nullptr},
        {"access_token=abc%2B1%2f%3D", "access_token", "abc+1/="},
        {"q=a+b%20c", "q", "a b c"},
        {"q=%zz%4%", "q", "%zz%4%"},
        {"q=%41%6a", "q", "Aj"},
        {"q=1=2", "q", "1=2"},
        {"acc%65ss_token=x", "access_token", "x"},
        {"a+b=1", "a b", "1"},
        {"=x", "", "x"},
        {"q=caf%C3%A9", "q", "caf\xc3\xa9"},
    };
    for (const Case &c : cases) {
        std::optional<std::string> got = query_param(c.query, c.name);
        if (got.has_value() != (c.value != nullptr) || (got && *got != c.value))
            fail_msg("query_param('%s', '%s') = %s", c.query, c.name, got ? got->c_str() : "(absent)");
    }
    std::optional<std::string> nul = query_param("t=a%00b", "t");
    assert_true(nul.has_value());
    assert_int_equal(nul->size(), 3);
    assert_int_equal((*nul)[1], '\0');
    // From a parsed request.
    HttpRequest r = parsed(wsgate_test::kChrome);
    assert_string_equal(query_param(r.query, "access_token")->c_str(), "abc+1");
    assert_string_equal(query_param(r.query, "room")->c_str(), "1");
}

// without_query_param drops exactly what query_param could find (names
// compared decoded), keeps the rest as sent.
void without_query_param_cases(void **) {
    using wsgate::proto::query_param;
    using wsgate::proto::without_query_param;
    struct Case {
        const char *query, *name, *rest;
    } cases[] = {
        {"", "access_token", ""},
        {"access_token=x", "access_token", ""},
        {"room=1&access_token=x", "access_token", "room=1"},
        {"access_token=x&room=1&access_token=y", "access_token", "room=1"},
        {"acc%65ss_token=x&room=1", "access_token", "room=1"},
        {"access%5Ftoken=x&room=%41", "access_token", "room=%41"},
        {"access_token&b=2", "access_token", "b=2"},
        {"access_token2=x&b=2", "access_token", "access_token2=x&b=2"},
        {"&&a=1&&", "access_token", "a=1"},
        {"q=a+b%20c", "access_token", "q=a+b%20c"},
    };
    for (const Case &c : cases) {
        const std::string got = without_query_param(c.query, c.name);
        if (got != c.rest) fail_msg("without_query_param('%s', '%s') = '%s'", c.query, c.name, got.c_str());
        if (query_param(got, c.name)) fail_msg("'%s' still holds a '%s' query_param finds", got.c_str(), c.name);
    }
}

}  // namespace

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(real_clients_pass),
        cmocka_unit_test(method_must_be_get),
        cmocka_unit_test(version_must_be_1_1_or_later_1_x),
        cmocka_unit_test(upgrade_needs_the_websocket_token),
        cmocka_unit_test(connection_needs_the_upgrade_token),
        cmocka_unit_test(host_exactly_once),
        cmocka_unit_test(version_13_exactly),
        cmocka_unit_test(key_is_base64_of_16_bytes),
        cmocka_unit_test(valid_websocket_key_matches_its_definition),
        cmocka_unit_test(rules_apply_in_order),
        cmocka_unit_test(accept_matches_rfc_6455),
        cmocka_unit_test(switching_protocols_bytes),
        cmocka_unit_test(refusal_responses),
        cmocka_unit_test(chrome_end_to_end),
        cmocka_unit_test(split_tokens_cases),
        cmocka_unit_test(query_param_cases),
        cmocka_unit_test(without_query_param_cases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
