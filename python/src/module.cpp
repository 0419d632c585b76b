// wsgate._core: the pybind11 glue between Python and wsgate's C ABI.
//
// Only include/wsgate/wsgate.h is used: this module links libwsgate like any
// C program would. Everything Pythonic lives in the pure-Python package
// (python/wsgate/); this file only moves values across and gets the GIL
// right:
//  - every call that can block (listen, start, stop, free, close, large
//    sends) releases the GIL;
//  - callbacks take the GIL on the service thread; once the interpreter is
//    finalising (or the package's atexit hook ran) they never try to;
//  - Python objects held here are released with the GIL held;
//  - the holder's destructor releases the GIL before wsg_server_free joins
//    the service thread (pybind11 2.10 has no
//    release_gil_before_calling_cpp_dtor).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <wsgate/wsgate.h>

namespace py = pybind11;

namespace {

// ------------------------------------------------------------------ interpreter state

// Set by _core._python_exiting() from the package's atexit hook: from then on
// callbacks do not enter Python at all.
std::atomic<bool> g_exiting{false};
PyInterpreterState *g_interp = nullptr;

bool python_gone() {
    if (g_exiting.load(std::memory_order_acquire)) return true;
#if PY_VERSION_HEX >= 0x030D0000
    return Py_IsFinalizing() != 0;
#else
    return _Py_IsFinalizing() != 0;
#endif
}

// A thread that is not Python's (a service thread) gets one Python thread
// state for its whole life instead of one per callback (which
// PyGILState_Ensure would create and destroy every time). The state is
// deleted when the thread exits, unless Python is gone by then (leaked).
struct ThreadState {
    PyThreadState *ts = nullptr;
    ~ThreadState() {
        if (!ts || python_gone()) return;
        PyEval_RestoreThread(ts);
        PyThreadState_Clear(ts);
        PyThreadState_DeleteCurrent();
    }
};
thread_local ThreadState t_state;

// Takes the GIL in a callback. Callers check python_gone() first.
class CallbackGil {
public:
    CallbackGil() {
        if (!t_state.ts && !PyGILState_GetThisThreadState()) {
            // Registers itself as this thread's state (gilstate_counter 1), so
            // the Ensure/Release pairs below never delete it.
            t_state.ts = PyThreadState_New(g_interp);
            if (t_state.ts->gilstate_counter < 1) t_state.ts->gilstate_counter = 1;
        }
        st_ = PyGILState_Ensure();
    }
    ~CallbackGil() { PyGILState_Release(st_); }
    CallbackGil(const CallbackGil &) = delete;
    CallbackGil &operator=(const CallbackGil &) = delete;

private:
    PyGILState_STATE st_;
};

// Threads the core creates inherit the creating thread's signal mask. With
// asynchronous signals blocked there, SIGINT and SIGTERM reach Python's
// threads (where Python's handlers turn them into KeyboardInterrupt) instead
// of interrupting the service loop.
class BlockSignals {
public:
    BlockSignals() {
        sigset_t all;
        sigfillset(&all);
        for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP})
            sigdelset(&all, sig);
        pthread_sigmask(SIG_BLOCK, &all, &old_);
    }
    ~BlockSignals() { pthread_sigmask(SIG_SETMASK, &old_, nullptr); }
    BlockSignals(const BlockSignals &) = delete;
    BlockSignals &operator=(const BlockSignals &) = delete;

private:
    sigset_t old_;
};

// ------------------------------------------------------------------ errors

// status -> exception class, filled by the package (_core._set_error_classes).
// Deliberately never released: it lives as long as the process.
PyObject *g_error_classes = nullptr;

[[noreturn]] void raise_status(int status, const std::string &message) {
    PyObject *cls = nullptr;
    if (g_error_classes) {
        py::int_ key(status);
        cls = PyDict_GetItem(g_error_classes, key.ptr());  // borrowed
        if (!cls) cls = PyDict_GetItem(g_error_classes, Py_None);
    }
    if (!cls) {
        PyErr_SetString(PyExc_RuntimeError,
                        (std::string(wsg_status_str(static_cast<wsg_status>(status))) + ": " +
                         message)
                            .c_str());
        throw py::error_already_set();
    }
    py::object exc = py::reinterpret_borrow<py::object>(cls)(py::str(message), status);
    PyErr_SetObject(cls, exc.ptr());
    throw py::error_already_set();
}

// Raises for a failed call. wsg_last_error() is read at once: it is only
// valid until the next wsgate call on this thread.
inline void check(wsg_status st) {
    if (st != WSG_OK) raise_status(static_cast<int>(st), wsg_last_error());
}

// A status and its message captured while the GIL was released.
struct Outcome {
    wsg_status st = WSG_OK;
    std::string msg;
    void capture(wsg_status s) {
        st = s;
        if (s != WSG_OK) msg = wsg_last_error();
    }
    void raise_if_failed() const {
        if (st != WSG_OK) raise_status(static_cast<int>(st), msg);
    }
};

// Reports an exception that escaped a callback; the server keeps serving.
void report_unraisable(const char *where) {
    if (PyErr_Occurred()) {
        py::error_already_set e;
        e.discard_as_unraisable(where);
    }
}

// ------------------------------------------------------------------ messages

// Payloads above this size are copied by the core with the GIL released.
constexpr size_t kReleaseGilBytes = 64 * 1024;

// A message to send: str is text (UTF-8), anything bytes-like is binary.
// Keeps the Python object (or its buffer) alive and unchanged while in use.
class Payload {
public:
    explicit Payload(py::handle obj) {
        if (PyUnicode_Check(obj.ptr())) {
            Py_ssize_t n = 0;
            data_ = PyUnicode_AsUTF8AndSize(obj.ptr(), &n);
            if (!data_) throw py::error_already_set();
            len_ = static_cast<size_t>(n);
            type_ = WSG_MSG_TEXT;
        } else if (PyBytes_Check(obj.ptr())) {
            data_ = PyBytes_AS_STRING(obj.ptr());
            len_ = static_cast<size_t>(PyBytes_GET_SIZE(obj.ptr()));
            type_ = WSG_MSG_BINARY;
        } else if (PyObject_CheckBuffer(obj.ptr())) {
            if (PyObject_GetBuffer(obj.ptr(), &view_, PyBUF_SIMPLE) != 0)
                throw py::error_already_set();
            has_view_ = true;
            data_ = static_cast<const char *>(view_.buf);
            len_ = static_cast<size_t>(view_.len);
            type_ = WSG_MSG_BINARY;
        } else {
            throw py::type_error(std::string("a message must be str (text) or bytes-like "
                                             "(binary), not ") +
                                 Py_TYPE(obj.ptr())->tp_name);
        }
    }
    ~Payload() {
        if (has_view_) PyBuffer_Release(&view_);
    }
    Payload(const Payload &) = delete;
    Payload &operator=(const Payload &) = delete;

    wsg_msg_type type() const { return type_; }
    const char *data() const { return data_; }
    size_t size() const { return len_; }
    bool large() const { return len_ >= kReleaseGilBytes; }

private:
    const char *data_ = nullptr;
    size_t len_ = 0;
    wsg_msg_type type_ = WSG_MSG_BINARY;
    Py_buffer view_{};
    bool has_view_ = false;
};

// ------------------------------------------------------------------ config

class Config {
public:
    Config() { check(wsg_config_new(&cfg_)); }
    Config(const Config &other) { check(wsg_config_copy(&cfg_, other.cfg_)); }
    Config &operator=(const Config &) = delete;
    ~Config() { wsg_config_free(cfg_); }

    const wsg_config *raw() const { return cfg_; }

    // Sets one option. The core validates everything and writes the message:
    // ints go to set_int, bools to set_bool, text through the core's
    // "key=value" parser (so "8080" works for an int option, as on a command
    // line), string and enum options take text as is.
    void set(const std::string &key, py::handle value) {
        if (key.find('\0') != std::string::npos)
            raise_status(WSG_EINVAL, "option key contains a NUL character");
        std::string type = option_type(key);
        if (PyBool_Check(value.ptr())) {
            // On a non-bool option the core names the option's real type.
            check(wsg_config_set_bool(cfg_, key.c_str(), value.ptr() == Py_True));
        } else if (PyLong_Check(value.ptr())) {
            int overflow = 0;
            long long v = PyLong_AsLongLongAndOverflow(value.ptr(), &overflow);
            if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
            if (overflow || type == "bool") {
                // The parser gives the core's own message for either case.
                std::string text = py::str(value);
                check(wsg_config_set_from_string(cfg_, (key + "=" + text).c_str()));
            } else {
                check(wsg_config_set_int(cfg_, key.c_str(), static_cast<int64_t>(v)));
            }
        } else if (PyUnicode_Check(value.ptr())) {
            std::string text = value.cast<std::string>();
            if (text.find('\0') != std::string::npos)
                raise_status(WSG_EINVAL, "option '" + key + "': value contains a NUL character");
            if (type == "string" || type == "enum")
                check(wsg_config_set_string(cfg_, key.c_str(), text.c_str()));
            else
                check(wsg_config_set_from_string(cfg_, (key + "=" + text).c_str()));
        } else {
            throw py::type_error("option '" + key + "': value must be int, bool or str, not " +
                                 Py_TYPE(value.ptr())->tp_name);
        }
    }

    void set_from_string(const std::string &assignment) {
        if (assignment.find('\0') != std::string::npos)
            raise_status(WSG_EINVAL, "assignment contains a NUL character");
        check(wsg_config_set_from_string(cfg_, assignment.c_str()));
    }

    py::object get(const std::string &key) const {
        std::string type = option_type(key);
        if (type == "bool") {
            int v = 0;
            check(wsg_config_get_bool(cfg_, key.c_str(), &v));
            return py::bool_(v != 0);
        }
        if (type == "string" || type == "enum") {
            const char *v = nullptr;
            check(wsg_config_get_string(cfg_, key.c_str(), &v));
            return py::str(v);
        }
        // int, or unknown: the core reports an unknown key.
        int64_t v = 0;
        check(wsg_config_get_int(cfg_, key.c_str(), &v));
        return py::int_(v);
    }

    // The option's type from the table, "" when the core does not know it.
    static std::string option_type(const std::string &key) {
        size_t index = 0;
        if (wsg_option_find(key.c_str(), &index) != WSG_OK) return "";
        const char *t = "";
        if (wsg_option_describe(index, WSG_OPTION_TYPE, &t) != WSG_OK) return "";
        return t;
    }

private:
    wsg_config *cfg_ = nullptr;
};

// ------------------------------------------------------------------ server

// What the C callbacks reach through their user pointer. It outlives the
// Python object when the server is freed on another thread, so it is
// reference counted: one reference for the Server object, one per C
// registration (dropped by user_free when the core lets go).
struct Hub {
    std::atomic<int> refs{1};
    // False once the Python object is gone: callbacks return at once.
    std::atomic<bool> live{true};
    // Cheap checks before taking the GIL.
    std::atomic<bool> want_open{false}, want_message{false}, want_close{false}, want_log{false},
        want_auth{false}, want_drain{false}, want_history{false};
    // Guarded by the GIL.
    py::object on_open, on_message, on_close, on_log, on_auth, on_drain, on_history;

    void ref() { refs.fetch_add(1, std::memory_order_relaxed); }
    static void unref(void *p) {
        auto *h = static_cast<Hub *>(p);
        if (h->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            // The Python objects were released (under the GIL) before the
            // last reference could go; nothing here needs Python.
            for (py::object *o : {&h->on_open, &h->on_message, &h->on_close, &h->on_log,
                                  &h->on_auth, &h->on_drain, &h->on_history})
                o->release();  // already None-equivalent (null): no decref
            delete h;
        }
    }
    // GIL held.
    void clear() {
        live.store(false, std::memory_order_release);
        want_open = want_message = want_close = want_log = want_auth = want_drain = want_history = false;
        on_history = py::object();
        on_auth = py::object();
        on_drain = py::object();
        on_open = py::object();
        on_message = py::object();
        on_close = py::object();
        on_log = py::object();
    }
};

// The hub whose callback this thread is running (innermost), if any.
thread_local Hub *t_hub = nullptr;

struct HubScope {
    Hub *saved;
    explicit HubScope(Hub *h) : saved(t_hub) { t_hub = h; }
    ~HubScope() { t_hub = saved; }
};

// Frees servers whose last Python reference went away on their own service
// thread (wsg_server_free cannot run there): a helper thread does it. The
// count lets the atexit hook wait for them.
std::mutex g_pending_mu;
std::condition_variable g_pending_cv;
int g_pending_frees = 0;

void free_on_helper_thread(wsg_server *s) {
    {
        std::lock_guard<std::mutex> lock(g_pending_mu);
        g_pending_frees++;
    }
    try {
        BlockSignals quiet;
        std::thread([s] {
            wsg_server_free(s);
            std::lock_guard<std::mutex> lock(g_pending_mu);
            g_pending_frees--;
            g_pending_cv.notify_all();
        }).detach();
    } catch (...) {
        // No thread: leak the server rather than deadlock.
        std::lock_guard<std::mutex> lock(g_pending_mu);
        g_pending_frees--;
    }
}

// ---- the C callbacks (service thread, or a lifecycle call's thread for logs)

void cb_open(wsg_server *, wsg_conn_id id, void *user) {
    Hub *h = static_cast<Hub *>(user);
    if (!h->want_open.load(std::memory_order_acquire) || python_gone()) return;
    CallbackGil gil;
    if (!h->on_open) return;
    HubScope scope(h);
    try {
        py::object fn = h->on_open;  // the handler may replace itself
        fn(id);
    } catch (py::error_already_set &e) {
        e.discard_as_unraisable("wsgate on_open callback");
    } catch (const std::exception &e) {
        PyErr_SetString(PyExc_RuntimeError, e.what());
        report_unraisable("wsgate on_open callback");
    }
}

void cb_message(wsg_server *, wsg_conn_id id, wsg_msg_type type, const void *data, size_t len,
                void *user) {
    Hub *h = static_cast<Hub *>(user);
    if (!h->want_message.load(std::memory_order_acquire) || python_gone()) return;
    CallbackGil gil;
    if (!h->on_message) return;
    HubScope scope(h);
    try {
        const char *p = static_cast<const char *>(data);
        auto n = static_cast<Py_ssize_t>(len);
        // Text was validated as UTF-8 by the core.
        PyObject *msg = type == WSG_MSG_TEXT ? PyUnicode_DecodeUTF8(p, n, "surrogateescape")
                                             : PyBytes_FromStringAndSize(p, n);
        if (!msg) throw py::error_already_set();
        py::object m = py::reinterpret_steal<py::object>(msg);
        py::object fn = h->on_message;
        fn(id, m);
    } catch (py::error_already_set &e) {
        e.discard_as_unraisable("wsgate on_message callback");
    } catch (const std::exception &e) {
        PyErr_SetString(PyExc_RuntimeError, e.what());
        report_unraisable("wsgate on_message callback");
    }
}

void cb_close(wsg_server *, wsg_conn_id id, int code, const char *reason, size_t reason_len,
              wsg_close_cause cause, void *user) {
    Hub *h = static_cast<Hub *>(user);
    if (!h->want_close.load(std::memory_order_acquire) || python_gone()) return;
    CallbackGil gil;
    if (!h->on_close) return;
    HubScope scope(h);
    try {
        PyObject *r = PyUnicode_DecodeUTF8(reason, static_cast<Py_ssize_t>(reason_len), "replace");
        if (!r) throw py::error_already_set();
        py::object why = py::reinterpret_steal<py::object>(r);
        py::object fn = h->on_close;
        fn(id, code, why, wsg_close_cause_str(cause));
    } catch (py::error_already_set &e) {
        e.discard_as_unraisable("wsgate on_close callback");
    } catch (const std::exception &e) {
        PyErr_SetString(PyExc_RuntimeError, e.what());
        report_unraisable("wsgate on_close callback");
    }
}

// A queue that was behind is back at the low-water mark (service thread).
void cb_drain(wsg_server *, wsg_conn_id id, size_t queued_bytes, void *user) {
    Hub *h = static_cast<Hub *>(user);
    if (!h->want_drain.load(std::memory_order_acquire) || python_gone()) return;
    CallbackGil gil;
    if (!h->on_drain) return;
    HubScope scope(h);
    try {
        py::object fn = h->on_drain;  // the handler may replace itself
        fn(id, queued_bytes);
    } catch (py::error_already_set &e) {
        e.discard_as_unraisable("wsgate on_drain callback");
    } catch (const std::exception &e) {
        PyErr_SetString(PyExc_RuntimeError, e.what());
        report_unraisable("wsgate on_drain callback");
    }
}

void cb_log(wsg_server *, wsg_log_level level, const char *event, const char *json, size_t json_len,
            void *user) {
    Hub *h = static_cast<Hub *>(user);
    if (!h->want_log.load(std::memory_order_acquire) || python_gone()) return;
    CallbackGil gil;
    if (!h->on_log) return;
    HubScope scope(h);
    try {
        PyObject *j = PyUnicode_DecodeUTF8(json, static_cast<Py_ssize_t>(json_len), "replace");
        if (!j) throw py::error_already_set();
        py::object text = py::reinterpret_steal<py::object>(j);
        py::object fn = h->on_log;
        fn(static_cast<int>(level), event ? event : "", text);
    } catch (py::error_already_set &e) {
        e.discard_as_unraisable("wsgate log callback");
    } catch (const std::exception &e) {
        PyErr_SetString(PyExc_RuntimeError, e.what());
        report_unraisable("wsgate log callback");
    }
}

// ---- authentication (service thread, before the upgrade)

// The Python face of a wsg_auth_request. The core's request is valid only
// during the authenticator call, on the service thread: the trampoline
// invalidates this object when the call returns, and every use checks both
// (StateError, never a dangling pointer). All access happens under the GIL.
class AuthRequest {
public:
    AuthRequest(wsg_auth_request *req, std::thread::id owner) : req_(req), owner_(owner) {}

    bool valid() const { return req_ != nullptr; }
    void invalidate() { req_ = nullptr; }

    py::object get(int field) const {
        const char *v = nullptr;
        check(wsg_auth_request_get(use(), static_cast<wsg_auth_field>(field), &v));
        return decode(v);
    }

    // None when the request has no such header.
    py::object header(const std::string &name) const {
        const wsg_auth_request *r = use();
        if (name.find('\0') != std::string::npos)
            raise_status(WSG_EINVAL, "header name contains a NUL character");
        const char *v = nullptr;
        wsg_status st = wsg_auth_request_header(r, name.c_str(), &v);
        if (st == WSG_ENOTFOUND) return py::none();
        check(st);
        return decode(v);
    }

    void accept(py::object user_id) {
        wsg_auth_request *r = use();
        if (user_id.is_none()) {
            check(wsg_auth_accept(r, nullptr));
            return;
        }
        if (!PyUnicode_Check(user_id.ptr()))
            throw py::type_error(std::string("user_id must be str or None, not ") +
                                 Py_TYPE(user_id.ptr())->tp_name);
        std::string id = user_id.cast<std::string>();
        if (id.find('\0') != std::string::npos)
            raise_status(WSG_EINVAL, "user id contains a NUL character");
        check(wsg_auth_accept(r, id.c_str()));
    }

    void refuse(int status, const std::string &reason) {
        wsg_auth_request *r = use();
        if (reason.find('\0') != std::string::npos)
            raise_status(WSG_EINVAL, "refusal reason contains a NUL character");
        check(wsg_auth_refuse(r, status, reason.c_str()));
    }

    void set_timeout(const std::string &key, int64_t value) {
        wsg_auth_request *r = use();
        if (key.find('\0') != std::string::npos)
            raise_status(WSG_EINVAL, "timeout key contains a NUL character");
        check(wsg_auth_set_timeout(r, key.c_str(), value));
    }

private:
    wsg_auth_request *use() const {
        if (!req_)
            raise_status(WSG_ESTATE,
                         "this AuthRequest is no longer valid: it can only be used during the "
                         "on_auth handler call that received it");
        if (std::this_thread::get_id() != owner_)
            raise_status(WSG_ESTATE,
                         "an AuthRequest can only be used on the service thread running the "
                         "on_auth handler");
        return req_;
    }

    static py::object decode(const char *v) {
        PyObject *s = PyUnicode_DecodeUTF8(v, static_cast<Py_ssize_t>(std::strlen(v)), "replace");
        if (!s) throw py::error_already_set();
        return py::reinterpret_steal<py::object>(s);
    }

    wsg_auth_request *req_;
    std::thread::id owner_;
};

// Registered at construction (the core allows it only before listening);
// enters Python only while a handler is set. Fails closed: without a
// handler, or when the Python side fails, the request is refused with 401.
void cb_auth(wsg_server *, wsg_auth_request *req, void *user) {
    Hub *h = static_cast<Hub *>(user);
    if (!h->want_auth.load(std::memory_order_acquire)) {
        wsg_auth_refuse(req, 401, "no on_auth handler is set");
        return;
    }
    if (python_gone()) {
        wsg_auth_refuse(req, 401, "the Python interpreter is exiting");
        return;
    }
    CallbackGil gil;
    if (!h->on_auth) {
        wsg_auth_refuse(req, 401, "no on_auth handler is set");
        return;
    }
    HubScope scope(h);
    AuthRequest *native = nullptr;
    try {
        py::object obj = py::cast(AuthRequest(req, std::this_thread::get_id()));
        native = obj.cast<AuthRequest *>();
        py::object fn = h->on_auth;  // the handler may replace itself
        try {
            fn(obj);
        } catch (...) {
            native->invalidate();
            throw;
        }
        native->invalidate();
    } catch (py::error_already_set &e) {
        e.discard_as_unraisable("wsgate on_auth callback");
        wsg_auth_refuse(req, 401, "the on_auth callback failed");
    } catch (const std::exception &e) {
        PyErr_SetString(PyExc_RuntimeError, e.what());
        report_unraisable("wsgate on_auth callback");
        wsg_auth_refuse(req, 401, "the on_auth callback failed");
    }
}

py::object decode_text(const char *v) {
    PyObject *s = PyUnicode_DecodeUTF8(v, static_cast<Py_ssize_t>(std::strlen(v)), "replace");
    if (!s) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(s);
}

// ---- history (service thread, once per history message per instance)

// The Python face of a wsg_history_message, valid like AuthRequest only
// during the hook's call on the service thread: a kept object raises
// StateError afterwards instead of touching freed memory.
class HistoryMessage {
public:
    HistoryMessage(wsg_history_message *msg, std::thread::id owner) : msg_(msg), owner_(owner) {}

    bool valid() const { return msg_ != nullptr; }
    void invalidate() { msg_ = nullptr; }

    // "text" or "binary": the names the package uses for message types.
    std::string type() const { return is_text() ? "text" : "binary"; }

    // The payload as published (set() does not change it): str for text,
    // bytes for binary, as received messages are given to on_message.
    py::object payload() const {
        wsg_msg_type t = WSG_MSG_TEXT;
        const void *data = nullptr;
        size_t len = 0;
        check(wsg_history_message_payload(use(), &t, &data, &len));
        const char *p = static_cast<const char *>(data);
        auto n = static_cast<Py_ssize_t>(len);
        PyObject *o = t == WSG_MSG_TEXT ? PyUnicode_DecodeUTF8(p, n, "surrogateescape")
                                        : PyBytes_FromStringAndSize(p, n);
        if (!o) throw py::error_already_set();
        return py::reinterpret_steal<py::object>(o);
    }

    // The type cannot change (the core keeps it): a text message takes str,
    // a binary one bytes-like.
    void set(py::handle data) {
        wsg_history_message *m = use();
        const bool text = is_text();
        if (text && !PyUnicode_Check(data.ptr()))
            throw py::type_error(std::string("a text message's replacement must be str, not ") +
                                 Py_TYPE(data.ptr())->tp_name + " (the message type cannot change)");
        if (!text && PyUnicode_Check(data.ptr()))
            throw py::type_error("a binary message's replacement must be bytes-like, not str (the "
                                 "message type cannot change)");
        Payload p(data);
        check(wsg_history_message_set(m, p.data(), p.size()));
    }

private:
    bool is_text() const {
        wsg_msg_type t = WSG_MSG_TEXT;
        check(wsg_history_message_payload(use(), &t, nullptr, nullptr));
        return t == WSG_MSG_TEXT;
    }

    wsg_history_message *use() const {
        if (!msg_)
            raise_status(WSG_ESTATE,
                         "this history message is no longer valid: it can only be used during the "
                         "on_history handler call that received it");
        if (std::this_thread::get_id() != owner_)
            raise_status(WSG_ESTATE,
                         "a history message can only be used on the service thread running the "
                         "on_history handler");
        return msg_;
    }

    wsg_history_message *msg_;
    std::thread::id owner_;
};

// Registered only while a Python hook is set (wsg_server_on_history, before
// listening). On an exception the message goes out as it stands: as
// published, or as the handler set it before raising.
void cb_history(wsg_server *, const char *topic, const wsg_position *pos, wsg_history_message *msg,
                void *user) {
    Hub *h = static_cast<Hub *>(user);
    if (!h->want_history.load(std::memory_order_acquire) || python_gone()) return;
    CallbackGil gil;
    if (!h->on_history) return;
    HubScope scope(h);
    try {
        py::object obj = py::cast(HistoryMessage(msg, std::this_thread::get_id()));
        HistoryMessage *native = obj.cast<HistoryMessage *>();
        struct Invalidate {
            HistoryMessage *m;
            ~Invalidate() { m->invalidate(); }
        } invalidate{native};
        py::object fn = h->on_history;
        fn(decode_text(topic), pos->epoch, pos->offset, obj);
    } catch (py::error_already_set &e) {
        e.discard_as_unraisable("wsgate on_history callback");
    } catch (const std::exception &e) {
        PyErr_SetString(PyExc_RuntimeError, e.what());
        report_unraisable("wsgate on_history callback");
    }
}

// ---- asynchronous results: presence, session data, subscribe_from

// What a call's answer becomes in Python.
enum class ResultKind { Presence, Value, Nothing, Position };

// (status, message, payload) for the package (GIL held): presence is a list
// of (conn, user_id or None, since_ms), also for WSG_ECLUSTER (this
// instance's own entries); a get's value is bytes, None when there is none;
// a subscribe_from's position is (epoch, offset) when the answer has one.
py::tuple result_tuple(const wsg_result *r, ResultKind kind) {
    wsg_status st = wsg_result_status(r);
    py::object payload = py::none();
    if (kind == ResultKind::Presence) {
        py::list entries;
        size_t n = wsg_result_count(r);
        for (size_t i = 0; i < n; i++) {
            wsg_conn_id conn = 0;
            const char *user = nullptr;
            int64_t since_ms = 0;
            if (wsg_result_presence(r, i, &conn, &user, &since_ms) != WSG_OK) continue;
            entries.append(py::make_tuple(conn, user && *user ? decode_text(user) : py::none(),
                                          since_ms));
        }
        payload = entries;
    } else if (kind == ResultKind::Value && st == WSG_OK) {
        const void *data = nullptr;
        size_t len = 0;
        if (wsg_result_value(r, &data, &len) == WSG_OK)
            payload = py::bytes(static_cast<const char *>(data), len);
    } else if (kind == ResultKind::Position) {
        wsg_position pos{0, 0};
        if (wsg_result_position(r, &pos) == WSG_OK) payload = py::make_tuple(pos.epoch, pos.offset);
    }
    return py::make_tuple(static_cast<int>(st), decode_text(wsg_result_message(r)), payload);
}

// One call answered through a Python callable: `fn(status, message,
// payload)` on the thread the core answers on (the service thread). The
// hub reference keeps HubScope meaningful there: a blocking call made by
// `fn` is refused, and a Server whose last reference `fn` drops is freed on
// a helper thread.
struct PendingCall {
    Hub *hub;
    ResultKind kind;
    py::object fn;  // released under the GIL, or leaked once Python is gone
};

void cb_result(wsg_server *, const wsg_result *result, void *user) {
    auto *p = static_cast<PendingCall *>(user);
    Hub *hub = p->hub;
    if (python_gone()) {
        p->fn.release();  // leaked: no decref without an interpreter
        delete p;
        Hub::unref(hub);
        return;
    }
    {
        CallbackGil gil;
        HubScope scope(hub);
        try {
            py::object fn = std::move(p->fn);
            py::tuple args = result_tuple(result, p->kind);
            fn(*args);
        } catch (py::error_already_set &e) {
            e.discard_as_unraisable("wsgate result callback");
        } catch (const std::exception &e) {
            PyErr_SetString(PyExc_RuntimeError, e.what());
            report_unraisable("wsgate result callback");
        }
        delete p;  // fn is empty: nothing to release
    }
    Hub::unref(hub);
}

class Server {
public:
    explicit Server(const Config *config) {
        check(wsg_server_new(&srv_, config ? config->raw() : nullptr));
        hub_ = new Hub();
        // Registered once, before listening (the only time the core allows
        // it); the Python handlers behind them can change at any time.
        // The log registration owns the hub's second reference: the core
        // drops it (user_free) when the server is freed, after the last
        // callback, whichever thread frees it.
        register_cb(wsg_server_on_open(srv_, cb_open, hub_, nullptr));
        register_cb(wsg_server_on_message(srv_, cb_message, hub_, nullptr));
        register_cb(wsg_server_on_close(srv_, cb_close, hub_, nullptr));
        // Only called when auth.mode is callback or jwt+callback.
        register_cb(wsg_server_on_auth(srv_, cb_auth, hub_, nullptr));
        // Enters Python only while a drain handler is set.
        register_cb(wsg_server_on_drain(srv_, cb_drain, hub_, nullptr));
        hub_->ref();
        register_cb(wsg_server_on_log(srv_, cb_log, hub_, &Hub::unref));
    }

    ~Server() {
        // pybind11 runs this with the GIL held: release Python objects now.
        hub_->clear();
        wsg_server *s = srv_;
        srv_ = nullptr;
        if (t_hub == hub_) {
            // Our own callback dropped the last reference: this is the
            // service thread, which cannot join itself.
            free_on_helper_thread(s);
        } else if (s) {
            py::gil_scoped_release nogil;
            wsg_server_free(s);
        }
        Hub::unref(hub_);
    }

    Server(const Server &) = delete;
    Server &operator=(const Server &) = delete;

    void set_handlers(py::object on_open, py::object on_message, py::object on_close,
                      py::object on_log) {
        // GIL held: the old objects are released here, under it.
        hub_->on_open = on_open.is_none() ? py::object() : on_open;
        hub_->on_message = on_message.is_none() ? py::object() : on_message;
        hub_->on_close = on_close.is_none() ? py::object() : on_close;
        hub_->on_log = on_log.is_none() ? py::object() : on_log;
        hub_->want_open.store(bool(hub_->on_open), std::memory_order_release);
        hub_->want_message.store(bool(hub_->on_message), std::memory_order_release);
        hub_->want_close.store(bool(hub_->on_close), std::memory_order_release);
        hub_->want_log.store(bool(hub_->on_log), std::memory_order_release);
    }

    void set_auth_handler(py::object on_auth) {
        hub_->on_auth = on_auth.is_none() ? py::object() : on_auth;
        hub_->want_auth.store(bool(hub_->on_auth), std::memory_order_release);
    }

    // The body is copied by the core before the call returns.
    void add_page(const std::string &path, const std::string &content_type, py::handle body) {
        if (path.find('\0') != std::string::npos) raise_status(WSG_EINVAL, "page path contains a NUL character");
        if (content_type.find('\0') != std::string::npos)
            raise_status(WSG_EINVAL, "page content type contains a NUL character");
        if (!PyUnicode_Check(body.ptr()) && !PyObject_CheckBuffer(body.ptr()))
            throw py::type_error(std::string("a page body must be str (sent as UTF-8) or bytes-like, not ") +
                                 Py_TYPE(body.ptr())->tp_name);
        Payload p(body);
        check(wsg_server_add_page(srv_, path.c_str(), content_type.c_str(), p.data(), p.size()));
    }

    void set_close_advice(int first, int last, int advice) {
        check(wsg_server_set_close_advice(srv_, first, last, static_cast<wsg_reconnect>(advice)));
    }
    std::string close_code_advice(int code) const { return wsg_reconnect_str(wsg_close_code_advice(srv_, code)); }

    void set_drain_handler(py::object on_drain) {
        hub_->on_drain = on_drain.is_none() ? py::object() : on_drain;
        hub_->want_drain.store(bool(hub_->on_drain), std::memory_order_release);
    }

    // The core takes the hook only before the server listens (WSG_ESTATE
    // otherwise, the handler then unchanged). The registration holds a hub
    // reference, dropped by the core when it is replaced or the server freed.
    void set_history_handler(py::object on_history) {
        if (on_history.is_none()) {
            check(wsg_server_on_history(srv_, nullptr, nullptr, nullptr));
            hub_->want_history.store(false, std::memory_order_release);
            hub_->on_history = py::object();
            return;
        }
        hub_->ref();
        wsg_status st = wsg_server_on_history(srv_, cb_history, hub_, &Hub::unref);
        if (st != WSG_OK) {
            Outcome o;
            o.capture(st);
            Hub::unref(hub_);  // the failed registration did not take it
            o.raise_if_failed();
        }
        hub_->on_history = on_history;
        hub_->want_history.store(true, std::memory_order_release);
    }

    void listen() { blocking([this] { return wsg_server_listen(srv_); }); }
    void start() {
        blocking([this] {
            BlockSignals quiet;  // the service thread starts with them blocked
            return wsg_server_start(srv_);
        });
    }
    void stop() { blocking([this] { return wsg_server_stop(srv_); }); }
    void drain(int64_t ms) { blocking([this, ms] { return wsg_server_drain(srv_, ms); }); }
    bool draining() const { return wsg_server_draining(srv_) != 0; }
    // Returns at once (one atomic store in the core): nothing to release.
    void request_stop() { check(wsg_server_request_stop(srv_)); }
    // False once the loop has ended by itself (after request_stop) or was
    // stopped, and before listen/start: the port is gone then.
    bool listening() {
        int p = 0;
        return wsg_server_port(srv_, &p) == WSG_OK;
    }
    // Reads and checks files: the GIL is released meanwhile.
    void reload_tls() { blocking([this] { return wsg_server_reload_tls(srv_); }); }

    int port() {
        int p = 0;
        check(wsg_server_port(srv_, &p));
        return p;
    }

    size_t conn_count() {
        size_t n = 0;
        check(wsg_server_conn_count(srv_, &n));
        return n;
    }

    // The text is built under no lock of ours: the GIL stays held (a few
    // microseconds of copying).
    std::string metrics() {
        size_t len = 0;
        check(wsg_server_metrics(srv_, nullptr, 0, &len));
        for (;;) {
            // Room to spare: counters may grow between the two calls.
            std::string buf(len + 4096, '\0');
            check(wsg_server_metrics(srv_, &buf[0], buf.size(), &len));
            if (len < buf.size()) {
                buf.resize(len);
                return buf;
            }
        }
    }

    bool ready() {
        int r = 0;
        check(wsg_server_ready(srv_, &r));
        return r != 0;
    }

    int metrics_port() {
        int p = 0;
        check(wsg_server_metrics_port(srv_, &p));
        return p;
    }

    std::vector<uint64_t> conn_ids() {
        std::vector<wsg_conn_id> ids(64);
        for (;;) {
            size_t count = 0;
            check(wsg_server_conn_ids(srv_, ids.data(), ids.size(), &count));
            if (count <= ids.size()) {
                ids.resize(count);
                return ids;
            }
            ids.resize(count + count / 4 + 16);
        }
    }

    void broadcast(py::handle message) {
        Payload p(message);
        send_like(p, [&] { return wsg_server_broadcast(srv_, p.type(), p.data(), p.size()); });
    }

    void send(uint64_t id, py::handle message) {
        Payload p(message);
        send_like(p, [&] { return wsg_conn_send(srv_, id, p.type(), p.data(), p.size()); });
    }

    // Topics and users: names cross the ABI as C strings.
    static const char *c_name(const std::string &name, const char *what) {
        if (name.find('\0') != std::string::npos)
            raise_status(WSG_EINVAL, std::string(what) + " contains a NUL character");
        return name.c_str();
    }

    void subscribe(uint64_t id, const std::string &topic, bool on) {
        const char *t = c_name(topic, "topic");
        check(on ? wsg_conn_subscribe(srv_, id, t) : wsg_conn_unsubscribe(srv_, id, t));
    }

    void publish(const std::string &topic, py::handle message) {
        const char *t = c_name(topic, "topic");
        Payload p(message);
        send_like(p, [&] { return wsg_server_publish(srv_, t, p.type(), p.data(), p.size()); });
    }

    // Ids from a "capacity, count" call, growing the array until it fits.
    template <class F>
    static std::vector<uint64_t> id_list(F &&call) {
        std::vector<wsg_conn_id> ids(16);
        for (;;) {
            size_t count = 0;
            check(call(ids.data(), ids.size(), &count));
            if (count <= ids.size()) {
                ids.resize(count);
                return ids;
            }
            ids.resize(count + count / 4 + 16);
        }
    }

    std::vector<uint64_t> subscribers(const std::string &topic) {
        const char *t = c_name(topic, "topic");
        return id_list([&](wsg_conn_id *ids, size_t cap, size_t *n) {
            return wsg_topic_subscribers(srv_, t, ids, cap, n);
        });
    }

    std::vector<uint64_t> user_conns(const std::string &user) {
        const char *u = c_name(user, "user id");
        return id_list([&](wsg_conn_id *ids, size_t cap, size_t *n) { return wsg_user_conn_ids(srv_, u, ids, cap, n); });
    }

    void send_to_user(const std::string &user, py::handle message) {
        const char *u = c_name(user, "user id");
        Payload p(message);
        send_like(p, [&] { return wsg_user_send(srv_, u, p.type(), p.data(), p.size()); });
    }

    void close_user(const std::string &user, int code, const std::string &reason) {
        const char *u = c_name(user, "user id");
        const char *r = c_name(reason, "close reason");
        blocking([&] { return wsg_user_close(srv_, u, code, r); });
    }

    void broadcast_except(uint64_t except, py::handle message) {
        Payload p(message);
        send_like(p, [&] { return wsg_server_broadcast_except(srv_, except, p.type(), p.data(), p.size()); });
    }

    void send_many(const std::vector<uint64_t> &ids, py::handle message) {
        Payload p(message);
        send_like(p, [&] { return wsg_conn_send_many(srv_, ids.data(), ids.size(), p.type(), p.data(), p.size()); });
    }

    void close(uint64_t id, int code, const std::string &reason) {
        if (reason.find('\0') != std::string::npos)
            raise_status(WSG_EINVAL, "close reason contains a NUL character");
        blocking([&] { return wsg_conn_close(srv_, id, code, reason.c_str()); });
    }

    // One snapshot of a connection as a dict.
    py::dict conn_info(uint64_t id) {
        wsg_conn_info *info = nullptr;
        check(wsg_conn_info_get(srv_, id, &info));
        struct Freer {
            wsg_conn_info *i;
            ~Freer() { wsg_conn_info_free(i); }
        } freer{info};
        py::dict d;
        static const struct {
            const char *name;
            wsg_info_key key;
        } strings[] = {{"peer_address", WSG_INFO_PEER_ADDR},
                       {"path", WSG_INFO_PATH},
                       {"query", WSG_INFO_QUERY},
                       {"origin", WSG_INFO_ORIGIN},
                       {"subprotocol", WSG_INFO_SUBPROTOCOL}},
          ints[] = {{"id", WSG_INFO_ID},
                    {"peer_port", WSG_INFO_PEER_PORT},
                    {"connected_at_ms", WSG_INFO_CONNECTED_AT_MS},
                    {"duration_ms", WSG_INFO_DURATION_MS},
                    {"messages_in", WSG_INFO_MESSAGES_IN},
                    {"bytes_in", WSG_INFO_BYTES_IN},
                    {"messages_out", WSG_INFO_MESSAGES_OUT},
                    {"bytes_out", WSG_INFO_BYTES_OUT}};
        for (const auto &f : strings) {
            const char *v = nullptr;
            check(wsg_conn_info_string(info, f.key, &v));
            PyObject *s = PyUnicode_DecodeUTF8(v, static_cast<Py_ssize_t>(std::strlen(v)),
                                               "replace");
            if (!s) throw py::error_already_set();
            d[f.name] = py::reinterpret_steal<py::object>(s);
        }
        for (const auto &f : ints) {
            int64_t v = 0;
            check(wsg_conn_info_int(info, f.key, &v));
            d[f.name] = py::int_(v);
        }
        // Fields added after 0.1.0's first release: absent (None) from a
        // library that does not know them yet.
        int64_t rtt = -1;
        if (wsg_conn_info_int(info, WSG_INFO_RTT_US, &rtt) == WSG_OK)
            d["rtt_us"] = py::int_(rtt);
        else
            d["rtt_us"] = py::none();
        int64_t compressed = 0;
        if (wsg_conn_info_int(info, WSG_INFO_COMPRESSION, &compressed) == WSG_OK)
            d["compression"] = py::bool_(compressed != 0);
        else
            d["compression"] = py::none();
        const char *subject = nullptr;
        if (wsg_conn_info_string(info, WSG_INFO_TLS_SUBJECT, &subject) == WSG_OK) {
            PyObject *s = PyUnicode_DecodeUTF8(
                subject, static_cast<Py_ssize_t>(std::strlen(subject)), "replace");
            if (!s) throw py::error_already_set();
            d["tls_subject"] = py::reinterpret_steal<py::object>(s);
        } else {
            d["tls_subject"] = py::none();
        }
        for (const auto &f : {std::make_pair("user_id", WSG_INFO_USER_ID),
                              std::make_pair("claims", WSG_INFO_CLAIMS)}) {
            const char *v = nullptr;
            if (wsg_conn_info_string(info, f.second, &v) == WSG_OK) {
                PyObject *s =
                    PyUnicode_DecodeUTF8(v, static_cast<Py_ssize_t>(std::strlen(v)), "replace");
                if (!s) throw py::error_already_set();
                d[f.first] = py::reinterpret_steal<py::object>(s);
            } else {
                d[f.first] = py::none();
            }
        }
        for (const auto &f : {std::make_pair("queued_bytes", WSG_INFO_QUEUED_BYTES),
                              std::make_pair("messages_dropped", WSG_INFO_MESSAGES_DROPPED)}) {
            int64_t v = 0;
            if (wsg_conn_info_int(info, f.second, &v) == WSG_OK)
                d[f.first] = py::int_(v);
            else
                d[f.first] = py::none();
        }
        int64_t policy = 0;
        if (wsg_conn_info_int(info, WSG_INFO_QUEUE_POLICY, &policy) == WSG_OK)
            d["queue_policy"] = py::str(wsg_queue_policy_str(static_cast<wsg_queue_policy>(policy)));
        else
            d["queue_policy"] = py::none();
        py::list topics;
        size_t nt = 0;
        if (wsg_conn_info_topic_count(info, &nt) == WSG_OK) {
            for (size_t i = 0; i < nt; i++) {
                const char *v = nullptr;
                check(wsg_conn_info_topic(info, i, &v));
                PyObject *s = PyUnicode_DecodeUTF8(v, static_cast<Py_ssize_t>(std::strlen(v)), "replace");
                if (!s) throw py::error_already_set();
                topics.append(py::reinterpret_steal<py::object>(s));
            }
        }
        d["topics"] = topics;
        return d;
    }

    void set_queue_policy(uint64_t id, int policy) {
        check(wsg_conn_set_queue_policy(srv_, id, static_cast<wsg_queue_policy>(policy)));
    }

    // (queued_bytes, messages_out): what wsgate.aio paces sends by, without
    // building the whole info dict for every send.
    std::pair<int64_t, int64_t> queue_state(uint64_t id) {
        wsg_conn_info *info = nullptr;
        check(wsg_conn_info_get(srv_, id, &info));
        int64_t queued = 0, out = 0;
        wsg_status st = wsg_conn_info_int(info, WSG_INFO_QUEUED_BYTES, &queued);
        if (st == WSG_OK) st = wsg_conn_info_int(info, WSG_INFO_MESSAGES_OUT, &out);
        Outcome o;
        o.capture(st);
        wsg_conn_info_free(info);
        o.raise_if_failed();
        return {queued, out};
    }

    void set_timeout(uint64_t id, const std::string &key, int64_t value) {
        if (key.find('\0') != std::string::npos)
            raise_status(WSG_EINVAL, "timeout key contains a NUL character");
        check(wsg_conn_set_timeout(srv_, id, key.c_str(), value));
    }

    // ---- presence and session data (asynchronous in the core)
    //
    // Each call has two forms: `fn` is called with (status, message,
    // payload) once the core answers (service thread; a refused call raises
    // here and never calls it), or the *_wait form blocks on a
    // wsg_completion with the GIL released and returns that tuple.

    void topic_presence(const std::string &topic, py::object fn) {
        const char *t = c_name(topic, "topic");
        call_async(ResultKind::Presence, std::move(fn), [&](wsg_result_fn cb, void *user) {
            return wsg_topic_presence(srv_, t, cb, user);
        });
    }
    py::tuple topic_presence_wait(const std::string &topic, int64_t timeout_ms) {
        const char *t = c_name(topic, "topic");
        return call_wait(ResultKind::Presence, timeout_ms, "topic_presence", [&](wsg_result_fn cb, void *user) {
            return wsg_topic_presence(srv_, t, cb, user);
        });
    }

    void user_presence(const std::string &user_id, py::object fn) {
        const char *u = c_name(user_id, "user id");
        call_async(ResultKind::Presence, std::move(fn), [&](wsg_result_fn cb, void *user) {
            return wsg_user_presence(srv_, u, cb, user);
        });
    }
    py::tuple user_presence_wait(const std::string &user_id, int64_t timeout_ms) {
        const char *u = c_name(user_id, "user id");
        return call_wait(ResultKind::Presence, timeout_ms, "user_presence", [&](wsg_result_fn cb, void *user) {
            return wsg_user_presence(srv_, u, cb, user);
        });
    }

    // The value: str is stored as its UTF-8 bytes, bytes-like as is.
    void session_set(const std::string &key, py::handle value, int64_t ttl_ms, py::object fn) {
        const char *k = c_name(key, "session key");
        Payload v(value);
        call_async(ResultKind::Nothing, std::move(fn), [&](wsg_result_fn cb, void *user) {
            return wsg_session_set(srv_, k, v.data(), v.size(), ttl_ms, cb, user);
        });
    }
    py::tuple session_set_wait(const std::string &key, py::handle value, int64_t ttl_ms, int64_t timeout_ms) {
        const char *k = c_name(key, "session key");
        Payload v(value);
        return call_wait(ResultKind::Nothing, timeout_ms, "session_set", [&](wsg_result_fn cb, void *user) {
            return wsg_session_set(srv_, k, v.data(), v.size(), ttl_ms, cb, user);
        });
    }

    void session_get(const std::string &key, py::object fn) {
        const char *k = c_name(key, "session key");
        call_async(ResultKind::Value, std::move(fn), [&](wsg_result_fn cb, void *user) {
            return wsg_session_get(srv_, k, cb, user);
        });
    }
    py::tuple session_get_wait(const std::string &key, int64_t timeout_ms) {
        const char *k = c_name(key, "session key");
        return call_wait(ResultKind::Value, timeout_ms, "session_get", [&](wsg_result_fn cb, void *user) {
            return wsg_session_get(srv_, k, cb, user);
        });
    }

    void session_delete(const std::string &key, py::object fn) {
        const char *k = c_name(key, "session key");
        call_async(ResultKind::Nothing, std::move(fn), [&](wsg_result_fn cb, void *user) {
            return wsg_session_delete(srv_, k, cb, user);
        });
    }
    py::tuple session_delete_wait(const std::string &key, int64_t timeout_ms) {
        const char *k = c_name(key, "session key");
        return call_wait(ResultKind::Nothing, timeout_ms, "session_delete", [&](wsg_result_fn cb, void *user) {
            return wsg_session_delete(srv_, k, cb, user);
        });
    }

    // ---- history: subscribe from a position (asynchronous in the core)
    //
    // `from` is None (live only) or (epoch, offset); the answer's payload is
    // the position reached as (epoch, offset).

    void subscribe_from(uint64_t id, const std::string &topic,
                        std::optional<std::pair<uint64_t, uint64_t>> from, py::object fn) {
        const char *t = c_name(topic, "topic");
        wsg_position pos{0, 0};
        if (from) pos = wsg_position{from->first, from->second};
        call_async(ResultKind::Position, std::move(fn), [&](wsg_result_fn cb, void *user) {
            return wsg_conn_subscribe_from(srv_, id, t, from ? &pos : nullptr, cb, user);
        });
    }
    py::tuple subscribe_from_wait(uint64_t id, const std::string &topic,
                                  std::optional<std::pair<uint64_t, uint64_t>> from, int64_t timeout_ms) {
        const char *t = c_name(topic, "topic");
        wsg_position pos{0, 0};
        if (from) pos = wsg_position{from->first, from->second};
        return call_wait(ResultKind::Position, timeout_ms, "subscribe_from", [&](wsg_result_fn cb, void *user) {
            return wsg_conn_subscribe_from(srv_, id, t, from ? &pos : nullptr, cb, user);
        });
    }

private:
    void register_cb(wsg_status st) {
        if (st != WSG_OK) {
            Outcome o;
            o.capture(st);
            // No registration took the hub (the failed one did not).
            wsg_server_free(srv_);
            srv_ = nullptr;
            delete hub_;
            hub_ = nullptr;
            o.raise_if_failed();
        }
    }

    // `call(cb, user)` makes the C call. With `fn` None the call is made
    // without a callback (only session set and delete allow it: the core
    // refuses the others with WSG_EINVAL).
    template <class F>
    void call_async(ResultKind kind, py::object fn, F &&call) {
        PendingCall *p = nullptr;
        wsg_result_fn cb = nullptr;
        if (!fn.is_none()) {
            p = new PendingCall{hub_, kind, std::move(fn)};
            hub_->ref();
            cb = cb_result;
        }
        wsg_status st = call(cb, p);
        if (st == WSG_OK) return;  // the callback owns p now
        Outcome o;
        o.capture(st);
        if (p) {
            delete p;  // GIL held: fn is released here
            Hub::unref(hub_);
        }
        o.raise_if_failed();
    }

    // Waits on this (non-service) thread; Ctrl-C still works: the wait is
    // cut in slices between which Python's signal handlers run.
    template <class F>
    py::tuple call_wait(ResultKind kind, int64_t timeout_ms, const char *what, F &&call) {
        // Refused before the call is made, so that a set or delete refused
        // here did not happen either (the core's wait would say WSG_EBUSY
        // only after the call was made).
        if (t_hub == hub_)
            raise_status(WSG_EBUSY,
                         std::string(what) +
                             " would wait inside a handler for an answer that runs on this same service "
                             "thread (it could never come): pass callback= (or use wsgate.aio), or call it "
                             "from another thread");
        wsg_completion *c = nullptr;
        check(wsg_completion_new(&c));
        struct Freer {
            wsg_completion *c;
            ~Freer() { wsg_completion_free(c); }  // before the answer: it is discarded
        } freer{c};
        check(call(wsg_completion_callback, c));
        constexpr int64_t kSliceMs = 100;
        auto start = std::chrono::steady_clock::now();
        for (;;) {
            int64_t slice = kSliceMs;
            if (timeout_ms >= 0) {
                auto spent = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                                   start)
                                 .count();
                slice = std::max<int64_t>(0, std::min<int64_t>(kSliceMs, timeout_ms - spent));
            }
            Outcome o;
            {
                py::gil_scoped_release nogil;
                o.capture(wsg_completion_wait(c, slice));
            }
            if (o.st == WSG_OK) break;
            if (o.st != WSG_ETIMEOUT) o.raise_if_failed();
            if (timeout_ms >= 0 && slice < kSliceMs)
                raise_status(WSG_ETIMEOUT, std::string(what) + ": no answer within " +
                                               std::to_string(timeout_ms) +
                                               " ms (the call goes on; its answer will be discarded)");
            if (PyErr_CheckSignals() != 0) throw py::error_already_set();
        }
        return result_tuple(wsg_completion_result(c), kind);
    }

    template <class F>
    void blocking(F &&call) {
        Outcome o;
        {
            py::gil_scoped_release nogil;
            o.capture(call());
        }
        o.raise_if_failed();
    }

    template <class F>
    void send_like(const Payload &p, F &&call) {
        if (p.large()) {
            blocking(call);
        } else {
            check(call());
        }
    }

    wsg_server *srv_ = nullptr;
    Hub *hub_ = nullptr;
};

// Positions cross as (epoch, offset); the text is the core's.
std::string position_format(uint64_t epoch, uint64_t offset) {
    wsg_position pos{epoch, offset};
    char buf[WSG_POSITION_TEXT_MAX];
    check(wsg_position_format(&pos, buf, sizeof buf));
    return buf;
}

std::pair<uint64_t, uint64_t> position_parse(const std::string &text) {
    if (text.find('\0') != std::string::npos)
        raise_status(WSG_EINVAL, "a position contains a NUL character: expected EPOCH-OFFSET in decimal");
    wsg_position pos{0, 0};
    check(wsg_position_parse(text.c_str(), &pos));
    return {pos.epoch, pos.offset};
}

py::list option_table() {
    py::list rows;
    size_t n = wsg_option_count();
    for (size_t i = 0; i < n; i++) {
        const char *f[5] = {"", "", "", "", ""};
        const wsg_option_field fields[5] = {WSG_OPTION_NAME, WSG_OPTION_TYPE, WSG_OPTION_DEFAULT,
                                            WSG_OPTION_RANGE, WSG_OPTION_DOC};
        for (int k = 0; k < 5; k++) check(wsg_option_describe(i, fields[k], &f[k]));
        rows.append(py::make_tuple(f[0], f[1], f[2], f[3], f[4]));
    }
    return rows;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "Low-level glue over wsgate's C ABI. Use the `wsgate` package instead.";
    g_interp = PyInterpreterState_Get();

    m.attr("HEADER_VERSION_NUM") = WSG_VERSION_NUM;
    m.def("version", &wsg_version, "The loaded libwsgate's version string.");
    m.def("version_num", &wsg_version_num, "The loaded libwsgate's MAJOR*10000+MINOR*100+PATCH.");
    m.def(
        "status_str", [](int st) { return wsg_status_str(static_cast<wsg_status>(st)); },
        py::arg("status"), "Stable name of a wsg_status value.");
    m.def(
        "close_cause_str",
        [](int cause) { return wsg_close_cause_str(static_cast<wsg_close_cause>(cause)); },
        py::arg("cause"), "Stable name of a wsg_close_cause value.");
    m.def(
        "queue_policy_str",
        [](int policy) { return wsg_queue_policy_str(static_cast<wsg_queue_policy>(policy)); },
        py::arg("policy"), "Stable name of a wsg_queue_policy value.");
    m.def(
        "queue_policies",
        [] {
            // The header's list itself, in its order.
            std::vector<std::pair<std::string, int>> rows;
#define WSGATE_PY_POLICY_ROW_(name, value, text, doc) rows.emplace_back(text, value);
            WSG_QUEUE_POLICY_MAP(WSGATE_PY_POLICY_ROW_)
#undef WSGATE_PY_POLICY_ROW_
            return rows;
        },
        "The queue policies of WSG_QUEUE_POLICY_MAP as (name, value) pairs.");
    m.def(
        "reconnect_advices",
        [] {
            std::vector<std::pair<std::string, int>> rows;
#define WSGATE_PY_ADVICE_ROW_(name, value, text, doc) rows.emplace_back(text, value);
            WSG_RECONNECT_MAP(WSGATE_PY_ADVICE_ROW_)
#undef WSGATE_PY_ADVICE_ROW_
            return rows;
        },
        "The advices of WSG_RECONNECT_MAP as (name, value) pairs.");
    m.def(
        "close_code_advice", [](int code) { return std::string(wsg_reconnect_str(wsg_close_code_advice(nullptr, code))); },
        py::arg("code"), "The advice name for a close code (wsg_close_code_advice without a server).");
    m.def("options", &option_table,
          "The core's option table: (name, type, default, range, doc) per option.");
    m.def(
        "_set_error_classes",
        [](py::dict classes) {
            // Kept for the life of the process (see g_error_classes).
            Py_XDECREF(g_error_classes);
            g_error_classes = classes.inc_ref().ptr();
        },
        py::arg("classes"), "Internal: map status (and None) to exception classes.");
    m.def(
        "_python_exiting",
        [](double wait_seconds) {
            // Servers being freed on helper threads finish their stop first
            // (their callbacks no longer enter Python).
            g_exiting.store(true, std::memory_order_release);
            py::gil_scoped_release nogil;
            std::unique_lock<std::mutex> lock(g_pending_mu);
            g_pending_cv.wait_for(lock, std::chrono::duration<double>(wait_seconds),
                                  [] { return g_pending_frees == 0; });
        },
        py::arg("wait_seconds") = 10.0,
        "Internal, for the atexit hook: callbacks stop entering Python from now on.");
    m.def("position_format", &position_format, py::arg("epoch"), py::arg("offset"),
          "wsg_position_format: the text EPOCH-OFFSET of a position.");
    m.def("position_parse", &position_parse, py::arg("text"),
          "wsg_position_parse: (epoch, offset) of the text EPOCH-OFFSET (InvalidArgumentError otherwise).");
    m.def(
        "_in_callback", [] { return t_hub != nullptr; },
        "True while this thread runs one of wsgate's callbacks.");

    py::class_<Config>(m, "Config", "A set of option values (wsg_config).")
        .def(py::init<>())
        .def("copy", [](const Config &c) { return new Config(c); },
             "An independent copy.")
        .def("set", &Config::set, py::arg("key"), py::arg("value"),
             "Set one option; the core validates it.")
        .def("set_from_string", &Config::set_from_string, py::arg("assignment"),
             "Set one option from 'key=value' text.")
        .def("get", &Config::get, py::arg("key"), "Read one option as its type.")
        .def_static("option_type", &Config::option_type, py::arg("key"),
                    "An option's type ('int', 'bool', 'string', 'enum'), '' if unknown.");

    m.attr("AUTH_PATH") = static_cast<int>(WSG_AUTH_PATH);
    m.attr("AUTH_QUERY") = static_cast<int>(WSG_AUTH_QUERY);
    m.attr("AUTH_PEER_ADDR") = static_cast<int>(WSG_AUTH_PEER_ADDR);
    m.attr("AUTH_ORIGIN") = static_cast<int>(WSG_AUTH_ORIGIN);
    m.attr("AUTH_TLS_SUBJECT") = static_cast<int>(WSG_AUTH_TLS_SUBJECT);
    m.attr("AUTH_TOKEN") = static_cast<int>(WSG_AUTH_TOKEN);
    m.attr("AUTH_JWT_USER") = static_cast<int>(WSG_AUTH_JWT_USER);
    m.attr("AUTH_JWT_CLAIMS") = static_cast<int>(WSG_AUTH_JWT_CLAIMS);

    py::class_<AuthRequest>(m, "AuthRequest",
                            "A wsg_auth_request, valid only during the on_auth call that "
                            "received it (StateError afterwards).")
        .def_property_readonly("valid", &AuthRequest::valid,
                               "False once the on_auth call has returned.")
        .def("get", &AuthRequest::get, py::arg("field"),
             "One field (AUTH_PATH, AUTH_QUERY, ...) as text.")
        .def("header", &AuthRequest::header, py::arg("name"),
             "A request header by name (case-insensitive), None if absent.")
        .def("accept", &AuthRequest::accept, py::arg("user_id") = py::none(),
             "Accept the request as user_id (None: the JWT's user id, or none).")
        .def("refuse", &AuthRequest::refuse, py::arg("status") = 401, py::arg("reason") = "",
             "Refuse the request with HTTP 401 or 403; the reason is logged.")
        .def("set_timeout", &AuthRequest::set_timeout, py::arg("key"), py::arg("value"),
             "Give the connection about to open its own heartbeat value.");

    py::class_<HistoryMessage>(m, "HistoryMessage",
                               "A wsg_history_message, valid only during the on_history call that "
                               "received it (StateError afterwards).")
        .def_property_readonly("valid", &HistoryMessage::valid,
                               "False once the on_history call has returned.")
        .def_property_readonly("type", &HistoryMessage::type, "'text' or 'binary'.")
        .def_property_readonly("payload", &HistoryMessage::payload,
                               "The payload as published: str (text) or bytes (binary).")
        .def("set", &HistoryMessage::set, py::arg("data"),
             "Replace what the subscribers get (same type: str for text, bytes-like for binary).");

    py::class_<Server>(m, "Server", "A wsg_server. Freed (stopping first) when collected.")
        .def(py::init<const Config *>(), py::arg("config") = nullptr)
        .def("set_handlers", &Server::set_handlers, py::arg("on_open"), py::arg("on_message"),
             py::arg("on_close"), py::arg("on_log"),
             "Set the callables the service thread calls (None for none).")
        .def("set_auth_handler", &Server::set_auth_handler, py::arg("on_auth"),
             "Set the callable the authenticator calls with an AuthRequest (None for none: "
             "requests needing one are refused with 401).")
        .def("add_page", &Server::add_page, py::arg("path"), py::arg("content_type"), py::arg("body"),
             "Serve a static response at path (wsg_server_add_page); only before listening.")
        .def("set_close_advice", &Server::set_close_advice, py::arg("first"), py::arg("last"), py::arg("advice"),
             "Declare the advice for application close codes first..last (wsg_server_set_close_advice).")
        .def("close_code_advice", &Server::close_code_advice, py::arg("code"),
             "The advice name for a close code on this server (wsg_close_code_advice).")
        .def("set_drain_handler", &Server::set_drain_handler, py::arg("on_drain"),
             "Set the callable on_drain calls with (conn, queued_bytes) (None for none).")
        .def("set_history_handler", &Server::set_history_handler, py::arg("on_history"),
             "Set the callable the history hook calls with (topic, epoch, offset, HistoryMessage) "
             "(None for none); only before listening (wsg_server_on_history).")
        .def("listen", &Server::listen, "Bind the listening socket (GIL released).")
        .def("start", &Server::start, "Serve on a new service thread (GIL released).")
        .def("stop", &Server::stop, "Stop gracefully and join (GIL released).")
        .def("drain", &Server::drain, py::arg("ms"), "Drain over ms, then stop and join (GIL released).")
        .def_property_readonly("draining", &Server::draining, "wsg_server_draining")
        .def("request_stop", &Server::request_stop,
             "Ask for a graceful stop without waiting (wsg_server_request_stop).")
        .def_property_readonly("listening", &Server::listening,
                               "True while the server holds its listening socket.")
        .def("reload_tls", &Server::reload_tls,
             "Reload tls.cert_file and tls.key_file (GIL released).")
        .def_property_readonly("port", &Server::port, "The bound TCP port.")
        .def("conn_count", &Server::conn_count, "Number of open connections.")
        .def("metrics", &Server::metrics, "The Prometheus text exposition (wsg_server_metrics).")
        .def_property_readonly("ready", &Server::ready,
                               "True while the server accepts upgrades (wsg_server_ready).")
        .def_property_readonly("metrics_port", &Server::metrics_port,
                               "The metrics listener's bound port (wsg_server_metrics_port).")
        .def("conn_ids", &Server::conn_ids, "Ids of the open connections.")
        .def("broadcast", &Server::broadcast, py::arg("message"),
             "Send to every open connection.")
        .def("send", &Server::send, py::arg("conn"), py::arg("message"),
             "Queue a message to one connection.")
        .def("close", &Server::close, py::arg("conn"), py::arg("code") = 1000,
             py::arg("reason") = "", "Close one connection.")
        .def("set_timeout", &Server::set_timeout, py::arg("conn"), py::arg("key"),
             py::arg("value"), "Override one heartbeat setting for one connection.")
        .def("conn_info", &Server::conn_info, py::arg("conn"),
             "A snapshot of one connection as a dict.")
        .def("set_queue_policy", &Server::set_queue_policy, py::arg("conn"), py::arg("policy"),
             "Give one connection its own wsg_queue_policy value.")
        .def("queue_state", &Server::queue_state, py::arg("conn"),
             "(queued_bytes, messages_out) of one connection.")
        .def("subscribe", &Server::subscribe, py::arg("conn"), py::arg("topic"), py::arg("on") = true,
             "Subscribe (on) or unsubscribe a connection to a topic.")
        .def("publish", &Server::publish, py::arg("topic"), py::arg("message"),
             "Send to every subscriber of a topic.")
        .def("subscribers", &Server::subscribers, py::arg("topic"), "Ids of a topic's subscribers.")
        .def("user_conns", &Server::user_conns, py::arg("user"), "Ids of a user's open connections.")
        .def("send_to_user", &Server::send_to_user, py::arg("user"), py::arg("message"),
             "Send to every open connection of a user.")
        .def("close_user", &Server::close_user, py::arg("user"), py::arg("code") = 1000,
             py::arg("reason") = "", "Close every open connection of a user.")
        .def("broadcast_except", &Server::broadcast_except, py::arg("except_conn"), py::arg("message"),
             "Send to every open connection but one.")
        .def("send_many", &Server::send_many, py::arg("conns"), py::arg("message"),
             "Send one message to several connections.")
        .def("topic_presence", &Server::topic_presence, py::arg("topic"), py::arg("fn"),
             "wsg_topic_presence: fn(status, message, [(conn, user_id, since_ms)]) runs once with the answer.")
        .def("topic_presence_wait", &Server::topic_presence_wait, py::arg("topic"), py::arg("timeout_ms"),
             "wsg_topic_presence waited for (GIL released): (status, message, entries).")
        .def("user_presence", &Server::user_presence, py::arg("user_id"), py::arg("fn"),
             "wsg_user_presence: fn(status, message, [(conn, user_id, since_ms)]) runs once with the answer.")
        .def("user_presence_wait", &Server::user_presence_wait, py::arg("user_id"), py::arg("timeout_ms"),
             "wsg_user_presence waited for (GIL released): (status, message, entries).")
        .def("session_set", &Server::session_set, py::arg("key"), py::arg("value"), py::arg("ttl_ms"),
             py::arg("fn"), "wsg_session_set: fn(status, message, None) runs once with the answer (None: no callback).")
        .def("session_set_wait", &Server::session_set_wait, py::arg("key"), py::arg("value"), py::arg("ttl_ms"),
             py::arg("timeout_ms"), "wsg_session_set waited for (GIL released): (status, message, None).")
        .def("session_get", &Server::session_get, py::arg("key"), py::arg("fn"),
             "wsg_session_get: fn(status, message, value bytes or None) runs once with the answer.")
        .def("session_get_wait", &Server::session_get_wait, py::arg("key"), py::arg("timeout_ms"),
             "wsg_session_get waited for (GIL released): (status, message, value bytes or None).")
        .def("session_delete", &Server::session_delete, py::arg("key"), py::arg("fn"),
             "wsg_session_delete: fn(status, message, None) runs once with the answer (None: no callback).")
        .def("session_delete_wait", &Server::session_delete_wait, py::arg("key"), py::arg("timeout_ms"),
             "wsg_session_delete waited for (GIL released): (status, message, None).")
        .def("subscribe_from", &Server::subscribe_from, py::arg("conn"), py::arg("topic"), py::arg("from_"),
             py::arg("fn"),
             "wsg_conn_subscribe_from: fn(status, message, (epoch, offset) or None) runs once with the answer.")
        .def("subscribe_from_wait", &Server::subscribe_from_wait, py::arg("conn"), py::arg("topic"),
             py::arg("from_"), py::arg("timeout_ms"),
             "wsg_conn_subscribe_from waited for (GIL released): (status, message, (epoch, offset) or None).");
}
