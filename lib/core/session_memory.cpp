#include "core/session_memory.h"

#include <limits>
#include <utility>

namespace wsgate {

void SessionMemory::set(const std::string &key, std::string value, int64_t ttl_ms, int64_t now_ms) {
    const int64_t deadline =
        ttl_ms > std::numeric_limits<int64_t>::max() - now_ms ? std::numeric_limits<int64_t>::max() : now_ms + ttl_ms;
    auto it = entries_.find(key);
    if (it == entries_.end()) {
        it = entries_.emplace(key, Entry{}).first;
        bytes_ += key.size();
    } else {
        bytes_ -= it->second.value.size();
        by_deadline_.erase(it->second.deadline);
    }
    bytes_ += value.size();
    it->second.value = std::move(value);
    it->second.deadline = by_deadline_.emplace(deadline, &it->first);
}

const std::string *SessionMemory::get(const std::string &key, int64_t now_ms) {
    auto it = entries_.find(key);
    if (it == entries_.end()) return nullptr;
    if (it->second.deadline->first <= now_ms) {
        remove(it);
        return nullptr;
    }
    return &it->second.value;
}

bool SessionMemory::erase(const std::string &key, int64_t now_ms) {
    auto it = entries_.find(key);
    if (it == entries_.end()) return false;
    const bool live = it->second.deadline->first > now_ms;
    remove(it);
    return live;
}

size_t SessionMemory::sweep(int64_t now_ms, size_t max) {
    size_t n = 0;
    while (n < max && !by_deadline_.empty() && by_deadline_.begin()->first <= now_ms) {
        remove(entries_.find(*by_deadline_.begin()->second));
        n++;
    }
    return n;
}

void SessionMemory::remove(Entries::iterator it) {
    bytes_ -= it->first.size() + it->second.value.size();
    by_deadline_.erase(it->second.deadline);
    entries_.erase(it);
}

}  // namespace wsgate
