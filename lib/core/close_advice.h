// The close-code contract (WSG_CLOSE_CODE_MAP, WSG_RECONNECT_MAP): what a
// client should do after each close code, wsgate's own codes from the
// public list and an application's codes (3000-4999) as it declares them.
#pragma once

#include <mutex>
#include <vector>

#include "wsgate/wsgate.h"

namespace wsgate {

// wsgate's own advice for `code` (WSG_CLOSE_CODE_MAP); false when the list
// does not have the code.
bool builtin_close_advice(int code, wsg_reconnect *out);

class CloseAdvice {
public:
    // Declares the advice for the application codes first..last (3000-4999,
    // first <= last); a later declaration wins where ranges overlap. Any
    // thread, any time.
    wsg_status set(int first, int last, wsg_reconnect advice);
    // See wsg_close_code_advice. Any thread.
    wsg_reconnect of(int code) const;

private:
    struct Range {
        int first, last;
        wsg_reconnect advice;
    };
    mutable std::mutex mu_;
    std::vector<Range> ranges_;  // in declaration order
};

}  // namespace wsgate
