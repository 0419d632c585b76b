#include "protocol/handshake.h"

#include <openssl/evp.h>

#include "base/text.h"
#include "base/base64url.h"
#include "base/text.h"

namespace wsgate::proto {
namespace {

constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

bool has_token(std::string_view list, std::string_view token) {
    for (std::string_view item : split_tokens(list))
        if (ascii_iequals(item, token)) return true;
    return false;
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// application/x-www-form-urlencoded decoding of one name or value.
std::string form_decode(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size(); i++) {
        const char c = s[i];
        if (c == '+') {
            out += ' ';
        } else if (c == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
            out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
            i += 2;
        } else {
            out += c;
        }
    }
    return out;
}

bool has_upgrade_header(std::string_view headers) {
    // Lines are ours ("name: value\r\n", any case): look at each name.
    while (!headers.empty()) {
        const size_t colon = headers.find(':');
        if (colon == std::string_view::npos) break;
        if (ascii_iequals(trim_ows(headers.substr(0, colon)), "upgrade")) return true;
        const size_t eol = headers.find('\n');
        if (eol == std::string_view::npos) break;
        headers.remove_prefix(eol + 1);
    }
    return false;
}

Refusal refuse(int status, std::string reason, std::string extra = {}) {
    Refusal r;
    r.status = status;
    r.reason = std::move(reason);
    r.extra_headers = std::move(extra);
    return r;
}

}  // namespace

Refusal check_upgrade(const HttpRequest &req) {
    if (req.method != "GET")
        return refuse(405, "a WebSocket handshake is a GET request", "allow: GET\r\n");
    if (req.http_major != 1)
        return refuse(505, "HTTP version not supported (WebSocket needs HTTP/1.1)");
    if (req.http_minor < 1) return refuse(400, "HTTP/1.0 cannot upgrade (WebSocket needs HTTP/1.1)");
    if (!asks_for_websocket(req))
        return refuse(426, "this is a WebSocket endpoint: the request needs Upgrade: websocket",
                      "upgrade: websocket\r\n");
    if (!has_token(req.joined("connection"), "upgrade"))
        return refuse(400, "the Connection header lacks the upgrade token");
    const size_t hosts = req.count("host");
    if (hosts == 0) return refuse(400, "the Host header is missing");
    if (hosts > 1) return refuse(400, "the Host header is repeated");
    const size_t versions = req.count("sec-websocket-version");
    if (versions != 1 || *req.get("sec-websocket-version") != "13")
        return refuse(426,
                      versions == 0   ? "the Sec-WebSocket-Version header is missing (this server speaks 13)"
                      : versions > 1  ? "the Sec-WebSocket-Version header is repeated (this server speaks 13)"
                                      : "unsupported Sec-WebSocket-Version (this server speaks 13)",
                      "sec-websocket-version: 13\r\n");
    const size_t keys = req.count("sec-websocket-key");
    if (keys == 0) return refuse(400, "the Sec-WebSocket-Key header is missing");
    if (keys > 1) return refuse(400, "the Sec-WebSocket-Key header is repeated");
    if (!valid_websocket_key(*req.get("sec-websocket-key")))
        return refuse(400, "Sec-WebSocket-Key is not the base64 of 16 bytes");
    return Refusal();
}

bool asks_for_websocket(const HttpRequest &req) { return has_token(req.joined("upgrade"), "websocket"); }

bool valid_websocket_key(std::string_view key) {
    // 16 bytes are 22 base64 characters and "==". The strict base64url
    // decoder checks the rest (alphabet, unused bits) once the two
    // characters that differ between the alphabets are swapped.
    if (key.size() != 24 || key.substr(22) != "==") return false;
    std::string url(key.substr(0, 22));
    for (char &c : url) {
        if (c == '-' || c == '_') return false;
        if (c == '+') c = '-';
        else if (c == '/') c = '_';
    }
    std::string bytes;
    return base64url_decode(url, &bytes) && bytes.size() == 16;
}

std::string websocket_accept(std::string_view key) {
    std::string text;
    text.reserve(key.size() + kGuid.size());
    text.append(key);
    text.append(kGuid);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (EVP_Digest(text.data(), text.size(), md, &md_len, EVP_sha1(), nullptr) != 1 || md_len != 20) return {};
    unsigned char b64[32];  // 4 * ceil(20 / 3) = 28, and a NUL
    const int n = EVP_EncodeBlock(b64, md, 20);
    return std::string(reinterpret_cast<const char *>(b64), n > 0 ? static_cast<size_t>(n) : 0);
}

std::string switching_protocols(std::string_view accept, std::string_view subprotocol,
                                std::string_view extensions) {
    std::string out =
        "HTTP/1.1 101 Switching Protocols\r\n"
        "upgrade: websocket\r\n"
        "connection: Upgrade\r\n"
        "sec-websocket-accept: ";
    out += accept;
    out += "\r\n";
    if (!subprotocol.empty()) {
        out += "sec-websocket-protocol: ";
        out += subprotocol;
        out += "\r\n";
    }
    if (!extensions.empty()) {
        out += "sec-websocket-extensions: ";
        out += extensions;
        out += "\r\n";
    }
    out += "\r\n";
    return out;
}

std::string_view reason_phrase(int status) {
    switch (status) {
#define WSG_REASON(num, name, text) \
    case num: return #text;
        HTTP_STATUS_MAP(WSG_REASON)
#undef WSG_REASON
    }
    return {};
}

std::string http_response(int status, std::string_view body_text, std::string_view extra_headers) {
    if (status < 200 || status > 599) status = 500;
    const size_t body_len = body_text.size() + 1;
    std::string out = "HTTP/1.1 " + std::to_string(status) + " ";
    out += reason_phrase(status);
    out += "\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ";
    out += std::to_string(body_len);
    out += has_upgrade_header(extra_headers) ? "\r\nconnection: upgrade, close\r\n" : "\r\nconnection: close\r\n";
    out += extra_headers;
    out += "\r\n";
    out += body_text;
    out += '\n';
    return out;
}

std::vector<std::string_view> split_tokens(std::string_view list) {
    std::vector<std::string_view> out;
    size_t start = 0;
    bool quoted = false;
    for (size_t i = 0; i < list.size(); i++) {
        const char c = list[i];
        if (quoted) {
            if (c == '\\') i++;  // quoted-pair: the next byte is literal
            else if (c == '"') quoted = false;
        } else if (c == '"') {
            quoted = true;
        } else if (c == ',') {
            std::string_view item = trim_ows(list.substr(start, i - start));
            if (!item.empty()) out.push_back(item);
            start = i + 1;
        }
    }
    if (start < list.size()) {
        std::string_view item = trim_ows(list.substr(start));
        if (!item.empty()) out.push_back(item);
    }
    return out;
}

std::string without_query_param(std::string_view raw_query, std::string_view name) {
    std::string out;
    while (true) {
        const size_t amp = raw_query.find('&');
        const std::string_view pair = raw_query.substr(0, amp);
        // Names compare decoded, as query_param reads them: a parameter it
        // would find is never left behind (acc%65ss_token is access_token).
        if (!pair.empty() && form_decode(pair.substr(0, pair.find('='))) != name) {
            if (!out.empty()) out += '&';
            out.append(pair.data(), pair.size());
        }
        if (amp == std::string_view::npos) return out;
        raw_query.remove_prefix(amp + 1);
    }
}

std::optional<std::string> query_param(std::string_view raw_query, std::string_view name) {
    while (true) {
        const size_t amp = raw_query.find('&');
        const std::string_view pair = raw_query.substr(0, amp);
        if (!pair.empty()) {
            const size_t eq = pair.find('=');
            if (form_decode(pair.substr(0, eq)) == name)
                return eq == std::string_view::npos ? std::string() : form_decode(pair.substr(eq + 1));
        }
        if (amp == std::string_view::npos) return std::nullopt;
        raw_query.remove_prefix(amp + 1);
    }
}

}  // namespace wsgate::proto
