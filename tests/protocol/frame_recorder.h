// Test support: a FrameReader sink that turns the reader's callbacks back
// into whole events (tests/protocol/reference_frames.h) while checking what
// each callback promises, and a driver that feeds a stream in pieces.
// Shared by tests/protocol/test_frame_reader.cpp and tests/fuzz/fuzz_frames.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "protocol/frame_reader.h"
#include "protocol/reference_frames.h"

namespace wsgate_test {

using wsgate::proto::DataChunk;
using wsgate::proto::FrameReader;
using wsgate::proto::FrameReaderOptions;

struct Recorder {
    std::vector<Event> events;
    std::string violation;  // the first broken promise, empty if none
    // The buffer of the read in progress: data chunks must point into it.
    const uint8_t *buf_lo = nullptr, *buf_hi = nullptr;
    bool stop_each = false;  // ask the reader to stop after every callback
    bool stop = false;
    size_t chunks = 0;       // on_data calls

    bool stop_requested() const { return stop; }

    void broken(const std::string &what) {
        if (violation.empty()) violation = what;
    }

    void on_data(const uint8_t *p, size_t n, const DataChunk &c) {
        chunks++;
        if (n && (p < buf_lo || p + n > buf_hi)) broken("data chunk outside the read buffer");
        if (c.message_start == open_) broken(c.message_start ? "message_start inside a message" : "first chunk without message_start");
        if (c.message_start) {
            msg_ = Event();
            msg_.binary = c.binary;
            msg_.compressed = c.compressed;
            open_ = true;
            frame_open_ = false;
        } else if (c.binary != msg_.binary || c.compressed != msg_.compressed) {
            broken("binary/compressed changed inside a message");
        }
        if (c.frame_start == frame_open_) broken(c.frame_start ? "frame_start inside a frame" : "first chunk of a frame without frame_start");
        if (!frame_open_) {
            // This chunk begins a frame.
            msg_.frames.push_back(c.frame_length);
            frame_left_ = c.frame_length;
            frame_open_ = true;
        } else if (c.frame_length != msg_.frames.back()) {
            broken("frame_length changed inside a frame");
        }
        if (n == 0 && c.frame_length != 0) broken("empty chunk of a non-empty frame");
        if (n > frame_left_) broken("chunk runs past its frame");
        frame_left_ -= n < frame_left_ ? n : frame_left_;
        msg_.payload.append(reinterpret_cast<const char *>(p), n);
        if (frame_left_ == 0) frame_open_ = false;
        if (c.message_end) {
            if (frame_open_) broken("message_end before its frame ended");
            events.push_back(msg_);
            open_ = false;
        }
        stop = stop_each;
    }
    void on_ping(const uint8_t *p, size_t n) { control(Event::Ping, p, n, 0); }
    void on_pong(const uint8_t *p, size_t n) { control(Event::Pong, p, n, 0); }
    void on_close(int code, const uint8_t *p, size_t n) { control(Event::Close, p, n, code); }

private:
    void control(Event::Kind k, const uint8_t *p, size_t n, int code) {
        if (n > 125) broken("control payload over 125 bytes");
        if (frame_open_) broken("control frame inside a data frame");
        Event e;
        e.kind = k;
        e.code = code;
        e.payload.assign(reinterpret_cast<const char *>(p), n);
        events.push_back(e);
        stop = stop_each;
    }
    bool open_ = false, frame_open_ = false;
    uint64_t frame_left_ = 0;
    Event msg_;
};

// Feeds `stream` to a fresh reader in pieces ending at `cuts` (ascending
// offsets; the last piece runs to the end), each piece in its own buffer of
// exactly its size (so the sanitizer sees any read past it). stop_each:
// the sink stops the reader after every callback and the driver resumes
// with the rest of the piece. After the reader closed or failed, the
// remaining pieces are still offered and must consume nothing.
// relay: between pieces the reader moves into a new object, and one at rest
// is swapped for a new reader, as a connection that keeps a reader only
// while something is pending does (core/inbox.cpp).
inline Outcome read_pieces(const Bytes &stream, const std::vector<size_t> &cuts, const FrameReaderOptions &opt,
                           std::string *violation, bool stop_each = false, bool relay = false) {
    FrameReader reader;
    Recorder rec;
    rec.stop_each = stop_each;
    Outcome out;
    size_t from = 0;
    for (size_t k = 0; k <= cuts.size(); k++) {
        if (relay) {
            if (reader.at_rest()) {
                reader = FrameReader();
            } else {
                FrameReader moved(std::move(reader));
                if (!reader.at_rest()) rec.broken("a moved-from reader is not like a new one");
                reader = std::move(moved);
            }
        }
        const size_t to = k < cuts.size() ? cuts[k] : stream.size();
        Bytes piece(stream.begin() + static_cast<std::ptrdiff_t>(from), stream.begin() + static_cast<std::ptrdiff_t>(to));
        from = to;
        const bool done_before = reader.closed() || reader.error() != ReadError::None;
        size_t off = 0;
        for (;;) {
            rec.buf_lo = piece.data();
            rec.buf_hi = piece.data() + piece.size();
            rec.stop = false;
            const size_t events_before = rec.events.size() + rec.chunks;
            const size_t used = reader.read(piece.data() + off, piece.size() - off, opt, rec);
            if (used > piece.size() - off) rec.broken("consumed more than offered");
            if (done_before && (used != 0 || rec.events.size() + rec.chunks != events_before))
                rec.broken("read after a close or an error consumed bytes or produced events");
            off += used;
            out.consumed += used;
            const bool done = reader.closed() || reader.error() != ReadError::None;
            if (!done && !rec.stop && off != piece.size()) rec.broken("stopped early with no reason");
            if (rec.stop && !done && off < piece.size()) continue;  // resume after a requested stop
            break;
        }
    }
    out.events = rec.events;
    out.error = reader.error();
    out.closed = reader.closed();
    out.in_message = reader.in_message();
    if (out.error != ReadError::None && reader.error_reason()[0] == '\0') rec.broken("error without a reason");
    if (out.error == ReadError::None && reader.error_reason()[0] != '\0') rec.broken("a reason without an error");
    if (violation) *violation = rec.violation;
    return out;
}

inline Outcome read_whole(const Bytes &stream, const FrameReaderOptions &opt, std::string *violation) {
    return read_pieces(stream, {}, opt, violation);
}

}  // namespace wsgate_test
