// permessage-deflate (RFC 7692): negotiation, the bounded inflater for what
// clients send and the compressor for what the server sends. Pure code, no
// I/O. (libwebsockets' own permessage-deflate is not used: 4.1.6 asserts on
// some valid inbound messages and inflates a whole bomb past the limit.)
#pragma once

#include <zlib.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/frame.h"

namespace wsgate {

// What the server may promise when it accepts permessage-deflate.
struct PmdPolicy {
    // Ask clients to reset their compressor per message (RFC 7692 7.1.1.2
    // allows it even when they did not offer it): their messages then
    // inflate through one shared inflater, with no zlib state kept per
    // connection (a browser keeping its context costs about 40 KiB).
    bool ask_client_no_context_takeover = true;
};

// The outcome of negotiating permessage-deflate with one client.
struct PmdAgreement {
    bool accepted = false;
    bool client_no_context_takeover = false;  // the client resets its compressor per message
    int server_window_bits = 15;              // our LZ77 window (server_max_window_bits)
    std::string response;                     // the Sec-WebSocket-Extensions answer
};

// Picks from the client's Sec-WebSocket-Extensions value (repeated headers
// joined with ", ") the first permessage-deflate offer whose every parameter
// can be honoured (RFC 7692 7.1): server_no_context_takeover (always true
// for us), client_no_context_takeover, server_max_window_bits 9..15,
// client_max_window_bits. An offer with an unknown, repeated or malformed
// parameter, or asking for an 8-bit window (zlib cannot make one), is
// declined: that client gets an uncompressed connection, never a broken one.
PmdAgreement pmd_negotiate(std::string_view header, const PmdPolicy &policy);

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
    // window_bits: 9..15, what the client allows (server_max_window_bits).
    Deflater(int level, int window_bits) : level_(level), window_bits_(window_bits) {}
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
    int window_bits_;
    z_stream zs_{};
    bool init_ = false;
    std::vector<uint8_t> out_;
    size_t out_len_ = 0;
};

}  // namespace wsgate
