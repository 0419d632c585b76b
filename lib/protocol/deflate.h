// permessage-deflate (RFC 7692). lws negotiates the extension through a
// small extension of ours (lws only lets RSV1 through when an extension is
// active); wsgate inflates what clients send and compresses what it sends
// itself. lws' own permessage-deflate is not used: its coalesced-write
// bypass aside, 4.1.6 asserts (aborts the process) on some valid inbound
// messages and inflates a whole compression bomb after the limit is hit.
#pragma once

#include <zlib.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/frame.h"

struct lws;
struct lws_extension;

namespace wsgate {

// lws 4.1.6 drops the TCP connection without a word when the request's
// Sec-WebSocket-Extensions value is this long or longer (whatever is enabled).
constexpr size_t kMaxExtensionsHeader = 255;

// The extension table for lws_context_creation_info.extensions.
const struct lws_extension *pmd_extensions();

// The permessage-deflate offer the server accepts.
struct PmdOffer {
    int index = -1;  // among the offers naming permessage-deflate, as lws walks them; -1: none
    bool client_no_context_takeover = false;  // the client resets its compressor per message
};

// Picks from the client's Sec-WebSocket-Extensions value the first offer
// whose every parameter can be honoured with the response lws writes: lws
// echoes only server_no_context_takeover and client_no_context_takeover, so
// an offer asking for server_max_window_bits is declined (the client then
// gets an uncompressed connection, never a broken one).
PmdOffer pmd_pick_offer(std::string_view header);

// True when permessage-deflate is active on the connection.
bool pmd_active(struct lws *wsi);

// One connection's decompressor for RFC 7692 messages (raw DEFLATE, 32 KiB
// window). Its zlib state exists only while needed: from the first
// compressed message, and between messages only when the client keeps its
// compression context.
class Inflater {
public:
    enum class Result { Ok, TooBig, Corrupt };
    Inflater() = default;
    ~Inflater() { release(); }
    Inflater(const Inflater &) = delete;
    Inflater &operator=(const Inflater &) = delete;

    // Appends to *out what `len` bytes of the message inflate to; with
    // `last` (the message's final bytes) also the 00 00 ff ff tail the
    // sender stripped. TooBig as soon as *out would pass `limit` (no more is
    // inflated: a compression bomb costs at most the limit).
    Result feed(const uint8_t *in, size_t len, bool last, std::string *out, size_t limit);
    // After each message: keep the window for the next one, or free it.
    void end_message(bool keep_context);
    // Ready for an unrelated stream, keeping the memory (a shared inflater).
    void reset();
    // zlib's message for the last Corrupt.
    const char *error() const { return error_; }

private:
    Result run(int flush, std::string *out, size_t limit);
    void release();

    z_stream zs_{};
    bool init_ = false;
    bool stream_end_ = false;  // the sender closed the DEFLATE stream (BFINAL)
    size_t in_bytes_ = 0;      // compressed bytes of the current message
    const char *error_ = "";
};

// The server's compressor: one per service thread, reset for every message
// (no context takeover on the server side, which RFC 7692 always allows), so
// it costs nothing per connection and one compressed copy of a broadcast
// serves every recipient that negotiated the extension.
class Deflater {
public:
    explicit Deflater(int level) : level_(level) {}
    ~Deflater();
    Deflater(const Deflater &) = delete;
    Deflater &operator=(const Deflater &) = delete;

    // The message carried by `plain` (frames as FrameBuilder::message made
    // them, `payload` bytes in all) compressed and framed with RSV1, split at
    // max_frame like any message. Empty when compressing would not make it
    // smaller or zlib failed: the caller sends `plain` then.
    FrameList compress(const FrameList &plain, size_t payload, size_t max_frame) noexcept;

private:
    bool deflate_all(const FrameList &plain, size_t payload);

    int level_;
    z_stream zs_{};
    bool init_ = false;
    std::vector<uint8_t> out_;
    size_t out_len_ = 0;
};

}  // namespace wsgate
