#include "protocol/deflate.h"

#include <libwebsockets.h>

#include <cstring>
#include <new>

#include "base/text.h"


namespace wsgate {
namespace {

constexpr const char *kName = "permessage-deflate";
// Option name only our extension answers: lws_set_extension_option() with it
// tells whether the extension is active on a connection.
constexpr const char *kProbe = "wsgate-probe";

// The RFC 7692 parameters lws may meet in an offer. It calls OPTION_SET only
// for the argument-less ones the client sent, and echoes those we accept.
const struct lws_ext_options kOptions[] = {
    {"server_no_context_takeover", EXTARG_NONE},
    {"client_no_context_takeover", EXTARG_NONE},
    {"server_max_window_bits", EXTARG_OPT_DEC},
    {"client_max_window_bits", EXTARG_OPT_DEC},
    {nullptr, EXTARG_NONE},
};

// lws 4.1.6's private PAYLOAD_RX result "pass the payload on as it is"
// (enum pmd_return in private-lib-core-net.h), mirrored: the pinned build.
constexpr int kPmdrNothingWeShouldDo = 5;

// Negotiation only: the payload reaches LWS_CALLBACK_RECEIVE untouched
// (still compressed) and the server inflates it, knowing the message limit.
int pmd_callback(struct lws_context *, const struct lws_extension *, struct lws *,
                 enum lws_extension_callback_reasons reason, void *user, void *in, size_t) {
    switch (reason) {
    case LWS_EXT_CB_CONSTRUCT:
        *static_cast<void **>(user) = nullptr;  // no per-connection state here
        if (in) *static_cast<const struct lws_ext_options **>(in) = kOptions;
        return 0;
    case LWS_EXT_CB_OPTION_SET: {
        // 0 echoes the option: both no_context_takeover promises are kept
        // (our compressor never keeps context; the inflater resets when the
        // client does). Nothing else ever comes here from lws' server side.
        auto *oa = static_cast<struct lws_ext_option_arg *>(in);
        return oa->option_index == 0 || oa->option_index == 1 ? 0 : 1;
    }
    case LWS_EXT_CB_NAMED_OPTION_SET: {
        auto *oa = static_cast<struct lws_ext_option_arg *>(in);
        return oa && oa->option_name && std::strcmp(oa->option_name, kProbe) == 0 ? 0 : -1;
    }
    case LWS_EXT_CB_PAYLOAD_RX: return kPmdrNothingWeShouldDo;
    default: return 0;
    }
}

const struct lws_extension kExtensions[] = {
    {kName, pmd_callback, "permessage-deflate"},
    {nullptr, nullptr, nullptr},
};

bool is_token(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s)
        if (!is_tchar(c)) return false;
    return true;
}

// A window size parameter value: 8..15, plain or quoted, no leading zero.
bool valid_window_bits(std::string_view v) {
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
    if (v.empty() || v.size() > 2 || v[0] == '0') return false;
    int n = 0;
    for (char c : v) {
        if (c < '0' || c > '9') return false;
        n = n * 10 + (c - '0');
    }
    return n >= 8 && n <= 15;
}

// One offer naming permessage-deflate, as the server judges it.
struct Offer {
    bool ok = false;          // every parameter can be honoured
    bool has_params = false;  // there was a ';' (lws reads no further offers after accepting it)
    bool client_no_context_takeover = false;
};

// Whether the parameters of one offer (the text after its name) can all be
// honoured, filling *o.
bool acceptable_params(std::string_view rest, Offer *o) {
    bool seen[3] = {false, false, false};
    while (!rest.empty()) {
        if (rest.front() != ';') return false;
        rest.remove_prefix(1);
        size_t end = rest.find(';');
        std::string_view param = trim_ows(rest.substr(0, end));
        rest = end == std::string_view::npos ? std::string_view() : rest.substr(end);
        o->has_params = true;
        size_t eq = param.find('=');
        std::string_view name = trim_ows(param.substr(0, eq));
        std::string_view value = eq == std::string_view::npos ? std::string_view() : trim_ows(param.substr(eq + 1));
        bool has_value = eq != std::string_view::npos;
        int slot;
        if (name == "server_no_context_takeover" && !has_value)
            slot = 0;
        else if (name == "client_no_context_takeover" && !has_value)
            slot = 1;
        else if (name == "client_max_window_bits" && (!has_value || valid_window_bits(value)))
            slot = 2;
        else
            return false;  // unknown, malformed, or server_max_window_bits (lws cannot echo it)
        if (seen[slot]) return false;  // RFC 7692: a repeated parameter declines the offer
        seen[slot] = true;
    }
    o->client_no_context_takeover = seen[1];
    return true;
}

}  // namespace

const struct lws_extension *pmd_extensions() { return kExtensions; }

PmdOffer pmd_pick_offer(std::string_view header) {
    PmdOffer none;
    if (header.size() >= kMaxExtensionsHeader) return none;
    // lws splits offers at every ',' and tab, quoted or not: where that
    // differs from the grammar, keep out rather than miscount its offers.
    bool quoted = false;
    for (char c : header) {
        if (c == '\t' || (quoted && (c == ',' || c == ';'))) return none;
        if (c == '"') quoted = !quoted;
    }
    std::vector<Offer> offers;  // the offers lws takes for permessage-deflate
    size_t pos = 0;
    while (pos <= header.size()) {
        size_t comma = header.find(',', pos);
        std::string_view item = header.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
        pos = comma == std::string_view::npos ? header.size() + 1 : comma + 1;
        size_t semi = item.find(';');
        std::string_view raw_name = item.substr(0, semi);
        // lws reads the name with every space removed.
        std::string squeezed;
        for (char c : raw_name)
            if (c != ' ') squeezed += c;
        if (squeezed != kName) continue;
        Offer o;
        if (is_token(trim_ows(raw_name)))
            o.ok = acceptable_params(semi == std::string_view::npos ? std::string_view() : item.substr(semi), &o);
        offers.push_back(o);
    }
    for (size_t i = 0; i < offers.size(); i++) {
        // lws stops reading offers after accepting one with parameters, but
        // after one without it goes on, and drops the connection when it
        // meets permessage-deflate again.
        bool last = i + 1 == offers.size();
        if (offers[i].ok && (offers[i].has_params || last)) {
            PmdOffer picked;
            picked.index = static_cast<int>(i);
            picked.client_no_context_takeover = offers[i].client_no_context_takeover;
            return picked;
        }
    }
    return none;
}

bool pmd_active(struct lws *wsi) {
    return lws_set_extension_option(wsi, kName, kProbe, nullptr) == 0;
}

void Inflater::release() {
    if (init_) inflateEnd(&zs_);
    init_ = false;
}

void Inflater::end_message(bool keep_context) {
    // A stream the sender ended (BFINAL) cannot go on: the next message
    // starts a fresh one.
    if (!keep_context || stream_end_) release();
    stream_end_ = false;
    in_bytes_ = 0;
}

void Inflater::reset() {
    if (init_ && inflateReset(&zs_) != Z_OK) release();
    stream_end_ = false;
    in_bytes_ = 0;
}

Inflater::Result Inflater::run(int flush, std::string *out, size_t limit) {
    for (;;) {
        // One byte of room past the limit tells "too big" from "exactly full"
        // (written so that a limit of SIZE_MAX does not wrap to no room).
        // Steps sized to the input (chat messages inflate 4-10x), so a small
        // message does not zero-fill 16 KiB of string first.
        size_t room = limit - out->size();
        size_t want = zs_.avail_in > 4096 ? 16384 : zs_.avail_in < 256 ? 1024 : 4 * size_t(zs_.avail_in);
        size_t step = room < want ? room + 1 : want;
        size_t old = out->size();
        out->resize(old + step);
        zs_.next_out = reinterpret_cast<Bytef *>(&(*out)[old]);
        zs_.avail_out = static_cast<uInt>(step);
        int r = inflate(&zs_, flush);
        out->resize(old + step - zs_.avail_out);
        if (out->size() > limit) return Result::TooBig;
        if (r == Z_STREAM_END) {
            stream_end_ = true;  // whatever follows in this message is ignored
            return Result::Ok;
        }
        if (r == Z_BUF_ERROR) {
            // No progress was possible: fine once the input is all taken in.
            if (zs_.avail_in == 0) return Result::Ok;
            error_ = "DEFLATE data stalled";
            return Result::Corrupt;
        }
        if (r != Z_OK) {
            error_ = zs_.msg ? zs_.msg : "invalid DEFLATE data";
            return Result::Corrupt;
        }
        if (zs_.avail_in == 0 && zs_.avail_out != 0) return Result::Ok;  // all taken in and out
    }
}

Inflater::Result Inflater::feed(const uint8_t *in, size_t len, bool last, std::string *out,
                                size_t limit) {
    if (!init_) {
        zs_ = z_stream{};
        if (inflateInit2(&zs_, -15) != Z_OK) {
            error_ = "out of memory for the inflater";
            return Result::Corrupt;
        }
        init_ = true;
    }
    if (stream_end_) return Result::Ok;
    in_bytes_ += len;
    if (last && in_bytes_ == 0) {
        // Even an empty message compresses to one byte; none at all would
        // leave the inflater inside a block for the next message.
        error_ = "empty compressed message";
        return Result::Corrupt;
    }
    zs_.next_in = const_cast<Bytef *>(in);
    zs_.avail_in = static_cast<uInt>(len);
    Result r = len ? run(Z_NO_FLUSH, out, limit) : Result::Ok;
    if (r != Result::Ok || !last || stream_end_) return r;
    // RFC 7692 7.2.2: the sender left out the sync flush's 00 00 ff ff.
    static const uint8_t kTail[4] = {0x00, 0x00, 0xff, 0xff};
    zs_.next_in = const_cast<Bytef *>(kTail);
    zs_.avail_in = 4;
    return run(Z_SYNC_FLUSH, out, limit);
}

Deflater::~Deflater() {
    if (init_) deflateEnd(&zs_);
}

bool Deflater::deflate_all(const FrameList &plain, size_t payload) {
    if (!init_) {
        // Raw deflate (negative window bits), full 32 KiB window: offers that
        // limit our window are declined, so the peer accepts any. memLevel 4:
        // deflateReset clears the hash table before every message; a
        // 2,048-entry table (4 KiB) instead of zlib's default 32,768 (64 KiB)
        // saves about 0.4 us of a small message's 2.8 us, for about 2 % more
        // output on large messages (bench/RESULTS.md, "Compression").
        if (deflateInit2(&zs_, level_, Z_DEFLATED, -15, 4, Z_DEFAULT_STRATEGY) != Z_OK) return false;
        init_ = true;
    } else if (deflateReset(&zs_) != Z_OK) {
        return false;
    }
    // Room for the whole message plus the sync-flush marker: deflate never
    // needs more than deflateBound (computed for Z_FINISH) plus a few bytes.
    out_.resize(deflateBound(&zs_, static_cast<uLong>(payload)) + 16);
    zs_.next_out = out_.data();
    zs_.avail_out = static_cast<uInt>(out_.size());
    for (size_t i = 0; i < plain.size(); i++) {
        Frame *f = plain[i].get();
        zs_.next_in = f->data() + (f->size() - f->payload());
        zs_.avail_in = static_cast<uInt>(f->payload());
        int flush = i + 1 == plain.size() ? Z_SYNC_FLUSH : Z_NO_FLUSH;
        if (deflate(&zs_, flush) != Z_OK || zs_.avail_in != 0) return false;
    }
    out_len_ = out_.size() - zs_.avail_out;
    // RFC 7692 7.2.1: the sync flush ends with 00 00 ff ff, which is left out.
    static const uint8_t kTail[4] = {0x00, 0x00, 0xff, 0xff};
    if (out_len_ < 4 || std::memcmp(out_.data() + out_len_ - 4, kTail, 4) != 0) return false;
    out_len_ -= 4;
    return true;
}

FrameList Deflater::compress(const FrameList &plain, size_t payload, size_t max_frame) noexcept {
    FrameList out;
    if (plain.empty()) return out;
    try {
        if (deflate_all(plain, payload) && out_len_ < payload) {
            int opcode = plain[0]->data()[0] & 0x0f;
            out = FrameBuilder::message(opcode, out_.data(), out_len_, max_frame, true);
        }
    } catch (const std::bad_alloc &) {
        out.clear();  // send it uncompressed
    }
    // A huge message should not pin its buffer for the server's lifetime.
    if (out_.capacity() > 256 * 1024) std::vector<uint8_t>().swap(out_);
    return out;
}

}  // namespace wsgate
