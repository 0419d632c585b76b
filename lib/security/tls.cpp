#include "security/tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <memory>

namespace wsgate {
namespace {

// OpenSSL's error queue as one line, emptied.
std::string openssl_errors() {
    std::string out;
    unsigned long e;
    char buf[256];
    while ((e = ERR_get_error()) != 0) {
        ERR_error_string_n(e, buf, sizeof buf);
        if (!out.empty()) out += "; ";
        out += buf;
    }
    return out.empty() ? "unknown OpenSSL error" : out;
}

struct CtxFree {
    void operator()(SSL_CTX *c) const { SSL_CTX_free(c); }
};

std::string load_pair(SSL_CTX *ctx, const TlsFiles &f) {
    if (SSL_CTX_use_certificate_chain_file(ctx, f.cert_file.c_str()) != 1)
        return "tls.cert_file '" + f.cert_file + "': cannot load a PEM certificate chain (" +
               openssl_errors() + ")";
    if (SSL_CTX_use_PrivateKey_file(ctx, f.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
        bool mismatch = ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH;
        return "tls.key_file '" + f.key_file + "': " +
               (mismatch ? "does not match the certificate in tls.cert_file '" + f.cert_file + "'"
                         : std::string("cannot load a PEM private key")) +
               " (" + openssl_errors() + ")";
    }
    if (SSL_CTX_check_private_key(ctx) != 1)
        return "tls.key_file '" + f.key_file + "' does not match the certificate in tls.cert_file '" +
               f.cert_file + "' (" + openssl_errors() + ")";
    return {};
}

}  // namespace

std::string tls_check_files(const TlsFiles &f) {
    ERR_clear_error();
    std::unique_ptr<SSL_CTX, CtxFree> ctx(SSL_CTX_new(TLS_server_method()));
    if (!ctx) return "cannot create a TLS context (" + openssl_errors() + ")";
    if (f.cert_file.empty()) return "tls.cert_file is empty";
    if (f.key_file.empty()) return "tls.key_file must be set with tls.cert_file";
    std::string why = load_pair(ctx.get(), f);
    if (!why.empty()) return why;
    if (!f.ca_file.empty() && SSL_CTX_load_verify_locations(ctx.get(), f.ca_file.c_str(), nullptr) != 1)
        return "tls.ca_file '" + f.ca_file + "': cannot load PEM CA certificates (" +
               openssl_errors() + ")";
    return {};
}

std::string tls_configure(SSL_CTX *ctx, const std::string &min_version, const std::string &groups) {
    ERR_clear_error();
    int v = min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION;
    if (SSL_CTX_set_min_proto_version(ctx, v) != 1)
        return "cannot set the minimum TLS version (" + openssl_errors() + ")";
    if (!groups.empty() && SSL_CTX_set1_groups_list(ctx, groups.c_str()) != 1)
        return "tls.groups '" + groups + "' (" + openssl_errors() + ")";
    return {};
}

std::string tls_reload(SSL_CTX *ctx, const TlsFiles &f) {
    ERR_clear_error();
    // Load into a scratch context first so a bad pair never half-replaces
    // the live one.
    std::unique_ptr<SSL_CTX, CtxFree> scratch(SSL_CTX_new(TLS_server_method()));
    if (!scratch) return "cannot create a TLS context (" + openssl_errors() + ")";
    std::string why = load_pair(scratch.get(), f);
    if (!why.empty()) return why;
    return load_pair(ctx, f);
}

std::string tls_peer_subject(SSL *ssl) {
    if (!ssl) return {};
    X509 *cert = SSL_get1_peer_certificate(ssl);
    if (!cert) return {};
    std::string out;
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio && X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) >= 0) {
        char *data = nullptr;
        long n = BIO_get_mem_data(bio, &data);
        if (n > 0) out.assign(data, static_cast<size_t>(n));
    }
    BIO_free(bio);
    X509_free(cert);
    return out;
}

}  // namespace wsgate
