// Small helpers for HTTP header text (RFC 7230), shared by the parsers of
// requests, Origin lists, tokens, cookies, CIDR lists and extension offers.
#pragma once

#include <string_view>

namespace wsgate {

// s without leading and trailing optional white space (spaces and tabs).
inline std::string_view trim_ows(std::string_view s) {
    size_t a = 0, b = s.size();
    while (a < b && (s[a] == ' ' || s[a] == '\t')) a++;
    while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t')) b--;
    return s.substr(a, b - a);
}

// ASCII-only case folding for protocol text (header names, tokens, schemes):
// HTTP and WebSocket names compare case-insensitively in ASCII only, and
// std::tolower depends on the process locale (bytes >= 0x80 could fold).
constexpr char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

constexpr bool ascii_iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); i++)
        if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
    return true;
}

// Whether c may appear in an RFC 7230 token (tchar): visible ASCII but for
// the separators.
inline bool is_tchar(char c) {
    static constexpr std::string_view separators = "()<>@,;:\\\"/[]?={} \t";
    return c > 0x20 && c < 0x7f && separators.find(c) == std::string_view::npos;
}

}  // namespace wsgate
