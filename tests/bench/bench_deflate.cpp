// permessage-deflate CPU cost per message, in process: what the service
// thread pays to compress one outbound message (Deflater, shared by every
// compressing recipient of a broadcast) and to inflate one inbound message
// (Inflater, with the client keeping its context or not), for JSON chat
// messages of several sizes. A figure, not a test (only --smoke checks
// anything: every compressed message must inflate back to the original).
//
// For figures build with optimisation:
//   cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=Release && cmake --build build-rel --target bench_deflate
//   build-rel/tests/bench_deflate
#include <zlib.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "protocol/deflate.h"
#include "protocol/frame.h"

using wsgate::Deflater;
using wsgate::FrameBuilder;
using wsgate::FrameList;
using wsgate::Inflater;

namespace {

// A JSON chat event of about `size` bytes; `seq` varies names and numbers
// the way consecutive events of a real room do.
std::string chat(size_t size, unsigned seq) {
    static const char *const words[] = {"hello", "everyone", "the",  "game", "starts",
                                        "at",    "nine",     "see",  "you",  "there"};
    std::string s = "{\"type\":\"message\",\"room\":\"general\",\"seq\":" + std::to_string(seq) +
                    ",\"user\":\"user" + std::to_string(seq % 97) + "\",\"text\":\"";
    for (unsigned i = 0; s.size() + 2 < size; i++) {
        s += words[(seq + i) % 10];
        s += ' ';
    }
    s.resize(size - 2);
    return s + "\"}";
}

// What a client sends: raw DEFLATE, sync flush, 4-byte tail stripped; one
// stream for all messages (context takeover) or a fresh one per message.
class Client {
public:
    explicit Client(bool takeover) : takeover_(takeover) { init(); }
    ~Client() { deflateEnd(&zs_); }
    std::vector<uint8_t> message(const std::string &m) {
        if (!takeover_) deflateReset(&zs_);
        std::vector<uint8_t> out(m.size() + 64);
        zs_.next_in = reinterpret_cast<Bytef *>(const_cast<char *>(m.data()));
        zs_.avail_in = static_cast<uInt>(m.size());
        zs_.next_out = out.data();
        zs_.avail_out = static_cast<uInt>(out.size());
        deflate(&zs_, Z_SYNC_FLUSH);
        out.resize(out.size() - zs_.avail_out - 4);
        return out;
    }

private:
    void init() { deflateInit2(&zs_, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY); }
    bool takeover_;
    z_stream zs_{};
};

double now_us() {
    using namespace std::chrono;
    return duration<double, std::micro>(steady_clock::now().time_since_epoch()).count();
}

int run(bool smoke) {
    const size_t sizes[] = {128, 512, 2048, 16384};
    const int n = smoke ? 200 : 20000;
    int bad = 0;
    std::printf("| message | compressed | deflate (send) | inflate, client keeps context | inflate, "
                "no context takeover |\n|---|---|---|---|---|\n");
    for (size_t size : sizes) {
        std::vector<std::string> msgs;
        for (int i = 0; i < n; i++) msgs.push_back(chat(size, static_cast<unsigned>(i)));
        // Send side: the frames FrameBuilder makes, compressed.
        std::vector<FrameList> plain;
        for (const std::string &m : msgs) plain.push_back(FrameBuilder::message(1, m.data(), m.size(), 65536));
        Deflater d(1, 15);
        size_t zbytes = 0;
        double t0 = now_us();
        for (const FrameList &f : plain) {
            FrameList z = d.compress(f, f[0]->payload(), 65536);
            zbytes += z.empty() ? 0 : z[0]->payload();
        }
        double deflate_us = (now_us() - t0) / n;
        // Receive side, both client modes.
        double inflate_us[2];
        for (int takeover = 1; takeover >= 0; takeover--) {
            Client client(takeover != 0);
            std::vector<std::vector<uint8_t>> wire;
            for (const std::string &m : msgs) wire.push_back(client.message(m));
            Inflater inf;
            std::string out;
            t0 = now_us();
            for (int i = 0; i < n; i++) {
                out.clear();
                Inflater::Result r = inf.feed(wire[i].data(), wire[i].size(), true, &out, 1 << 20);
                if (takeover)
                    inf.end_message(true);
                else
                    inf.reset();
                if (r != Inflater::Result::Ok || out != msgs[i]) bad++;
            }
            inflate_us[takeover] = (now_us() - t0) / n;
        }
        // The server's own output must inflate back (fresh inflater each).
        for (int i = 0; i < (smoke ? n : 100); i++) {
            FrameList z = d.compress(plain[i], msgs[i].size(), 65536);
            if (z.empty()) continue;
            Inflater check;
            std::string out;
            if (check.feed(z[0]->data() + (z[0]->size() - z[0]->payload()), z[0]->payload(), true, &out,
                           1 << 20) != Inflater::Result::Ok ||
                out != msgs[i])
                bad++;
        }
        std::printf("| %zu B | %.0f B | %.2f us | %.2f us | %.2f us |\n", size,
                    static_cast<double>(zbytes) / n, deflate_us, inflate_us[1], inflate_us[0]);
    }
    if (bad) std::fprintf(stderr, "%d messages did not round-trip\n", bad);
    return bad ? 1 : 0;
}

}  // namespace

int main(int argc, char **argv) {
    bool smoke = argc > 1 && std::strcmp(argv[1], "--smoke") == 0;
    return run(smoke);
}
