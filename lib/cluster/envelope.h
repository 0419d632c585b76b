// What one instance tells the others through Redis: a compact binary
// envelope, one per PUBLISH. Fixed header, then the target (topic, user id
// or connection id), then the body (message payload, or close code and
// reason).
//
//   u8  version (1)       u8  kind          u8 msg type (1 text, 2 binary; 0)
//   u8  flags (0)         u16 origin node   u64 origin tag (random per server)
//   u16 target length     target bytes      body bytes (the rest)
//
// Integers are little-endian. The origin tag lets an instance skip its own
// messages even if two instances ever shared a node number; the node number
// says where a connection id lives. `kind` leaves room for later message
// kinds (presence, session, history...): an unknown kind is counted and
// ignored, never an error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace wsgate {

enum class EnvelopeKind : uint8_t {
    TopicMessage = 1,  // target: topic; body: payload
    UserMessage = 2,   // target: user id; body: payload
    UserClose = 3,     // target: user id; body: u16 code + reason
    ConnMessage = 4,   // target: u64 connection id; body: payload
    ConnClose = 5,     // target: u64 connection id; body: u16 code + reason
    // A history topic's message with its position (lib/core/history.h),
    // made by the publish script in Redis: target: topic; body: u64 epoch +
    // u64 offset + payload. Also echoed to its origin, which delivers it to
    // its own subscribers then (unless kFlagDeliveredHere).
    TopicHistory = 6,
};

// flags: the origin delivered the message to its own subscribers already
// (published while Redis was down, written later).
constexpr uint8_t kFlagDeliveredHere = 1;

struct Envelope {
    EnvelopeKind kind = EnvelopeKind::TopicMessage;
    uint8_t msg_type = 0;
    uint8_t flags = 0;
    uint16_t origin_node = 0;
    uint64_t origin_tag = 0;
    std::string_view target;  // into the decoded buffer
    std::string_view body;    // the same
};

constexpr size_t kEnvelopeHeader = 16;

// Appends the encoded envelope to *out.
void encode_envelope(EnvelopeKind kind, uint8_t msg_type, uint16_t node, uint64_t tag, std::string_view target,
                     std::string_view body, std::string *out);
// A connection id as an 8-byte target.
std::string conn_target(uint64_t id);
uint64_t conn_from_target(std::string_view target);
// A close's body: code then reason.
std::string close_body(int code, std::string_view reason);
bool parse_close_body(std::string_view body, int *code, std::string_view *reason);
// The envelope with an empty body and `flags`: what the history publish
// script completes with the position and payload.
std::string envelope_head(EnvelopeKind kind, uint8_t msg_type, uint8_t flags, uint16_t node, uint64_t tag,
                          std::string_view target);
// TopicHistory's body.
std::string history_body(uint64_t epoch, uint64_t offset, std::string_view payload);
bool parse_history_body(std::string_view body, uint64_t *epoch, uint64_t *offset, std::string_view *payload);
// False when `data` is no envelope of a version this build reads.
bool decode_envelope(std::string_view data, Envelope *out);

}  // namespace wsgate
