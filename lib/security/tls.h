// TLS set-up on top of OpenSSL 3 for lws' server SSL_CTX: checking the
// certificate files before anything listens, protocol floor and groups,
// certificate reload, and the client certificate's subject.
#pragma once

#include <string>

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace wsgate {

struct TlsFiles {
    std::string cert_file;  // PEM chain, leaf first
    std::string key_file;   // PEM private key
    std::string ca_file;    // PEM CAs for client certificates ("" = none)
};

// Loads the files the way the server will and checks that the key matches
// the certificate. "" when usable, else a message naming the file and the
// reason (OpenSSL's words included).
std::string tls_check_files(const TlsFiles &files);

// Applies the protocol floor ("1.2" or "1.3") and the key-exchange groups
// ("X25519:P-256:P-384") to a server context. "" or what failed.
std::string tls_configure(SSL_CTX *ctx, const std::string &min_version, const std::string &groups);

// Replaces the certificate chain and key of a live server context: new
// handshakes use them, established connections keep theirs. The files must
// have passed tls_check_files(). "" or what failed (the old pair stays).
std::string tls_reload(SSL_CTX *ctx, const TlsFiles &files);

// The verified client certificate's subject (RFC 2253), "" if none.
std::string tls_peer_subject(SSL *ssl);

}  // namespace wsgate
