// Static pages (wsg_server_add_page): small responses kept in memory that the
// gate gives to plain HTTP requests, so a server can hand out the page that
// opens its WebSockets (a chat client, a dashboard) from its own port. The
// table is written only while the server is idle (Server::add_page holds the
// lifecycle lock) and read only by the service thread while it serves.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>

#include "wsgate/wsgate.h"

namespace wsgate {

class Pages {
public:
    static constexpr size_t kMaxPath = 1024;
    static constexpr size_t kMaxContentType = 255;
    static constexpr size_t kMaxBody = 1024 * 1024;

    struct Page {
        // The whole 200 answer: its head (blank line included) and the body,
        // in one buffer so a GET is one write (lws must not be handed a
        // second write while it still holds part of the first).
        std::string response;
        size_t head_len = 0;
        size_t body_len() const { return response.size() - head_len; }
    };

    // Checks the arguments (WSG_EINVAL, naming the bad one; nothing changes
    // then), copies them and builds the response head. A page already at
    // `path` is replaced.
    wsg_status add(const char *path, const char *content_type, const void *body, size_t len);
    // The page at exactly `path` (the request's path as sent, still
    // percent-encoded), or nullptr.
    const Page *find(std::string_view path) const;
    bool empty() const { return pages_.empty(); }

private:
    std::unordered_map<std::string, Page> pages_;
};

}  // namespace wsgate
