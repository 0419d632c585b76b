/* A leak on purpose, to see the soak fail end to end (not built with the
 * project; nothing else uses it). Preloaded into the soak, it wraps accept and
 * accept4 in every process (only the server accepts): with LEAK_MEM set each
 * accepted connection leaks 2 KiB, with LEAK_FD set every 200th leaks a
 * descriptor.
 *
 *   gcc -shared -fPIC -O1 -o /tmp/leak_shim.so bench/soak/leak_shim.c -ldl
 *   LD_PRELOAD=/tmp/leak_shim.so LEAK_MEM=1 bench/soak/soak.py BUILD_DIR   # must FAIL: RSS slope
 *   LD_PRELOAD=/tmp/leak_shim.so LEAK_FD=1 bench/soak/soak.py BUILD_DIR    # must FAIL: descriptors
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int accepted;
/* The chain of leaked blocks: kept reachable so that the compiler cannot
 * drop the allocation, never freed. */
void *volatile leak_shim_kept;

static void leak(int fd) {
    if (fd < 0) return;
    accepted++;
    if (getenv("LEAK_FD") && accepted % 200 == 0) (void)dup(fd);
    if (getenv("LEAK_MEM")) {
        void **block = malloc(2048);
        if (!block) return;
        memset(block, 1, 2048); /* touched: it counts in RSS */
        *block = leak_shim_kept;
        leak_shim_kept = block;
    }
}

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) {
    static int (*real)(int, struct sockaddr *, socklen_t *, int);
    if (!real) real = (int (*)(int, struct sockaddr *, socklen_t *, int))dlsym(RTLD_NEXT, "accept4");
    int r = real(fd, addr, len, flags);
    leak(r);
    return r;
}

int accept(int fd, struct sockaddr *addr, socklen_t *len) {
    static int (*real)(int, struct sockaddr *, socklen_t *);
    if (!real) real = (int (*)(int, struct sockaddr *, socklen_t *))dlsym(RTLD_NEXT, "accept");
    int r = real(fd, addr, len);
    leak(r);
    return r;
}
