// The connection registry: live connections named by generational ids.
//
// An id is [node:16][generation:24][slot:24]: the node number of the
// instance in a cluster (0 without one, or before it is known), so an id
// names a connection across the cluster; the slot's generation, so a stale
// id never finds a later connection; the slot index (16 M connections at
// most at once). A slot whose generation would wrap is retired.
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
        uint32_t index = slot_of(id);
        if (index >= slots_.size()) return nullptr;
        const Slot &s = slots_[index];
        return (s.gen == gen_of(id) && s.node == node_of(id) && s.conn) ? s.conn : nullptr;
    }
    // Service thread, under mu: the node number new ids carry from now on
    // (ids handed out before keep theirs).
    void set_node(uint16_t node) { node_ = node; }
    static constexpr int kSlotBits = 24, kGenBits = 24, kNodeShift = kSlotBits + kGenBits;
    static constexpr uint32_t kSlotMask = (1u << kSlotBits) - 1, kGenMask = (1u << kGenBits) - 1;
    static uint32_t slot_of(wsg_conn_id id) { return static_cast<uint32_t>(id & kSlotMask); }
    static uint32_t gen_of(wsg_conn_id id) { return static_cast<uint32_t>((id >> kSlotBits) & kGenMask); }
    static uint16_t node_of(wsg_conn_id id) { return static_cast<uint16_t>(id >> kNodeShift); }
    size_t count() const { return count_.load(std::memory_order_relaxed); }
    // Service thread (no lock), or any thread holding mu.
    const std::vector<Conn *> &live() const { return live_; }

    mutable std::mutex mu;

private:
    struct Slot {
        uint32_t gen = 0;   // generation of the current or last occupant
        uint16_t node = 0;  // node number in the current occupant's id
        Conn *conn = nullptr;
    };
    uint16_t node_ = 0;
    std::vector<Slot> slots_;
    std::vector<uint32_t> free_;       // reusable slot indices (FIFO order)
    size_t free_head_ = 0;
    std::vector<Conn *> live_;         // dense list for broadcast and shutdown
    std::vector<uint32_t> live_pos_;   // slot index -> position in live_
    std::atomic<size_t> count_{0};
};

}  // namespace wsgate
