// JWT/JWS verification with OpenSSL 3; the policy is in jwt.h.
#include "security/jwt.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/base64url.h"

namespace wsgate {

namespace {

using json = nlohmann::json;

constexpr size_t kMaxJwksBytes = 1 << 20;
constexpr size_t kMaxPemBytes = 1 << 20;
constexpr size_t kMaxSecretBytes = 64 * 1024;
constexpr int kMaxJsonDepth = 32;
constexpr size_t kMaxKidInResult = 128;

// ------------------------------------------------------------------ algorithms

enum class Family { Hmac, RsaPkcs1, RsaPss, Ecdsa, EdDSA };

enum Alg : int { HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512,
                 ES256, ES384, ES512, EDDSA, kAlgCount };

struct AlgInfo {
    const char *name;
    Family family;
    int hash;          // 0 SHA-256, 1 SHA-384, 2 SHA-512; -1 none (EdDSA)
    size_t size;       // HMAC: output bytes; ECDSA: field bytes; else 0
};

const AlgInfo kAlgs[kAlgCount] = {
    {"HS256", Family::Hmac, 0, 32},     {"HS384", Family::Hmac, 1, 48},
    {"HS512", Family::Hmac, 2, 64},     {"RS256", Family::RsaPkcs1, 0, 0},
    {"RS384", Family::RsaPkcs1, 1, 0},  {"RS512", Family::RsaPkcs1, 2, 0},
    {"PS256", Family::RsaPss, 0, 0},    {"PS384", Family::RsaPss, 1, 0},
    {"PS512", Family::RsaPss, 2, 0},    {"ES256", Family::Ecdsa, 0, 32},
    {"ES384", Family::Ecdsa, 1, 48},    {"ES512", Family::Ecdsa, 2, 66},
    {"EdDSA", Family::EdDSA, -1, 0},
};

const char *const kHashNames[3] = {"SHA256", "SHA384", "SHA512"};

constexpr uint32_t bit(int a) { return 1u << a; }
constexpr uint32_t kRsaAlgs = bit(RS256) | bit(RS384) | bit(RS512) | bit(PS256) | bit(PS384) |
                              bit(PS512);

// Index of a JWS algorithm name (exact, case-sensitive), or -1.
int alg_from_name(std::string_view name) {
    for (int a = 0; a < kAlgCount; a++)
        if (name == kAlgs[a].name) return a;
    return -1;
}

bool is_none(std::string_view alg) {
    if (alg.size() != 4) return false;
    for (size_t i = 0; i < 4; i++)
        if ((alg[i] | 0x20) != "none"[i]) return false;
    return true;
}

std::string algs_text(uint32_t mask) {
    std::string s;
    for (int a = 0; a < kAlgCount; a++) {
        if (!(mask & bit(a))) continue;
        if (!s.empty()) s += ',';
        s += kAlgs[a].name;
    }
    return s;
}

// ------------------------------------------------------------------ OpenSSL RAII

struct PkeyFree { void operator()(EVP_PKEY *p) const { EVP_PKEY_free(p); } };
struct PkeyCtxFree { void operator()(EVP_PKEY_CTX *p) const { EVP_PKEY_CTX_free(p); } };
struct MdCtxFree { void operator()(EVP_MD_CTX *p) const { EVP_MD_CTX_free(p); } };
struct MacCtxFree { void operator()(EVP_MAC_CTX *p) const { EVP_MAC_CTX_free(p); } };
struct BnFree { void operator()(BIGNUM *p) const { BN_free(p); } };
struct BioFree { void operator()(BIO *p) const { BIO_free(p); } };
struct ParamBldFree { void operator()(OSSL_PARAM_BLD *p) const { OSSL_PARAM_BLD_free(p); } };
struct ParamFree { void operator()(OSSL_PARAM *p) const { OSSL_PARAM_free(p); } };
struct EcdsaSigFree { void operator()(ECDSA_SIG *p) const { ECDSA_SIG_free(p); } };
struct X509Free { void operator()(X509 *p) const { X509_free(p); } };
struct DecoderCtxFree { void operator()(OSSL_DECODER_CTX *p) const { OSSL_DECODER_CTX_free(p); } };

using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;
using MacCtxPtr = std::unique_ptr<EVP_MAC_CTX, MacCtxFree>;
using BnPtr = std::unique_ptr<BIGNUM, BnFree>;
using BioPtr = std::unique_ptr<BIO, BioFree>;

// Bytes that held a secret are wiped before they are released.
struct SecretBytes {
    std::string s;
    ~SecretBytes() {
        if (!s.empty()) OPENSSL_cleanse(&s[0], s.size());
    }
};

// ------------------------------------------------------------------ strict JSON

// Parses exactly one JSON value. Refuses duplicate member names anywhere and
// nesting deeper than kMaxJsonDepth. On failure *why says which (static).
// nlohmann keeps the last of duplicate members, so they are detected by
// counting the keys the lexer reported for each object against the members
// the finished object holds.
bool parse_json_strict(std::string_view text, json *out, const char **why) {
    std::vector<size_t> keys_seen;  // per open object
    bool duplicate = false, too_deep = false;
    json::parser_callback_t cb = [&](int depth, json::parse_event_t ev, json &parsed) {
        switch (ev) {
        case json::parse_event_t::object_start:
            keys_seen.push_back(0);
            if (depth >= kMaxJsonDepth) too_deep = true;
            break;
        case json::parse_event_t::array_start:
            if (depth >= kMaxJsonDepth) too_deep = true;
            break;
        case json::parse_event_t::key:
            if (!keys_seen.empty()) keys_seen.back()++;
            break;
        case json::parse_event_t::object_end:
            if (!keys_seen.empty()) {
                if (parsed.is_object() && parsed.size() != keys_seen.back()) duplicate = true;
                keys_seen.pop_back();
            }
            break;
        default:
            break;
        }
        return true;
    };
    *out = json::parse(text.begin(), text.end(), cb, /*allow_exceptions=*/false,
                       /*ignore_comments=*/false);
    if (out->is_discarded()) {
        *why = "is not valid JSON";
        return false;
    }
    if (duplicate) {
        *why = "has a duplicate member name";
        return false;
    }
    if (too_deep) {
        *why = "is nested too deeply";
        return false;
    }
    return true;
}

// ------------------------------------------------------------------ keys

enum class KeyKind { Hmac, Rsa, Ec, Ed25519 };

struct Key {
    std::string kid;
    bool has_kid = false;
    uint32_t algs = 0;  // bound algorithms (bit per Alg)
    KeyKind kind = KeyKind::Hmac;
    PkeyPtr pkey;                      // RSA, EC, Ed25519
    std::array<MacCtxPtr, 3> mac;      // HMAC: keyed context per hash, dup'ed per token
    size_t sig_len = 0;                // RSA: modulus bytes; EC: 2 * field bytes
    std::string what;                  // "RSA-2048", "EC P-256", "Ed25519", "HMAC 32 bytes"
};

}  // namespace

struct JwtKeySet::Impl {
    std::vector<std::unique_ptr<Key>> keys;
    std::unordered_set<std::string> skipped_kids;
    size_t skipped = 0;
    EVP_MD *md[3] = {nullptr, nullptr, nullptr};
    EVP_MAC *hmac = nullptr;

    Impl() = default;
    Impl(const Impl &) = delete;
    Impl &operator=(const Impl &) = delete;
    ~Impl() {
        keys.clear();  // MAC contexts before the EVP_MAC they came from
        for (EVP_MD *m : md) EVP_MD_free(m);
        EVP_MAC_free(hmac);
    }

    // Fetches the digests and the HMAC once, so no token pays for a lookup.
    bool fetch(std::string *error) {
        for (int i = 0; i < 3; i++) {
            md[i] = EVP_MD_fetch(nullptr, kHashNames[i], nullptr);
            if (!md[i]) {
                *error = std::string("OpenSSL has no ") + kHashNames[i];
                return false;
            }
        }
        hmac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
        if (!hmac) {
            *error = "OpenSSL has no HMAC";
            return false;
        }
        return true;
    }
};

namespace {

using Impl = JwtKeySet::Impl;

// The ROCA fingerprint (Nemec et al., CCS 2017): moduli made by the affected
// Infineon library are, modulo each small prime p below, in the subgroup
// generated by 65537. A random modulus passes all 38 tests with negligible
// probability.
bool has_roca_fingerprint(const BIGNUM *n) {
    static const unsigned kPrimes[] = {3,   5,   7,   11,  13,  17,  19,  23,  29,  31,
                                       37,  41,  43,  47,  53,  59,  61,  67,  71,  73,
                                       79,  83,  89,  97,  101, 103, 107, 109, 113, 127,
                                       131, 137, 139, 149, 151, 157, 163, 167};
    for (unsigned p : kPrimes) {
        const BN_ULONG r = BN_mod_word(n, p);
        if (r == static_cast<BN_ULONG>(-1)) return false;
        const unsigned g = 65537 % p;
        unsigned x = 1;
        bool in_subgroup = false;
        do {
            if (x == r) {
                in_subgroup = true;
                break;
            }
            x = x * g % p;
        } while (x != 1);
        if (!in_subgroup) return false;
    }
    return true;
}

// Item 11 of the policy, for a modulus and exponent from a JWK or PEM.
bool check_rsa_numbers(const BIGNUM *n, const BIGNUM *e, std::string *why) {
    const int bits = BN_num_bits(n);
    if (bits < 2048) {
        *why = "RSA modulus is " + std::to_string(bits) + " bits; at least 2048 are required";
        return false;
    }
    if (bits > 16384) {
        *why = "RSA modulus is " + std::to_string(bits) + " bits; at most 16384 are supported";
        return false;
    }
    if (!BN_is_odd(n)) {
        *why = "RSA modulus is even";
        return false;
    }
    if (!BN_is_odd(e) || BN_num_bits(e) < 2 || BN_cmp(e, n) >= 0) {
        *why = "RSA public exponent must be odd, at least 3 and below the modulus";
        return false;
    }
    if (has_roca_fingerprint(n)) {
        *why = "RSA modulus has the ROCA fingerprint (CVE-2017-15361); replace the key";
        return false;
    }
    return true;
}

// Checks a parsed RSA EVP_PKEY (PEM path) the same way.
bool check_rsa_pkey(EVP_PKEY *pkey, std::string *why) {
    BIGNUM *n = nullptr, *e = nullptr;
    const bool got = EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n) == 1 &&
                     EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e) == 1;
    BnPtr np(n), ep(e);
    if (!got) {
        *why = "cannot read the RSA key's modulus and exponent";
        return false;
    }
    return check_rsa_numbers(n, e, why);
}

// Full public-key validation by OpenSSL (point on curve, not infinity, ...).
bool public_check(EVP_PKEY *pkey) {
    PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey, nullptr));
    return ctx && EVP_PKEY_public_check(ctx.get()) == 1;
}

struct Curve {
    const char *jwk_name;    // "P-256"
    const char *ossl_name;   // "prime256v1"
    int alg;                 // ES256
    size_t field_bytes;
};

const Curve kCurves[] = {
    {"P-256", "prime256v1", ES256, 32},
    {"P-384", "secp384r1", ES384, 48},
    {"P-521", "secp521r1", ES512, 66},
};

const Curve *curve_by_jwk_name(std::string_view n) {
    for (const Curve &c : kCurves)
        if (n == c.jwk_name) return &c;
    return nullptr;
}

const Curve *curve_of_pkey(EVP_PKEY *pkey) {
    char name[64] = {0};
    size_t len = 0;
    if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof name,
                                       &len) != 1)
        return nullptr;
    const std::string_view n(name, len);
    for (const Curve &c : kCurves)
        if (n == c.ossl_name || n == c.jwk_name) return &c;
    return nullptr;
}

// Keyed HMAC contexts for each bound HS alg (the key schedule is done once).
bool make_hmac_key(Impl &impl, Key &key, std::string_view secret, std::string *why) {
    for (int a = HS256; a <= HS512; a++) {
        if (!(key.algs & bit(a))) continue;
        const int h = kAlgs[a].hash;
        MacCtxPtr ctx(EVP_MAC_CTX_new(impl.hmac));
        OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                             const_cast<char *>(kHashNames[h]), 0),
            OSSL_PARAM_construct_end()};
        if (!ctx || EVP_MAC_init(ctx.get(), reinterpret_cast<const unsigned char *>(secret.data()),
                                 secret.size(), params) != 1) {
            *why = "OpenSSL could not set up the HMAC key";
            return false;
        }
        key.mac[h] = std::move(ctx);
    }
    key.kind = KeyKind::Hmac;
    key.what = "HMAC " + std::to_string(secret.size()) + " bytes";
    return true;
}

// The HS algs a secret is long enough for (RFC 7518 3.2).
uint32_t hmac_algs_for_length(size_t n) {
    uint32_t m = 0;
    for (int a = HS256; a <= HS512; a++)
        if (n >= kAlgs[a].size) m |= bit(a);
    return m;
}

// Binds an HMAC key: `alg` (-1 for none given) and the secret's length.
bool bind_hmac(int alg, size_t len, uint32_t *algs, std::string *why) {
    if (alg >= 0) {
        if (kAlgs[alg].family != Family::Hmac) {
            *why = std::string("alg ") + kAlgs[alg].name + " does not fit a symmetric key";
            return false;
        }
        if (len < kAlgs[alg].size) {
            *why = "HMAC secret is " + std::to_string(len) + " bytes; " + kAlgs[alg].name +
                   " needs at least " + std::to_string(kAlgs[alg].size) + " (RFC 7518 3.2)";
            return false;
        }
        *algs = bit(alg);
        return true;
    }
    *algs = hmac_algs_for_length(len);
    if (!*algs) {
        *why = "HMAC secret is " + std::to_string(len) +
               " bytes; at least 32 are required (RFC 7518 3.2)";
        return false;
    }
    return true;
}

// Classifies and checks an asymmetric public key and binds it to `alg` (-1:
// the algorithms its type allows). Used by the PEM path; JWKs are checked
// field by field before they become EVP_PKEYs and then pass through here too.
bool adopt_public_key(PkeyPtr pkey, int alg, Key *key, std::string *why) {
    EVP_PKEY *p = pkey.get();
    uint32_t allowed = 0;
    if (EVP_PKEY_is_a(p, "RSA")) {
        if (!check_rsa_pkey(p, why)) return false;
        key->kind = KeyKind::Rsa;
        allowed = kRsaAlgs;
        key->sig_len = static_cast<size_t>(EVP_PKEY_get_size(p));
        key->what = "RSA-" + std::to_string(EVP_PKEY_get_bits(p));
    } else if (EVP_PKEY_is_a(p, "RSA-PSS")) {
        *why = "RSA-PSS restricted keys are not supported; use a plain RSA key";
        return false;
    } else if (EVP_PKEY_is_a(p, "EC")) {
        const Curve *c = curve_of_pkey(p);
        if (!c) {
            *why = "EC key is not on a supported named curve (P-256, P-384, P-521)";
            return false;
        }
        if (!public_check(p)) {
            *why = std::string("EC public key is not a valid point of ") + c->jwk_name;
            return false;
        }
        key->kind = KeyKind::Ec;
        allowed = bit(c->alg);
        key->sig_len = 2 * c->field_bytes;
        key->what = std::string("EC ") + c->jwk_name;
    } else if (EVP_PKEY_is_a(p, "ED25519")) {
        key->kind = KeyKind::Ed25519;
        allowed = bit(EDDSA);
        key->sig_len = 64;
        key->what = "Ed25519";
    } else {
        const char *t = EVP_PKEY_get0_type_name(p);
        *why = std::string("unsupported key type ") + (t ? t : "?") +
               " (RSA, EC P-256/P-384/P-521 and Ed25519 are supported)";
        return false;
    }
    if (alg >= 0) {
        if (!(allowed & bit(alg))) {
            *why = std::string("alg ") + kAlgs[alg].name + " does not fit this " + key->what +
                   " key";
            return false;
        }
        key->algs = bit(alg);
    } else {
        key->algs = allowed;
    }
    key->pkey = std::move(pkey);
    return true;
}

// ------------------------------------------------------------------ JWK

PkeyPtr pkey_from_params(const char *type, OSSL_PARAM_BLD *bld) {
    std::unique_ptr<OSSL_PARAM, ParamFree> params(OSSL_PARAM_BLD_to_param(bld));
    PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
    EVP_PKEY *pkey = nullptr;
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
        EVP_PKEY_fromdata(ctx.get(), &pkey, EVP_PKEY_PUBLIC_KEY, params.get()) != 1)
        return nullptr;
    return PkeyPtr(pkey);
}

// Reads JWK member `name` as strict base64url into *out. Absent or not a
// string or not base64url: false with *why set.
bool jwk_bytes(const json &jwk, const char *name, std::string *out, std::string *why) {
    auto it = jwk.find(name);
    if (it == jwk.end() || !it->is_string()) {
        *why = std::string("\"") + name + "\" is missing or not a string";
        return false;
    }
    if (!base64url_decode(it->get_ref<const std::string &>(), out)) {
        *why = std::string("\"") + name + "\" is not strict base64url";
        return false;
    }
    return true;
}

PkeyPtr rsa_from_jwk(const json &jwk, std::string *why) {
    std::string n, e;
    if (!jwk_bytes(jwk, "n", &n, why) || !jwk_bytes(jwk, "e", &e, why)) return nullptr;
    BnPtr bn_n(BN_bin2bn(reinterpret_cast<const unsigned char *>(n.data()), int(n.size()), nullptr));
    BnPtr bn_e(BN_bin2bn(reinterpret_cast<const unsigned char *>(e.data()), int(e.size()), nullptr));
    if (!bn_n || !bn_e) {
        *why = "out of memory";
        return nullptr;
    }
    if (!check_rsa_numbers(bn_n.get(), bn_e.get(), why)) return nullptr;
    std::unique_ptr<OSSL_PARAM_BLD, ParamBldFree> bld(OSSL_PARAM_BLD_new());
    if (!bld || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()) != 1) {
        *why = "out of memory";
        return nullptr;
    }
    PkeyPtr pkey = pkey_from_params("RSA", bld.get());
    if (!pkey) *why = "OpenSSL refused the RSA key";
    return pkey;
}

PkeyPtr ec_from_jwk(const json &jwk, const Curve &c, std::string *why) {
    std::string x, y;
    if (!jwk_bytes(jwk, "x", &x, why) || !jwk_bytes(jwk, "y", &y, why)) return nullptr;
    if (x.size() != c.field_bytes || y.size() != c.field_bytes) {
        *why = std::string("EC coordinates must be ") + std::to_string(c.field_bytes) +
               " bytes for " + c.jwk_name;
        return nullptr;
    }
    std::string point;
    point.reserve(1 + 2 * c.field_bytes);
    point.push_back('\x04');
    point += x;
    point += y;
    std::unique_ptr<OSSL_PARAM_BLD, ParamBldFree> bld(OSSL_PARAM_BLD_new());
    if (!bld ||
        OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, c.ossl_name, 0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                         point.size()) != 1) {
        *why = "out of memory";
        return nullptr;
    }
    PkeyPtr pkey = pkey_from_params("EC", bld.get());
    if (!pkey || !public_check(pkey.get())) {
        *why = std::string("EC public key is not a valid point of ") + c.jwk_name;
        return nullptr;
    }
    return pkey;
}

PkeyPtr ed25519_from_jwk(const json &jwk, std::string *why) {
    std::string x;
    if (!jwk_bytes(jwk, "x", &x, why)) return nullptr;
    if (x.size() != 32) {
        *why = "Ed25519 \"x\" must be 32 bytes";
        return nullptr;
    }
    PkeyPtr pkey(EVP_PKEY_new_raw_public_key_ex(
        nullptr, "ED25519", nullptr, reinterpret_cast<const unsigned char *>(x.data()), x.size()));
    if (!pkey) *why = "OpenSSL refused the Ed25519 key";
    return pkey;
}

enum class JwkOutcome { Usable, Skipped, Refused };

// Parses one JWK (policy items 14-15). Usable: *key is filled.
JwkOutcome parse_jwk(Impl &impl, const json &jwk, Key *key, std::string *why) {
    if (!jwk.is_object()) {
        *why = "is not a JSON object";
        return JwkOutcome::Refused;
    }
    auto kid = jwk.find("kid");
    if (kid != jwk.end()) {
        if (!kid->is_string()) {
            *why = "\"kid\" is not a string";
            return JwkOutcome::Refused;
        }
        key->kid = kid->get<std::string>();
        key->has_kid = true;
    }
    auto kty_it = jwk.find("kty");
    if (kty_it == jwk.end() || !kty_it->is_string()) {
        *why = "\"kty\" is missing or not a string";
        return JwkOutcome::Refused;
    }
    const std::string &kty = kty_it->get_ref<const std::string &>();

    // Not for signature verification: skipped (item 14).
    auto use = jwk.find("use");
    if (use != jwk.end()) {
        if (!use->is_string()) {
            *why = "\"use\" is not a string";
            return JwkOutcome::Refused;
        }
        if (*use != "sig") return JwkOutcome::Skipped;
    }
    auto ops = jwk.find("key_ops");
    if (ops != jwk.end()) {
        if (!ops->is_array()) {
            *why = "\"key_ops\" is not an array";
            return JwkOutcome::Refused;
        }
        bool verify = false;
        for (const json &op : *ops) {
            if (!op.is_string()) {
                *why = "\"key_ops\" holds a non-string";
                return JwkOutcome::Refused;
            }
            if (op == "verify") verify = true;
        }
        if (!verify) return JwkOutcome::Skipped;
    }
    int alg = -1;
    auto alg_it = jwk.find("alg");
    if (alg_it != jwk.end()) {
        if (!alg_it->is_string()) {
            *why = "\"alg\" is not a string";
            return JwkOutcome::Refused;
        }
        const std::string &a = alg_it->get_ref<const std::string &>();
        if (is_none(a)) {
            *why = "\"alg\" is none";
            return JwkOutcome::Refused;
        }
        alg = a == "ES521" ? ES512 : alg_from_name(a);  // item 8: ES521 alias
        if (alg < 0) return JwkOutcome::Skipped;        // RSA-OAEP, A256GCM, ES256K, ...
    }
    const bool oct = kty == "oct";
    for (const char *priv : {"d", "p", "q", "dp", "dq", "qi", "oth"}) {
        if (!oct && jwk.contains(priv)) {
            *why = std::string("holds private key material (\"") + priv +
                   "\"); give the verifier public keys only";
            return JwkOutcome::Refused;
        }
    }

    if (oct) {
        SecretBytes k;
        if (!jwk_bytes(jwk, "k", &k.s, why)) return JwkOutcome::Refused;
        if (!bind_hmac(alg, k.s.size(), &key->algs, why)) return JwkOutcome::Refused;
        return make_hmac_key(impl, *key, k.s, why) ? JwkOutcome::Usable : JwkOutcome::Refused;
    }
    PkeyPtr pkey;
    if (kty == "RSA") {
        if (alg >= 0 && !(kRsaAlgs & bit(alg))) {
            *why = std::string("alg ") + kAlgs[alg].name + " does not fit an RSA key";
            return JwkOutcome::Refused;
        }
        pkey = rsa_from_jwk(jwk, why);
    } else if (kty == "EC") {
        auto crv = jwk.find("crv");
        if (crv == jwk.end() || !crv->is_string()) {
            *why = "\"crv\" is missing or not a string";
            return JwkOutcome::Refused;
        }
        const Curve *c = curve_by_jwk_name(crv->get_ref<const std::string &>());
        if (!c) return JwkOutcome::Skipped;  // secp256k1, brainpool, ...
        if (alg >= 0 && alg != c->alg) {
            *why = std::string("alg ") + alg_it->get<std::string>() + " does not match curve " +
                   c->jwk_name;
            return JwkOutcome::Refused;
        }
        pkey = ec_from_jwk(jwk, *c, why);
    } else if (kty == "OKP") {
        auto crv = jwk.find("crv");
        if (crv == jwk.end() || !crv->is_string()) {
            *why = "\"crv\" is missing or not a string";
            return JwkOutcome::Refused;
        }
        if (*crv != "Ed25519") return JwkOutcome::Skipped;  // X25519, Ed448, X448
        if (alg >= 0 && alg != EDDSA) {
            *why = std::string("alg ") + kAlgs[alg].name + " does not fit an Ed25519 key";
            return JwkOutcome::Refused;
        }
        pkey = ed25519_from_jwk(jwk, why);
    } else {
        return JwkOutcome::Skipped;  // a key type this verifier does not know
    }
    if (!pkey) return JwkOutcome::Refused;
    return adopt_public_key(std::move(pkey), alg, key, why) ? JwkOutcome::Usable
                                                            : JwkOutcome::Refused;
}

std::string key_label(size_t index, const json &jwk) {
    std::string s = "JWKS key " + std::to_string(index);
    if (jwk.is_object()) {
        auto kid = jwk.find("kid");
        if (kid != jwk.end() && kid->is_string()) {
            std::string k = kid->get<std::string>();
            if (k.size() > 64) k = k.substr(0, 64) + "...";
            s += " (kid \"" + k + "\")";
        }
    }
    return s;
}

bool read_file(const std::string &path, size_t max, std::string *out, std::string *error) {
    FILE *f = std::fopen(path.c_str(), "rb");
    if (!f) {
        *error = path + ": " + std::strerror(errno);
        return false;
    }
    out->clear();
    char buf[8192];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
        if (out->size() + n > max) {
            std::fclose(f);
            *error = path + ": larger than " + std::to_string(max) + " bytes";
            return false;
        }
        out->append(buf, n);
    }
    const bool bad = std::ferror(f) != 0;
    std::fclose(f);
    if (bad) {
        *error = path + ": read error";
        return false;
    }
    return true;
}

void set_error(std::string *error, std::string msg) {
    if (error) *error = std::move(msg);
}

// ------------------------------------------------------------------ verification

std::string sanitize_kid(const std::string &kid) {
    std::string s = kid.substr(0, kMaxKidInResult);
    for (char &c : s)
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
    return s;
}

bool verify_hmac(const Key &key, int alg, std::string_view input, std::string_view sig) {
    const AlgInfo &a = kAlgs[alg];
    if (sig.size() != a.size) return false;
    const EVP_MAC_CTX *tmpl = key.mac[a.hash].get();
    if (!tmpl) return false;
    MacCtxPtr ctx(EVP_MAC_CTX_dup(tmpl));
    unsigned char out[EVP_MAX_MD_SIZE];
    size_t out_len = 0;
    if (!ctx ||
        EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char *>(input.data()),
                       input.size()) != 1 ||
        EVP_MAC_final(ctx.get(), out, &out_len, sizeof out) != 1 || out_len != a.size)
        return false;
    const bool same = CRYPTO_memcmp(out, sig.data(), a.size) == 0;
    OPENSSL_cleanse(out, sizeof out);
    return same;
}

// Raw R||S (JWS) to the DER form OpenSSL verifies.
bool ecdsa_raw_to_der(std::string_view sig, size_t field, std::string *der) {
    if (sig.size() != 2 * field) return false;
    std::unique_ptr<ECDSA_SIG, EcdsaSigFree> es(ECDSA_SIG_new());
    BIGNUM *r = BN_bin2bn(reinterpret_cast<const unsigned char *>(sig.data()), int(field), nullptr);
    BIGNUM *s = BN_bin2bn(reinterpret_cast<const unsigned char *>(sig.data() + field), int(field),
                          nullptr);
    if (!es || !r || !s || ECDSA_SIG_set0(es.get(), r, s) != 1) {
        BN_free(r);
        BN_free(s);
        return false;
    }
    const int len = i2d_ECDSA_SIG(es.get(), nullptr);
    if (len <= 0) return false;
    der->resize(static_cast<size_t>(len));
    unsigned char *p = reinterpret_cast<unsigned char *>(&(*der)[0]);
    return i2d_ECDSA_SIG(es.get(), &p) == len;
}

bool verify_pkey(const Impl &impl, const Key &key, int alg, std::string_view input,
                 std::string_view sig) {
    const AlgInfo &a = kAlgs[alg];
    if (sig.size() != key.sig_len) return false;
    std::string der;
    if (a.family == Family::Ecdsa) {
        if (!ecdsa_raw_to_der(sig, a.size, &der)) return false;
        sig = der;
    }
    MdCtxPtr mctx(EVP_MD_CTX_new());
    if (!mctx) return false;
    EVP_PKEY_CTX *pctx = nullptr;  // owned by mctx
    const EVP_MD *md = a.hash >= 0 ? impl.md[a.hash] : nullptr;
    if (EVP_DigestVerifyInit(mctx.get(), &pctx, md, nullptr, key.pkey.get()) != 1) return false;
    if (a.family == Family::RsaPss &&
        (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1 ||
         EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) != 1))
        return false;
    return EVP_DigestVerify(mctx.get(), reinterpret_cast<const unsigned char *>(sig.data()),
                            sig.size(), reinterpret_cast<const unsigned char *>(input.data()),
                            input.size()) == 1;
}

JwsResult jws_fail(JwsResult &r, JwtError e, const char *msg) {
    r.error = e;
    r.message = msg;
    r.payload.clear();
    return std::move(r);
}

// Saturating a + b for the claim arithmetic.
int64_t sat_add(int64_t a, int64_t b) {
    if (b > 0 && a > std::numeric_limits<int64_t>::max() - b)
        return std::numeric_limits<int64_t>::max();
    if (b < 0 && a < std::numeric_limits<int64_t>::min() - b)
        return std::numeric_limits<int64_t>::min();
    return a + b;
}

// A NumericDate (RFC 7519 2): any JSON number, fractions rounded down
// (round_up false) or up. False when `v` is not a finite number.
bool numeric_date(const json &v, bool round_up, int64_t *out) {
    if (v.is_number_unsigned()) {
        const uint64_t u = v.get<uint64_t>();
        *out = u > uint64_t(std::numeric_limits<int64_t>::max()) ? std::numeric_limits<int64_t>::max()
                                                                 : int64_t(u);
        return true;
    }
    if (v.is_number_integer()) {
        *out = v.get<int64_t>();
        return true;
    }
    if (v.is_number_float()) {
        double d = v.get<double>();
        if (!std::isfinite(d)) return false;
        d = round_up ? std::ceil(d) : std::floor(d);
        if (d >= 9.2e18) *out = std::numeric_limits<int64_t>::max();
        else if (d <= -9.2e18) *out = std::numeric_limits<int64_t>::min();
        else *out = static_cast<int64_t>(d);
        return true;
    }
    return false;
}

JwtResult jwt_fail(JwtResult &r, JwtError e, std::string msg) {
    r.error = e;
    r.message = std::move(msg);
    r.user_id.clear();
    r.claims_json.clear();
    return std::move(r);
}

}  // namespace

// ------------------------------------------------------------------ public

const char *jwt_error_name(JwtError e) {
    switch (e) {
    case JwtError::None: return "none";
    case JwtError::TooLarge: return "too_large";
    case JwtError::Malformed: return "malformed";
    case JwtError::BadBase64: return "bad_base64";
    case JwtError::BadHeader: return "bad_header";
    case JwtError::AlgNone: return "alg_none";
    case JwtError::AlgNotAllowed: return "alg_not_allowed";
    case JwtError::UnsupportedCrit: return "unsupported_crit";
    case JwtError::UnknownKid: return "unknown_kid";
    case JwtError::NoKey: return "no_key";
    case JwtError::KeyAlgMismatch: return "key_alg_mismatch";
    case JwtError::BadSignature: return "bad_signature";
    case JwtError::BadPayload: return "bad_payload";
    case JwtError::BadClaim: return "bad_claim";
    case JwtError::MissingClaim: return "missing_claim";
    case JwtError::Expired: return "expired";
    case JwtError::NotYetValid: return "not_yet_valid";
    case JwtError::IssuedInFuture: return "issued_in_future";
    case JwtError::BadIssuer: return "bad_issuer";
    case JwtError::BadAudience: return "bad_audience";
    case JwtError::Internal: return "internal";
    }
    return "unknown";
}

bool jwt_policy_check(const JwtPolicy &policy, std::string *error) {
    for (const std::string &a : policy.algorithms) {
        if (alg_from_name(a) < 0) {
            set_error(error, "unknown JWT algorithm \"" + a.substr(0, 32) +
                                 "\" (HS256/384/512, RS256/384/512, PS256/384/512, "
                                 "ES256/384/512, EdDSA)");
            return false;
        }
    }
    if (policy.leeway_s < 0 || policy.leeway_s > 86400) {
        set_error(error, "JWT leeway must be 0..86400 seconds");
        return false;
    }
    if (policy.max_token_bytes < 64 || policy.max_token_bytes > (1u << 20)) {
        set_error(error, "JWT max token size must be 64..1048576 bytes");
        return false;
    }
    return true;
}

JwtKeySet::JwtKeySet(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
JwtKeySet::~JwtKeySet() = default;

size_t JwtKeySet::size() const { return impl_->keys.size(); }
size_t JwtKeySet::skipped() const { return impl_->skipped; }

std::string JwtKeySet::describe() const {
    std::string s;
    for (const auto &k : impl_->keys) {
        if (!s.empty()) s += '\n';
        s += k->has_kid ? "kid=" + k->kid : std::string("(no kid)");
        s += ' ';
        s += k->what;
        s += ' ';
        s += algs_text(k->algs);
    }
    return s;
}

std::unique_ptr<JwtKeySet> JwtKeySet::from_jwks(std::string_view text, std::string *error) {
    try {
        if (text.size() > kMaxJwksBytes) {
            set_error(error, "JWKS is larger than 1 MiB");
            return nullptr;
        }
        json doc;
        const char *why_json = "";
        if (!parse_json_strict(text, &doc, &why_json)) {
            set_error(error, std::string("JWKS ") + why_json);
            return nullptr;
        }
        if (!doc.is_object()) {
            set_error(error, "JWKS is not a JSON object");
            return nullptr;
        }
        json single;
        const json *list = nullptr;
        auto keys = doc.find("keys");
        if (keys != doc.end()) {
            if (!keys->is_array()) {
                set_error(error, "JWKS \"keys\" is not an array");
                return nullptr;
            }
            list = &*keys;
        } else if (doc.contains("kty")) {
            single = json::array({doc});
            list = &single;
        } else {
            set_error(error, "JWKS has neither \"keys\" nor \"kty\"");
            return nullptr;
        }
        auto impl = std::make_unique<Impl>();
        std::string why;
        if (!impl->fetch(&why)) {
            ERR_clear_error();
            set_error(error, why);
            return nullptr;
        }
        std::unordered_set<std::string> kids;
        for (size_t i = 0; i < list->size(); i++) {
            const json &jwk = (*list)[i];
            auto key = std::make_unique<Key>();
            why.clear();
            const JwkOutcome o = parse_jwk(*impl, jwk, key.get(), &why);
            if (o == JwkOutcome::Refused) {
                ERR_clear_error();
                set_error(error, key_label(i, jwk) + ": " + why);
                return nullptr;
            }
            if (o == JwkOutcome::Skipped) {
                impl->skipped++;
                if (key->has_kid) impl->skipped_kids.insert(key->kid);
                continue;
            }
            if (key->has_kid && !kids.insert(key->kid).second) {
                set_error(error, key_label(i, jwk) + ": duplicate kid");
                return nullptr;
            }
            impl->keys.push_back(std::move(key));
        }
        size_t secrets = 0;
        for (const auto &k : impl->keys) secrets += k->kind == KeyKind::Hmac;
        if (secrets != 0 && secrets != impl->keys.size()) {
            set_error(error, "JWKS mixes secret (oct) keys with public keys; keep secrets in "
                             "their own set");
            return nullptr;
        }
        if (impl->keys.empty()) {
            set_error(error, "JWKS has no key usable for JWS verification (" +
                                 std::to_string(impl->skipped) + " skipped)");
            return nullptr;
        }
        // A kid that names a usable key is not "skipped", whatever else shares it.
        for (const auto &k : impl->keys)
            if (k->has_kid) impl->skipped_kids.erase(k->kid);
        return std::unique_ptr<JwtKeySet>(new JwtKeySet(std::move(impl)));
    } catch (const std::exception &e) {
        ERR_clear_error();
        set_error(error, std::string("JWKS: ") + e.what());
        return nullptr;
    }
}

std::unique_ptr<JwtKeySet> JwtKeySet::from_pem(std::string_view pem, std::string_view alg_name,
                                               std::string *error) {
    try {
        if (pem.size() > kMaxPemBytes) {
            set_error(error, "PEM is larger than 1 MiB");
            return nullptr;
        }
        int alg = -1;
        if (!alg_name.empty()) {
            alg = alg_from_name(alg_name);
            if (alg < 0 || kAlgs[alg].family == Family::Hmac) {
                set_error(error, "alg \"" + std::string(alg_name.substr(0, 32)) +
                                     "\" is not a public-key JWS algorithm");
                return nullptr;
            }
        }
        // The first block's label says what it is ("EC PARAMETERS" may precede a key).
        std::string label;
        size_t pos = 0;
        for (;;) {
            const size_t b = pem.find("-----BEGIN ", pos);
            if (b == std::string_view::npos) break;
            const size_t s = b + 11;
            const size_t e = pem.find("-----", s);
            if (e == std::string_view::npos) break;
            label.assign(pem.substr(s, e - s));
            pos = e + 5;
            if (label != "EC PARAMETERS") break;
            label.clear();
        }
        if (label.empty()) {
            set_error(error, "no PEM block found");
            return nullptr;
        }
        if (label.find("PRIVATE KEY") != std::string::npos) {
            set_error(error, "PEM holds a private key (" + label.substr(0, 40) +
                                 "); give the verifier the public key only");
            return nullptr;
        }
        BioPtr bio(BIO_new_mem_buf(pem.data(), int(pem.size())));
        if (!bio) {
            set_error(error, "out of memory");
            return nullptr;
        }
        PkeyPtr pkey;
        if (label == "PUBLIC KEY") {
            pkey.reset(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
        } else if (label == "RSA PUBLIC KEY") {
            EVP_PKEY *p = nullptr;
            std::unique_ptr<OSSL_DECODER_CTX, DecoderCtxFree> dctx(OSSL_DECODER_CTX_new_for_pkey(
                &p, "PEM", nullptr, "RSA", EVP_PKEY_PUBLIC_KEY, nullptr, nullptr));
            const unsigned char *data = reinterpret_cast<const unsigned char *>(pem.data());
            size_t len = pem.size();
            if (dctx && OSSL_DECODER_from_data(dctx.get(), &data, &len) == 1) pkey.reset(p);
            else EVP_PKEY_free(p);
        } else if (label == "CERTIFICATE") {
            std::unique_ptr<X509, X509Free> cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
            if (cert) pkey.reset(X509_get_pubkey(cert.get()));
        } else {
            set_error(error, "unsupported PEM block \"" + label.substr(0, 40) +
                                 "\" (PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE)");
            return nullptr;
        }
        if (!pkey) {
            ERR_clear_error();
            set_error(error, "cannot decode the PEM " + label);
            return nullptr;
        }
        auto impl = std::make_unique<Impl>();
        std::string why;
        auto key = std::make_unique<Key>();
        if (!impl->fetch(&why) || !adopt_public_key(std::move(pkey), alg, key.get(), &why)) {
            ERR_clear_error();
            set_error(error, "PEM key: " + why);
            return nullptr;
        }
        impl->keys.push_back(std::move(key));
        return std::unique_ptr<JwtKeySet>(new JwtKeySet(std::move(impl)));
    } catch (const std::exception &e) {
        ERR_clear_error();
        set_error(error, std::string("PEM: ") + e.what());
        return nullptr;
    }
}

std::unique_ptr<JwtKeySet> JwtKeySet::from_secret(std::string_view secret, std::string_view alg_name,
                                                  std::string *error) {
    try {
        if (secret.size() > kMaxSecretBytes) {
            set_error(error, "HMAC secret is larger than 64 KiB");
            return nullptr;
        }
        int alg = -1;
        if (!alg_name.empty()) {
            alg = alg_from_name(alg_name);
            if (alg < 0 || kAlgs[alg].family != Family::Hmac) {
                set_error(error, "alg \"" + std::string(alg_name.substr(0, 32)) +
                                     "\" is not HS256, HS384 or HS512");
                return nullptr;
            }
        }
        auto impl = std::make_unique<Impl>();
        auto key = std::make_unique<Key>();
        std::string why;
        if (!bind_hmac(alg, secret.size(), &key->algs, &why) || !impl->fetch(&why) ||
            !make_hmac_key(*impl, *key, secret, &why)) {
            ERR_clear_error();
            set_error(error, why);
            return nullptr;
        }
        impl->keys.push_back(std::move(key));
        return std::unique_ptr<JwtKeySet>(new JwtKeySet(std::move(impl)));
    } catch (const std::exception &e) {
        ERR_clear_error();
        set_error(error, std::string("HMAC secret: ") + e.what());
        return nullptr;
    }
}

std::unique_ptr<JwtKeySet> JwtKeySet::combine(std::vector<std::unique_ptr<JwtKeySet>> parts,
                                             std::string *error) {
    try {
        auto impl = std::make_unique<Impl>();
        std::string why;
        if (!impl->fetch(&why)) {
            ERR_clear_error();
            set_error(error, why);
            return nullptr;
        }
        std::unordered_set<std::string> kids;
        for (const auto &part : parts) {
            if (!part) {
                set_error(error, "cannot combine a missing key set");
                return nullptr;
            }
            for (const auto &k : part->impl_->keys) {
                if (k->has_kid && !kids.insert(k->kid).second) {
                    set_error(error, "duplicate kid \"" + k->kid.substr(0, 64) +
                                         "\" across the combined key sets");
                    return nullptr;
                }
            }
        }
        // Keys move as they are: their EVP_PKEY and keyed MAC contexts hold
        // their own references to what they need.
        for (auto &part : parts) {
            for (auto &k : part->impl_->keys) impl->keys.push_back(std::move(k));
            part->impl_->keys.clear();
            impl->skipped += part->impl_->skipped;
            impl->skipped_kids.insert(part->impl_->skipped_kids.begin(),
                                      part->impl_->skipped_kids.end());
        }
        for (const auto &k : impl->keys)
            if (k->has_kid) impl->skipped_kids.erase(k->kid);
        if (impl->keys.empty()) {
            set_error(error, "no key to combine");
            return nullptr;
        }
        return std::unique_ptr<JwtKeySet>(new JwtKeySet(std::move(impl)));
    } catch (const std::exception &e) {
        set_error(error, std::string("combining key sets: ") + e.what());
        return nullptr;
    }
}

std::unique_ptr<JwtKeySet> JwtKeySet::from_jwks_file(const std::string &path, std::string *error) {
    std::string text, why;
    if (!read_file(path, kMaxJwksBytes, &text, &why)) {
        set_error(error, why);
        return nullptr;
    }
    auto ks = from_jwks(text, &why);
    if (!ks) set_error(error, path + ": " + why);
    return ks;
}

std::unique_ptr<JwtKeySet> JwtKeySet::from_pem_file(const std::string &path, std::string_view alg,
                                                    std::string *error) {
    std::string text, why;
    if (!read_file(path, kMaxPemBytes, &text, &why)) {
        set_error(error, why);
        return nullptr;
    }
    auto ks = from_pem(text, alg, &why);
    if (!ks) set_error(error, path + ": " + why);
    return ks;
}

std::unique_ptr<JwtKeySet> JwtKeySet::from_secret_file(const std::string &path,
                                                       std::string_view alg, std::string *error) {
    SecretBytes text;
    std::string why;
    if (!read_file(path, kMaxSecretBytes, &text.s, &why)) {
        set_error(error, why);
        return nullptr;
    }
    size_t n = text.s.size();
    if (n > 0 && text.s[n - 1] == '\n') {
        n--;
        if (n > 0 && text.s[n - 1] == '\r') n--;
    }
    auto ks = from_secret(std::string_view(text.s).substr(0, n), alg, &why);
    if (!ks) set_error(error, path + ": " + why);
    return ks;
}

JwsResult jws_verify(std::string_view token, const JwtKeySet &keys, const JwtPolicy &policy) {
    JwsResult r;
    try {
        if (token.size() > policy.max_token_bytes)
            return jws_fail(r, JwtError::TooLarge, "token is larger than the maximum size");
        const size_t d1 = token.find('.');
        const size_t d2 = d1 == std::string_view::npos ? d1 : token.find('.', d1 + 1);
        if (d2 == std::string_view::npos || token.find('.', d2 + 1) != std::string_view::npos)
            return jws_fail(r, JwtError::Malformed,
                            "token is not three dot-separated segments (compact JWS)");

        std::string header_text;
        if (!base64url_decode(token.substr(0, d1), &header_text))
            return jws_fail(r, JwtError::BadBase64, "header is not strict base64url");
        json header;
        const char *why = "";
        if (!parse_json_strict(header_text, &header, &why)) {
            r.message = std::string("header ") + why;
            r.error = JwtError::BadHeader;
            return r;
        }
        if (!header.is_object())
            return jws_fail(r, JwtError::BadHeader, "header is not a JSON object");

        auto kid_it = header.find("kid");
        const std::string *kid = nullptr;
        if (kid_it != header.end()) {
            if (!kid_it->is_string())
                return jws_fail(r, JwtError::BadHeader, "header kid is not a string");
            kid = &kid_it->get_ref<const std::string &>();
            r.kid = sanitize_kid(*kid);
        }
        auto alg_it = header.find("alg");
        if (alg_it == header.end() || !alg_it->is_string())
            return jws_fail(r, JwtError::BadHeader, "header alg is missing or not a string");
        const std::string &alg_name = alg_it->get_ref<const std::string &>();
        if (is_none(alg_name))
            return jws_fail(r, JwtError::AlgNone, "alg none is refused");
        const int alg = alg_from_name(alg_name);
        if (alg < 0) return jws_fail(r, JwtError::AlgNotAllowed, "alg is not supported");
        r.alg = kAlgs[alg].name;
        if (!policy.algorithms.empty() &&
            std::find(policy.algorithms.begin(), policy.algorithms.end(), alg_name) ==
                policy.algorithms.end())
            return jws_fail(r, JwtError::AlgNotAllowed, "alg is not in the allowed list");
        if (header.contains("crit"))
            return jws_fail(r, JwtError::UnsupportedCrit,
                            "header has crit; no extension is supported");
        auto b64 = header.find("b64");
        if (b64 != header.end() && !(b64->is_boolean() && b64->get<bool>()))
            return jws_fail(r, JwtError::UnsupportedCrit, "unencoded payload (b64) is refused");

        std::string sig;
        if (!base64url_decode(token.substr(d1 + 1, d2 - d1 - 1), &r.payload))
            return jws_fail(r, JwtError::BadBase64, "payload is not strict base64url");
        if (!base64url_decode(token.substr(d2 + 1), &sig))
            return jws_fail(r, JwtError::BadBase64, "signature is not strict base64url");

        // Key selection (policy item 9).
        const Impl &impl = *keys.impl_;
        std::vector<const Key *> candidates;
        if (kid) {
            for (const auto &k : impl.keys)
                if (k->has_kid && k->kid == *kid) candidates.push_back(k.get());
            if (candidates.empty()) {
                if (impl.skipped_kids.count(*kid))
                    return jws_fail(r, JwtError::UnknownKid,
                                    "kid names a key that is not for signature verification");
                for (const auto &k : impl.keys)
                    if (!k->has_kid) candidates.push_back(k.get());
                if (candidates.empty())
                    return jws_fail(r, JwtError::UnknownKid, "kid names no configured key");
            }
        } else {
            for (const auto &k : impl.keys) candidates.push_back(k.get());
        }
        if (candidates.empty()) return jws_fail(r, JwtError::NoKey, "no key is configured");
        const Key *key = nullptr;
        size_t matching = 0;
        for (const Key *k : candidates) {
            if (k->algs & bit(alg)) {
                key = k;
                matching++;
            }
        }
        if (matching == 0)
            return jws_fail(r, JwtError::KeyAlgMismatch, "no candidate key is bound to this alg");
        if (matching > 1)
            return jws_fail(r, JwtError::NoKey,
                            "several keys could verify this token; it needs a kid");

        const std::string_view input = token.substr(0, d2);
        const bool good = kAlgs[alg].family == Family::Hmac
                              ? verify_hmac(*key, alg, input, sig)
                              : verify_pkey(impl, *key, alg, input, sig);
        if (!good) {
            ERR_clear_error();  // leave nothing for the TLS code on this thread
            return jws_fail(r, JwtError::BadSignature, "signature does not verify");
        }
        r.error = JwtError::None;
        r.message.clear();
        return r;
    } catch (const std::exception &) {
        ERR_clear_error();
        return jws_fail(r, JwtError::Internal, "internal error while verifying the token");
    }
}

JwtResult jwt_verify(std::string_view token, const JwtKeySet &keys, const JwtPolicy &policy,
                     int64_t now_s) {
    JwtResult r;
    JwsResult s = jws_verify(token, keys, policy);
    r.alg = std::move(s.alg);
    r.kid = std::move(s.kid);
    if (!s.ok()) return jwt_fail(r, s.error, std::move(s.message));
    try {
        json claims;
        const char *why = "";
        if (!parse_json_strict(s.payload, &claims, &why))
            return jwt_fail(r, JwtError::BadPayload, std::string("payload ") + why);
        if (!claims.is_object())
            return jwt_fail(r, JwtError::BadPayload, "payload is not a JSON object");
        const int64_t leeway = policy.leeway_s < 0 ? 0 : policy.leeway_s;

        auto exp_it = claims.find("exp");
        if (exp_it != claims.end()) {
            int64_t exp = 0;
            if (!numeric_date(*exp_it, false, &exp))
                return jwt_fail(r, JwtError::BadClaim, "exp is not a number");
            if (now_s >= sat_add(exp, leeway))
                return jwt_fail(r, JwtError::Expired,
                                "token expired at " + std::to_string(exp) + " (now " +
                                    std::to_string(now_s) + ", leeway " +
                                    std::to_string(leeway) + " s)");
            r.exp = exp;
        } else if (policy.require_exp) {
            return jwt_fail(r, JwtError::MissingClaim, "exp is required");
        }
        auto nbf_it = claims.find("nbf");
        if (nbf_it != claims.end()) {
            int64_t nbf = 0;
            if (!numeric_date(*nbf_it, true, &nbf))
                return jwt_fail(r, JwtError::BadClaim, "nbf is not a number");
            if (sat_add(now_s, leeway) < nbf)
                return jwt_fail(r, JwtError::NotYetValid,
                                "token not valid before " + std::to_string(nbf) + " (now " +
                                    std::to_string(now_s) + ", leeway " +
                                    std::to_string(leeway) + " s)");
        }
        auto iat_it = claims.find("iat");
        if (iat_it != claims.end()) {
            int64_t iat = 0;
            if (!numeric_date(*iat_it, true, &iat))
                return jwt_fail(r, JwtError::BadClaim, "iat is not a number");
            if (iat > sat_add(now_s, leeway))
                return jwt_fail(r, JwtError::IssuedInFuture,
                                "token issued in the future at " + std::to_string(iat) +
                                    " (now " + std::to_string(now_s) + ", leeway " +
                                    std::to_string(leeway) + " s)");
        }
        if (!policy.issuer.empty()) {
            auto iss = claims.find("iss");
            if (iss == claims.end() || !iss->is_string())
                return jwt_fail(r, JwtError::BadIssuer, "iss is missing or not a string");
            if (iss->get_ref<const std::string &>() != policy.issuer)
                return jwt_fail(r, JwtError::BadIssuer, "iss is not the configured issuer");
        }
        auto aud = claims.find("aud");
        if (!policy.audiences.empty()) {
            if (aud == claims.end())
                return jwt_fail(r, JwtError::BadAudience, "aud is missing");
            bool match = false;
            auto ours = [&](const std::string &a) {
                return std::find(policy.audiences.begin(), policy.audiences.end(), a) !=
                       policy.audiences.end();
            };
            if (aud->is_string()) {
                match = ours(aud->get_ref<const std::string &>());
            } else if (aud->is_array()) {
                for (const json &a : *aud) {
                    if (!a.is_string())
                        return jwt_fail(r, JwtError::BadAudience, "aud holds a non-string");
                    if (ours(a.get_ref<const std::string &>())) match = true;
                }
            } else {
                return jwt_fail(r, JwtError::BadAudience, "aud is not a string or an array");
            }
            if (!match)
                return jwt_fail(r, JwtError::BadAudience, "aud does not name this service");
        } else if (aud != claims.end()) {
            return jwt_fail(r, JwtError::BadAudience,
                            "token has aud but no audience is configured");
        }
        if (!policy.user_claim.empty()) {
            auto user = claims.find(policy.user_claim);
            if (user == claims.end())
                return jwt_fail(r, JwtError::MissingClaim, "the user claim is missing");
            if (!user->is_string() || user->get_ref<const std::string &>().empty())
                return jwt_fail(r, JwtError::BadClaim,
                                "the user claim is not a non-empty string");
            r.user_id = user->get<std::string>();
        }
        r.claims_json = std::move(s.payload);
        r.error = JwtError::None;
        r.message.clear();
        return r;
    } catch (const std::exception &) {
        return jwt_fail(r, JwtError::Internal, "internal error while checking claims");
    }
}

}  // namespace wsgate
