#include "protocol/frame_reader.h"

#include <algorithm>

namespace wsgate::proto {

int close_code_for(ReadError e) {
    switch (e) {
    case ReadError::None: return 0;
    case ReadError::Protocol: return 1002;
    case ReadError::InvalidUtf8: return 1007;
    case ReadError::TooBig: return 1009;
    case ReadError::BadCompression: return 1007;
    }
    return 1002;
}

ReadError FrameReader::kind_of(Fault f) {
    switch (f) {
    case Fault::None: return ReadError::None;
#define WSGATE_FRAME_FAULT_KIND(name, kind, text) \
    case Fault::name: return ReadError::kind;
        WSGATE_FRAME_FAULTS(WSGATE_FRAME_FAULT_KIND)
#undef WSGATE_FRAME_FAULT_KIND
    }
    return ReadError::Protocol;
}

const char *FrameReader::fault_str(Fault f) {
    switch (f) {
    case Fault::None: return "";
#define WSGATE_FRAME_FAULT_TEXT(name, kind, text) \
    case Fault::name: return text;
        WSGATE_FRAME_FAULTS(WSGATE_FRAME_FAULT_TEXT)
#undef WSGATE_FRAME_FAULT_TEXT
    }
    return "invalid frame";
}

const char *FrameReader::error_reason() const { return fault_str(fault_); }

// A header split across reads: the first two bytes tell how long it is.
bool FrameReader::gather_header(const uint8_t *p, size_t n, size_t *used) {
    size_t have = hdr_len_, i = 0;
    while (have < 2 && i < n) hdr_[have++] = p[i++];
    bool whole = false;
    if (have >= 2) {
        const size_t need = header_size(hdr_[1]);
        const size_t k = std::min(need - have, n - i);
        std::memcpy(hdr_ + have, p + i, k);
        have += k;
        i += k;
        whole = have == need;
    }
    hdr_len_ = whole ? 0 : static_cast<uint8_t>(have);
    *used = i;
    return whole;
}

uint8_t *FrameReader::control_buffer(size_t len) { return new uint8_t[len]; }

void FrameReader::release_control() {
    if ((frame_ & kInPayload) && (frame_ & kControl)) {
        delete[] pl_.u.ctrl;
        pl_.u.ctrl = nullptr;
    }
}

// RFC 6455 7.4.1/7.4.2: codes a peer may send. 1004-1006 and 1015 are
// reserved or only reported locally, 1016-2999 are unassigned (IANA), 3000-
// 4999 belong to libraries and applications.
static bool wire_close_code(int code) {
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

FrameReader::Fault FrameReader::check_close(const uint8_t *p, size_t n) const {
    if (n == 0) return Fault::None;  // no status code: valid, reported as 1005
    if (n == 1) return Fault::CloseOneByte;
    if (!wire_close_code((p[0] << 8) | p[1])) return Fault::CloseCode;
    Utf8Validator v;
    if (!(v.feed(p + 2, n - 2) && v.complete())) return Fault::CloseReasonUtf8;
    return Fault::None;
}

}  // namespace wsgate::proto
