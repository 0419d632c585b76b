// The connection registry: live connections named by generational ids.
//
// Threads: the service thread owns every Conn and is the only writer of the
// registry. Other threads look connections up (send, close, info, ids) under
// `mu`, which guards the slot table and the live list; the service thread
// takes it only to add or remove a connection, never on the message path.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

#include "core/conn.h"
#include "wsgate/wsgate.h"

namespace wsgate {

class Registry {
public:
    // Service thread. Assigns conn->id. Takes mu.
    void add(Conn *conn);
    // Service thread. The id becomes stale. Takes mu. Does not delete.
    void remove(Conn *conn);
    // Service thread (no lock), or any thread holding mu.
    Conn *get(wsg_conn_id id) const {
        uint32_t index = static_cast<uint32_t>(id & 0xffffffffu);
        uint32_t gen = static_cast<uint32_t>(id >> 32);
        if (index >= slots_.size()) return nullptr;
        const Slot &s = slots_[index];
        return (s.gen == gen && s.conn) ? s.conn : nullptr;
    }
    size_t count() const { return count_.load(std::memory_order_relaxed); }
    // Service thread (no lock), or any thread holding mu.
    const std::vector<Conn *> &live() const { return live_; }

    mutable std::mutex mu;

private:
    struct Slot {
        uint32_t gen = 0;  // generation of the current or last occupant
        Conn *conn = nullptr;
    };
    std::vector<Slot> slots_;
    std::vector<uint32_t> free_;       // reusable slot indices (FIFO order)
    size_t free_head_ = 0;
    std::vector<Conn *> live_;         // dense list for broadcast and shutdown
    std::vector<uint32_t> live_pos_;   // slot index -> position in live_
    std::atomic<size_t> count_{0};
};

}  // namespace wsgate
