// Small helpers for HTTP header text (RFC 7230), shared by the parsers of
// Origin lists, tokens, cookies, CIDR lists and extension offers.
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

// Whether c may appear in an RFC 7230 token (tchar): visible ASCII but for
// the separators.
inline bool is_tchar(char c) {
    static constexpr std::string_view separators = "()<>@,;:\\\"/[]?={} \t";
    return c > 0x20 && c < 0x7f && separators.find(c) == std::string_view::npos;
}

}  // namespace wsgate
