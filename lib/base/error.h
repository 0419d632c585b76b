// Status codes and the thread-local last-error message.
#pragma once

#include <string>

#include "wsgate/wsgate.h"

namespace wsgate {

// Records `message` as this thread's last error and returns `status`, so a
// failing path reads `return fail(WSG_EINVAL, "...")`.
wsg_status fail(wsg_status status, std::string message);

// The current thread's last error detail (never null).
const char *last_error();

// Clears the detail (called at the start of each ABI entry).
void clear_error();

}  // namespace wsgate
