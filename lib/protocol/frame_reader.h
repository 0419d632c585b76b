// Inbound RFC 6455 frames, read straight out of the transport's read buffer.
//
// The raw-skt transport hands each read (up to 64 KiB) in a buffer the
// callback may modify. FrameReader unmasks payload in place and hands it to a
// sink as pointers into that buffer, so no connection keeps a receive buffer:
// between reads it holds at most a partial frame header (14 bytes, inline)
// and, while a control frame is split across reads, its payload so far
// (<= 125 bytes, on the heap only until the frame is whole).
//
// It enforces what a server must refuse (RFC 6455 5.1-5.7, 7.4, 8.1; RFC 7692
// section 6) and leaves to the caller what needs more than the wire: the
// close handshake, inflating compressed messages (and their size limit and
// UTF-8 check), reassembly. Pure code, no I/O; single-threaded like the
// connection that owns it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "protocol/utf8.h"

namespace wsgate::proto {

// How a stream was refused, i.e. which close code the server answers with.
enum class ReadError : uint8_t {
    None,
    Protocol,        // 1002
    InvalidUtf8,     // 1007
    TooBig,          // 1009
    BadCompression,  // 1007: RSV1 where permessage-deflate does not allow it
};

// The close code for a refusal (0 for None).
int close_code_for(ReadError e);

// Every rule the reader enforces, in the order it checks a frame, with the
// refusal it earns and the short text for the close reason and the log
// (each fits a close frame's 123 bytes).
//
// Header rules, checked once the whole header is in (2 to 14 bytes):
//   RSV2/RSV3, mask bit, opcode, 64-bit length, then for a control frame
//   FIN, length and RSV1, for a data frame the message sequence, RSV1 and
//   the size limit. Non-minimal length encodings (e.g. 5 in the 16-bit
//   form) are accepted: RFC 6455 5.2 puts "minimal" on the sender, it costs
//   the server nothing, and Go's gorilla/websocket and Python's websockets
//   accept them too. The length decoded is what every other rule sees (a
//   control frame of 5 bytes in the 16-bit form is fine).
// Payload rules, checked as the bytes arrive: UTF-8 of uncompressed text,
// as soon as no continuation could make it valid and at the message's end;
// a close frame's payload once it is whole.
#define WSGATE_FRAME_FAULTS(X)                                                          \
    X(ReservedBits, Protocol, "reserved bits RSV2/RSV3 set")                             \
    X(Unmasked, Protocol, "client frame not masked")                                     \
    X(ReservedOpcode, Protocol, "reserved opcode")                                       \
    X(LengthTopBit, Protocol, "64-bit payload length with the top bit set")              \
    X(ControlFragmented, Protocol, "fragmented control frame")                           \
    X(ControlTooLong, Protocol, "control frame payload over 125 bytes")                  \
    X(Rsv1OnControl, BadCompression, "RSV1 on a control frame")                          \
    X(ContinuationUnexpected, Protocol, "continuation frame with no message open")       \
    X(MessageUnfinished, Protocol, "new data frame before the open message ended")       \
    X(Rsv1NotNegotiated, Protocol, "RSV1 set but permessage-deflate was not negotiated") \
    X(Rsv1OnContinuation, BadCompression, "RSV1 on a continuation frame")                \
    X(TooBig, TooBig, "message too big")                                                 \
    X(BadUtf8, InvalidUtf8, "invalid UTF-8 in a text message")                           \
    X(Utf8Unfinished, InvalidUtf8, "text message ends inside a UTF-8 sequence")          \
    X(CloseOneByte, Protocol, "close frame with a 1-byte payload")                       \
    X(CloseCode, Protocol, "close code not allowed on the wire")                         \
    X(CloseReasonUtf8, InvalidUtf8, "close reason is not valid UTF-8")

// What the sink gets with each piece of a data message.
struct DataChunk {
    bool binary;            // message type, from its first frame
    bool compressed;        // RSV1 on the message's first frame (permessage-deflate)
    bool message_start;     // first chunk of the message
    bool message_end;       // last chunk of the message (its FIN frame fully read)
    uint64_t frame_length;  // declared payload length of the frame this chunk belongs to
    bool frame_start;       // first chunk of its frame (one per frame: a frame-rate limit counts these)
};

// Per connection, passed with each read so the reader need not store them.
struct FrameReaderOptions {
    bool deflate = false;                   // permessage-deflate negotiated: RSV1 allowed on a message's first frame
    uint64_t max_message_bytes = UINT64_MAX;  // uncompressed messages only; 0 refuses any non-empty message
};

class FrameReader {
public:
    enum class Fault : uint8_t {
        None,
#define WSGATE_FRAME_FAULT_ENUM(name, kind, text) name,
        WSGATE_FRAME_FAULTS(WSGATE_FRAME_FAULT_ENUM)
#undef WSGATE_FRAME_FAULT_ENUM
    };

    FrameReader() = default;
    ~FrameReader() { release_control(); }
    // It may own a heap buffer: not copied. Moving hands the state over, a
    // control payload buffer included; the source is left as a new reader.
    FrameReader(const FrameReader &) = delete;
    FrameReader &operator=(const FrameReader &) = delete;
    FrameReader(FrameReader &&o) noexcept { take(o); }
    FrameReader &operator=(FrameReader &&o) noexcept {
        if (this != &o) {
            release_control();
            take(o);
        }
        return *this;
    }
    // Nothing is pending between reads (no partial header, frame or
    // message, no fault, no close): the reader then behaves exactly as a new
    // one, so a connection need not keep it (see core/inbox.cpp).
    bool at_rest() const {
        return hdr_len_ == 0 && !(frame_ & kInPayload) && !(msg_ & kMsgOpen) && !closed_ &&
               fault_ == Fault::None;
    }

    // Parses buf[0..n): unmasks payload in place and calls the sink with
    // pointers into buf (valid until the sink returns; on_ping/on_pong/
    // on_close may instead point into the reader's own buffer when the
    // control frame was split across reads). The sink provides
    //   void on_data(const uint8_t *p, size_t n, const DataChunk &c);
    //       n is 0 exactly for an empty frame, which still gets one call;
    //       a non-empty frame comes in one or more chunks with n > 0.
    //   void on_ping(const uint8_t *p, size_t n);
    //   void on_pong(const uint8_t *p, size_t n);
    //   void on_close(int code, const uint8_t *reason, size_t n);
    //       code 1005 when the close frame has no payload; code and reason
    //       are already checked (RFC 6455 7.4, 8.1).
    //   bool stop_requested() const;  (optional) checked after each call
    //       above: when true, read() returns at once; the bytes not consumed
    //       are untouched and may be passed to read() again later.
    // Returns the bytes consumed: n, unless the sink asked to stop, a close
    // frame was read (it returns the offset just past it; later reads
    // consume nothing), or the stream was refused (error() tells; later
    // reads consume nothing). Data rejected for UTF-8 is never handed over.
    // Throws std::bad_alloc only if the <= 125-byte buffer for a control
    // frame split across reads cannot be allocated.
    template <class Sink>
    size_t read(uint8_t *buf, size_t n, const FrameReaderOptions &opt, Sink &sink);

    ReadError error() const { return fault_ == Fault::None ? ReadError::None : kind_of(fault_); }
    Fault fault() const { return fault_; }
    // Short text for the close reason and the log ("" when no error).
    const char *error_reason() const;
    bool closed() const { return closed_; }
    // The status code of the peer's close frame once one was read, whether
    // accepted or refused: 1005 when it had none, 0 for a 1-byte payload or
    // no close frame yet.
    int peer_close_code() const { return peer_close_code_; }
    // A data message has begun (its first frame header was read) and its
    // final frame has not been fully read.
    bool in_message() const { return msg_ & kMsgOpen; }

    static ReadError kind_of(Fault f);
    static const char *fault_str(Fault f);

private:
    static size_t header_size(uint8_t b1) {
        const unsigned len7 = b1 & 0x7f;
        return 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((b1 & 0x80) ? 4 : 0);
    }
    bool gather_header(const uint8_t *p, size_t n, size_t *used);
    inline bool begin_frame(const uint8_t *h, const FrameReaderOptions &opt);
    uint8_t *control_buffer(size_t len);
    void release_control();
    void take(FrameReader &o) {
        remaining_ = o.remaining_;
        message_bytes_ = o.message_bytes_;
        std::memcpy(static_cast<void *>(this->hdr_), static_cast<const void *>(o.hdr_),
                    sizeof pl_ > sizeof hdr_ ? sizeof pl_ : sizeof hdr_);
        hdr_len_ = o.hdr_len_;
        frame_ = o.frame_;
        msg_ = o.msg_;
        closed_ = o.closed_;
        peer_close_code_ = o.peer_close_code_;
        fault_ = o.fault_;
        utf8_ = o.utf8_;
        o.frame_ = 0;  // the control buffer, if any, is ours now
        o.hdr_len_ = 0;
        o.msg_ = 0;
        o.closed_ = false;
        o.peer_close_code_ = 0;
        o.fault_ = Fault::None;
    }
    Fault check_close(const uint8_t *p, size_t n) const;
    template <class Sink>
    bool control_frame(uint8_t *p, size_t n, Sink &sink);

    struct Payload {
        union {
            uint64_t frame_length;  // data frame: its declared length
            uint8_t *ctrl;          // control frame split across reads: its payload so far, else null
        } u;
        uint32_t mask;  // masking key rotated to the next payload byte, in memory order
    };

    uint64_t remaining_ = 0;      // payload bytes of the current frame still to come
    uint64_t message_bytes_ = 0;  // declared payload so far of the open uncompressed message
    union {
        uint8_t hdr_[14] = {};  // between frames: a header split across reads
        Payload pl_;            // inside a frame's payload
    };
    uint8_t hdr_len_ = 0;  // between frames: bytes in hdr_; control payload: bytes in pl_.u.ctrl
    // Flags packed by what is written together, one byte each: a flag
    // written as a byte and read back as a wider word (as bit-fields allow)
    // stalls store forwarding, which cost 60 % of a 64-byte message.
    enum : uint8_t { kOpcode = 0x0f, kControl = 0x08, kFin = 0x10, kInPayload = 0x20 };  // frame_
    enum : uint8_t { kMsgOpen = 1, kMsgBinary = 2, kMsgCompressed = 4, kMsgStart = 8 };  // msg_
    uint8_t frame_ = 0;  // the current frame: opcode, FIN, and whether its payload is being read
    uint8_t msg_ = 0;    // the current data message
    bool closed_ = false;
    uint16_t peer_close_code_ = 0;
    Fault fault_ = Fault::None;
    Utf8Validator utf8_;  // the open uncompressed text message
};

namespace detail {

template <class S, class = void>
struct has_stop : std::false_type {};
template <class S>
struct has_stop<S, std::void_t<decltype(std::declval<const S &>().stop_requested())>> : std::true_type {};

template <class S>
inline bool stop_requested(const S &s) {
    if constexpr (has_stop<S>::value)
        return s.stop_requested();
    else
        return false;
}

// The masking key advanced by k payload bytes. The key is kept as its four
// bytes in memory order, so on a little-endian machine the next byte's key
// is the low byte: advancing is a right rotation.
inline uint32_t advance_mask(uint32_t m, uint64_t k) {
    const unsigned s = static_cast<unsigned>(k & 3) * 8;
    if (s == 0) return m;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return (m >> s) | (m << (32 - s));
#else
    return (m << s) | (m >> (32 - s));
#endif
}

// XORs p[0..n) with the key m (rotated to p[0]), eight bytes at a time: a
// WebSocket payload is unmasked at memory speed, whatever its alignment.
// With Ascii it also returns the OR of the unmasked bytes (0x80 set when
// any byte is not ASCII), so text that is plain ASCII is validated in the
// same pass.
template <bool Ascii>
inline uint8_t unmask(uint8_t *p, size_t n, uint32_t m) {
    uint8_t k[8];
    std::memcpy(k, &m, 4);
    std::memcpy(k + 4, &m, 4);
    uint64_t k64;
    std::memcpy(&k64, k, 8);
    uint64_t seen = 0;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        uint64_t w[4];
        std::memcpy(w, p + i, 32);
        w[0] ^= k64;
        w[1] ^= k64;
        w[2] ^= k64;
        w[3] ^= k64;
        std::memcpy(p + i, w, 32);
        if (Ascii) seen |= w[0] | w[1] | w[2] | w[3];
    }
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        std::memcpy(&w, p + i, 8);
        w ^= k64;
        std::memcpy(p + i, &w, 8);
        if (Ascii) seen |= w;
    }
    uint8_t tail = 0;
    for (size_t j = 0; i < n; i++, j++) {
        p[i] ^= k[j];
        if (Ascii) tail |= p[i];
    }
    if (!Ascii) return 0;
    seen &= 0x8080808080808080ull;
    return static_cast<uint8_t>(tail | (seen ? 0x80 : 0));
}

inline uint64_t load_be64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
    return v;
}

}  // namespace detail

// Checks a whole header and enters its payload. h may point into hdr_,
// which pl_ overlays: everything is read from h before pl_ is written.
inline bool FrameReader::begin_frame(const uint8_t *h, const FrameReaderOptions &opt) {
    const uint8_t b0 = h[0], b1 = h[1];
    const unsigned op = b0 & 0x0f;
    const bool rsv1 = (b0 & 0x40) != 0;
    uint64_t len = b1 & 0x7f;
    const uint8_t *key = h + 2;
    if (len == 126) {
        len = (uint64_t(h[2]) << 8) | h[3];
        key = h + 4;
    } else if (len == 127) {
        len = detail::load_be64(h + 2);
        key = h + 10;
    }
    uint32_t mask = 0;
    if (b1 & 0x80) std::memcpy(&mask, key, 4);

    Fault f = Fault::None;
    if (b0 & 0x30)
        f = Fault::ReservedBits;
    else if (!(b1 & 0x80))
        f = Fault::Unmasked;
    else if ((op > 2 && op < 8) || op > 10)
        f = Fault::ReservedOpcode;
    else if (len >> 63)
        f = Fault::LengthTopBit;
    else if (op & 8) {
        if (!(b0 & 0x80))
            f = Fault::ControlFragmented;
        else if (len > 125)
            f = Fault::ControlTooLong;
        else if (rsv1)
            f = opt.deflate ? Fault::Rsv1OnControl : Fault::Rsv1NotNegotiated;
    } else if (op == 0) {
        if (!(msg_ & kMsgOpen))
            f = Fault::ContinuationUnexpected;
        else if (rsv1)
            f = opt.deflate ? Fault::Rsv1OnContinuation : Fault::Rsv1NotNegotiated;
    } else {
        if (msg_ & kMsgOpen)
            f = Fault::MessageUnfinished;
        else if (rsv1 && !opt.deflate)
            f = Fault::Rsv1NotNegotiated;
    }
    if (f == Fault::None && !(op & 8)) {
        if (op != 0) {
            msg_ = static_cast<uint8_t>(kMsgOpen | kMsgStart | (op == 2 ? kMsgBinary : 0) |
                                        (rsv1 ? kMsgCompressed : 0));
            message_bytes_ = 0;
            utf8_.reset();
        }
        // Uncompressed: refused on the header, before any of its payload.
        // Compressed: the caller counts inflated bytes.
        if (!(msg_ & kMsgCompressed)) {
            if (len > opt.max_message_bytes - message_bytes_)
                f = Fault::TooBig;
            else
                message_bytes_ += len;
        }
    }
    if (f != Fault::None) {
        fault_ = f;
        return false;
    }
    frame_ = static_cast<uint8_t>(op | ((b0 & 0x80) ? kFin : 0) | kInPayload);
    remaining_ = len;
    hdr_len_ = 0;
    if (op & 8)
        pl_.u.ctrl = nullptr;
    else
        pl_.u.frame_length = len;
    pl_.mask = mask;
    return true;
}

// A whole control frame's payload (unmasked): checked and handed over.
// False when the stream ends here (close, or a refused close).
template <class Sink>
bool FrameReader::control_frame(uint8_t *p, size_t n, Sink &sink) {
    switch (frame_ & kOpcode) {
    case 9: sink.on_ping(p, n); return true;
    case 10: sink.on_pong(p, n); return true;
    default: break;
    }
    peer_close_code_ = static_cast<uint16_t>(n == 0 ? 1005 : n == 1 ? 0 : (p[0] << 8) | p[1]);
    if (Fault f = check_close(p, n); f != Fault::None) {
        fault_ = f;
        return false;
    }
    closed_ = 1;
    if (n == 0)
        sink.on_close(1005, p, 0);
    else
        sink.on_close((p[0] << 8) | p[1], p + 2, n - 2);
    return false;
}

template <class Sink>
size_t FrameReader::read(uint8_t *buf, size_t n, const FrameReaderOptions &opt, Sink &sink) {
    if (fault_ != Fault::None || closed_) return 0;
    size_t pos = 0;
    for (;;) {
        if (!(frame_ & kInPayload)) {
            if (pos == n) return n;
            const uint8_t *h;
            const size_t avail = n - pos;
            size_t hl = 0;
            if (hdr_len_ == 0 && avail >= 2 && avail >= (hl = header_size(buf[pos + 1]))) {
                h = buf + pos;  // the common case: the whole header is here
                pos += hl;
            } else {
                size_t used;
                const bool whole = gather_header(buf + pos, avail, &used);
                pos += used;
                if (!whole) return n;
                h = hdr_;
            }
            if (!begin_frame(h, opt)) return pos;
        }

        const uint64_t rem = remaining_;
        const size_t take = rem < n - pos ? static_cast<size_t>(rem) : n - pos;
        if (take == 0 && rem != 0) return n;  // more payload in a later read
        const bool frame_done = take == rem;
        uint8_t *p = buf + pos;

        if (frame_ & kControl) {
            // Most control frames arrive whole and are handed over in place;
            // a split one collects its payload in a small heap buffer.
            uint8_t *ctrl = pl_.u.ctrl;
            if (!ctrl && !frame_done) ctrl = pl_.u.ctrl = control_buffer(static_cast<size_t>(rem));
            detail::unmask<false>(p, take, pl_.mask);
            pos += take;
            remaining_ = rem - take;
            if (ctrl) {
                std::memcpy(ctrl + hdr_len_, p, take);
                hdr_len_ = static_cast<uint8_t>(hdr_len_ + take);
                if (!frame_done) {
                    pl_.mask = detail::advance_mask(pl_.mask, take);
                    return n;
                }
                p = ctrl;
            }
            const size_t len = ctrl ? hdr_len_ : take;
            frame_ &= static_cast<uint8_t>(~kInPayload);
            hdr_len_ = 0;
            // Freed after the sink returns, even if it throws.
            struct Release {
                uint8_t *p;
                ~Release() { delete[] p; }
            } owned{ctrl};
            if (!control_frame(p, len, sink)) return pos;
        } else {
            const uint8_t msg = msg_;
            const bool check_text = !(msg & (kMsgBinary | kMsgCompressed));
            bool ascii = false;  // and so valid UTF-8 when it starts between code points
            if (check_text)
                ascii = !(detail::unmask<true>(p, take, pl_.mask) & 0x80);
            else
                detail::unmask<false>(p, take, pl_.mask);
            pos += take;
            remaining_ = rem - take;
            if (check_text && !(ascii && utf8_.complete()) && !utf8_.feed(p, take)) {
                fault_ = Fault::BadUtf8;
                return pos;
            }
            const bool end = frame_done && (frame_ & kFin);
            if (end && check_text && !utf8_.complete()) {
                fault_ = Fault::Utf8Unfinished;
                return pos;
            }
            const DataChunk c{(msg & kMsgBinary) != 0, (msg & kMsgCompressed) != 0, (msg & kMsgStart) != 0,
                              end, pl_.u.frame_length, rem == pl_.u.frame_length};
            msg_ = end ? 0 : static_cast<uint8_t>(msg & ~kMsgStart);
            if (frame_done)
                frame_ &= static_cast<uint8_t>(~kInPayload);
            else
                pl_.mask = detail::advance_mask(pl_.mask, take);
            sink.on_data(p, take, c);
        }
        if (detail::stop_requested(sink)) return pos;
    }
}

}  // namespace wsgate::proto
