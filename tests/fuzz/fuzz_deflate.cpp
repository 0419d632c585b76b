// libFuzzer target for permessage-deflate (lib/protocol/deflate.h): the offer picked
// from a Sec-WebSocket-Extensions value, the bounded inflater on arbitrary
// bytes, and the compressor's output read back by the inflater.
//
// Build (clang only) and run:
//   CC=clang CXX=clang++ cmake -S . -B build-fuzz -DWSGATE_FUZZ=ON
//   cmake --build build-fuzz --target fuzz_deflate
//   mkdir -p /tmp/deflate && build-fuzz/tests/fuzz_deflate -max_total_time=60 /tmp/deflate tests/fuzz/deflate_seeds tests/fuzz/deflate_corpus
// (new inputs go to the first directory; tests/fuzz/README.md). ctest runs it
// for 20 s (fuzz_deflate_smoke) in such a build, from a copy of the two corpora.
//
// Input: four header bytes, then the body.
//   byte 0: flags. bit 0: keep the inflater's context between messages;
//           bit 1: binary (else text); bits 2-5: level 1 + n % 9;
//           bits 6-7: write batch 1024, 4096, 65536 or 64 MiB.
//   bytes 1-2: seed of the points where compressed input is split.
//   byte 3: where the body splits into two compressed messages (n/255 of it).
// Every input goes through:
//   - pmd_negotiate(body), checked against what the answer implies, read
//     back as an offer, and unchanged by an unrelated extension around it;
//   - the Inflater (limit 64 KiB) on the body's two parts as two messages,
//     each fed whole and, by a second inflater, in chunks (0-byte ones
//     included): both must agree on result and output;
//   - the body's two parts as plain messages, compressed by zlib as a
//     client would (keeping its context unless bit 0 is clear: then
//     client_no_context_takeover; the first one ended with BFINAL when bit 0
//     of the seed is set), must inflate back exactly with a limit of their
//     size, and be TooBig with one byte less;
//   - the Deflater on the body as one plain message: the result, when not
//     empty, is well-framed, smaller, and inflates back to the body exactly.
// Crashes, sanitizer reports and leaks are failures; so is a broken
// invariant (checked with __builtin_trap).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <zlib.h>

#include "support/rng.h"
#include "protocol/deflate.h"
#include "protocol/frame.h"

namespace {

using wsgate::Inflater;
using Result = Inflater::Result;

constexpr size_t kLimit = 64 * 1024;

void check(bool ok) {
    if (!ok) __builtin_trap();
}

bool contains(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }

void fuzz_offer(std::string_view header) {
    for (bool ask : {false, true}) {
        wsgate::PmdPolicy policy;
        policy.ask_client_no_context_takeover = ask;
        const wsgate::PmdAgreement got = wsgate::pmd_negotiate(header, policy);
        if (!got.accepted) {
            check(got.response.empty());
            continue;
        }
        check(contains(header, "permessage-deflate"));
        check(got.server_window_bits >= 9 && got.server_window_bits <= 15);
        if (got.server_window_bits < 15) check(contains(header, "server_max_window_bits"));
        if (ask) check(got.client_no_context_takeover);
        if (got.client_no_context_takeover && !ask) check(contains(header, "client_no_context_takeover"));
        check(got.response.rfind("permessage-deflate; server_no_context_takeover", 0) == 0);
        // The answer, read as an offer, is accepted with the same terms.
        const wsgate::PmdAgreement echo = wsgate::pmd_negotiate(got.response, policy);
        check(echo.accepted && echo.response == got.response);
        // Another extension before or after changes nothing (while no
        // quoted string is left open).
        size_t quotes = 0;
        for (char c : header) quotes += c == '"';
        if (quotes % 2 == 0) {
            for (const std::string &h : {"x-a, " + std::string(header), std::string(header) + ", x-a"}) {
                const wsgate::PmdAgreement again = wsgate::pmd_negotiate(h, policy);
                check(again.accepted && again.response == got.response);
            }
        }
    }
}

// One message fed in chunks chosen by `rng`, `last` on the final call only.
Result feed_split(Inflater &inf, const uint8_t *p, size_t n, wsgate_test::Rng &rng, std::string *out) {
    size_t off = 0;
    for (;;) {
        size_t k = rng.below(4) == 0 ? 0 : 1 + rng.below(64);
        if (k > n - off) k = n - off;
        const bool last = off + k == n && rng.below(3) != 0;
        Result r = inf.feed(p + off, k, last, out, kLimit);
        check(out->size() <= kLimit + 1);
        off += k;
        if (r != Result::Ok || last) return r;
    }
}

void fuzz_inflate(const uint8_t *body, size_t n, uint8_t flags, uint16_t seed, uint8_t split) {
    static const uint8_t kNothing = 0;
    if (n == 0) body = &kNothing;
    const bool keep = flags & 1;
    const size_t cut = n * split / 255;
    const struct {
        const uint8_t *p;
        size_t n;
    } msgs[2] = {{body, cut}, {body + cut, n - cut}};
    wsgate_test::Rng rng(seed);
    Inflater whole, chunked;
    for (const auto &m : msgs) {
        std::string a, b;
        const Result ra = whole.feed(m.p, m.n, true, &a, kLimit);
        const Result rb = feed_split(chunked, m.p, m.n, rng, &b);
        check(ra == rb);
        check(a == b);
        check(a.size() <= kLimit + (ra == Result::TooBig ? 1 : 0));
        if (ra == Result::TooBig) check(a.size() == kLimit + 1);
        if (ra == Result::Corrupt) check(whole.error()[0] != '\0' && chunked.error()[0] != '\0');
        if (ra != Result::Ok) return;  // the server closes the connection here
        whole.end_message(keep);
        chunked.end_message(keep);
    }
}

// A client's compressor: raw DEFLATE, each message sync-flushed with the
// 00 00 ff ff tail left out (RFC 7692 section 7.2.1), or with `finish`
// ended by a BFINAL block, sent as it is (section 7.2.3.4).
std::string client_message(z_stream *zs, const uint8_t *p, size_t n, bool finish) {
    std::string z;
    zs->next_in = const_cast<Bytef *>(p);
    zs->avail_in = static_cast<uInt>(n);
    int r;
    do {
        const size_t old = z.size();
        z.resize(old + 4096);
        zs->next_out = reinterpret_cast<Bytef *>(&z[old]);
        zs->avail_out = 4096;
        r = deflate(zs, finish ? Z_FINISH : Z_SYNC_FLUSH);
        check(r == Z_OK || r == Z_BUF_ERROR || r == Z_STREAM_END);
        z.resize(old + 4096 - zs->avail_out);
    } while (zs->avail_out == 0 || (finish && r != Z_STREAM_END));
    check(zs->avail_in == 0);
    if (finish) return z;
    // zlib makes nothing of an empty message right after a flush: RFC 7692
    // section 7.2.3.6 has the sender send an empty stored block's header.
    if (z.empty()) return std::string(1, '\0');
    check(z.size() >= 4 && z.compare(z.size() - 4, 4, std::string("\0\0\xff\xff", 4)) == 0);
    z.resize(z.size() - 4);
    return z;
}

void fuzz_client_round_trip(const uint8_t *body, size_t n, uint8_t flags, uint16_t seed, uint8_t split) {
    static const uint8_t kNothing = 0;
    if (n == 0) body = &kNothing;
    const bool keep = flags & 1;
    const int level = ((flags >> 2) & 15) % 10;  // 0 (stored) to 9
    const size_t cut = n * split / 255;
    const struct {
        const uint8_t *p;
        size_t n;
    } msgs[2] = {{body, cut}, {body + cut, n - cut}};
    z_stream client{};
    check(deflateInit2(&client, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    wsgate_test::Rng rng(seed);
    Inflater inf;
    for (const auto &m : msgs) {
        // Seed bit 0: the first message ends the stream (BFINAL); both sides
        // start a new one after it.
        const bool finish = (seed & 1) && &m == &msgs[0];
        const std::string z = client_message(&client, m.p, m.n, finish);
        if (!keep || finish) check(deflateReset(&client) == Z_OK);
        const uint8_t *zp = z.empty() ? &kNothing : reinterpret_cast<const uint8_t *>(z.data());
        // One byte short of the limit: TooBig, the message's first bytes out
        // (with a fresh inflater: for a message that stands alone).
        if (m.n > 0 && (!keep || &m == &msgs[0])) {
            Inflater short_of;
            std::string out;
            check(short_of.feed(zp, z.size(), true, &out, m.n - 1) == Result::TooBig);
            check(out.size() == m.n && std::memcmp(out.data(), m.p, m.n) == 0);
        }
        std::string out;
        size_t off = 0;
        for (;;) {
            size_t k = rng.below(4) == 0 ? 0 : 1 + rng.below(64);
            if (k > z.size() - off) k = z.size() - off;
            const bool last = off + k == z.size();
            check(inf.feed(zp + off, k, last, &out, m.n) == Result::Ok);
            off += k;
            if (last) break;
        }
        check(out.size() == m.n && std::memcmp(out.data(), m.p, m.n) == 0);
        inf.end_message(keep);
    }
    deflateEnd(&client);
}

void fuzz_deflate(const uint8_t *body, size_t n, uint8_t flags) {
    static std::unique_ptr<wsgate::Deflater> deflaters[9];  // reused, as the server's are
    static const uint8_t kNothing = 0;
    if (n == 0) body = &kNothing;
    const int level = 1 + ((flags >> 2) & 15) % 9;
    const int opcode = flags & 2 ? 2 : 1;
    const size_t batches[4] = {1024, 4096, 65536, size_t(64) << 20};
    const size_t max_frame = batches[flags >> 6];
    std::unique_ptr<wsgate::Deflater> &d = deflaters[level - 1];
    if (!d) d = std::make_unique<wsgate::Deflater>(level, 15);

    const wsgate::FrameList plain = wsgate::FrameBuilder::message(opcode, body, n, max_frame);
    const wsgate::FrameList z = d->compress(plain, n, max_frame);
    bool same_bytes = n >= 64;
    for (size_t i = 1; i < n && same_bytes; i++) same_bytes = body[i] == body[0];
    if (same_bytes) check(!z.empty());  // a run of one byte always shrinks
    if (z.empty()) return;

    std::string joined;
    for (size_t i = 0; i < z.size(); i++) {
        wsgate::Frame *f = z[i].get();
        const uint8_t *h = f->data();
        const bool first = i == 0, last = i + 1 == z.size();
        check(f->size() <= max_frame);
        check(((h[0] & 0x80) != 0) == last);
        check((h[0] & 0x70) == (first ? 0x40 : 0));
        check((h[0] & 0x0f) == (first ? opcode : 0));
        check((h[1] & 0x80) == 0);
        const size_t header = f->size() - f->payload();
        check(header == wsgate::FrameBuilder::header_size(f->payload()));
        joined.append(reinterpret_cast<const char *>(h + header), f->payload());
    }
    check(joined.size() < n);
    Inflater inf;
    std::string out;
    const Result r = inf.feed(reinterpret_cast<const uint8_t *>(joined.data()), joined.size(), true, &out, n);
    check(r == Result::Ok);
    check(out.size() == n && std::memcmp(out.data(), body, n) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4) return 0;
    const uint8_t flags = data[0];
    const uint16_t seed = static_cast<uint16_t>(data[1] | (data[2] << 8));
    const uint8_t split = data[3];
    const uint8_t *body = data + 4;
    const size_t n = size - 4;
    fuzz_offer(std::string_view(reinterpret_cast<const char *>(body), n));
    fuzz_inflate(body, n, flags, seed, split);
    fuzz_client_round_trip(body, n, flags, seed, split);
    fuzz_deflate(body, n, flags);
    return 0;
}
