#include "core/inbox.h"

#include "base/time.h"

namespace wsgate {

// What the frame reader reports, for one read of one connection.
struct Inbox::Sink {
    Inbox &in;
    Conn *c;
    int64_t now;
    bool handshake_done = false;  // the peer's close answered ours: close the link

    void on_data(const uint8_t *p, size_t n, const proto::DataChunk &chunk) {
        if (chunk.frame_start && !in.count_frame(c, now)) return;
        in.on_data(c, p, n, chunk, now);
    }
    void on_ping(const uint8_t *p, size_t n) {
        if (in.count_frame(c, now)) in.outbox_.pong(c, p, n);
    }
    void on_pong(const uint8_t *p, size_t n) {
        if (!in.count_frame(c, now)) return;
        c->last_alive_ms = now;
        if (n != 8) return;
        uint64_t ts = 0;
        for (int i = 0; i < 8; i++) ts = (ts << 8) | p[i];
        if (ts != c->ping_payload) return;
        const int64_t rtt = mono_us() - static_cast<int64_t>(ts);
        c->rtt_us.store(rtt, std::memory_order_relaxed);
        in.metrics_.ping_rtt.observe_us(rtt);
    }
    void on_close(int code, const uint8_t *reason, size_t n) { handshake_done = !in.outbox_.peer_closed(c, code, reason, n); }
    // Input refused in this read (a flood over the frame rate...): the rest
    // of the buffer is not parsed, let alone answered.
    bool stop_requested() const { return c->refused_input; }
};

Inbox::Inbox(const Settings &cfg, Outbox &outbox, AppCallbacks &app, Logger &log, Clock &clock, Metrics &metrics)
    : cfg_(cfg), outbox_(outbox), app_(app), log_(log), clock_(clock), metrics_(metrics) {}

bool Inbox::read(Conn *c, uint8_t *data, size_t len) {
    // Input we refused ends the reading: our close frame and the end of our
    // stream are on their way; what follows is discarded unread (RFC 6455
    // 7.1.7), and the refusal is logged once.
    if (c->refused_input) return true;
    const int64_t now = clock_.now_ms();
    if (cfg_.any_frame_is_alive) c->last_alive_ms = now;
    Sink sink{*this, c, now};
    proto::FrameReaderOptions opt;
    opt.deflate = c->deflate;
    opt.max_message_bytes = cfg_.max_message_bytes;
    // A reader at rest is the same as a new one: the connection keeps its
    // reader only while something is pending between reads.
    proto::FrameReader fresh;
    proto::FrameReader &reader = c->reader ? *c->reader : fresh;
    reader.read(data, len, opt, sink);
    if (int code = reader.peer_close_code()) c->peer_close_code = static_cast<uint16_t>(code);
    switch (reader.error()) {
    case proto::ReadError::None: break;
    case proto::ReadError::TooBig: too_big(c); break;
    case proto::ReadError::BadCompression: bad_compression(c, reader.error_reason()); break;
    case proto::ReadError::InvalidUtf8: fail(c, 1007, "invalid UTF-8", WSG_CAUSE_INVALID_UTF8); break;
    case proto::ReadError::Protocol: {
        LogFields f;
        f["conn"] = c->id;
        f["message"] = reader.error_reason();
        log_.emit(LogEvent::protocol_error, f);
        fail(c, 1002, reader.error_reason(), WSG_CAUSE_PROTOCOL_ERROR);
        break;
    }
    }
    if (c->reader) {
        if (c->reader->at_rest()) c->reader.reset();
    } else if (!fresh.at_rest()) {
        c->reader = std::make_unique<proto::FrameReader>(std::move(fresh));
    }
    return !sink.handshake_done;
}

bool Inbox::count_frame(Conn *c, int64_t now) {
    if (cfg_.frame_rate.unlimited() || c->extra->frame_rate->allow(cfg_.frame_rate, now)) return true;
    if (c->closing) return false;
    metrics_.rate_limited.add(metric::RateLimit::frames);
    // Logged once: the connection reads nothing more after this.
    LogFields f;
    f["conn"] = c->id;
    f["limit"] = "limits.frames_per_s";
    f["rate"] = cfg_.frame_rate.milli() / 1000;
    f["burst"] = cfg_.frame_rate.burst();
    log_.emit(LogEvent::rate_limited, f);
    fail(c, 1008, "frame rate limit", WSG_CAUSE_RATE_LIMIT);
    return false;
}

void Inbox::fail(Conn *c, int code, const char *reason, wsg_close_cause cause) {
    if (c->extra) {
        std::string().swap(c->extra->rx);
        c->extra->inflater.reset();
        c->trim_extra();
    }
    if (!c->closing) c->refused_input = true;
    outbox_.close(c, code, reason, cause, true);
}

void Inbox::too_big(Conn *c) {
    if (c->closing) return;
    LogFields f;
    f["conn"] = c->id;
    f["limit"] = cfg_.max_message_bytes;
    log_.emit(LogEvent::too_big, f);
    fail(c, 1009, "message too big", WSG_CAUSE_TOO_BIG);
}

void Inbox::bad_compression(Conn *c, const char *detail) {
    if (c->closing) return;
    LogFields f;
    f["conn"] = c->id;
    f["message"] = std::string("permessage-deflate data refused: ") + detail;
    log_.emit(LogEvent::bad_compression, f);
    fail(c, 1007, "invalid compressed data", WSG_CAUSE_BAD_COMPRESSION);
}

// A compressed message's bytes go through an inflater into *out; the limit
// counts inflated bytes. A whole message from a client that resets its
// context per message uses the shared inflater: such a connection holds no
// zlib state at all. False when the connection is being failed.
bool Inbox::inflate_into(Conn *c, const uint8_t *p, size_t n, std::string *out, bool whole, bool final) {
    bool shared = whole && !c->inflate_keep_context && !(c->extra && c->extra->inflater);
    if (!shared && !c->more().inflater) c->extra->inflater = std::make_unique<Inflater>();
    Inflater &inf = shared ? shared_inflater_ : *c->extra->inflater;
    Inflater::Result r = inf.feed(p, n, final, out, cfg_.max_message_bytes);
    // zlib's words, taken before the inflater may go.
    const std::string why = r == Inflater::Result::Corrupt ? inf.error() : "";
    if (shared) {
        inf.reset();
    } else if (final || r != Inflater::Result::Ok) {
        c->extra->inflater->end_message(c->inflate_keep_context);
        if (!c->inflate_keep_context) c->extra->inflater.reset();
    }
    switch (r) {
    case Inflater::Result::Ok: return true;
    case Inflater::Result::TooBig: too_big(c); return false;
    case Inflater::Result::Corrupt: bad_compression(c, why.c_str()); return false;
    }
    return false;
}

std::string Inbox::take_message(Conn *c) {
    std::string msg = std::move(c->extra->rx);
    c->extra->rx.clear();
    // Between messages a connection keeps nothing it does not need.
    c->trim_extra();
    return msg;
}

void Inbox::on_data(Conn *c, const uint8_t *p, size_t n, const proto::DataChunk &chunk, int64_t now) {
    if (c->closing) return;  // a close is under way; late data is dropped
    const bool whole = chunk.message_start && chunk.message_end;
    if (!chunk.compressed) {
        // The reader checked size and UTF-8. A message that came whole in
        // this read is handed over from the read buffer itself.
        if (whole) return deliver(c, chunk.binary, p, n, now);
        c->more().rx.append(reinterpret_cast<const char *>(p), n);
        if (!chunk.message_end) return;
        const std::string msg = take_message(c);
        return deliver(c, chunk.binary, msg.data(), msg.size(), now);
    }
    metrics_.deflate_compressed.add(metric::Direction::in, n);
    if (whole) inflated_.clear();
    if (!inflate_into(c, p, n, whole ? &inflated_ : &c->more().rx, whole, chunk.message_end) ||
        !chunk.message_end)
        return;
    std::string held;
    if (!whole) held = take_message(c);
    const std::string &msg = whole ? inflated_ : held;
    metrics_.deflate_plain.add(metric::Direction::in, msg.size());
    // Inflated text is validated once the whole message is in.
    Utf8Validator utf8;
    if (!chunk.binary && !(utf8.feed(reinterpret_cast<const uint8_t *>(msg.data()), msg.size()) && utf8.complete()))
        return fail(c, 1007, "invalid UTF-8", WSG_CAUSE_INVALID_UTF8);
    deliver(c, chunk.binary, msg.data(), msg.size(), now);
    // The scratch buffer does not pin a huge message's memory.
    if (inflated_.capacity() > 256 * 1024) std::string().swap(inflated_);
}

void Inbox::deliver(Conn *c, bool binary, const void *data, size_t n, int64_t now) {
    c->last_data_ms = now;
    if (!cfg_.message_rate.unlimited() && !c->extra->rate->allow(cfg_.message_rate, now)) {
        metrics_.rate_limited.add(metric::RateLimit::messages);
        if (!cfg_.rate_drop) return fail(c, 1008, "message rate limit", WSG_CAUSE_RATE_LIMIT);
        // Drop: counted, and logged once per 1,000 so a flood cannot flood the log.
        if (dropped_messages_++ % 1000 == 0) {
            LogFields f;
            f["conn"] = c->id;
            f["dropped_total"] = dropped_messages_;
            log_.emit(LogEvent::rate_limited, f);
        }
        return;
    }
    bump(c->msgs_in, 1);
    bump(c->bytes_in, n);
    metrics_.messages_in.inc();
    metrics_.bytes_in.inc(n);
    if (app_.on_message.fn)
        app_.on_message.fn(app_.server, c->id, binary ? WSG_MSG_BINARY : WSG_MSG_TEXT, data, n,
                           app_.on_message.user);
}

}  // namespace wsgate
