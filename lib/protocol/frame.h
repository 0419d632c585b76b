// Pre-built server frames shared by reference between send queues, and the
// per-connection queue that holds them.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <string>
#include <utility>
#include <vector>

namespace wsgate {

struct QueueLedger;

// One complete WebSocket frame (header + payload) in a single allocation,
// with an intrusive atomic reference count so one broadcast frame can sit in
// thousands of queues owned by one thread while another thread builds it.
class Frame {
public:
    static Frame *create(size_t len);  // refs = 1; throws std::bad_alloc
    void ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
    void unref() {
        if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) std::free(this);
    }
    uint8_t *data() { return reinterpret_cast<uint8_t *>(this + 1); }
    const uint8_t *data() const { return reinterpret_cast<const uint8_t *>(this + 1); }
    size_t size() const { return len_; }
    size_t payload() const { return payload_; }

private:
    Frame() = default;
    std::atomic<uint32_t> refs_{1};
    uint32_t len_ = 0;
    uint32_t payload_ = 0;
    // Its entries in queues that keep a QueueLedger. Not atomic: those
    // queues belong to one service thread (a server frames its own messages).
    uint32_t queued_in_ = 0;
    friend class FrameBuilder;
    friend struct QueueLedger;
};

// What the queues sharing it hold, as memory: a frame in several of them
// (a broadcast) counts once, while it is in any. `peak` is the most `bytes`
// has been since the owner last reset it (the memory trim reads both).
struct QueueLedger {
    size_t bytes = 0;
    size_t peak = 0;

    void add(Frame *f) {
        if (f->queued_in_++ == 0) {
            bytes += f->size();
            if (bytes > peak) peak = bytes;
        }
    }
    void sub(Frame *f) {
        if (--f->queued_in_ == 0) bytes -= f->size();
    }
    // How many entries of ledgered queues hold `f`.
    static uint32_t holders(const Frame *f) { return f->queued_in_; }
};

class FrameRef {
public:
    FrameRef() = default;
    explicit FrameRef(Frame *f) : f_(f) {}  // adopts one reference
    FrameRef(const FrameRef &o) : f_(o.f_) {
        if (f_) f_->ref();
    }
    FrameRef(FrameRef &&o) noexcept : f_(std::exchange(o.f_, nullptr)) {}
    FrameRef &operator=(FrameRef o) noexcept {
        std::swap(f_, o.f_);
        return *this;
    }
    ~FrameRef() {
        if (f_) f_->unref();
    }
    Frame *operator->() const { return f_; }
    Frame *get() const { return f_; }
    explicit operator bool() const { return f_ != nullptr; }

private:
    Frame *f_ = nullptr;
};

// A message as the frames that carry it: one frame when it fits the write
// batch, otherwise fragments (first with the opcode, then continuations) so
// that every raw write still holds whole frames only. The first frame is
// held inline: the common one-frame message costs no extra allocation.
class FrameList {
public:
    size_t size() const { return first_ ? 1 + rest_.size() : 0; }
    bool empty() const { return !first_; }
    const FrameRef &operator[](size_t i) const { return i == 0 ? first_ : rest_[i - 1]; }
    void push_back(FrameRef f) {
        if (!first_)
            first_ = std::move(f);
        else
            rest_.push_back(std::move(f));
    }
    void reserve(size_t n) { rest_.reserve(n > 0 ? n - 1 : 0); }
    void clear() {
        first_ = FrameRef();
        rest_.clear();
    }
    class const_iterator {
    public:
        const_iterator(const FrameList *l, size_t i) : l_(l), i_(i) {}
        const FrameRef &operator*() const { return (*l_)[i_]; }
        const_iterator &operator++() {
            ++i_;
            return *this;
        }
        bool operator!=(const const_iterator &o) const { return i_ != o.i_; }

    private:
        const FrameList *l_;
        size_t i_;
    };
    const_iterator begin() const { return {this, 0}; }
    const_iterator end() const { return {this, size()}; }

private:
    FrameRef first_;
    std::vector<FrameRef> rest_;
};

class FrameBuilder {
public:
    // opcode: 1 text, 2 binary. max_frame: the write batch limit in bytes.
    // compressed: the payload is permessage-deflate data (RSV1 on the first frame).
    static FrameList message(int opcode, const void *data, size_t len, size_t max_frame,
                             bool compressed = false);
    // A control frame (0x8 close, 0x9 ping, 0xA pong) with at most 125 bytes
    // of payload (longer is cut to 125).
    static FrameRef control(int opcode, const void *payload, size_t len);
    // A close frame: `code` (none when 0, e.g. replying to a close without
    // one) and a reason cut to fit 123 bytes on a UTF-8 boundary.
    static FrameRef close(int code, const std::string &reason);
    // Header bytes needed for a payload of `len`.
    static size_t header_size(size_t len) { return len < 126 ? 2 : len <= 0xffff ? 4 : 10; }

private:
    static FrameRef one(int first_byte_flags, bool fin, const uint8_t *p, size_t len);
};

// FIFO of frames. It lives in every connection, so while empty it is one
// null pointer and holds no memory: its storage is allocated by the first
// push and freed when the last frame leaves. Amortised O(1) push and pop.
//
// Each frame gets a sequence number when pushed, which names it while it is
// queued, so a queue policy can take a queued message out (remove) or put a
// newer one in its place (replace) without moving the others: a frame taken
// out leaves a hole that front() and pop() skip. Numbers restart once the
// queue has been empty.
//
// With a ledger (given to every push), the queue enters the frames it holds
// in it while they are queued, so the owner knows the memory all its queues
// hold together without walking them.
class FrameQueue {
public:
    bool empty() const { return !r_; }
    size_t bytes() const { return r_ ? r_->bytes : 0; }
    size_t count() const { return r_ ? r_->live : 0; }  // frames queued (holes not counted)
    uint64_t push(FrameRef f, QueueLedger *ledger = nullptr) {
        if (!r_) {
            r_ = std::make_unique<Ring>();
            r_->ledger = ledger;
        }
        if (r_->ledger) r_->ledger->add(f.get());
        r_->bytes += f->size();
        r_->live++;
        r_->items.push_back(std::move(f));
        return r_->base + r_->items.size() - 1;
    }
    Frame *front() const { return r_->items[r_->head].get(); }
    uint64_t front_seq() const { return r_->base + r_->head; }
    void pop() { take(r_->head); }
    void clear() { r_.reset(); }

    // The frame numbered `seq`, or null when it is not queued (any more).
    Frame *at(uint64_t seq) const {
        if (!r_ || seq < r_->base + r_->head || seq - r_->base >= r_->items.size()) return nullptr;
        return r_->items[seq - r_->base].get();
    }
    // Takes the frame numbered `seq` out (it must be queued).
    void remove(uint64_t seq) { take(seq - r_->base); }
    // Puts `f` in place of the frame numbered `seq` (which must be queued).
    void replace(uint64_t seq, FrameRef f) {
        FrameRef &slot = r_->items[seq - r_->base];
        r_->bytes = r_->bytes - slot->size() + f->size();
        if (r_->ledger) {
            r_->ledger->add(f.get());
            r_->ledger->sub(slot.get());
        }
        slot = std::move(f);
    }

    // Data frames know their message: the first carries the opcode, the
    // last the FIN bit (RFC 6455 5.4).
    static bool opens_message(const Frame *f) { return (f->data()[0] & 0x0f) != 0; }
    static bool ends_message(const Frame *f) { return (f->data()[0] & 0x80) != 0; }
    // The number of the first frame of the oldest message none of whose
    // frames has left (front() may be the rest of a message being written);
    // false when there is none.
    bool oldest_whole_message(uint64_t *seq) const {
        if (!r_) return false;
        for (size_t i = r_->head; i < r_->items.size(); i++) {
            const Frame *f = r_->items[i].get();
            if (f && opens_message(f)) {
                *seq = r_->base + i;
                return true;
            }
        }
        return false;
    }
    // Takes out the message whose first frame is numbered `seq` (its frames
    // are queued one after the other); returns its bytes.
    size_t remove_message(uint64_t seq) {
        size_t removed = 0;
        while (Frame *f = at(seq)) {
            const bool last = ends_message(f);
            removed += f->size();
            remove(seq++);
            if (last) break;
        }
        return removed;
    }

private:
    struct Ring {
        std::vector<FrameRef> items;
        size_t head = 0;     // items before it have left
        uint64_t base = 0;   // sequence number of items[0]
        size_t bytes = 0;
        size_t live = 0;     // items that are not holes
        QueueLedger *ledger = nullptr;
        Ring() = default;
        Ring(const Ring &) = delete;
        Ring &operator=(const Ring &) = delete;
        ~Ring() {
            if (!ledger) return;
            for (size_t i = head; i < items.size(); i++)
                if (items[i]) ledger->sub(items[i].get());
        }
    };
    // Empties slot i; then the front moves past holes, and the storage goes
    // once nothing is left.
    void take(size_t i) {
        Ring &r = *r_;
        r.bytes -= r.items[i]->size();
        if (r.ledger) r.ledger->sub(r.items[i].get());
        r.items[i] = FrameRef();
        if (--r.live == 0) {
            r_.reset();
            return;
        }
        while (!r.items[r.head]) r.head++;
        if (r.head >= 64 && r.head * 2 >= r.items.size()) {
            r.items.erase(r.items.begin(), r.items.begin() + static_cast<std::ptrdiff_t>(r.head));
            r.base += r.head;
            r.head = 0;
        }
    }
    std::unique_ptr<Ring> r_;
};
static_assert(sizeof(FrameQueue) == sizeof(void *), "an empty FrameQueue costs one pointer");

}  // namespace wsgate
