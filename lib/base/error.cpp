#include "base/error.h"

namespace wsgate {
namespace {
thread_local std::string t_last_error;
}

wsg_status fail(wsg_status status, std::string message) {
    t_last_error = std::move(message);
    return status;
}

const char *last_error() { return t_last_error.c_str(); }

void clear_error() { t_last_error.clear(); }

}  // namespace wsgate
