#include "cluster/presence_keys.h"

#include <openssl/evp.h>

#include <cstdio>
#include <cstring>

namespace wsgate {

std::string presence_hash_key(const std::string &prefix, char kind, uint16_t node, std::string_view name) {
    std::string k = prefix;
    k += ":p";
    k += kind;
    k += ':';
    k += std::to_string(node);
    k += ':';
    k += name;
    return k;
}

std::string presence_set_key(const std::string &prefix, char kind, std::string_view name) {
    std::string k = prefix;
    k += ":p";
    k += kind;
    k += "n:";
    k += name;
    return k;
}

std::string presence_keyset_key(const std::string &prefix, uint16_t node) {
    return prefix + ":pk:" + std::to_string(node);
}

std::string lease_key(const std::string &prefix, uint16_t node) { return prefix + ":lease:" + std::to_string(node); }

std::string encode_presence_value(char kind, int64_t since_ms, std::string_view user_id) {
    std::string v = std::to_string(since_ms);
    if (kind == 't') {
        v += ':';
        v += user_id;
    }
    return v;
}

bool parse_u64(std::string_view s, uint64_t *out) {
    if (s.empty() || s.size() > 20) return false;
    uint64_t v = 0;
    for (char ch : s) {
        if (ch < '0' || ch > '9') return false;
        const uint64_t d = static_cast<uint64_t>(ch - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

bool decode_presence_value(char kind, std::string_view value, int64_t *since_ms, std::string *user_id) {
    std::string_view since = value, user;
    if (kind == 't') {
        const size_t colon = value.find(':');
        if (colon == std::string_view::npos) return false;
        since = value.substr(0, colon);
        user = value.substr(colon + 1);
    }
    uint64_t v = 0;
    if (!parse_u64(since, &v) || v > static_cast<uint64_t>(INT64_MAX)) return false;
    *since_ms = static_cast<int64_t>(v);
    *user_id = std::string(user);
    return true;
}

bool parse_presence_reply(char kind, std::string_view name, const std::vector<std::string_view> &flat,
                          std::vector<PresenceEntry> *out, size_t *invalid) {
    if (flat.size() % 3 != 0) return false;
    for (size_t i = 0; i < flat.size(); i += 3) {
        PresenceEntry e;
        uint64_t node = 0;
        if (!parse_u64(flat[i], &node) || node == 0 || node > 65535 || !parse_u64(flat[i + 1], &e.conn) ||
            !decode_presence_value(kind, flat[i + 2], &e.since_ms, &e.user_id)) {
            ++*invalid;
            continue;
        }
        e.node = static_cast<uint16_t>(node);
        if (kind == 'u') e.user_id = std::string(name);
        out->push_back(std::move(e));
    }
    return true;
}

std::string script_sha1(const char *script) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (EVP_Digest(script, std::strlen(script), md, &md_len, EVP_sha1(), nullptr) != 1) return {};
    std::string out;
    char b[3];
    for (unsigned i = 0; i < md_len; i++) {
        std::snprintf(b, sizeof b, "%02x", md[i]);
        out += b;
    }
    return out;
}

}  // namespace wsgate
