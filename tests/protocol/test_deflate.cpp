// permessage-deflate (lib/deflate): which offer of a Sec-WebSocket-Extensions
// value the server accepts (pmd_negotiate), the bounded inflater checked
// against zlib used as RFC 7692 clients use it, the server's compressor
// checked with an independent raw inflater, and RSV1 on server frames.
//
// All inputs come from fixed seeds (tests/support/rng.h): every run sees the
// same data. The sanitizer build (WSGATE_SANITIZE=ON) runs these same tests.
#include "support/rng.h"
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

extern "C" {
#include <cmocka.h>
}

#include "protocol/deflate.h"
#include "protocol/frame.h"

using wsgate::Deflater;
using wsgate::Frame;
using wsgate::FrameBuilder;
using wsgate::FrameList;
using wsgate::Inflater;

namespace {

using wsgate_test::Rng;
using Bytes = std::vector<uint8_t>;
using Result = Inflater::Result;

// ------------------------------------------------------------------ helpers

const char *result_name(Result r) {
    switch (r) {
    case Result::Ok: return "Ok";
    case Result::TooBig: return "TooBig";
    case Result::Corrupt: return "Corrupt";
    }
    return "?";
}

#define assert_result(got, want)                                                              \
    do {                                                                                      \
        Result got_ = (got), want_ = (want);                                                  \
        if (got_ != want_) fail_msg("%s, expected %s", result_name(got_), result_name(want_)); \
    } while (0)

Bytes pattern(size_t len, uint32_t seed = 7) {
    Bytes v(len);
    for (size_t i = 0; i < len; i++) v[i] = static_cast<uint8_t>((i * 31 + seed + (i >> 8)) & 0xff);
    return v;
}

Bytes random_bytes(size_t len, Rng &rng) {
    Bytes v(len);
    for (size_t i = 0; i < len; i++) v[i] = static_cast<uint8_t>(rng.next() >> 24);
    return v;
}

// Text from a small vocabulary: compresses well, yet every message differs.
Bytes words(size_t len, Rng &rng) {
    static const char *const kWords[] = {
        "alpha", "beta",    "gamma",  "delta", "socket", "frame", "deflate", "message",
        "window", "server", "client", "{\"id\":", "\"value\":", "[1,2,3]", "null", "true",
        "42",    "\n",      "lorem",  "ipsum", "\xC3\xA9t\xC3\xA9"};
    const uint32_t n = sizeof kWords / sizeof kWords[0];
    Bytes v;
    v.reserve(len + 16);
    while (v.size() < len) {
        const char *w = kWords[rng.below(n)];
        v.insert(v.end(), w, w + std::strlen(w));
        v.push_back(' ');
    }
    v.resize(len);
    return v;
}

Bytes text(const char *s) { return Bytes(s, s + std::strlen(s)); }

Bytes concat(const Bytes &a, const Bytes &b) {
    Bytes v = a;
    v.insert(v.end(), b.begin(), b.end());
    return v;
}

std::string as_string(const Bytes &b) { return std::string(b.begin(), b.end()); }

// Fails with the first differing offset: assert_memory_equal on 300 KiB
// buffers prints too much to read.
void expect_same(const std::string &got, const Bytes &want, const char *what) {
    if (got.size() == want.size() && (want.empty() || std::memcmp(got.data(), want.data(), want.size()) == 0))
        return;
    size_t i = 0;
    while (i < got.size() && i < want.size() && uint8_t(got[i]) == want[i]) i++;
    fail_msg("%s: got %zu bytes, expected %zu; first difference at %zu", what, got.size(), want.size(), i);
}

// True when `got` is the first got.size() bytes of `want`.
bool is_prefix(const std::string &got, const Bytes &want) {
    return got.size() <= want.size() && (got.empty() || std::memcmp(got.data(), want.data(), got.size()) == 0);
}

const uint8_t kTail[4] = {0x00, 0x00, 0xff, 0xff};

// A client's compressor as RFC 7692 section 7.2.1 describes it: raw DEFLATE,
// every message ended by a sync flush whose 00 00 ff ff tail is left out.
class ClientDeflater {
public:
    explicit ClientDeflater(int level = Z_DEFAULT_COMPRESSION, int window_bits = 15,
                            int strategy = Z_DEFAULT_STRATEGY) {
        if (deflateInit2(&zs_, level, Z_DEFLATED, -window_bits, 8, strategy) != Z_OK)
            fail_msg("deflateInit2(level %d, bits %d, strategy %d)", level, window_bits, strategy);
    }
    ~ClientDeflater() { deflateEnd(&zs_); }
    ClientDeflater(const ClientDeflater &) = delete;
    ClientDeflater &operator=(const ClientDeflater &) = delete;

    // Appends what `len` bytes compress to with `flush` (Z_NO_FLUSH,
    // Z_SYNC_FLUSH, Z_FULL_FLUSH or Z_FINISH).
    void put(const void *p, size_t len, int flush, Bytes *out) {
        static const uint8_t kNothing = 0;
        zs_.next_in = const_cast<Bytef *>(len ? static_cast<const Bytef *>(p) : &kNothing);
        zs_.avail_in = static_cast<uInt>(len);
        for (;;) {
            const size_t old = out->size(), room = 65536;
            out->resize(old + room);
            zs_.next_out = out->data() + old;
            zs_.avail_out = static_cast<uInt>(room);
            int r = deflate(&zs_, flush);
            out->resize(old + room - zs_.avail_out);
            if (r == Z_STREAM_END) return;
            if (r != Z_OK && r != Z_BUF_ERROR) fail_msg("deflate: %d", r);
            if (zs_.avail_in == 0 && zs_.avail_out != 0 && flush != Z_FINISH) return;
        }
    }
    void put(const Bytes &b, int flush, Bytes *out) { put(b.data(), b.size(), flush, out); }
    // One message as a client sends it: sync flush, tail stripped. zlib
    // makes nothing of an empty message right after a flush; RFC 7692
    // section 7.2.3.6 has the sender send 0x00 (an empty stored block's
    // header) then.
    Bytes message(const Bytes &plain) {
        Bytes z;
        put(plain, Z_SYNC_FLUSH, &z);
        if (z.empty()) return Bytes{0x00};
        strip_tail(&z);
        return z;
    }
    // A new stream: what a client with client_no_context_takeover does
    // between messages, and what any client must do after Z_FINISH.
    void reset() {
        if (deflateReset(&zs_) != Z_OK) fail_msg("deflateReset");
    }
    static void strip_tail(Bytes *z) {
        if (z->size() < 4 || std::memcmp(z->data() + z->size() - 4, kTail, 4) != 0)
            fail_msg("a sync flush did not end with 00 00 ff ff");
        z->resize(z->size() - 4);
    }

private:
    z_stream zs_{};
};

// Feeds `z` to `inf` in chunks of 0..max_chunk bytes chosen by `rng`, with
// `last` on the final call only (sometimes a 0-byte call after all the
// data). Stops at the first result other than Ok. After every call *out must
// stay within limit + 1 bytes, and within `limit` while the result is Ok.
Result feed_split(Inflater &inf, const Bytes &z, Rng &rng, size_t max_chunk, std::string *out,
                  size_t limit) {
    static const uint8_t kNothing = 0;
    const bool empty_last = rng.below(4) == 0;
    if (max_chunk == 0) max_chunk = 1;
    size_t off = 0;
    for (;;) {
        const size_t left = z.size() - off;
        size_t k = rng.below(8) == 0 ? 0 : 1 + rng.below(static_cast<uint32_t>(max_chunk));
        if (k > left) k = left;
        const bool last = empty_last ? left == 0 : k == left;
        const uint8_t *p = z.empty() ? &kNothing : z.data() + off;
        Result r = inf.feed(p, k, last, out, limit);
        if (out->size() > limit && out->size() - limit > 1)  // limit + 1 may wrap
            fail_msg("out grew to %zu bytes, limit %zu", out->size(), limit);
        if (r == Result::Ok && out->size() > limit)
            fail_msg("Ok with %zu bytes out, limit %zu", out->size(), limit);
        off += k;
        if (r != Result::Ok || last) return r;
    }
}

// One whole call, `last` set.
Result feed_whole(Inflater &inf, const Bytes &z, std::string *out, size_t limit) {
    static const uint8_t kNothing = 0;
    return inf.feed(z.empty() ? &kNothing : z.data(), z.size(), true, out, limit);
}

// `z` inflates to exactly `plain` through `inf` (a message limit of exactly
// plain.size(), chunked by `rng`), then end_message(keep_context).
void expect_message(Inflater &inf, const Bytes &z, const Bytes &plain, Rng &rng, size_t max_chunk,
                    bool keep_context, const char *what) {
    std::string out;
    Result r = feed_split(inf, z, rng, max_chunk, &out, plain.size());
    if (r != Result::Ok)
        fail_msg("%s: %s (%s) for %zu compressed bytes of a %zu-byte message", what,
                 result_name(r), inf.error(), z.size(), plain.size());
    expect_same(out, plain, what);
    inf.end_message(keep_context);
}

// An independent raw inflater: `z` with the stripped tail put back must
// decode completely, without ending the DEFLATE stream.
Bytes zlib_inflate(const Bytes &z) {
    Bytes in = concat(z, Bytes(kTail, kTail + 4));
    z_stream zs{};
    if (inflateInit2(&zs, -15) != Z_OK) fail_msg("inflateInit2");
    zs.next_in = in.data();
    zs.avail_in = static_cast<uInt>(in.size());
    Bytes out;
    for (;;) {
        const size_t old = out.size(), room = 65536;
        out.resize(old + room);
        zs.next_out = out.data() + old;
        zs.avail_out = static_cast<uInt>(room);
        int r = inflate(&zs, Z_SYNC_FLUSH);
        out.resize(old + room - zs.avail_out);
        if (r != Z_OK && r != Z_BUF_ERROR) {
            inflateEnd(&zs);
            fail_msg("zlib inflate: %d (%s)", r, zs.msg ? zs.msg : "");
        }
        if (zs.avail_in == 0 && zs.avail_out != 0) break;
    }
    inflateEnd(&zs);
    return out;
}

// A server frame as RFC 6455 section 5.2 reads it, checking what every
// server frame must satisfy: no mask, RSV2 and RSV3 clear, minimal length
// encoding, size == header + payload.
struct Wire {
    bool fin, rsv1;
    int opcode;
    size_t payload;
    const uint8_t *data;
};

Wire parse_frame(Frame *f) {
    assert_non_null(f);
    const uint8_t *d = f->data();
    assert_true(f->size() >= 2);
    Wire w{};
    w.fin = (d[0] & 0x80) != 0;
    w.rsv1 = (d[0] & 0x40) != 0;
    assert_int_equal(d[0] & 0x30, 0);
    w.opcode = d[0] & 0x0f;
    assert_int_equal(d[1] & 0x80, 0);
    size_t len7 = d[1] & 0x7f, header;
    if (len7 < 126) {
        header = 2;
        w.payload = len7;
    } else if (len7 == 126) {
        assert_true(f->size() >= 4);
        header = 4;
        w.payload = (size_t(d[2]) << 8) | d[3];
        assert_true(w.payload >= 126);
    } else {
        assert_true(f->size() >= 10);
        header = 10;
        uint64_t v = 0;
        for (int i = 0; i < 8; i++) v = (v << 8) | d[2 + i];
        assert_true((v >> 63) == 0);
        assert_true(v > 0xffff);
        w.payload = static_cast<size_t>(v);
    }
    w.data = d + header;
    assert_int_equal(f->size(), header + w.payload);
    assert_int_equal(f->payload(), w.payload);
    assert_int_equal(header, FrameBuilder::header_size(w.payload));
    return w;
}

// Checks the frames of one server message and returns its payload joined:
// opcode on the first frame and 0 (continuation) after it, FIN on the last
// frame only, RSV1 on the first frame exactly when `compressed`, every frame
// within max_frame, fragments as FrameBuilder splits them.
Bytes joined_payload(const FrameList &frames, int opcode, bool compressed, size_t max_frame) {
    assert_false(frames.empty());
    Bytes joined;
    for (size_t i = 0; i < frames.size(); i++) {
        Wire w = parse_frame(frames[i].get());
        const bool first = i == 0, last = i + 1 == frames.size();
        assert_int_equal(w.opcode, first ? opcode : 0);
        assert_int_equal(w.fin, last);
        assert_int_equal(w.rsv1, first && compressed);
        assert_true(frames[i]->size() <= max_frame);
        if (frames.size() > 1) assert_true(w.payload > 0);
        joined.insert(joined.end(), w.data, w.data + w.payload);
    }
    const size_t chunk = max_frame - FrameBuilder::header_size(max_frame);
    const size_t want = joined.size() <= chunk ? 1 : (joined.size() + chunk - 1) / chunk;
    assert_int_equal(frames.size(), want);
    return joined;
}

// A max_frame that never fragments the messages used here.
constexpr size_t kNoSplit = size_t(64) << 20;

// ------------------------------------------------------------------ pmd_negotiate

struct OfferCase {
    const char *header;
    bool accepted;
    bool client_no_context_takeover;  // offered (the table runs with the policy asking for nothing)
    int server_window_bits;           // what the answer grants
};

const OfferCase kOfferCases[] = {
    {"", false, false, 15},
    // One offer, every allowed parameter.
    {"permessage-deflate", true, false, 15},
    {"permessage-deflate; client_no_context_takeover", true, true, 15},
    {"permessage-deflate; server_no_context_takeover", true, false, 15},
    {"permessage-deflate; server_no_context_takeover; client_no_context_takeover", true, true, 15},
    {"permessage-deflate; client_no_context_takeover; server_no_context_takeover", true, true, 15},
    {"permessage-deflate; client_max_window_bits", true, false, 15},
    {"permessage-deflate; client_max_window_bits; client_no_context_takeover", true, true, 15},
    {"permessage-deflate; client_max_window_bits=8", true, false, 15},
    {"permessage-deflate; client_max_window_bits=9", true, false, 15},
    {"permessage-deflate; client_max_window_bits=15", true, false, 15},
    {"permessage-deflate; client_max_window_bits=\"10\"", true, false, 15},
    {"permessage-deflate; client_max_window_bits=\"15\"", true, false, 15},
    {"permessage-deflate; client_max_window_bits = 12", true, false, 15},
    {"permessage-deflate; server_no_context_takeover; client_max_window_bits=11; client_no_context_takeover",
     true, true, 15},
    // client_max_window_bits: 8..15 only, no leading zero, no sign, no spaces in quotes.
    {"permessage-deflate; client_max_window_bits=7", false, false, 15},
    {"permessage-deflate; client_max_window_bits=16", false, false, 15},
    {"permessage-deflate; client_max_window_bits=0", false, false, 15},
    {"permessage-deflate; client_max_window_bits=08", false, false, 15},
    {"permessage-deflate; client_max_window_bits=015", false, false, 15},
    {"permessage-deflate; client_max_window_bits=100", false, false, 15},
    {"permessage-deflate; client_max_window_bits=", false, false, 15},
    {"permessage-deflate; client_max_window_bits=\"\"", false, false, 15},
    {"permessage-deflate; client_max_window_bits=\"9", false, false, 15},
    {"permessage-deflate; client_max_window_bits=9\"", false, false, 15},
    {"permessage-deflate; client_max_window_bits=\" 9\"", false, false, 15},
    {"permessage-deflate; client_max_window_bits=1a", false, false, 15},
    {"permessage-deflate; client_max_window_bits=+9", false, false, 15},
    {"permessage-deflate; client_max_window_bits=-9", false, false, 15},
    // server_max_window_bits: granted 9..15 (our answer echoes it); 8 is
    // declined (zlib cannot make an 8-bit window); it needs a value.
    {"permessage-deflate; server_max_window_bits=10", true, false, 10},
    {"permessage-deflate; server_max_window_bits=15", true, false, 15},
    {"permessage-deflate; server_max_window_bits=9", true, false, 9},
    {"permessage-deflate; server_max_window_bits=\"12\"", true, false, 12},
    {"permessage-deflate; client_no_context_takeover; server_max_window_bits=11", true, true, 11},
    {"permessage-deflate; server_max_window_bits=8", false, false, 15},
    {"permessage-deflate; server_max_window_bits", false, false, 15},
    {"permessage-deflate; server_max_window_bits=16", false, false, 15},
    {"permessage-deflate; server_max_window_bits=10; server_max_window_bits=10", false, false, 15},
    // Unknown parameters, values on flags, repeats, empty parameters.
    {"permessage-deflate; foo", false, false, 15},
    {"permessage-deflate; x-webkit=1", false, false, 15},
    {"permessage-deflate; client_no_context_takeover=1", false, false, 15},
    {"permessage-deflate; client_no_context_takeover=", false, false, 15},
    {"permessage-deflate; server_no_context_takeover=true", false, false, 15},
    {"permessage-deflate; client_no_context_takeoverx", false, false, 15},
    {"permessage-deflate; client_no_context_takeover; client_no_context_takeover", false, false, 15},
    {"permessage-deflate; server_no_context_takeover; server_no_context_takeover", false, false, 15},
    {"permessage-deflate; client_max_window_bits; client_max_window_bits=10", false, false, 15},
    {"permessage-deflate; client_max_window_bits=10; client_max_window_bits=10", false, false, 15},
    {"permessage-deflate;", false, false, 15},
    {"permessage-deflate; ", false, false, 15},
    {"permessage-deflate;; client_no_context_takeover", false, false, 15},
    {"permessage-deflate; client_no_context_takeover;", false, false, 15},
    {"permessage-deflate; =10", false, false, 15},
    // Names: case-sensitive tokens; a name with a space inside is no offer.
    {"Permessage-Deflate", false, false, 15},
    {"PERMESSAGE-DEFLATE; client_no_context_takeover", false, false, 15},
    {"permessage-deflate; Client_No_Context_Takeover", false, false, 15},
    {"permessage-deflate; CLIENT_MAX_WINDOW_BITS=10", false, false, 15},
    {"permessage -deflate", false, false, 15},
    {"permessage -deflate; client_no_context_takeover", false, false, 15},
    {"p e r m e s s a g e - d e f l a t e", false, false, 15},
    {"permessage-deflatex", false, false, 15},
    {"x-permessage-deflate", false, false, 15},
    {"permessage_deflate", false, false, 15},
    {"permessage-deflate=1", false, false, 15},
    // Whitespace (spaces and tabs, RFC 7230 OWS) around names and parameters is fine.
    {"  permessage-deflate  ", true, false, 15},
    {"permessage-deflate;client_no_context_takeover", true, true, 15},
    {"permessage-deflate ;client_no_context_takeover ", true, true, 15},
    {"   permessage-deflate   ;   server_no_context_takeover   ;   client_no_context_takeover   ", true, true, 15},
    {"permessage-deflate\t", true, false, 15},
    {"\tpermessage-deflate", true, false, 15},
    {"permessage-deflate;\tclient_no_context_takeover", true, true, 15},
    {"x-foo;\ta=1, permessage-deflate", true, false, 15},
    // Several offers: the first acceptable one, in the client's order.
    {"permessage-deflate; client_no_context_takeover, permessage-deflate", true, true, 15},
    {"permessage-deflate, permessage-deflate; client_no_context_takeover", true, false, 15},
    {"permessage-deflate;client_max_window_bits=10,permessage-deflate", true, false, 15},
    {"permessage-deflate; server_max_window_bits=8, permessage-deflate; client_no_context_takeover", true, true, 15},
    {"permessage-deflate; server_max_window_bits=8, permessage-deflate; server_max_window_bits=12, "
     "permessage-deflate; client_max_window_bits",
     true, false, 12},
    {"permessage -deflate, permessage-deflate; client_no_context_takeover", true, true, 15},
    {"permessage-deflate; foo, permessage-deflate; bar", false, false, 15},
    {"permessage-deflate, permessage-deflate; foo", true, false, 15},
    {"permessage-deflate; foo, x-foo, permessage-deflate; client_no_context_takeover", true, true, 15},
    // Other extensions before and after are not ours to answer.
    {"x-webkit-deflate-frame", false, false, 15},
    {"x-webkit-deflate-frame, permessage-deflate", true, false, 15},
    {"permessage-deflate, x-webkit-deflate-frame", true, false, 15},
    {"x-foo; a=1, permessage-deflate; client_no_context_takeover, x-bar", true, true, 15},
    {"deflate-frame; no_context_takeover, permessage-deflate; client_max_window_bits=12", true, false, 15},
    {"x-foo; client_no_context_takeover, permessage-deflate", true, false, 15},
    {"foo; permessage-deflate", false, false, 15},
    // Empty list items.
    {",permessage-deflate", true, false, 15},
    {", , permessage-deflate; client_no_context_takeover,,", true, true, 15},
    {",", false, false, 15},
    {"   ", false, false, 15},
    // Quoted strings: commas and semicolons inside quotes do not split.
    {"x-foo; a=\"b\", permessage-deflate", true, false, 15},
    {"x-foo; a=\"b,c\", permessage-deflate", true, false, 15},
    {"x-foo; a=\"b;c\", permessage-deflate", true, false, 15},
    {"permessage-deflate; client_max_window_bits=\"10\", x-foo; a=\"1,2\"", true, false, 15},
};

// The answer an agreement must carry.
std::string expected_response(bool cnct, int bits) {
    std::string r = "permessage-deflate; server_no_context_takeover";
    if (cnct) r += "; client_no_context_takeover";
    if (bits < 15) r += "; server_max_window_bits=" + std::to_string(bits);
    return r;
}

void test_offer_table(void **) {
    int failures = 0;
    wsgate::PmdPolicy keep;  // clients keep their context unless they offer otherwise
    keep.ask_client_no_context_takeover = false;
    wsgate::PmdPolicy ask;   // the default: every client is asked to reset its context
    for (const OfferCase &c : kOfferCases) {
        wsgate::PmdAgreement got = wsgate::pmd_negotiate(c.header, keep);
        bool ok = got.accepted == c.accepted;
        if (ok && c.accepted)
            ok = got.client_no_context_takeover == c.client_no_context_takeover &&
                 got.server_window_bits == c.server_window_bits &&
                 got.response == expected_response(c.client_no_context_takeover, c.server_window_bits);
        if (ok && !c.accepted) ok = got.response.empty();
        wsgate::PmdAgreement asked = wsgate::pmd_negotiate(c.header, ask);
        if (ok) ok = asked.accepted == c.accepted && (!c.accepted || (asked.client_no_context_takeover &&
                     asked.response == expected_response(true, c.server_window_bits)));
        if (!ok) {
            print_error("'%s': accepted %d, cnct %d, bits %d, response '%s'; expected %d, %d, %d\n", c.header,
                        got.accepted, got.client_no_context_takeover, got.server_window_bits, got.response.c_str(),
                        c.accepted, c.client_no_context_takeover, c.server_window_bits);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
    assert_true(sizeof kOfferCases / sizeof kOfferCases[0] >= 40);
}

void test_offer_header_has_no_length_limit_of_its_own(void **) {
    // The HTTP parser bounds the request; the negotiation reads whatever it got.
    std::string h;
    for (int i = 0; i < 200; i++) h += "x-ext-" + std::to_string(i) + "; a=1, ";
    h += "permessage-deflate; client_no_context_takeover";
    assert_true(h.size() > 2000);
    wsgate::PmdPolicy keep;
    keep.ask_client_no_context_takeover = false;
    wsgate::PmdAgreement got = wsgate::pmd_negotiate(h, keep);
    assert_true(got.accepted);
    assert_true(got.client_no_context_takeover);
}

void test_offer_reads_only_the_view(void **) {
    // The view ends before text that would change the answer.
    const char buf[] = "permessage-deflate; client_no_context_takeover; foo=10";
    std::string_view v(buf, std::strlen("permessage-deflate; client_no_context_takeover"));
    wsgate::PmdPolicy policy;
    assert_true(wsgate::pmd_negotiate(v, policy).accepted);
    assert_false(wsgate::pmd_negotiate(buf, policy).accepted);
}

// ------------------------------------------------------------------ Inflater against zlib

void test_inflate_rfc7692_examples(void **) {
    // RFC 7692 section 7.2.3.
    const Bytes hello = text("Hello");
    const Bytes one = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};                      // 7.2.3.1
    const Bytes again = {0xf2, 0x00, 0x11, 0x00, 0x00};                                // 7.2.3.2
    const Bytes stored = {0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f}; // 7.2.3.3
    const Bytes bfinal = {0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00};             // 7.2.3.4
    const Bytes two_blocks = {0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff,
                              0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00};                     // 7.2.3.5
    Rng rng(1);
    for (size_t chunk : {size_t(1), size_t(3), size_t(100)}) {
        Inflater inf;
        assert_string_equal(inf.error(), "");
        expect_message(inf, one, hello, rng, chunk, true, "7.2.3.1");
        expect_message(inf, again, hello, rng, chunk, true, "7.2.3.2 (shares the window)");
        expect_message(inf, two_blocks, hello, rng, chunk, true, "7.2.3.5");
        expect_message(inf, bfinal, hello, rng, chunk, true, "7.2.3.4");
        // After BFINAL the next message starts a fresh stream.
        expect_message(inf, one, hello, rng, chunk, true, "7.2.3.1 after BFINAL");
        expect_message(inf, again, hello, rng, chunk, true, "7.2.3.2 after BFINAL");
        // Last: with the tail appended, this one stops inside a stored
        // block's header (no sync flush), so no window can follow it.
        expect_message(inf, stored, hello, rng, chunk, false, "7.2.3.3");
        expect_message(inf, one, hello, rng, chunk, false, "7.2.3.1 after 7.2.3.3");
        assert_string_equal(inf.error(), "");
    }
    // 7.2.3.2 alone needs the window of the message before it.
    Inflater fresh;
    std::string out;
    assert_result(feed_whole(fresh, again, &out, 1000), Result::Corrupt);
    assert_string_not_equal(fresh.error(), "");
}

void test_inflate_round_trips_0_to_300k(void **) {
    const size_t sizes[] = {0,     1,     2,     3,     4,     5,     7,     100,    255,
                            256,   1000,  4095,  4096,  4097,  16383, 16384, 16385,  32767,
                            32768, 32769, 65535, 65536, 65537, 100000, 200003, 300 * 1024};
    Rng rng(11);
    Inflater reused;  // one inflater for everything, its state freed after each message
    for (size_t len : sizes) {
        for (int kind = 0; kind < 4; kind++) {
            Bytes plain = kind == 0   ? pattern(len, static_cast<uint32_t>(len))
                          : kind == 1 ? random_bytes(len, rng)
                          : kind == 2 ? words(len, rng)
                                      : Bytes(len, 0);
            ClientDeflater client;
            const Bytes z = client.message(plain);
            char what[96];
            std::snprintf(what, sizeof what, "%zu bytes, kind %d", len, kind);
            for (size_t chunk : {size_t(1), size_t(13), size_t(1000), size_t(70000)}) {
                if (chunk == 1 && z.size() > 20000) continue;  // bytewise only for the small ones
                Inflater inf;
                expect_message(inf, z, plain, rng, chunk, true, what);
            }
            expect_message(reused, z, plain, rng, 4096, false, what);
            // The same in one call.
            Inflater whole;
            std::string out;
            assert_result(feed_whole(whole, z, &out, len), Result::Ok);
            expect_same(out, plain, what);
        }
    }
}

void test_inflate_any_client_window_level_and_strategy(void **) {
    // client_max_window_bits lets a client use 8..15 (zlib: 9..15) bits;
    // levels and strategies change the blocks it sends.
    Rng rng(12);
    const Bytes m1 = words(70000, rng);
    const Bytes m2 = concat(Bytes(m1.begin() + 1000, m1.begin() + 9000), words(3000, rng));
    const int strategies[] = {Z_DEFAULT_STRATEGY, Z_FILTERED, Z_HUFFMAN_ONLY, Z_RLE, Z_FIXED};
    for (int bits = 9; bits <= 15; bits++) {
        for (int level : {0, 1, 6, 9}) {
            for (int strategy : strategies) {
                ClientDeflater client(level, bits, strategy);
                Inflater inf;
                char what[96];
                std::snprintf(what, sizeof what, "bits %d level %d strategy %d", bits, level, strategy);
                expect_message(inf, client.message(m1), m1, rng, 5000, true, what);
                expect_message(inf, client.message(m2), m2, rng, 5000, true, what);
            }
        }
    }
}

// 50 messages from one client compressor that keeps its context; m[1]
// repeats m[0], others reuse earlier text.
std::vector<Bytes> related_messages(Rng &rng, size_t count) {
    std::vector<Bytes> m;
    m.push_back(words(3000, rng));
    m.push_back(m[0]);
    while (m.size() < count) {
        const Bytes &earlier = m[rng.below(static_cast<uint32_t>(m.size()))];
        Bytes next = words(rng.below(2000), rng);
        size_t from = rng.below(static_cast<uint32_t>(earlier.size()));
        next.insert(next.end(), earlier.begin() + static_cast<std::ptrdiff_t>(from), earlier.end());
        m.push_back(next);
    }
    return m;
}

void test_inflate_context_takeover_across_50_messages(void **) {
    Rng rng(13);
    const std::vector<Bytes> m = related_messages(rng, 50);
    ClientDeflater client;
    std::vector<Bytes> z;
    size_t total_plain = 0, total_z = 0;
    for (const Bytes &plain : m) {
        z.push_back(client.message(plain));
        total_plain += plain.size();
        total_z += z.back().size();
    }
    // The repeat costs a few bytes only: it refers to the window.
    assert_true(z[1].size() * 10 < z[0].size());
    assert_true(total_z * 4 < total_plain);

    Inflater inf;
    for (size_t i = 0; i < m.size(); i++) {
        char what[64];
        std::snprintf(what, sizeof what, "message %zu of %zu", i, m.size());
        expect_message(inf, z[i], m[i], rng, 1 + i * 37, true, what);
    }

    // A server that wrongly starts afresh cannot read message 1: the test
    // above would fail for an inflater that dropped its window.
    Inflater fresh;
    std::string out;
    assert_result(feed_whole(fresh, z[1], &out, m[1].size()), Result::Corrupt);
    assert_string_not_equal(fresh.error(), "");

    Inflater resets;
    expect_message(resets, z[0], m[0], rng, 100, false, "message 0");
    out.clear();
    assert_result(feed_split(resets, z[1], rng, 100, &out, m[1].size()), Result::Corrupt);
    assert_string_not_equal(resets.error(), "");
}

void test_inflate_empty_messages_between_context_messages(void **) {
    Rng rng(23);
    const Bytes m = words(2000, rng), empty;
    ClientDeflater client;
    Inflater inf;
    expect_message(inf, client.message(m), m, rng, 100, true, "first");
    for (int i = 0; i < 3; i++) {
        const Bytes z = client.message(empty);
        assert_true(z == Bytes{0x00});  // RFC 7692 7.2.3.6
        expect_message(inf, z, empty, rng, 1, true, "empty");
    }
    const Bytes z = client.message(m);
    assert_true(z.size() * 10 < m.size());  // still refers to the first message
    expect_message(inf, z, m, rng, 100, true, "after the empty ones");
}

void test_inflate_client_no_context_takeover(void **) {
    Rng rng(14);
    const std::vector<Bytes> m = related_messages(rng, 50);
    ClientDeflater client;
    Inflater inf, keeps;
    for (size_t i = 0; i < m.size(); i++) {
        const Bytes z = client.message(m[i]);
        client.reset();  // client_no_context_takeover: every message its own stream
        char what[64];
        std::snprintf(what, sizeof what, "message %zu", i);
        expect_message(inf, z, m[i], rng, 777, false, what);
        // Each message stands alone...
        Inflater fresh;
        expect_message(fresh, z, m[i], rng, 3000, false, what);
        // ...and a window kept anyway does no harm.
        expect_message(keeps, z, m[i], rng, 50, true, what);
    }
}

void test_inflate_bfinal_then_a_normal_message(void **) {
    Rng rng(15);
    const Bytes m0 = words(5000, rng), m1 = words(20000, rng), m2 = words(7000, rng);
    const Bytes m3 = concat(m2, m2);
    for (size_t chunk : {size_t(1), size_t(64), size_t(100000)}) {
        ClientDeflater client;
        Inflater inf;
        // A normal message, then one the client ends with Z_FINISH (BFINAL),
        // sent as it is (no 00 00 ff ff to strip), in the same stream.
        expect_message(inf, client.message(m0), m0, rng, chunk, true, "before BFINAL");
        Bytes z1;
        client.put(m1, Z_FINISH, &z1);
        expect_message(inf, z1, m1, rng, chunk, true, "BFINAL message");
        // The client must start a new stream; so must the server.
        client.reset();
        expect_message(inf, client.message(m2), m2, rng, chunk, true, "after BFINAL");
        expect_message(inf, client.message(m3), m3, rng, chunk, true, "context after BFINAL");
    }
    // Whatever follows BFINAL in the same message is ignored.
    for (const Bytes &junk : {Bytes{0x06}, Bytes{0xff, 0xff, 0xff, 0xff}, text("not deflate at all"),
                              Bytes(kTail, kTail + 4)}) {
        ClientDeflater client;
        Bytes z1;
        client.put(m1, Z_FINISH, &z1);
        Inflater inf;
        expect_message(inf, concat(z1, junk), m1, rng, 333, true, "junk after BFINAL");
        client.reset();
        expect_message(inf, client.message(m2), m2, rng, 333, true, "after junk");
    }
    // An empty BFINAL message.
    ClientDeflater client;
    Bytes z;
    client.put(nullptr, 0, Z_FINISH, &z);
    Inflater inf;
    expect_message(inf, z, Bytes(), rng, 1, true, "empty BFINAL");
    client.reset();
    expect_message(inf, client.message(m0), m0, rng, 1000, true, "after empty BFINAL");
}

void test_inflate_limit_boundary(void **) {
    Rng rng(16);
    const size_t lens[] = {1, 2, 125, 16383, 16384, 16385, 16386, 32768, 65536, 65537, 200000};
    for (size_t len : lens) {
        for (int kind = 0; kind < 3; kind++) {
            const Bytes plain = kind == 0 ? words(len, rng) : kind == 1 ? random_bytes(len, rng) : Bytes(len, 'z');
            ClientDeflater client;
            const Bytes z = client.message(plain);
            char what[64];
            std::snprintf(what, sizeof what, "%zu bytes, kind %d", len, kind);
            for (size_t chunk : {size_t(7), size_t(4096), z.size()}) {
                // Exactly the limit: Ok.
                Inflater at;
                expect_message(at, z, plain, rng, chunk, false, what);
                // One byte over: TooBig, with exactly limit + 1 bytes out, all correct.
                for (size_t limit : {len - 1, len / 2, size_t(0)}) {
                    Inflater over;
                    std::string out;
                    Result r = feed_split(over, z, rng, chunk, &out, limit);
                    if (r != Result::TooBig) fail_msg("%s, limit %zu: %s", what, limit, result_name(r));
                    assert_int_equal(out.size(), limit + 1);
                    assert_true(is_prefix(out, plain));
                    assert_string_equal(over.error(), "");
                }
            }
        }
    }
    // The empty message fits a limit of 0.
    ClientDeflater client;
    Inflater inf;
    expect_message(inf, client.message(Bytes()), Bytes(), rng, 1, true, "empty message");
}

void test_inflate_appends_and_counts_what_out_held(void **) {
    Rng rng(17);
    const Bytes plain = words(10000, rng);
    ClientDeflater client;
    const Bytes z = client.message(plain);
    Inflater inf;
    std::string out = "abc";
    assert_result(feed_split(inf, z, rng, 500, &out, 3 + plain.size()), Result::Ok);
    assert_int_equal(out.size(), 3 + plain.size());
    assert_memory_equal(out.data(), "abc", 3);
    assert_memory_equal(out.data() + 3, plain.data(), plain.size());

    Inflater small;
    out = "abc";
    assert_result(feed_split(small, z, rng, 500, &out, 2 + plain.size()), Result::TooBig);
    assert_int_equal(out.size(), 3 + plain.size());
}

void test_inflate_limit_too_large_to_pass(void **) {
    // No output can pass a limit of SIZE_MAX: every valid message is Ok.
    // (The server's limit is at most 1 GiB; this is the class's contract.)
    Rng rng(22);
    const Bytes hello = text("Hello");
    const Bytes one = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
    for (size_t limit : {SIZE_MAX - 1, SIZE_MAX}) {
        Inflater inf;
        std::string out;
        Result r = feed_whole(inf, one, &out, limit);
        if (r != Result::Ok)
            fail_msg("limit %zu: %s (%s), %zu bytes out", limit, result_name(r), inf.error(), out.size());
        expect_same(out, hello, "limit near SIZE_MAX");
        const Bytes plain = words(100000, rng);
        ClientDeflater client;
        const Bytes z = client.message(plain);
        Inflater big;
        out.clear();
        r = feed_split(big, z, rng, 4096, &out, limit);
        if (r != Result::Ok) fail_msg("limit %zu, 100000 bytes: %s (%s)", limit, result_name(r), big.error());
        expect_same(out, plain, "limit near SIZE_MAX");
    }
}

void test_inflate_refuses_a_1gib_bomb_quickly(void **) {
    // 1 GiB of zeros compressed (about 4.5 MB at level 1), built 1 MiB at a time.
    const size_t kGiB = size_t(1) << 30, kMiB = size_t(1) << 20;
    ClientDeflater client(1);
    const Bytes zeros(kMiB, 0);
    Bytes bomb;
    for (size_t done = 0; done < kGiB; done += kMiB) client.put(zeros, Z_NO_FLUSH, &bomb);
    client.put(nullptr, 0, Z_SYNC_FLUSH, &bomb);
    ClientDeflater::strip_tail(&bomb);
    // It really holds 1 GiB: zlib counts it (no buffer of that size).
    {
        Bytes in = concat(bomb, Bytes(kTail, kTail + 4));
        z_stream zs{};
        assert_int_equal(inflateInit2(&zs, -15), Z_OK);
        zs.next_in = in.data();
        zs.avail_in = static_cast<uInt>(in.size());
        Bytes buf(kMiB);
        size_t total = 0;
        for (;;) {
            zs.next_out = buf.data();
            zs.avail_out = static_cast<uInt>(buf.size());
            int r = inflate(&zs, Z_SYNC_FLUSH);
            total += buf.size() - zs.avail_out;
            assert_true(r == Z_OK || r == Z_BUF_ERROR);
            if (zs.avail_in == 0 && zs.avail_out != 0) break;
        }
        inflateEnd(&zs);
        assert_int_equal(total, kGiB);
    }

    const size_t limit = 64 * 1024;
    // All of it in one call.
    {
        Inflater inf;
        std::string out;
        auto t0 = std::chrono::steady_clock::now();
        assert_result(feed_whole(inf, bomb, &out, limit), Result::TooBig);
        double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        assert_int_equal(out.size(), limit + 1);
        assert_true(out.capacity() <= 4 * (limit + 1));
        assert_true(std::all_of(out.begin(), out.end(), [](char c) { return c == 0; }));
        if (secs > 0.5) fail_msg("refusing the bomb took %.3f s", secs);
    }
    // In 4 KiB chunks: refused on the first one.
    {
        Inflater inf;
        std::string out;
        size_t calls = 0;
        Result r = Result::Ok;
        for (size_t off = 0; off < bomb.size() && r == Result::Ok; off += 4096) {
            size_t n = std::min<size_t>(4096, bomb.size() - off);
            r = inf.feed(bomb.data() + off, n, off + n == bomb.size(), &out, limit);
            calls++;
        }
        assert_result(r, Result::TooBig);
        assert_int_equal(calls, 1);
        assert_int_equal(out.size(), limit + 1);
    }
}

void test_inflate_rejects_corrupt_data(void **) {
    Rng rng(18);
    struct Bad {
        const char *what;
        Bytes z;
    };
    // A good start, sync-flushed (00 00 ff ff kept): the next block header
    // begins on the next byte.
    const Bytes good_z = [] {
        ClientDeflater c;
        Bytes z;
        c.put(text("a perfectly good message, a perfectly good message"), Z_SYNC_FLUSH, &z);
        return z;
    }();
    const Bad bad[] = {
        {"reserved block type 11", {0x06}},
        {"reserved block type, BFINAL", {0xff, 0xff, 0xff}},
        {"stored block with a wrong NLEN", {0x00, 0x05, 0x00, 0x00, 0x00, 'H', 'e', 'l', 'l', 'o'}},
        {"dynamic block with too many length codes", {0xfc, 0xff, 0xff, 0xff, 0xff, 0xff}},
        {"distance before any data", {0xf2, 0x00, 0x11, 0x00, 0x00}},
        {"a good start, then a reserved block type", concat(good_z, Bytes{0x06})},
    };
    for (const Bad &b : bad) {
        for (size_t chunk : {size_t(1), size_t(1000)}) {
            Inflater inf;
            assert_string_equal(inf.error(), "");
            std::string out;
            Result r = feed_split(inf, b.z, rng, chunk, &out, 1 << 20);
            if (r != Result::Corrupt) fail_msg("%s: %s", b.what, result_name(r));
            if (std::strlen(inf.error()) == 0) fail_msg("%s: no error text", b.what);
            // end_message(false) frees the broken state: a new stream works.
            inf.end_message(false);
            ClientDeflater client;
            Bytes plain = words(3000, rng);
            expect_message(inf, client.message(plain), plain, rng, 100, true, "after Corrupt");
        }
    }
    // Random bytes: never anything but Ok or Corrupt (with a reason), and
    // mostly Corrupt.
    size_t corrupt = 0;
    const size_t rounds = 2000;
    for (size_t i = 0; i < rounds; i++) {
        Bytes z = random_bytes(1 + rng.below(300), rng);
        Inflater inf;
        std::string out;
        Result r = feed_split(inf, z, rng, 1 + rng.below(64), &out, 1 << 16);
        assert_true(r != Result::TooBig || out.size() == (1 << 16) + 1);
        if (r == Result::Corrupt) {
            corrupt++;
            assert_string_not_equal(inf.error(), "");
        }
    }
    assert_true(corrupt > rounds / 2);
}

// No compressed byte at all: even an empty message compresses to one byte
// (RFC 7692 7.2.3.6), and feeding only the tail would leave a context-keeping
// inflater inside a stored block header, garbling the next message.
void test_inflate_refuses_an_empty_compressed_message(void **) {
    Rng rng(23);
    for (bool keep : {true, false}) {
        Inflater inf;
        ClientDeflater client;
        Bytes plain = words(500, rng);
        if (keep) expect_message(inf, client.message(plain), plain, rng, 100, keep, "before");
        std::string out;
        // As one empty call, and as empty fragments.
        assert_int_equal(static_cast<int>(inf.feed(nullptr, 0, false, &out, 1 << 20)),
                         static_cast<int>(Result::Ok));
        assert_int_equal(static_cast<int>(inf.feed(nullptr, 0, true, &out, 1 << 20)),
                         static_cast<int>(Result::Corrupt));
        assert_string_equal(inf.error(), "empty compressed message");
        assert_true(out.empty());
        // The refusal is per message: the one-byte empty message is fine.
        inf.end_message(false);
        static const uint8_t kEmpty[1] = {0x00};
        out.clear();
        assert_int_equal(static_cast<int>(inf.feed(kEmpty, 1, true, &out, 1 << 20)),
                         static_cast<int>(Result::Ok));
        assert_true(out.empty());
    }
}

void test_inflate_truncated_message_waits(void **) {
    Rng rng(19);
    const Bytes plain = words(4000, rng);
    ClientDeflater client;
    const Bytes z = client.message(plain);
    // Cut anywhere: Ok so far, a prefix of the message out, the rest completes it.
    for (size_t cut = 0; cut <= z.size(); cut++) {
        Inflater inf;
        std::string out;
        assert_result(inf.feed(z.data(), cut, false, &out, plain.size()), Result::Ok);
        if (!is_prefix(out, plain)) fail_msg("cut at %zu: output is not a prefix", cut);
        // Nothing new arrives: still waiting.
        const size_t held = out.size();
        assert_result(inf.feed(z.data(), 0, false, &out, plain.size()), Result::Ok);
        assert_int_equal(out.size(), held);
        assert_result(inf.feed(z.data() + cut, z.size() - cut, true, &out, plain.size()), Result::Ok);
        expect_same(out, plain, "after the cut");
        assert_string_equal(inf.error(), "");
    }
    // A big message without its end yet: far from all of it, no error.
    const Bytes big = random_bytes(200000, rng);
    ClientDeflater c2;
    const Bytes zb = c2.message(big);
    Inflater inf;
    std::string out;
    assert_result(inf.feed(zb.data(), zb.size() / 2, false, &out, big.size()), Result::Ok);
    assert_true(out.size() < big.size());
    assert_true(is_prefix(out, big));
}

void test_inflate_stored_blocks(void **) {
    Rng rng(20);
    // Level 0: stored blocks only, several for big messages (at most 64 KiB each).
    for (size_t len : {size_t(0), size_t(1), size_t(1000), size_t(65535), size_t(65536), size_t(65537),
                       size_t(200000)}) {
        const Bytes plain = random_bytes(len, rng);
        ClientDeflater client(0);
        const Bytes z = client.message(plain);
        assert_true(z.size() > len);
        Inflater inf;
        expect_message(inf, z, plain, rng, 9000, true, "level 0");
    }
    // Hand-made: "Hel", an empty stored block, "lo".
    const Bytes z = {0x00, 0x03, 0x00, 0xfc, 0xff, 'H', 'e', 'l', 0x00, 0x00, 0x00, 0xff, 0xff,
                     0x00, 0x02, 0x00, 0xfd, 0xff, 'l', 'o'};
    Inflater inf;
    expect_message(inf, z, text("Hello"), rng, 1, false, "hand-made stored blocks");
    // A stored block cut inside its data, then completed.
    std::string out;
    assert_result(inf.feed(z.data(), 7, false, &out, 5), Result::Ok);
    assert_true(is_prefix(out, text("Hello")));
    assert_result(inf.feed(z.data() + 7, z.size() - 7, true, &out, 5), Result::Ok);
    assert_string_equal(out.c_str(), "Hello");
}

void test_inflate_full_and_sync_flush_inside_a_message(void **) {
    Rng rng(21);
    const Bytes a = words(30000, rng), b = words(30000, rng), c = concat(a, b);
    for (int inner : {Z_FULL_FLUSH, Z_SYNC_FLUSH}) {
        ClientDeflater client;
        Inflater inf;
        Bytes z;
        client.put(a, inner, &z);  // 00 00 ff ff in the middle of the message
        client.put(b, Z_SYNC_FLUSH, &z);
        ClientDeflater::strip_tail(&z);
        expect_message(inf, z, concat(a, b), rng, 2000, true, "flush inside");
        // A message that ends with a full flush (its tail is 00 00 ff ff too),
        // then one that uses the window.
        Bytes z2;
        client.put(a, Z_FULL_FLUSH, &z2);
        ClientDeflater::strip_tail(&z2);
        expect_message(inf, z2, a, rng, 2000, true, "ends with a full flush");
        expect_message(inf, client.message(c), c, rng, 2000, true, "after a full flush");
    }
    // A client that leaves the tail in: one more empty stored block, harmless.
    ClientDeflater client;
    Bytes z;
    client.put(a, Z_SYNC_FLUSH, &z);
    Inflater inf;
    expect_message(inf, z, a, rng, 100, true, "tail left in");
}

// ------------------------------------------------------------------ Deflater

// Compresses `plain` as the server does: FrameBuilder frames first.
FrameList server_compress(Deflater &d, int opcode, const Bytes &plain, size_t max_frame,
                          FrameList *plain_frames = nullptr) {
    static const uint8_t kNothing = 0;
    FrameList pf = FrameBuilder::message(opcode, plain.empty() ? &kNothing : plain.data(), plain.size(), max_frame);
    FrameList z = d.compress(pf, plain.size(), max_frame);
    if (plain_frames) *plain_frames = pf;
    return z;
}

// A compressed server message decodes, with a fresh raw inflater and with
// the server's own, to `plain`; returns the compressed payload.
Bytes expect_decodes(const FrameList &z, int opcode, const Bytes &plain, size_t max_frame, const char *what) {
    if (z.empty()) fail_msg("%s: not compressed", what);
    const Bytes joined = joined_payload(z, opcode, true, max_frame);
    if (joined.size() >= plain.size())
        fail_msg("%s: %zu compressed bytes for %zu", what, joined.size(), plain.size());
    const Bytes back = zlib_inflate(joined);
    expect_same(as_string(back), plain, what);
    Inflater inf;
    std::string out;
    assert_result(feed_whole(inf, joined, &out, plain.size()), Result::Ok);
    expect_same(out, plain, what);
    return joined;
}

void test_deflate_round_trips(void **) {
    Rng rng(31);
    bool saw_fragmented_plain = false, saw_fragmented_z = false;
    for (size_t len : {size_t(200), size_t(1000), size_t(1021), size_t(5000), size_t(65536), size_t(300 * 1024)}) {
        const Bytes plain = words(len, rng);
        for (size_t max_frame : {size_t(1024), size_t(4096), size_t(65536), kNoSplit}) {
            for (int opcode : {1, 2}) {
                for (int level : {1, 9}) {
                    Deflater d(level, 15);
                    FrameList pf;
                    FrameList z = server_compress(d, opcode, plain, max_frame, &pf);
                    char what[96];
                    std::snprintf(what, sizeof what, "%zu bytes, max_frame %zu, opcode %d, level %d", len,
                                  max_frame, opcode, level);
                    expect_decodes(z, opcode, plain, max_frame, what);
                    saw_fragmented_plain = saw_fragmented_plain || pf.size() > 1;
                    saw_fragmented_z = saw_fragmented_z || z.size() > 1;
                    // The plain frames are left as they were (the caller may still send them).
                    assert_true(joined_payload(pf, opcode, false, max_frame) == plain);
                }
            }
        }
    }
    assert_true(saw_fragmented_plain);
    assert_true(saw_fragmented_z);
}

// Inflates raw DEFLATE with a window of 2^bits, as a client that asked for
// server_max_window_bits=bits does: a match farther back fails.
bool inflates_with_window(const Bytes &z, int bits, Bytes *out) {
    z_stream zs{};
    if (inflateInit2(&zs, -bits) != Z_OK) return false;
    Bytes in = z;
    const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};
    in.insert(in.end(), tail, tail + 4);
    zs.next_in = in.data();
    zs.avail_in = static_cast<uInt>(in.size());
    // Small output steps: zlib then resolves distances through its window
    // only (within one big output buffer it would reach back any distance).
    out->clear();
    int r = Z_OK;
    while (r == Z_OK && (zs.avail_in > 0 || zs.avail_out == 0)) {
        uint8_t step[64];
        zs.next_out = step;
        zs.avail_out = sizeof step;
        r = inflate(&zs, Z_SYNC_FLUSH);
        out->insert(out->end(), step, step + (sizeof step - zs.avail_out));
        if (r == Z_BUF_ERROR && zs.avail_in == 0) r = Z_OK;
        if (zs.avail_in == 0 && zs.avail_out != 0) break;
    }
    inflateEnd(&zs);
    return r == Z_OK || r == Z_STREAM_END;
}

void test_deflate_honours_server_max_window_bits(void **) {
    // A block of random bytes repeated at distances between 2^9 and 2^15:
    // a compressor with too big a window would reach back too far.
    Rng rng(37);
    const Bytes block = random_bytes(600, rng);
    Bytes plain;
    for (size_t gap : {size_t(700), size_t(3000), size_t(9000), size_t(20000)}) {
        plain.insert(plain.end(), block.begin(), block.end());
        const Bytes filler = words(gap, rng);
        plain.insert(plain.end(), filler.begin(), filler.end());
    }
    plain.insert(plain.end(), block.begin(), block.end());
    for (int bits = 9; bits <= 15; bits++) {
        Deflater d(1, bits);
        FrameList z = server_compress(d, 2, plain, kNoSplit);
        assert_false(z.empty());
        const Bytes joined = joined_payload(z, 2, true, kNoSplit);
        Bytes back;
        if (!inflates_with_window(joined, bits, &back)) fail_msg("window %d: does not inflate with 2^%d", bits, bits);
        assert_true(back == plain);
    }
    // The check can fail: a full window's output needs the full window.
    Deflater full(9, 15);
    const Bytes joined = joined_payload(server_compress(full, 2, plain, kNoSplit), 2, true, kNoSplit);
    Bytes back;
    assert_false(inflates_with_window(joined, 9, &back) && back == plain);
}

void test_deflate_compresses_the_message_not_its_frames(void **) {
    // Fragmenting the plain message changes nothing in what is compressed.
    Rng rng(32);
    for (size_t len : {size_t(3000), size_t(100000)}) {
        const Bytes plain = words(len, rng);
        Deflater d(6, 15);
        const Bytes whole = joined_payload(server_compress(d, 2, plain, kNoSplit), 2, true, kNoSplit);
        const Bytes split = joined_payload(server_compress(d, 2, plain, 1024), 2, true, 1024);
        assert_true(whole == split);
    }
}

void test_deflate_declines_what_does_not_shrink(void **) {
    Rng rng(33);
    Deflater d(6, 15);
    for (int opcode : {1, 2}) {
        // Empty, tiny and incompressible messages: empty list, plain is sent.
        assert_true(server_compress(d, opcode, Bytes(), 1024).empty());
        assert_true(server_compress(d, opcode, text("a"), 1024).empty());
        assert_true(server_compress(d, opcode, text("abc"), 1024).empty());
        for (size_t len : {size_t(10), size_t(1000), size_t(100000)})
            assert_true(server_compress(d, opcode, random_bytes(len, rng), 1024).empty());
        // ...and the same Deflater still compresses what does shrink.
        const Bytes plain = words(1000, rng);
        expect_decodes(server_compress(d, opcode, plain, 1024), opcode, plain, 1024, "after declines");
    }
    // Level 0 stores: never smaller.
    Deflater stored(0, 15);
    assert_true(server_compress(stored, 1, words(50000, rng), 4096).empty());
    // zlib refuses the level: empty, the caller sends it plain.
    Deflater bad(42, 15);
    assert_true(server_compress(bad, 1, Bytes(10000, 'x'), 4096).empty());
    assert_true(server_compress(bad, 1, Bytes(10000, 'x'), 4096).empty());
    // An empty FrameList.
    assert_true(d.compress(FrameList(), 0, 1024).empty());
}

void test_deflate_break_even(void **) {
    // Around the size where compression starts to pay: compressed exactly
    // when a reference zlib with the Deflater's parameters (raw, 32 KiB
    // window, default strategy) gives fewer bytes. Below 400 bytes the hash
    // table size (memLevel 4 in the Deflater, 8 here) does not change the
    // output.
    const char *seed = "abcabcabcabd";
    Bytes src;
    while (src.size() < 400) src.insert(src.end(), seed, seed + std::strlen(seed));
    for (int level : {1, 9}) {
        Deflater d(level, 15);
        int compressed = 0, declined = 0;
        for (size_t len = 1; len <= 400; len++) {
            const Bytes plain(src.begin(), src.begin() + static_cast<std::ptrdiff_t>(len));
            ClientDeflater ref(level);
            const Bytes rz = ref.message(plain);
            FrameList z = server_compress(d, 1, plain, 1024);
            if (rz.size() < len) {
                char what[64];
                std::snprintf(what, sizeof what, "level %d, %zu bytes", level, len);
                const Bytes joined = expect_decodes(z, 1, plain, 1024, what);
                assert_int_equal(joined.size(), rz.size());
                compressed++;
            } else {
                if (!z.empty()) fail_msg("level %d, %zu bytes: compressed to %zu", level, len, rz.size());
                declined++;
            }
        }
        assert_true(compressed > 0);
        assert_true(declined > 0);
    }
}

void test_deflate_calls_are_independent(void **) {
    Rng rng(34);
    const std::vector<Bytes> m = related_messages(rng, 100);
    Deflater shared(1, 15);
    FrameList previous;
    for (size_t i = 0; i < m.size(); i++) {
        const int opcode = 1 + int(i % 2);
        FrameList z = server_compress(shared, opcode, m[i], 1024);
        char what[64];
        std::snprintf(what, sizeof what, "message %zu", i);
        const Bytes joined = expect_decodes(z, opcode, m[i], 1024, what);
        // What a brand-new Deflater makes of it, byte for byte.
        Deflater fresh(1, 15);
        assert_true(joined == joined_payload(server_compress(fresh, opcode, m[i], 1024), opcode, true, 1024));
        // m[1] repeats m[0]: the same bytes again (no window carried over).
        if (i == 1) assert_true(joined == joined_payload(previous, 1, true, 1024));
        previous = z;
    }
    // The output frames are the caller's: compressing again does not touch them.
    const Bytes first_payload = joined_payload(previous, 2, true, 1024);
    server_compress(shared, 1, words(5000, rng), 1024);
    assert_true(joined_payload(previous, 2, true, 1024) == first_payload);
}

void test_deflate_after_a_huge_message(void **) {
    Rng rng(35);
    Deflater d(1, 15);
    for (int round = 0; round < 2; round++) {
        const Bytes huge = words(3 << 20, rng), small = words(300, rng);
        expect_decodes(server_compress(d, 2, huge, 65536), 2, huge, 65536, "huge");
        expect_decodes(server_compress(d, 1, small, 65536), 1, small, 65536, "small after huge");
    }
}

// ------------------------------------------------------------------ FrameBuilder RSV1

void test_frame_builder_rsv1_on_the_first_frame_only(void **) {
    for (size_t max_frame : {size_t(16), size_t(125), size_t(1024), size_t(65536), kNoSplit}) {
        const size_t chunk = max_frame - FrameBuilder::header_size(max_frame);
        for (size_t len : {size_t(0), size_t(1), size_t(125), size_t(126), chunk - 1, chunk, chunk + 1,
                           3 * chunk + 5, size_t(65535), size_t(65536), size_t(70000)}) {
            if (len > 300000 || (max_frame == 16 && len > 5000)) continue;
            const Bytes plain = pattern(len, static_cast<uint32_t>(len + max_frame));
            static const uint8_t kNothing = 0;
            for (int opcode : {1, 2}) {
                for (bool compressed : {false, true}) {
                    FrameList f = FrameBuilder::message(opcode, plain.empty() ? &kNothing : plain.data(),
                                                        plain.size(), max_frame, compressed);
                    assert_true(joined_payload(f, opcode, compressed, max_frame) == plain);
                    // The exact first byte: FIN when alone, RSV1, opcode.
                    const uint8_t want = static_cast<uint8_t>((f.size() == 1 ? 0x80 : 0) |
                                                              (compressed ? 0x40 : 0) | opcode);
                    assert_int_equal(f[0]->data()[0], want);
                    for (size_t i = 1; i < f.size(); i++)
                        assert_int_equal(f[i]->data()[0] & 0x70, 0);
                }
            }
        }
    }
}

}  // namespace

int main() {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_offer_table),
        cmocka_unit_test(test_offer_header_has_no_length_limit_of_its_own),
        cmocka_unit_test(test_offer_reads_only_the_view),
        cmocka_unit_test(test_inflate_rfc7692_examples),
        cmocka_unit_test(test_inflate_round_trips_0_to_300k),
        cmocka_unit_test(test_inflate_any_client_window_level_and_strategy),
        cmocka_unit_test(test_inflate_context_takeover_across_50_messages),
        cmocka_unit_test(test_inflate_empty_messages_between_context_messages),
        cmocka_unit_test(test_inflate_client_no_context_takeover),
        cmocka_unit_test(test_inflate_bfinal_then_a_normal_message),
        cmocka_unit_test(test_inflate_limit_boundary),
        cmocka_unit_test(test_inflate_appends_and_counts_what_out_held),
        cmocka_unit_test(test_inflate_limit_too_large_to_pass),
        cmocka_unit_test(test_inflate_refuses_a_1gib_bomb_quickly),
        cmocka_unit_test(test_inflate_rejects_corrupt_data),
        cmocka_unit_test(test_inflate_refuses_an_empty_compressed_message),
        cmocka_unit_test(test_inflate_truncated_message_waits),
        cmocka_unit_test(test_inflate_stored_blocks),
        cmocka_unit_test(test_inflate_full_and_sync_flush_inside_a_message),
        cmocka_unit_test(test_deflate_round_trips),
        cmocka_unit_test(test_deflate_honours_server_max_window_bits),
        cmocka_unit_test(test_deflate_compresses_the_message_not_its_frames),
        cmocka_unit_test(test_deflate_declines_what_does_not_shrink),
        cmocka_unit_test(test_deflate_break_even),
        cmocka_unit_test(test_deflate_calls_are_independent),
        cmocka_unit_test(test_deflate_after_a_huge_message),
        cmocka_unit_test(test_frame_builder_rsv1_on_the_first_frame_only),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
