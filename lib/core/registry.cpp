#include "core/registry.h"

#include <stdexcept>

namespace wsgate {

void Registry::add(Conn *conn) {
    std::lock_guard<std::mutex> lock(mu);
    uint32_t index;
    if (free_head_ < free_.size()) {
        index = free_[free_head_++];
        if (free_head_ > 1024 && free_head_ * 2 > free_.size()) {
            free_.erase(free_.begin(), free_.begin() + static_cast<std::ptrdiff_t>(free_head_));
            free_head_ = 0;
        }
    } else {
        if (slots_.size() > kSlotMask) throw std::length_error("connection slots exhausted");
        index = static_cast<uint32_t>(slots_.size());
        slots_.emplace_back();
        live_pos_.push_back(0);
    }
    Slot &s = slots_[index];
    s.gen++;  // generation 0 is never handed out, so no id is 0
    s.node = node_;
    s.conn = conn;
    conn->id = (static_cast<uint64_t>(node_) << kNodeShift) | (static_cast<uint64_t>(s.gen) << kSlotBits) | index;
    live_pos_[index] = static_cast<uint32_t>(live_.size());
    live_.push_back(conn);
    count_.store(live_.size(), std::memory_order_relaxed);
}

void Registry::remove(Conn *conn) {
    std::lock_guard<std::mutex> lock(mu);
    uint32_t index = slot_of(conn->id);
    if (index >= slots_.size() || slots_[index].conn != conn) return;
    Slot &s = slots_[index];
    s.conn = nullptr;
    // A slot whose generation would wrap is retired, so an id is never reused.
    if (s.gen != kGenMask) free_.push_back(index);
    uint32_t pos = live_pos_[index];
    Conn *last = live_.back();
    live_[pos] = last;
    live_pos_[slot_of(last->id)] = pos;
    live_.pop_back();
    count_.store(live_.size(), std::memory_order_relaxed);
}

}  // namespace wsgate
