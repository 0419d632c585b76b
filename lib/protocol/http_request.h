// The HTTP/1.1 request head of a WebSocket opening handshake, parsed
// incrementally (bytes may arrive split anywhere) with bounded memory. Pure
// code, no I/O: the transport feeds what it read, the gate reads the result.
//
// Parsing is nodejs http-parser (2.9, Debian's libhttp-parser) plus a
// line scanner in front of it that makes the whole strict, because Debian
// builds http-parser with HTTP_PARSER_STRICT=0 (it then accepts "HTXP/1.1",
// spaces in header names, tabs in the target, and "\r" without "\n"):
//  - every line ends with CRLF: a bare LF or a CR not followed by LF is 400;
//  - the request line is exactly METHOD SP target SP HTTP/d.d, with no
//    repeated or trailing spaces and no empty line before it (RFC 7230 3.5
//    lets a server skip such lines; WebSocket clients send none) (400); a
//    known method (http-parser's list; others 400); a version other than
//    1.x is 505 (HTTP/1.0 parses; check_upgrade refuses it);
//  - obsolete line folding (a header line starting with SP or HT) is 400;
//  - header names are RFC 7230 tokens, each line has a colon, values hold
//    no control byte but HT; the target is visible ASCII;
//  - a body (Transfer-Encoding, or Content-Length other than 0) is 400:
//    an upgrade request has none, and what follows the head is WebSocket.
// Limits are checked byte by byte as the head streams in, so a client
// sending a megabyte of headers is refused at the byte past the limit, and
// the parser never holds more than the limits allow. Each rule is checked
// at the byte that breaks it: the outcome (state, status, reason, request)
// is the same however the bytes are split.
#pragma once

#include <http_parser.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace wsgate::proto {

struct HttpLimits {
    // The request line without its CRLF (method, target, version and the two
    // spaces). Longer: 414.
    size_t max_request_line = 8192;
    // All header lines together, each counted without its CRLF (name, colon,
    // whitespace and value: padding counts too). More: 431.
    size_t max_header_bytes = 16384;
    // Header lines. More: 431.
    size_t max_headers = 64;
};
// http-parser caps a whole head at 80 KiB (request line and header lines
// with their CRLFs): limits above that are refused there, also with 431.

struct HttpHeader {
    std::string name;   // lower-cased
    std::string value;  // without leading and trailing spaces and tabs
};

struct HttpRequest {
    std::string method;  // "GET"
    std::string target;  // the request-target exactly as sent
    // The target's path, still percent-encoded: the target up to '?' or '#'
    // (origin-form); the path after the authority in absolute-form
    // ("http://h:80/p?q" -> "/p", "/" when empty); "*" for asterisk-form;
    // "" for authority-form (CONNECT).
    std::string path;
    std::string query;  // raw text after '?', without '#fragment'; "" when none
    int http_major = 0, http_minor = 0;
    std::vector<HttpHeader> headers;  // in order; repeated headers kept apart

    // First value of header `name` (any case), nullptr if absent.
    const std::string *get(std::string_view name) const;
    // How many header lines are named `name` (any case).
    size_t count(std::string_view name) const;
    // All values of `name` joined with ", " (RFC 7230 3.2.2); "" if absent.
    std::string joined(std::string_view name) const;
};

class HttpRequestParser {
public:
    enum class State { NeedMore, Done, Error };

    explicit HttpRequestParser(const HttpLimits &limits = HttpLimits());

    // Consumes up to `n` bytes. *used (may be null) receives how many:
    //  NeedMore: all n (the head is not complete yet);
    //  Done: the head ended at p[*used - 1]; bytes after it are not part of
    //        the request (early WebSocket frames): the caller keeps them;
    //  Error: 0; the request is refused with error_status().
    // Once Done or Error, later calls consume nothing and return the same.
    State feed(const char *p, size_t n, size_t *used);

    State state() const { return state_; }
    // 400, 414, 431 or 505 once Error; 0 before.
    int error_status() const { return status_; }
    // A short reason a user can act on, e.g. "header block larger than 16384
    // bytes"; "" unless Error. It quotes nothing from the request but, for
    // 505, the version's two digits.
    const std::string &error() const { return error_; }
    // The request: complete once Done, empty after Error, partial before.
    HttpRequest &request() { return req_; }
    const HttpRequest &request() const { return req_; }

private:
    enum class Line : unsigned char { Request, RequestCR, Start, Name, Value, HeaderCR, EndCR, End };

    size_t scan(const char *p, size_t n);
    bool scan_byte(char c);
    bool end_request_line();
    void scan_refuse(int status, const char *why);
    void scan_refuse_limit(int status, const char *before, size_t limit, const char *after);
    void refuse(int status, std::string why);
    void end_header();
    void finish();

    static int on_url(http_parser *p, const char *at, size_t n);
    static int on_header_field(http_parser *p, const char *at, size_t n);
    static int on_header_value(http_parser *p, const char *at, size_t n);
    static int on_headers_complete(http_parser *p);

    HttpLimits limits_;
    http_parser parser_{};  // zeroed: http_parser_init reads (and keeps) its data field
    HttpRequest req_;
    State state_ = State::NeedMore;
    int status_ = 0;
    std::string error_;

    // The line scanner.
    Line line_ = Line::Request;
    size_t request_line_bytes_ = 0;
    unsigned spaces_ = 0;
    char version_[8] = {};  // the request line's text after its second space
    size_t version_len_ = 0;
    size_t header_bytes_ = 0;
    size_t header_lines_ = 0;
    bool name_seen_ = false;  // the header line being read has a name
    bool after_space_ = false;  // the request line's last byte was a space
    int scan_status_ = 0;
    std::string scan_error_;

    // What the callbacks have seen.
    bool in_value_ = false;  // the last callback was a header value
    bool headers_complete_ = false;
};

}  // namespace wsgate::proto
