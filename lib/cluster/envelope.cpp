#include "cluster/envelope.h"

namespace wsgate {
namespace {

void put_le(std::string *out, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t get_le(const char *p, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v |= static_cast<uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
    return v;
}

constexpr uint8_t kVersion = 1;

}  // namespace

void encode_envelope(EnvelopeKind kind, uint8_t msg_type, uint16_t node, uint64_t tag, std::string_view target,
                     std::string_view body, std::string *out) {
    out->reserve(out->size() + kEnvelopeHeader + target.size() + body.size());
    out->push_back(static_cast<char>(kVersion));
    out->push_back(static_cast<char>(kind));
    out->push_back(static_cast<char>(msg_type));
    out->push_back(0);
    put_le(out, node, 2);
    put_le(out, tag, 8);
    put_le(out, target.size(), 2);
    out->append(target);
    out->append(body);
}

std::string conn_target(uint64_t id) {
    std::string s;
    put_le(&s, id, 8);
    return s;
}

uint64_t conn_from_target(std::string_view target) { return target.size() == 8 ? get_le(target.data(), 8) : 0; }

std::string close_body(int code, std::string_view reason) {
    std::string s;
    put_le(&s, static_cast<uint64_t>(code), 2);
    s.append(reason);
    return s;
}

bool parse_close_body(std::string_view body, int *code, std::string_view *reason) {
    if (body.size() < 2) return false;
    *code = static_cast<int>(get_le(body.data(), 2));
    *reason = body.substr(2);
    return true;
}

std::string envelope_head(EnvelopeKind kind, uint8_t msg_type, uint8_t flags, uint16_t node, uint64_t tag,
                          std::string_view target) {
    std::string out;
    encode_envelope(kind, msg_type, node, tag, target, {}, &out);
    out[3] = static_cast<char>(flags);
    return out;
}

std::string history_body(uint64_t epoch, uint64_t offset, std::string_view payload) {
    std::string s;
    s.reserve(16 + payload.size());
    put_le(&s, epoch, 8);
    put_le(&s, offset, 8);
    s.append(payload);
    return s;
}

bool parse_history_body(std::string_view body, uint64_t *epoch, uint64_t *offset, std::string_view *payload) {
    if (body.size() < 16) return false;
    *epoch = get_le(body.data(), 8);
    *offset = get_le(body.data() + 8, 8);
    *payload = body.substr(16);
    return *epoch != 0 && *offset != 0;
}

bool decode_envelope(std::string_view data, Envelope *out) {
    if (data.size() < kEnvelopeHeader || static_cast<uint8_t>(data[0]) != kVersion) return false;
    const size_t target_len = get_le(data.data() + 14, 2);
    if (data.size() < kEnvelopeHeader + target_len) return false;
    out->kind = static_cast<EnvelopeKind>(static_cast<uint8_t>(data[1]));
    out->msg_type = static_cast<uint8_t>(data[2]);
    out->flags = static_cast<uint8_t>(data[3]);
    out->origin_node = static_cast<uint16_t>(get_le(data.data() + 4, 2));
    out->origin_tag = get_le(data.data() + 6, 8);
    out->target = data.substr(kEnvelopeHeader, target_len);
    out->body = data.substr(kEnvelopeHeader + target_len);
    return true;
}

}  // namespace wsgate
