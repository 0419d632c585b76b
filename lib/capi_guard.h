// Shared by the lib/capi*.cpp files: the exception barrier every ABI entry
// runs its body in, and the NULL-argument status.
#pragma once

#include <exception>
#include <new>
#include <string>

#include "base/error.h"
#include "wsgate/wsgate.h"

namespace wsgate {

template <class F>
wsg_status guard(F &&body) noexcept {
    try {
        clear_error();
        return body();
    } catch (const std::bad_alloc &) {
        try {
            return fail(WSG_ENOMEM, "out of memory");
        } catch (...) {
            return WSG_ENOMEM;
        }
    } catch (const std::exception &e) {
        try {
            return fail(WSG_EINTERNAL, std::string("internal error: ") + e.what());
        } catch (...) {
            return WSG_EINTERNAL;
        }
    } catch (...) {
        return WSG_EINTERNAL;
    }
}

inline wsg_status null_arg(const char *name) { return fail(WSG_EINVAL, std::string(name) + " is NULL"); }

}  // namespace wsgate
