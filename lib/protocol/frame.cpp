#include "protocol/frame.h"

#include <cstring>
#include <stdexcept>

namespace wsgate {

Frame *Frame::create(size_t len) {
    void *mem = std::malloc(sizeof(Frame) + len);
    if (!mem) throw std::bad_alloc();
    Frame *f = new (mem) Frame();
    f->len_ = static_cast<uint32_t>(len);
    return f;
}

// first_byte_flags: the opcode, plus RSV1 (0x40) on a compressed message's first frame.
FrameRef FrameBuilder::one(int first_byte_flags, bool fin, const uint8_t *p, size_t len) {
    size_t hdr = header_size(len);
    FrameRef f(Frame::create(hdr + len));
    f.get()->payload_ = static_cast<uint32_t>(len);
    uint8_t *d = f->data();
    d[0] = static_cast<uint8_t>((fin ? 0x80 : 0) | (first_byte_flags & 0x4f));
    if (len < 126) {
        d[1] = static_cast<uint8_t>(len);
    } else if (len <= 0xffff) {
        d[1] = 126;
        d[2] = static_cast<uint8_t>(len >> 8);
        d[3] = static_cast<uint8_t>(len);
    } else {
        d[1] = 127;
        for (int i = 0; i < 8; i++) d[2 + i] = static_cast<uint8_t>(uint64_t(len) >> (56 - 8 * i));
    }
    if (len) std::memcpy(d + hdr, p, len);
    return f;
}

FrameRef FrameBuilder::control(int opcode, const void *payload, size_t len) {
    if (len > 125) len = 125;
    return one(opcode & 0x0f, true, static_cast<const uint8_t *>(payload), len);
}

FrameRef FrameBuilder::close(int code, const std::string &reason) {
    uint8_t p[125];
    if (code == 0) return control(0x8, nullptr, 0);
    p[0] = static_cast<uint8_t>(code >> 8);
    p[1] = static_cast<uint8_t>(code);
    size_t n = reason.size() < 123 ? reason.size() : 123;
    // Never cut inside a UTF-8 sequence: back up over continuation bytes.
    if (n < reason.size())
        while (n > 0 && (static_cast<uint8_t>(reason[n]) & 0xC0) == 0x80) n--;
    std::memcpy(p + 2, reason.data(), n);
    return control(0x8, p, n + 2);
}

FrameList FrameBuilder::message(int opcode, const void *data, size_t len, size_t max_frame,
                                bool compressed) {
    const int first = (opcode & 0x0f) | (compressed ? 0x40 : 0);
    const uint8_t *p = static_cast<const uint8_t *>(data);
    FrameList out;
    // The write batch is at least 1 KiB (option range); below 16 bytes a
    // fragment could not hold its own header.
    if (max_frame < 16) throw std::logic_error("frame limit below 16 bytes");
    // Payload per fragment such that header + payload <= max_frame.
    size_t chunk = max_frame - header_size(max_frame);
    if (len <= chunk) {
        out.push_back(one(first, true, p, len));
        return out;
    }
    out.reserve(len / chunk + 1);
    size_t off = 0;
    while (off < len) {
        size_t n = len - off < chunk ? len - off : chunk;
        out.push_back(one(off == 0 ? first : 0, off + n == len, p + off, n));
        off += n;
    }
    return out;
}

}  // namespace wsgate
