#include "core/pages.h"

#include "base/error.h"

namespace wsgate {
namespace {

// Why `path` cannot name a page, or "" when it can. Paths compare byte for
// byte with the request's, so only what a request path can hold is allowed:
// visible ASCII from a leading '/' up to (not including) '?' or '#'.
std::string bad_path(std::string_view path) {
    if (path.empty() || path[0] != '/') return "must start with '/'";
    if (path.size() > Pages::kMaxPath) return "is longer than " + std::to_string(Pages::kMaxPath) + " bytes";
    for (char c : path) {
        if (c <= 0x20 || c >= 0x7f) return "may hold only visible ASCII (percent-encode the rest)";
        if (c == '?' || c == '#') return "may not hold '?' or '#' (a page is matched by path alone)";
    }
    return {};
}

// A header value we write verbatim: printable ASCII and spaces, no CR or LF
// that could start a header of its own.
std::string bad_content_type(std::string_view type) {
    if (type.empty()) return "is empty";
    if (type.size() > Pages::kMaxContentType)
        return "is longer than " + std::to_string(Pages::kMaxContentType) + " bytes";
    for (char c : type)
        if (c < 0x20 || c >= 0x7f) return "may hold only printable ASCII";
    if (type.front() == ' ' || type.back() == ' ') return "starts or ends with a space";
    return {};
}

}  // namespace

wsg_status Pages::add(const char *path, const char *content_type, const void *body, size_t len) {
    if (!path) return fail(WSG_EINVAL, "page path is NULL");
    if (!content_type) return fail(WSG_EINVAL, "page content type is NULL (e.g. \"text/html; charset=utf-8\")");
    if (!body && len) return fail(WSG_EINVAL, "page body is NULL but len > 0");
    std::string why = bad_path(path);
    if (!why.empty()) return fail(WSG_EINVAL, std::string("page path '") + path + "' " + why);
    why = bad_content_type(content_type);
    if (!why.empty()) return fail(WSG_EINVAL, "page content type " + why);
    if (len > kMaxBody)
        return fail(WSG_EINVAL, "page body of " + std::to_string(len) + " bytes is larger than " +
                                    std::to_string(kMaxBody) + " (pages are small responses kept in memory)");
    Page page;
    std::string &r = page.response;
    r = "HTTP/1.1 200 OK\r\ncontent-type: ";
    r += content_type;
    r += "\r\ncontent-length: ";
    r += std::to_string(len);
    // no-cache: a browser revalidates, so a new build of the page is seen at
    // once; nosniff: the declared type is the one used.
    r +=
        "\r\ncache-control: no-cache\r\n"
        "x-content-type-options: nosniff\r\n"
        "connection: close\r\n\r\n";
    page.head_len = r.size();
    if (len) r.append(static_cast<const char *>(body), len);
    pages_[path] = std::move(page);
    return WSG_OK;
}

const Pages::Page *Pages::find(std::string_view path) const {
    if (pages_.empty()) return nullptr;
    auto it = pages_.find(std::string(path));
    return it == pages_.end() ? nullptr : &it->second;
}

}  // namespace wsgate
