// Which server's service thread the calling thread is, as a thread-local
// mark: compared, never dereferenced, so a thread may ask about a server
// that another thread is freeing (wsg_completion_wait does).
#pragma once

namespace wsgate {

// The server whose loop runs on this thread; nullptr on any other thread.
const void *current_service_server();

// Marks the calling thread as `server`'s service thread while it lives.
class ServiceThreadScope {
public:
    explicit ServiceThreadScope(const void *server);
    ~ServiceThreadScope();
    ServiceThreadScope(const ServiceThreadScope &) = delete;
    ServiceThreadScope &operator=(const ServiceThreadScope &) = delete;

private:
    const void *previous_;
};

}  // namespace wsgate
