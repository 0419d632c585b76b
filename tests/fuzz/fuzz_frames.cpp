// libFuzzer target for the inbound frame reader (lib/protocol/frame_reader.h):
// a client byte stream read whole, in pieces cut where the input says, and
// byte by byte, each compared with the reference reader
// (tests/protocol/reference_frames.h): the same messages (type, compression
// flag, frame lengths, payload), the same control frames, the same error
// kind, the same end (closed, in a message, bytes consumed).
//
// Build (clang only) and run:
//   CC=clang CXX=clang++ cmake -S . -B build-fuzz -DWSGATE_FUZZ=ON
//   cmake --build build-fuzz --target fuzz_frames
//   mkdir -p /tmp/frames && build-fuzz/tests/fuzz_frames -max_total_time=120 /tmp/frames tests/fuzz/frames_seeds tests/fuzz/frames_corpus
// (new inputs go to the first directory; tests/fuzz/README.md). ctest runs it
// for 20 s (fuzz_frames_smoke) in such a build, from a copy of the two corpora.
//
// Input: three header bytes, then the body.
//   byte 0: options and mode. bit 0: permessage-deflate negotiated;
//           bits 1-3: max_message_bytes, one of UINT64_MAX, 0, 1, 7, 125,
//           126, 1000, 65536; bit 4: the body describes frames (below),
//           else it is the stream itself; bit 5: the sink stops the reader
//           after every callback in the cut run (the driver resumes).
//   bytes 1-2: seed of the cut points and of the masking keys.
// Described frames: per frame a spec byte, a length byte, then payload
// taken from the body (padded with 'a' when it runs out).
//   spec bits 0-2: opcode continuation, text, binary, ping, pong, close,
//                  continuation, text; bit 3: FIN; bit 4: RSV1;
//                  bits 5-6: length form (minimal, minimal, 16-bit, 64-bit);
//                  bit 7: a tamper byte follows: its low 7 bits are XORed
//                  into the first header byte, its top bit drops the mask.
//   length byte: 0-249 as is, 250-255: 125, 126, 1000, 2000, 65535, 65536.
// Crashes, sanitizer reports and leaks are failures; so is any difference
// (reported on stderr, then __builtin_trap).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "protocol/frame_recorder.h"
#include "protocol/reference_frames.h"
#include "support/rng.h"

namespace {

using namespace wsgate_test;

void check(const std::string &diff, const char *what) {
    if (diff.empty()) return;
    std::fprintf(stderr, "fuzz_frames: %s: %s\n", what, diff.c_str());
    __builtin_trap();
}

Bytes described_stream(const uint8_t *p, size_t n, Rng &rng) {
    static const uint8_t opcodes[8] = {0, 1, 2, 9, 10, 8, 0, 1};
    static const size_t long_lengths[6] = {125, 126, 1000, 2000, 65535, 65536};
    static const LenForm forms[4] = {LenForm::Minimal, LenForm::Minimal, LenForm::Bits16, LenForm::Bits64};
    Bytes out;
    size_t i = 0;
    while (i + 2 <= n) {
        const uint8_t spec = p[i++];
        uint8_t tamper = 0;
        if (spec & 0x80) {
            if (i >= n) break;
            tamper = p[i++];
        }
        if (i >= n) break;
        const uint8_t l = p[i++];
        const size_t len = l < 250 ? l : long_lengths[l - 250];
        std::string payload(len, 'a');
        for (size_t k = 0; k < len && i < n; k++) payload[k] = static_cast<char>(p[i++]);
        uint8_t b0 = static_cast<uint8_t>(opcodes[spec & 7] | ((spec & 0x08) ? 0x80 : 0) | ((spec & 0x10) ? 0x40 : 0));
        b0 ^= tamper & 0x7f;
        client_frame(out, b0, payload.data(), payload.size(), static_cast<uint32_t>(rng.next()),
                     forms[(spec >> 5) & 3], !(tamper & 0x80));
    }
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3) return 0;
    static const uint64_t limits[8] = {UINT64_MAX, 0, 1, 7, 125, 126, 1000, 65536};
    const uint8_t flags = data[0];
    FrameReaderOptions opt;
    opt.deflate = flags & 1;
    opt.max_message_bytes = limits[(flags >> 1) & 7];
    Rng rng(static_cast<uint64_t>(data[1] | (data[2] << 8)));
    const uint8_t *body = data + 3;
    const size_t n = size - 3;
    const Bytes stream = (flags & 0x10) ? described_stream(body, n, rng) : Bytes(body, body + n);

    const Outcome want = reference_read(stream, opt.deflate, opt.max_message_bytes);
    std::string violation;
    const Outcome whole = read_whole(stream, opt, &violation);
    check(violation, "whole");
    check(compare(whole, want), "whole vs reference");

    // Cut points from the seed: runs of 0-64 bytes, empty pieces included.
    std::vector<size_t> cuts;
    for (size_t at = rng.below(65); at < stream.size(); at += rng.below(65)) cuts.push_back(at);
    const Outcome split = read_pieces(stream, cuts, opt, &violation, (flags & 0x20) != 0);
    check(violation, "cut");
    check(compare(split, want), "cut vs reference");

    if (stream.size() <= 512) {
        std::vector<size_t> every;
        for (size_t i = 1; i < stream.size(); i++) every.push_back(i);
        const Outcome bytes = read_pieces(stream, every, opt, &violation);
        check(violation, "byte by byte");
        check(compare(bytes, want), "byte by byte vs reference");
    }
    return 0;
}
