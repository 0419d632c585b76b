// The transport: accepted TCP (and TLS) connections as byte streams, the
// event loop, timers and cross-thread wake-ups. libwebsockets 4.1.6 does the
// work (its raw-skt role: no HTTP, no WebSocket, just bytes), and this is the
// only module of wsgate that sees it: no lws type crosses this header.
//
// Threads: everything here runs on the service thread, except wake(), which
// any thread may call while the transport is open.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "security/tls.h"

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;
struct ev_loop;

namespace wsgate {

// One accepted connection. Opaque: only the transport knows what it is.
struct Link;

// Which listener accepted a link: the WebSocket one, or the metrics one
// (TransportConfig::metrics_port; plain TCP, no TLS, no accept limits).
enum class Listener { Main, Metrics };

// What the transport reports. Each call runs on the service thread.
class TransportEvents {
public:
    virtual ~TransportEvents() = default;
    // A TCP connection was accepted (before any TLS handshake). False closes
    // it at once: nothing is allocated for it.
    virtual bool on_accept(int fd) = 0;
    // accept() failed with `err` (errno). For a shortage of descriptors or
    // memory (EMFILE, ENFILE, ENOBUFS, ENOMEM) the transport then took
    // `closed` pending connections off the listen queue and closed them, with
    // a descriptor kept in reserve for this: the listener stays readable as
    // long as connections wait in its queue, and libwebsockets would retry
    // the accept in a busy loop. Service thread; never one log line per call.
    virtual void on_accept_error(int err, size_t closed) = 0;
    // The connection exists as a Link (for TLS, its handshake follows).
    // False closes it at once.
    virtual bool on_open(Link *link, Listener from) = 0;
    // Bytes arrived (decrypted, for TLS). `data` is the transport's read
    // buffer: writable, valid during the call. False closes the link (after
    // what was written to it is flushed).
    virtual bool on_read(Link *link, uint8_t *data, size_t len) = 0;
    // The link can take more output (after want_writable). False closes it.
    virtual bool on_writable(Link *link) = 0;
    // The link is gone (peer closed, error, close requested). Last call for it.
    virtual void on_close(Link *link) = 0;
    // wake() was called (possibly several times before this runs), or the
    // loop woke for its own reasons: must be cheap when there is nothing to do.
    virtual void on_wake() = 0;
    // TLS: the server context exists; configure what lws has no field for.
    // "" when done, else why not (the listener then fails).
    virtual std::string on_tls_context(SSL_CTX *ctx) = 0;
    // TLS: a client certificate was checked by OpenSSL (mutual TLS). True
    // accepts the handshake.
    virtual bool on_client_certificate(bool verified) = 0;
    // libwebsockets reported an error of its own (or a callback threw).
    virtual void on_transport_error(const std::string &message) = 0;
};

struct TransportConfig {
    std::string host;  // IPv4 or IPv6 literal; "" = every interface
    int port = 0;      // 0 = ephemeral
    size_t read_buffer_bytes = 0;  // most bytes handed to one on_read (one buffer shared by all links)
    size_t write_batch_bytes = 0;  // most bytes one write() hands to the kernel at once
    bool epoll = true;             // libev (epoll) loop; false: lws' own poll() loop
    int64_t tls_handshake_timeout_ms = 0;  // lws' own deadline for an unfinished TLS handshake
    bool tls = false;
    TlsFiles tls_files;
    std::string tls_client_auth;  // none | optional | required
    std::string tls_ciphers;
    // A second, plain listener on the same loop (metrics.listen); port -1: none.
    std::string metrics_host;  // IPv4 or IPv6 literal
    int metrics_port = -1;
};

class Transport {
public:
    explicit Transport(TransportEvents *events);
    ~Transport();
    Transport(const Transport &) = delete;
    Transport &operator=(const Transport &) = delete;

    // Creates the loop and binds the listener. "" when listening, else a
    // message saying why not (address in use, TLS files...).
    std::string open(const TransportConfig &cfg);
    bool is_open() const;
    int port() const;
    // The metrics listener's bound port, -1 without one.
    int metrics_port() const;
    // Serves one round of events (blocks until something happens).
    void run_once();
    // The libev loop under lws (tuning.event_loop epoll), for other clients
    // of the same loop (hiredis, lib/cluster); nullptr with lws' own poll loop
    // or while closed. Service thread. Whatever is attached to it must be
    // detached before close().
    struct ev_loop *ev_loop() const;
    // Any thread while open: makes the loop call on_wake() soon.
    void wake();
    // Closes every link (on_close for each) and the listener, frees the loop.
    void close();

    // Timers, on the service thread; a timer fires once per start().
    class Timer {
    public:
        Timer();
        ~Timer();
        Timer(const Timer &) = delete;
        Timer &operator=(const Timer &) = delete;

    private:
        friend class Transport;
        struct Impl;
        std::unique_ptr<Impl> impl_;
    };
    void start_timer(Timer *t, int64_t delay_us, std::function<void()> fn);
    void stop_timer(Timer *t);

    // Per link (service thread).
    static void set_owner(Link *link, void *owner);
    static void *owner(Link *link);
    // Writes bytes now (the kernel takes what it can; lws keeps and flushes
    // the rest before the next on_read/on_writable). False: the link failed.
    bool write(Link *link, const uint8_t *data, size_t len);
    // Bytes handed to write() that the kernel has not taken yet.
    static bool write_pending(Link *link);
    void want_writable(Link *link);
    // Closes the link soon (its pending output is flushed first); on_close follows.
    void close_soon(Link *link);
    // Sends FIN after what was written (no more output; input goes on until
    // the peer closes): call once write_pending() is false.
    static void shutdown_write(Link *link);
    // The connection is upgraded: lws' own TLS handshake deadline no longer applies.
    static void handshake_done(Link *link);
    static int fd(Link *link);
    static SSL *ssl(Link *link);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace wsgate
