// Authentication before the upgrade: where tokens travel, JWT settings, and
// the request object handed to the application's authenticator.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/http_request.h"
#include "security/jwt.h"
#include "wsgate/wsgate.h"

struct wsg_config;

namespace wsgate {

struct AuthSettings {
    bool jwt = false;       // auth.mode has jwt
    bool callback = false;  // auth.mode has callback
    bool from_header = false, from_query = false, from_cookie = false, from_subprotocol = false;
    std::string cookie_name;
    std::shared_ptr<const JwtKeySet> keys;
    JwtPolicy policy;
    int64_t expiry_grace_ms = 0;

    // Reads the auth.* options and loads the JWT keys. "" or a message
    // naming the option or file.
    static std::string build(const wsg_config &cfg, AuthSettings *out);
    bool enabled() const { return jwt || callback; }
};

// Token extraction (pure; each returns "" when there is none).
std::string bearer_token(std::string_view authorization);       // "Bearer X" (any case)
std::string cookie_value(std::string_view cookies, std::string_view name);
std::string subprotocol_token(std::string_view offered);        // "bearer.X" in the list
// The raw query without its access_token parameter, however its name is
// percent-encoded (tokens stay out of logs and out of the connection info).
std::string strip_access_token(std::string_view query);

// What the authenticator decided, carried to the connection it opens.
struct AuthOutcome {
    std::string user_id;
    std::string claims_json;
    int64_t exp_s = 0;  // JWT expiry, Unix seconds; 0 = none
    std::vector<std::pair<std::string, int64_t>> timeouts;  // per-connection heartbeat
};

}  // namespace wsgate

// The request seen by the authenticator callback (ABI type).
struct wsg_auth_request {
    const wsgate::proto::HttpRequest *request = nullptr;  // during the callback only
    std::string fields[9];  // indexed by wsg_auth_field
    mutable std::vector<std::pair<std::string, std::string>> header_cache;
    // Decision.
    enum class Verdict { None, Accept, Refuse } verdict = Verdict::None;
    int status = 401;
    std::string reason;
    bool user_set = false;
    wsgate::AuthOutcome outcome;

    // A request header by name (any case), repeated ones joined with ", ";
    // nullptr when absent. Lives as long as the request object.
    const std::string *header(const char *name) const;
};
