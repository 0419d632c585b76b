// Inbound frame parsing CPU per message (lib/protocol/frame_reader.h): what
// the service thread pays to turn a read buffer full of masked client
// frames into payload pointers (unmask in place, header checks, UTF-8 of
// text), for 64-byte and 4 KiB messages, many per read. A figure, not a
// test: only --smoke checks anything (every message and byte arrives, and
// the payload is the one sent).
//
// The stream is cut into reads of 65,520 bytes (the most a raw-skt read
// hands over), at arbitrary offsets, as TCP would. Reading unmasks in
// place, so the next pass over the same buffers sees masked bytes again:
// with ASCII payload and a key whose bytes are all below 0x80 both are
// ASCII, and each pass does the same work as a fresh stream.
//
// For figures build with optimisation:
//   cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=Release && cmake --build build-rel --target bench_frame_reader
//   build-rel/tests/bench_frame_reader
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "protocol/frame_reader.h"

using wsgate::proto::DataChunk;
using wsgate::proto::FrameReader;
using wsgate::proto::FrameReaderOptions;
using wsgate::proto::ReadError;

namespace {

constexpr size_t kReadSize = 65536 - 16;

struct CountingSink {
    uint64_t messages = 0, bytes = 0, check = 0;
    std::string *first = nullptr;  // --smoke: the first message's payload
    void on_data(const uint8_t *p, size_t n, const DataChunk &c) {
        bytes += n;
        if (n) check += p[0] + p[n - 1];
        if (first && messages == 0) first->append(reinterpret_cast<const char *>(p), n);
        messages += c.message_end;
    }
    void on_ping(const uint8_t *, size_t) {}
    void on_pong(const uint8_t *, size_t) {}
    void on_close(int, const uint8_t *, size_t) {}
};

std::string payload(size_t size, unsigned seq) {
    // JSON-like ASCII text.
    std::string s = "{\"seq\":" + std::to_string(seq) + ",\"text\":\"";
    while (s.size() + 2 < size) s += static_cast<char>('a' + (s.size() * 7 + seq) % 26);
    s.resize(size - 2);
    return s + "\"}";
}

void append_frame(std::vector<uint8_t> &out, uint8_t opcode, const std::string &p, const uint8_t key[4]) {
    out.push_back(static_cast<uint8_t>(0x80 | opcode));
    const size_t n = p.size();
    if (n < 126) {
        out.push_back(static_cast<uint8_t>(0x80 | n));
    } else if (n <= 0xffff) {
        out.push_back(0x80 | 126);
        out.push_back(static_cast<uint8_t>(n >> 8));
        out.push_back(static_cast<uint8_t>(n));
    } else {
        out.push_back(0x80 | 127);
        for (int i = 7; i >= 0; i--) out.push_back(static_cast<uint8_t>(uint64_t(n) >> (8 * i)));
    }
    out.insert(out.end(), key, key + 4);
    for (size_t i = 0; i < n; i++) out.push_back(static_cast<uint8_t>(p[i] ^ key[i % 4]));
}

double now_ns() {
    using namespace std::chrono;
    return duration<double, std::nano>(steady_clock::now().time_since_epoch()).count();
}

struct Figure {
    double ns_per_message;
    double gbytes_per_s;
};

// The median pass over `total_bytes` of frames. False when the reader did
// not deliver what was sent.
bool run(size_t size, bool binary, size_t total_bytes, int passes, Figure *fig) {
    // Keys vary per message; every byte is below 0x80 (see above).
    const size_t count = total_bytes / (size + 8) + 1;
    std::vector<uint8_t> stream;
    stream.reserve(count * (size + 14));
    std::string first;
    for (size_t i = 0; i < count; i++) {
        const uint8_t key[4] = {static_cast<uint8_t>(0x11 + i % 97), 0x5a, static_cast<uint8_t>(0x23 + i % 61), 0x7e};
        std::string p = payload(size, static_cast<unsigned>(i));
        if (i == 0) first = p;
        append_frame(stream, binary ? 2 : 1, p, key);
    }
    std::vector<std::vector<uint8_t>> reads;
    for (size_t off = 0; off < stream.size(); off += kReadSize)
        reads.emplace_back(stream.begin() + static_cast<std::ptrdiff_t>(off),
                           stream.begin() + static_cast<std::ptrdiff_t>(std::min(stream.size(), off + kReadSize)));

    FrameReaderOptions opt;
    opt.max_message_bytes = 16 << 20;
    bool ok = true;
    std::vector<double> times;
    for (int pass = 0; pass < passes; pass++) {
        FrameReader reader;
        CountingSink sink;
        std::string got;
        if (pass == 0) sink.first = &got;
        const double t0 = now_ns();
        for (auto &r : reads)
            if (reader.read(r.data(), r.size(), opt, sink) != r.size()) break;
        times.push_back(now_ns() - t0);
        if (reader.error() != ReadError::None || sink.messages != count || sink.bytes != count * size) {
            std::fprintf(stderr, "%zu B %s pass %d: %llu messages, %llu bytes, error \"%s\"\n", size,
                         binary ? "binary" : "text", pass, static_cast<unsigned long long>(sink.messages),
                         static_cast<unsigned long long>(sink.bytes), reader.error_reason());
            ok = false;
        }
        if (pass == 0 && got != first) {
            std::fprintf(stderr, "%zu B: first message differs\n", size);
            ok = false;
        }
    }
    std::sort(times.begin(), times.end());
    const double median = times[times.size() / 2];
    fig->ns_per_message = median / static_cast<double>(count);
    fig->gbytes_per_s = static_cast<double>(stream.size()) / median;
    return ok;
}

}  // namespace

int main(int argc, char **argv) {
    const bool smoke = argc > 1 && std::strcmp(argv[1], "--smoke") == 0;
    const size_t sizes[] = {64, 4096};
    bool ok = true;
    std::printf("sizeof(FrameReader) = %zu bytes\n\n", sizeof(FrameReader));
    std::printf("| message | type | ns per message (median) | GB/s of frames |\n|---|---|---|---|\n");
    for (size_t size : sizes)
        for (int binary = 0; binary <= 1; binary++) {
            Figure f{};
            // 256 KiB of frames: a server's reads are cache-hot (recv just wrote them).
            ok &= run(size, binary != 0, 256 << 10, smoke ? 3 : 1001, &f);
            std::printf("| %zu B | %s | %.1f | %.2f |\n", size, binary ? "binary" : "text", f.ns_per_message,
                        f.gbytes_per_s);
        }
    if (!ok) std::fprintf(stderr, "bench_frame_reader: messages were lost or altered\n");
    return ok ? 0 : 1;
}
