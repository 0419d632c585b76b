#include "core/service_thread.h"

namespace wsgate {
namespace {
thread_local const void *t_server = nullptr;
}  // namespace

const void *current_service_server() { return t_server; }

ServiceThreadScope::ServiceThreadScope(const void *server) : previous_(t_server) { t_server = server; }

ServiceThreadScope::~ServiceThreadScope() { t_server = previous_; }

}  // namespace wsgate
