// Internal unit tests of the core's building blocks: server frame encoding
// and fragmentation (FrameBuilder), shared frame references and the send
// queue (FrameRef, FrameQueue with its numbered frames and holes), the incremental UTF-8 validator (checked
// against an independent reference decoder), and the generational
// connection registry.
//
// Leak and use-after-free checks of the reference counting rely on the
// sanitizer build (WSGATE_SANITIZE=ON), which runs these same tests.
#include "support/rng.h"
// Before cmocka: its fail() macro would break <ios>, which gate.h pulls in.
#include "core/gate.h"
#include <algorithm>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

extern "C" {
#include <cmocka.h>
}

#include "protocol/frame.h"
#include "protocol/utf8.h"
#include "core/registry.h"
#include "config/suggest.h"
#include "observe/episode.h"
#include "transport/fd_limit.h"

#include <sys/resource.h>

using wsgate::Conn;
using wsgate::Frame;
using wsgate::FrameBuilder;
using wsgate::FrameList;
using wsgate::FrameQueue;
using wsgate::FrameRef;
using wsgate::QueueLedger;
using wsgate::Registry;
using wsgate::Utf8Validator;

namespace {

// ------------------------------------------------------------------ helpers

using wsgate_test::Rng;

std::vector<uint8_t> pattern(size_t len, uint32_t seed = 7) {
    std::vector<uint8_t> v(len);
    for (size_t i = 0; i < len; i++) v[i] = static_cast<uint8_t>((i * 31 + seed + (i >> 8)) & 0xff);
    return v;
}

// A server frame as RFC 6455 section 5.2 reads it.
struct Parsed {
    bool fin, rsv, masked;
    int opcode;
    size_t header, payload;
    const uint8_t *data;
};

// Decodes the header of `f` and checks what every server frame must satisfy:
// RSV bits clear, no mask, minimal length encoding, size == header + payload.
Parsed parse_frame(Frame *f) {
    assert_non_null(f);
    const uint8_t *d = f->data();
    assert_true(f->size() >= 2);
    Parsed p{};
    p.fin = (d[0] & 0x80) != 0;
    p.rsv = (d[0] & 0x70) != 0;
    p.opcode = d[0] & 0x0f;
    p.masked = (d[1] & 0x80) != 0;
    size_t len7 = d[1] & 0x7f;
    if (len7 < 126) {
        p.header = 2;
        p.payload = len7;
    } else if (len7 == 126) {
        assert_true(f->size() >= 4);
        p.header = 4;
        p.payload = (size_t(d[2]) << 8) | d[3];
        assert_true(p.payload >= 126);  // minimal encoding
    } else {
        assert_true(f->size() >= 10);
        p.header = 10;
        uint64_t v = 0;
        for (int i = 0; i < 8; i++) v = (v << 8) | d[2 + i];
        assert_true((v >> 63) == 0);    // most significant bit must be 0
        assert_true(v > 0xffff);        // minimal encoding
        p.payload = static_cast<size_t>(v);
    }
    p.data = d + p.header;
    assert_false(p.rsv);
    assert_false(p.masked);
    assert_int_equal(f->size(), p.header + p.payload);
    assert_int_equal(f->payload(), p.payload);
    assert_int_equal(p.header, FrameBuilder::header_size(p.payload));
    return p;
}

// A max_frame that never fragments the payloads used here.
constexpr size_t kNoSplit = size_t(64) << 20;

// Builds one unfragmented message and checks its exact header bytes.
void check_single_frame(int opcode, size_t len, const std::vector<uint8_t> &expect_header) {
    std::vector<uint8_t> in = pattern(len, static_cast<uint32_t>(len));
    FrameList frames = FrameBuilder::message(opcode, in.data(), len, kNoSplit);
    assert_int_equal(frames.size(), 1);
    Frame *f = frames[0].get();
    assert_int_equal(f->size(), expect_header.size() + len);
    assert_int_equal(f->payload(), len);
    assert_memory_equal(f->data(), expect_header.data(), expect_header.size());
    if (len) assert_memory_equal(f->data() + expect_header.size(), in.data(), len);
    Parsed p = parse_frame(f);
    assert_true(p.fin);
    assert_int_equal(p.opcode, opcode);
}

// Builds `len` bytes with `max_frame` and checks the fragmentation rules.
void check_fragmented(int opcode, size_t len, size_t max_frame) {
    const size_t chunk = max_frame - FrameBuilder::header_size(max_frame);
    std::vector<uint8_t> in = pattern(len, static_cast<uint32_t>(max_frame));
    FrameList frames = FrameBuilder::message(opcode, in.data(), len, max_frame);
    size_t want_frames = len <= chunk ? 1 : (len + chunk - 1) / chunk;
    if (frames.size() != want_frames) {
        print_error("len %zu max_frame %zu: %zu frames, expected %zu\n", len, max_frame,
                    frames.size(), want_frames);
        fail();
    }
    std::vector<uint8_t> joined;
    joined.reserve(len);
    for (size_t i = 0; i < frames.size(); i++) {
        Parsed p = parse_frame(frames[i].get());
        bool first = i == 0, last = i + 1 == frames.size();
        assert_true(frames[i]->size() <= max_frame);
        assert_int_equal(p.opcode, first ? opcode : 0);
        assert_int_equal(p.fin, last);
        if (frames.size() > 1) assert_true(p.payload > 0);  // no empty fragments
        joined.insert(joined.end(), p.data, p.data + p.payload);
    }
    assert_int_equal(joined.size(), len);
    if (len) assert_memory_equal(joined.data(), in.data(), len);
}

// ------------------------------------------------------------------ FrameBuilder

void test_frame_7bit_lengths_are_exact(void **) {
    check_single_frame(1, 0, {0x81, 0x00});
    check_single_frame(1, 1, {0x81, 0x01});
    check_single_frame(1, 125, {0x81, 125});
    check_single_frame(2, 0, {0x82, 0x00});
    check_single_frame(2, 125, {0x82, 125});
}

void test_frame_16bit_lengths_are_exact(void **) {
    check_single_frame(1, 126, {0x81, 126, 0x00, 0x7e});
    check_single_frame(2, 127, {0x82, 126, 0x00, 0x7f});
    check_single_frame(2, 256, {0x82, 126, 0x01, 0x00});
    check_single_frame(2, 65535, {0x82, 126, 0xff, 0xff});
}

void test_frame_64bit_lengths_are_exact(void **) {
    check_single_frame(2, 65536, {0x82, 127, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00});
    check_single_frame(1, 65537, {0x81, 127, 0, 0, 0, 0, 0, 0x01, 0x00, 0x01});
    check_single_frame(2, 1u << 20, {0x82, 127, 0, 0, 0, 0, 0, 0x10, 0x00, 0x00});
}

void test_frame_header_size_matches_rfc6455(void **) {
    assert_int_equal(FrameBuilder::header_size(0), 2);
    assert_int_equal(FrameBuilder::header_size(125), 2);
    assert_int_equal(FrameBuilder::header_size(126), 4);
    assert_int_equal(FrameBuilder::header_size(65535), 4);
    assert_int_equal(FrameBuilder::header_size(65536), 10);
    assert_int_equal(FrameBuilder::header_size(size_t(1) << 40), 10);
}

void test_frame_payload_is_copied_not_borrowed(void **) {
    std::vector<uint8_t> in = pattern(300);
    std::vector<uint8_t> keep = in;
    FrameList frames = FrameBuilder::message(2, in.data(), in.size(), kNoSplit);
    std::fill(in.begin(), in.end(), 0);
    in.clear();
    in.shrink_to_fit();
    Parsed p = parse_frame(frames[0].get());
    assert_memory_equal(p.data, keep.data(), keep.size());
}

void test_frame_fragments_around_chunk_boundaries(void **) {
    const size_t max_frames[] = {1024, 4096, 65536, 65539, 70000};
    for (size_t mf : max_frames) {
        const size_t chunk = mf - FrameBuilder::header_size(mf);
        const size_t lens[] = {0,         1,         chunk - 1,     chunk,    chunk + 1,
                               2 * chunk, 2 * chunk + 1, 3 * chunk - 1, 5 * chunk + 7};
        for (size_t len : lens) {
            check_fragmented(1, len, mf);
            check_fragmented(2, len, mf);
        }
    }
}

void test_frame_fragments_a_one_mebibyte_message(void **) {
    check_fragmented(2, 1u << 20, 65536);
    check_fragmented(1, 1u << 20, 1024);
    check_fragmented(2, (1u << 20) + 1, 16384);
}

void test_frame_fragments_at_the_smallest_batch_size(void **) {
    // tuning.write_batch_bytes allows down to 1024; also a 7-bit-sized batch.
    for (size_t len = 0; len < 3000; len += 37) check_fragmented(2, len, 1024);
    for (size_t len = 0; len < 600; len++) check_fragmented(1, len, 125);
}

// ------------------------------------------------------------------ FrameRef and FrameQueue

FrameRef make_frame(size_t payload, uint32_t seed = 1) {
    std::vector<uint8_t> in = pattern(payload, seed);
    FrameList l = FrameBuilder::message(2, in.data(), in.size(), kNoSplit);
    assert_int_equal(l.size(), 1);
    return l[0];
}

void test_frame_ref_copy_and_move_share_one_frame(void **) {
    FrameRef a = make_frame(10);
    Frame *raw = a.get();
    assert_true(static_cast<bool>(a));
    FrameRef b = a;  // copy: second reference to the same frame
    assert_ptr_equal(b.get(), raw);
    FrameRef c = std::move(b);  // move: transfers, leaves b empty
    assert_false(static_cast<bool>(b));
    assert_null(b.get());
    assert_ptr_equal(c.get(), raw);
    FrameRef d;
    assert_false(static_cast<bool>(d));
    d = c;  // copy-assign
    assert_ptr_equal(d.get(), raw);
    d = d;  // self-assignment keeps the reference
    assert_ptr_equal(d.get(), raw);
    // Dropping the original and one copy keeps the frame alive for the others
    // (ASan reports a use-after-free here if the count is wrong).
    a = FrameRef();
    c = FrameRef();
    Parsed p = parse_frame(d.get());
    assert_int_equal(p.payload, 10);
    std::vector<uint8_t> want = pattern(10, 1);
    assert_memory_equal(p.data, want.data(), 10);
}

void test_frame_ref_shared_by_many_queues_is_freed_once(void **) {
    FrameList msg;
    {
        std::vector<uint8_t> in = pattern(200000);
        msg = FrameBuilder::message(1, in.data(), in.size(), 65536);
    }
    assert_true(msg.size() > 1);
    std::vector<Frame *> raw;
    for (const FrameRef &r : msg) raw.push_back(r.get());

    std::vector<FrameQueue> queues(5);
    for (FrameQueue &q : queues)
        for (const FrameRef &r : msg) q.push(r);
    msg.clear();  // the queues now hold the only references

    for (size_t qi = 0; qi < queues.size(); qi++) {
        FrameQueue &q = queues[qi];
        assert_int_equal(q.count(), raw.size());
        for (Frame *f : raw) {
            assert_ptr_equal(q.front(), f);
            parse_frame(q.front());  // still readable: other queues or this one hold it
            q.pop();
        }
        assert_true(q.empty());
        assert_int_equal(q.bytes(), 0);
    }
    // Every frame was released by its last pop; LeakSanitizer fails the
    // sanitizer build if any reference was left behind.
}

void test_queue_ledger_counts_a_shared_frame_once(void **) {
    QueueLedger ledger;
    FrameRef a = make_frame(1000), b = make_frame(300, 2), c = make_frame(50, 3);
    const size_t ab = a->size() + b->size();
    {
        // A broadcast: the same two frames in three queues count once.
        std::vector<FrameQueue> queues(3);
        for (FrameQueue &q : queues) {
            q.push(a, &ledger);
            q.push(b, &ledger);
        }
        assert_int_equal(ledger.bytes, ab);
        assert_int_equal(QueueLedger::holders(a.get()), 3);
        // Leaving two of the queues frees nothing; leaving the last does.
        queues[0].pop();
        queues[1].clear();
        assert_int_equal(ledger.bytes, ab);
        queues[2].pop();
        assert_int_equal(ledger.bytes, b->size());
        // remove() and replace() keep it exact; a frame in its own place stays counted.
        uint64_t seq = queues[2].push(c, &ledger);
        assert_int_equal(ledger.bytes, b->size() + c->size());
        queues[2].replace(seq, a);
        assert_int_equal(ledger.bytes, ab);
        queues[2].replace(seq, a);
        assert_int_equal(ledger.bytes, ab);
        queues[2].remove(seq);
        assert_int_equal(ledger.bytes, b->size());
        // The peak saw the broadcast (replace counts the new frame before the old one leaves).
        assert_true(ledger.peak >= ab && ledger.peak <= ab + c->size());
        // The queues go with frames still in them (a connection ends).
    }
    assert_int_equal(ledger.bytes, 0);
    assert_int_equal(QueueLedger::holders(a.get()), 0);
    assert_int_equal(QueueLedger::holders(b.get()), 0);
    // A queue without a ledger leaves the count alone.
    FrameQueue plain;
    plain.push(a);
    assert_int_equal(QueueLedger::holders(a.get()), 0);
    assert_int_equal(ledger.bytes, 0);
}

void test_frame_queue_starts_empty(void **) {
    FrameQueue q;
    assert_true(q.empty());
    assert_int_equal(q.count(), 0);
    assert_int_equal(q.bytes(), 0);
}

void test_frame_queue_is_fifo_with_exact_byte_accounting(void **) {
    FrameQueue q;
    std::vector<FrameRef> frames;
    size_t total = 0;
    for (size_t i = 0; i < 200; i++) {
        frames.push_back(make_frame(i * 7, static_cast<uint32_t>(i)));
        total += frames.back()->size();
        q.push(frames.back());
        assert_int_equal(q.count(), i + 1);
        assert_int_equal(q.bytes(), total);
        assert_false(q.empty());
    }
    for (size_t i = 0; i < frames.size(); i++) {
        assert_ptr_equal(q.front(), frames[i].get());
        total -= frames[i]->size();
        q.pop();
        assert_int_equal(q.count(), frames.size() - i - 1);
        assert_int_equal(q.bytes(), total);
    }
    assert_true(q.empty());
    assert_int_equal(q.bytes(), 0);
}

void test_frame_queue_clear_drops_everything(void **) {
    FrameQueue q;
    FrameRef f = make_frame(1000);
    for (int i = 0; i < 100; i++) q.push(f);
    q.pop();
    q.clear();
    assert_true(q.empty());
    assert_int_equal(q.count(), 0);
    assert_int_equal(q.bytes(), 0);
    // Usable again after clear.
    FrameRef g = make_frame(3);
    q.push(g);
    assert_int_equal(q.count(), 1);
    assert_int_equal(q.bytes(), g->size());
    assert_ptr_equal(q.front(), g.get());
    q.pop();
    assert_true(q.empty());
    q.clear();  // clearing an empty queue is harmless
    assert_true(q.empty());
}

void test_frame_queue_survives_100k_interleaved_push_pop(void **) {
    // A pool of distinct frames, pushed by copy, so the model can name them.
    std::vector<FrameRef> pool;
    for (uint32_t i = 0; i < 37; i++) pool.push_back(make_frame(i * 13 + (i % 3) * 200, i));

    FrameQueue q;
    std::deque<Frame *> model;
    size_t model_bytes = 0;
    Rng rng(42);
    // Phases of mostly-push and mostly-pop so the queue repeatedly grows past
    // its compaction thresholds and drains to empty.
    for (int op = 0; op < 100000; op++) {
        int phase = (op / 700) % 3;  // 0: grow, 1: shrink, 2: balanced
        uint32_t push_pct = phase == 0 ? 80 : phase == 1 ? 20 : 50;
        bool push = model.empty() || rng.below(100) < push_pct;
        if (push) {
            const FrameRef &f = pool[rng.below(static_cast<uint32_t>(pool.size()))];
            q.push(f);
            model.push_back(f.get());
            model_bytes += f->size();
        } else {
            assert_ptr_equal(q.front(), model.front());
            model_bytes -= model.front()->size();
            model.pop_front();
            q.pop();
        }
        if (q.count() != model.size() || q.bytes() != model_bytes ||
            q.empty() != model.empty()) {
            print_error("op %d: count %zu/%zu bytes %zu/%zu\n", op, q.count(), model.size(),
                        q.bytes(), model_bytes);
            fail();
        }
        if (!model.empty()) assert_ptr_equal(q.front(), model.front());
    }
    while (!model.empty()) {
        assert_ptr_equal(q.front(), model.front());
        model.pop_front();
        q.pop();
    }
    assert_true(q.empty());
    assert_int_equal(q.bytes(), 0);
}

// Sequence numbers, holes and whole messages (what the queue policies use).

// Frames of one message split into `parts` fragments (opcode, then continuations).
std::vector<FrameRef> fragments(size_t parts, uint32_t seed) {
    std::vector<uint8_t> in = pattern(parts * 1000, seed);
    FrameList l = FrameBuilder::message(2, in.data(), in.size(), 1000 + 4);
    assert_int_equal(l.size(), parts);
    std::vector<FrameRef> out;
    for (const FrameRef &r : l) out.push_back(r);
    return out;
}

void test_frame_queue_numbers_frames_until_they_leave(void **) {
    FrameQueue q;
    assert_null(q.at(0));
    std::vector<FrameRef> f;
    for (uint32_t i = 0; i < 5; i++) f.push_back(make_frame(10 + i, i));
    for (uint64_t i = 0; i < 5; i++) assert_int_equal(q.push(f[i]), i);
    for (uint64_t i = 0; i < 5; i++) assert_ptr_equal(q.at(i), f[i].get());
    assert_null(q.at(5));
    assert_int_equal(q.front_seq(), 0);
    q.pop();
    assert_null(q.at(0));  // left
    assert_int_equal(q.front_seq(), 1);
    assert_ptr_equal(q.at(1), f[1].get());
    assert_int_equal(q.push(f[0]), 5);
    while (!q.empty()) q.pop();
    // Numbers restart once the queue has been empty.
    assert_int_equal(q.push(f[2]), 0);
}

void test_frame_queue_remove_leaves_a_hole_that_front_and_pop_skip(void **) {
    FrameQueue q;
    std::vector<FrameRef> f;
    size_t total = 0;
    for (uint32_t i = 0; i < 6; i++) {
        f.push_back(make_frame(100 + i, i));
        total += f.back()->size();
        q.push(f.back());
    }
    q.remove(2);
    q.remove(3);
    total -= f[2]->size() + f[3]->size();
    assert_int_equal(q.count(), 4);
    assert_int_equal(q.bytes(), total);
    assert_null(q.at(2));
    q.remove(0);  // the front: the next frame becomes the front
    assert_ptr_equal(q.front(), f[1].get());
    assert_int_equal(q.front_seq(), 1);
    q.pop();  // skips the holes at 2 and 3
    assert_ptr_equal(q.front(), f[4].get());
    assert_int_equal(q.front_seq(), 4);
    assert_int_equal(q.count(), 2);
    q.remove(5);
    q.remove(4);  // the last frame: storage released
    assert_true(q.empty());
    assert_int_equal(q.bytes(), 0);
}

void test_frame_queue_replace_keeps_the_place_and_counts_bytes(void **) {
    FrameQueue q;
    FrameRef a = make_frame(10, 1), b = make_frame(20, 2), c = make_frame(3000, 3);
    q.push(a);
    q.push(b);
    q.replace(0, c);
    assert_ptr_equal(q.front(), c.get());
    assert_int_equal(q.count(), 2);
    assert_int_equal(q.bytes(), c->size() + b->size());
    q.pop();
    assert_ptr_equal(q.front(), b.get());
}

void test_frame_queue_finds_the_oldest_whole_message(void **) {
    FrameQueue q;
    std::vector<FrameRef> m1 = fragments(3, 1), m2 = fragments(2, 2);
    FrameRef m3 = make_frame(50, 3);
    assert_true(FrameQueue::opens_message(m1[0].get()));
    assert_false(FrameQueue::ends_message(m1[0].get()));
    assert_false(FrameQueue::opens_message(m1[1].get()));
    assert_true(FrameQueue::ends_message(m1[2].get()));
    uint64_t seq = 99;
    assert_false(q.oldest_whole_message(&seq));
    for (const FrameRef &r : m1) q.push(r);
    for (const FrameRef &r : m2) q.push(r);
    q.push(m3);
    assert_true(q.oldest_whole_message(&seq));
    assert_int_equal(seq, 0);
    // m1's first fragment is written: the rest of m1 is not a whole message.
    q.pop();
    assert_true(q.oldest_whole_message(&seq));
    assert_int_equal(seq, 3);
    // Removing m2 takes both its fragments and stops at its last one.
    size_t want = m2[0]->size() + m2[1]->size();
    assert_int_equal(q.remove_message(seq), want);
    assert_int_equal(q.count(), 3);
    assert_ptr_equal(q.front(), m1[1].get());
    assert_true(q.oldest_whole_message(&seq));
    assert_int_equal(seq, 5);
    assert_ptr_equal(q.at(seq), m3.get());
    assert_int_equal(q.remove_message(seq), m3->size());
    assert_false(q.oldest_whole_message(&seq));  // only m1's rest is left
    q.pop();
    q.pop();
    assert_true(q.empty());
}

void test_frame_queue_with_holes_matches_a_model(void **) {
    // Push, pop, remove and replace at random against a model that keeps
    // (number, frame) pairs, through several compactions and empty phases.
    std::vector<FrameRef> pool;
    for (uint32_t i = 0; i < 23; i++) pool.push_back(make_frame(i * 17 + 1, i));
    FrameQueue q;
    std::deque<std::pair<uint64_t, Frame *>> model;
    Rng rng(7);
    for (int op = 0; op < 100000; op++) {
        int phase = (op / 900) % 3;
        uint32_t r = rng.below(100);
        if (model.empty() || (phase == 0 ? r < 70 : phase == 1 ? r < 25 : r < 45)) {
            const FrameRef &f = pool[rng.below(static_cast<uint32_t>(pool.size()))];
            uint64_t seq = q.push(f);
            if (!model.empty()) assert_true(seq > model.back().first);
            model.emplace_back(seq, f.get());
        } else if (r < 75) {
            q.pop();
            model.pop_front();
        } else {
            size_t at = rng.below(static_cast<uint32_t>(model.size()));
            if (r < 88) {
                q.remove(model[at].first);
                model.erase(model.begin() + static_cast<std::ptrdiff_t>(at));
            } else {
                const FrameRef &f = pool[rng.below(static_cast<uint32_t>(pool.size()))];
                q.replace(model[at].first, f);
                model[at].second = f.get();
            }
        }
        size_t bytes = 0;
        for (const auto &e : model) bytes += e.second->size();
        if (q.count() != model.size() || q.bytes() != bytes || q.empty() != model.empty()) {
            print_error("op %d: count %zu/%zu bytes %zu/%zu\n", op, q.count(), model.size(), q.bytes(), bytes);
            fail();
        }
        if (!model.empty()) {
            assert_ptr_equal(q.front(), model.front().second);
            assert_int_equal(q.front_seq(), model.front().first);
            const auto &e = model[rng.below(static_cast<uint32_t>(model.size()))];
            assert_ptr_equal(q.at(e.first), e.second);
        }
    }
}

// ------------------------------------------------------------------ UTF-8

// Reference classification of a byte string by RFC 3629, written without
// the validator's lookup of allowed second-byte ranges: decode each
// sequence's code point and check it, and for a sequence cut short by the
// end of input decide whether any continuation could still make it valid.
enum class Ref { Valid, Truncated, Invalid };

Ref reference_classify(const uint8_t *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t b = p[i];
        size_t len;
        uint32_t cp, min;
        if (b < 0x80) {
            i++;
            continue;
        } else if ((b & 0xE0) == 0xC0) {
            len = 2, cp = b & 0x1F, min = 0x80;
        } else if ((b & 0xF0) == 0xE0) {
            len = 3, cp = b & 0x0F, min = 0x800;
        } else if ((b & 0xF8) == 0xF0) {
            len = 4, cp = b & 0x07, min = 0x10000;
        } else {
            return Ref::Invalid;  // continuation byte or F8..FF as a lead
        }
        size_t have = 1;
        for (; have < len && i + have < n; have++) {
            uint8_t c = p[i + have];
            if ((c & 0xC0) != 0x80) return Ref::Invalid;
            cp = (cp << 6) | (c & 0x3F);
        }
        if (have < len) {
            // Cut short: the completions span [lo, hi]. Valid if that range
            // meets [min, 0x10FFFF] outside the surrogates D800..DFFF.
            size_t missing = len - have;
            uint32_t lo = cp << (6 * missing);
            uint32_t hi = lo | ((1u << (6 * missing)) - 1);
            uint32_t a = lo > min ? lo : min;
            uint32_t z = hi < 0x10FFFF ? hi : 0x10FFFF;
            if (a > z) return Ref::Invalid;
            if (a >= 0xD800 && z <= 0xDFFF) return Ref::Invalid;
            return Ref::Truncated;
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return Ref::Invalid;
        i += len;
    }
    return Ref::Valid;
}

struct Verdict {
    bool fed;       // every feed() returned true
    bool complete;  // complete() afterwards
    bool valid() const { return fed && complete; }
};

Verdict validate_whole(const std::string &s) {
    Utf8Validator v;
    Verdict r{};
    r.fed = v.feed(reinterpret_cast<const uint8_t *>(s.data()), s.size());
    r.complete = v.complete();
    return r;
}

Verdict validate_split(const std::string &s, size_t at) {
    Utf8Validator v;
    const uint8_t *p = reinterpret_cast<const uint8_t *>(s.data());
    Verdict r{};
    r.fed = v.feed(p, at) && v.feed(p + at, s.size() - at);
    r.complete = v.complete();
    return r;
}

Verdict validate_bytewise(const std::string &s) {
    Utf8Validator v;
    const uint8_t *p = reinterpret_cast<const uint8_t *>(s.data());
    Verdict r{true, false};
    for (size_t i = 0; i < s.size() && r.fed; i++) r.fed = v.feed(p + i, 1);
    r.complete = v.complete();
    return r;
}

std::string hex(const std::string &s) {
    std::string out;
    char b[4];
    for (unsigned char c : s) {
        snprintf(b, sizeof b, "%02X ", c);
        out += b;
    }
    return out;
}

const std::vector<std::string> &valid_samples() {
    static const std::vector<std::string> v = {
        "",
        "a",
        "hello, world",
        std::string("\x00", 1),
        "\x7f",
        "\xC2\x80",                  // U+0080, smallest 2-byte
        "\xC3\xA9t\xC3\xA9",         // "été"
        "\xDF\xBF",                  // U+07FF, largest 2-byte
        "\xE0\xA0\x80",              // U+0800, smallest 3-byte
        "\xE2\x82\xAC",              // U+20AC euro sign
        "\xED\x9F\xBF",              // U+D7FF, just below the surrogates
        "\xEE\x80\x80",              // U+E000, just above the surrogates
        "\xEF\xBF\xBD",              // U+FFFD
        "\xEF\xBF\xBF",              // U+FFFF
        "\xF0\x90\x80\x80",          // U+10000, smallest 4-byte
        "\xF0\x9F\x98\x80",          // U+1F600
        "\xF4\x8F\xBF\xBF",          // U+10FFFF, the largest code point
        "abcdefgh\xE2\x82\xAC",      // multi-byte after an 8-byte ASCII run
        "abcdefghijklmnop\xF0\x9F\x98\x80qrstuvwxyz0123456789",
        "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5",  // "κόσμε"
        "x\xC2\x80y\xE0\xA0\x80z\xF0\x90\x80\x80!\xF4\x8F\xBF\xBF",
    };
    return v;
}

const std::vector<std::string> &invalid_samples() {
    static const std::vector<std::string> v = {
        "\xC0\x80",                  // overlong U+0000
        "\xC1\xBF",                  // overlong U+007F
        "\xE0\x80\x80",              // overlong 3-byte
        "\xE0\x9F\xBF",              // overlong U+07FF
        "\xF0\x80\x80\x80",          // overlong 4-byte
        "\xF0\x8F\xBF\xBF",          // overlong U+FFFF
        "\xED\xA0\x80",              // U+D800, surrogate
        "\xED\xBF\xBF",              // U+DFFF, surrogate
        "\xED\xA0\x80\xED\xB0\x80",  // surrogate pair (CESU-8)
        "\xF4\x90\x80\x80",          // U+110000, above U+10FFFF
        "\xF5\x80\x80\x80",
        "\xF7\xBF\xBF\xBF",
        "\x80",                      // lone continuation
        "\xBF",
        "a\x80",
        "\xFE",
        "\xFF",
        "\xF8\x88\x80\x80\x80",      // 5-byte form
        "\xC2\x41",                  // lead then ASCII
        "\xE2\x82\x41",
        "\xF0\x9F\x98\x41",
        "\xC2\xC2\x80",              // lead then another lead
        "abcdefgh\xFF",              // bad byte after an 8-byte ASCII run
        "abcdefghijklmnop\xC0\x80",
        "\xE2\x82\xAC\x80",          // stray continuation after a valid sequence
    };
    return v;
}

void test_utf8_accepts_valid_samples(void **) {
    for (const std::string &s : valid_samples()) {
        Verdict r = validate_whole(s);
        if (!r.fed || !r.complete) {
            print_error("rejected valid [%s]\n", hex(s).c_str());
            fail();
        }
    }
}

void test_utf8_rejects_invalid_samples(void **) {
    for (const std::string &s : invalid_samples()) {
        // The sample list itself is checked against the reference decoder.
        assert_true(reference_classify(reinterpret_cast<const uint8_t *>(s.data()), s.size()) ==
                    Ref::Invalid);
        Verdict r = validate_whole(s);
        if (r.fed) {
            print_error("accepted invalid [%s]\n", hex(s).c_str());
            fail();
        }
    }
    // The named cases from RFC 3629 section 10, explicitly.
    assert_false(validate_whole("\xC0\x80").fed);
    assert_false(validate_whole("\xE0\x80\x80").fed);
    assert_false(validate_whole("\xF0\x80\x80\x80").fed);
    assert_false(validate_whole("\xED\xA0\x80").fed);
    assert_false(validate_whole("\xF4\x90\x80\x80").fed);
    assert_false(validate_whole("\x80").fed);
    assert_false(validate_whole("\xFE").fed);
    assert_false(validate_whole("\xFF").fed);
}

void test_utf8_truncated_sequence_is_incomplete(void **) {
    const std::string cut[] = {"\xC3", "\xE2", "\xE2\x82", "\xF0", "\xF0\x9F", "\xF0\x9F\x98",
                               "\xF4\x8F\xBF", "abc\xE2\x82", "\xE2\x82\xAC\xF0\x9F"};
    for (const std::string &s : cut) {
        Verdict r = validate_whole(s);
        if (!r.fed || r.complete) {
            print_error("[%s]: feed %d complete %d, expected 1 0\n", hex(s).c_str(), r.fed,
                        r.complete);
            fail();
        }
    }
}

void test_utf8_reset_forgets_a_partial_sequence(void **) {
    Utf8Validator v;
    const uint8_t part[] = {0xE2, 0x82};
    assert_true(v.feed(part, sizeof part));
    assert_false(v.complete());
    v.reset();
    assert_true(v.complete());
    const uint8_t ascii[] = {'o', 'k'};
    assert_true(v.feed(ascii, sizeof ascii));
    assert_true(v.complete());
    // After reset a continuation byte is no longer expected.
    v.feed(part, 1);
    v.reset();
    const uint8_t cont[] = {0x82};
    assert_false(v.feed(cont, 1));
}

void test_utf8_empty_feed_changes_nothing(void **) {
    Utf8Validator v;
    assert_true(v.feed(nullptr, 0));
    assert_true(v.complete());
    const uint8_t lead[] = {0xF0};
    assert_true(v.feed(lead, 1));
    assert_true(v.feed(lead, 0));
    assert_false(v.complete());
}

void test_utf8_split_feeding_matches_whole_feeding(void **) {
    std::vector<std::string> all = valid_samples();
    all.insert(all.end(), invalid_samples().begin(), invalid_samples().end());
    all.push_back("\xE2\x82");
    all.push_back("\xF0\x9F\x98");
    for (const std::string &s : all) {
        Verdict whole = validate_whole(s);
        for (size_t at = 0; at <= s.size(); at++) {
            Verdict split = validate_split(s, at);
            if (split.valid() != whole.valid() || split.fed != whole.fed) {
                print_error("[%s] split at %zu: valid %d, whole: valid %d\n", hex(s).c_str(), at,
                            split.valid(), whole.valid());
                fail();
            }
        }
        Verdict bytes = validate_bytewise(s);
        if (bytes.valid() != whole.valid() || bytes.fed != whole.fed) {
            print_error("[%s] byte by byte: valid %d, whole: valid %d\n", hex(s).c_str(),
                        bytes.valid(), whole.valid());
            fail();
        }
    }
}

// Checks one input against the reference: valid == feed() && complete(),
// and more precisely feed() fails exactly when no continuation can rescue it.
void check_against_reference(const uint8_t *p, size_t n) {
    Utf8Validator v;
    bool fed = v.feed(p, n);
    bool complete = v.complete();
    Ref want = reference_classify(p, n);
    bool ok = want == Ref::Valid ? (fed && complete)
              : want == Ref::Truncated ? (fed && !complete)
                                       : !fed;
    if (!ok) {
        print_error("[%s] feed %d complete %d, reference says %s\n",
                    hex(std::string(reinterpret_cast<const char *>(p), n)).c_str(), fed, complete,
                    want == Ref::Valid ? "valid" : want == Ref::Truncated ? "truncated" : "invalid");
        fail();
    }
}

void test_utf8_matches_reference_for_every_1_and_2_byte_input(void **) {
    uint8_t b[2];
    for (int x = 0; x < 256; x++) {
        b[0] = static_cast<uint8_t>(x);
        check_against_reference(b, 1);
    }
    size_t valid = 0;
    for (int x = 0; x < 65536; x++) {
        b[0] = static_cast<uint8_t>(x >> 8);
        b[1] = static_cast<uint8_t>(x);
        check_against_reference(b, 2);
        valid += reference_classify(b, 2) == Ref::Valid;
    }
    // 128*128 ASCII pairs + 30*64 two-byte sequences (C2..DF).
    assert_int_equal(valid, 128 * 128 + 30 * 64);
}

// A byte biased towards the interesting boundaries: lead bytes, continuation
// edges and ASCII, mixed with uniform bytes.
uint8_t biased_byte(Rng &rng) {
    static const uint8_t edges[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF,
                                    0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE,
                                    0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xF7, 0xF8, 0xFE, 0xFF};
    switch (rng.below(4)) {
    case 0: return edges[rng.below(sizeof edges)];
    case 1: return static_cast<uint8_t>(0x80 + rng.below(0x40));  // continuation
    case 2: return static_cast<uint8_t>(0xC0 + rng.below(0x40));  // lead or invalid lead
    default: return static_cast<uint8_t>(rng.below(256));
    }
}

void check_random_inputs(size_t n, uint64_t seed, size_t samples) {
    Rng rng(seed);
    size_t counts[3] = {0, 0, 0};
    uint8_t b[4];
    for (size_t k = 0; k < samples; k++) {
        for (size_t i = 0; i < n; i++) b[i] = biased_byte(rng);
        check_against_reference(b, n);
        counts[static_cast<int>(reference_classify(b, n))]++;
    }
    // The sample must exercise every verdict in earnest.
    assert_true(counts[static_cast<int>(Ref::Valid)] > samples / 100);
    assert_true(counts[static_cast<int>(Ref::Truncated)] > samples / 100);
    assert_true(counts[static_cast<int>(Ref::Invalid)] > samples / 100);
}

void test_utf8_matches_reference_for_random_3_byte_inputs(void **) {
    check_random_inputs(3, 3, 1000000);
}

void test_utf8_matches_reference_for_random_4_byte_inputs(void **) {
    check_random_inputs(4, 4, 1000000);
}

void test_utf8_matches_reference_for_all_3_byte_and_edge_4_byte_sequences(void **) {
    // Every E0..EF lead with every pair of continuation bytes, and every F0..F4
    // lead with every second and third continuation byte (fourth varied too).
    uint8_t b[4];
    for (int lead = 0xE0; lead <= 0xEF; lead++)
        for (int c1 = 0x80; c1 <= 0xBF; c1++)
            for (int c2 = 0x80; c2 <= 0xBF; c2++) {
                b[0] = static_cast<uint8_t>(lead);
                b[1] = static_cast<uint8_t>(c1);
                b[2] = static_cast<uint8_t>(c2);
                check_against_reference(b, 3);
            }
    for (int lead = 0xF0; lead <= 0xF4; lead++)
        for (int c1 = 0x80; c1 <= 0xBF; c1++)
            for (int c2 = 0x80; c2 <= 0xBF; c2 += 0x3F)
                for (int c3 = 0x7F; c3 <= 0xC0; c3++) {
                    b[0] = static_cast<uint8_t>(lead);
                    b[1] = static_cast<uint8_t>(c1);
                    b[2] = static_cast<uint8_t>(c2);
                    b[3] = static_cast<uint8_t>(c3);
                    check_against_reference(b, 4);
                }
}

void test_utf8_random_split_feeding_matches_whole(void **) {
    Rng rng(99);
    for (int k = 0; k < 20000; k++) {
        size_t n = 1 + rng.below(24);
        std::string s;
        for (size_t i = 0; i < n; i++)
            s.push_back(static_cast<char>(rng.below(3) == 0 ? 'a' + rng.below(26) : biased_byte(rng)));
        Verdict whole = validate_whole(s);
        Verdict split = validate_split(s, rng.below(static_cast<uint32_t>(n + 1)));
        Verdict bytes = validate_bytewise(s);
        if (split.valid() != whole.valid() || bytes.valid() != whole.valid() ||
            split.fed != whole.fed || bytes.fed != whole.fed) {
            print_error("[%s] whole %d split %d bytewise %d\n", hex(s).c_str(), whole.valid(),
                        split.valid(), bytes.valid());
            fail();
        }
        Ref want = reference_classify(reinterpret_cast<const uint8_t *>(s.data()), s.size());
        assert_int_equal(whole.valid(), want == Ref::Valid);
    }
}

// ------------------------------------------------------------------ Registry

uint32_t slot_of(wsg_conn_id id) { return Registry::slot_of(id); }
uint32_t gen_of(wsg_conn_id id) { return Registry::gen_of(id); }
constexpr int kGenShift = Registry::kSlotBits;

void test_registry_add_assigns_nonzero_ids_found_by_get(void **) {
    Registry reg;
    assert_int_equal(reg.count(), 0);
    assert_true(reg.live().empty());
    std::vector<std::unique_ptr<Conn>> conns;
    std::unordered_set<wsg_conn_id> ids;
    for (int i = 0; i < 10; i++) {
        conns.push_back(std::make_unique<Conn>());
        reg.add(conns.back().get());
        wsg_conn_id id = conns.back()->id;
        assert_true(id != 0);
        assert_true(ids.insert(id).second);
        assert_int_equal(reg.count(), i + 1);
        assert_int_equal(reg.live().size(), i + 1);
    }
    for (const auto &c : conns) assert_ptr_equal(reg.get(c->id), c.get());
    for (const auto &c : conns) reg.remove(c.get());
    assert_int_equal(reg.count(), 0);
}

void test_registry_get_rejects_unknown_ids(void **) {
    Registry reg;
    assert_null(reg.get(0));
    assert_null(reg.get(1));
    assert_null(reg.get(1ull << kGenShift));
    assert_null(reg.get(~0ull));
    Conn c;
    reg.add(&c);
    assert_null(reg.get(0));
    assert_null(reg.get(c.id + (1ull << kGenShift)));         // wrong generation
    assert_null(reg.get(c.id - (uint64_t(gen_of(c.id)) << kGenShift)));  // generation 0
    assert_null(reg.get(c.id + 1));                    // slot never used
    assert_null(reg.get((c.id & ~uint64_t(Registry::kSlotMask)) | Registry::kSlotMask));
    assert_null(reg.get(c.id | (uint64_t(7) << Registry::kNodeShift)));  // another node's id
    assert_ptr_equal(reg.get(c.id), &c);
    reg.remove(&c);
}

void test_registry_removed_id_is_stale(void **) {
    Registry reg;
    Conn a, b;
    reg.add(&a);
    reg.add(&b);
    wsg_conn_id a_id = a.id;
    reg.remove(&a);
    assert_null(reg.get(a_id));
    assert_ptr_equal(reg.get(b.id), &b);
    assert_int_equal(reg.count(), 1);
    assert_int_equal(reg.live().size(), 1);
    assert_ptr_equal(reg.live()[0], &b);
    reg.remove(&b);
    assert_null(reg.get(b.id));
    assert_int_equal(reg.count(), 0);
    assert_true(reg.live().empty());
}

void test_registry_reused_slot_gets_a_new_generation(void **) {
    Registry reg;
    Conn a, b, c;
    reg.add(&a);
    wsg_conn_id first = a.id;
    reg.remove(&a);
    reg.add(&b);
    assert_true(b.id != first);
    assert_int_equal(slot_of(b.id), slot_of(first));  // the freed slot is reused
    assert_true(gen_of(b.id) > gen_of(first));
    assert_null(reg.get(first));
    assert_ptr_equal(reg.get(b.id), &b);
    reg.remove(&b);
    reg.add(&c);
    assert_true(gen_of(c.id) > gen_of(b.id));
    assert_null(reg.get(first));
    assert_null(reg.get(b.id));
    assert_ptr_equal(reg.get(c.id), &c);
    reg.remove(&c);
}

void test_registry_removing_twice_is_harmless(void **) {
    Registry reg;
    Conn a, b, c;
    reg.add(&a);
    reg.add(&b);
    reg.remove(&a);
    reg.remove(&a);  // already gone: no change
    assert_int_equal(reg.count(), 1);
    assert_ptr_equal(reg.get(b.id), &b);
    reg.add(&c);     // takes a's old slot
    reg.remove(&a);  // a's stale id names c's slot now: must not remove c
    assert_int_equal(reg.count(), 2);
    assert_ptr_equal(reg.get(c.id), &c);
    assert_ptr_equal(reg.get(b.id), &b);
    reg.remove(&b);
    reg.remove(&c);
    assert_int_equal(reg.count(), 0);
}

// Every live conn is found by its id, and live() holds exactly `expect`.
void check_live(const Registry &reg, const std::vector<Conn *> &expect) {
    assert_int_equal(reg.count(), expect.size());
    assert_int_equal(reg.live().size(), expect.size());
    std::unordered_set<Conn *> in_live(reg.live().begin(), reg.live().end());
    assert_int_equal(in_live.size(), expect.size());  // no duplicates
    for (Conn *c : expect) {
        assert_true(in_live.count(c) == 1);
        assert_ptr_equal(reg.get(c->id), c);
    }
}

void test_registry_swap_remove_keeps_others_reachable(void **) {
    Registry reg;
    std::vector<std::unique_ptr<Conn>> owned;
    std::vector<Conn *> live;
    for (int i = 0; i < 6; i++) {
        owned.push_back(std::make_unique<Conn>());
        reg.add(owned.back().get());
        live.push_back(owned.back().get());
    }
    auto drop = [&](Conn *c) {
        wsg_conn_id id = c->id;
        reg.remove(c);
        live.erase(std::find(live.begin(), live.end(), c));
        assert_null(reg.get(id));
        check_live(reg, live);
    };
    drop(reg.live()[2]);                   // middle: the last one moves into its place
    drop(reg.live()[0]);                   // front
    drop(reg.live()[reg.live().size() - 1]);  // back: nothing moves
    drop(reg.live()[1]);
    // Add again after removals and remove from the middle once more.
    for (int i = 0; i < 3; i++) {
        owned.push_back(std::make_unique<Conn>());
        reg.add(owned.back().get());
        live.push_back(owned.back().get());
        check_live(reg, live);
    }
    drop(reg.live()[1]);
    while (!live.empty()) drop(live.back());
    assert_int_equal(reg.count(), 0);
}

void test_registry_100k_add_remove_cycles_never_repeat_an_id(void **) {
    Registry reg;
    std::vector<std::unique_ptr<Conn>> pool;
    for (int i = 0; i < 300; i++) pool.push_back(std::make_unique<Conn>());
    std::vector<Conn *> idle, live;
    for (auto &c : pool) idle.push_back(c.get());

    std::unordered_set<wsg_conn_id> seen;
    std::vector<wsg_conn_id> stale;
    Rng rng(2024);
    for (int cycle = 0; cycle < 100000; cycle++) {
        bool add = live.empty() || (!idle.empty() && rng.below(100) < 55);
        if (add) {
            Conn *c = idle.back();
            idle.pop_back();
            reg.add(c);
            if (c->id == 0 || !seen.insert(c->id).second) {
                print_error("cycle %d: id %llx repeated or zero\n", cycle,
                            static_cast<unsigned long long>(c->id));
                fail();
            }
            live.push_back(c);
        } else {
            size_t at = rng.below(static_cast<uint32_t>(live.size()));
            Conn *c = live[at];
            live[at] = live.back();
            live.pop_back();
            wsg_conn_id id = c->id;
            reg.remove(c);
            assert_null(reg.get(id));
            if (stale.size() < 5000) stale.push_back(id);
            idle.push_back(c);
        }
        assert_int_equal(reg.count(), live.size());
        if (cycle % 997 == 0) check_live(reg, live);
    }
    check_live(reg, live);
    for (wsg_conn_id id : stale) assert_null(reg.get(id));
    for (Conn *c : live) reg.remove(c);
    assert_int_equal(reg.count(), 0);
}

void test_registry_reuses_many_freed_slots(void **) {
    // More than 1024 freed slots, so the free list is consumed past the point
    // where it compacts itself.
    Registry reg;
    const int n = 3000;
    std::vector<std::unique_ptr<Conn>> conns;
    std::unordered_set<wsg_conn_id> seen;
    for (int i = 0; i < n; i++) {
        conns.push_back(std::make_unique<Conn>());
        reg.add(conns.back().get());
        assert_true(seen.insert(conns.back()->id).second);
    }
    std::vector<wsg_conn_id> old;
    for (auto &c : conns) {
        old.push_back(c->id);
        reg.remove(c.get());
    }
    assert_int_equal(reg.count(), 0);
    for (int round = 0; round < 3; round++) {
        std::vector<Conn *> live;
        for (auto &c : conns) {
            reg.add(c.get());
            assert_true(seen.insert(c->id).second);
            live.push_back(c.get());
        }
        check_live(reg, live);
        // Remove half, in an order unlike the add order.
        for (size_t i = 0; i < conns.size(); i += 2) reg.remove(conns[i].get());
        for (size_t i = 1; i < conns.size(); i += 2) assert_ptr_equal(reg.get(conns[i]->id), conns[i].get());
        for (size_t i = 1; i < conns.size(); i += 2) reg.remove(conns[i].get());
        assert_int_equal(reg.count(), 0);
    }
    for (wsg_conn_id id : old) assert_null(reg.get(id));
}

// ---------------------------------------------------------------- suggestions

void test_edit_distance_counts_single_edits_and_swaps(void **) {
    using wsgate::edit_distance;
    assert_int_equal(edit_distance("", ""), 0);
    assert_int_equal(edit_distance("", "abc"), 3);
    assert_int_equal(edit_distance("abc", ""), 3);
    assert_int_equal(edit_distance("level", "level"), 0);
    assert_int_equal(edit_distance("levl", "level"), 1);        // insertion
    assert_int_equal(edit_distance("levels", "level"), 1);      // deletion
    assert_int_equal(edit_distance("lever", "level"), 1);       // substitution
    assert_int_equal(edit_distance("prot", "port"), 1);         // neighbours swapped
    assert_int_equal(edit_distance("LOG.Level", "log.level"), 0);  // case-insensitive
    assert_int_equal(edit_distance("kitten", "sitting"), 3);
    assert_int_equal(edit_distance("ping_interval", "ping_interval_ms"), 3);
    // Symmetric.
    assert_int_equal(edit_distance("sitting", "kitten"), 3);
}

void test_closest_names_prefers_whole_names_then_segments(void **) {
    const std::vector<std::string_view> names = {"listen.port", "log.level", "compression.level",
                                                 "heartbeat.ping_interval_ms", "tls.cert_file",
                                                 "tls.key_file", "tls.ca_file", "tls.groups"};
    using V = std::vector<std::string_view>;
    auto closest = [&](std::string_view w, size_t max = 3) { return wsgate::closest_names(w, names, max); };
    assert_true(closest("log.levl") == V{"log.level"});
    assert_true(closest("level") == V({"log.level", "compression.level"}));
    assert_true(closest("level", 1) == V{"log.level"});
    assert_true(closest("ping_interval") == V{"heartbeat.ping_interval_ms"});
    assert_true(closest("cert_file") == V{"tls.cert_file"});
    assert_true(closest("tls") == V({"tls.cert_file", "tls.key_file", "tls.ca_file"}));
    assert_true(closest("tls", 2) == V({"tls.cert_file", "tls.key_file"}));
    assert_true(closest("nonsense").empty());
    assert_true(closest("").empty());
    assert_true(closest(".").empty());
    assert_true(closest("level", 0).empty());
}

// ------------------------------------------------------- token deadline

void test_token_deadline_is_exp_plus_grace_on_the_monotonic_clock(void **) {
    const int64_t unix_now = 1'700'000'000'000, mono = 5'000;
    assert_int_equal(wsgate::token_deadline_ms(1'700'000'002, 0, unix_now, mono), mono + 2'000);
    assert_int_equal(wsgate::token_deadline_ms(1'700'000'002, 500, unix_now, mono), mono + 2'500);
    // Already past: due now, never in the past.
    assert_int_equal(wsgate::token_deadline_ms(1'600'000'000, 0, unix_now, mono), mono);
    assert_int_equal(wsgate::token_deadline_ms(0, 0, unix_now, mono), mono);
    assert_int_equal(wsgate::token_deadline_ms(INT64_MIN, 86'400'000, unix_now, mono), mono);
}

// exp is whatever a token says: around INT64_MAX / 1000 (9.2e15 s) the
// product in milliseconds once wrapped negative and closed the connection at
// once. Every exp from there up must give a deadline at least as late as a
// smaller exp's, and far beyond any test's lifetime.
void test_token_deadline_saturates_instead_of_overflowing(void **) {
    const int64_t unix_now = 1'700'000'000'000, mono = 123'456;
    const int64_t max_s = INT64_MAX / 1000;  // 9223372036854775
    const int64_t exps[] = {1'700'000'002,     4'102'444'800,      INT64_MAX / 4000 - 1, INT64_MAX / 4000,
                            INT64_MAX / 4000 + 1, max_s - 1,       max_s,               max_s + 1,
                            9'300'000'000'000'000, INT64_MAX / 2,  INT64_MAX - 1,       INT64_MAX};
    const int64_t graces[] = {0, 1, 86'400'000};
    const int64_t hundred_years_ms = int64_t(100) * 366 * 86'400'000;
    for (int64_t grace : graces) {
        int64_t prev = 0;
        for (size_t i = 0; i < sizeof exps / sizeof *exps; i++) {
            const int64_t d = wsgate::token_deadline_ms(exps[i], grace, unix_now, mono);
            if (d < prev || d < mono) {
                print_error("exp %lld grace %lld: deadline %lld (previous %lld)\n", (long long)exps[i],
                            (long long)grace, (long long)d, (long long)prev);
                fail();
            }
            if (i >= 2) assert_true(d - mono > hundred_years_ms);  // from about 2.3e15 s on
            prev = d;
        }
    }
    // The far end still leaves room for a clock that has run a long time.
    const int64_t late_mono = INT64_MAX / 2;
    assert_true(wsgate::token_deadline_ms(INT64_MAX, 86'400'000, INT64_MAX / 4, late_mono) > late_mono);
}

// ---------------------------------------------------------------- Episode

void test_episode_logs_start_reminders_and_end_not_each_hit(void **) {
    wsgate::Episode e;
    using Due = wsgate::Episode::Due;
    assert_int_equal(static_cast<int>(e.due(0, 2000, 60000)), static_cast<int>(Due::None));
    assert_true(e.hit(1000, 3));  // starts: log it
    for (int i = 1; i < 100000; i++) assert_false(e.hit(1000 + i / 100, 1));
    assert_int_equal(e.count(), 100000);
    assert_int_equal(e.extra(), 3 + 99999);
    assert_int_equal(static_cast<int>(e.due(2500, 2000, 60000)), static_cast<int>(Due::None));
    // Going on: a reminder after 60 s, then not again at once.
    for (int64_t t = 2000; t <= 61000; t += 1000) e.hit(t);
    assert_int_equal(static_cast<int>(e.due(61000, 2000, 60000)), static_cast<int>(Due::Remind));
    assert_int_equal(static_cast<int>(e.due(61100, 2000, 60000)), static_cast<int>(Due::None));
    // Quiet for 2 s: ended once, with its counts; the next hit starts anew.
    assert_int_equal(static_cast<int>(e.due(63000, 2000, 60000)), static_cast<int>(Due::Ended));
    assert_int_equal(e.duration_ms(63000), 62000);
    assert_int_equal(static_cast<int>(e.due(64000, 2000, 60000)), static_cast<int>(Due::None));
    assert_true(e.hit(70000, 1));
    assert_int_equal(e.count(), 1);
    assert_int_equal(e.extra(), 1);
}

// ---------------------------------------------------------------- open-file limit

void test_fd_limit_is_raised_as_far_as_the_hard_limit_and_never_lowered(void **) {
    struct rlimit saved;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
    if (saved.rlim_max != RLIM_INFINITY && saved.rlim_max < 256) skip();
    struct rlimit low = {128, saved.rlim_max};
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    // Wanted below the hard limit: exactly that.
    wsgate::FdLimit l = wsgate::raise_fd_limit(200);
    assert_true(l.error.empty());
    assert_int_equal(l.soft_before, 128);
    assert_int_equal(l.soft, 200);
    // Wanted above it: up to the hard limit.
    wsgate::FdLimit h = wsgate::raise_fd_limit(UINT64_MAX - 1);
    assert_int_equal(h.soft, h.hard);
    // Never lowered.
    wsgate::FdLimit same = wsgate::raise_fd_limit(10);
    assert_int_equal(same.soft, h.hard);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
    assert_true(wsgate::fds_needed(10000) > 10000 + wsgate::kAcceptSlack);
}

}  // namespace

int main() {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edit_distance_counts_single_edits_and_swaps),
        cmocka_unit_test(test_closest_names_prefers_whole_names_then_segments),
        cmocka_unit_test(test_frame_7bit_lengths_are_exact),
        cmocka_unit_test(test_frame_16bit_lengths_are_exact),
        cmocka_unit_test(test_frame_64bit_lengths_are_exact),
        cmocka_unit_test(test_frame_header_size_matches_rfc6455),
        cmocka_unit_test(test_frame_payload_is_copied_not_borrowed),
        cmocka_unit_test(test_frame_fragments_around_chunk_boundaries),
        cmocka_unit_test(test_frame_fragments_a_one_mebibyte_message),
        cmocka_unit_test(test_frame_fragments_at_the_smallest_batch_size),
        cmocka_unit_test(test_frame_ref_copy_and_move_share_one_frame),
        cmocka_unit_test(test_frame_ref_shared_by_many_queues_is_freed_once),
        cmocka_unit_test(test_queue_ledger_counts_a_shared_frame_once),
        cmocka_unit_test(test_frame_queue_starts_empty),
        cmocka_unit_test(test_frame_queue_is_fifo_with_exact_byte_accounting),
        cmocka_unit_test(test_frame_queue_clear_drops_everything),
        cmocka_unit_test(test_frame_queue_survives_100k_interleaved_push_pop),
        cmocka_unit_test(test_frame_queue_numbers_frames_until_they_leave),
        cmocka_unit_test(test_frame_queue_remove_leaves_a_hole_that_front_and_pop_skip),
        cmocka_unit_test(test_frame_queue_replace_keeps_the_place_and_counts_bytes),
        cmocka_unit_test(test_frame_queue_finds_the_oldest_whole_message),
        cmocka_unit_test(test_frame_queue_with_holes_matches_a_model),
        cmocka_unit_test(test_utf8_accepts_valid_samples),
        cmocka_unit_test(test_utf8_rejects_invalid_samples),
        cmocka_unit_test(test_utf8_truncated_sequence_is_incomplete),
        cmocka_unit_test(test_utf8_reset_forgets_a_partial_sequence),
        cmocka_unit_test(test_utf8_empty_feed_changes_nothing),
        cmocka_unit_test(test_utf8_split_feeding_matches_whole_feeding),
        cmocka_unit_test(test_utf8_matches_reference_for_every_1_and_2_byte_input),
        cmocka_unit_test(test_utf8_matches_reference_for_random_3_byte_inputs),
        cmocka_unit_test(test_utf8_matches_reference_for_random_4_byte_inputs),
        cmocka_unit_test(test_utf8_matches_reference_for_all_3_byte_and_edge_4_byte_sequences),
        cmocka_unit_test(test_utf8_random_split_feeding_matches_whole),
        cmocka_unit_test(test_registry_add_assigns_nonzero_ids_found_by_get),
        cmocka_unit_test(test_registry_get_rejects_unknown_ids),
        cmocka_unit_test(test_registry_removed_id_is_stale),
        cmocka_unit_test(test_registry_reused_slot_gets_a_new_generation),
        cmocka_unit_test(test_registry_removing_twice_is_harmless),
        cmocka_unit_test(test_registry_swap_remove_keeps_others_reachable),
        cmocka_unit_test(test_registry_100k_add_remove_cycles_never_repeat_an_id),
        cmocka_unit_test(test_registry_reuses_many_freed_slots),
        cmocka_unit_test(test_token_deadline_is_exp_plus_grace_on_the_monotonic_clock),
        cmocka_unit_test(test_token_deadline_saturates_instead_of_overflowing),
        cmocka_unit_test(test_episode_logs_start_reminders_and_end_not_each_hit),
        cmocka_unit_test(test_fd_limit_is_raised_as_far_as_the_hard_limit_and_never_lowered),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
