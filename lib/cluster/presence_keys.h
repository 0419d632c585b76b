// Presence in Redis: key names, entry values and the reader's reply, the
// pure part of lib/cluster/presence.h. Under cluster.prefix P, for a kind
// K ('t' topic, 'u' user), a name and a node number N:
//   P:pK:N:<name>   hash: this node's entries (field: connection id in
//                   decimal; value: see encode_presence_value)
//   P:pKn:<name>    set of the nodes with a hash for the name, so a reader
//                   knows which hashes to read
//   P:pk:N          set of "K:<name>" this node wrote, so the lease renewal
//                   and a clean stop reach every hash of the node
//   P:lease:N       the node number's lease (value: the server's tag)
// The node comes before the name in a hash key, and the node set has its
// own key prefix: names are any UTF-8 (':' included), so "P:pt:<name>:N"
// and "P:pt:<name>" (the lead's first draft) could name the same key for
// two different topics ("a:1" and "a" on node 1).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace wsgate {

struct PresenceEntry {
    uint64_t conn = 0;
    std::string user_id;
    int64_t since_ms = 0;  // Unix ms
    uint16_t node = 0;     // the node whose hash held it
};

std::string presence_hash_key(const std::string &prefix, char kind, uint16_t node, std::string_view name);
std::string presence_set_key(const std::string &prefix, char kind, std::string_view name);
std::string presence_keyset_key(const std::string &prefix, uint16_t node);
std::string lease_key(const std::string &prefix, uint16_t node);

// A hash value: "<since_ms>" for a user's entry (the user is the name),
// "<since_ms>:<user id>" for a topic's ("" user: anonymous).
std::string encode_presence_value(char kind, int64_t since_ms, std::string_view user_id);
// False when `value` is not one of those.
bool decode_presence_value(char kind, std::string_view value, int64_t *since_ms, std::string *user_id);

// Decimal text of an unsigned 64-bit number, nothing else: false otherwise.
bool parse_u64(std::string_view s, uint64_t *out);

// The reader script's reply, flattened to strings: triples of node,
// connection id and value. Entries that do not parse are skipped and
// counted in *invalid (Redis is network input: another program may write
// under the prefix). False when the shape is wrong (not a multiple of 3).
bool parse_presence_reply(char kind, std::string_view name, const std::vector<std::string_view> &flat,
                          std::vector<PresenceEntry> *out, size_t *invalid);

// SHA1 of a script, in hex (EVALSHA names scripts by it).
std::string script_sha1(const char *script);

}  // namespace wsgate
