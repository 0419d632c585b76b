// The process' open-file limit (RLIMIT_NOFILE), which bounds how many
// connections a server can hold: every connection is a descriptor, and
// libwebsockets sizes its descriptor table from the soft limit when its
// context is created, so the limit must be raised before that.
#pragma once

#include <cstdint>
#include <string>

namespace wsgate {

struct FdLimit {
    uint64_t soft_before = 0;  // the soft limit found
    uint64_t soft = 0;         // the soft limit now
    uint64_t hard = 0;         // the hard limit (UINT64_MAX: unlimited)
    std::string error;         // getrlimit/setrlimit failed: why ("" otherwise)
};

// Raises the soft limit to `want` descriptors, or as far as the hard limit
// allows when it is lower; never lowers it. Not all the way to the hard
// limit when more is allowed than wanted: libwebsockets allocates and zeroes
// 16 bytes per allowed descriptor (16 MiB at a hard limit of 2^20), in
// every server.
FdLimit raise_fd_limit(uint64_t want);

// Descriptors a server with `max_connections` needs: the connections, the
// handshakes admitted beyond them (kAcceptSlack) and the process' own
// (listener, event loop, reserve, logs, the application's files).
uint64_t fds_needed(uint64_t max_connections);

// Connections still in their handshake (or being refused) admitted at accept
// beyond limits.max_connections, so that a client over the limit is answered
// with a 503 instead of a silent close.
constexpr uint64_t kAcceptSlack = 64;

}  // namespace wsgate
