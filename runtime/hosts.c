/* runtime/hosts.c - the hosts of one run meeting at host 0 over TCP (hosts.h). */
#include "hosts.h"

#include "digest.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HELLO_MAGIC 0x687a632d686f7374ull /* "hzc-host" */

typedef struct hello {
    uint64_t magic;
    int64_t rank, n;
} hello;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void lost(int host, const char *what)
{
    fprintf(stderr, "train: error: host %d: the connection %s: that host stopped (its log says "
                    "why); this one stops too\n", host, what);
    exit(1);
}

static void send_all(int fd, int host, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) lost(host, "failed while sending");
        p += k;
        n -= (size_t)k;
    }
}

static void recv_all(int fd, int host, void *buf, size_t n)
{
    char *p = buf;
    while (n > 0) {
        ssize_t k = recv(fd, p, n, 0);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) lost(host, k == 0 ? "closed" : "failed while receiving");
        p += k;
        n -= (size_t)k;
    }
}

/* An integer from the environment: DEF when unset; -1 (said) when not a number in [lo, hi]. */
static int64_t env_int(const char *name, int64_t def, int64_t lo, int64_t hi)
{
    const char *v = getenv(name);
    if (!v || !*v) return def;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || *end || x < lo || x > hi) {
        fprintf(stderr, "train: error: %s=%s: expected a whole number from %lld to %lld\n", name,
                v, (long long)lo, (long long)hi);
        return -2;
    }
    return x;
}

static double timeout_s(void)
{
    const char *v = getenv("HZ_HOSTS_TIMEOUT");
    double t = v && *v ? atof(v) : 300.0;
    return t > 0 ? t : 300.0;
}

/* A connection's hello within 10 s: 0, or -1 (closed, silent, or short). */
static int recv_hello(int fd, hello *m)
{
    char *p = (char *)m;
    size_t n = sizeof *m;
    while (n > 0) {
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, 10000) <= 0) return -1;
        ssize_t k = recv(fd, p, n, 0);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Host 0: listen on PORT, take the other hosts' connections, each with its hello. */
static int meet(hz_hostlink *h, const char *port)
{
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE}, *ai = NULL;
    int rc = getaddrinfo(NULL, port, &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, "train: error: MASTER_PORT=%s: %s\n", port, gai_strerror(rc));
        return -1;
    }
    int ls = socket(ai->ai_family, ai->ai_socktype, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ls < 0 || bind(ls, ai->ai_addr, ai->ai_addrlen) != 0 || listen(ls, h->n) != 0) {
        fprintf(stderr, "train: error: host 0 cannot listen on port %s: %s (MASTER_PORT names a "
                        "free port on host 0)\n", port, strerror(errno));
        freeaddrinfo(ai);
        if (ls >= 0) close(ls);
        return -1;
    }
    freeaddrinfo(ai);
    printf("hosts: host 0 of %d, waiting on port %s for the other %d\n", h->n, port, h->n - 1);
    fflush(stdout);
    double end = now_s() + timeout_s();
    for (int joined = 0; joined < h->n - 1;) {
        struct pollfd pf = {ls, POLLIN, 0};
        int left_ms = (int)((end - now_s()) * 1e3);
        if (left_ms <= 0 || poll(&pf, 1, left_ms) == 0) {
            fprintf(stderr, "train: error: host 0: %d of the other %d hosts joined in %.0f s "
                            "(HZ_HOSTS_TIMEOUT); start a trainer on each with RANK 1 to %d\n",
                    joined, h->n - 1, timeout_s(), h->n - 1);
            close(ls);
            return -1;
        }
        int fd = accept(ls, NULL, NULL);
        if (fd < 0) continue;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        hello m;
        if (recv_hello(fd, &m) != 0 || m.magic != HELLO_MAGIC) {
            /* not a trainer (a port scan, a stray client): the hosts' wait goes on */
            fprintf(stderr, "train: note: host 0: a connection on port %s that is not a "
                            "trainer was closed\n", port);
            close(fd);
            continue;
        }
        if (m.rank < 1 || m.rank >= h->n || m.n != h->n ||
            h->fd[m.rank] >= 0) {
            fprintf(stderr, "train: error: host 0: a connection on the port said rank %lld of "
                            "%lld hosts (this run: %d hosts%s)\n", (long long)m.rank,
                    (long long)m.n, h->n,
                    m.rank >= 1 && m.rank < h->n && h->fd[m.rank] >= 0
                        ? "; that rank joined already" : "");
            close(fd);
            close(ls);
            return -1;
        }
        h->fd[m.rank] = fd;
        joined++;
    }
    close(ls);
    for (int k = 1; k < h->n; k++) send_all(h->fd[k], k, &(uint64_t){HELLO_MAGIC}, 8);
    return 0;
}

/* Host RANK > 0: connect to host 0 (again until the timeout: it may start later). */
static int reach(hz_hostlink *h, const char *addr, const char *port)
{
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int rc = getaddrinfo(addr, port, &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, "train: error: MASTER_ADDR=%s MASTER_PORT=%s: %s\n", addr, port,
                gai_strerror(rc));
        return -1;
    }
    double end = now_s() + timeout_s();
    int fd = -1, one = 1;
    while (fd < 0) {
        fd = socket(ai->ai_family, ai->ai_socktype, 0);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
        int e = errno;
        if (fd >= 0) close(fd);
        fd = -1;
        if (now_s() > end) {
            fprintf(stderr, "train: error: host %d: cannot reach host 0 at %s:%s in %.0f s "
                            "(HZ_HOSTS_TIMEOUT): %s; start the trainer with RANK=0 there\n",
                    h->rank, addr, port, timeout_s(), strerror(e));
            freeaddrinfo(ai);
            return -1;
        }
        usleep(200 * 1000);
    }
    freeaddrinfo(ai);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    h->fd[0] = fd;
    hello m = {HELLO_MAGIC, h->rank, h->n};
    send_all(fd, 0, &m, sizeof m);
    uint64_t go;
    recv_all(fd, 0, &go, 8);
    if (go != HELLO_MAGIC) lost(0, "answered the hello wrongly");
    return 0;
}

int hz_hosts_join(hz_hostlink *h, int64_t planned_hosts)
{
    memset(h, 0, sizeof *h);
    h->n = 1;
    int64_t world = env_int("WORLD_SIZE", 1, 1, 1 << 20);
    int64_t rank = env_int("RANK", 0, 0, 1 << 20);
    int64_t local = env_int("LOCAL_RANK", 0, 0, 1 << 20);
    if (world < 0 || rank < 0 || local < 0) return -1;
    if (planned_hosts <= 1 && world <= 1) return 0;
    if (world != planned_hosts) {
        if (planned_hosts > 1 && !getenv("WORLD_SIZE"))
            fprintf(stderr, "train: error: this trainer's plan splits each step over %lld hosts: "
                            "start one trainer on each with RANK (0 to %lld), WORLD_SIZE=%lld, "
                            "MASTER_ADDR (host 0's address) and MASTER_PORT set, as torchrun "
                            "does (docs/plan.md \"Several hosts\")\n",
                    (long long)planned_hosts, (long long)planned_hosts - 1,
                    (long long)planned_hosts);
        else
            fprintf(stderr, "train: error: WORLD_SIZE=%lld, and this trainer's plan is for %lld "
                            "host%s: build it with hzc build --hosts %lld (one trainer a host)\n",
                    (long long)world, (long long)planned_hosts, planned_hosts == 1 ? "" : "s",
                    (long long)world);
        return -1;
    }
    if (local != 0) {
        fprintf(stderr, "train: error: LOCAL_RANK=%lld: the trainer is one process a host, "
                        "driving all of the host's GPUs (torchrun --nproc-per-node 1)\n",
                (long long)local);
        return -1;
    }
    if (rank >= world) {
        fprintf(stderr, "train: error: RANK=%lld of WORLD_SIZE=%lld hosts: RANK is 0 to %lld\n",
                (long long)rank, (long long)world, (long long)world - 1);
        return -1;
    }
    const char *addr = getenv("MASTER_ADDR"), *port = getenv("MASTER_PORT");
    if ((!addr || !*addr) && rank > 0) {
        fprintf(stderr, "train: error: RANK=%lld: MASTER_ADDR (host 0's address) is not set\n",
                (long long)rank);
        return -1;
    }
    if (!port || !*port) {
        fprintf(stderr, "train: error: MASTER_PORT (the port host 0 listens on) is not set\n");
        return -1;
    }
    h->n = (int)world;
    h->rank = (int)rank;
    if (!(h->fd = malloc(sizeof(int) * (size_t)h->n))) return -1;
    for (int k = 0; k < h->n; k++) h->fd[k] = -1;
    int rc = rank == 0 ? meet(h, port) : reach(h, addr, port);
    if (rc == 0)
        printf("hosts: host %d of %d joined (%s)\n", h->rank, h->n,
               rank == 0 ? "all the others connected" : "connected to host 0");
    return rc;
}

int hz_hosts_agree(hz_hostlink *h, const int64_t *v, int n, const char *const *what)
{
    if (h->n <= 1) return 0;
    /* host 0's verdict: the first differing host (-1: none), the item, its value, host 0's */
    int64_t verdict[4] = {-1, 0, 0, 0};
    int64_t *got = malloc(sizeof(int64_t) * (size_t)n);
    if (!got) exit(1);
    if (h->rank == 0) {
        for (int k = 1; k < h->n; k++) {
            recv_all(h->fd[k], k, got, sizeof(int64_t) * (size_t)n);
            for (int i = 0; i < n && verdict[0] < 0; i++)
                if (got[i] != v[i]) verdict[0] = k, verdict[1] = i, verdict[2] = got[i], verdict[3] = v[i];
        }
        for (int k = 1; k < h->n; k++) send_all(h->fd[k], k, verdict, sizeof verdict);
    } else {
        send_all(h->fd[0], 0, v, sizeof(int64_t) * (size_t)n);
        recv_all(h->fd[0], 0, verdict, sizeof verdict);
    }
    free(got);
    if (verdict[0] < 0) return 0;
    fprintf(stderr, "train: error: host %lld has %s %lld where host 0 has %lld: every host runs "
                    "the same trainer, flags and data from the same checkpoint\n",
            (long long)verdict[0], what[verdict[1]], (long long)verdict[2], (long long)verdict[3]);
    return -1;
}

/* The sum over the hosts of N elements of ELEM bytes at V, by ADD (DST += SRC, n elements). */
static void sum_bytes(hz_hostlink *h, void *v, int64_t n, size_t elem,
                      void (*add)(void *dst, const void *src, int64_t n))
{
    if (h->n <= 1 || n <= 0) return;
    size_t bytes = (size_t)n * elem;
    if (h->rank != 0) {
        send_all(h->fd[0], 0, v, bytes);
        recv_all(h->fd[0], 0, v, bytes);
        return;
    }
    void *in = malloc(bytes);
    if (!in) {
        fprintf(stderr, "train: error: out of host memory for the sum over the hosts\n");
        exit(1);
    }
    for (int k = 1; k < h->n; k++) { /* host order: ((v0 + v1) + v2) + ... */
        recv_all(h->fd[k], k, in, bytes);
        add(v, in, n);
    }
    free(in);
    for (int k = 1; k < h->n; k++) send_all(h->fd[k], k, v, bytes);
}

static void add_f64(void *dst, const void *src, int64_t n)
{
    double *d = dst;
    const double *s = src;
    for (int64_t i = 0; i < n; i++) d[i] += s[i];
}

static void add_f32(void *dst, const void *src, int64_t n)
{
    float *d = dst;
    const float *s = src;
    for (int64_t i = 0; i < n; i++) d[i] += s[i];
}

void hz_hosts_sum_f64(hz_hostlink *h, double *v, int64_t n) { sum_bytes(h, v, n, 8, add_f64); }

void hz_hosts_sum_f32(hz_hostlink *h, float *v, int64_t n) { sum_bytes(h, v, n, 4, add_f32); }

void hz_hosts_bcast(hz_hostlink *h, void *buf, size_t n)
{
    if (h->n <= 1) return;
    if (h->rank == 0)
        for (int k = 1; k < h->n; k++) send_all(h->fd[k], k, buf, n);
    else
        recv_all(h->fd[0], 0, buf, n);
}

void hz_hosts_close(hz_hostlink *h)
{
    if (h->fd)
        for (int k = 0; k < h->n; k++)
            if (h->fd[k] >= 0) close(h->fd[k]);
    free(h->fd);
    memset(h, 0, sizeof *h);
    h->n = 1;
}

uint64_t hz_plan_digest(const hz_plan *p)
{
    hz_digest d;
    hz_digest_init(&d);
    hz_digest_update(&d, &p->dims, sizeof p->dims);
    hz_digest_update(&d, p->ops, sizeof(hz_op) * (size_t)p->op_n);
    const int64_t n[] = {p->op_n, p->unit_n, p->host_store_n, p->params_n, p->optimizer_state};
    hz_digest_update(&d, n, sizeof n);
    return hz_digest_final(&d);
}
