// The inbox: what a connection receives. Bytes become frames and messages
// (protocol::FrameReader, straight from the transport's read buffer);
// compressed messages are inflated against the size limit; text is checked
// as UTF-8; the message rate is enforced; whole messages go to the
// application. Pings, pongs and the peer's close are handed to the outbox
// and the heartbeat state. A connection keeps no receive buffer except while
// a message is incomplete.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "config/settings.h"
#include "core/callbacks.h"
#include "core/conn.h"
#include "core/outbox.h"
#include "observe/log.h"
#include "observe/metrics.h"

namespace wsgate {

class Inbox {
public:
    Inbox(const Settings &cfg, Outbox &outbox, AppCallbacks &app, Logger &log, Clock &clock, Metrics &metrics);

    // Bytes from the connection (writable, for in-place unmasking). False:
    // close the link now (the close handshake is complete).
    bool read(Conn *c, uint8_t *data, size_t len);

private:
    struct Sink;
    void on_data(Conn *c, const uint8_t *p, size_t n, const proto::DataChunk &chunk, int64_t now);
    void deliver(Conn *c, bool binary, const void *data, size_t n, int64_t now);
    // One inbound frame against limits.frames_per_s; false once over it
    // (the connection is then failed with 1008).
    bool count_frame(Conn *c, int64_t now);
    // Fails the connection for what the peer sent: our close frame with
    // `code` replaces what was queued; later input is discarded unread.
    void fail(Conn *c, int code, const char *reason, wsg_close_cause cause);
    void too_big(Conn *c);
    void bad_compression(Conn *c, const char *detail);
    bool inflate_into(Conn *c, const uint8_t *p, size_t n, std::string *out, bool whole, bool final);
    // The message assembled in the connection's extra state, which goes
    // once it holds nothing else.
    std::string take_message(Conn *c);

    const Settings &cfg_;
    Outbox &outbox_;
    AppCallbacks &app_;
    Logger &log_;
    Clock &clock_;
    Metrics &metrics_;
    Inflater shared_inflater_;  // whole messages from clients that reset their context
    std::string inflated_;      // a whole inbound message, inflated
    uint64_t dropped_messages_ = 0;
};

}  // namespace wsgate
