#include "protocol/utf8.h"

#include <cstring>

namespace wsgate {

bool Utf8Validator::feed(const uint8_t *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (need_ == 0) {
            // Fast path: runs of ASCII, eight bytes at a time.
            while (i + 8 <= n) {
                uint64_t w;
                std::memcpy(&w, p + i, 8);
                if (w & 0x8080808080808080ull) break;
                i += 8;
            }
            if (i >= n) break;
            uint8_t c = p[i++];
            if (c < 0x80) continue;
            lo_ = 0x80;
            hi_ = 0xBF;
            if (c >= 0xC2 && c <= 0xDF) {
                need_ = 1;
            } else if (c >= 0xE0 && c <= 0xEF) {
                need_ = 2;
                if (c == 0xE0) lo_ = 0xA0;       // overlong
                else if (c == 0xED) hi_ = 0x9F;  // surrogates
            } else if (c >= 0xF0 && c <= 0xF4) {
                need_ = 3;
                if (c == 0xF0) lo_ = 0x90;       // overlong
                else if (c == 0xF4) hi_ = 0x8F;  // above U+10FFFF
            } else {
                return false;
            }
        } else {
            uint8_t c = p[i++];
            if (c < lo_ || c > hi_) return false;
            lo_ = 0x80;
            hi_ = 0xBF;
            need_--;
        }
    }
    return true;
}

}  // namespace wsgate
