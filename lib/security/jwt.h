// JWT/JWS verification (RFC 7515, 7518, 7519, 8037, 8725) with OpenSSL 3.
//
// Compact JWS only. Algorithms: HS256/384/512, RS256/384/512, PS256/384/512,
// ES256/384/512 and EdDSA (Ed25519). Keys come from a JWKS (or one JWK), a
// PEM public key or certificate, or an HMAC secret; they are parsed once into
// EVP_PKEY objects (or an HMAC context) when the key set is built.
//
// Threads: a JwtKeySet is immutable once built; any number of threads may
// verify against it at once. jws_verify()/jwt_verify() keep no state.
//
// ---------------------------------------------------------------- policy
// These are deliberate decisions; the README repeats them.
//
// Token shape
//  1. Only the compact serialization: exactly three base64url segments
//     separated by two dots. The JSON serializations, detached payloads
//     (RFC 7515 F) and unencoded payloads (RFC 7797 "b64": false) are refused.
//  2. Tokens longer than JwtPolicy::max_token_bytes (default 8 KiB) are
//     refused before anything is decoded.
//  3. Base64url is decoded strictly (base64url.h): no padding, no whitespace,
//     no '+' or '/', no other character, canonical final bits. Wycheproof
//     JWS cases 372 and 373 (a '?' inside a segment, marked "valid") are
//     therefore refused; that is intended.
//  4. Header and payload are parsed with nlohmann::json and must each be one
//     JSON object. Duplicate member names are refused in both (different
//     parsers keep different duplicates: "first alg wins" vs "last alg wins"
//     is an attack), as is nesting deeper than 32 levels. JWKS documents are
//     parsed the same way.
//
// Header
//  5. "alg" is required and must be a string. "none" (any case) is always
//     refused (reason alg_none). An alg outside the list above, or outside
//     JwtPolicy::algorithms when that list is not empty, is refused.
//  6. Any "crit" member is refused: wsgate understands no extension header
//     parameter, and RFC 7515 4.1.11 says to refuse what one does not
//     understand. "b64" with any value other than true is refused.
//  7. "jwk", "jku", "x5u", "x5c", "x5t", "x5t#S256" are never used: a token
//     cannot bring or point to its own key. "kid" only selects among the
//     configured keys and must be a string when present. "typ" and "cty"
//     are not checked.
//
// Keys and algorithms
//  8. Every key is bound to the algorithms it may verify: the JWK's "alg"
//     (or the alg given with a PEM key or secret) when there is one, else
//     every algorithm its type allows (RSA: RS* and PS*; EC: the ES alg of
//     its curve; Ed25519: EdDSA; secret: the HS* algs its length allows).
//     A token whose alg is not bound to the selected key is refused
//     (key_alg_mismatch). So an HS256 token "signed" with an RSA or EC public
//     key is refused, and so are Wycheproof JWS cases 346 and 350 (a PS384
//     token for a JWK whose alg is PS256, marked "valid"); that is intended.
//     The unregistered JWK alg name "ES521" (Wycheproof, Tink) is read as
//     ES512; it is never accepted in a token header.
//  9. Key selection: a token with a "kid" uses the key with that kid; if no
//     key has it, the keys without a kid are the candidates (a PEM key or a
//     secret has no kid, so a token may carry any kid). A token without a
//     kid may use any key. Among the candidates, those bound to the token's
//     alg must be exactly one: none is key_alg_mismatch, several is no_key
//     (ambiguous; wsgate never tries keys in turn).
// 10. HMAC secrets must be at least as long as the hash output (32, 48, 64
//     bytes for HS256/384/512; RFC 7518 3.2). A shorter secret is refused
//     when the key set is built; a secret without an alg is bound only to
//     the HS algs it is long enough for. MACs are compared in constant time
//     (CRYPTO_memcmp) and must have exactly the hash's length.
// 11. RSA keys: modulus of 2048 to 16384 bits; public exponent odd, >= 3 and
//     < n; keys with the ROCA fingerprint (CVE-2017-15361, Infineon) are
//     refused. Signatures must be exactly the modulus length. PS* uses MGF1
//     with the same hash and a salt as long as the hash (RFC 7518 3.5).
// 12. EC keys: P-256, P-384 or P-521 only, and the JWK alg (if any) must be
//     the curve's (ES256/P-256, ES384/P-384, ES512/P-521). JWK coordinates
//     must be exactly the field size and the point must be on the curve.
//     Signatures must be raw R||S of exactly twice the field size (64, 96,
//     132 bytes); DER signatures are refused.
// 13. OKP keys: Ed25519 only, for EdDSA only (Ed448 is not supported).
//
// JWKS
// 14. The document is {"keys": [...]} or a single JWK object. Keys that are
//     not for JWS verification are skipped, not errors, because real JWKS
//     endpoints mix them in: "use" present and not "sig", "key_ops" present
//     without "verify", an "alg" that is not one of the JWS algorithms above
//     (RSA-OAEP, A256GCM, ES256K, ...), or an unsupported key type or curve
//     (X25519, Ed448, secp256k1, ...). A token naming a skipped key's kid is
//     refused (unknown_kid). A document with no usable key is refused.
// 15. Keys that are for verification but broken refuse the whole document,
//     with a message naming the key: missing or malformed members, alg that
//     contradicts kty or curve, weak keys (items 10-12), a point off the
//     curve, and private key members ("d", "p", "q", "dp", "dq", "qi",
//     "oth"): a verifier must be given public keys only, and a private key
//     in a verification key set is a leak to fix. ("k" of an oct key is
//     necessarily secret.)
// 16. Duplicate kids among the usable keys refuse the whole document: which
//     key a token meant would be a guess. So does a document whose usable
//     keys mix secrets ("oct") with public keys (Wycheproof "MixedKeySet"): a
//     JWKS of public keys is meant to be published, and a secret beside them
//     is as good as published. Secrets and public keys configured apart are
//     joined with JwtKeySet::combine(), where kids must be unique too.
//
// Claims (jwt_verify only; jws_verify checks the signature alone)
// 17. The payload must be a JSON object (item 4), parsed only after the
//     signature has been verified.
// 18. exp: a number (integer or fraction), required unless
//     JwtPolicy::require_exp is false; refused when now >= exp + leeway.
//     nbf: refused when now + leeway < nbf. iat: refused when
//     iat > now + leeway (issued in the future). leeway defaults to 60 s.
//     A present exp, nbf or iat that is not a number is refused (bad_claim).
// 19. iss: when JwtPolicy::issuer is set, "iss" must be a string equal to it.
// 20. aud: when JwtPolicy::audiences is set, "aud" (a string or an array of
//     strings) must contain one of them. When no audience is configured, a
//     token that has "aud" is refused (RFC 7519 4.1.3: a recipient that does
//     not identify itself with the audience must refuse the token); this
//     stops a token minted for another service of the same issuer.
// 21. The user id is the claim named by JwtPolicy::user_claim (default
//     "sub"): it must be present and a non-empty string. An empty user_claim
//     disables this (user_id stays empty).
// 22. The claims are handed to the application as the payload's JSON text,
//     exactly as signed (JwtResult::claims_json).
//
// Errors
// 23. Each failure has a JwtError reason (jwt_error_name() gives a stable
//     snake_case name for logs and metrics) and a short message for logs.
//     Messages never contain the token or any part of it; numbers (times,
//     sizes) are the only token-derived content. JwtResult::kid and ::alg
//     are token-derived (alg only when it is a known name; kid cut to 128
//     bytes with non-printable bytes replaced by '?'): escape them in logs.
//     The HTTP layer answers 401 with none of this.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace wsgate {

// What a token must satisfy besides a good signature.
struct JwtPolicy {
    // Allowed "alg" values (names as in the list above). Empty: any algorithm
    // bound to the selected key (item 8), which already refuses confusion.
    std::vector<std::string> algorithms;
    int64_t leeway_s = 60;       // clock skew allowed on exp, nbf and iat
    bool require_exp = true;     // a token without "exp" is refused
    std::string issuer;          // required "iss" value; empty: not checked
    std::vector<std::string> audiences;  // accepted "aud" values (item 20)
    std::string user_claim = "sub";      // claim holding the user id; "" = none
    size_t max_token_bytes = 8192;       // longer tokens are refused unread
};

// Checks a policy once, when it is configured: known algorithm names,
// 0 <= leeway_s <= 86400, 64 <= max_token_bytes <= 1 MiB. Returns false and
// sets *error (if not null) to what is wrong.
bool jwt_policy_check(const JwtPolicy &policy, std::string *error);

// Why a token was refused. Stable names via jwt_error_name(); append only.
enum class JwtError {
    None = 0,
    TooLarge,        // longer than max_token_bytes
    Malformed,       // not three dot-separated segments (JSON serialization, ...)
    BadBase64,       // a segment is not strict base64url
    BadHeader,       // header not a JSON object, duplicate keys, alg/kid not strings
    AlgNone,         // alg "none" (any case)
    AlgNotAllowed,   // alg unknown, unsupported, or not in the policy's list
    UnsupportedCrit, // "crit" present, or "b64" not true
    UnknownKid,      // kid names no configured key (or a skipped one)
    NoKey,           // no key, or several keys, could verify this token
    KeyAlgMismatch,  // the selected key is not bound to the token's alg
    BadSignature,    // wrong length or does not verify
    BadPayload,      // payload not a JSON object (jwt_verify only)
    BadClaim,        // exp/nbf/iat not a number, user claim not a string, ...
    MissingClaim,    // exp (when required) or the user claim is absent
    Expired,         // now >= exp + leeway
    NotYetValid,     // now + leeway < nbf
    IssuedInFuture,  // iat > now + leeway
    BadIssuer,       // iss missing or different
    BadAudience,     // aud missing, malformed, not ours, or unexpected
    Internal,        // OpenSSL or allocation failure
};

// Stable snake_case name of `e` ("bad_signature", ...); never null.
const char *jwt_error_name(JwtError e);

// Outcome of jws_verify(): the signature alone.
struct JwsResult {
    JwtError error = JwtError::Internal;
    std::string message;  // short, for logs; never contains the token
    std::string alg;      // the token's alg when it is a known name
    std::string kid;      // the token's kid, sanitized (see item 23)
    std::string payload;  // decoded payload bytes (any bytes), on success only
    bool ok() const { return error == JwtError::None; }
};

// Outcome of jwt_verify().
struct JwtResult {
    JwtError error = JwtError::Internal;
    std::string message;      // short, for logs; never contains the token
    std::string user_id;      // value of policy.user_claim, on success
    std::string claims_json;  // the payload's JSON text as signed, on success
    int64_t exp = 0;          // expiry (Unix seconds, rounded down); 0 if none
    std::string alg, kid;     // as in JwsResult (set on failure too when known)
    bool ok() const { return error == JwtError::None; }
};

// A set of verification keys. Built by the from_* factories, immutable
// afterwards; concurrent verification is safe.
class JwtKeySet {
public:
    ~JwtKeySet();
    JwtKeySet(const JwtKeySet &) = delete;
    JwtKeySet &operator=(const JwtKeySet &) = delete;

    // A JWKS document ({"keys": [...]}) or one JWK object (policy items
    // 14-16). At most 1 MiB. Returns null and sets *error (if not null) to a
    // message naming the offending key (index and kid).
    static std::unique_ptr<JwtKeySet> from_jwks(std::string_view json, std::string *error);

    // A PEM public key ("PUBLIC KEY" or "RSA PUBLIC KEY") or certificate
    // ("CERTIFICATE": its public key; the certificate itself is not
    // validated). Private keys are refused. `alg` binds the key to one
    // algorithm; empty binds it to all its type allows (item 8). The key
    // has no kid (item 9).
    static std::unique_ptr<JwtKeySet> from_pem(std::string_view pem, std::string_view alg,
                                               std::string *error);

    // An HMAC secret (raw bytes). `alg`: "HS256", "HS384", "HS512" or empty
    // (item 10). The key has no kid.
    static std::unique_ptr<JwtKeySet> from_secret(std::string_view secret, std::string_view alg,
                                                  std::string *error);

    // The same, reading a file; messages name the file. from_secret_file
    // drops one trailing "\n" or "\r\n" (files written by editors and
    // `echo` end with one); every other byte is part of the secret.
    static std::unique_ptr<JwtKeySet> from_jwks_file(const std::string &path, std::string *error);
    static std::unique_ptr<JwtKeySet> from_pem_file(const std::string &path, std::string_view alg,
                                                    std::string *error);
    static std::unique_ptr<JwtKeySet> from_secret_file(const std::string &path,
                                                       std::string_view alg, std::string *error);

    // One set holding the keys of all `parts` (which are consumed), e.g. a
    // JWKS and a secret, or two PEM keys during a rotation. Kids must be
    // unique across the parts. Returns null and sets *error otherwise.
    static std::unique_ptr<JwtKeySet> combine(std::vector<std::unique_ptr<JwtKeySet>> parts,
                                              std::string *error);

    size_t size() const;     // usable keys
    size_t skipped() const;  // JWKS entries skipped (item 14)
    // One line per usable key for startup logs: "kid=abc RSA-2048 RS256,PS256"
    // (no key material).
    std::string describe() const;

    struct Impl;

private:
    explicit JwtKeySet(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
    friend JwsResult jws_verify(std::string_view, const JwtKeySet &, const JwtPolicy &);
};

// Verifies the JWS signature of a compact token: shape, header, key
// selection, algorithm binding and signature (items 1-16). Uses
// policy.algorithms and policy.max_token_bytes only; no claim is read.
JwsResult jws_verify(std::string_view token, const JwtKeySet &keys, const JwtPolicy &policy);

// jws_verify(), then the payload as JWT claims against `policy` at time
// `now_s` (Unix seconds; injected so tests can pin the clock).
JwtResult jwt_verify(std::string_view token, const JwtKeySet &keys, const JwtPolicy &policy,
                     int64_t now_s);

}  // namespace wsgate
