// libFuzzer target for the JWT verifier (lib/jwt.h, lib/base64url.h).
//
// Build (clang only) and run:
//   CC=clang CXX=clang++ cmake -S . -B build-fuzz -DWSGATE_FUZZ=ON
//   cmake --build build-fuzz --target fuzz_jwt
//   mkdir -p /tmp/jwt && build-fuzz/tests/fuzz_jwt -max_total_time=60 /tmp/jwt tests/fuzz/jwt_seeds tests/fuzz/jwt_corpus
// (new inputs go to the first directory; tests/fuzz/README.md). ctest runs it
// for 20 s (fuzz_jwt_smoke) in such a build, from a copy of the two corpora.
//
// The first byte picks what the rest is:
//   'k'  a JWKS document for JwtKeySet::from_jwks()
//   'p'  a PEM document for JwtKeySet::from_pem()
//   'b'  text for base64url_decode(); a success must re-encode to the input
//   else a token for jws_verify() and jwt_verify() against a fixed key set
//        (HS256 secret, RS256/PS256 RSA-2048, ES256 P-256, EdDSA Ed25519)
// Crashes, sanitizer reports and leaks are failures; so is a broken
// invariant (checked with __builtin_trap).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <openssl/err.h>

#include "base/base64url.h"
#include "security/jwt.h"

#ifndef WSG_JWT_TESTDATA
#error "WSG_JWT_TESTDATA must name tests/security/jwt"
#endif

namespace {

std::unique_ptr<wsgate::JwtKeySet> g_keys;
wsgate::JwtPolicy g_policy;
constexpr int64_t kNow = 1700000000;

std::string slurp(const char *name) {
    std::ifstream f(std::string(WSG_JWT_TESTDATA) + "/" + name, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

void must(bool ok, const char *what, const std::string &err) {
    if (!ok) {
        std::fprintf(stderr, "fuzz_jwt setup: %s: %s\n", what, err.c_str());
        __builtin_trap();
    }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
    std::string err, secret;
    for (int i = 0; i < 64; i++) secret.push_back(char('a' + i % 26));  // as in test_jwt
    std::vector<std::unique_ptr<wsgate::JwtKeySet>> parts;
    parts.push_back(wsgate::JwtKeySet::from_secret(secret, "HS256", &err));
    must(parts.back() != nullptr, "secret", err);
    parts.push_back(wsgate::JwtKeySet::from_pem(slurp("rsa2048.pub.pem"), "", &err));
    must(parts.back() != nullptr, "rsa2048.pub.pem", err);
    parts.push_back(wsgate::JwtKeySet::from_pem(slurp("ec_p256.pub.pem"), "", &err));
    must(parts.back() != nullptr, "ec_p256.pub.pem", err);
    parts.push_back(wsgate::JwtKeySet::from_pem(slurp("ed25519.pub.pem"), "", &err));
    must(parts.back() != nullptr, "ed25519.pub.pem", err);
    g_keys = wsgate::JwtKeySet::combine(std::move(parts), &err);
    must(g_keys != nullptr, "combine", err);
    g_policy.user_claim = "sub";
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const char mode = char(data[0]);
    const std::string_view rest(reinterpret_cast<const char *>(data + 1), size - 1);
    std::string err;
    switch (mode) {
    case 'k': {
        auto ks = wsgate::JwtKeySet::from_jwks(rest, &err);
        if (ks) {
            if (ks->size() == 0) __builtin_trap();
            (void)ks->describe();
            // Verify something against the fuzzed set too.
            (void)wsgate::jws_verify("eyJhbGciOiJIUzI1NiJ9.e30.AAAA", *ks, g_policy);
        } else if (err.empty()) {
            __builtin_trap();
        }
        break;
    }
    case 'p': {
        auto ks = wsgate::JwtKeySet::from_pem(rest, "", &err);
        if (!ks && err.empty()) __builtin_trap();
        break;
    }
    case 'b': {
        std::string out;
        if (wsgate::base64url_decode(rest, &out)) {
            if (wsgate::base64url_encode(out) != rest) __builtin_trap();  // one spelling only
        } else if (!out.empty()) {
            __builtin_trap();
        }
        break;
    }
    default: {
        const std::string_view token(reinterpret_cast<const char *>(data), size);
        const wsgate::JwsResult s = wsgate::jws_verify(token, *g_keys, g_policy);
        const wsgate::JwtResult r = wsgate::jwt_verify(token, *g_keys, g_policy, kNow);
        // jwt_verify accepts only what jws_verify accepts; failures say why.
        if (r.ok() && !s.ok()) __builtin_trap();
        if (!r.ok() && r.message.empty()) __builtin_trap();
        if (!s.ok() && (s.message.empty() || !s.payload.empty())) __builtin_trap();
        if (r.ok() && (r.user_id.empty() || r.claims_json.empty())) __builtin_trap();
        break;
    }
    }
    if (ERR_peek_error() != 0) __builtin_trap();  // nothing left for TLS code on this thread
    return 0;
}
