// Test support for the inbound frame reader (lib/protocol/frame_reader.h),
// shared by tests/protocol/test_frame_reader.cpp and tests/fuzz/fuzz_frames.cpp:
//   - client_frame(): builds masked (or not) client frames, any length form;
//   - reference_read(): a reference reader, written to be obviously right
//     rather than fast: the whole stream at once, one byte at a time, the
//     rules in the order frame_reader.h lists them, and its own UTF-8 check
//     (by code point ranges, not by the byte table Utf8Validator uses).
// Both describe what they saw as the same Outcome, compared whole.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "protocol/frame_reader.h"

namespace wsgate_test {

using Bytes = std::vector<uint8_t>;
using wsgate::proto::ReadError;

// ------------------------------------------------------------------ events

struct Event {
    enum Kind { Message, Ping, Pong, Close } kind = Message;
    bool binary = false, compressed = false;  // Message
    std::vector<uint64_t> frames;             // Message: each frame's declared length
    std::string payload;                      // Message and Ping/Pong payload; Close reason
    int code = 0;                             // Close

    bool operator==(const Event &o) const {
        return kind == o.kind && binary == o.binary && compressed == o.compressed &&
               frames == o.frames && payload == o.payload && code == o.code;
    }
    bool operator!=(const Event &o) const { return !(*this == o); }
};

// What a reader made of a stream: whole messages and control frames in
// order, how it ended, and how many bytes it consumed (the offset past the
// close frame when closed; the whole stream when neither closed nor failed).
struct Outcome {
    std::vector<Event> events;
    ReadError error = ReadError::None;
    bool closed = false;
    bool in_message = false;
    size_t consumed = 0;
};

inline const char *error_name(ReadError e) {
    switch (e) {
    case ReadError::None: return "None";
    case ReadError::Protocol: return "Protocol";
    case ReadError::InvalidUtf8: return "InvalidUtf8";
    case ReadError::TooBig: return "TooBig";
    case ReadError::BadCompression: return "BadCompression";
    }
    return "?";
}

inline std::string describe(const Event &e) {
    static const char *const kinds[] = {"message", "ping", "pong", "close"};
    std::string s = kinds[e.kind];
    char b[96];
    if (e.kind == Event::Message) {
        std::snprintf(b, sizeof b, " %s%s frames[", e.binary ? "binary" : "text",
                      e.compressed ? " compressed" : "");
        s += b;
        for (uint64_t f : e.frames) s += std::to_string(f) + ",";
        s += "]";
    }
    if (e.kind == Event::Close) s += " " + std::to_string(e.code);
    std::snprintf(b, sizeof b, " %zu bytes", e.payload.size());
    return s + b;
}

// Empty when equal, else what differs first.
inline std::string compare(const Outcome &got, const Outcome &want, bool compare_consumed = true) {
    char b[200];
    if (got.error != want.error) {
        std::snprintf(b, sizeof b, "error %s, expected %s", error_name(got.error), error_name(want.error));
        return b;
    }
    size_t n = got.events.size() < want.events.size() ? got.events.size() : want.events.size();
    for (size_t i = 0; i < n; i++)
        if (got.events[i] != want.events[i])
            return "event " + std::to_string(i) + ": " + describe(got.events[i]) + ", expected " +
                   describe(want.events[i]);
    if (got.events.size() != want.events.size()) {
        std::snprintf(b, sizeof b, "%zu events, expected %zu", got.events.size(), want.events.size());
        return b;
    }
    if (got.closed != want.closed) return got.closed ? "closed, expected open" : "open, expected closed";
    // After a refusal the reader's message state and byte count are moot.
    if (want.error != ReadError::None) return "";
    if (got.in_message != want.in_message)
        return got.in_message ? "in a message, expected not" : "not in a message, expected in one";
    if (compare_consumed && got.consumed != want.consumed) {
        std::snprintf(b, sizeof b, "consumed %zu, expected %zu", got.consumed, want.consumed);
        return b;
    }
    return "";
}

// ------------------------------------------------------------------ building frames

enum class LenForm { Minimal, Bits16, Bits64 };

// Appends one client frame. b0: FIN (0x80), RSV bits (0x70) and opcode, as
// they go on the wire. key: the masking key's four bytes, first byte in the
// high bits; masked = false leaves the mask bit and key out.
inline void client_frame(Bytes &out, uint8_t b0, const void *payload, size_t n,
                         uint32_t key = 0x37fa213d, LenForm form = LenForm::Minimal, bool masked = true) {
    out.push_back(b0);
    const uint8_t m = masked ? 0x80 : 0;
    if (form == LenForm::Minimal) form = n < 126 ? LenForm::Minimal : n <= 0xffff ? LenForm::Bits16 : LenForm::Bits64;
    if (form == LenForm::Minimal) {
        out.push_back(static_cast<uint8_t>(m | n));
    } else if (form == LenForm::Bits16) {
        out.push_back(m | 126);
        out.push_back(static_cast<uint8_t>(n >> 8));
        out.push_back(static_cast<uint8_t>(n));
    } else {
        out.push_back(m | 127);
        for (int i = 7; i >= 0; i--) out.push_back(static_cast<uint8_t>(static_cast<uint64_t>(n) >> (8 * i)));
    }
    const uint8_t k[4] = {static_cast<uint8_t>(key >> 24), static_cast<uint8_t>(key >> 16),
                          static_cast<uint8_t>(key >> 8), static_cast<uint8_t>(key)};
    if (masked) out.insert(out.end(), k, k + 4);
    const uint8_t *p = static_cast<const uint8_t *>(payload);
    for (size_t i = 0; i < n; i++) out.push_back(masked ? static_cast<uint8_t>(p[i] ^ k[i % 4]) : p[i]);
}

inline void client_frame(Bytes &out, uint8_t b0, const std::string &payload, uint32_t key = 0x37fa213d,
                         LenForm form = LenForm::Minimal, bool masked = true) {
    client_frame(out, b0, payload.data(), payload.size(), key, form, masked);
}

// A close frame's payload: the code, big-endian, then the reason.
inline std::string close_payload(int code, const std::string &reason = "") {
    std::string s;
    s.push_back(static_cast<char>((code >> 8) & 0xff));
    s.push_back(static_cast<char>(code & 0xff));
    return s + reason;
}

// ------------------------------------------------------------------ reference UTF-8

// Decides each byte by asking whether any code point could still begin
// with the bytes seen so far: the prefix fixes the high bits, so the code
// points it can become form one range, and that range must meet the valid
// ones for its length (no overlong form, no surrogate, at most U+10FFFF).
class RefUtf8 {
public:
    bool feed(uint8_t c) {
        if (have_ == 0) {
            if (c < 0x80) return true;
            if ((c & 0xE0) == 0xC0)
                need_ = 2;
            else if ((c & 0xF0) == 0xE0)
                need_ = 3;
            else if ((c & 0xF8) == 0xF0)
                need_ = 4;
            else
                return false;  // a continuation byte, or F8-FF
        } else if ((c & 0xC0) != 0x80) {
            return false;
        }
        seq_[have_++] = c;
        static const uint8_t lead_bits[5] = {0, 0, 0x1F, 0x0F, 0x07};
        uint32_t lo = seq_[0] & lead_bits[need_], hi = lo;
        for (int i = 1; i < need_; i++) {
            lo = (lo << 6) | (i < have_ ? (seq_[i] & 0x3F) : 0x00);
            hi = (hi << 6) | (i < have_ ? (seq_[i] & 0x3F) : 0x3F);
        }
        static const uint32_t shortest[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (lo < shortest[need_]) lo = shortest[need_];
        if (hi > 0x10FFFF) hi = 0x10FFFF;
        if (lo > hi) return false;
        if (lo >= 0xD800 && hi <= 0xDFFF) return false;
        if (have_ == need_) have_ = 0;
        return true;
    }
    bool complete() const { return have_ == 0; }

private:
    uint8_t seq_[4] = {};
    int have_ = 0, need_ = 0;
};

inline bool ref_utf8_valid(const std::string &s) {
    RefUtf8 v;
    for (unsigned char c : s)
        if (!v.feed(c)) return false;
    return v.complete();
}

// ------------------------------------------------------------------ reference reader

inline Outcome reference_read(const uint8_t *s, size_t n, bool deflate, uint64_t max_message_bytes) {
    Outcome r;
    bool open = false;      // a data message has begun
    Event msg;              // ... and what it holds so far
    uint64_t declared = 0;  // ... its declared bytes (uncompressed)
    RefUtf8 utf8;
    size_t i = 0;
    for (;;) {
        // The header: stop quietly when the stream ends inside it.
        if (n - i < 2) break;
        const uint8_t b0 = s[i], b1 = s[i + 1];
        const bool fin = b0 & 0x80, rsv1 = b0 & 0x40, rsv23 = (b0 & 0x30) != 0, masked = b1 & 0x80;
        const int op = b0 & 0x0F;
        const bool control = op >= 8;
        size_t hl = 2;
        if ((b1 & 0x7F) == 126) hl += 2;
        if ((b1 & 0x7F) == 127) hl += 8;
        if (masked) hl += 4;
        if (n - i < hl) break;
        uint64_t len = b1 & 0x7F;
        if (len == 126) {
            len = (uint64_t(s[i + 2]) << 8) | s[i + 3];
        } else if (len == 127) {
            len = 0;
            for (int k = 0; k < 8; k++) len = (len << 8) | s[i + 2 + k];
        }
        const uint8_t *key = masked ? s + i + hl - 4 : nullptr;

        ReadError e = ReadError::None;
        if (rsv23) e = ReadError::Protocol;
        else if (!masked) e = ReadError::Protocol;
        else if (!(op == 0 || op == 1 || op == 2 || op == 8 || op == 9 || op == 10)) e = ReadError::Protocol;
        else if (len >= (uint64_t(1) << 63)) e = ReadError::Protocol;
        else if (control && !fin) e = ReadError::Protocol;
        else if (control && len > 125) e = ReadError::Protocol;
        else if (control && rsv1) e = deflate ? ReadError::BadCompression : ReadError::Protocol;
        else if (op == 0 && !open) e = ReadError::Protocol;
        else if (op == 0 && rsv1) e = deflate ? ReadError::BadCompression : ReadError::Protocol;
        else if (op != 0 && !control && open) e = ReadError::Protocol;
        else if (op != 0 && !control && rsv1 && !deflate) e = ReadError::Protocol;
        if (e == ReadError::None && !control) {
            if (op != 0) {
                open = true;
                msg = Event();
                msg.binary = op == 2;
                msg.compressed = rsv1;
                declared = 0;
                utf8 = RefUtf8();
            }
            if (!msg.compressed) {
                declared += len;  // cannot wrap: each len < 2^63
                if (declared > max_message_bytes || declared < len) e = ReadError::TooBig;
            }
        }
        if (e != ReadError::None) {
            r.error = e;
            break;
        }
        i += hl;

        // The payload, one byte at a time.
        std::string payload;
        const bool check_text = !control && !msg.binary && !msg.compressed;
        uint64_t k = 0;
        for (; k < len && i < n; k++, i++) {
            const uint8_t c = static_cast<uint8_t>(s[i] ^ key[k % 4]);
            if (check_text && !utf8.feed(c)) {
                r.error = ReadError::InvalidUtf8;
                break;
            }
            payload.push_back(static_cast<char>(c));
        }
        if (r.error != ReadError::None || k < len) break;

        if (!control) {
            msg.frames.push_back(len);
            msg.payload += payload;
            if (fin) {
                if (check_text && !utf8.complete()) {
                    r.error = ReadError::InvalidUtf8;
                    break;
                }
                r.events.push_back(msg);
                open = false;
            }
        } else if (op == 9 || op == 10) {
            Event c;
            c.kind = op == 9 ? Event::Ping : Event::Pong;
            c.payload = payload;
            r.events.push_back(c);
        } else {
            Event c;
            c.kind = Event::Close;
            if (payload.empty()) {
                c.code = 1005;
            } else if (payload.size() == 1) {
                r.error = ReadError::Protocol;
                break;
            } else {
                c.code = (static_cast<uint8_t>(payload[0]) << 8) | static_cast<uint8_t>(payload[1]);
                const bool allowed = (c.code >= 1000 && c.code <= 1003) || (c.code >= 1007 && c.code <= 1014) ||
                                     (c.code >= 3000 && c.code <= 4999);
                if (!allowed) {
                    r.error = ReadError::Protocol;
                    break;
                }
                c.payload = payload.substr(2);
                if (!ref_utf8_valid(c.payload)) {
                    r.error = ReadError::InvalidUtf8;
                    break;
                }
            }
            r.events.push_back(c);
            r.closed = true;
            break;
        }
    }
    r.in_message = open;
    r.consumed = r.closed ? i : n;
    return r;
}

inline Outcome reference_read(const Bytes &s, bool deflate = false, uint64_t max_message_bytes = UINT64_MAX) {
    return reference_read(s.data(), s.size(), deflate, max_message_bytes);
}

}  // namespace wsgate_test
