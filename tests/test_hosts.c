/* tests/test_hosts.c - runtime/hosts.c: three hosts as three processes of this machine (this
 * one host 0, two forked children) meeting over loopback with torchrun's environment; the
 * checks every host agrees on, a disagreement named on every host; sums of doubles and floats
 * the same bits on every host and equal to adding in host order; host 0's bytes passed on;
 * the environment's mistakes refused; one host alone needs no environment. Each child
 * reports by its exit status. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

#include "hosts.h"
#include "test.h"

#define HOSTS 3
#define NF 1000

static double dval(int host, int i) { return 1.0 / (3.0 + host) + 1e-3 * i; }
static float fval(int host, int i) { return (float)(0.1 * (host + 1)) * (float)(i % 17) + 1e-7f * (float)i; }

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t n = sizeof a;
    bind(s, (struct sockaddr *)&a, sizeof a);
    getsockname(s, (struct sockaddr *)&a, &n);
    int port = ntohs(a.sin_port);
    close(s);
    return port;
}

static void set_env(int rank, int world, int port)
{
    char b[32];
    snprintf(b, sizeof b, "%d", rank);
    setenv("RANK", b, 1);
    snprintf(b, sizeof b, "%d", world);
    setenv("WORLD_SIZE", b, 1);
    snprintf(b, sizeof b, "%d", port);
    setenv("MASTER_PORT", b, 1);
    setenv("MASTER_ADDR", "127.0.0.1", 1);
    setenv("HZ_HOSTS_TIMEOUT", "20", 1);
}

/* One host's part: 0 when every result it sees is right. AGREE_BAD: host 2 gives another
 * second value. */
static int host_part(hz_hostlink *h, int agree_bad, int *bad_agree)
{
    int wrong = 0;
    static const char *const what[] = {"plan digest", "first step"};
    int64_t v[2] = {1234, h->rank == 2 && agree_bad ? 8 : 7};
    *bad_agree = hz_hosts_agree(h, v, 2, what) != 0;
    double d[3];
    for (int i = 0; i < 3; i++) d[i] = dval(h->rank, i);
    hz_hosts_sum_f64(h, d, 3);
    for (int i = 0; i < 3; i++) {
        double want = dval(0, i);
        for (int k = 1; k < HOSTS; k++) want += dval(k, i);
        wrong += memcmp(&want, &d[i], sizeof want) != 0;
    }
    float *f = malloc(NF * sizeof(float));
    for (int i = 0; i < NF; i++) f[i] = fval(h->rank, i);
    hz_hosts_sum_f32(h, f, NF);
    for (int i = 0; i < NF; i++) {
        float want = fval(0, i);
        for (int k = 1; k < HOSTS; k++) want += fval(k, i);
        wrong += memcmp(&want, &f[i], sizeof want) != 0;
    }
    free(f);
    char id[128];
    memset(id, h->rank == 0 ? 'z' : 0, sizeof id);
    hz_hosts_bcast(h, id, sizeof id);
    for (size_t i = 0; i < sizeof id; i++) wrong += id[i] != 'z';
    return wrong;
}

/* Three hosts; host 0 here. Returns host 0's wrong count; CHILD_OK the children's. */
static int run_hosts(int agree_bad, int *child_ok, int *bad0)
{
    int port = free_port();
    pid_t kid[HOSTS];
    for (int r = 1; r < HOSTS; r++) {
        if ((kid[r] = fork()) == 0) {
            set_env(r, HOSTS, port);
            fclose(stdout); /* the parent's lines only */
            hz_hostlink h;
            if (hz_hosts_join(&h, HOSTS) != 0) _exit(2);
            int bad_agree = 0;
            int wrong = host_part(&h, agree_bad, &bad_agree);
            hz_hosts_close(&h);
            _exit(wrong ? 1 : bad_agree != agree_bad ? 3 : 0);
        }
    }
    set_env(0, HOSTS, port);
    hz_hostlink h;
    int wrong = hz_hosts_join(&h, HOSTS) != 0 ? 1000 : 0;
    CHECK(wrong == 0 && h.n == HOSTS && h.rank == 0, "host 0 of %d joined the two forked hosts on port %d",
          HOSTS, port);
    if (!wrong) wrong = host_part(&h, agree_bad, bad0);
    hz_hosts_close(&h);
    *child_ok = 1;
    for (int r = 1; r < HOSTS; r++) {
        int st = 0;
        waitpid(kid[r], &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) *child_ok = 0;
    }
    return wrong;
}

int main(void)
{
    int child_ok = 0, bad0 = 0;
    int wrong = run_hosts(0, &child_ok, &bad0);
    CHECK(wrong == 0 && !bad0, "host 0: they agree; the sums of 3 doubles and %d floats are the "
          "bits of adding in host order; host 0's 128 bytes passed on", NF);
    CHECK(child_ok, "hosts 1 and 2: the same sums, bit for bit, and host 0's bytes");
    wrong = run_hosts(1, &child_ok, &bad0);
    CHECK(bad0 && child_ok, "host 2 with another first step: every host finds the disagreement "
          "(host 0 %s; the children exit as expected: %s)", bad0 ? "yes" : "no", child_ok ? "yes" : "no");

    /* one host: no environment needed, nothing opened */
    unsetenv("RANK");
    unsetenv("WORLD_SIZE");
    unsetenv("MASTER_PORT");
    unsetenv("MASTER_ADDR");
    hz_hostlink h;
    int rc = hz_hosts_join(&h, 1);
    double x = 2.5;
    hz_hosts_sum_f64(&h, &x, 1);
    CHECK(rc == 0 && h.n == 1 && x == 2.5, "one host alone: joined without the environment, its sum its own");
    hz_hosts_close(&h);
    /* the environment's mistakes (each says why on stderr) */
    setenv("WORLD_SIZE", "2", 1);
    setenv("RANK", "5", 1);
    setenv("MASTER_PORT", "1", 1);
    CHECK(hz_hosts_join(&h, 2) != 0, "RANK 5 of WORLD_SIZE 2 refused");
    setenv("RANK", "one", 1);
    CHECK(hz_hosts_join(&h, 2) != 0, "RANK=one refused");
    setenv("RANK", "0", 1);
    CHECK(hz_hosts_join(&h, 3) != 0, "WORLD_SIZE 2 for a plan of 3 hosts refused");
    CHECK(hz_hosts_join(&h, 1) != 0, "WORLD_SIZE 2 for a plan of one host refused");
    unsetenv("WORLD_SIZE");
    CHECK(hz_hosts_join(&h, 2) != 0, "a plan of 2 hosts without WORLD_SIZE refused");
    setenv("WORLD_SIZE", "2", 1);
    setenv("RANK", "1", 1);
    unsetenv("MASTER_ADDR");
    CHECK(hz_hosts_join(&h, 2) != 0, "host 1 without MASTER_ADDR refused");
    setenv("MASTER_ADDR", "127.0.0.1", 1);
    setenv("LOCAL_RANK", "1", 1);
    CHECK(hz_hosts_join(&h, 2) != 0, "LOCAL_RANK 1 refused (one process a host)");
    unsetenv("LOCAL_RANK");
    unsetenv("MASTER_PORT");
    CHECK(hz_hosts_join(&h, 2) != 0, "no MASTER_PORT refused");
    char port[16];
    snprintf(port, sizeof port, "%d", free_port());
    setenv("MASTER_PORT", port, 1);
    setenv("HZ_HOSTS_TIMEOUT", "1", 1);
    CHECK(hz_hosts_join(&h, 2) != 0, "host 1 whose host 0 is not there: refused after HZ_HOSTS_TIMEOUT");
    hz_hosts_close(&h);
    TEST_END();
}
