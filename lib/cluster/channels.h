// The channels this instance listens to on the subscriber link: what is
// wanted (a topic with a local subscriber, a user with a local connection,
// this node's own channel) against what Redis confirmed. At most one
// SUBSCRIBE or UNSUBSCRIBE per channel is in flight: a subscribe sent while
// the unsubscribe of the same channel is unanswered would lose the
// channel's callback inside hiredis (its unsubscribe confirmation removes
// it), so the next step waits for the confirmation. A burst of joins and
// leaves of one topic costs at most two commands in flight.
//
// Threads: the service thread only.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <unordered_map>

#include "cluster/redis_link.h"

namespace wsgate {

class ChannelSet {
public:
    // `confirmed` runs each time Redis confirms a subscription (again after
    // every reconnect): what was published before it may have missed us.
    using Confirmed = std::function<void(const std::string &channel)>;
    ChannelSet(RedisLink &link, Confirmed confirmed) : link_(link), confirmed_(std::move(confirmed)) {}
    // Listen to `channel` or stop; sends what is needed when the link is ready.
    void want(const std::string &channel, bool on);
    // The link became ready: nothing is subscribed on it yet; subscribe all.
    void link_ready();
    // The link is gone: nothing is subscribed any more.
    void link_lost();
    // Redis confirmed the subscription.
    bool listening(const std::string &channel) const;
    size_t wanted() const { return wanted_; }

private:
    enum class St { Off, Subscribing, On, Unsubscribing };
    struct Entry {
        bool want = false;
        St st = St::Off;
    };
    void step(const std::string &channel);

    RedisLink &link_;
    Confirmed confirmed_;
    std::unordered_map<std::string, Entry> map_;
    size_t wanted_ = 0;
};

}  // namespace wsgate
