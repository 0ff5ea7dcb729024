/*
 * The floor of a stream fan-out on this machine: what the kernel alone takes to put one small message on each of
 * N loopback TCP connections, with a reader process on the other ends (as `stream_clients.c` is for the daemon).
 *
 * The writer (this process) holds the server ends; a forked reader holds the client ends, on epoll, with
 * SO_TIMESTAMPNS. Each round (paced, `--interval-ms`) the writer notes the time and writes a 300-byte message to
 * every connection in turn (one write() each, as an event loop does); the reader notes the kernel's receive
 * timestamp of each message, and the writer subtracts the start of its round: round start → socket, the same
 * measure as the daemon's bus → socket with nothing but a loop of write() between the two.
 *
 * `--threads T` splits the connections among T writer threads that write in parallel (the daemon's event loops are
 * as many as the cores; default 2).
 *
 * Prints one JSON object line: connections, writer threads, rounds, p50/p99/max of write → socket in µs, and the
 * writers' CPU time per round (µs).
 *
 * Build: cc -O2 -Wall -Wextra -Werror -pthread -o fanout_floor fanout_floor.c
 * Usage: fanout_floor [--connections N] [--threads T] [--rounds R] [--interval-ms MS]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MESSAGE 300

static void die(const char *what) {
    fprintf(stderr, "fanout_floor: %s: %s\n", what, strerror(errno));
    exit(1);
}

static int64_t monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The reader: every message of every connection; prints the percentiles. */
static void reader(int *fds, int n, int rounds, int report) {
    int ep = epoll_create1(0);
    if (ep < 0) die("epoll_create1");
    for (int i = 0; i < n; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) < 0) die("epoll_ctl");
    }
    struct timespec real, mono;
    clock_gettime(CLOCK_REALTIME, &real);
    clock_gettime(CLOCK_MONOTONIC, &mono);
    int64_t offset = ((int64_t)mono.tv_sec - real.tv_sec) * 1000000000 + (mono.tv_nsec - real.tv_nsec);
    size_t expected = (size_t)n * (size_t)rounds, count = 0;
    double *latencies = malloc(expected * sizeof *latencies);
    size_t *pending = calloc((size_t)n, sizeof *pending);
    if (!latencies || !pending) die("malloc");
    char buffer[MESSAGE * 64];
    struct epoll_event events[256];
    while (count < expected) {
        int ready = epoll_wait(ep, events, 256, 10000);
        if (ready <= 0) break;
        for (int e = 0; e < ready; e++) {
            int i = (int)events[e].data.u32;
            struct iovec iov = {.iov_base = buffer, .iov_len = sizeof buffer};
            union {
                char space[CMSG_SPACE(sizeof(struct timespec))];
                struct cmsghdr align;
            } control;
            struct msghdr message = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control,
                                     .msg_controllen = sizeof control};
            ssize_t got = recvmsg(fds[i], &message, 0);
            if (got <= 0) continue;
            int64_t arrived = monotonic_ns();
            for (struct cmsghdr *c = CMSG_FIRSTHDR(&message); c; c = CMSG_NXTHDR(&message, c)) {
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
                    struct timespec at;
                    memcpy(&at, CMSG_DATA(c), sizeof at);
                    arrived = (int64_t)at.tv_sec * 1000000000 + at.tv_nsec + offset;
                }
            }
            /* One arrival for each whole message these bytes complete (the stream may split or join them). */
            pending[i] += (size_t)got;
            while (pending[i] >= MESSAGE && count < expected) {
                pending[i] -= MESSAGE;
                latencies[count++] = (double)arrived / 1000.0;
            }
        }
    }
    if (write(report, &count, sizeof count) != sizeof count || write(report, latencies, count * sizeof *latencies) < 0)
        die("report");
    exit(0);
}

struct writer {
    int *fds;
    int count, rounds;
    pthread_barrier_t *start;
};

static char message[MESSAGE];

/* One writer thread: at each round's start, one write() to each of its connections. */
static void *write_rounds(void *argument) {
    struct writer *w = argument;
    for (int r = 0; r < w->rounds; r++) {
        pthread_barrier_wait(w->start);
        for (int i = 0; i < w->count; i++)
            if (write(w->fds[i], message, sizeof message) != (ssize_t)sizeof message) die("write");
    }
    return NULL;
}

int main(int argc, char **argv) {
    int n = 1000, threads = 2, rounds = 200, interval_ms = 20;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--connections")) n = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--rounds")) rounds = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--interval-ms")) interval_ms = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "usage: fanout_floor [--connections N] [--threads T] [--rounds R] [--interval-ms MS]\n");
            return 64;
        }
    }
    if (n < 1 || threads < 1 || threads > n || rounds < 1) {
        fprintf(stderr, "fanout_floor: need 1 <= threads <= connections and rounds >= 1\n");
        return 64;
    }
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t length = sizeof address;
    if (listener < 0 || bind(listener, (struct sockaddr *)&address, sizeof address) < 0 || listen(listener, 4096) < 0 ||
        getsockname(listener, (struct sockaddr *)&address, &length) < 0)
        die("listen");
    int *servers = malloc((size_t)n * sizeof *servers), *clients = malloc((size_t)n * sizeof *clients);
    if (!servers || !clients) die("malloc");
    int one = 1;
    for (int i = 0; i < n; i++) {
        clients[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (clients[i] < 0 || connect(clients[i], (struct sockaddr *)&address, sizeof address) < 0) die("connect");
        setsockopt(clients[i], SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
        servers[i] = accept(listener, NULL, NULL);
        if (servers[i] < 0) die("accept");
        setsockopt(servers[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    int report[2];
    if (pipe(report) < 0) die("pipe");
    pid_t child = fork();
    if (child < 0) die("fork");
    if (child == 0) reader(clients, n, rounds, report[1]);
    for (int i = 0; i < n; i++) close(clients[i]);
    memset(message, 'x', sizeof message);
    int64_t *starts = malloc((size_t)rounds * sizeof *starts);
    struct writer *writers = calloc((size_t)threads, sizeof *writers);
    pthread_t *ids = calloc((size_t)threads, sizeof *ids);
    pthread_barrier_t start;
    if (!starts || !writers || !ids || pthread_barrier_init(&start, NULL, (unsigned)threads + 1) != 0) die("malloc");
    for (int t = 0; t < threads; t++) {
        int from = n * t / threads, to = n * (t + 1) / threads;
        writers[t] = (struct writer){.fds = servers + from, .count = to - from, .rounds = rounds, .start = &start};
        if (pthread_create(&ids[t], NULL, write_rounds, &writers[t]) != 0) die("pthread_create");
    }
    struct rusage before, after;
    getrusage(RUSAGE_SELF, &before);
    for (int r = 0; r < rounds; r++) {
        struct timespec pause = {.tv_sec = interval_ms / 1000, .tv_nsec = (long)(interval_ms % 1000) * 1000000};
        nanosleep(&pause, NULL);
        starts[r] = monotonic_ns();
        pthread_barrier_wait(&start);
    }
    for (int t = 0; t < threads; t++) pthread_join(ids[t], NULL);
    getrusage(RUSAGE_SELF, &after);
    size_t count = 0;
    if (read(report[0], &count, sizeof count) != sizeof count) die("read report");
    double *arrivals = malloc(count * sizeof *arrivals);
    size_t got = 0;
    while (got < count * sizeof *arrivals) {
        ssize_t k = read(report[0], (char *)arrivals + got, count * sizeof *arrivals - got);
        if (k <= 0) die("read report");
        got += (size_t)k;
    }
    waitpid(child, NULL, 0);
    /* Each arrival belongs to the latest round that started before it. */
    double *latencies = malloc(count * sizeof *latencies);
    for (size_t i = 0; i < count; i++) {
        int r = rounds - 1;
        while (r > 0 && (double)starts[r] / 1000.0 > arrivals[i]) r--;
        latencies[i] = arrivals[i] - (double)starts[r] / 1000.0;
    }
    qsort(latencies, count, sizeof *latencies, compare);
    double cpu = ((double)(after.ru_utime.tv_sec - before.ru_utime.tv_sec) +
                  (double)(after.ru_stime.tv_sec - before.ru_stime.tv_sec)) * 1e6 +
                 (double)(after.ru_utime.tv_usec - before.ru_utime.tv_usec) +
                 (double)(after.ru_stime.tv_usec - before.ru_stime.tv_usec);
    size_t p50 = count / 2, p99 = (size_t)(0.99 * (double)count);
    if (count == 0) return 1;
    printf("{\"connections\": %d, \"threads\": %d, \"rounds\": %d, \"messages\": %zu, \"write_to_socket_p50_us\": %.1f, "
           "\"write_to_socket_p99_us\": %.1f, \"write_to_socket_max_us\": %.1f, \"writer_cpu_us_per_round\": %.0f}\n",
           n, threads, rounds, count, latencies[p50], latencies[p99 < count ? p99 : count - 1], latencies[count - 1],
           cpu / rounds);
    return 0;
}
