#include "protocol/http_request.h"

#include <algorithm>
#include <utility>

#include "base/text.h"
#include "base/text.h"

namespace wsgate::proto {
namespace {

constexpr const char *kMalformedLine = "malformed request line (expected METHOD SP target SP HTTP/1.1)";
constexpr const char *kMalformedVersion = "malformed HTTP version (expected HTTP/1.1)";

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Byte classes, looked up once per byte of the head.
enum : unsigned char {
    kToken = 1,   // RFC 7230 tchar (text.h): header names
    kTarget = 2,  // visible ASCII: the request target
    kValue = 4,   // field-content: HT, SP, visible ASCII, obs-text; no other control byte
};

const unsigned char *byte_classes() {
    static const auto table = [] {
        struct {
            unsigned char c[256];
        } t{};
        for (int i = 0; i < 256; i++) {
            const char c = static_cast<char>(i);
            if (wsgate::is_tchar(c)) t.c[i] |= kToken;
            if (i > 0x20 && i < 0x7f) t.c[i] |= kTarget;
            if (i == '\t' || (i >= 0x20 && i != 0x7f)) t.c[i] |= kValue;
        }
        return t;
    }();
    return table.c;
}

bool has_class(char c, unsigned char cls) { return byte_classes()[static_cast<unsigned char>(c)] & cls; }

}  // namespace

const std::string *HttpRequest::get(std::string_view name) const {
    for (const HttpHeader &h : headers)
        if (ascii_iequals(h.name, name)) return &h.value;
    return nullptr;
}

size_t HttpRequest::count(std::string_view name) const {
    size_t n = 0;
    for (const HttpHeader &h : headers)
        if (ascii_iequals(h.name, name)) n++;
    return n;
}

std::string HttpRequest::joined(std::string_view name) const {
    std::string out;
    bool first = true;
    for (const HttpHeader &h : headers) {
        if (!ascii_iequals(h.name, name)) continue;
        if (!first) out += ", ";
        out += h.value;
        first = false;
    }
    return out;
}

HttpRequestParser::HttpRequestParser(const HttpLimits &limits) : limits_(limits) {
    http_parser_init(&parser_, HTTP_REQUEST);
}

// Out of line and cold: building a message must not weigh on the per-byte path.
[[gnu::noinline, gnu::cold]] void HttpRequestParser::scan_refuse(int status, const char *why) {
    scan_status_ = status;
    scan_error_ = why;
}

[[gnu::noinline, gnu::cold]] void HttpRequestParser::scan_refuse_limit(int status, const char *before, size_t limit,
                                                                       const char *after) {
    scan_status_ = status;
    scan_error_ = before + std::to_string(limit) + after;
}

void HttpRequestParser::refuse(int status, std::string why) {
    state_ = State::Error;
    status_ = status;
    error_ = std::move(why);
    req_ = HttpRequest();  // a refused request keeps no memory (and no half values)
}

// The head through the line rules and the limits. Every rule that depends
// on bytes alone is checked here, at the byte that breaks it, so the outcome
// cannot depend on how the bytes were split (http-parser reports some errors
// only when a chunk ends). Here too because Debian's non-strict http-parser
// lets them through: repeated spaces, any "HTxP/" version, tabs and bytes
// >= 0x80 in the target, spaces in header names, control bytes first in a
// value. Returns how many bytes passed: up to the head's last byte, or up
// to a refused byte (scan_status_ then says why).
size_t HttpRequestParser::scan(const char *p, size_t n) {
    const unsigned char *classes = byte_classes();
    size_t i = 0;
    while (i < n && line_ != Line::End) {
        // Runs of plain bytes (a target, a name, a value) in one tight loop,
        // up to the limit; the byte that ends a run takes the full path.
        size_t room = 0, in_run = 0;
        unsigned char want = 0;
        if (line_ == Line::Request && spaces_ == 1) {
            want = kTarget;
            room = limits_.max_request_line - request_line_bytes_;
        } else if (line_ == Line::Name || line_ == Line::Value) {
            want = line_ == Line::Name ? kToken : kValue;
            room = limits_.max_header_bytes - header_bytes_;
        }
        const size_t stop = i + std::min(n - i, room);
        while (i + in_run < stop && (classes[static_cast<unsigned char>(p[i + in_run])] & want)) in_run++;
        if (in_run > 0) {
            if (line_ == Line::Request) {
                request_line_bytes_ += in_run;
                after_space_ = false;
            } else {
                header_bytes_ += in_run;
            }
            i += in_run;
            if (i == n) break;
        }
        if (!scan_byte(p[i])) break;
        i++;
    }
    return i;
}

// One byte through every rule. false: refused (see scan_refuse).
bool HttpRequestParser::scan_byte(char c) {
    if (c == '\n' && line_ != Line::RequestCR && line_ != Line::HeaderCR && line_ != Line::EndCR) {
        scan_refuse(400, "bare LF line ending (lines must end with CRLF)");
        return false;
    }
    switch (line_) {
    case Line::Request:
        if (c == '\r') return end_request_line();
        if (++request_line_bytes_ > limits_.max_request_line) {
            scan_refuse_limit(414, "request line longer than ", limits_.max_request_line, " bytes");
            return false;
        }
        if (c == ' ') {
            if (request_line_bytes_ == 1 || after_space_ || ++spaces_ > 2) {
                scan_refuse(400, kMalformedLine);
                return false;
            }
            after_space_ = true;
            return true;
        }
        after_space_ = false;
        if (spaces_ == 1 && !has_class(c, kTarget)) {
            scan_refuse(400, "request target has a control, space or non-ASCII byte");
            return false;
        }
        if (spaces_ == 2) {
            if (version_len_ == sizeof version_) {
                scan_refuse(400, kMalformedVersion);
                return false;
            }
            version_[version_len_++] = c;
        }
        return true;
    case Line::RequestCR:
    case Line::HeaderCR:
    case Line::EndCR:
        if (c != '\n') {
            scan_refuse(400, "CR not followed by LF");
            return false;
        }
        line_ = line_ == Line::EndCR ? Line::End : Line::Start;
        return true;
    case Line::Start:
        if (c == '\r') {
            line_ = Line::EndCR;
            return true;
        }
        if (c == ' ' || c == '\t') {
            scan_refuse(400, header_lines_ == 0 ? "whitespace before the first header line"
                                                : "obsolete line folding (a header line starts with whitespace)");
            return false;
        }
        if (++header_lines_ > limits_.max_headers) {
            scan_refuse_limit(431, "more than ", limits_.max_headers, " header lines");
            return false;
        }
        line_ = Line::Name;
        name_seen_ = false;
        [[fallthrough]];
    case Line::Name:
    case Line::Value:
        if (c == '\r') {
            if (line_ == Line::Name) {
                scan_refuse(400, "header line without a colon");
                return false;
            }
            line_ = Line::HeaderCR;
            return true;
        }
        if (++header_bytes_ > limits_.max_header_bytes) {
            scan_refuse_limit(431, "header block larger than ", limits_.max_header_bytes, " bytes");
            return false;
        }
        if (line_ == Line::Value) {
            if (!has_class(c, kValue)) {
                scan_refuse(400, "invalid character in a header value");
                return false;
            }
        } else if (c == ':') {
            if (!name_seen_) {
                scan_refuse(400, "empty header name");
                return false;
            }
            line_ = Line::Value;
        } else if (has_class(c, kToken)) {
            name_seen_ = true;  // by its first byte, before any run
        } else {
            scan_refuse(400, "invalid character in a header name");
            return false;
        }
        return true;
    case Line::End:
        break;
    }
    return false;  // not reached: scan stops at End
}

// The CR of the request line: its shape and version, now that all is seen.
bool HttpRequestParser::end_request_line() {
    if (request_line_bytes_ == 0) {
        scan_refuse(400, "empty line before the request line");
        return false;
    }
    if (spaces_ != 2) {
        scan_refuse(400, kMalformedLine);
        return false;
    }
    const bool version_ok = version_len_ == 8 && std::string_view(version_, 5) == "HTTP/" && is_digit(version_[5]) &&
                            version_[6] == '.' && is_digit(version_[7]);
    if (!version_ok) {
        scan_refuse(400, kMalformedVersion);
        return false;
    }
    if (version_[5] != '1') {
        // The digits are checked: quoting them is safe.
        const std::string why = "HTTP/" + std::string(version_ + 5, 3) + " is not supported (WebSocket needs HTTP/1.1)";
        scan_refuse(505, why.c_str());
        return false;
    }
    line_ = Line::RequestCR;
    return true;
}

HttpRequestParser::State HttpRequestParser::feed(const char *p, size_t n, size_t *used) {
    size_t dummy;
    if (!used) used = &dummy;
    *used = 0;
    if (state_ != State::NeedMore || n == 0) return state_;

    // The scanner decides how far this chunk goes: to the end of the head,
    // to the byte it refuses, or all of it. http-parser sees exactly that
    // prefix, so it never reads past the head (or past a refused byte) and
    // its errors, being earlier in the stream, come first.
    const size_t len = scan(p, n);
    const bool refused = scan_status_ != 0;

    if (len > 0) {
        static const http_parser_settings settings = [] {
            http_parser_settings s;
            http_parser_settings_init(&s);
            s.on_url = on_url;
            s.on_header_field = on_header_field;
            s.on_header_value = on_header_value;
            s.on_headers_complete = on_headers_complete;
            return s;
        }();
        parser_.data = this;  // set per call: the parser object may have moved
        const size_t got = http_parser_execute(&parser_, &settings, p, len);
        const enum http_errno err = HTTP_PARSER_ERRNO(&parser_);
        if (err != HPE_OK) {
            if (status_ != 0) {
                refuse(status_, std::move(error_));  // a callback refused it and said why
            } else if (err == HPE_INVALID_VERSION || err == HPE_INVALID_CONSTANT) {
                refuse(400, kMalformedVersion);
            } else if (err == HPE_HEADER_OVERFLOW) {
                refuse(431, "request head larger than http-parser's 81920-byte cap");
            } else {
                refuse(400, std::string("malformed request: ") + http_errno_description(err));
            }
            return state_;
        }
        if (got != len) {
            refuse(400, "malformed request: the parser stopped early");
            return state_;
        }
    }
    if (refused) {
        refuse(scan_status_, std::move(scan_error_));
        return state_;
    }
    if (line_ == Line::End) {
        if (!headers_complete_) {
            refuse(400, "malformed request: the parser did not see the end of the head");
            return state_;
        }
        finish();
        state_ = State::Done;
    }
    *used = len;
    return state_;
}

void HttpRequestParser::end_header() {
    if (!in_value_) return;
    HttpHeader &h = req_.headers.back();
    std::string_view v = trim_ows(h.value);
    if (v.size() != h.value.size()) h.value = std::string(v);
    in_value_ = false;
}

// path and query from the target (see HttpRequest).
void HttpRequestParser::finish() {
    std::string_view t = req_.target;
    t = t.substr(0, t.find('#'));
    const size_t q = t.find('?');
    if (q != std::string_view::npos) req_.query = std::string(t.substr(q + 1));
    std::string_view before = t.substr(0, q);
    if (before.empty() || before[0] == '/' || before == "*") {
        req_.path = std::string(before);
    } else {
        const size_t scheme_end = before.find("://");
        if (scheme_end == std::string_view::npos) {
            req_.path.clear();  // authority-form
        } else {
            const size_t slash = before.find('/', scheme_end + 3);
            req_.path = slash == std::string_view::npos ? "/" : std::string(before.substr(slash));
        }
    }
}

int HttpRequestParser::on_url(http_parser *p, const char *at, size_t n) {
    static_cast<HttpRequestParser *>(p->data)->req_.target.append(at, n);
    return 0;
}

int HttpRequestParser::on_header_field(http_parser *p, const char *at, size_t n) {
    auto *self = static_cast<HttpRequestParser *>(p->data);
    if (self->req_.headers.empty() || self->in_value_) {
        self->end_header();
        self->req_.headers.emplace_back();
    }
    std::string &name = self->req_.headers.back().name;
    const size_t from = name.size();
    name.append(at, n);  // a token: the scanner checked it
    for (size_t i = from; i < name.size(); i++) name[i] = ascii_lower(name[i]);
    return 0;
}

int HttpRequestParser::on_header_value(http_parser *p, const char *at, size_t n) {
    auto *self = static_cast<HttpRequestParser *>(p->data);
    self->in_value_ = true;
    self->req_.headers.back().value.append(at, n);
    return 0;
}

int HttpRequestParser::on_headers_complete(http_parser *p) {
    auto *self = static_cast<HttpRequestParser *>(p->data);
    self->end_header();
    HttpRequest &r = self->req_;
    r.method = http_method_str(static_cast<enum http_method>(p->method));
    r.http_major = p->http_major;
    r.http_minor = p->http_minor;
    // An upgrade request has no body: what follows its head is WebSocket.
    if (r.count("transfer-encoding") > 0) {
        self->status_ = 400;
        self->error_ = "an upgrade request cannot have a body (Transfer-Encoding)";
        return -1;
    }
    for (const HttpHeader &h : r.headers) {
        if (h.name == "content-length" && h.value.find_first_not_of('0') != std::string::npos) {
            self->status_ = 400;
            self->error_ = "an upgrade request cannot have a body (Content-Length is not 0)";
            return -1;
        }
    }
    self->headers_complete_ = true;
    return 0;
}

}  // namespace wsgate::proto
