// Who is subscribed to what, and which connections a user has: the
// registry's indexes for publish and user delivery (no scan of every
// connection). Subscribing, unsubscribing and a connection's end cost O(1)
// per subscription (positions are kept on both sides); a publish walks the
// topic's subscribers once.
//
// Threads: changed by the service thread only, under Registry::mu (like the
// registry itself); read by the service thread freely and by other threads
// under Registry::mu (introspection).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace wsgate {

struct Conn;
struct Topic;

// One of a connection's subscriptions: the topic, and where the connection
// sits in the topic's member list.
struct Subscription {
    Topic *topic;
    uint32_t pos;
    int64_t since_ms;  // Unix ms of the subscription (presence)
};

struct Topic {
    // One subscriber, and where this topic sits in its subscription list.
    struct Member {
        Conn *conn;
        uint32_t pos;
    };
    std::string name;
    std::vector<Member> members;
};

// Checks a topic name: 1..kMaxTopicBytes bytes of UTF-8. "" when valid,
// else why not.
constexpr size_t kMaxTopicBytes = 255;
std::string check_topic(std::string_view name);

// Called when a name gains its first entry (true) or loses its last
// (false): the cluster listens to a topic's or user's channel exactly while
// this instance has a local subscriber or connection (a reference count of
// one per name, never one Redis subscription per connection). Runs on the
// service thread under Registry::mu: it must not block.
using FirstLastFn = std::function<void(const std::string &name, bool first)>;

class TopicIndex {
public:
    FirstLastFn on_first_last;
    // False when c already was a subscriber. since_ms: Unix ms, for presence.
    bool subscribe(Conn *c, std::string_view name, int64_t since_ms = 0);
    // False when c was not a subscriber.
    bool unsubscribe(Conn *c, std::string_view name);
    // Every subscription of c ends (its connection is closing).
    void drop_all(Conn *c);
    // nullptr when nobody is subscribed.
    const Topic *find(std::string_view name) const;
    size_t topics() const { return topics_.size(); }
    size_t subscriptions() const { return subscriptions_; }
    // f(const Topic &) for every topic with a subscriber.
    template <class F>
    void for_each(F &&f) const {
        for (const auto &kv : topics_) f(*kv.second);
    }

private:
    void remove(Conn *c, uint32_t sub_index);
    std::unordered_map<std::string, std::unique_ptr<Topic>> topics_;
    size_t subscriptions_ = 0;
};

// A user's open connections (authenticated connections with a user id).
class UserIndex {
public:
    FirstLastFn on_first_last;
    void add(const std::string &user, Conn *c);
    void remove(const std::string &user, Conn *c);
    // nullptr when the user has no open connection.
    const std::vector<Conn *> *find(std::string_view user) const;
    // f(user, conns) for every user with an open connection.
    template <class F>
    void for_each(F &&f) const {
        for (const auto &kv : users_) f(kv.first, kv.second);
    }

private:
    std::unordered_map<std::string, std::vector<Conn *>> users_;
};

}  // namespace wsgate
