// Request heads shared by the protocol suites: what real clients send, and
// ways to get it wrong. Each valid sample ends with its blank line; the
// suites append bytes after it to check they are left to the caller.
#pragma once

#include <string>

namespace wsgate_test {

// Chrome 120 (Linux), through a path with a query.
inline const std::string kChrome =
    "GET /chat?room=1&access_token=abc%2B1 HTTP/1.1\r\n"
    "Host: example.com:8080\r\n"
    "Connection: Upgrade\r\n"
    "Pragma: no-cache\r\n"
    "Cache-Control: no-cache\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36\r\n"
    "Upgrade: websocket\r\n"
    "Origin: https://example.com\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Accept-Language: en-US,en;q=0.9\r\n"
    "Cookie: session=xyz; theme=dark\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    "Sec-WebSocket-Protocol: chat, bearer.abc\r\n"
    "\r\n";

// Firefox 121: Connection carries two tokens.
inline const std::string kFirefox =
    "GET /ws HTTP/1.1\r\n"
    "Host: localhost:9000\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0\r\n"
    "Accept: */*\r\n"
    "Accept-Language: en-US,en;q=0.5\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Origin: http://localhost:9000\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate\r\n"
    "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
    "Connection: keep-alive, Upgrade\r\n"
    "Sec-Fetch-Dest: empty\r\n"
    "Sec-Fetch-Mode: websocket\r\n"
    "Sec-Fetch-Site: same-origin\r\n"
    "Pragma: no-cache\r\n"
    "Cache-Control: no-cache\r\n"
    "Upgrade: websocket\r\n"
    "\r\n";

// curl 7.88 with the headers given on its command line.
inline const std::string kCurl =
    "GET / HTTP/1.1\r\n"
    "Host: 127.0.0.1:8080\r\n"
    "User-Agent: curl/7.88.1\r\n"
    "Accept: */*\r\n"
    "Connection: Upgrade\r\n"
    "Upgrade: websocket\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
    "\r\n";

// Python websockets 10.4.
inline const std::string kPythonWebsockets =
    "GET /feed?topic=a+b HTTP/1.1\r\n"
    "Host: [::1]:8765\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    "User-Agent: Python/3.11 websockets/10.4\r\n"
    "\r\n";

// A plain HTTP request (a browser opening the WebSocket port): it parses,
// check_upgrade refuses it with 426.
inline const std::string kPlainGet =
    "GET /index.html HTTP/1.1\r\n"
    "Host: example.com\r\n"
    "Accept: text/html\r\n"
    "\r\n";

}  // namespace wsgate_test
