/* A real redis-server for the cluster tests: started on a free 127.0.0.1
 * port with no persistence, in a temporary directory, and stopped by its pid.
 * It can be killed (-9), frozen (SIGSTOP) and thawed, and started again on
 * the same port. Plus a raw RESP query, so a test can look at Redis itself
 * (PUBSUB CHANNELS...) without a client library. Every wait is bounded. */
#ifndef WSGATE_REDIS_PROC_H
#define WSGATE_REDIS_PROC_H

#include <stddef.h>
#include <sys/types.h>

typedef struct redis_proc {
    pid_t pid;  /* 0 while not running */
    int port;
    char dir[64];          /* the temporary directory (removed by rp_free) */
    char password[64];     /* requirepass, "" for none */
    char address[32];      /* "127.0.0.1:PORT", for cluster.redis */
} redis_proc;

/* Starts redis-server (password NULL or "" for none). NULL on failure (with a
 * message on stderr). Waits until it answers PING. */
redis_proc *rp_start(const char *password);
/* Starts it again on the same port (after rp_kill/rp_stop). 0 on success. */
int rp_restart(redis_proc *r);
/* SIGKILL and reap: Redis is gone at once. */
void rp_kill(redis_proc *r);
/* SIGSTOP / SIGCONT: a hung Redis (the port still accepts TCP). */
void rp_freeze(redis_proc *r);
void rp_thaw(redis_proc *r);
/* Stops (SIGTERM, then SIGKILL after 2 s), removes the directory, frees. NULL ok. */
void rp_free(redis_proc *r);

/* Sends one command (argv, argc items) over a fresh connection with AUTH
 * when the server has a password, reads the reply and returns it as text:
 * a status, error or bulk string as is, an integer in decimal, an array as
 * its items joined by '\n' (flat). Malloc'd; NULL on failure or timeout. */
char *rp_query(redis_proc *r, int argc, const char *const *argv);
/* How many channels PUBSUB CHANNELS `pattern` lists (-1 on failure). */
int rp_channel_count(redis_proc *r, const char *pattern);

/* A TCP server on 127.0.0.1 that echoes what it reads (not Redis), on its
 * own thread; stopped by rp_echo_free. */
typedef struct rp_echo rp_echo;
rp_echo *rp_echo_start(int *port_out);
void rp_echo_free(rp_echo *e);

#endif
