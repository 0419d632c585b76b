// The inbound frame reader (lib/protocol/frame_reader.h): every length class
// and mask alignment, fragments with control frames between them, empty
// frames, each RFC 6455 / RFC 7692 rule accepted and refused with the right
// kind, UTF-8 split anywhere, the size limit at and over, close payloads,
// what happens after a close or an error, and the same events whatever the
// read boundaries: every split point, byte by byte, stopping after every
// callback, each checked against the reference reader
// (tests/protocol/reference_frames.h).
//
// All inputs come from fixed seeds (tests/support/rng.h). The sanitizer build
// (WSGATE_SANITIZE=ON) runs these same tests; every piece is read from a
// buffer of exactly its size so a read past it is caught.
#include "support/rng.h"

#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

extern "C" {
#include <cmocka.h>
}

#include "protocol/frame_recorder.h"
#include "protocol/frame_reader.h"
#include "protocol/reference_frames.h"

using wsgate::proto::close_code_for;
using wsgate::proto::DataChunk;
using wsgate::proto::FrameReader;
using wsgate::proto::FrameReaderOptions;
using wsgate::proto::ReadError;
using namespace wsgate_test;

namespace {

constexpr uint8_t kFin = 0x80, kRsv1 = 0x40, kRsv2 = 0x20, kRsv3 = 0x10;
constexpr uint8_t kCont = 0, kText = 1, kBin = 2, kClose = 8, kPing = 9, kPong = 10;

// ------------------------------------------------------------------ helpers

// A client's stream, each frame with its own masking key.
struct Stream {
    Bytes b;
    uint32_t key = 0x9d2c5680;
    uint32_t next_key() { return key = key * 1664525u + 1013904223u; }
    Stream &frame(uint8_t b0, const std::string &p, LenForm form = LenForm::Minimal, bool masked = true) {
        client_frame(b, b0, p, next_key(), form, masked);
        return *this;
    }
    Stream &text(const std::string &p) { return frame(kFin | kText, p); }
    Stream &binary(const std::string &p) { return frame(kFin | kBin, p); }
    Stream &ping(const std::string &p = "") { return frame(kFin | kPing, p); }
    Stream &pong(const std::string &p = "") { return frame(kFin | kPong, p); }
    Stream &close(int code, const std::string &reason = "") { return frame(kFin | kClose, close_payload(code, reason)); }
    Stream &raw(std::initializer_list<uint8_t> bytes) {
        b.insert(b.end(), bytes);
        return *this;
    }
};

FrameReaderOptions opts(bool deflate = false, uint64_t max = UINT64_MAX) {
    FrameReaderOptions o;
    o.deflate = deflate;
    o.max_message_bytes = max;
    return o;
}

std::string pattern(size_t len, uint32_t seed = 7) {
    std::string s(len, '\0');
    for (size_t i = 0; i < len; i++) s[i] = static_cast<char>((i * 31 + seed + (i >> 8)) & 0xff);
    return s;
}

std::string ascii(size_t len, uint32_t seed = 3) {
    std::string s(len, '\0');
    for (size_t i = 0; i < len; i++) s[i] = static_cast<char>(' ' + (i * 7 + seed) % 95);
    return s;
}

Event message(bool binary, const std::string &payload, std::vector<uint64_t> frames = {}, bool compressed = false) {
    Event e;
    e.binary = binary;
    e.compressed = compressed;
    e.payload = payload;
    e.frames = frames.empty() ? std::vector<uint64_t>{payload.size()} : frames;
    return e;
}

Event control(Event::Kind k, const std::string &payload, int code = 0) {
    Event e;
    e.kind = k;
    e.payload = payload;
    e.code = code;
    return e;
}

// What the test is reading, printed with a failure.
const Bytes *g_stream = nullptr;
const FrameReaderOptions *g_opts = nullptr;

void print_stream() {
    if (!g_stream) return;
    std::string h;
    char b[4];
    for (size_t i = 0; i < g_stream->size() && i < 600; i++) {
        std::snprintf(b, sizeof b, "%02x ", (*g_stream)[i]);
        h += b;
    }
    print_error("stream (%zu bytes, deflate %d, max %llu): %s\n", g_stream->size(), g_opts ? g_opts->deflate : 0,
                g_opts ? static_cast<unsigned long long>(g_opts->max_message_bytes) : 0ull, h.c_str());
}

void expect_same(const Outcome &got, const Outcome &want, const char *what, bool consumed = true) {
    std::string diff = compare(got, want, consumed);
    if (!diff.empty()) {
        print_stream();
        fail_msg("%s: %s", what, diff.c_str());
    }
}

void expect_clean(const std::string &violation, const char *what) {
    if (!violation.empty()) fail_msg("%s: %s", what, violation.c_str());
}

// Reads `s` whole and checks it against the reference reader.
Outcome check_whole(const Bytes &s, const FrameReaderOptions &o = opts()) {
    g_stream = &s;
    g_opts = &o;
    std::string v;
    Outcome whole = read_whole(s, o, &v);
    expect_clean(v, "whole");
    expect_same(whole, reference_read(s, o.deflate, o.max_message_bytes), "whole vs reference");
    return whole;
}

// Reads `s` whole, in two pieces at every split point, byte by byte, and
// with the sink stopping the reader after every callback: all must give
// the reference reader's outcome.
Outcome check_every_split(const Bytes &s, const FrameReaderOptions &o = opts()) {
    Outcome whole = check_whole(s, o);
    std::string v;
    char what[64];
    for (size_t at = 0; at <= s.size(); at++) {
        Outcome split = read_pieces(s, {at}, o, &v);
        std::snprintf(what, sizeof what, "split at %zu", at);
        expect_clean(v, what);
        expect_same(split, whole, what);
    }
    std::vector<size_t> every;
    for (size_t i = 1; i < s.size(); i++) every.push_back(i);
    Outcome bytes = read_pieces(s, every, o, &v);
    expect_clean(v, "byte by byte");
    expect_same(bytes, whole, "byte by byte");
    Outcome stops = read_pieces(s, {}, o, &v, true);
    expect_clean(v, "stop after every callback");
    expect_same(stops, whole, "stop after every callback");
    Outcome both = read_pieces(s, every, o, &v, true);
    expect_clean(v, "byte by byte, stopping");
    expect_same(both, whole, "byte by byte, stopping");
    Outcome relayed = read_pieces(s, every, o, &v, false, true);
    expect_clean(v, "byte by byte, the reader moved or renewed between reads");
    expect_same(relayed, whole, "byte by byte, the reader moved or renewed between reads");
    return whole;
}

// A stream the reader must refuse with `kind`; the reason names the rule.
void expect_refused(const Bytes &s, const FrameReaderOptions &o, ReadError kind, const char *reason_part) {
    Outcome out = check_every_split(s, o);
    if (out.error != kind) fail_msg("error %s, expected %s", error_name(out.error), error_name(kind));
    FrameReader r;
    Recorder rec;
    Bytes copy = s;
    rec.buf_lo = copy.data();
    rec.buf_hi = copy.data() + copy.size();
    r.read(copy.data(), copy.size(), o, rec);
    if (!std::strstr(r.error_reason(), reason_part))
        fail_msg("reason \"%s\", expected one with \"%s\"", r.error_reason(), reason_part);
}

void expect_accepted(const Bytes &s, const FrameReaderOptions &o = opts()) {
    Outcome out = check_every_split(s, o);
    if (out.error != ReadError::None) fail_msg("refused: %s", error_name(out.error));
}

// ------------------------------------------------------------------ basics

void test_reader_is_small(void **) {
    std::printf("sizeof(FrameReader) = %zu bytes\n", sizeof(FrameReader));
    assert_true(sizeof(FrameReader) <= 48);
    FrameReader r;
    assert_int_equal(static_cast<int>(r.error()), static_cast<int>(ReadError::None));
    assert_string_equal(r.error_reason(), "");
    assert_false(r.closed());
    assert_false(r.in_message());
}

void test_close_codes_for_errors(void **) {
    assert_int_equal(close_code_for(ReadError::None), 0);
    assert_int_equal(close_code_for(ReadError::Protocol), 1002);
    assert_int_equal(close_code_for(ReadError::InvalidUtf8), 1007);
    assert_int_equal(close_code_for(ReadError::TooBig), 1009);
    assert_int_equal(close_code_for(ReadError::BadCompression), 1007);
    // Every rule has a kind and a reason short enough for a close frame.
    for (int f = 1; f <= static_cast<int>(FrameReader::Fault::CloseReasonUtf8); f++) {
        auto fault = static_cast<FrameReader::Fault>(f);
        assert_true(FrameReader::kind_of(fault) != ReadError::None);
        assert_true(std::strlen(FrameReader::fault_str(fault)) > 0);
        assert_true(std::strlen(FrameReader::fault_str(fault)) <= 123);
    }
}

void test_empty_read_consumes_nothing(void **) {
    FrameReader r;
    Recorder rec;
    uint8_t b[1] = {0};
    assert_int_equal(r.read(b, 0, opts(), rec), 0);
    assert_true(rec.events.empty());
    assert_true(r.error() == ReadError::None);
}

// ------------------------------------------------------------------ lengths and masks

void test_every_length_class(void **) {
    const size_t lengths[] = {0, 1, 2, 7, 8, 9, 124, 125, 126, 127, 128, 1000, 65535, 65536, 65537, 1 << 20};
    for (size_t len : lengths) {
        for (int binary = 0; binary <= 1; binary++) {
            std::string p = binary ? pattern(len) : ascii(len);
            Stream s;
            s.frame(kFin | (binary ? kBin : kText), p);
            // The header as RFC 6455 5.2 lays it out for this length.
            size_t hdr = len < 126 ? 6 : len <= 0xffff ? 8 : 14;
            assert_int_equal(s.b.size(), hdr + len);
            Outcome out = check_whole(s.b);
            assert_int_equal(out.events.size(), 1);
            assert_true(out.events[0] == message(binary, p));
            assert_int_equal(out.consumed, s.b.size());
        }
    }
}

void test_large_declared_length_waits_for_payload(void **) {
    // 2^63 - 1 declared: accepted (no limit), the reader just waits for it.
    Stream s;
    s.raw({kFin | kBin, 0x80 | 127, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4});
    s.b.insert(s.b.end(), 100, 0x55);
    Outcome out = check_every_split(s.b);
    assert_true(out.error == ReadError::None);
    assert_true(out.in_message);
    assert_true(out.events.empty());
    assert_int_equal(out.consumed, s.b.size());
}

void test_payload_unmasked_in_place(void **) {
    const uint32_t keys[] = {0, 0xffffffff, 0x01020304, 0x80808080, 0xdeadbeef};
    for (uint32_t key : keys)
        for (size_t align = 0; align < 8; align++)
            for (size_t len = 0; len <= 70; len++) {
                std::string p = pattern(len, static_cast<uint32_t>(len + align));
                Bytes frame;
                client_frame(frame, kFin | kBin, p, key);
                // The frame at every alignment of a larger buffer.
                Bytes buf(align + frame.size());
                std::memcpy(buf.data() + align, frame.data(), frame.size());
                FrameReader r;
                Recorder rec;
                rec.buf_lo = buf.data() + align;
                rec.buf_hi = buf.data() + buf.size();
                assert_int_equal(r.read(buf.data() + align, frame.size(), opts(), rec), frame.size());
                expect_clean(rec.violation, "in place");
                assert_int_equal(rec.events.size(), 1);
                assert_true(rec.events[0].payload == p);
                // Unmasked where it lay: the caller's buffer now holds the payload.
                assert_memory_equal(buf.data() + align + frame.size() - len, p.data(), len);
            }
}

void test_mask_rotates_across_reads(void **) {
    // One frame, its payload cut at every offset (so the key is picked up at
    // every rotation), for several payload lengths around the 8-byte step.
    for (size_t len : {1, 3, 4, 5, 8, 9, 15, 16, 17, 31, 33, 40}) {
        Stream s;
        s.binary(pattern(len, 11));
        check_every_split(s.b);
        // Three pieces: every pair of cut points inside the payload.
        for (size_t a = 6; a <= s.b.size(); a++)
            for (size_t c = a; c <= s.b.size(); c++) {
                std::string v;
                Outcome out = read_pieces(s.b, {a, c}, opts(), &v);
                expect_clean(v, "three pieces");
                assert_int_equal(out.events.size(), 1);
                assert_true(out.events[0].payload == pattern(len, 11));
            }
    }
}

void test_non_minimal_lengths_accepted(void **) {
    // Policy (frame_reader.h): non-minimal length encodings are accepted.
    Stream s;
    s.frame(kFin | kText, "hello", LenForm::Bits16)
        .frame(kFin | kBin, "world", LenForm::Bits64)
        .frame(kFin | kBin, pattern(200), LenForm::Bits64)
        .frame(kPing | kFin, "p", LenForm::Bits16)
        .frame(kPong | kFin, "", LenForm::Bits64)
        .frame(kFin | kBin, "", LenForm::Bits16);
    Outcome out = check_every_split(s.b);
    assert_true(out.error == ReadError::None);
    assert_int_equal(out.events.size(), 6);
    assert_true(out.events[0] == message(false, "hello"));
    assert_true(out.events[2] == message(true, pattern(200)));
    assert_true(out.events[3] == control(Event::Ping, "p"));
    // ... but a control frame must still be at most 125 bytes long.
    Stream big;
    big.frame(kPing | kFin, pattern(126), LenForm::Bits16);
    expect_refused(big.b, opts(), ReadError::Protocol, "125");
}

// ------------------------------------------------------------------ fragments

void test_fragments_with_control_frames_between(void **) {
    Stream s;
    s.frame(kText, "Hel").ping("1").frame(kCont, "lo, ").pong("2").ping().frame(kCont | kFin, "world");
    s.frame(kBin, pattern(130)).ping(pattern(125)).frame(kCont, "").frame(kCont | kFin, pattern(3));
    Outcome out = check_every_split(s.b);
    assert_true(out.error == ReadError::None);
    std::vector<Event> want = {control(Event::Ping, "1"), control(Event::Pong, "2"), control(Event::Ping, ""),
                               message(false, "Hello, world", {3, 4, 5}), control(Event::Ping, pattern(125)),
                               message(true, pattern(130) + pattern(3), {130, 0, 3})};
    assert_int_equal(out.events.size(), want.size());
    for (size_t i = 0; i < want.size(); i++)
        if (out.events[i] != want[i]) fail_msg("event %zu: %s", i, describe(out.events[i]).c_str());
}

void test_in_message_follows_the_message(void **) {
    FrameReader r;
    Recorder rec;
    Stream a;
    a.frame(kBin, "ab");
    rec.buf_lo = a.b.data();
    rec.buf_hi = a.b.data() + a.b.size();
    // Only the header of the first fragment: the message has begun.
    assert_int_equal(r.read(a.b.data(), 6, opts(), rec), 6);
    assert_true(r.in_message());
    assert_int_equal(r.read(a.b.data() + 6, 2, opts(), rec), 2);
    assert_true(r.in_message());
    Stream b;
    b.ping("x").frame(kCont | kFin, "c");
    rec.buf_lo = b.b.data();
    rec.buf_hi = b.b.data() + b.b.size();
    assert_int_equal(r.read(b.b.data(), 7, opts(), rec), 7);  // the ping
    assert_true(r.in_message());
    assert_int_equal(r.read(b.b.data() + 7, b.b.size() - 7, opts(), rec), b.b.size() - 7);
    assert_false(r.in_message());
    expect_clean(rec.violation, "in_message");
    assert_int_equal(rec.events.size(), 2);
    assert_true(rec.events[1] == message(true, "abc", {2, 1}));
}

void test_empty_messages_and_fragments(void **) {
    Stream s;
    s.text("").binary("").frame(kText, "").frame(kCont, "").frame(kCont | kFin, "");
    s.frame(kBin, "").frame(kCont, "x").frame(kCont | kFin, "");
    s.frame(kText, "y").ping().frame(kCont | kFin, "");
    Outcome out = check_every_split(s.b);
    std::vector<Event> want = {message(false, ""), message(true, ""), message(false, "", {0, 0, 0}),
                               message(true, "x", {0, 1, 0}), control(Event::Ping, ""), message(false, "y", {1, 0})};
    assert_int_equal(out.events.size(), want.size());
    for (size_t i = 0; i < want.size(); i++)
        if (out.events[i] != want[i]) fail_msg("event %zu: %s", i, describe(out.events[i]).c_str());
    // One zero-length chunk per empty frame, one chunk per other frame when whole.
    FrameReader r;
    Recorder rec;
    Bytes copy = s.b;
    rec.buf_lo = copy.data();
    rec.buf_hi = copy.data() + copy.size();
    r.read(copy.data(), copy.size(), opts(), rec);
    assert_int_equal(rec.chunks, 10);
}

// ------------------------------------------------------------------ header rules

void test_unmasked_frames_refused(void **) {
    for (uint8_t op : {kText, kBin, kPing, kPong, kClose}) {
        Stream ok, bad;
        ok.frame(kFin | op, "");
        bad.frame(kFin | op, "", LenForm::Minimal, false);
        expect_accepted(ok.b);
        expect_refused(bad.b, opts(), ReadError::Protocol, "not masked");
    }
    Stream bad;
    bad.text("first").frame(kFin | kText, "second", LenForm::Minimal, false);
    expect_refused(bad.b, opts(), ReadError::Protocol, "not masked");
}

void test_reserved_bits(void **) {
    for (bool deflate : {false, true}) {
        for (uint8_t rsv : {kRsv2, kRsv3, static_cast<uint8_t>(kRsv2 | kRsv3)}) {
            for (uint8_t op : {kText, kBin, kPing, kClose}) {
                Stream s;
                s.frame(kFin | rsv | op, "a");
                expect_refused(s.b, opts(deflate), ReadError::Protocol, "RSV2/RSV3");
            }
        }
        // RSV1 without permessage-deflate is a protocol error wherever it is.
        Stream s1, s2, s3;
        s1.frame(kFin | kRsv1 | kText, "a");
        s2.frame(kBin, "a").frame(kFin | kRsv1 | kCont, "b");
        s3.frame(kFin | kRsv1 | kPing, "");
        if (!deflate) {
            expect_refused(s1.b, opts(false), ReadError::Protocol, "not negotiated");
            expect_refused(s2.b, opts(false), ReadError::Protocol, "not negotiated");
            expect_refused(s3.b, opts(false), ReadError::Protocol, "not negotiated");
        }
    }
}

void test_rsv1_with_deflate(void **) {
    // On a message's first frame: a compressed message, never UTF-8-checked
    // or size-limited by the reader (the caller inflates and checks).
    Stream s;
    s.frame(kFin | kRsv1 | kText, "\xff\xfe compressed bytes")
        .frame(kRsv1 | kBin, pattern(300))
        .ping("between")
        .frame(kCont | kFin, pattern(10));
    Outcome out = check_every_split(s.b, opts(true, 10));
    assert_true(out.error == ReadError::None);
    assert_int_equal(out.events.size(), 3);
    assert_true(out.events[0] == message(false, "\xff\xfe compressed bytes", {}, true));
    assert_true(out.events[2] == message(true, pattern(300) + pattern(10), {300, 10}, true));
    // Uncompressed messages still are checked on the same connection.
    Stream t;
    t.text("ok").frame(kFin | kText, "\xff");
    expect_refused(t.b, opts(true), ReadError::InvalidUtf8, "UTF-8");

    // On a continuation frame or a control frame: BadCompression (1007).
    Stream c1, c2, c3, c4, c5;
    c1.frame(kRsv1 | kText, "a").frame(kFin | kRsv1 | kCont, "b");
    c2.frame(kText, "a").frame(kFin | kRsv1 | kCont, "b");
    c3.frame(kFin | kRsv1 | kPing, "");
    c4.frame(kFin | kRsv1 | kPong, "x");
    c5.frame(kFin | kRsv1 | kClose, close_payload(1000));
    expect_refused(c1.b, opts(true), ReadError::BadCompression, "continuation");
    expect_refused(c2.b, opts(true), ReadError::BadCompression, "continuation");
    expect_refused(c3.b, opts(true), ReadError::BadCompression, "control");
    expect_refused(c4.b, opts(true), ReadError::BadCompression, "control");
    expect_refused(c5.b, opts(true), ReadError::BadCompression, "control");
}

void test_reserved_opcodes(void **) {
    for (uint8_t op = 0; op < 16; op++) {
        const bool known = op <= 2 || (op >= 8 && op <= 10);
        Stream s;
        if (op == kCont) s.frame(kText, "a");  // so the continuation is in order
        s.frame(kFin | op, op == kClose ? close_payload(1000) : "a");
        if (known)
            expect_accepted(s.b);
        else
            expect_refused(s.b, opts(), ReadError::Protocol, "opcode");
    }
}

void test_control_frame_rules(void **) {
    Stream ok;
    ok.ping(pattern(125)).pong(pattern(125)).close(1000, ascii(123));
    expect_accepted(ok.b);
    for (uint8_t op : {kPing, kPong, kClose}) {
        Stream big, frag;
        big.frame(kFin | op, pattern(126));
        frag.frame(op, "");
        expect_refused(big.b, opts(), ReadError::Protocol, "125");
        expect_refused(frag.b, opts(), ReadError::Protocol, "fragmented control");
    }
    // A 64-bit length on a control frame: refused on the header alone.
    Stream huge;
    huge.raw({kFin | kPing, 0x80 | 127, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4});
    expect_refused(huge.b, opts(), ReadError::Protocol, "125");
}

void test_message_sequence_rules(void **) {
    Stream c1, c2, c3, t1, t2, t3;
    c1.frame(kFin | kCont, "a");
    c2.text("done").frame(kCont, "a");
    c3.frame(kText, "a").frame(kCont | kFin, "b").frame(kCont | kFin, "c");
    t1.frame(kText, "a").text("b");
    t2.frame(kBin, "a").ping().binary("b");
    t3.frame(kText, "a").frame(kCont, "b").frame(kBin, "c");
    expect_refused(c1.b, opts(), ReadError::Protocol, "no message open");
    expect_refused(c2.b, opts(), ReadError::Protocol, "no message open");
    expect_refused(c3.b, opts(), ReadError::Protocol, "no message open");
    expect_refused(t1.b, opts(), ReadError::Protocol, "open message");
    expect_refused(t2.b, opts(), ReadError::Protocol, "open message");
    expect_refused(t3.b, opts(), ReadError::Protocol, "open message");
    // The refused stream's earlier messages were delivered.
    Outcome out = check_whole(c2.b);
    assert_int_equal(out.events.size(), 1);
    assert_true(out.events[0] == message(false, "done"));
}

void test_length_top_bit_refused(void **) {
    Stream s;
    s.raw({kFin | kBin, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4});
    expect_refused(s.b, opts(), ReadError::Protocol, "top bit");
    Stream t;
    t.raw({kFin | kBin, 0x80 | 127, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4});
    expect_refused(t.b, opts(), ReadError::Protocol, "top bit");
}

void test_header_checked_once_whole(void **) {
    // A header cut short is no error yet, whatever it will say.
    Stream s;
    s.text("fine").raw({kFin | 0x3, 0x80 | 127, 0xff});
    Outcome out = check_every_split(s.b);
    assert_true(out.error == ReadError::None);
    assert_int_equal(out.events.size(), 1);
    assert_int_equal(out.consumed, s.b.size());
}

// ------------------------------------------------------------------ UTF-8

const char *const kValidText[] = {
    "a\xC3\xA9" "b",                          // 2-byte
    "\xE2\x82\xAC\xE2\x82\xAC",               // 3-byte twice
    "x\xF0\x9F\x98\x80y\xF4\x8F\xBF\xBF",     // 4-byte, and U+10FFFF
    "\xED\x9F\xBF\xEE\x80\x80\xEF\xBF\xBF",   // around the surrogates, U+FFFF
    "\xC2\x80\xDF\xBF\xE0\xA0\x80\xF0\x90\x80\x80",  // smallest of each length
};

void test_utf8_split_at_every_byte_across_fragments(void **) {
    for (const char *t : kValidText) {
        const std::string text = t;
        // Two fragments, cut at every byte.
        for (size_t a = 0; a <= text.size(); a++) {
            Stream s;
            s.frame(kText, text.substr(0, a)).ping("p").frame(kCont | kFin, text.substr(a));
            Outcome out = check_whole(s.b);
            assert_true(out.error == ReadError::None);
            assert_true(out.events.back().payload == text);
            // Three fragments, every pair of cuts.
            for (size_t b = a; b <= text.size(); b++) {
                Stream s3;
                s3.frame(kText, text.substr(0, a)).frame(kCont, text.substr(a, b - a)).frame(kCont | kFin, text.substr(b));
                Outcome o3 = check_whole(s3.b);
                assert_true(o3.error == ReadError::None);
                assert_true(o3.events.back().payload == text);
            }
        }
        // And fragments cut across reads at every byte.
        Stream s;
        s.frame(kText, text.substr(0, text.size() / 2)).frame(kCont | kFin, text.substr(text.size() / 2));
        check_every_split(s.b);
    }
}

void test_utf8_refused_as_soon_as_it_cannot_be_valid(void **) {
    // Each is invalid by its last byte, with more of the message to come.
    const char *const bad[] = {"\x80", "\xC0", "\xC1\x80", "\xE0\x80", "\xED\xA0", "\xF0\x80", "\xF4\x90", "\xF5",
                               "\xFF", "ab\xC3(", "\xE2\x82(", "\xF0\x9F\x98(", "ok\xC3\xA9\xF8"};
    for (const char *b : bad) {
        Stream s;
        s.frame(kText, b);  // not final: no later frame could rescue it
        expect_refused(s.b, opts(), ReadError::InvalidUtf8, "invalid UTF-8");
        // Split between fragments: refused on the fragment that completes it.
        const std::string t = b;
        for (size_t a = 0; a <= t.size(); a++) {
            Stream f;
            f.frame(kText, t.substr(0, a)).frame(kCont, t.substr(a));
            Outcome out = check_whole(f.b);
            assert_true(out.error == ReadError::InvalidUtf8);
        }
    }
    // Refused before the rest of the frame has arrived.
    Stream s;
    s.frame(kFin | kText, "\xFF" + ascii(100));
    std::string v;
    Outcome first = read_pieces(s.b, {7}, opts(), &v);
    assert_true(first.error == ReadError::InvalidUtf8);
    Bytes head(s.b.begin(), s.b.begin() + 7);
    assert_true(check_whole(head).error == ReadError::InvalidUtf8);
}

void test_utf8_unfinished_at_message_end(void **) {
    const char *const cut[] = {"\xC3", "a\xE2\x82", "\xF0\x9F\x98", "\xF4\x8F\xBF"};
    for (const char *t : cut) {
        Stream fin, more;
        fin.frame(kFin | kText, t);
        more.frame(kText, t);
        expect_refused(fin.b, opts(), ReadError::InvalidUtf8, "ends inside");
        // Not final: still fine, the next fragment may finish it.
        Outcome out = check_every_split(more.b);
        assert_true(out.error == ReadError::None);
        // An empty final fragment ends it unfinished.
        more.frame(kCont | kFin, "");
        expect_refused(more.b, opts(), ReadError::InvalidUtf8, "ends inside");
    }
}

void test_utf8_not_checked_for_binary_or_compressed(void **) {
    Stream s;
    s.binary("\xFF\xC0\x80").frame(kBin, "\xE2").frame(kCont | kFin, "");
    expect_accepted(s.b);
    Stream z;
    z.frame(kFin | kRsv1 | kText, "\xFF\xC0\x80").frame(kRsv1 | kText, "\xE2").frame(kCont | kFin, "");
    expect_accepted(z.b, opts(true));
}

// ------------------------------------------------------------------ size limit

void test_size_limit_at_and_over(void **) {
    const uint64_t max = 100;
    Stream at, over, frag_at, frag_over, two;
    at.binary(pattern(100));
    over.binary(pattern(101));
    frag_at.frame(kText, ascii(50)).ping(pattern(125)).frame(kCont, "").frame(kCont | kFin, ascii(50));
    frag_over.frame(kText, ascii(50)).frame(kCont, ascii(49)).frame(kCont | kFin, ascii(2));
    two.binary(pattern(100)).text(ascii(100));  // the limit is per message
    expect_accepted(at.b, opts(false, max));
    expect_refused(over.b, opts(false, max), ReadError::TooBig, "too big");
    expect_accepted(frag_at.b, opts(false, max));
    expect_refused(frag_over.b, opts(false, max), ReadError::TooBig, "too big");
    expect_accepted(two.b, opts(false, max));
    // A limit of 0 allows empty messages only.
    Stream empty, one;
    empty.text("").frame(kBin, "").frame(kCont | kFin, "");
    one.binary("x");
    expect_accepted(empty.b, opts(false, 0));
    expect_refused(one.b, opts(false, 0), ReadError::TooBig, "too big");
    // Declared lengths summed close to 2^64 do not wrap.
    Stream wrap;
    wrap.raw({kBin, 0x80 | 127, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4});
    Outcome first = check_whole(wrap.b, opts(false, UINT64_MAX));
    assert_true(first.error == ReadError::None);
}

void test_size_limit_refuses_on_the_header(void **) {
    // Only the header of the over-limit frame has arrived: refused already,
    // and none of its payload was handed over.
    Stream s;
    s.frame(kBin, pattern(60)).frame(kCont | kFin, pattern(41));
    const size_t second = 6 + 60;
    Bytes head(s.b.begin(), s.b.begin() + static_cast<std::ptrdiff_t>(second + 6));
    FrameReader r;
    Recorder rec;
    rec.buf_lo = head.data();
    rec.buf_hi = head.data() + head.size();
    r.read(head.data(), head.size(), opts(false, 100), rec);
    assert_true(r.error() == ReadError::TooBig);
    assert_int_equal(rec.chunks, 1);  // the first fragment only
    assert_true(rec.events.empty());
    assert_int_equal(close_code_for(r.error()), 1009);
}

void test_compressed_messages_not_limited(void **) {
    Stream s;
    s.frame(kFin | kRsv1 | kBin, pattern(1000)).frame(kRsv1 | kText, pattern(600)).frame(kCont | kFin, pattern(600));
    expect_accepted(s.b, opts(true, 100));
}

// ------------------------------------------------------------------ close frames

bool wire_code(int c) { return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999); }

void test_close_without_payload(void **) {
    Stream s;
    s.frame(kFin | kClose, "");
    Outcome out = check_every_split(s.b);
    assert_true(out.closed);
    assert_int_equal(out.events.size(), 1);
    assert_true(out.events[0] == control(Event::Close, "", 1005));
    FrameReader r;
    Recorder rec;
    Bytes copy = s.b;
    assert_int_equal(r.peer_close_code(), 0);
    r.read(copy.data(), copy.size(), opts(), rec);
    assert_int_equal(r.peer_close_code(), 1005);
}

void test_close_one_byte_refused(void **) {
    Stream s;
    s.frame(kFin | kClose, "\x03");
    expect_refused(s.b, opts(), ReadError::Protocol, "1-byte");
    FrameReader r;
    Recorder rec;
    Bytes copy = s.b;
    r.read(copy.data(), copy.size(), opts(), rec);
    assert_int_equal(r.peer_close_code(), 0);  // no code to report
}

void test_close_codes(void **) {
    // The named edges both ways, then every code against the rule.
    for (int c : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999}) {
        Stream s;
        s.close(c, "bye");
        Outcome out = check_every_split(s.b);
        assert_true(out.error == ReadError::None);
        assert_true(out.events[0] == control(Event::Close, "bye", c));
    }
    for (int c : {0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535}) {
        Stream s;
        s.close(c);
        expect_refused(s.b, opts(), ReadError::Protocol, "close code");
    }
    for (int c = 0; c < 65536; c++) {
        Stream s;
        s.close(c);
        Bytes copy = s.b;
        FrameReader r;
        Recorder rec;
        r.read(copy.data(), copy.size(), opts(), rec);
        if ((r.error() == ReadError::None) != wire_code(c)) fail_msg("close code %d: %s", c, r.error_reason());
        if (r.closed() != wire_code(c)) fail_msg("close code %d: closed %d", c, r.closed());
        // Refused or not, the code the peer sent is kept for the close event.
        if (r.peer_close_code() != c) fail_msg("close code %d: peer_close_code %d", c, r.peer_close_code());
    }
}

void test_close_reason_utf8(void **) {
    Stream ok, bad, cut, longest;
    ok.close(1000, "au revoir \xC3\xA0 bient\xC3\xB4t \xF0\x9F\x91\x8B");
    bad.close(1001, "bad \xC0\xAF");
    cut.close(1001, "cut \xE2\x82");
    longest.close(4000, ascii(123));
    expect_accepted(ok.b);
    expect_accepted(longest.b);
    expect_refused(bad.b, opts(), ReadError::InvalidUtf8, "reason");
    expect_refused(cut.b, opts(), ReadError::InvalidUtf8, "reason");
}

void test_nothing_read_after_close(void **) {
    Stream s;
    s.text("before").close(1000, "done").text("after").raw({0xff, 0xff, 0x00});
    Outcome out = check_every_split(s.b);
    assert_true(out.closed);
    assert_int_equal(out.events.size(), 2);
    const size_t close_end = 6 + 6 + 6 + 6;
    assert_int_equal(out.consumed, close_end);
    // Further reads consume nothing and report nothing.
    FrameReader r;
    Recorder rec;
    Bytes copy = s.b;
    assert_int_equal(r.read(copy.data(), copy.size(), opts(), rec), close_end);
    assert_true(r.closed());
    assert_int_equal(r.read(copy.data() + close_end, copy.size() - close_end, opts(), rec), 0);
    assert_int_equal(rec.events.size(), 2);
    // What follows the close was not touched (still masked).
    assert_memory_equal(copy.data() + close_end, s.b.data() + close_end, s.b.size() - close_end);
}

void test_nothing_read_after_an_error(void **) {
    Stream s;
    s.text("ok").frame(kFin | 0x3, "x").text("never");
    FrameReader r;
    Recorder rec;
    Bytes copy = s.b;
    size_t used = r.read(copy.data(), copy.size(), opts(), rec);
    assert_true(used < copy.size());
    assert_true(r.error() == ReadError::Protocol);
    assert_int_equal(rec.events.size(), 1);
    Stream more;
    more.text("still never");
    assert_int_equal(r.read(more.b.data(), more.b.size(), opts(), rec), 0);
    assert_true(r.error() == ReadError::Protocol);
    assert_int_equal(rec.events.size(), 1);
}

void test_split_control_frame_buffer(void **) {
    // A ping split across reads is collected, then handed over whole; a
    // reader dropped halfway frees its buffer (the sanitizer build checks).
    Stream s;
    s.ping(pattern(125)).close(1000, ascii(100));
    check_every_split(s.b);
    FrameReader *r = new FrameReader;
    Recorder rec;
    Bytes copy = s.b;
    assert_int_equal(r->read(copy.data(), 50, opts(), rec), 50);
    assert_true(rec.events.empty());
    delete r;
}

// ------------------------------------------------------------------ stopping

struct StopOnMessage {
    int messages = 0, pings = 0;
    bool stop = false;
    bool stop_requested() const { return stop; }
    void on_data(const uint8_t *, size_t, const DataChunk &c) {
        if (c.message_end) {
            messages++;
            stop = true;
        }
    }
    void on_ping(const uint8_t *, size_t) { pings++; }
    void on_pong(const uint8_t *, size_t) {}
    void on_close(int, const uint8_t *, size_t) {}
};

void test_stop_requested_returns_at_the_boundary(void **) {
    Stream s;
    s.binary("one").ping().binary("two");
    Bytes copy = s.b;
    FrameReader r;
    StopOnMessage sink;
    size_t used = r.read(copy.data(), copy.size(), opts(), sink);
    assert_int_equal(used, 9);  // exactly the first frame
    assert_int_equal(sink.messages, 1);
    assert_int_equal(sink.pings, 0);
    assert_memory_equal(copy.data() + used, s.b.data() + used, s.b.size() - used);  // untouched
    sink.stop = false;
    assert_int_equal(r.read(copy.data() + used, copy.size() - used, opts(), sink), copy.size() - used);
    assert_int_equal(sink.messages, 2);
    assert_int_equal(sink.pings, 1);
}

// ------------------------------------------------------------------ every split point

Bytes mixed_stream() {
    Stream s;
    s.text("Hello, \xE2\x82\xAC world")
        .frame(kBin, pattern(200))
        .ping("are you there")
        .frame(kCont, "")
        .pong(pattern(125))
        .frame(kCont | kFin, pattern(9))
        .frame(kText, "\xF0\x9F")
        .frame(kCont, "\x98")
        .frame(kCont | kFin, "\x80!", LenForm::Bits64)
        .text("")
        .frame(kFin | kBin, pattern(130), LenForm::Bits16)
        .ping()
        .close(1001, "going away \xC3\xA9")
        .text("ignored after close");
    return s.b;
}

void test_every_split_point_mixed_stream(void **) {
    Bytes s = mixed_stream();
    Outcome out = check_every_split(s);
    assert_true(out.closed);
    assert_int_equal(out.events.size(), 9);
}

void test_every_pair_of_split_points(void **) {
    Stream s;
    s.frame(kText, "a\xC3\xA9").ping("p").frame(kCont | kFin, "\xE2\x82\xAC").binary(pattern(20)).close(1000);
    Outcome whole = check_whole(s.b);
    std::string v;
    for (size_t a = 0; a <= s.b.size(); a++)
        for (size_t b = a; b <= s.b.size(); b++) {
            Outcome out = read_pieces(s.b, {a, b}, opts(), &v);
            expect_clean(v, "two cuts");
            expect_same(out, whole, "two cuts");
        }
}

void test_every_split_point_of_refused_streams(void **) {
    struct Case {
        Stream s;
        FrameReaderOptions o;
        ReadError want;
    };
    std::vector<Case> cases(6);
    cases[0].s.text("x").frame(kText, "a\xE2").frame(kCont | kFin, "\x28");
    cases[0].want = ReadError::InvalidUtf8;
    cases[1].s.frame(kBin, pattern(70)).ping("p").frame(kCont | kFin, pattern(40));
    cases[1].o = opts(false, 100);
    cases[1].want = ReadError::TooBig;
    cases[2].s.frame(kRsv1 | kText, "z").frame(kCont | kRsv1 | kFin, "z");
    cases[2].o = opts(true);
    cases[2].want = ReadError::BadCompression;
    cases[3].s.ping("x").close(1005);
    cases[3].want = ReadError::Protocol;
    cases[4].s.close(1000, "\xED\xA0\x80");
    cases[4].want = ReadError::InvalidUtf8;
    cases[5].s.binary("a").frame(kFin | kBin, "b", LenForm::Minimal, false);
    cases[5].want = ReadError::Protocol;
    for (Case &c : cases) {
        Outcome out = check_every_split(c.s.b, c.o);
        assert_true(out.error == c.want);
    }
}

// ------------------------------------------------------------------ random streams

// Random client streams: mostly well-formed frames (text with multi-byte
// code points, binary, fragments, control frames, length forms), with
// sometimes a flipped bit, a bad frame or a cut, under random options.
Bytes random_stream(Rng &rng, FrameReaderOptions &o) {
    o.deflate = rng.below(3) == 0;
    const uint64_t limits[] = {UINT64_MAX, UINT64_MAX, 0, 5, 100, 300};
    o.max_message_bytes = limits[rng.below(6)];
    Stream s;
    s.key = static_cast<uint32_t>(rng.next());
    bool open = false;
    const int frames = 1 + static_cast<int>(rng.below(8));
    for (int i = 0; i < frames; i++) {
        size_t len;
        switch (rng.below(6)) {
        case 0: len = 0; break;
        case 1: len = 120 + rng.below(10); break;
        case 2: len = 200 + rng.below(200); break;
        default: len = rng.below(12); break;
        }
        std::string p;
        static const char *const cps[] = {"a", "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80", "z"};
        if (rng.below(4) == 0)
            p = pattern(len, static_cast<uint32_t>(rng.next()));
        else
            while (p.size() < len) p += cps[rng.below(5)];
        uint8_t b0;
        const uint32_t kind = rng.below(10);
        if (kind < 2) {
            b0 = kPing;
            if (p.size() > 125) p.resize(125);
        } else if (kind < 3) {
            b0 = kPong;
            if (p.size() > 125) p.resize(125);
        } else if (kind < 4 && rng.below(3) == 0) {
            b0 = kClose;
            p = close_payload(rng.below(4) ? 1000 : static_cast<int>(rng.below(5000)), p.substr(0, 20));
        } else if (open) {
            b0 = kCont;
        } else {
            b0 = rng.below(2) ? kText : kBin;
        }
        const bool control = b0 >= 8;
        bool fin = control || rng.below(2);
        if (!control) open = !fin;
        b0 |= fin ? kFin : 0;
        if (o.deflate && (b0 & 0x0f) != kCont && !control && rng.below(2)) b0 |= kRsv1;
        if (o.deflate && rng.below(30) == 0) b0 |= kRsv1;  // where it is not allowed, maybe
        if (rng.below(40) == 0) b0 ^= static_cast<uint8_t>(1u << rng.below(8));  // a bad bit, maybe
        const LenForm forms[] = {LenForm::Minimal, LenForm::Minimal, LenForm::Bits16, LenForm::Bits64};
        s.frame(b0, p, forms[rng.below(4)], rng.below(50) != 0);
    }
    if (rng.below(4) == 0 && !s.b.empty()) s.b[rng.below(static_cast<uint32_t>(s.b.size()))] ^= 1u << rng.below(8);
    if (rng.below(4) == 0) s.b.resize(rng.below(static_cast<uint32_t>(s.b.size() + 1)));
    return s.b;
}

void test_random_streams_match_reference(void **) {
    Rng rng(20260601);
    int errors[5] = {0, 0, 0, 0, 0};
    for (int k = 0; k < 20000; k++) {
        FrameReaderOptions o;
        Bytes s = random_stream(rng, o);
        Outcome whole = check_whole(s, o);
        errors[static_cast<int>(whole.error)]++;
        std::vector<size_t> cuts;
        for (size_t at = rng.below(16); at < s.size(); at += 1 + rng.below(40)) cuts.push_back(at);
        std::string v;
        Outcome split = read_pieces(s, cuts, o, &v, rng.below(2) == 0);
        expect_clean(v, "random cuts");
        expect_same(split, whole, "random cuts");
    }
    // The sample must reach every outcome in earnest.
    for (int e = 0; e < 5; e++) {
        std::printf("%s: %d\n", error_name(static_cast<ReadError>(e)), errors[e]);
        assert_true(errors[e] > 100);
    }
}

}  // namespace

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reader_is_small),
        cmocka_unit_test(test_close_codes_for_errors),
        cmocka_unit_test(test_empty_read_consumes_nothing),
        cmocka_unit_test(test_every_length_class),
        cmocka_unit_test(test_large_declared_length_waits_for_payload),
        cmocka_unit_test(test_payload_unmasked_in_place),
        cmocka_unit_test(test_mask_rotates_across_reads),
        cmocka_unit_test(test_non_minimal_lengths_accepted),
        cmocka_unit_test(test_fragments_with_control_frames_between),
        cmocka_unit_test(test_in_message_follows_the_message),
        cmocka_unit_test(test_empty_messages_and_fragments),
        cmocka_unit_test(test_unmasked_frames_refused),
        cmocka_unit_test(test_reserved_bits),
        cmocka_unit_test(test_rsv1_with_deflate),
        cmocka_unit_test(test_reserved_opcodes),
        cmocka_unit_test(test_control_frame_rules),
        cmocka_unit_test(test_message_sequence_rules),
        cmocka_unit_test(test_length_top_bit_refused),
        cmocka_unit_test(test_header_checked_once_whole),
        cmocka_unit_test(test_utf8_split_at_every_byte_across_fragments),
        cmocka_unit_test(test_utf8_refused_as_soon_as_it_cannot_be_valid),
        cmocka_unit_test(test_utf8_unfinished_at_message_end),
        cmocka_unit_test(test_utf8_not_checked_for_binary_or_compressed),
        cmocka_unit_test(test_size_limit_at_and_over),
        cmocka_unit_test(test_size_limit_refuses_on_the_header),
        cmocka_unit_test(test_compressed_messages_not_limited),
        cmocka_unit_test(test_close_without_payload),
        cmocka_unit_test(test_close_one_byte_refused),
        cmocka_unit_test(test_close_codes),
        cmocka_unit_test(test_close_reason_utf8),
        cmocka_unit_test(test_nothing_read_after_close),
        cmocka_unit_test(test_nothing_read_after_an_error),
        cmocka_unit_test(test_split_control_frame_buffer),
        cmocka_unit_test(test_stop_requested_returns_at_the_boundary),
        cmocka_unit_test(test_every_split_point_mixed_stream),
        cmocka_unit_test(test_every_pair_of_split_points),
        cmocka_unit_test(test_every_split_point_of_refused_streams),
        cmocka_unit_test(test_random_streams_match_reference),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
