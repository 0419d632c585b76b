// The application's callbacks, each with its user pointer, released exactly
// once. Registered before the server listens; called on the service thread.
#pragma once

#include "wsgate/wsgate.h"

namespace wsgate {

template <class Fn>
struct Callback {
    Fn fn = nullptr;
    void *user = nullptr;
    wsg_free_fn user_free = nullptr;

    void set(Fn f, void *u, wsg_free_fn uf) {
        release();
        fn = f;
        user = u;
        user_free = uf;
    }
    void release() {
        wsg_free_fn uf = user_free;
        void *u = user;
        fn = nullptr;
        user = nullptr;
        user_free = nullptr;
        if (uf) uf(u);
    }
    Callback() = default;
    Callback(const Callback &) = delete;
    Callback &operator=(const Callback &) = delete;
    ~Callback() { release(); }
};

struct AppCallbacks {
    wsg_server *server = nullptr;  // the handle the callbacks receive
    Callback<wsg_open_fn> on_open;
    Callback<wsg_message_fn> on_message;
    Callback<wsg_close_fn> on_close;
    Callback<wsg_log_fn> on_log;
    Callback<wsg_auth_fn> on_auth;
    Callback<wsg_drain_fn> on_drain;
    Callback<wsg_history_fn> on_history;
};

}  // namespace wsgate
