// ASCII-only case folding for protocol text (header names, tokens). HTTP and
// WebSocket names compare case-insensitively in ASCII only: std::tolower
// depends on the process locale and could fold bytes >= 0x80 differently.
#pragma once

#include <string_view>

namespace wsgate::proto {

constexpr char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

constexpr bool ascii_iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); i++)
        if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
    return true;
}

}  // namespace wsgate::proto
