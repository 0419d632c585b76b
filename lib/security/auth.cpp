#include "security/auth.h"

#include <cctype>
#include <cstring>

#include "config/options.h"
#include "base/text.h"
#include "protocol/handshake.h"

namespace wsgate {
namespace {

std::vector<std::string> split(std::string_view s, char sep) {
    std::vector<std::string> out;
    while (!s.empty()) {
        size_t i = s.find(sep);
        std::string_view item = trim_ows(s.substr(0, i));
        if (!item.empty()) out.emplace_back(item);
        if (i == std::string_view::npos) break;
        s.remove_prefix(i + 1);
    }
    return out;
}

}  // namespace

std::string bearer_token(std::string_view h) {
    h = trim_ows(h);
    if (h.size() < 7 || !ascii_iequals(h.substr(0, 7), "bearer ")) return {};
    return std::string(trim_ows(h.substr(7)));
}

std::string cookie_value(std::string_view cookies, std::string_view name) {
    for (const std::string &pair : split(cookies, ';')) {
        size_t eq = pair.find('=');
        if (eq == std::string::npos) continue;
        if (trim_ows(std::string_view(pair).substr(0, eq)) != name) continue;
        std::string_view v = trim_ows(std::string_view(pair).substr(eq + 1));
        if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
        return std::string(v);
    }
    return {};
}

std::string subprotocol_token(std::string_view offered) {
    for (const std::string &p : split(offered, ','))
        if (p.size() > 7 && p.compare(0, 7, "bearer.") == 0) return p.substr(7);
    return {};
}

std::string strip_access_token(std::string_view query) {
    return proto::without_query_param(query, "access_token");
}

std::string AuthSettings::build(const wsg_config &cfg, AuthSettings *out) {
    AuthSettings a;
    const std::string &mode = cfg.string_of("auth.mode");
    a.jwt = mode == "jwt" || mode == "jwt+callback";
    a.callback = mode == "callback" || mode == "jwt+callback";
    for (const std::string &src : split(cfg.string_of("auth.token_sources"), ',')) {
        if (src == "header") a.from_header = true;
        else if (src == "query") a.from_query = true;
        else if (src == "cookie") a.from_cookie = true;
        else if (src == "subprotocol") a.from_subprotocol = true;
    }
    a.cookie_name = cfg.string_of("auth.cookie_name");
    a.expiry_grace_ms = cfg.int_of("auth.expiry_grace_ms");
    a.policy.algorithms = split(cfg.string_of("auth.jwt.algorithms"), ',');
    a.policy.leeway_s = cfg.int_of("auth.jwt.leeway_s");
    a.policy.require_exp = cfg.bool_of("auth.jwt.require_exp");
    a.policy.issuer = cfg.string_of("auth.jwt.issuer");
    a.policy.audiences = split(cfg.string_of("auth.jwt.audience"), ',');
    a.policy.user_claim = cfg.string_of("auth.jwt.user_claim");
    if (a.jwt) {
        std::string err;
        if (!jwt_policy_check(a.policy, &err)) return "auth.jwt: " + err;
        std::vector<std::unique_ptr<JwtKeySet>> parts;
        const std::string &jwks = cfg.string_of("auth.jwt.jwks_file");
        const std::string &pem = cfg.string_of("auth.jwt.key_file");
        const std::string &secret = cfg.string_of("auth.jwt.secret_file");
        if (!jwks.empty()) {
            auto k = JwtKeySet::from_jwks_file(jwks, &err);
            if (!k) return "auth.jwt.jwks_file: " + err;
            parts.push_back(std::move(k));
        }
        if (!pem.empty()) {
            auto k = JwtKeySet::from_pem_file(pem, "", &err);
            if (!k) return "auth.jwt.key_file: " + err;
            parts.push_back(std::move(k));
        }
        if (!secret.empty()) {
            auto k = JwtKeySet::from_secret_file(secret, "", &err);
            if (!k) return "auth.jwt.secret_file: " + err;
            parts.push_back(std::move(k));
        }
        if (parts.empty())
            return "auth.mode=" + mode +
                   " needs a key: set auth.jwt.jwks_file, auth.jwt.key_file or auth.jwt.secret_file";
        std::unique_ptr<JwtKeySet> keys =
            parts.size() == 1 ? std::move(parts[0]) : JwtKeySet::combine(std::move(parts), &err);
        if (!keys) return "auth.jwt: " + err;
        a.keys = std::move(keys);
    }
    if (a.enabled() && !a.from_header && !a.from_query && !a.from_cookie && !a.from_subprotocol &&
        a.jwt)
        return "auth.token_sources is empty: name where tokens travel (header, query, cookie, "
               "subprotocol)";
    *out = std::move(a);
    return {};
}

}  // namespace wsgate

const std::string *wsg_auth_request::header(const char *name) const {
    for (const auto &kv : header_cache)
        if (wsgate::ascii_iequals(kv.first, name)) return &kv.second;
    if (!request || request->count(name) == 0) return nullptr;
    // Repeated headers are joined with ", " (RFC 7230 3.2.2).
    header_cache.emplace_back(name, request->joined(name));
    return &header_cache.back().second;
}
