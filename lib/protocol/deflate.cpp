#include "protocol/deflate.h"

#include <cstring>
#include <new>

#include "base/text.h"


namespace wsgate {
namespace {

constexpr std::string_view kName = "permessage-deflate";

bool is_token(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s)
        if (!is_tchar(c)) return false;
    return true;
}

// A window size parameter value: 8..15, plain or quoted, no leading zero;
// 0 when malformed.
int window_bits(std::string_view v) {
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
    if (v.empty() || v.size() > 2 || v[0] == '0') return 0;
    int n = 0;
    for (char c : v) {
        if (c < '0' || c > '9') return 0;
        n = n * 10 + (c - '0');
    }
    return n >= 8 && n <= 15 ? n : 0;
}

// Splits at `sep` outside double quotes.
std::vector<std::string_view> split_outside_quotes(std::string_view s, char sep) {
    std::vector<std::string_view> out;
    bool quoted = false;
    size_t start = 0;
    for (size_t i = 0; i <= s.size(); i++) {
        if (i < s.size() && s[i] == '"') quoted = !quoted;
        if (i == s.size() || (s[i] == sep && !quoted)) {
            out.push_back(s.substr(start, i - start));
            start = i + 1;
        }
    }
    return out;
}

// Judges one offer (its parameters, after the name). True when every
// parameter can be honoured; fills *out with what the answer promises.
bool acceptable(const std::vector<std::string_view> &params, const PmdPolicy &policy, PmdAgreement *out) {
    bool seen[4] = {false, false, false, false};
    PmdAgreement a;
    a.client_no_context_takeover = policy.ask_client_no_context_takeover;
    for (size_t i = 1; i < params.size(); i++) {
        std::string_view param = trim_ows(params[i]);
        size_t eq = param.find('=');
        std::string_view name = trim_ows(param.substr(0, eq));
        bool has_value = eq != std::string_view::npos;
        std::string_view value = has_value ? trim_ows(param.substr(eq + 1)) : std::string_view();
        int slot;
        if (name == "server_no_context_takeover" && !has_value) {
            slot = 0;
        } else if (name == "client_no_context_takeover" && !has_value) {
            slot = 1;
            a.client_no_context_takeover = true;
        } else if (name == "server_max_window_bits" && has_value) {
            slot = 2;
            int bits = window_bits(value);
            // zlib cannot make an 8-bit window (it silently uses 9): an
            // offer that needs one is declined, never answered falsely.
            if (bits < 9) return false;
            a.server_window_bits = bits;
        } else if (name == "client_max_window_bits" && (!has_value || window_bits(value))) {
            slot = 3;  // the client may limit its window; we inflate any
        } else {
            return false;  // unknown or malformed
        }
        if (seen[slot]) return false;  // RFC 7692 7.1: a repeated parameter declines the offer
        seen[slot] = true;
    }
    // The answer: we never keep context ourselves (each message stands
    // alone), and say so, so the client may free its inflater between messages.
    a.response = std::string(kName) + "; server_no_context_takeover";
    if (a.client_no_context_takeover) a.response += "; client_no_context_takeover";
    if (a.server_window_bits < 15) a.response += "; server_max_window_bits=" + std::to_string(a.server_window_bits);
    a.accepted = true;
    *out = std::move(a);
    return true;
}

}  // namespace

PmdAgreement pmd_negotiate(std::string_view header, const PmdPolicy &policy) {
    for (std::string_view offer : split_outside_quotes(header, ',')) {
        std::vector<std::string_view> params = split_outside_quotes(offer, ';');
        std::string_view name = trim_ows(params[0]);
        if (name != kName || !is_token(name)) continue;
        PmdAgreement a;
        if (acceptable(params, policy, &a)) return a;
    }
    return PmdAgreement();
}

void Inflater::release() {
    if (init_) inflateEnd(&zs_);
    init_ = false;
}

void Inflater::end_message(bool keep_context) {
    // A stream the sender ended (BFINAL) cannot go on: the next message
    // starts a fresh one.
    if (!keep_context || stream_end_) release();
    stream_end_ = false;
    in_bytes_ = 0;
}

void Inflater::reset() {
    if (init_ && inflateReset(&zs_) != Z_OK) release();
    stream_end_ = false;
    in_bytes_ = 0;
}

Inflater::Result Inflater::run(int flush, std::string *out, size_t limit) {
    for (;;) {
        // One byte of room past the limit tells "too big" from "exactly full"
        // (written so that a limit of SIZE_MAX does not wrap to no room).
        // Steps sized to the input (chat messages inflate 4-10x), so a small
        // message does not zero-fill 16 KiB of string first.
        size_t room = limit - out->size();
        size_t want = zs_.avail_in > 4096 ? 16384 : zs_.avail_in < 256 ? 1024 : 4 * size_t(zs_.avail_in);
        size_t step = room < want ? room + 1 : want;
        size_t old = out->size();
        out->resize(old + step);
        zs_.next_out = reinterpret_cast<Bytef *>(&(*out)[old]);
        zs_.avail_out = static_cast<uInt>(step);
        int r = inflate(&zs_, flush);
        out->resize(old + step - zs_.avail_out);
        if (out->size() > limit) return Result::TooBig;
        if (r == Z_STREAM_END) {
            stream_end_ = true;  // whatever follows in this message is ignored
            return Result::Ok;
        }
        if (r == Z_BUF_ERROR) {
            // No progress was possible: fine once the input is all taken in.
            if (zs_.avail_in == 0) return Result::Ok;
            error_ = "DEFLATE data stalled";
            return Result::Corrupt;
        }
        if (r != Z_OK) {
            error_ = zs_.msg ? zs_.msg : "invalid DEFLATE data";
            return Result::Corrupt;
        }
        if (zs_.avail_in == 0 && zs_.avail_out != 0) return Result::Ok;  // all taken in and out
    }
}

Inflater::Result Inflater::feed(const uint8_t *in, size_t len, bool last, std::string *out,
                                size_t limit) {
    if (!init_) {
        zs_ = z_stream{};
        if (inflateInit2(&zs_, -15) != Z_OK) {
            error_ = "out of memory for the inflater";
            return Result::Corrupt;
        }
        init_ = true;
    }
    if (stream_end_) return Result::Ok;
    in_bytes_ += len;
    if (last && in_bytes_ == 0) {
        // Even an empty message compresses to one byte; none at all would
        // leave the inflater inside a block for the next message.
        error_ = "empty compressed message";
        return Result::Corrupt;
    }
    zs_.next_in = const_cast<Bytef *>(in);
    zs_.avail_in = static_cast<uInt>(len);
    Result r = len ? run(Z_NO_FLUSH, out, limit) : Result::Ok;
    if (r != Result::Ok || !last || stream_end_) return r;
    // RFC 7692 7.2.2: the sender left out the sync flush's 00 00 ff ff.
    static const uint8_t kTail[4] = {0x00, 0x00, 0xff, 0xff};
    zs_.next_in = const_cast<Bytef *>(kTail);
    zs_.avail_in = 4;
    return run(Z_SYNC_FLUSH, out, limit);
}

Deflater::~Deflater() {
    if (init_) deflateEnd(&zs_);
}

bool Deflater::deflate_all(const FrameList &plain, size_t payload) {
    if (!init_) {
        // Raw deflate (negative window bits) with the window the client
        // allows (server_max_window_bits; 15 by default). memLevel 4:
        // deflateReset clears the hash table before every message; a
        // 2,048-entry table (4 KiB) instead of zlib's default 32,768 (64 KiB)
        // saves about 0.4 us of a small message's 2.8 us, for about 2 % more
        // output on large messages (bench/RESULTS.md, "Compression").
        if (deflateInit2(&zs_, level_, Z_DEFLATED, -window_bits_, 4, Z_DEFAULT_STRATEGY) != Z_OK) return false;
        init_ = true;
    } else if (deflateReset(&zs_) != Z_OK) {
        return false;
    }
    // Room for the whole message plus the sync-flush marker: deflate never
    // needs more than deflateBound (computed for Z_FINISH) plus a few bytes.
    out_.resize(deflateBound(&zs_, static_cast<uLong>(payload)) + 16);
    zs_.next_out = out_.data();
    zs_.avail_out = static_cast<uInt>(out_.size());
    for (size_t i = 0; i < plain.size(); i++) {
        Frame *f = plain[i].get();
        zs_.next_in = f->data() + (f->size() - f->payload());
        zs_.avail_in = static_cast<uInt>(f->payload());
        int flush = i + 1 == plain.size() ? Z_SYNC_FLUSH : Z_NO_FLUSH;
        if (deflate(&zs_, flush) != Z_OK || zs_.avail_in != 0) return false;
    }
    out_len_ = out_.size() - zs_.avail_out;
    // RFC 7692 7.2.1: the sync flush ends with 00 00 ff ff, which is left out.
    static const uint8_t kTail[4] = {0x00, 0x00, 0xff, 0xff};
    if (out_len_ < 4 || std::memcmp(out_.data() + out_len_ - 4, kTail, 4) != 0) return false;
    out_len_ -= 4;
    return true;
}

FrameList Deflater::compress(const FrameList &plain, size_t payload, size_t max_frame) noexcept {
    FrameList out;
    if (plain.empty()) return out;
    try {
        if (deflate_all(plain, payload) && out_len_ < payload) {
            int opcode = plain[0]->data()[0] & 0x0f;
            out = FrameBuilder::message(opcode, out_.data(), out_len_, max_frame, true);
        }
    } catch (const std::bad_alloc &) {
        out.clear();  // send it uncompressed
    }
    // A huge message should not pin its buffer for the server's lifetime.
    if (out_.capacity() > 256 * 1024) std::vector<uint8_t>().swap(out_);
    return out;
}

}  // namespace wsgate
