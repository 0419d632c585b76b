// Base64url (RFC 4648 section 5) without padding, as JOSE uses it.
//
// Decoding is strict on purpose: a token has exactly one valid spelling.
// Refused: any character outside A-Z a-z 0-9 '-' '_' (so '+', '/', '=',
// whitespace and NUL), a length of 4n+1, and non-zero unused bits in the last
// character (so "AB" is refused where "AA" decodes). A lenient decoder makes
// signature bytes malleable and lets different parsers disagree on a token.
#pragma once

#include <string>
#include <string_view>

namespace wsgate {

// Decodes `in` into `*out` (replaced). Returns false, leaving `*out` empty,
// when `in` is not the canonical unpadded base64url spelling of some bytes.
bool base64url_decode(std::string_view in, std::string *out);

// The canonical unpadded base64url spelling of `in`.
std::string base64url_encode(std::string_view in);

}  // namespace wsgate
