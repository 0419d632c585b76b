/*
 * wsgate.hpp: the C++17 binding of wsgate, header-only, over the C ABI.
 *
 * It includes nothing of wsgate but <wsgate/wsgate.h> and adds no logic of
 * its own: it turns handles into RAII types, statuses into exceptions (or
 * std::error_code), callbacks into callables and pointer/length pairs into
 * views. Every rule (limits, validation, threads) stays in the core, so a C++
 * program behaves exactly as a C one; the C header's documentation of each
 * call (wsg_conn_send, ...) holds for its wrapper here.
 *
 * Quick tour:
 * @code
 *   wsgate::Config cfg;
 *   cfg.set("listen.port", 9000);
 *   wsgate::Server srv(cfg);
 *   srv.on_message([](wsgate::ServerRef s, wsgate::ConnId id, wsgate::Message m) {
 *       s.send(id, m);  // echo, text stays text and binary binary
 *   });
 *   srv.run();          // until srv.request_stop() (signal-safe) from anywhere
 * @endcode
 *
 * Errors, one scheme for every fallible call:
 *  - The plain form throws wsgate::Error (a std::runtime_error carrying the
 *    Status and the message of wsg_last_error(), read at once).
 *  - The same call with a trailing `std::error_code &ec` never throws
 *    wsgate::Error: it sets `ec` (category wsgate::category(), value the
 *    Status; ec.clear() on success) and returns a default value (0, "", {})
 *    on failure. wsgate::last_error() then still holds the detail message,
 *    since the binding makes no other wsgate call in between. These forms
 *    are noexcept where they allocate nothing; the others may only let
 *    std::bad_alloc (or an exception from copying your callable) through.
 *  - Built with -fno-exceptions, only the error_code forms are usable: a
 *    plain form that fails prints the error on stderr and calls
 *    std::abort(), as the standard library does there.
 *  - Two calls never fail in a way a program can act on and are noexcept:
 *    ServerRef::request_stop() (async-signal-safe) and ServerRef::draining().
 *
 * Handlers (on_open, on_message, on_close, on_log, on_drain, on_auth and
 * the history hook on_history) take any callable. The binding moves it to
 * the heap and hands it to the C library as the registration's `user`
 * pointer with a deleter, so the C library owns it: it is destroyed when
 * replaced or when the server is freed (the Server's destructor), on that
 * thread. Handlers run on the service thread and must not block (wsgate.h,
 * "Threads").
 *
 * No exception ever crosses into C: each trampoline catches everything a
 * handler throws. The exception is then reported to the server's
 * on_error handler (Server::on_error), or, without one, as one line on
 * stderr; and when the handler was about one connection (on_open,
 * on_message, on_drain) that connection is closed with 1011 "internal
 * error" (advice: reconnect with backoff), since its state in the
 * application is unknown. A throwing authenticator refuses the request
 * with 401. A throwing on_close, on_log or on_history is only reported.
 *
 * Presence and session data (topic_presence, user_presence, session_set,
 * session_get, session_delete) come in two forms: with a ResultCallback
 * (the C call: the callable runs once, on the service thread, and is then
 * destroyed) and without one (Blocks until the answer, through a
 * wsg_completion; refused with kEBUSY inside a handler). See
 * "Asynchronous results" below. So does subscribe_from (history and
 * recovery: a Position, Result::position()).
 *
 * Threads: as in the C ABI. Config is not thread-safe (one thread at a
 * time); Server and ServerRef calls are safe from any thread except where
 * the C header says "Blocks" (listen, run, stop, drain, the destructor:
 * never from a handler). A ServerRef is a borrowed pointer: it must not
 * outlive its Server.
 *
 * Since 0.1.0.
 */
#ifndef WSGATE_WSGATE_HPP
#define WSGATE_WSGATE_HPP

#include <wsgate/wsgate.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <iosfwd>
#include <iterator>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

/* 1 when the compiler has exceptions on (the binding throws and its
 * trampolines catch), 0 under -fno-exceptions (plain forms abort on failure).
 * Detected, never set by hand: trampolines that do not catch in a program
 * with exceptions would let a handler's exception into C. */
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS) || defined(_CPPUNWIND)
#define WSGATE_HPP_EXCEPTIONS 1
#else
#define WSGATE_HPP_EXCEPTIONS 0
#endif

namespace wsgate {

/* ------------------------------------------------------------------ */
/* Enums: generated from the C header's lists (never a second list)    */
/* ------------------------------------------------------------------ */

/* Every enumerator is `k` followed by the C list's NAME (Status::kEINVAL
 * for WSG_EINVAL, CloseCause::kTOO_BIG for WSG_CAUSE_TOO_BIG), with the same
 * value: the prefix keeps names such as EINVAL or EIO clear of <cerrno>'s
 * macros. */

/** Status of a call (WSG_STATUS_MAP). Since 0.1.0. */
enum class Status : int {
#define WSGATE_HPP_ENUM3_(name, value, doc) k##name = value,
    WSG_STATUS_MAP(WSGATE_HPP_ENUM3_)
#undef WSGATE_HPP_ENUM3_
};

/** Why a connection ended (WSG_CLOSE_CAUSE_MAP). Since 0.1.0. */
enum class CloseCause : int {
#define WSGATE_HPP_ENUM4_(name, value, text, doc) k##name = value,
    WSG_CLOSE_CAUSE_MAP(WSGATE_HPP_ENUM4_)
};

/** What a client should do after a close code (WSG_RECONNECT_MAP). Since 0.1.0. */
enum class Reconnect : int { WSG_RECONNECT_MAP(WSGATE_HPP_ENUM4_) };

/** A send queue's policy when full (WSG_QUEUE_POLICY_MAP). Since 0.1.0. */
enum class QueuePolicy : int { WSG_QUEUE_POLICY_MAP(WSGATE_HPP_ENUM4_) };
#undef WSGATE_HPP_ENUM4_

/** Kind of a data message (wsg_msg_type). Since 0.1.0. */
enum class MsgType : int { kTEXT = WSG_MSG_TEXT, kBINARY = WSG_MSG_BINARY };

/** Severity of a log event (wsg_log_level). Since 0.1.0. */
enum class LogLevel : int {
    kDEBUG = WSG_LOG_DEBUG,
    kINFO = WSG_LOG_INFO,
    kWARN = WSG_LOG_WARN,
    kERROR = WSG_LOG_ERROR
};

/** The close codes wsgate sends or reports (WSG_CLOSE_CODE_MAP), as ints
 *  for ServerRef::close: close_code::kNORMAL is 1000,
 *  close_code::kTRY_AGAIN_LATER 1013. Since 0.1.0. */
namespace close_code {
#define WSGATE_HPP_CODE_(code, name, advice, causes, doc) constexpr int k##name = code;
WSG_CLOSE_CODE_MAP(WSGATE_HPP_CODE_)
#undef WSGATE_HPP_CODE_
}  // namespace close_code

/** Stable name: "WSG_EINVAL", ... (wsg_status_str). */
inline const char *to_string(Status s) noexcept {
    return wsg_status_str(static_cast<wsg_status>(s));
}
/** Stable name: "peer", "too_big", ... (wsg_close_cause_str). */
inline const char *to_string(CloseCause c) noexcept {
    return wsg_close_cause_str(static_cast<wsg_close_cause>(c));
}
/** Stable name: "backoff", "no", "app" (wsg_reconnect_str). */
inline const char *to_string(Reconnect r) noexcept {
    return wsg_reconnect_str(static_cast<wsg_reconnect>(r));
}
/** Stable name: "close", "drop_newest", ... (wsg_queue_policy_str). */
inline const char *to_string(QueuePolicy p) noexcept {
    return wsg_queue_policy_str(static_cast<wsg_queue_policy>(p));
}

/** The description column of WSG_STATUS_MAP; "" for an unknown value. */
constexpr const char *describe(Status s) noexcept {
    switch (s) {
#define WSGATE_HPP_DOC3_(name, value, doc) \
    case Status::k##name: return doc;
        WSG_STATUS_MAP(WSGATE_HPP_DOC3_)
#undef WSGATE_HPP_DOC3_
    }
    return "";
}
#define WSGATE_HPP_DOC4_(name, value, text, doc) \
    case E::k##name: return doc;
/** The description column of WSG_CLOSE_CAUSE_MAP; "" for an unknown value. */
constexpr const char *describe(CloseCause c) noexcept {
    using E = CloseCause;
    switch (c) { WSG_CLOSE_CAUSE_MAP(WSGATE_HPP_DOC4_) }
    return "";
}
/** The description column of WSG_RECONNECT_MAP; "" for an unknown value. */
constexpr const char *describe(Reconnect r) noexcept {
    using E = Reconnect;
    switch (r) { WSG_RECONNECT_MAP(WSGATE_HPP_DOC4_) }
    return "";
}
/** The description column of WSG_QUEUE_POLICY_MAP; "" for an unknown value. */
constexpr const char *describe(QueuePolicy p) noexcept {
    using E = QueuePolicy;
    switch (p) { WSG_QUEUE_POLICY_MAP(WSGATE_HPP_DOC4_) }
    return "";
}
#undef WSGATE_HPP_DOC4_

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

namespace detail {
class Category final : public std::error_category {
public:
    const char *name() const noexcept override { return "wsgate"; }
    std::string message(int value) const override {
        Status s = static_cast<Status>(value);
        return std::string(to_string(s)) + ": " + describe(s);
    }
};
}  // namespace detail

/** The error category of wsgate's statuses (name "wsgate"). */
inline const std::error_category &category() noexcept {
    static const detail::Category instance;
    return instance;
}

/** A Status as a std::error_code (so `ec == wsgate::Status::kENOTFOUND` works). */
inline std::error_code make_error_code(Status s) noexcept {
    return std::error_code(static_cast<int>(s), category());
}

/** Detail message of this thread's last failed call (wsg_last_error). */
inline const char *last_error() noexcept { return wsg_last_error(); }

/** A failed call: its Status and the detail message the core gave
 *  (wsg_last_error() right after the failure). what() is
 *  "WSG_EINVAL: <detail>". Copying never throws. */
class Error : public std::runtime_error {
public:
    /** The error of a call that just returned `s`: reads wsg_last_error() now. */
    explicit Error(Status s) : Error(s, wsg_last_error()) {}
    /** An error with a message of the binding's own (one the core did not set). */
    Error(Status s, const std::string &detail)
        : std::runtime_error(std::string(to_string(s)) + ": " + detail),
          status_(s),
          prefix_(std::char_traits<char>::length(to_string(s)) + 2) {}
    /** The status the call returned. */
    Status status() const noexcept { return status_; }
    /** The status as a std::error_code. */
    std::error_code code() const noexcept { return make_error_code(status_); }
    /** The detail message alone (what() without the "WSG_...: " prefix). */
    const char *message() const noexcept { return what() + prefix_; }

private:
    Status status_;
    std::size_t prefix_;
};

namespace detail {
/* Plain forms: a status other than WSG_OK becomes an Error (or, without
 * exceptions, a message and abort). */
inline void check(wsg_status st) {
    if (st == WSG_OK) return;
#if WSGATE_HPP_EXCEPTIONS
    throw Error(static_cast<Status>(st));
#else
    std::fprintf(stderr, "wsgate: %s: %s (built without exceptions: use the std::error_code "
                         "overload)\n", wsg_status_str(st), wsg_last_error());
    std::abort();
#endif
}
[[noreturn]] inline void fail(Status s, const char *detail) {
#if WSGATE_HPP_EXCEPTIONS
    throw Error(s, detail);
#else
    std::fprintf(stderr, "wsgate: %s: %s\n", to_string(s), detail);
    std::abort();
#endif
}
/* error_code forms: true on success. */
inline bool check(wsg_status st, std::error_code &ec) noexcept {
    if (st == WSG_OK) {
        ec.clear();
        return true;
    }
    ec = make_error_code(static_cast<Status>(st));
    return false;
}
}  // namespace detail

}  // namespace wsgate

namespace std {
template <>
struct is_error_code_enum<wsgate::Status> : true_type {};
}  // namespace std

namespace wsgate {

/* ------------------------------------------------------------------ */
/* Small value types                                                   */
/* ------------------------------------------------------------------ */

/** Names one connection for the life of its server (wsg_conn_id): a 64-bit
 *  value, never 0 for a real connection. ConnId{} (0) means "none". A stale
 *  id is harmless: calls taking it fail with Status::kENOTFOUND. Comparable,
 *  hashable (std::hash), printable (operator<< with <ostream> included). */
class ConnId {
public:
    constexpr ConnId() noexcept = default;
    constexpr explicit ConnId(wsg_conn_id value) noexcept : value_(value) {}
    /** The C id. */
    constexpr wsg_conn_id value() const noexcept { return value_; }
    /** False for ConnId{} (none). */
    constexpr explicit operator bool() const noexcept { return value_ != 0; }
    friend constexpr bool operator==(ConnId a, ConnId b) noexcept { return a.value_ == b.value_; }
    friend constexpr bool operator!=(ConnId a, ConnId b) noexcept { return a.value_ != b.value_; }
    friend constexpr bool operator<(ConnId a, ConnId b) noexcept { return a.value_ < b.value_; }
    friend constexpr bool operator<=(ConnId a, ConnId b) noexcept { return a.value_ <= b.value_; }
    friend constexpr bool operator>(ConnId a, ConnId b) noexcept { return a.value_ > b.value_; }
    friend constexpr bool operator>=(ConnId a, ConnId b) noexcept { return a.value_ >= b.value_; }

private:
    wsg_conn_id value_ = 0;
};

/** Writes the id's number (a template, so this header needs only <iosfwd>:
 *  include <ostream> where you print). */
template <class CharT, class Traits>
std::basic_ostream<CharT, Traits> &operator<<(std::basic_ostream<CharT, Traits> &os, ConnId id) {
    return os << id.value();
}

/** A NUL-terminated string argument, borrowed for the call: a `const char *`
 *  (may be nullptr where the C call allows NULL) or a std::string. The C ABI
 *  needs the terminator, so a std::string_view is not accepted: pass
 *  std::string(view). */
class CStr {
public:
    CStr(const char *s) noexcept : p_(s) {}
    CStr(const std::string &s) noexcept : p_(s.c_str()) {}
    CStr(std::string_view) = delete;
    const char *c_str() const noexcept { return p_; }

private:
    const char *p_;
};

namespace detail {
/* A contiguous container of byte-sized trivially copyable elements
 * (std::vector<uint8_t>, std::array<std::byte, N>, std::string...), but not a
 * built-in array (a string literal would bring its NUL). */
template <class C, class = void>
struct is_byte_range : std::false_type {};
template <class C>
struct is_byte_range<C, std::void_t<decltype(std::data(std::declval<const C &>())),
                                    decltype(std::size(std::declval<const C &>()))>>
    : std::bool_constant<
          std::is_class_v<C> &&
          std::is_pointer_v<decltype(std::data(std::declval<const C &>()))> &&
          sizeof(std::remove_pointer_t<decltype(std::data(std::declval<const C &>()))>) == 1 &&
          std::is_trivially_copyable_v<
              std::remove_pointer_t<decltype(std::data(std::declval<const C &>()))>>> {};
}  // namespace detail

/** A borrowed view of bytes: pointer and size, iterable as unsigned char.
 *  Received payloads are valid only until the handler returns: copy what
 *  you keep (to_string(), or std::vector(b.begin(), b.end())). */
class Bytes {
public:
    using value_type = unsigned char;
    using size_type = std::size_t;
    using const_iterator = const unsigned char *;
    using iterator = const_iterator;

    constexpr Bytes() noexcept = default;
    Bytes(const void *data, std::size_t size) noexcept
        : p_(static_cast<const unsigned char *>(data)), n_(size) {}
    Bytes(std::string_view s) noexcept : Bytes(s.data(), s.size()) {}
    /** Any contiguous container of byte-sized elements. */
    template <class C, std::enable_if_t<detail::is_byte_range<C>::value &&
                                            !std::is_same_v<C, Bytes>, int> = 0>
    Bytes(const C &c) noexcept : Bytes(std::data(c), std::size(c)) {}

    const unsigned char *data() const noexcept { return p_; }
    std::size_t size() const noexcept { return n_; }
    bool empty() const noexcept { return n_ == 0; }
    const_iterator begin() const noexcept { return p_; }
    const_iterator end() const noexcept { return p_ + n_; }
    unsigned char operator[](std::size_t i) const noexcept { return p_[i]; }
    /** The bytes as characters (no copy, no UTF-8 check). */
    std::string_view chars() const noexcept {
        return std::string_view(reinterpret_cast<const char *>(p_), n_);
    }
    /** A copy of the bytes. */
    std::string to_string() const { return std::string(chars()); }

private:
    const unsigned char *p_ = nullptr;
    std::size_t n_ = 0;
};

/** One data message: its type and a view of its payload. What handlers
 *  receive and what every send call takes. From string-like arguments
 *  (const char *, std::string, std::string_view) it is text; from byte
 *  containers (std::vector<uint8_t>, Bytes...) binary; wsgate::text() and
 *  wsgate::binary() say it explicitly. A received Message passed on keeps
 *  its type (echo: `s.send(id, m)`). A view: it borrows its bytes. */
class Message {
public:
    constexpr Message(MsgType type, Bytes bytes) noexcept : type_(type), bytes_(bytes) {}
    Message(const char *text) noexcept
        : Message(MsgType::kTEXT, text ? Bytes(std::string_view(text)) : Bytes()) {}
    Message(std::string_view text) noexcept : Message(MsgType::kTEXT, Bytes(text)) {}
    Message(const std::string &text) noexcept : Message(MsgType::kTEXT, Bytes(std::string_view(text))) {}
    Message(Bytes bytes) noexcept : Message(MsgType::kBINARY, bytes) {}
    template <class C, std::enable_if_t<detail::is_byte_range<C>::value &&
                                            !std::is_convertible_v<const C &, std::string_view> &&
                                            !std::is_same_v<C, Bytes>, int> = 0>
    Message(const C &bytes) noexcept : Message(MsgType::kBINARY, Bytes(bytes)) {}

    MsgType type() const noexcept { return type_; }
    bool is_text() const noexcept { return type_ == MsgType::kTEXT; }
    bool is_binary() const noexcept { return type_ == MsgType::kBINARY; }
    /** The payload. */
    Bytes bytes() const noexcept { return bytes_; }
    /** The payload as characters (UTF-8 for a received text message). */
    std::string_view text() const noexcept { return bytes_.chars(); }
    const unsigned char *data() const noexcept { return bytes_.data(); }
    std::size_t size() const noexcept { return bytes_.size(); }
    bool empty() const noexcept { return bytes_.empty(); }
    Bytes::const_iterator begin() const noexcept { return bytes_.begin(); }
    Bytes::const_iterator end() const noexcept { return bytes_.end(); }

private:
    MsgType type_;
    Bytes bytes_;
};

/** A text message (the caller promises UTF-8; it is sent as given). */
inline Message text(std::string_view s) noexcept { return Message(MsgType::kTEXT, Bytes(s)); }
/** A binary message. */
inline Message binary(Bytes b) noexcept { return Message(MsgType::kBINARY, b); }

/* ------------------------------------------------------------------ */
/* Versions and the option table                                       */
/* ------------------------------------------------------------------ */

/** Version of the loaded library, e.g. "0.1.0". */
inline const char *version() noexcept { return wsg_version(); }
/** Version number of the loaded library; compare with WSG_VERSION_NUM (this header's). */
inline int version_num() noexcept { return wsg_version_num(); }

/** One row of the option table (static strings). */
struct OptionInfo {
    std::string_view name;          /**< dotted name, e.g. "listen.port" */
    std::string_view type;          /**< "int", "bool", "string" or "enum" */
    std::string_view default_value; /**< default as text */
    std::string_view range;         /**< "MIN..MAX", "a|b|c" or "" */
    std::string_view doc;           /**< one line of documentation */
};

namespace detail {
inline wsg_status describe_option(std::size_t index, OptionInfo &out) noexcept {
    const char *v[5] = {nullptr, nullptr, nullptr, nullptr, nullptr};
    static const wsg_option_field fields[5] = {WSG_OPTION_NAME, WSG_OPTION_TYPE, WSG_OPTION_DEFAULT,
                                               WSG_OPTION_RANGE, WSG_OPTION_DOC};
    for (int i = 0; i < 5; i++) {
        wsg_status st = wsg_option_describe(index, fields[i], &v[i]);
        if (st != WSG_OK) return st;
    }
    out = OptionInfo{v[0], v[1], v[2], v[3], v[4]};
    return WSG_OK;
}
inline wsg_status find_option(CStr name, OptionInfo &out) noexcept {
    std::size_t index = 0;
    wsg_status st = wsg_option_find(name.c_str(), &index);
    return st == WSG_OK ? describe_option(index, out) : st;
}
}  // namespace detail

/** Number of options in the table. */
inline std::size_t option_count() noexcept { return wsg_option_count(); }

/** Row `index` (0 .. option_count()-1). @throws Error kEINVAL out of range. */
inline OptionInfo option(std::size_t index) {
    OptionInfo o;
    detail::check(detail::describe_option(index, o));
    return o;
}
/** As option(index); `ec` instead of throwing. */
inline OptionInfo option(std::size_t index, std::error_code &ec) noexcept {
    OptionInfo o;
    return detail::check(detail::describe_option(index, o), ec) ? o : OptionInfo{};
}

/** The row of option `name`. @throws Error kENOTFOUND (unknown name). */
inline OptionInfo find_option(CStr name) {
    OptionInfo o;
    detail::check(detail::find_option(name, o));
    return o;
}
/** As find_option(name); `ec` instead of throwing. */
inline OptionInfo find_option(CStr name, std::error_code &ec) noexcept {
    OptionInfo o;
    return detail::check(detail::find_option(name, o), ec) ? o : OptionInfo{};
}

/** Every option, in table order. */
inline std::vector<OptionInfo> options() {
    std::vector<OptionInfo> all(option_count());
    for (std::size_t i = 0; i < all.size(); i++) detail::check(detail::describe_option(i, all[i]));
    return all;
}

/** The advice for a close code without a server (wsg_close_code_advice(NULL, code)). */
inline Reconnect close_advice(int code) noexcept {
    return static_cast<Reconnect>(wsg_close_code_advice(nullptr, code));
}

/* ------------------------------------------------------------------ */
/* Configuration                                                       */
/* ------------------------------------------------------------------ */

/** A set of option values (wsg_config), every option at its default when
 *  created. Copyable (wsg_config_copy) and movable; a moved-from Config is
 *  empty and every call on it fails with kEINVAL. One thread at a time. */
class Config {
public:
    /** Every option at its default. @throws Error kENOMEM. */
    Config() { detail::check(wsg_config_new(&h_)); }
    /** As Config(); `ec` instead of throwing (the Config is empty on failure). */
    explicit Config(std::error_code &ec) noexcept { detail::check(wsg_config_new(&h_), ec); }
    Config(const Config &other) {
        if (other.h_) detail::check(wsg_config_copy(&h_, other.h_));
    }
    Config &operator=(const Config &other) {
        if (this != &other) {
            Config copy(other);
            swap(copy);
        }
        return *this;
    }
    Config(Config &&other) noexcept : h_(std::exchange(other.h_, nullptr)) {}
    Config &operator=(Config &&other) noexcept {
        if (this != &other) {
            wsg_config_free(h_);
            h_ = std::exchange(other.h_, nullptr);
        }
        return *this;
    }
    ~Config() { wsg_config_free(h_); }
    void swap(Config &other) noexcept { std::swap(h_, other.h_); }

    /** Set an option by its C++ type: bool for "bool" options, any other
     *  integer for "int", anything string-like for "string" and "enum".
     *  Returns *this, for chaining. @throws Error kEINVAL (unknown key, wrong
     *  type, out of range: the message names the key and the range). */
    template <class T>
    Config &set(CStr key, const T &value) {
        detail::check(set_any(key, value));
        return *this;
    }
    /** As set(key, value); `ec` instead of throwing. */
    template <class T>
    void set(CStr key, const T &value, std::error_code &ec) {
        detail::check(set_any(key, value), ec);
    }
    /** "key=value" as on a command line (wsg_config_set_from_string). */
    Config &set_from_string(CStr assignment) {
        detail::check(wsg_config_set_from_string(h_, assignment.c_str()));
        return *this;
    }
    void set_from_string(CStr assignment, std::error_code &ec) noexcept {
        detail::check(wsg_config_set_from_string(h_, assignment.c_str()), ec);
    }
    Config &set_int(CStr key, std::int64_t value) { return set(key, value); }
    Config &set_bool(CStr key, bool value) { return set(key, value); }
    Config &set_string(CStr key, CStr value) {
        detail::check(wsg_config_set_string(h_, key.c_str(), value.c_str()));
        return *this;
    }

    /** Read an "int" option. @throws Error kEINVAL. */
    std::int64_t get_int(CStr key) const {
        std::int64_t v = 0;
        detail::check(wsg_config_get_int(h_, key.c_str(), &v));
        return v;
    }
    std::int64_t get_int(CStr key, std::error_code &ec) const noexcept {
        std::int64_t v = 0;
        return detail::check(wsg_config_get_int(h_, key.c_str(), &v), ec) ? v : 0;
    }
    /** Read a "bool" option. @throws Error kEINVAL. */
    bool get_bool(CStr key) const {
        int v = 0;
        detail::check(wsg_config_get_bool(h_, key.c_str(), &v));
        return v != 0;
    }
    bool get_bool(CStr key, std::error_code &ec) const noexcept {
        int v = 0;
        return detail::check(wsg_config_get_bool(h_, key.c_str(), &v), ec) && v != 0;
    }
    /** Read a "string" or "enum" option (a copy). @throws Error kEINVAL. */
    std::string get_string(CStr key) const {
        const char *v = nullptr;
        detail::check(wsg_config_get_string(h_, key.c_str(), &v));
        return v ? std::string(v) : std::string();
    }
    std::string get_string(CStr key, std::error_code &ec) const {
        const char *v = nullptr;
        return detail::check(wsg_config_get_string(h_, key.c_str(), &v), ec) && v ? std::string(v)
                                                                                  : std::string();
    }

    /** The C handle (still owned by this Config); nullptr when empty. */
    wsg_config *handle() noexcept { return h_; }
    const wsg_config *handle() const noexcept { return h_; }
    explicit operator bool() const noexcept { return h_ != nullptr; }

private:
    template <class T>
    wsg_status set_any(CStr key, const T &value) {
        if constexpr (std::is_same_v<T, bool>) {
            return wsg_config_set_bool(h_, key.c_str(), value ? 1 : 0);
        } else if constexpr (std::is_integral_v<T>) {
            return wsg_config_set_int(h_, key.c_str(), static_cast<std::int64_t>(value));
        } else if constexpr (std::is_convertible_v<const T &, const char *>) {
            return wsg_config_set_string(h_, key.c_str(), static_cast<const char *>(value));
        } else if constexpr (std::is_same_v<T, std::string>) {
            return wsg_config_set_string(h_, key.c_str(), value.c_str());
        } else if constexpr (std::is_convertible_v<const T &, std::string_view>) {
            const std::string copy(static_cast<std::string_view>(value));  // the C call needs a NUL
            return wsg_config_set_string(h_, key.c_str(), copy.c_str());
        } else {
            static_assert(std::is_integral_v<T>, "Config::set takes bool, an integer or a string");
            return WSG_EINVAL;
        }
    }

    wsg_config *h_ = nullptr;
};

/* ------------------------------------------------------------------ */
/* What handlers receive                                               */
/* ------------------------------------------------------------------ */

/** A connection's end, as on_close reports it. */
struct CloseEvent {
    int code;                /**< close code (1006 when there was no close frame) */
    std::string_view reason; /**< close reason, valid until the handler returns */
    CloseCause cause;        /**< why it ended */
};

/** One structured log event, as on_log receives it (views valid until the
 *  handler returns). */
struct LogEvent {
    LogLevel level;
    std::string_view name; /**< event name (the README's log-event table) */
    std::string_view json; /**< the whole event as one JSON object */
};

/** A snapshot of one connection (wsg_conn_info_get), copied into values. */
struct ConnInfo {
    ConnId id;
    std::string peer_addr;
    int peer_port = 0;
    std::string path;
    std::string query;
    std::string origin;
    std::string subprotocol;
    std::int64_t connected_at_ms = 0; /**< Unix time of the upgrade */
    std::int64_t duration_ms = 0;
    std::int64_t messages_in = 0;
    std::int64_t bytes_in = 0;
    std::int64_t messages_out = 0;
    std::int64_t bytes_out = 0;
    std::int64_t rtt_us = -1; /**< latest ping round trip; -1 before the first pong */
    std::string tls_subject;
    std::string user_id;
    std::string claims; /**< the JWT's claims as JSON, "" without a JWT */
    bool compression = false;
    std::int64_t queued_bytes = 0;
    std::int64_t messages_dropped = 0;
    QueuePolicy queue_policy = QueuePolicy::kCLOSE;
    std::vector<std::string> topics; /**< subscriptions when the snapshot was taken */
};

/** An upgrade request being authenticated (wsg_auth_request), valid only
 *  during the on_auth handler, on the service thread. Decide with accept()
 *  or refuse(); deciding nothing refuses with 401. */
class AuthRequest {
public:
    explicit AuthRequest(wsg_auth_request *req) noexcept : r_(req) {}

    /** Request path without the query. */
    std::string_view path() const { return get(WSG_AUTH_PATH); }
    /** Query string as sent (no '?'), access_token removed. */
    std::string_view query() const { return get(WSG_AUTH_QUERY); }
    /** Peer IP address. */
    std::string_view peer_addr() const { return get(WSG_AUTH_PEER_ADDR); }
    /** Origin header, "" if none. */
    std::string_view origin() const { return get(WSG_AUTH_ORIGIN); }
    /** Verified client certificate subject, "" if none. */
    std::string_view tls_subject() const { return get(WSG_AUTH_TLS_SUBJECT); }
    /** The token found in auth.token_sources, "" if none. */
    std::string_view token() const { return get(WSG_AUTH_TOKEN); }
    /** auth.mode=jwt+callback: the verified JWT's user id. */
    std::string_view jwt_user() const { return get(WSG_AUTH_JWT_USER); }
    /** auth.mode=jwt+callback: the verified JWT's claims (JSON). */
    std::string_view jwt_claims() const { return get(WSG_AUTH_JWT_CLAIMS); }
    /** Any field by its C key. @throws Error kEINVAL. */
    std::string_view get(wsg_auth_field field) const {
        const char *v = nullptr;
        detail::check(wsg_auth_request_get(r_, field, &v));
        return v ? std::string_view(v) : std::string_view();
    }
    std::string_view get(wsg_auth_field field, std::error_code &ec) const noexcept {
        const char *v = nullptr;
        return detail::check(wsg_auth_request_get(r_, field, &v), ec) && v ? std::string_view(v)
                                                                          : std::string_view();
    }
    /** A request header (case-insensitive name, repeated ones joined with
     *  ", "); std::nullopt when absent. @throws Error kEINVAL. */
    std::optional<std::string_view> header(CStr name) const {
        const char *v = nullptr;
        wsg_status st = wsg_auth_request_header(r_, name.c_str(), &v);
        if (st == WSG_ENOTFOUND) return std::nullopt;
        detail::check(st);
        return std::string_view(v ? v : "");
    }
    /** As header(name); absent is std::nullopt with `ec` clear. */
    std::optional<std::string_view> header(CStr name, std::error_code &ec) const noexcept {
        const char *v = nullptr;
        wsg_status st = wsg_auth_request_header(r_, name.c_str(), &v);
        if (st == WSG_ENOTFOUND) {
            ec.clear();
            return std::nullopt;
        }
        if (!detail::check(st, ec)) return std::nullopt;
        return std::string_view(v ? v : "");
    }
    /** Accept as `user_id` (nullptr keeps the JWT's user id, or none). */
    void accept(CStr user_id = nullptr) const { detail::check(wsg_auth_accept(r_, user_id.c_str())); }
    void accept(CStr user_id, std::error_code &ec) const noexcept {
        detail::check(wsg_auth_accept(r_, user_id.c_str()), ec);
    }
    /** Refuse with HTTP 401 or 403 and a logged reason. @throws Error kEINVAL. */
    void refuse(int http_status, CStr reason = "") const {
        detail::check(wsg_auth_refuse(r_, http_status, reason.c_str()));
    }
    void refuse(int http_status, CStr reason, std::error_code &ec) const noexcept {
        detail::check(wsg_auth_refuse(r_, http_status, reason.c_str()), ec);
    }
    /** The connection's own heartbeat value (keys as ServerRef::set_timeout). */
    void set_timeout(CStr key, std::chrono::milliseconds value) const {
        detail::check(wsg_auth_set_timeout(r_, key.c_str(), static_cast<std::int64_t>(value.count())));
    }
    void set_timeout(CStr key, std::chrono::milliseconds value, std::error_code &ec) const noexcept {
        detail::check(wsg_auth_set_timeout(r_, key.c_str(), static_cast<std::int64_t>(value.count())), ec);
    }
    /** The C request. */
    wsg_auth_request *handle() const noexcept { return r_; }

private:
    wsg_auth_request *r_;
};

/* ------------------------------------------------------------------ */
/* History and recovery: positions and the history hook's message      */
/* ------------------------------------------------------------------ */

/** A message's place in a topic's history (wsg_position): the history's
 *  epoch and the offset within it (1, 2, 3...). Plain data, an aggregate:
 *  Position{epoch, offset}. Position{} ({0, 0}) is "before the first
 *  message"; as subscribe_from's `from` it asks for the whole history.
 *  Since 0.1.0. */
struct Position {
    std::uint64_t epoch = 0;
    std::uint64_t offset = 0;

    /** The C value. */
    constexpr wsg_position c_value() const noexcept { return wsg_position{epoch, offset}; }
    /** From the C value. */
    static constexpr Position from_c(const wsg_position &p) noexcept { return Position{p.epoch, p.offset}; }
    /** The text "EPOCH-OFFSET" (wsg_position_format), e.g. for a client. */
    std::string to_string() const {
        char buf[WSG_POSITION_TEXT_MAX];
        const wsg_position p = c_value();
        detail::check(wsg_position_format(&p, buf, sizeof buf));  // cannot fail: the buffer is the maximum
        return std::string(buf);
    }
    /** Parse the text of to_string() (wsg_position_parse), e.g. from a
     *  client's query string. @throws Error kEINVAL (not that form: the
     *  message quotes the text). */
    static Position parse(CStr text) {
        wsg_position p{0, 0};
        detail::check(wsg_position_parse(text.c_str(), &p));
        return from_c(p);
    }
    /** As parse(text); `ec` instead of throwing (Position{} on failure). */
    static Position parse(CStr text, std::error_code &ec) noexcept {
        wsg_position p{0, 0};
        return detail::check(wsg_position_parse(text.c_str(), &p), ec) ? from_c(p) : Position{};
    }
    friend constexpr bool operator==(const Position &a, const Position &b) noexcept {
        return a.epoch == b.epoch && a.offset == b.offset;
    }
    friend constexpr bool operator!=(const Position &a, const Position &b) noexcept { return !(a == b); }
};

/** Writes "EPOCH-OFFSET" (include <ostream> where you print). */
template <class CharT, class Traits>
std::basic_ostream<CharT, Traits> &operator<<(std::basic_ostream<CharT, Traits> &os, const Position &p) {
    return os << p.epoch << '-' << p.offset;
}

/** A history topic's message on its way to this instance's subscribers
 *  (wsg_history_message), as the on_history hook receives it: valid during
 *  the hook only, on the service thread. */
class HistoryMessage {
public:
    explicit HistoryMessage(wsg_history_message *msg) noexcept : m_(msg) {}
    /** The message as published: its type and a view of its bytes (valid
     *  until the hook returns). set() does not change it. */
    Message payload() const noexcept {
        wsg_msg_type type = WSG_MSG_TEXT;
        const void *data = nullptr;
        std::size_t len = 0;
        if (wsg_history_message_payload(m_, &type, &data, &len) != WSG_OK) return Message(MsgType::kTEXT, Bytes());
        return Message(static_cast<MsgType>(type), Bytes(data, len));
    }
    /** The published type; what the subscribers get keeps it. */
    MsgType type() const noexcept { return payload().type(); }
    /** Replace what the subscribers get with `data` (copied; the type stays
     *  the published one): a std::string, std::string_view or byte
     *  container, e.g. the payload with its position embedded. @throws Error kEINVAL
     *  (invalid UTF-8 for a text message, larger than limits.max_queue_bytes). */
    void set(Bytes data) const { detail::check(wsg_history_message_set(m_, data.data(), data.size())); }
    void set(Bytes data, std::error_code &ec) const noexcept {
        detail::check(wsg_history_message_set(m_, data.data(), data.size()), ec);
    }
    /** The C message. */
    wsg_history_message *handle() const noexcept { return m_; }

private:
    wsg_history_message *m_;
};

/* ------------------------------------------------------------------ */
/* Asynchronous results: presence and session data                     */
/* ------------------------------------------------------------------ */

/* The C calls (wsg_topic_presence, wsg_session_get, ...) never block: they
 * answer through a callback on the service thread. Here each has two forms
 * on ServerRef:
 *  - with a ResultCallback: the C call as it is. The callable is copied to
 *    the heap, owned by the pending call and destroyed right after it ran
 *    (exactly once, also when the server stops first: Status::kESTATE).
 *    It runs on the service thread and must not block; what it throws is
 *    caught and written on stderr (the call is over: there is no
 *    connection to close).
 *  - without one: waits for the answer on the calling thread through a
 *    wsg_completion and returns the value, or throws Error with the
 *    result's status and message (or sets `ec`). `timeout` bounds the wait
 *    (wsgate::wait_forever: no bound; the core still answers within
 *    cluster.command_timeout_ms with kECLUSTER). A wait that gives up
 *    throws kETIMEOUT; the call itself goes on and its answer is dropped.
 *    Blocks: from a handler (any server's) these throw kEBUSY before
 *    making the call, since the answer would need the thread they hold. */

/** No bound on a blocking wait (the timeout argument's default). */
constexpr std::chrono::milliseconds wait_forever{-1};

/** One presence entry, copied out of a result. */
struct Presence {
    ConnId conn;               /**< the connection; its node is in the top 16 bits */
    std::string user_id;       /**< "" when anonymous */
    std::int64_t since_ms = 0; /**< Unix ms: the subscription (topic) or the upgrade (user) */
    /** The node number of the instance holding the connection (0 without a cluster). */
    unsigned node() const noexcept { return static_cast<unsigned>(conn.value() >> 48); }
};

/** One presence entry as a view into a Result (valid as long as the result). */
struct PresenceView {
    ConnId conn;
    std::string_view user_id;
    std::int64_t since_ms = 0;
    /** A copy that outlives the result. */
    Presence copy() const { return Presence{conn, std::string(user_id), since_ms}; }
};

/** The outcome of an asynchronous call (wsg_result), borrowed: valid while
 *  the callback runs; copy what you keep. */
class Result {
public:
    explicit Result(const wsg_result *r) noexcept : r_(r) {}
    /** kOK, kENOTFOUND (session_get: no such key), kECLUSTER (presence then
     *  still holds this instance's entries), kESTATE (the server stopped first). */
    Status status() const noexcept { return static_cast<Status>(wsg_result_status(r_)); }
    bool ok() const noexcept { return status() == Status::kOK; }
    /** The status as a std::error_code (clear when kOK). */
    std::error_code error() const noexcept {
        return ok() ? std::error_code() : make_error_code(status());
    }
    /** A message for people when not kOK ("" when kOK). */
    std::string_view message() const noexcept {
        const char *m = wsg_result_message(r_);
        return m ? std::string_view(m) : std::string_view();
    }
    /** Throws Error(status(), message()) when not kOK. */
    void check() const {
        if (!ok()) detail::fail(status(), std::string(message()).c_str());
    }
    /** session_get's value; std::nullopt when there is none. */
    std::optional<Bytes> value() const noexcept {
        const void *data = nullptr;
        std::size_t len = 0;
        if (wsg_result_value(r_, &data, &len) != WSG_OK) return std::nullopt;
        return Bytes(data, len);
    }
    /** subscribe_from's position: the last message given from the history,
     *  or the topic's current one when nothing was missed (Position{} while
     *  it has no history); std::nullopt for other results and failures. */
    std::optional<Position> position() const noexcept {
        wsg_position p{0, 0};
        if (wsg_result_position(r_, &p) != WSG_OK) return std::nullopt;
        return Position::from_c(p);
    }
    /** Number of presence entries (0 for other results). */
    std::size_t size() const noexcept { return wsg_result_count(r_); }
    bool empty() const noexcept { return size() == 0; }
    /** Presence entry `i`. @throws Error kEINVAL out of range. */
    PresenceView at(std::size_t i) const {
        PresenceView v;
        detail::check(entry_(i, v));
        return v;
    }
    /** Every presence entry, copied. */
    std::vector<Presence> presence() const {
        std::vector<Presence> out;
        out.reserve(size());
        for (std::size_t i = 0, n = size(); i < n; i++) {
            PresenceView v;
            if (entry_(i, v) == WSG_OK) out.push_back(v.copy());
        }
        return out;
    }
    /** The C result. */
    const wsg_result *handle() const noexcept { return r_; }

private:
    wsg_status entry_(std::size_t i, PresenceView &v) const noexcept {
        wsg_conn_id conn = 0;
        const char *user = nullptr;
        std::int64_t since = 0;
        wsg_status st = wsg_result_presence(r_, i, &conn, &user, &since);
        if (st == WSG_OK) v = PresenceView{ConnId(conn), user ? user : "", since};
        return st;
    }

    const wsg_result *r_;
};

class ServerRef;

/** The callback of an asynchronous call: `f(ServerRef, const Result &)`, on
 *  the service thread. An empty one passes NULL to the C call (allowed by
 *  session_set and session_delete: nobody is told the outcome). */
using ResultCallback = std::function<void(ServerRef, const Result &)>;

namespace detail {
/* Depth of C++ handlers (and result callbacks) running on this thread: the
 * blocking helpers refuse to wait there. */
inline int &handler_depth() noexcept {
    static thread_local int depth = 0;
    return depth;
}
struct HandlerScope {
    HandlerScope() noexcept { handler_depth()++; }
    ~HandlerScope() { handler_depth()--; }
    HandlerScope(const HandlerScope &) = delete;
    HandlerScope &operator=(const HandlerScope &) = delete;
};

/* A pending call's callback: owned by the C library from a WSG_OK until the
 * one call of result_tramp, which frees it. */
struct ResultSlot {
    ResultCallback fn;
    const char *call;
};

void result_tramp(wsg_server *s, const wsg_result *r, void *user) noexcept;

/* Starts an asynchronous C call with `fn` (a heap copy of it, or NULL for an
 * empty one). `start(cfn, user)` makes the call. */
template <class Start>
wsg_status start_async(const char *call, ResultCallback &&fn, Start start) {
    if (!fn) return start(nullptr, nullptr);
    auto *slot = new ResultSlot{std::move(fn), call};
    wsg_status st = start(&result_tramp, slot);
    if (st != WSG_OK) delete slot;  // the C library took it only on success
    return st;
}

/* A wsg_completion, freed with the object (an unanswered call's answer is
 * then dropped by the core). */
class Completion {
public:
    Completion() noexcept = default;
    Completion(const Completion &) = delete;
    Completion &operator=(const Completion &) = delete;
    ~Completion() { wsg_completion_free(c_); }
    const wsg_result *result() const noexcept { return wsg_completion_result(c_); }
    /* Makes the call (`start(cfn, user)`) and waits for its answer. WSG_OK:
     * read result(); otherwise the status of the call or of the wait, with
     * its message in `why`. */
    template <class Start>
    wsg_status run(Start start, std::chrono::milliseconds timeout, std::string &why) {
        if (handler_depth() > 0) {
            why = "a blocking call cannot wait inside a handler or result callback (the answer "
                  "needs the service thread): pass a callback instead";
            return WSG_EBUSY;
        }
        wsg_status st = wsg_completion_new(&c_);
        if (st == WSG_OK) st = start(&wsg_completion_callback, c_);
        if (st != WSG_OK) {
            why = wsg_last_error();  // now: the completion is freed before it is read
            return st;
        }
        st = wsg_completion_wait(c_, timeout.count() < 0 ? -1 : static_cast<std::int64_t>(timeout.count()));
        if (st == WSG_ETIMEOUT)
            why = "no answer within " + std::to_string(timeout.count()) +
                  " ms (the call goes on; its answer is dropped)";
        else if (st != WSG_OK)
            why = wsg_last_error();
        return st;
    }

private:
    wsg_completion *c_ = nullptr;
};

/* A blocking helper's outcome, shared by its throwing and error_code forms:
 * the status of the call, the wait or the result, and the message to go
 * with it. */
struct Waited {
    wsg_status st = WSG_OK;
    std::string why;
};

inline void check(const Waited &w) {
    if (w.st != WSG_OK) fail(static_cast<Status>(w.st), w.why.c_str());
}
inline bool check(const Waited &w, std::error_code &ec) noexcept { return check(w.st, ec); }

/* Runs a blocking call: the call's own status, the wait's, then the result's. */
template <class Start, class Read>
Waited wait_for(Start start, std::chrono::milliseconds timeout, Read read) {
    Completion c;
    Waited w;
    w.st = c.run(start, timeout, w.why);
    if (w.st != WSG_OK) return w;
    Result r(c.result());
    read(r);
    w.st = static_cast<wsg_status>(r.status());
    if (w.st != WSG_OK) {
        w.why = std::string(r.message());
        if (w.why.empty()) w.why = describe(r.status());
    }
    return w;
}
}  // namespace detail

/* ------------------------------------------------------------------ */
/* ServerRef: every call on a server, through a borrowed handle        */
/* ------------------------------------------------------------------ */

/** A borrowed, copyable handle to a server: what handlers receive, and the
 *  base of Server (so a Server converts to a ServerRef). It owns nothing and
 *  must not outlive its Server. Calls on an empty one (ServerRef{}, a
 *  moved-from Server) fail with kEINVAL "server is NULL". */
class ServerRef {
public:
    constexpr ServerRef() noexcept = default;
    constexpr explicit ServerRef(wsg_server *server) noexcept : h_(server) {}
    /** The C handle. */
    wsg_server *handle() const noexcept { return h_; }
    explicit operator bool() const noexcept { return h_ != nullptr; }

    /* ---- lifecycle (Blocks: never from a handler) ---- */

    /** Serve `body` at `path` (wsg_server_add_page); before listening. */
    void add_page(CStr path, CStr content_type, Bytes body) const {
        detail::check(add_page_(path, content_type, body));
    }
    void add_page(CStr path, CStr content_type, Bytes body, std::error_code &ec) const noexcept {
        detail::check(add_page_(path, content_type, body), ec);
    }
    /** Bind without serving yet (port() is then known). */
    void listen() const { detail::check(wsg_server_listen(h_)); }
    void listen(std::error_code &ec) const noexcept { detail::check(wsg_server_listen(h_), ec); }
    /** Serve on a new service thread; returns at once. */
    void start() const { detail::check(wsg_server_start(h_)); }
    void start(std::error_code &ec) const noexcept { detail::check(wsg_server_start(h_), ec); }
    /** Serve on this thread until request_stop() (or stop() from another thread). */
    void run() const { detail::check(wsg_server_run(h_)); }
    void run(std::error_code &ec) const noexcept { detail::check(wsg_server_run(h_), ec); }
    /** Graceful stop: clients get 1001; joins the service thread. */
    void stop() const { detail::check(wsg_server_stop(h_)); }
    void stop(std::error_code &ec) const noexcept { detail::check(wsg_server_stop(h_), ec); }
    /** Graceful drain over `duration` (1012 to every client, spread out), then stop. */
    void drain(std::chrono::milliseconds duration) const {
        detail::check(wsg_server_drain(h_, static_cast<std::int64_t>(duration.count())));
    }
    void drain(std::chrono::milliseconds duration, std::error_code &ec) const noexcept {
        detail::check(wsg_server_drain(h_, static_cast<std::int64_t>(duration.count())), ec);
    }
    /** Ask for the graceful stop (or, with server.drain_ms, the drain)
     *  without waiting. Async-signal-safe: the one call a signal handler may
     *  make. Never throws; kEINVAL only for an empty ref. */
    Status request_stop() const noexcept { return static_cast<Status>(wsg_server_request_stop(h_)); }
    /** True from the start of a drain or stop until the server listens again. */
    bool draining() const noexcept { return wsg_server_draining(h_) != 0; }
    /** Reload tls.cert_file and tls.key_file. */
    void reload_tls() const { detail::check(wsg_server_reload_tls(h_)); }
    void reload_tls(std::error_code &ec) const noexcept { detail::check(wsg_server_reload_tls(h_), ec); }

    /* ---- state (any thread) ---- */

    /** The bound port. @throws Error kESTATE when not listening. */
    int port() const {
        int v = 0;
        detail::check(wsg_server_port(h_, &v));
        return v;
    }
    int port(std::error_code &ec) const noexcept {
        int v = 0;
        return detail::check(wsg_server_port(h_, &v), ec) ? v : 0;
    }
    /** Number of open connections. */
    std::size_t conn_count() const {
        std::size_t v = 0;
        detail::check(wsg_server_conn_count(h_, &v));
        return v;
    }
    std::size_t conn_count(std::error_code &ec) const noexcept {
        std::size_t v = 0;
        return detail::check(wsg_server_conn_count(h_, &v), ec) ? v : 0;
    }
    /** Readiness as /readyz answers it. */
    bool ready() const {
        int v = 0;
        detail::check(wsg_server_ready(h_, &v));
        return v != 0;
    }
    bool ready(std::error_code &ec) const noexcept {
        int v = 0;
        return detail::check(wsg_server_ready(h_, &v), ec) && v != 0;
    }
    /** The metrics listener's bound port. @throws Error kESTATE without metrics.listen. */
    int metrics_port() const {
        int v = 0;
        detail::check(wsg_server_metrics_port(h_, &v));
        return v;
    }
    int metrics_port(std::error_code &ec) const noexcept {
        int v = 0;
        return detail::check(wsg_server_metrics_port(h_, &v), ec) ? v : 0;
    }
    /** The metrics as Prometheus text (what GET /metrics serves). */
    std::string metrics() const {
        std::string text;
        detail::check(metrics_(text));
        return text;
    }
    std::string metrics(std::error_code &ec) const {
        std::string text;
        if (!detail::check(metrics_(text), ec)) text.clear();
        return text;
    }
    /** Ids of the open connections. */
    std::vector<ConnId> conn_ids() const {
        std::vector<ConnId> ids;
        detail::check(ids_(ids, [this](wsg_conn_id *p, std::size_t cap, std::size_t *n) {
            return wsg_server_conn_ids(h_, p, cap, n);
        }));
        return ids;
    }
    std::vector<ConnId> conn_ids(std::error_code &ec) const {
        std::vector<ConnId> ids;
        if (!detail::check(ids_(ids, [this](wsg_conn_id *p, std::size_t cap, std::size_t *n) {
                return wsg_server_conn_ids(h_, p, cap, n);
            }), ec))
            ids.clear();
        return ids;
    }

    /* ---- sending (any thread; data copied before the call returns) ---- */

    /** Queue `msg` to one connection. @throws Error kENOTFOUND (stale id),
     *  kECLOSED (closing), kEINVAL. */
    void send(ConnId id, Message msg) const { detail::check(send_(id, msg)); }
    void send(ConnId id, Message msg, std::error_code &ec) const noexcept {
        detail::check(send_(id, msg), ec);
    }
    /** Send one message to each of `ids`, framed once; stale ids are skipped. */
    void send_many(const std::vector<ConnId> &ids, Message msg) const {
        detail::check(send_many_(ids, msg));
    }
    void send_many(const std::vector<ConnId> &ids, Message msg, std::error_code &ec) const {
        detail::check(send_many_(ids, msg), ec);
    }
    /** Send to every open connection. @throws Error kESTATE (not running). */
    void broadcast(Message msg) const { detail::check(broadcast_except_(ConnId(), msg)); }
    void broadcast(Message msg, std::error_code &ec) const noexcept {
        detail::check(broadcast_except_(ConnId(), msg), ec);
    }
    /** Send to every open connection but `except` (ConnId{} excludes none). */
    void broadcast_except(ConnId except, Message msg) const {
        detail::check(broadcast_except_(except, msg));
    }
    void broadcast_except(ConnId except, Message msg, std::error_code &ec) const noexcept {
        detail::check(broadcast_except_(except, msg), ec);
    }
    /** Send to every subscriber of `topic` (none is not an error). */
    void publish(CStr topic, Message msg) const { detail::check(publish_(topic, msg)); }
    void publish(CStr topic, Message msg, std::error_code &ec) const noexcept {
        detail::check(publish_(topic, msg), ec);
    }
    /** Send to every open connection of a user. @throws Error kENOTFOUND (none open). */
    void user_send(CStr user_id, Message msg) const { detail::check(user_send_(user_id, msg)); }
    void user_send(CStr user_id, Message msg, std::error_code &ec) const noexcept {
        detail::check(user_send_(user_id, msg), ec);
    }

    /* ---- one connection (any thread) ---- */

    /** Close with `code` and a UTF-8 `reason` of at most 123 bytes. */
    void close(ConnId id, int code = close_code::kNORMAL, CStr reason = "") const {
        detail::check(wsg_conn_close(h_, id.value(), code, reason.c_str()));
    }
    void close(ConnId id, int code, CStr reason, std::error_code &ec) const noexcept {
        detail::check(wsg_conn_close(h_, id.value(), code, reason.c_str()), ec);
    }
    /** Subscribe to `topic` (twice is harmless). */
    void subscribe(ConnId id, CStr topic) const {
        detail::check(wsg_conn_subscribe(h_, id.value(), topic.c_str()));
    }
    void subscribe(ConnId id, CStr topic, std::error_code &ec) const noexcept {
        detail::check(wsg_conn_subscribe(h_, id.value(), topic.c_str()), ec);
    }
    /** End a subscription (harmless when there is none). */
    void unsubscribe(ConnId id, CStr topic) const {
        detail::check(wsg_conn_unsubscribe(h_, id.value(), topic.c_str()));
    }
    void unsubscribe(ConnId id, CStr topic, std::error_code &ec) const noexcept {
        detail::check(wsg_conn_unsubscribe(h_, id.value(), topic.c_str()), ec);
    }
    /** Override one heartbeat setting ("heartbeat.pong_wait_ms", ...) for one connection. */
    void set_timeout(ConnId id, CStr key, std::chrono::milliseconds value) const {
        detail::check(wsg_conn_set_timeout(h_, id.value(), key.c_str(),
                                           static_cast<std::int64_t>(value.count())));
    }
    void set_timeout(ConnId id, CStr key, std::chrono::milliseconds value,
                     std::error_code &ec) const noexcept {
        detail::check(wsg_conn_set_timeout(h_, id.value(), key.c_str(),
                                           static_cast<std::int64_t>(value.count())), ec);
    }
    /** Give one connection its own queue policy. */
    void set_queue_policy(ConnId id, QueuePolicy policy) const {
        detail::check(wsg_conn_set_queue_policy(h_, id.value(), static_cast<wsg_queue_policy>(policy)));
    }
    void set_queue_policy(ConnId id, QueuePolicy policy, std::error_code &ec) const noexcept {
        detail::check(wsg_conn_set_queue_policy(h_, id.value(), static_cast<wsg_queue_policy>(policy)), ec);
    }
    /** Attach an application pointer (the library never touches it). */
    void set_user_data(ConnId id, void *ptr) const {
        detail::check(wsg_conn_set_user(h_, id.value(), ptr));
    }
    void set_user_data(ConnId id, void *ptr, std::error_code &ec) const noexcept {
        detail::check(wsg_conn_set_user(h_, id.value(), ptr), ec);
    }
    /** The pointer set by set_user_data (nullptr if none). */
    void *user_data(ConnId id) const {
        void *p = nullptr;
        detail::check(wsg_conn_get_user(h_, id.value(), &p));
        return p;
    }
    void *user_data(ConnId id, std::error_code &ec) const noexcept {
        void *p = nullptr;
        return detail::check(wsg_conn_get_user(h_, id.value(), &p), ec) ? p : nullptr;
    }
    /** A snapshot of the connection. @throws Error kENOTFOUND. */
    ConnInfo info(ConnId id) const {
        ConnInfo out;
        detail::check(info_(id, out));
        return out;
    }
    ConnInfo info(ConnId id, std::error_code &ec) const {
        ConnInfo out;
        return detail::check(info_(id, out), ec) ? out : ConnInfo{};
    }

    /* ---- topics and users (any thread) ---- */

    /** Subscribers of `topic` now (empty for a topic nobody follows). */
    std::vector<ConnId> topic_subscribers(CStr topic) const {
        std::vector<ConnId> ids;
        detail::check(ids_(ids, [&](wsg_conn_id *p, std::size_t cap, std::size_t *n) {
            return wsg_topic_subscribers(h_, topic.c_str(), p, cap, n);
        }));
        return ids;
    }
    std::vector<ConnId> topic_subscribers(CStr topic, std::error_code &ec) const {
        std::vector<ConnId> ids;
        if (!detail::check(ids_(ids, [&](wsg_conn_id *p, std::size_t cap, std::size_t *n) {
                return wsg_topic_subscribers(h_, topic.c_str(), p, cap, n);
            }), ec))
            ids.clear();
        return ids;
    }
    /** A user's open connections. */
    std::vector<ConnId> user_conn_ids(CStr user_id) const {
        std::vector<ConnId> ids;
        detail::check(ids_(ids, [&](wsg_conn_id *p, std::size_t cap, std::size_t *n) {
            return wsg_user_conn_ids(h_, user_id.c_str(), p, cap, n);
        }));
        return ids;
    }
    std::vector<ConnId> user_conn_ids(CStr user_id, std::error_code &ec) const {
        std::vector<ConnId> ids;
        if (!detail::check(ids_(ids, [&](wsg_conn_id *p, std::size_t cap, std::size_t *n) {
                return wsg_user_conn_ids(h_, user_id.c_str(), p, cap, n);
            }), ec))
            ids.clear();
        return ids;
    }
    /** Close every open connection of a user. @throws Error kENOTFOUND. */
    void user_close(CStr user_id, int code = close_code::kNORMAL, CStr reason = "") const {
        detail::check(wsg_user_close(h_, user_id.c_str(), code, reason.c_str()));
    }
    void user_close(CStr user_id, int code, CStr reason, std::error_code &ec) const noexcept {
        detail::check(wsg_user_close(h_, user_id.c_str(), code, reason.c_str()), ec);
    }

    /* ---- presence and session data (any thread; see "Asynchronous results") ----
     * With a ResultCallback: returns once the call is accepted; the callback
     * runs later, once. Without one: Blocks until the answer (never from a
     * handler: kEBUSY). The std::error_code forms set `ec` to the call's, the
     * wait's or the result's status; the result's message is then not in
     * last_error() (the C result owned it): use the throwing form, or the
     * callback form's Result::message(), to show it. */

    /** Every connection subscribed to `topic`, on every instance (this
     *  instance's alone without cluster.redis). @throws Error kEINVAL (bad
     *  topic), kESTATE (not running), kECLUSTER (Redis down: the local
     *  entries are in the error_code form's return value), kETIMEOUT, kEBUSY. */
    std::vector<Presence> topic_presence(CStr topic, std::chrono::milliseconds timeout = wait_forever) const {
        std::vector<Presence> out;
        detail::check(topic_presence_(topic, timeout, out));
        return out;
    }
    /** As topic_presence(topic, timeout); with ec == kECLUSTER the entries of
     *  this instance are still returned. */
    std::vector<Presence> topic_presence(CStr topic, std::chrono::milliseconds timeout,
                                         std::error_code &ec) const {
        std::vector<Presence> out;
        detail::check(topic_presence_(topic, timeout, out), ec);
        return out;
    }
    /** The callback form (wsg_topic_presence). */
    void topic_presence(CStr topic, ResultCallback fn) const {
        detail::check(topic_presence_(topic, std::move(fn)));
    }
    void topic_presence(CStr topic, ResultCallback fn, std::error_code &ec) const {
        detail::check(topic_presence_(topic, std::move(fn)), ec);
    }

    /** Every open connection of `user_id`, on every instance. Same rules as
     *  topic_presence. */
    std::vector<Presence> user_presence(CStr user_id, std::chrono::milliseconds timeout = wait_forever) const {
        std::vector<Presence> out;
        detail::check(user_presence_(user_id, timeout, out));
        return out;
    }
    std::vector<Presence> user_presence(CStr user_id, std::chrono::milliseconds timeout,
                                        std::error_code &ec) const {
        std::vector<Presence> out;
        detail::check(user_presence_(user_id, timeout, out), ec);
        return out;
    }
    /** The callback form (wsg_user_presence). */
    void user_presence(CStr user_id, ResultCallback fn) const {
        detail::check(user_presence_(user_id, std::move(fn)));
    }
    void user_presence(CStr user_id, ResultCallback fn, std::error_code &ec) const {
        detail::check(user_presence_(user_id, std::move(fn)), ec);
    }

    /** Store `value` (copied) under `key` (1..255 bytes) for `ttl`
     *  (0: cluster.session_ttl_ms), shared by every instance. @throws Error
     *  kEINVAL (bad key or ttl), kELIMIT (larger than
     *  cluster.session_max_bytes), kESTATE, kECLUSTER, kETIMEOUT, kEBUSY. */
    void session_set(CStr key, Bytes value, std::chrono::milliseconds ttl = std::chrono::milliseconds(0),
                     std::chrono::milliseconds timeout = wait_forever) const {
        detail::check(session_set_(key, value, ttl, timeout));
    }
    void session_set(CStr key, Bytes value, std::chrono::milliseconds ttl, std::chrono::milliseconds timeout,
                     std::error_code &ec) const {
        detail::check(session_set_(key, value, ttl, timeout), ec);
    }
    /** The callback form (wsg_session_set); an empty `fn` is told nothing. */
    void session_set(CStr key, Bytes value, std::chrono::milliseconds ttl, ResultCallback fn) const {
        detail::check(session_set_(key, value, ttl, std::move(fn)));
    }
    void session_set(CStr key, Bytes value, std::chrono::milliseconds ttl, ResultCallback fn,
                     std::error_code &ec) const {
        detail::check(session_set_(key, value, ttl, std::move(fn)), ec);
    }

    /** The value under `key` (a copy of its bytes); std::nullopt when absent
     *  or expired. @throws Error kEINVAL, kESTATE, kECLUSTER, kETIMEOUT, kEBUSY. */
    std::optional<std::string> session_get(CStr key, std::chrono::milliseconds timeout = wait_forever) const {
        std::optional<std::string> out;
        detail::check(session_get_(key, timeout, out));
        return out;
    }
    std::optional<std::string> session_get(CStr key, std::chrono::milliseconds timeout,
                                           std::error_code &ec) const {
        std::optional<std::string> out;
        if (!detail::check(session_get_(key, timeout, out), ec)) out.reset();
        return out;
    }
    /** The callback form (wsg_session_get; Result::value(), status
     *  kENOTFOUND when absent). `fn` must not be empty (kEINVAL). */
    void session_get(CStr key, ResultCallback fn) const {
        detail::check(session_get_(key, std::move(fn)));
    }
    void session_get(CStr key, ResultCallback fn, std::error_code &ec) const {
        detail::check(session_get_(key, std::move(fn)), ec);
    }

    /** Remove `key` (no error when it was absent). @throws Error kEINVAL,
     *  kESTATE, kECLUSTER, kETIMEOUT, kEBUSY. */
    void session_delete(CStr key, std::chrono::milliseconds timeout = wait_forever) const {
        detail::check(session_delete_(key, timeout));
    }
    void session_delete(CStr key, std::chrono::milliseconds timeout, std::error_code &ec) const {
        detail::check(session_delete_(key, timeout), ec);
    }
    /** The callback form (wsg_session_delete); an empty `fn` is told nothing. */
    void session_delete(CStr key, ResultCallback fn) const {
        detail::check(session_delete_(key, std::move(fn)));
    }
    void session_delete(CStr key, ResultCallback fn, std::error_code &ec) const {
        detail::check(session_delete_(key, std::move(fn)), ec);
    }

    /* ---- history and recovery (any thread; see "Asynchronous results") ---- */

    /** Subscribe `id` to a history topic (cluster.history_topics) and give it
     *  every message after `from` (std::nullopt: none from the past; the
     *  whole history with Position{}: a bare `{}` argument is std::nullopt),
     *  then the live ones: no gap, no duplicate (wsg_conn_subscribe_from).
     *  The subscription happens at once whatever the answer. Blocks until
     *  the answer (never from a handler: kEBUSY; use the callback form there,
     *  e.g. in on_open) and returns the position reached: the last message
     *  replayed, or the topic's current one. @throws Error kEGONE (`from`
     *  trimmed, of another epoch or ahead: nothing replayed, live messages
     *  only; resync the client your way), kECLUSTER (Redis down: live
     *  messages only), kENOTFOUND (stale id, or closed meanwhile), kEINVAL
     *  (bad topic, a topic without history, another instance's connection),
     *  kESTATE, kETIMEOUT, kEBUSY. */
    Position subscribe_from(ConnId id, CStr topic, std::optional<Position> from,
                            std::chrono::milliseconds timeout = wait_forever) const {
        Position out;
        detail::check(subscribe_from_(id, topic, from, timeout, out));
        return out;
    }
    /** As subscribe_from(id, topic, from, timeout); Position{} on failure. */
    Position subscribe_from(ConnId id, CStr topic, std::optional<Position> from, std::chrono::milliseconds timeout,
                            std::error_code &ec) const {
        Position out;
        if (!detail::check(subscribe_from_(id, topic, from, timeout, out), ec)) out = Position{};
        return out;
    }
    /** The callback form: Result::status() kOK with Result::position(), or
     *  kEGONE, kECLUSTER, kENOTFOUND, kESTATE as above. An empty `fn` is
     *  told nothing (subscribed all the same). */
    void subscribe_from(ConnId id, CStr topic, std::optional<Position> from, ResultCallback fn) const {
        detail::check(subscribe_from_(id, topic, from, std::move(fn)));
    }
    void subscribe_from(ConnId id, CStr topic, std::optional<Position> from, ResultCallback fn,
                        std::error_code &ec) const {
        detail::check(subscribe_from_(id, topic, from, std::move(fn)), ec);
    }

    /* ---- close-code advice ---- */

    /** Declare the advice for application codes first..last (3000..4999). */
    void set_close_advice(int first, int last, Reconnect advice) const {
        detail::check(wsg_server_set_close_advice(h_, first, last, static_cast<wsg_reconnect>(advice)));
    }
    void set_close_advice(int first, int last, Reconnect advice, std::error_code &ec) const noexcept {
        detail::check(wsg_server_set_close_advice(h_, first, last, static_cast<wsg_reconnect>(advice)), ec);
    }
    /** The advice for `code` on this server (its own ranges included). */
    Reconnect close_advice(int code) const noexcept {
        return static_cast<Reconnect>(wsg_close_code_advice(h_, code));
    }

protected:
    wsg_server *h_ = nullptr;

private:
    wsg_status add_page_(CStr path, CStr content_type, Bytes body) const noexcept {
        return wsg_server_add_page(h_, path.c_str(), content_type.c_str(), body.data(), body.size());
    }
    wsg_status send_(ConnId id, Message m) const noexcept {
        return wsg_conn_send(h_, id.value(), static_cast<wsg_msg_type>(m.type()), m.data(), m.size());
    }
    wsg_status broadcast_except_(ConnId except, Message m) const noexcept {
        return wsg_server_broadcast_except(h_, except.value(), static_cast<wsg_msg_type>(m.type()),
                                           m.data(), m.size());
    }
    wsg_status publish_(CStr topic, Message m) const noexcept {
        return wsg_server_publish(h_, topic.c_str(), static_cast<wsg_msg_type>(m.type()), m.data(),
                                  m.size());
    }
    wsg_status user_send_(CStr user_id, Message m) const noexcept {
        return wsg_user_send(h_, user_id.c_str(), static_cast<wsg_msg_type>(m.type()), m.data(),
                             m.size());
    }
    wsg_status send_many_(const std::vector<ConnId> &ids, Message m) const {
        std::vector<wsg_conn_id> raw;
        raw.reserve(ids.size());
        for (ConnId id : ids) raw.push_back(id.value());
        return wsg_conn_send_many(h_, raw.data(), raw.size(), static_cast<wsg_msg_type>(m.type()),
                                  m.data(), m.size());
    }
    wsg_status metrics_(std::string &text) const {
        std::size_t len = 0;
        wsg_status st = wsg_server_metrics(h_, nullptr, 0, &len);
        // The text may grow between two calls: retry with room to spare.
        while (st == WSG_OK) {
            text.resize(len + 1024);
            st = wsg_server_metrics(h_, &text[0], text.size(), &len);
            if (st == WSG_OK && len < text.size()) {
                text.resize(len);
                break;
            }
        }
        return st;
    }
    // Snapshot calls: count first, then retry while the set grew meanwhile.
    template <class Fetch>
    static wsg_status ids_(std::vector<ConnId> &out, Fetch fetch) {
        std::vector<wsg_conn_id> raw;
        std::size_t n = 0;
        wsg_status st = fetch(nullptr, 0, &n);
        while (st == WSG_OK && n > raw.size()) {
            raw.resize(n + 16);
            st = fetch(raw.data(), raw.size(), &n);
        }
        if (st != WSG_OK) return st;
        out.clear();
        out.reserve(n);
        for (std::size_t i = 0; i < n; i++) out.push_back(ConnId(raw[i]));
        return WSG_OK;
    }
    // Presence and session data: the C call with a result callback.
    wsg_status topic_presence_(CStr topic, ResultCallback &&fn) const {
        return detail::start_async("topic_presence", std::move(fn), [&](wsg_result_fn f, void *u) {
            return wsg_topic_presence(h_, topic.c_str(), f, u);
        });
    }
    wsg_status user_presence_(CStr user_id, ResultCallback &&fn) const {
        return detail::start_async("user_presence", std::move(fn), [&](wsg_result_fn f, void *u) {
            return wsg_user_presence(h_, user_id.c_str(), f, u);
        });
    }
    wsg_status session_set_(CStr key, Bytes value, std::chrono::milliseconds ttl, ResultCallback &&fn) const {
        return detail::start_async("session_set", std::move(fn), [&](wsg_result_fn f, void *u) {
            return wsg_session_set(h_, key.c_str(), value.data(), value.size(),
                                   static_cast<std::int64_t>(ttl.count()), f, u);
        });
    }
    wsg_status session_get_(CStr key, ResultCallback &&fn) const {
        return detail::start_async("session_get", std::move(fn), [&](wsg_result_fn f, void *u) {
            return wsg_session_get(h_, key.c_str(), f, u);
        });
    }
    wsg_status session_delete_(CStr key, ResultCallback &&fn) const {
        return detail::start_async("session_delete", std::move(fn), [&](wsg_result_fn f, void *u) {
            return wsg_session_delete(h_, key.c_str(), f, u);
        });
    }
    wsg_status subscribe_from_(ConnId id, CStr topic, const std::optional<Position> &from,
                               ResultCallback &&fn) const {
        const wsg_position p = from ? from->c_value() : wsg_position{0, 0};
        return detail::start_async("subscribe_from", std::move(fn), [&](wsg_result_fn f, void *u) {
            return wsg_conn_subscribe_from(h_, id.value(), topic.c_str(), from ? &p : nullptr, f, u);
        });
    }
    // The same, waited for.
    detail::Waited topic_presence_(CStr topic, std::chrono::milliseconds timeout,
                                   std::vector<Presence> &out) const {
        return detail::wait_for([&](wsg_result_fn f, void *u) { return wsg_topic_presence(h_, topic.c_str(), f, u); },
                                timeout, [&](const Result &r) { out = r.presence(); });
    }
    detail::Waited user_presence_(CStr user_id, std::chrono::milliseconds timeout,
                                  std::vector<Presence> &out) const {
        return detail::wait_for([&](wsg_result_fn f, void *u) { return wsg_user_presence(h_, user_id.c_str(), f, u); },
                                timeout, [&](const Result &r) { out = r.presence(); });
    }
    detail::Waited session_set_(CStr key, Bytes value, std::chrono::milliseconds ttl,
                                std::chrono::milliseconds timeout) const {
        return detail::wait_for(
            [&](wsg_result_fn f, void *u) {
                return wsg_session_set(h_, key.c_str(), value.data(), value.size(),
                                       static_cast<std::int64_t>(ttl.count()), f, u);
            },
            timeout, [](const Result &) {});
    }
    detail::Waited session_get_(CStr key, std::chrono::milliseconds timeout,
                                std::optional<std::string> &out) const {
        detail::Waited w = detail::wait_for(
            [&](wsg_result_fn f, void *u) { return wsg_session_get(h_, key.c_str(), f, u); }, timeout,
            [&](const Result &r) {
                if (auto v = r.value()) out = v->to_string();
            });
        if (w.st == WSG_ENOTFOUND) w = detail::Waited{};  // absent: nullopt, not an error
        return w;
    }
    detail::Waited subscribe_from_(ConnId id, CStr topic, const std::optional<Position> &from,
                                   std::chrono::milliseconds timeout, Position &out) const {
        const wsg_position p = from ? from->c_value() : wsg_position{0, 0};
        return detail::wait_for(
            [&](wsg_result_fn f, void *u) {
                return wsg_conn_subscribe_from(h_, id.value(), topic.c_str(), from ? &p : nullptr, f, u);
            },
            timeout, [&](const Result &r) {
                if (auto pos = r.position()) out = *pos;
            });
    }
    detail::Waited session_delete_(CStr key, std::chrono::milliseconds timeout) const {
        return detail::wait_for([&](wsg_result_fn f, void *u) { return wsg_session_delete(h_, key.c_str(), f, u); },
                                timeout, [](const Result &) {});
    }
    wsg_status info_(ConnId id, ConnInfo &out) const {
        wsg_conn_info *raw = nullptr;
        wsg_status st = wsg_conn_info_get(h_, id.value(), &raw);
        if (st != WSG_OK) return st;
        std::unique_ptr<wsg_conn_info, void (*)(wsg_conn_info *)> info(raw, wsg_conn_info_free);
        auto str = [&](wsg_info_key k, std::string &to) {
            const char *v = nullptr;
            if (st == WSG_OK) st = wsg_conn_info_string(info.get(), k, &v);
            if (st == WSG_OK && v) to = v;
        };
        auto num = [&](wsg_info_key k) -> std::int64_t {
            std::int64_t v = 0;
            if (st == WSG_OK) st = wsg_conn_info_int(info.get(), k, &v);
            return v;
        };
        out.id = ConnId(static_cast<wsg_conn_id>(num(WSG_INFO_ID)));
        str(WSG_INFO_PEER_ADDR, out.peer_addr);
        out.peer_port = static_cast<int>(num(WSG_INFO_PEER_PORT));
        str(WSG_INFO_PATH, out.path);
        str(WSG_INFO_QUERY, out.query);
        str(WSG_INFO_ORIGIN, out.origin);
        str(WSG_INFO_SUBPROTOCOL, out.subprotocol);
        out.connected_at_ms = num(WSG_INFO_CONNECTED_AT_MS);
        out.duration_ms = num(WSG_INFO_DURATION_MS);
        out.messages_in = num(WSG_INFO_MESSAGES_IN);
        out.bytes_in = num(WSG_INFO_BYTES_IN);
        out.messages_out = num(WSG_INFO_MESSAGES_OUT);
        out.bytes_out = num(WSG_INFO_BYTES_OUT);
        out.rtt_us = num(WSG_INFO_RTT_US);
        str(WSG_INFO_TLS_SUBJECT, out.tls_subject);
        str(WSG_INFO_USER_ID, out.user_id);
        str(WSG_INFO_CLAIMS, out.claims);
        out.compression = num(WSG_INFO_COMPRESSION) != 0;
        out.queued_bytes = num(WSG_INFO_QUEUED_BYTES);
        out.messages_dropped = num(WSG_INFO_MESSAGES_DROPPED);
        out.queue_policy = static_cast<QueuePolicy>(num(WSG_INFO_QUEUE_POLICY));
        std::size_t topics = 0;
        if (st == WSG_OK) st = wsg_conn_info_topic_count(info.get(), &topics);
        for (std::size_t i = 0; st == WSG_OK && i < topics; i++) {
            const char *t = nullptr;
            st = wsg_conn_info_topic(info.get(), i, &t);
            if (st == WSG_OK) out.topics.emplace_back(t ? t : "");
        }
        return st;
    }
};

namespace detail {
/* The result callback's trampoline: runs the callable once and frees it. */
inline void result_tramp(wsg_server *s, const wsg_result *r, void *user) noexcept {
    std::unique_ptr<ResultSlot> slot(static_cast<ResultSlot *>(user));
    HandlerScope scope;
#if WSGATE_HPP_EXCEPTIONS
    try {
        slot->fn(ServerRef(s), Result(r));
    } catch (...) {
        const char *what = "unknown exception";
        try {
            throw;
        } catch (const std::exception &e) {
            what = e.what();
        } catch (...) {
        }
        std::fprintf(stderr, "wsgate: the C++ %s callback threw (%s)\n", slot->call, what);
    }
#else
    slot->fn(ServerRef(s), Result(r));
#endif
}
}  // namespace detail

/* ------------------------------------------------------------------ */
/* Server: owns a wsg_server and its handlers                          */
/* ------------------------------------------------------------------ */

/** What a throwing handler left behind, for Server::on_error. */
struct HandlerError {
    const char *handler;          /**< "on_open", "on_message", "on_close", "on_log", "on_drain", "on_auth", "on_history" */
    ConnId conn;                  /**< the connection it was about; ConnId{} for on_log, on_auth and on_history */
    const char *what;             /**< what() of a std::exception, else "unknown exception" */
    std::exception_ptr exception; /**< the exception itself (rethrow it to inspect it) */
};

namespace detail {
/* Shared by a Server and each of its handler registrations: the error
 * handler outlives a moved Server and is freed with the last registration. */
struct ServerShared {
    std::function<void(ServerRef, const HandlerError &)> on_error;
};

/* A handler argument: nullptr, or callable with these arguments. */
template <class F, class... Args>
struct handler_ok
    : std::bool_constant<std::is_same_v<std::decay_t<F>, std::nullptr_t> ||
                         std::is_invocable_v<std::decay_t<F> &, Args...>> {};

template <class F>
struct is_std_function : std::false_type {};
template <class Sig>
struct is_std_function<std::function<Sig>> : std::true_type {};

template <class F>
struct Slot {
    F fn;
    std::shared_ptr<ServerShared> shared;
};

template <class F>
void free_slot(void *user) noexcept {
    delete static_cast<Slot<F> *>(user);
}

#if WSGATE_HPP_EXCEPTIONS
/* Runs in a catch block: report, then close the connection the failed
 * handler was about (its state in the application is unknown). Never throws. */
inline void handler_failed(const ServerShared *shared, wsg_server *server, const char *handler,
                           ConnId conn, bool close_conn) noexcept {
    std::exception_ptr ep = std::current_exception();
    const char *what = "unknown exception";
    try {
        std::rethrow_exception(ep);
    } catch (const std::exception &e) {
        what = e.what();
    } catch (...) {
    }
    bool reported = false;
    if (shared && shared->on_error) {
        try {
            shared->on_error(ServerRef(server), HandlerError{handler, conn, what, ep});
            reported = true;
        } catch (...) {
        }
    }
    if (!reported)
        std::fprintf(stderr, "wsgate: the C++ %s handler threw (%s)%s\n", handler, what,
                     close_conn ? ": connection closed with 1011" : "");
    if (close_conn && conn) wsg_conn_close(server, conn.value(), close_code::kINTERNAL_ERROR, "internal error");
}
#endif

/* Calls a handler; nothing it throws leaves this function. False when it threw. */
template <class F, class Body>
bool guarded(void *user, wsg_server *server, const char *handler, ConnId conn, bool close_conn,
             Body &&body) noexcept {
    auto *slot = static_cast<Slot<F> *>(user);
    HandlerScope scope;  // the blocking helpers refuse to wait here
#if WSGATE_HPP_EXCEPTIONS
    try {
        body(slot->fn);
        return true;
    } catch (...) {
        handler_failed(slot->shared.get(), server, handler, conn, close_conn);
        return false;
    }
#else
    (void)server;
    (void)handler;
    (void)conn;
    (void)close_conn;
    body(slot->fn);
    return true;
#endif
}

template <class F>
void open_tramp(wsg_server *s, wsg_conn_id id, void *user) noexcept {
    guarded<F>(user, s, "on_open", ConnId(id), true,
               [&](F &fn) { std::invoke(fn, ServerRef(s), ConnId(id)); });
}
template <class F>
void message_tramp(wsg_server *s, wsg_conn_id id, wsg_msg_type type, const void *data,
                   std::size_t len, void *user) noexcept {
    guarded<F>(user, s, "on_message", ConnId(id), true, [&](F &fn) {
        std::invoke(fn, ServerRef(s), ConnId(id), Message(static_cast<MsgType>(type), Bytes(data, len)));
    });
}
template <class F>
void close_tramp(wsg_server *s, wsg_conn_id id, int code, const char *reason, std::size_t reason_len,
                 wsg_close_cause cause, void *user) noexcept {
    guarded<F>(user, s, "on_close", ConnId(id), false, [&](F &fn) {
        std::invoke(fn, ServerRef(s), ConnId(id),
                    CloseEvent{code, std::string_view(reason, reason_len), static_cast<CloseCause>(cause)});
    });
}
template <class F>
void log_tramp(wsg_server *s, wsg_log_level level, const char *event, const char *json,
               std::size_t json_len, void *user) noexcept {
    guarded<F>(user, s, "on_log", ConnId(), false, [&](F &fn) {
        std::invoke(fn, ServerRef(s),
                    LogEvent{static_cast<LogLevel>(level), std::string_view(event),
                             std::string_view(json, json_len)});
    });
}
template <class F>
void drain_tramp(wsg_server *s, wsg_conn_id id, std::size_t queued, void *user) noexcept {
    guarded<F>(user, s, "on_drain", ConnId(id), true,
               [&](F &fn) { std::invoke(fn, ServerRef(s), ConnId(id), queued); });
}
template <class F>
void auth_tramp(wsg_server *s, wsg_auth_request *req, void *user) noexcept {
    AuthRequest r(req);
    // A handler that threw may have accepted first: its failure refuses.
    if (!guarded<F>(user, s, "on_auth", ConnId(), false, [&](F &fn) { std::invoke(fn, ServerRef(s), r); }))
        wsg_auth_refuse(req, 401, "the C++ authenticator threw");
}

template <class F>
void history_tramp(wsg_server *s, const char *topic, const wsg_position *pos, wsg_history_message *msg,
                   void *user) noexcept {
    // A hook that threw is reported; its message goes as it stands (as
    // published, or as set before the throw): there is no connection to close.
    guarded<F>(user, s, "on_history", ConnId(), false, [&](F &fn) {
        const Position p = pos ? Position::from_c(*pos) : Position{};
        HistoryMessage m(msg);
        std::invoke(fn, std::string_view(topic ? topic : ""), p, m);
    });
}

/* One per handler kind: the C registration call and the trampoline for a
 * callable type D (instantiated only for a real callable, not nullptr). */
#define WSGATE_HPP_KIND_(Kind, cfn, regfn, trampfn)                  \
    struct Kind {                                                   \
        static constexpr auto reg = regfn;                          \
        template <class D>                                          \
        static cfn tramp() noexcept { return &trampfn<D>; }         \
    };
WSGATE_HPP_KIND_(OpenKind, wsg_open_fn, wsg_server_on_open, open_tramp)
WSGATE_HPP_KIND_(MessageKind, wsg_message_fn, wsg_server_on_message, message_tramp)
WSGATE_HPP_KIND_(CloseKind, wsg_close_fn, wsg_server_on_close, close_tramp)
WSGATE_HPP_KIND_(LogKind, wsg_log_fn, wsg_server_on_log, log_tramp)
WSGATE_HPP_KIND_(DrainKind, wsg_drain_fn, wsg_server_on_drain, drain_tramp)
WSGATE_HPP_KIND_(AuthKind, wsg_auth_fn, wsg_server_on_auth, auth_tramp)
WSGATE_HPP_KIND_(HistoryKind, wsg_history_fn, wsg_server_on_history, history_tramp)
#undef WSGATE_HPP_KIND_
}  // namespace detail

/** A WebSocket server (wsg_server) and the handlers registered on it.
 *  Move-only; a moved-from or default-constructed Server is empty: calls on
 *  it fail with kEINVAL and its destructor does nothing. The destructor
 *  stops the server (graceful, Blocks: never from a handler) and frees it,
 *  and with it every handler. All of ServerRef's calls are available. */
class Server : public ServerRef {
public:
    /** An empty server (no C server behind it). */
    Server() noexcept = default;
    /** A server with `config` (copied). Nothing is bound yet.
     *  @throws Error kEINVAL (inconsistent options), kETLS, kENOMEM. */
    explicit Server(const Config &config) {
        // An empty (moved-from) Config would mean "all defaults" to the C call.
        if (!config) detail::fail(Status::kEINVAL, "config is empty (moved from)");
        shared_ = std::make_shared<detail::ServerShared>();
        detail::check(wsg_server_new(&h_, config.handle()));
    }
    /** As Server(config); `ec` instead of throwing Error (empty on failure). */
    Server(const Config &config, std::error_code &ec) {
        if (!config) {
            ec = make_error_code(Status::kEINVAL);
            return;
        }
        shared_ = std::make_shared<detail::ServerShared>();
        detail::check(wsg_server_new(&h_, config.handle()), ec);
    }
    Server(const Server &) = delete;
    Server &operator=(const Server &) = delete;
    Server(Server &&other) noexcept
        : ServerRef(std::exchange(other.h_, nullptr)), shared_(std::move(other.shared_)) {}
    Server &operator=(Server &&other) noexcept {
        if (this != &other) {
            wsg_server_free(h_);
            h_ = std::exchange(other.h_, nullptr);
            shared_ = std::move(other.shared_);
        }
        return *this;
    }
    /** Stops (gracefully) and frees the server and its handlers. Blocks. */
    ~Server() { wsg_server_free(h_); }

    /* Handlers: any callable, copied or moved into the registration. Register
     * before the server listens (kESTATE after). A callable that tests false
     * (nullptr, an empty std::function, a null function pointer)
     * unregisters. A replaced handler is destroyed at once. Signatures:
     *   on_open(ServerRef, ConnId)
     *   on_message(ServerRef, ConnId, Message)   payload valid until it returns
     *   on_close(ServerRef, ConnId, const CloseEvent &)
     *   on_log(ServerRef, const LogEvent &)      replaces the JSON lines on stderr
     *   on_drain(ServerRef, ConnId, std::size_t queued_bytes)
     *   on_auth(ServerRef, AuthRequest &)        with auth.mode callback or jwt+callback
     *   on_history(std::string_view topic, const Position &, HistoryMessage &)
     *                                            a history message before this instance's
     *                                            subscribers get it (see on_history)
     * What happens when one throws: see the top of this file. */

    template <class F>
    void on_open(F &&f) {
        static_assert(detail::handler_ok<F, ServerRef, ConnId>::value,
                      "on_open takes a callable as (wsgate::ServerRef, wsgate::ConnId), or nullptr");
        detail::check(reg_<detail::OpenKind>(std::forward<F>(f)));
    }
    template <class F>
    void on_open(F &&f, std::error_code &ec) {
        static_assert(detail::handler_ok<F, ServerRef, ConnId>::value,
                      "on_open takes a callable as (wsgate::ServerRef, wsgate::ConnId), or nullptr");
        detail::check(reg_<detail::OpenKind>(std::forward<F>(f)), ec);
    }
    template <class F>
    void on_message(F &&f) {
        static_assert(detail::handler_ok<F, ServerRef, ConnId, Message>::value,
                      "on_message takes a callable as (wsgate::ServerRef, wsgate::ConnId, wsgate::Message), or nullptr");
        detail::check(reg_<detail::MessageKind>(std::forward<F>(f)));
    }
    template <class F>
    void on_message(F &&f, std::error_code &ec) {
        static_assert(detail::handler_ok<F, ServerRef, ConnId, Message>::value,
                      "on_message takes a callable as (wsgate::ServerRef, wsgate::ConnId, wsgate::Message), or nullptr");
        detail::check(reg_<detail::MessageKind>(std::forward<F>(f)), ec);
    }
    template <class F>
    void on_close(F &&f) {
        static_assert(detail::handler_ok<F, ServerRef, ConnId, const CloseEvent &>::value,
                      "on_close takes a callable as (wsgate::ServerRef, wsgate::ConnId, const wsgate::CloseEvent &), or nullptr");
        detail::check(reg_<detail::CloseKind>(std::forward<F>(f)));
    }
    template <class F>
    void on_close(F &&f, std::error_code &ec) {
        static_assert(detail::handler_ok<F, ServerRef, ConnId, const CloseEvent &>::value,
                      "on_close takes a callable as (wsgate::ServerRef, wsgate::ConnId, const wsgate::CloseEvent &), or nullptr");
        detail::check(reg_<detail::CloseKind>(std::forward<F>(f)), ec);
    }
    template <class F>
    void on_log(F &&f) {
        static_assert(detail::handler_ok<F, ServerRef, const LogEvent &>::value,
                      "on_log takes a callable as (wsgate::ServerRef, const wsgate::LogEvent &), or nullptr");
        detail::check(reg_<detail::LogKind>(std::forward<F>(f)));
    }
    template <class F>
    void on_log(F &&f, std::error_code &ec) {
        static_assert(detail::handler_ok<F, ServerRef, const LogEvent &>::value,
                      "on_log takes a callable as (wsgate::ServerRef, const wsgate::LogEvent &), or nullptr");
        detail::check(reg_<detail::LogKind>(std::forward<F>(f)), ec);
    }
    template <class F>
    void on_drain(F &&f) {
        static_assert(detail::handler_ok<F, ServerRef, ConnId, std::size_t>::value,
                      "on_drain takes a callable as (wsgate::ServerRef, wsgate::ConnId, std::size_t), or nullptr");
        detail::check(reg_<detail::DrainKind>(std::forward<F>(f)));
    }
    template <class F>
    void on_drain(F &&f, std::error_code &ec) {
        static_assert(detail::handler_ok<F, ServerRef, ConnId, std::size_t>::value,
                      "on_drain takes a callable as (wsgate::ServerRef, wsgate::ConnId, std::size_t), or nullptr");
        detail::check(reg_<detail::DrainKind>(std::forward<F>(f)), ec);
    }
    template <class F>
    void on_auth(F &&f) {
        static_assert(detail::handler_ok<F, ServerRef, AuthRequest &>::value,
                      "on_auth takes a callable as (wsgate::ServerRef, wsgate::AuthRequest &), or nullptr");
        detail::check(reg_<detail::AuthKind>(std::forward<F>(f)));
    }
    template <class F>
    void on_auth(F &&f, std::error_code &ec) {
        static_assert(detail::handler_ok<F, ServerRef, AuthRequest &>::value,
                      "on_auth takes a callable as (wsgate::ServerRef, wsgate::AuthRequest &), or nullptr");
        detail::check(reg_<detail::AuthKind>(std::forward<F>(f)), ec);
    }

    /** The history hook (wsg_server_on_history): sees a message of a history
     *  topic with its position (Position{} for a publish kept while Redis is
     *  down) before this instance's subscribers get it, and may replace what
     *  they get (HistoryMessage::set), e.g. to embed the position for the
     *  client. It runs once per live message, and again for each connection
     *  a message is replayed to (subscribe_from): shape the same message the
     *  same way. It must not publish to history topics. Service thread, must
     *  not block (blocking calls throw kEBUSY there). A throwing hook is
     *  reported like the other handlers (no connection is closed) and the
     *  message goes as it stands. */
    template <class F>
    void on_history(F &&f) {
        static_assert(detail::handler_ok<F, std::string_view, const Position &, HistoryMessage &>::value,
                      "on_history takes a callable as (std::string_view, const wsgate::Position &, wsgate::HistoryMessage &), or nullptr");
        detail::check(reg_<detail::HistoryKind>(std::forward<F>(f)));
    }
    template <class F>
    void on_history(F &&f, std::error_code &ec) {
        static_assert(detail::handler_ok<F, std::string_view, const Position &, HistoryMessage &>::value,
                      "on_history takes a callable as (std::string_view, const wsgate::Position &, wsgate::HistoryMessage &), or nullptr");
        detail::check(reg_<detail::HistoryKind>(std::forward<F>(f)), ec);
    }

    /** Where exceptions from the other handlers go, on the service thread:
     *  `f(ServerRef, const HandlerError &)`; without one, a line on stderr.
     *  What it throws is swallowed (then the stderr line is written). Set it
     *  before the server listens, like the handlers.
     *  @throws Error kESTATE (listening), kEINVAL (empty server). */
    void on_error(std::function<void(ServerRef, const HandlerError &)> f) {
        Status s = error_state_();
        if (s != Status::kOK) detail::fail(s, error_state_message_(s));
        shared_->on_error = std::move(f);
    }
    void on_error(std::function<void(ServerRef, const HandlerError &)> f, std::error_code &ec) {
        Status s = error_state_();
        if (s != Status::kOK) {
            ec = make_error_code(s);
            return;
        }
        ec.clear();
        shared_->on_error = std::move(f);
    }

private:
    template <class Kind, class F>
    wsg_status reg_(F &&f) {
        using D = std::decay_t<F>;
        if constexpr (std::is_same_v<D, std::nullptr_t>) {
            return Kind::reg(h_, nullptr, nullptr, nullptr);
        } else {
            if constexpr (std::is_pointer_v<D> || std::is_member_pointer_v<D> ||
                          detail::is_std_function<D>::value) {
                const D &probe = f;
                if (!probe) return Kind::reg(h_, nullptr, nullptr, nullptr);
            }
            auto *slot = new detail::Slot<D>{D(std::forward<F>(f)), shared_};
            wsg_status st = Kind::reg(h_, Kind::template tramp<D>(), slot, &detail::free_slot<D>);
            if (st != WSG_OK) delete slot;  // the C library took it only on success
            return st;
        }
    }
    Status error_state_() const noexcept {
        if (!h_ || !shared_) return Status::kEINVAL;
        int port = 0;
        return wsg_server_port(h_, &port) == WSG_OK ? Status::kESTATE : Status::kOK;
    }
    static const char *error_state_message_(Status s) noexcept {
        return s == Status::kEINVAL ? "server is empty (default-constructed or moved from)"
                                    : "on_error can only be set before the server listens";
    }

    std::shared_ptr<detail::ServerShared> shared_;
};

}  // namespace wsgate

namespace std {
template <>
struct hash<wsgate::ConnId> {
    std::size_t operator()(wsgate::ConnId id) const noexcept { return hash<wsg_conn_id>()(id.value()); }
};
}  // namespace std

#endif /* WSGATE_WSGATE_HPP */
