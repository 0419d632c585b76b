#include "core/close_advice.h"

#include <string>

#include "base/error.h"

namespace wsgate {

bool builtin_close_advice(int code, wsg_reconnect *out) {
    switch (code) {
#define WSG_CODE_ADVICE_(value, name, advice, causes, doc) \
    case value: *out = WSG_RECONNECT_##advice; return true;
        WSG_CLOSE_CODE_MAP(WSG_CODE_ADVICE_)
#undef WSG_CODE_ADVICE_
    default: return false;
    }
}

namespace {
bool known_advice(wsg_reconnect a) {
    switch (a) {
#define WSG_KNOWN_ADVICE_(name, value, text, doc) case WSG_RECONNECT_##name:
        WSG_RECONNECT_MAP(WSG_KNOWN_ADVICE_)
#undef WSG_KNOWN_ADVICE_
        return true;
    case WSG_RECONNECT_MAX_: break;
    }
    return false;
}
}  // namespace

wsg_status CloseAdvice::set(int first, int last, wsg_reconnect advice) {
    if (first < 3000 || last > 4999 || first > last)
        return fail(WSG_EINVAL, "close advice is declared for application codes: 3000 <= first <= last <= 4999 (got " +
                                    std::to_string(first) + ".." + std::to_string(last) + ")");
    if (!known_advice(advice))
        return fail(WSG_EINVAL, "unknown advice " + std::to_string(static_cast<int>(advice)) +
                                    " (WSG_RECONNECT_BACKOFF, WSG_RECONNECT_NO or WSG_RECONNECT_APP)");
    std::lock_guard<std::mutex> lock(mu_);
    ranges_.push_back({first, last, advice});
    return WSG_OK;
}

wsg_reconnect CloseAdvice::of(int code) const {
    wsg_reconnect a;
    if (builtin_close_advice(code, &a)) return a;
    if (code < 3000 || code > 4999) return WSG_RECONNECT_NO;
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = ranges_.rbegin(); it != ranges_.rend(); ++it)
        if (code >= it->first && code <= it->last) return it->advice;
    return WSG_RECONNECT_APP;
}

}  // namespace wsgate
