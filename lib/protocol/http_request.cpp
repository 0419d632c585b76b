#include "protocol/http_request.h"

#include <utility>

#include "protocol/ascii.h"
#include "base/text.h"

namespace wsgate::proto {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// What the target may hold: visible ASCII.
bool is_target_char(char c) { return c > 0x20 && c < 0x7f; }

// What a header value may hold (RFC 7230 field-content): HT, SP, visible
// ASCII and obs-text; no other control byte.
bool is_value_char(char c) {
    const auto u = static_cast<unsigned char>(c);
    return u == '\t' || (u >= 0x20 && u != 0x7f);
}

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

void HttpRequestParser::scan_refuse(int status, std::string why) {
    scan_status_ = status;
    scan_error_ = std::move(why);
}

void HttpRequestParser::refuse(int status, std::string why) {
    state_ = State::Error;
    status_ = status;
    error_ = std::move(why);
    req_ = HttpRequest();  // a refused request keeps no memory (and no half values)
}

// One byte of the head through the line rules and the limits. Every rule
// that depends on bytes alone is checked here, at the byte that breaks it,
// so the outcome cannot depend on how the bytes were split (http-parser
// reports some errors only when a chunk ends). Here too because Debian's
// non-strict http-parser lets them through: repeated spaces, any "HTxP/"
// version, tabs and bytes >= 0x80 in the target, spaces in header names.
bool HttpRequestParser::scan(char c) {
    const char prev = prev_;
    prev_ = c;
    if (c == '\n' && line_ != Line::RequestCR && line_ != Line::HeaderCR && line_ != Line::EndCR) {
        scan_refuse(400, "bare LF line ending (lines must end with CRLF)");
        return false;
    }
    switch (line_) {
    case Line::Request:
        if (c == '\r') {
            if (request_line_bytes_ == 0) {
                scan_refuse(400, "empty line before the request line");
                return false;
            }
            if (spaces_ != 2) {
                scan_refuse(400, "malformed request line (expected METHOD SP target SP HTTP/1.1)");
                return false;
            }
            const bool version_ok = version_len_ == 8 && std::string_view(version_, 5) == "HTTP/" &&
                                    is_digit(version_[5]) && version_[6] == '.' && is_digit(version_[7]);
            if (!version_ok) {
                scan_refuse(400, "malformed HTTP version (expected HTTP/1.1)");
                return false;
            }
            if (version_[5] != '1') {
                scan_refuse(505, "HTTP/" + std::string(version_ + 5, 3) +
                                     " is not supported (WebSocket needs HTTP/1.1)");
                return false;
            }
            line_ = Line::RequestCR;
            return true;
        }
        if (++request_line_bytes_ > limits_.max_request_line) {
            scan_refuse(414, "request line longer than " + std::to_string(limits_.max_request_line) + " bytes");
            return false;
        }
        if (c == ' ') {
            if (request_line_bytes_ == 1 || prev == ' ' || ++spaces_ > 2) {
                scan_refuse(400, "malformed request line (expected METHOD SP target SP HTTP/1.1)");
                return false;
            }
        } else if (spaces_ == 1) {
            if (!is_target_char(c)) {
                scan_refuse(400, "request target has a control, space or non-ASCII byte");
                return false;
            }
        } else if (spaces_ == 2) {
            if (version_len_ == sizeof version_) {
                scan_refuse(400, "malformed HTTP version (expected HTTP/1.1)");
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
            scan_refuse(431, "more than " + std::to_string(limits_.max_headers) + " header lines");
            return false;
        }
        line_ = Line::Name;
        name_bytes_ = 0;
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
            scan_refuse(431, "header block larger than " + std::to_string(limits_.max_header_bytes) + " bytes");
            return false;
        }
        if (line_ == Line::Name) {
            if (c == ':') {
                if (name_bytes_ == 0) {
                    scan_refuse(400, "empty header name");
                    return false;
                }
                line_ = Line::Value;
            } else if (!wsgate::is_tchar(c)) {
                scan_refuse(400, "invalid character in a header name");
                return false;
            } else {
                name_bytes_++;
            }
        } else if (!is_value_char(c)) {
            // http-parser does not check a value's first byte.
            scan_refuse(400, "invalid character in a header value");
            return false;
        }
        return true;
    case Line::End:
        break;
    }
    return false;  // not reached: feed stops at End
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
    size_t len = 0;
    bool refused = false;
    while (len < n) {
        if (!scan(p[len])) {
            refused = true;
            break;
        }
        len++;
        if (line_ == Line::End) break;
    }

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
                refuse(400, "malformed HTTP version (expected HTTP/1.1)");
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
    for (size_t i = 0; i < n; i++) name += ascii_lower(at[i]);  // tokens: the scanner checked them
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
