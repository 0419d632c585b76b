// The server side of the WebSocket opening handshake (RFC 6455 4.2): the
// checks on a parsed request, Sec-WebSocket-Accept, and the bytes of the
// 101 answer or of a refusal. Pure code, no I/O.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/http_request.h"

namespace wsgate::proto {

struct Refusal {
    int status = 0;             // 0: acceptable
    std::string reason;         // short, for the log and the response body; no request bytes
    std::string extra_headers;  // "name: value\r\n"... for http_response
};

// RFC 6455 4.2.1 checks, in this order; the first failure wins:
//  1. method GET, else 405 (extra "allow: GET");
//  2. HTTP/1.x with x >= 1, else 505 (other majors) or 400 (HTTP/1.0);
//  3. an Upgrade header with the token "websocket" (any case), else 426
//     (extra "upgrade: websocket"): a plain HTTP request on the port;
//  4. a Connection header with the token "upgrade" (any case), else 400;
//  5. exactly one Host header, else 400;
//  6. exactly one Sec-WebSocket-Version, and it is "13", else 426 (extra
//     "sec-websocket-version: 13");
//  7. exactly one Sec-WebSocket-Key, the canonical base64 of 16 bytes (24
//     characters ending in "=="), else 400.
// Token lists may span repeated headers (RFC 7230 3.2.2).
Refusal check_upgrade(const HttpRequest &req);

// Whether the request asks for WebSocket at all: an Upgrade header (possibly
// repeated) with the token "websocket" (any case). A request that does not
// is plain HTTP; check_upgrade answers it 426 unless the gate serves a page.
bool asks_for_websocket(const HttpRequest &req);

// Whether `key` is the canonical base64 (RFC 4648 section 4, padded) of
// exactly 16 bytes.
bool valid_websocket_key(std::string_view key);

// base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")): 28 characters
// ("" only if OpenSSL fails). The first call loads OpenSSL's digest (about
// 2 MiB with OpenSSL 3): call it once at start-up.
std::string websocket_accept(std::string_view key);

// "HTTP/1.1 101 Switching Protocols" with upgrade, connection and
// sec-websocket-accept, then sec-websocket-protocol and
// sec-websocket-extensions when not empty, then the blank line.
std::string switching_protocols(std::string_view accept, std::string_view subprotocol,
                                std::string_view extensions);

// The standard reason phrase of `status` (http-parser's table), "" if none.
std::string_view reason_phrase(int status);

// A complete response that ends the connection:
//   HTTP/1.1 <status> <reason phrase>\r\n
//   content-type: text/plain; charset=utf-8\r\n
//   content-length: N\r\n
//   connection: close\r\n      ("upgrade, close" when extra_headers has an
//                                upgrade header: RFC 7230 6.7 requires it)
//   <extra_headers>\r\n
//   <body_text>\n
// `extra_headers` is trusted: lines of "name: value\r\n". A status outside
// 200..599 becomes 500.
std::string http_response(int status, std::string_view body_text, std::string_view extra_headers);

// The items of a comma-separated list (pass req.joined(name) for a list
// spread over repeated headers), trimmed of spaces and tabs, empty items
// dropped. Commas inside a quoted-string do not split. The views point into
// `list`: keep it alive while using them.
std::vector<std::string_view> split_tokens(std::string_view list);

// The value of the first query parameter called `name` (names compare after
// decoding), percent-decoded with '+' as a space, "" for "name" without
// '='; nullopt when absent. `raw_query` is HttpRequest::query. A '%' not
// followed by two hex digits stays as it is (as browsers' URLSearchParams).
// The value may hold any byte, NUL included.
std::optional<std::string> query_param(std::string_view raw_query, std::string_view name);

// The raw query without every parameter whose decoded name is `name` (the
// ones query_param could return), the rest kept as sent; empty items dropped.
std::string without_query_param(std::string_view raw_query, std::string_view name);

}  // namespace wsgate::proto
