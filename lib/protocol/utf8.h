// UTF-8 validation for text messages and close reasons (RFC 3629).
#pragma once

#include <cstddef>
#include <cstdint>

namespace wsgate {

// Incremental UTF-8 validator (RFC 3629: no overlongs, no surrogates, at most
// U+10FFFF), fed message chunks that may split a code point anywhere.
class Utf8Validator {
public:
    // false as soon as the bytes so far cannot begin valid UTF-8.
    bool feed(const uint8_t *p, size_t n);
    // true when the bytes so far end on a code point boundary.
    bool complete() const { return need_ == 0; }
    void reset() { need_ = 0; lo_ = 0x80; hi_ = 0xBF; }

private:
    // Three bytes: the frame reader keeps one in every idle connection.
    uint8_t need_ = 0;       // continuation bytes still expected
    uint8_t lo_ = 0x80;      // allowed range of the next continuation byte
    uint8_t hi_ = 0xBF;
};

}  // namespace wsgate
