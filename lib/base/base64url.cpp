// Strict base64url; see base64url.h.
#include "base/base64url.h"

#include <cstdint>

namespace wsgate {

namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// Value of each byte as a base64url character; 0xff for the others.
struct DecodeTable {
    uint8_t v[256];
    constexpr DecodeTable() : v() {
        for (int i = 0; i < 256; i++) v[i] = 0xff;
        for (int i = 0; i < 64; i++) v[static_cast<unsigned char>(kAlphabet[i])] = uint8_t(i);
    }
};
constexpr DecodeTable kDecode;

}  // namespace

bool base64url_decode(std::string_view in, std::string *out) {
    out->clear();
    const size_t n = in.size();
    const size_t rem = n % 4;
    if (rem == 1) return false;
    out->resize(n / 4 * 3 + (rem ? rem - 1 : 0));
    char *o = &(*out)[0];
    const unsigned char *p = reinterpret_cast<const unsigned char *>(in.data());
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const uint32_t a = kDecode.v[p[i]], b = kDecode.v[p[i + 1]], c = kDecode.v[p[i + 2]],
                       d = kDecode.v[p[i + 3]];
        if ((a | b | c | d) & 0x80) {
            out->clear();
            return false;
        }
        const uint32_t v = (a << 18) | (b << 12) | (c << 6) | d;
        *o++ = char(v >> 16);
        *o++ = char((v >> 8) & 0xff);
        *o++ = char(v & 0xff);
    }
    if (rem) {
        // 2 or 3 characters: 1 or 2 bytes, and the unused low bits (4 or 2)
        // must be zero for the spelling to be canonical.
        const uint32_t a = kDecode.v[p[i]], b = kDecode.v[p[i + 1]];
        const uint32_t c = rem == 3 ? kDecode.v[p[i + 2]] : 0;
        if ((a | b | c) & 0x80) {
            out->clear();
            return false;
        }
        const uint32_t v = (a << 18) | (b << 12) | (c << 6);
        const uint32_t unused = rem == 2 ? (v & 0xffff) : (v & 0xff);
        if (unused != 0) {
            out->clear();
            return false;
        }
        *o++ = char(v >> 16);
        if (rem == 3) *o++ = char((v >> 8) & 0xff);
    }
    return true;
}

std::string base64url_encode(std::string_view in) {
    std::string out;
    out.reserve((in.size() + 2) / 3 * 4);
    size_t i = 0;
    for (; i + 3 <= in.size(); i += 3) {
        const uint32_t v = (uint32_t(uint8_t(in[i])) << 16) | (uint32_t(uint8_t(in[i + 1])) << 8) |
                           uint32_t(uint8_t(in[i + 2]));
        out.push_back(kAlphabet[(v >> 18) & 63]);
        out.push_back(kAlphabet[(v >> 12) & 63]);
        out.push_back(kAlphabet[(v >> 6) & 63]);
        out.push_back(kAlphabet[v & 63]);
    }
    const size_t rest = in.size() - i;
    if (rest == 1) {
        const uint32_t v = uint32_t(uint8_t(in[i])) << 16;
        out.push_back(kAlphabet[(v >> 18) & 63]);
        out.push_back(kAlphabet[(v >> 12) & 63]);
    } else if (rest == 2) {
        const uint32_t v = (uint32_t(uint8_t(in[i])) << 16) | (uint32_t(uint8_t(in[i + 1])) << 8);
        out.push_back(kAlphabet[(v >> 18) & 63]);
        out.push_back(kAlphabet[(v >> 12) & 63]);
        out.push_back(kAlphabet[(v >> 6) & 63]);
    }
    return out;
}

}  // namespace wsgate
