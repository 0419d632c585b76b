#include "core/outbox.h"

#include <cstring>

#include "base/time.h"

namespace wsgate {

Outbox::Outbox(const Settings &cfg, Transport &transport, Logger &log, Clock &clock, Heartbeat &heartbeat,
               AppCallbacks &app, Metrics &metrics)
    : cfg_(cfg), transport_(transport), log_(log), clock_(clock), heartbeat_(heartbeat), app_(app), metrics_(metrics) {
    scratch_.resize(cfg_.write_batch_bytes);
}

const FrameList &Outbox::frames_for(Conn *c, OutMessage &m) {
    if (!c->deflate || m.payload < cfg_.compress_min_bytes) return m.frames;
    const int bits = c->deflate_window_bits;
    for (const auto &d : m.deflated)
        if (d.first == bits) return d.second.empty() ? m.frames : d.second;
    if (deflaters_.empty()) deflaters_.resize(16);
    if (!deflaters_[bits]) deflaters_[bits] = std::make_unique<Deflater>(cfg_.compress_level, bits);
    m.deflated.emplace_back(bits, deflaters_[bits]->compress(m.frames, m.payload, cfg_.write_batch_bytes));
    const FrameList &made = m.deflated.back().second;
    return made.empty() ? m.frames : made;
}

void Outbox::mark(Conn *c) {
    if (c->flush_pending || !c->link) return;
    c->flush_pending = true;
    dirty_.push_back(c);
}

void Outbox::flush() {
    // Written now, from the event that produced the output: a socket that
    // takes it all never needs a writable event (which would cost two
    // epoll_ctl calls per reply). What the kernel does not take waits for one.
    for (size_t i = 0; i < dirty_.size(); i++) {
        Conn *c = dirty_[i];
        if (!c) continue;  // finished meanwhile
        c->flush_pending = false;
        if (!c->link || c->writable_requested) continue;
        if (!write_some(c)) transport_.close_soon(c->link);
    }
    dirty_.clear();
}

void Outbox::want_writable(Conn *c) {
    if (c->writable_requested || !c->link) return;
    c->writable_requested = true;
    transport_.want_writable(c->link);
}

void Outbox::deliver(Conn *c, OutMessage &m) {
    if (c->closing) return;
    const FrameList &frames = frames_for(c, m);
    bump(c->msgs_out, 1);
    bump(c->bytes_out, m.payload);
    metrics_.messages_out.inc();
    metrics_.bytes_out.inc(m.payload);
    size_t need = 0;
    for (const FrameRef &f : frames) need += f->size();
    if (&frames != &m.frames) {
        metrics_.deflate_plain.add(metric::Direction::out, m.payload);
        metrics_.deflate_compressed.add(metric::Direction::out, need);
    }
    const bool keyed = m.conflate_key && c->policy() == WSG_QUEUE_CONFLATE;
    const Backlog *b = c->backlog();
    if (keyed && b && b->behind && conflate(c, frames, need, m.conflate_key)) return;
    if (queued(c) + need > cfg_.max_queue_bytes && overflow(c, need, Cap::Connection)) return;
    if (over_total(c, need) && overflow(c, need, Cap::Total)) return;
    uint64_t first = 0;
    for (size_t i = 0; i < frames.size(); i++) {
        uint64_t seq = c->queue.push(frames[i], &ledger_);
        if (i == 0) first = seq;
    }
    enqueued(c);
    // Behind (perhaps only now): the next message with this key takes its place.
    Backlog *now = c->backlog();
    if (keyed && now && now->behind) {
        // Erased first: the map's key is a view of the entry's own string.
        std::string_view name(*m.conflate_key);
        now->latest.erase(name);
        now->latest.emplace(name, Backlog::Latest{m.conflate_key, first, frames[0]});
    }
}

void Outbox::enqueued(Conn *c) {
    grew(c);
    const int64_t wait = c->times->write_wait_ms;
    if (wait && !c->write_deadline_ms) {
        c->write_deadline_ms = clock_.now_ms() + wait;
        heartbeat_.arm(c, c->write_deadline_ms);
    }
    mark(c);
}

bool Outbox::overflow(Conn *c, size_t need, Cap cap) {
    const bool total = cap == Cap::Total;
    const size_t limit = total ? cfg_.max_total_queue_bytes : cfg_.max_queue_bytes;
    switch (c->policy()) {
    case WSG_QUEUE_CLOSE: {
        // The peer stopped reading: drop what it will never get and close.
        LogFields f;
        f["conn"] = c->id;
        f["queued_bytes"] = queued(c) + need;
        f["limit"] = limit;
        if (total) {
            f["cap"] = "total";
            f["total_queued_bytes"] = ledger_.bytes + need;
        }
        log_.emit(LogEvent::backpressure, f);
        close(c, cfg_.queue_close_code, total ? "send queues full" : "send queue full", WSG_CAUSE_BACKPRESSURE,
              true);
        if (total) total_refused(c, 0, true);
        return true;
    }
    case WSG_QUEUE_DROP_OLDEST: {
        // Whole messages only: the rest of one whose first frames are out
        // (at the front) must follow them, and control frames are not ours
        // to drop. Nothing goes unless enough can go.
        uint64_t oldest = 0;
        if (!c->queue.oldest_whole_message(&oldest)) break;
        size_t kept = c->control.bytes();
        for (uint64_t s = c->queue.front_seq(); s < oldest; s++)
            if (const Frame *f = c->queue.at(s)) kept += f->size();
        if (!total && kept + need > limit) break;
        // Against the total, this queue makes room for the message in
        // itself (it does not grow), or the total falls under the cap first.
        const size_t droppable = queued(c) - kept;
        if (total && droppable < need && ledger_.bytes + need > limit + droppable) break;
        uint64_t n = 0;
        size_t freed = 0;
        while ((total ? freed < need && ledger_.bytes + need > limit : queued(c) + need > limit) &&
               c->queue.oldest_whole_message(&oldest)) {
            freed += c->queue.remove_message(oldest);
            n++;
        }
        dropped(c, n, cap);
        return false;
    }
    case WSG_QUEUE_DROP_NEWEST:
    case WSG_QUEUE_CONFLATE:  // a message without a key, or a key seen for the first time
    case WSG_QUEUE_POLICY_MAX_: break;
    }
    dropped(c, 1, cap);
    return true;
}

bool Outbox::conflate(Conn *c, const FrameList &frames, size_t need, const ConflateKey &key) {
    Backlog &b = *c->backlog();
    auto it = b.latest.find(std::string_view(*key));
    if (it == b.latest.end()) return false;
    Backlog::Latest &l = it->second;
    if (c->queue.at(l.seq) != l.first.get()) {  // written (or begun) meanwhile
        b.latest.erase(it);
        return false;
    }
    size_t old_frames = 0, old_bytes = 0;
    for (uint64_t s = l.seq;; s++) {
        const Frame *f = c->queue.at(s);
        if (!f) break;
        old_frames++;
        old_bytes += f->size();
        if (FrameQueue::ends_message(f)) break;
    }
    if (queued(c) - old_bytes + need > cfg_.max_queue_bytes) {
        // Even in the old one's room the new one does not fit: drop_newest.
        dropped(c, 1);
        return true;
    }
    if (need > old_bytes && over_total(c, need - old_bytes)) {
        dropped(c, 1, Cap::Total);
        return true;
    }
    if (frames.size() <= old_frames) {
        // In its place: the update goes out as early as the old one would have.
        size_t i = 0;
        for (const FrameRef &f : frames) c->queue.replace(l.seq + i++, f);
        for (; i < old_frames; i++) c->queue.remove(l.seq + i);
    } else {
        // More fragments than the old one had room for: at the back.
        c->queue.remove_message(l.seq);
        for (size_t i = 0; i < frames.size(); i++) {
            uint64_t seq = c->queue.push(frames[i], &ledger_);
            if (i == 0) l.seq = seq;
        }
    }
    l.first = frames[0];
    dropped(c, 1);
    enqueued(c);
    return true;
}

void Outbox::fell_behind(Conn *c) {
    Backlog &b = backlog(c);
    if (b.behind) return;
    b.behind = true;
    metrics_.behind.add(1);
}

void Outbox::forget(Conn *c) {
    // Its share of the totals goes with it.
    publish_queued(c, 0);
    if (const Backlog *b = c->backlog(); b && b->behind) metrics_.behind.add(-1);
    if (!c->flush_pending) return;
    for (Conn *&d : dirty_)
        if (d == c) d = nullptr;
    c->flush_pending = false;
}

Backlog &Outbox::backlog(Conn *c) {
    Conn::Extra &x = c->more();
    if (!x.backlog) x.backlog = std::make_unique<Backlog>();
    return *x.backlog;
}

void Outbox::dropped(Conn *c, uint64_t n, Cap cap) {
    if (!n) return;
    if (cap == Cap::Total) {
        // A server-wide condition: one episode for all connections (a
        // connection's own episode ends at its low-water mark, which a
        // small queue refused by the total cap is always under).
        bump(c->msgs_dropped, n);
        total_refused(c, n, false);
        return;
    }
    Backlog &b = backlog(c);
    if (!b.dropping) {
        b.dropping = true;
        b.dropped_before = c->msgs_dropped.load(std::memory_order_relaxed);
        b.since_ms = clock_.now_ms();
        LogFields f;
        f["conn"] = c->id;
        f["policy"] = wsg_queue_policy_str(c->policy());
        f["queued_bytes"] = queued(c);
        f["limit"] = cfg_.max_queue_bytes;
        log_.emit(LogEvent::queue_overflow, f);
    }
    bump(c->msgs_dropped, n);
    metrics_.dropped.add(metric::policy_index(c->policy()), n);
}

void Outbox::total_refused(Conn *c, uint64_t dropped, bool closed) {
    const int64_t now = clock_.now_ms();
    const bool starts = total_full_.hit(now, closed ? 1 : 0);
    if (starts) total_dropped_ = total_closed_ = 0;
    total_dropped_ += dropped;
    total_closed_ += closed ? 1 : 0;
    if (!starts) return;
    LogFields f;
    f["cap"] = "total";
    f["conn"] = c->id;
    f["policy"] = wsg_queue_policy_str(c->policy());
    f["queued_bytes"] = queued(c);
    f["total_queued_bytes"] = ledger_.bytes;
    f["limit"] = cfg_.max_total_queue_bytes;
    log_.emit(LogEvent::queue_overflow, f);
}

void Outbox::log_total_episode(int64_t now, bool ended) {
    LogFields f;
    f["cap"] = "total";
    f["dropped"] = total_dropped_;
    f["closed"] = total_closed_;
    f["duration_ms"] = total_full_.duration_ms(now);
    f["total_queued_bytes"] = ledger_.bytes;
    f["limit"] = cfg_.max_total_queue_bytes;
    if (ended) f["ended"] = true;
    log_.emit(ended ? LogEvent::queue_recovered : LogEvent::queue_overflow, f);
}

void Outbox::report(int64_t now) {
    // Over once 2 s pass without a refusal; reminded every minute meanwhile.
    switch (total_full_.due(now, 2000, 60000)) {
    case Episode::Due::None: break;
    case Episode::Due::Remind: log_total_episode(now, false); break;
    case Episode::Due::Ended: log_total_episode(now, true); break;
    }
}

void Outbox::grew(Conn *c) {
    const size_t q = queued(c);
    publish_queued(c, q);
    // Behind only while the socket takes nothing more: a burst written
    // within the same event never was.
    if (q > cfg_.queue_high_water && c->writable_requested) fell_behind(c);
}

void Outbox::settle(Conn *c) {
    const size_t q = queued(c);
    publish_queued(c, q);
    if (q > cfg_.queue_high_water) {
        if (c->writable_requested) fell_behind(c);
    } else if (q <= cfg_.queue_low_water && c->backlog()) {
        end_backlog(c, q);
    }
}

void Outbox::end_backlog(Conn *c, size_t q) {
    // Over before anything is reported: a callback that sends starts afresh.
    std::unique_ptr<Backlog> b = std::move(c->extra->backlog);
    c->trim_extra();
    if (b->behind) metrics_.behind.add(-1);
    if (b->dropping) {
        LogFields f;
        f["conn"] = c->id;
        f["policy"] = wsg_queue_policy_str(c->policy());
        f["dropped"] = c->msgs_dropped.load(std::memory_order_relaxed) - b->dropped_before;
        f["duration_ms"] = clock_.now_ms() - b->since_ms;
        f["queued_bytes"] = q;
        log_.emit(LogEvent::queue_recovered, f);
    }
    if (b->behind && !c->closing && app_.on_drain.fn)
        app_.on_drain.fn(app_.server, c->id, q, app_.on_drain.user);
}

void Outbox::pong(Conn *c, const uint8_t *payload, size_t len) {
    // Our close frame still waits: the pong goes out before it. Once it is
    // written, or when the peer closed, pongs are moot.
    if (c->close_stage != CloseStage::Open && c->close_stage != CloseStage::Queued) return;
    c->control.push(FrameBuilder::control(0xA, payload, len), &ledger_);
    grew(c);
    mark(c);
}

void Outbox::ping(Conn *c) {
    if (c->closing) return;
    c->ping_due = true;
    mark(c);
}

void Outbox::close(Conn *c, int code, const std::string &reason, wsg_close_cause cause, bool drop_queued) {
    if (c->closing) return;
    c->closing = true;
    c->close_requested.store(true);
    c->close_stage = CloseStage::Queued;
    c->close_code = static_cast<uint16_t>(code);
    c->set_reason(reason);
    c->set_cause(cause);
    if (drop_queued) {
        c->queue.clear();
        publish_queued(c, queued(c));
    }
    // The close frame waits behind the queue: bound that wait by write
    // progress (write_wait) or, with write_wait off, by close_wait.
    const int64_t now = clock_.now_ms();
    if (c->times->write_wait_ms) {
        if (!c->write_deadline_ms) c->write_deadline_ms = now + c->times->write_wait_ms;
        heartbeat_.arm(c, c->write_deadline_ms);
    } else {
        c->close_deadline_ms = now + c->times->close_wait_ms;
        heartbeat_.arm(c, c->close_deadline_ms);
    }
    mark(c);
}

bool Outbox::peer_closed(Conn *c, int code, const uint8_t *reason, size_t len) {
    switch (c->close_stage) {
    case CloseStage::Open:
        // The peer closes first: report its code, echo it (RFC 6455 5.5.1),
        // send nothing more, and close the TCP connection once the reply is out.
        c->closing = true;
        c->close_requested.store(true);
        c->close_stage = CloseStage::Replying;
        c->set_cause(WSG_CAUSE_PEER);
        c->close_code = static_cast<uint16_t>(code);
        c->set_reason(std::string(reinterpret_cast<const char *>(reason), len));
        c->queue.clear();
        c->control.clear();
        publish_queued(c, 0);
        c->ping_due = false;
        if (c->times->write_wait_ms) {
            c->write_deadline_ms = clock_.now_ms() + c->times->write_wait_ms;
            heartbeat_.arm(c, c->write_deadline_ms);
        }
        mark(c);
        return true;
    case CloseStage::Queued:
        // Both sides closing: ours still goes out (no more data first), then the TCP close.
        c->close_stage = CloseStage::Replying;
        c->queue.clear();
        c->control.clear();
        publish_queued(c, 0);
        mark(c);
        return true;
    case CloseStage::Sent:
        c->close_stage = CloseStage::Done;
        return false;
    case CloseStage::Replying:
    case CloseStage::Done: return true;
    }
    return true;
}

void Outbox::note_progress(Conn *c, bool pending) {
    // Progress: the write deadline restarts while output is pending.
    if (c->times->write_wait_ms) c->write_deadline_ms = pending ? clock_.now_ms() + c->times->write_wait_ms : 0;
    if (pending) want_writable(c);
}

bool Outbox::write_batch(Conn *c) {
    const size_t batch = cfg_.write_batch_bytes;
    bool ok;
    if (!c->ping_due && c->control.empty() &&
        (c->queue.count() == 1 || c->queue.front()->size() >= batch / 2)) {
        // One frame: write it from its own buffer.
        Frame *first = c->queue.front();
        ok = transport_.write(c->link, first->data(), first->size());
        c->queue.pop();
    } else {
        // Coalesce whole frames: one write, one system call for many
        // messages. Controls go first: they never wait behind data.
        uint8_t *out = scratch_.data();
        size_t used = 0;
        if (c->ping_due) {
            c->ping_due = false;
            c->ping_payload = static_cast<uint64_t>(mono_us());  // echoed back: RTT
            out[0] = 0x89;  // FIN + ping
            out[1] = 8;
            for (int i = 0; i < 8; i++) out[2 + i] = static_cast<uint8_t>(c->ping_payload >> (56 - 8 * i));
            used = 10;
        }
        while (!c->control.empty() && used + c->control.front()->size() <= batch) {
            Frame *f = c->control.front();
            std::memcpy(out + used, f->data(), f->size());
            used += f->size();
            c->control.pop();
        }
        while (!c->queue.empty() && used + c->queue.front()->size() <= batch) {
            Frame *f = c->queue.front();
            std::memcpy(out + used, f->data(), f->size());
            used += f->size();
            c->queue.pop();
        }
        ok = used == 0 || transport_.write(c->link, out, used);
    }
    if (!ok) {
        // The peer went away mid-write: an expected network event.
        LogFields f;
        f["conn"] = c->id;
        f["message"] = "write failed (peer gone); dropping the connection";
        log_.emit(LogEvent::write_failed, f);
    }
    return ok;
}

bool Outbox::on_writable(Conn *c) {
    c->writable_requested = false;
    return write_some(c);
}

bool Outbox::write_some(Conn *c) {
    if (!write_queued(c)) return false;
    // Last: on_drain may send (or close) from here.
    if (c->link && !c->closing) settle(c);
    return true;
}

bool Outbox::write_queued(Conn *c) {
    if (!c->link) return true;
    if (c->close_stage == CloseStage::Done) return false;
    if (c->close_stage == CloseStage::Sent) {
        // A refused peer gets our close frame and then the end of our stream.
        if (c->refused_input && !c->write_shut) {
            if (Transport::write_pending(c->link)) {
                want_writable(c);
            } else {
                Transport::shutdown_write(c->link);
                c->write_shut = true;
            }
        }
        return true;
    }
    // lws still holds bytes the kernel did not take: wait for them first.
    if (Transport::write_pending(c->link)) {
        want_writable(c);
        return true;
    }
    if (c->ping_due || !c->control.empty() || !c->queue.empty()) {
        if (!write_batch(c)) return false;
        bool more = c->ping_due || !c->control.empty() || !c->queue.empty();
        bool closing = c->close_stage == CloseStage::Queued || c->close_stage == CloseStage::Replying;
        note_progress(c, more || closing || Transport::write_pending(c->link));
        return true;
    }
    if (c->close_stage == CloseStage::Queued || c->close_stage == CloseStage::Replying) {
        // Everything before it is out: our close frame now. A reply ends the
        // handshake (the TCP close follows once it is flushed); our own close
        // waits close_wait for the peer's.
        const bool reply = c->close_stage == CloseStage::Replying;
        // A peer close without a status gets a close without one (RFC 6455 5.5.1).
        const int code = reply && c->close_code == 1005 ? 0 : c->close_code;
        FrameRef frame = FrameBuilder::close(code, reply && code == 0 ? std::string() : c->reason());
        if (!transport_.write(c->link, frame->data(), frame->size())) return false;
        c->write_deadline_ms = 0;
        if (reply) {
            c->close_stage = CloseStage::Done;
            return false;
        }
        c->close_stage = CloseStage::Sent;
        c->close_deadline_ms = clock_.now_ms() + c->times->close_wait_ms;
        heartbeat_.arm(c, c->close_deadline_ms);
        if (c->refused_input) want_writable(c);  // shut our side once the frame is flushed
        return true;
    }
    if (c->times->write_wait_ms) c->write_deadline_ms = 0;
    return true;
}

}  // namespace wsgate
