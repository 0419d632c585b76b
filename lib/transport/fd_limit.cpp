#include "transport/fd_limit.h"

#include <sys/resource.h>

#include <cerrno>
#include <cstring>

namespace wsgate {

uint64_t fds_needed(uint64_t max_connections) { return max_connections + kAcceptSlack + 64; }

FdLimit raise_fd_limit(uint64_t want) {
    FdLimit out;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        out.error = std::string("getrlimit(RLIMIT_NOFILE): ") + std::strerror(errno);
        return out;
    }
    auto as_u64 = [](rlim_t v) { return v == RLIM_INFINITY ? UINT64_MAX : static_cast<uint64_t>(v); };
    out.soft_before = out.soft = as_u64(rl.rlim_cur);
    out.hard = as_u64(rl.rlim_max);
    if (out.soft >= want) return out;
    const uint64_t target = want < out.hard ? want : out.hard;
    rl.rlim_cur = static_cast<rlim_t>(target);
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        out.error = std::string("setrlimit(RLIMIT_NOFILE): ") + std::strerror(errno);
        return out;
    }
    out.soft = target;
    return out;
}

}  // namespace wsgate
