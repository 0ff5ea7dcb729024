/*
 * Many stream clients against one portsyncd, for `bench_latency.py --clients N` (run inside the daemon's network
 * namespace). One thread, epoll, non-blocking sockets, so that the clients' own CPU stays small beside the daemon's.
 *
 * Half of the readers use SSE (GET /v1/sse/events), half WebSocket (GET /v1/ws/events), both filtered to
 * `port_state`; `--deaf` more connect over SSE with a tiny receive buffer and never read. Each reader records, for
 * every `port_state` event after its `sync`, the time from the kernel message's receipt by the daemon
 * (`data.received_us`, CLOCK_MONOTONIC µs) to two moments: when the bytes that carried the event reached this
 * client's socket (the kernel's receive timestamp, SO_TIMESTAMPNS): bus → socket; and when this process read them:
 * bus → read, which adds this one thread's own turn through a thousand sockets.
 *
 * Prints `ready` once every reader has its `sync`. On a line on stdin (or EOF) it reads on until every reader still
 * connected has every `port_state` event the daemon published since `ready` (the difference of its
 * portsyncd_events_published_total{type="port_state"} at `ready` and now, GET /metrics; at most 60 s), so that a
 * daemon running behind shows as latency, not as events never counted. Then it prints one JSON object line:
 * readers, deaf, readers still connected, events received after the sync (all of them, and the `port_state` ones
 * per reader, min/max), the `port_state` events each reader was to get, p50/p99/max of the latency in µs, the
 * daemon's count of clients closed as `slow` (GET /metrics) and this process's CPU time. Anything wrong before
 * `ready` (a refused connection, a bad handshake) ends it with a message on stderr and exit status 1.
 *
 * Build: cc -O2 -Wall -Wextra -Werror -o stream_clients stream_clients.c
 * Usage: stream_clients --port PORT [--clients N] [--deaf N]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define SYNC_TIMEOUT_S 120      /* every reader must have its sync by then */
#define MAX_HANDSHAKES 128      /* readers connecting at once (the daemon's accept backlog is finite) */
#define STOP_TIMEOUT_S 60      /* after the stop, readers still behind are waited for this long at most */
#define QUIET_AFTER_STOP_MS 100 /* without the daemon's event count: after the stop, until no event for this long */
#define MAX_MESSAGE (16u << 20) /* a larger frame, message or SSE line is a protocol error */
#define STDIN_TAG UINT64_MAX

enum kind { SSE, WS };
enum phase { CONNECTING, HEADERS, BODY, CLOSED };
enum chunk_state { CHUNK_SIZE, CHUNK_EXT, CHUNK_DATA, CHUNK_DATA_END, CHUNK_TRAILER, CHUNK_DONE };

struct buf {
    char *p;
    size_t len, cap;
};

struct reader {
    int fd;
    enum kind kind;
    enum phase phase;
    bool synced;
    bool write_wanted; /* EPOLLOUT registered */
    uint64_t events;      /* events after the sync */
    uint64_t port_events; /* of which port_state */
    struct buf in;     /* bytes received and not yet consumed */
    struct buf out;    /* bytes to send (request, pong, close) */
    size_t out_off;
    char accept[29]; /* the Sec-WebSocket-Accept the server must send */
    /* SSE body */
    bool chunked;
    enum chunk_state chunk;
    uint64_t chunk_left;
    bool chunk_line_empty; /* CHUNK_TRAILER: the trailer line so far is empty */
    struct buf line;       /* the SSE line being assembled */
    struct buf data;       /* the event's data so far */
    bool has_data;
    bool after_cr; /* the previous byte ended a line with \r: a \n right after it ends nothing */
    char closed_comment[48]; /* `: closed: slow`, the daemon's last word on an SSE stream it ends */
    /* WebSocket */
    struct buf message; /* a fragmented message being assembled */
    bool in_message;
};

static int opt_port = 0, opt_clients = 1000, opt_deaf = 10;
static struct reader *readers;
static int epfd;
static int synced_count = 0, handshaking = 0, next_to_start = 0;
static double *latencies; /* µs, one per port_state event after the sync: to the socket */
static double *read_latencies; /* µs: to the read */
static size_t latency_count = 0, latency_cap = 0;
static uint64_t now_ns;        /* CLOCK_MONOTONIC when the bytes being parsed were read */
static uint64_t arrived_ns;    /* CLOCK_MONOTONIC when they reached the socket (the kernel's receive timestamp) */
static int64_t realtime_to_monotonic_ns; /* CLOCK_MONOTONIC - CLOCK_REALTIME, at start */
static uint64_t last_event_ns; /* when the last event after a sync arrived */
static bool stopping = false;
static uint64_t stop_at;
static long published_at_ready = -1; /* the daemon's count of port_state events published, when all were synced */
static long expected = -1;           /* port_state events each reader is to get after its sync, once known */
static int closed_early[2];          /* readers closed by the daemon or a protocol error, by kind (SSE, WS) */

static void die(const char *format, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *format, ...) {
    va_list args;
    va_start(args, format);
    fputs("stream_clients: ", stderr);
    vfprintf(stderr, format, args);
    fputc('\n', stderr);
    va_end(args);
    exit(1);
}

static uint64_t monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void buf_reserve(struct buf *b, size_t extra) {
    if (b->cap - b->len >= extra) return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < extra) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) die("out of memory");
    b->p = p;
    b->cap = cap;
}

static void buf_append(struct buf *b, const void *data, size_t len) {
    buf_reserve(b, len);
    memcpy(b->p + b->len, data, len);
    b->len += len;
}

static void buf_free(struct buf *b) {
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* ---- SHA-1 (FIPS 180-4) and base64, for the WebSocket handshake ---- */

static uint32_t rol32(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1(const uint8_t *msg, size_t len, uint8_t digest[20]) {
    uint32_t h[5] = {0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u, 0xC3D2E1F0u};
    size_t total = ((len + 8) / 64 + 1) * 64; /* the message, 0x80, zeros, the 64-bit length */
    for (size_t off = 0; off < total; off += 64) {
        uint8_t block[64];
        for (size_t i = 0; i < 64; i++) {
            size_t k = off + i;
            block[i] = k < len ? msg[k] : k == len ? 0x80 : 0;
        }
        if (off + 64 == total) {
            uint64_t bits = (uint64_t)len * 8;
            for (int i = 0; i < 8; i++) block[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
        }
        uint32_t w[80];
        for (int i = 0; i < 16; i++)
            w[i] = (uint32_t)block[4 * i] << 24 | (uint32_t)block[4 * i + 1] << 16 | (uint32_t)block[4 * i + 2] << 8 |
                   block[4 * i + 3];
        for (int i = 16; i < 80; i++) w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
        uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
        for (int i = 0; i < 80; i++) {
            uint32_t f, k;
            if (i < 20) f = (b & c) | (~b & d), k = 0x5A827999u;
            else if (i < 40) f = b ^ c ^ d, k = 0x6ED9EBA1u;
            else if (i < 60) f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDCu;
            else f = b ^ c ^ d, k = 0xCA62C1D6u;
            uint32_t t = rol32(a, 5) + f + e + k + w[i];
            e = d, d = c, c = rol32(b, 30), b = a, a = t;
        }
        h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
    }
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 4; j++) digest[4 * i + j] = (uint8_t)(h[i] >> (24 - 8 * j));
}

static void base64(const uint8_t *in, size_t len, char *out) {
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len) v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len) v |= in[i + 2];
        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
        out[o++] = i + 1 < len ? alphabet[v >> 6 & 63] : '=';
        out[o++] = i + 2 < len ? alphabet[v & 63] : '=';
    }
    out[o] = 0;
}

static void random_bytes(void *out, size_t len) {
    uint8_t *p = out;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("getrandom: %s", strerror(errno));
        }
        p += n, len -= (size_t)n;
    }
}

/* ---- a minimal JSON scan: the top-level "type" string and data.received_us ---- */

struct scan {
    const char *p, *end;
};

static void skip_ws(struct scan *s) {
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) s->p++;
}

/* A string at s->p (at its opening quote); its raw bytes (escapes left as they are) in *start and *len. */
static bool scan_string(struct scan *s, const char **start, size_t *len) {
    if (s->p >= s->end || *s->p != '"') return false;
    const char *begin = ++s->p;
    while (s->p < s->end && *s->p != '"') s->p += *s->p == '\\' ? 2 : 1;
    if (s->p >= s->end) return false;
    *start = begin;
    *len = (size_t)(s->p - begin);
    s->p++;
    return true;
}

static bool skip_value(struct scan *s, int depth) {
    skip_ws(s);
    if (s->p >= s->end || depth > 64) return false;
    const char *ignored;
    size_t ignored_len;
    switch (*s->p) {
    case '"': return scan_string(s, &ignored, &ignored_len);
    case '{':
    case '[': {
        char close = *s->p == '{' ? '}' : ']';
        s->p++;
        skip_ws(s);
        if (s->p < s->end && *s->p == close) return s->p++, true;
        for (;;) {
            if (close == '}') {
                skip_ws(s);
                if (!scan_string(s, &ignored, &ignored_len)) return false;
                skip_ws(s);
                if (s->p >= s->end || *s->p++ != ':') return false;
            }
            if (!skip_value(s, depth + 1)) return false;
            skip_ws(s);
            if (s->p >= s->end) return false;
            if (*s->p == close) return s->p++, true;
            if (*s->p++ != ',') return false;
        }
    }
    default: /* number, true, false, null */
        if (!*s->p || !strchr("-0123456789tfn", *s->p)) return false;
        while (s->p < s->end && !strchr(",}] \t\r\n", *s->p)) s->p++;
        return true;
    }
}

/* Walks the members of the object at s->p; calls member(key, s) with s at each value, which must consume it. */
static bool scan_object(struct scan *s, bool (*member)(const char *, size_t, struct scan *, void *), void *context) {
    skip_ws(s);
    if (s->p >= s->end || *s->p != '{') return false;
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == '}') return s->p++, true;
    for (;;) {
        const char *key;
        size_t key_len;
        skip_ws(s);
        if (!scan_string(s, &key, &key_len)) return false;
        skip_ws(s);
        if (s->p >= s->end || *s->p++ != ':') return false;
        skip_ws(s);
        if (!member(key, key_len, s, context)) return false;
        skip_ws(s);
        if (s->p >= s->end) return false;
        if (*s->p == '}') return s->p++, true;
        if (*s->p++ != ',') return false;
    }
}

struct event_fields {
    char type[32];
    bool has_received;
    uint64_t received_us;
};

static bool key_is(const char *key, size_t len, const char *name) {
    return len == strlen(name) && !memcmp(key, name, len);
}

static bool data_member(const char *key, size_t len, struct scan *s, void *context) {
    struct event_fields *fields = context;
    if (key_is(key, len, "received_us") && s->p < s->end && *s->p >= '0' && *s->p <= '9') {
        uint64_t value = 0;
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9') value = value * 10 + (uint64_t)(*s->p++ - '0');
        if (s->p < s->end && *s->p && strchr(".eE", *s->p)) return false; /* an integer is expected */
        fields->has_received = true;
        fields->received_us = value;
        return true;
    }
    return skip_value(s, 2);
}

static bool event_member(const char *key, size_t len, struct scan *s, void *context) {
    struct event_fields *fields = context;
    if (key_is(key, len, "type")) {
        const char *value;
        size_t value_len;
        if (!scan_string(s, &value, &value_len)) return false;
        if (value_len >= sizeof fields->type) value_len = sizeof fields->type - 1;
        memcpy(fields->type, value, value_len);
        fields->type[value_len] = 0;
        return true;
    }
    if (key_is(key, len, "data") && s->p < s->end && *s->p == '{') return scan_object(s, data_member, fields);
    return skip_value(s, 1);
}

/* ---- readers ---- */

static void watch(struct reader *r, int index) {
    uint32_t wanted = (r->phase == CONNECTING ? 0 : EPOLLIN) | (r->write_wanted ? EPOLLOUT : 0);
    struct epoll_event ev = {.events = wanted, .data.u64 = (uint64_t)index};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, r->fd, &ev) < 0) die("epoll_ctl: %s", strerror(errno));
}

static void reader_close(struct reader *r, int index, const char *why) {
    if (r->phase == CLOSED) return;
    if (!r->synced) {
        /* Before its sync a reader must not fail: the benchmark needs every one of them. */
        if (!stopping)
            die("reader %d (%s) failed before its sync: %s", index, r->kind == SSE ? "SSE" : "WebSocket", why);
        handshaking--;
    }
    if (why && closed_early[r->kind]++ == 0) /* why is NULL for the readers' own end */
        fprintf(stderr, "stream_clients: reader %d (%s) closed before the stop: %s\n", index,
                r->kind == SSE ? "SSE" : "WebSocket", why);
    epoll_ctl(epfd, EPOLL_CTL_DEL, r->fd, NULL);
    close(r->fd);
    r->fd = -1;
    r->phase = CLOSED;
    buf_free(&r->in);
    buf_free(&r->out);
    buf_free(&r->line);
    buf_free(&r->data);
    buf_free(&r->message);
}

/* Sends what is queued; registers for EPOLLOUT while some is left. */
static void flush(struct reader *r, int index) {
    while (r->out_off < r->out.len) {
        ssize_t n = send(r->fd, r->out.p + r->out_off, r->out.len - r->out_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            reader_close(r, index, strerror(errno));
            return;
        }
        r->out_off += (size_t)n;
    }
    bool pending = r->out_off < r->out.len;
    if (!pending) r->out.len = r->out_off = 0;
    if (pending != r->write_wanted) {
        r->write_wanted = pending;
        watch(r, index);
    }
}

static void start_next_reader(void);

static void dispatch(struct reader *r, int index, const char *json, size_t len) {
    struct event_fields fields = {0};
    struct scan s = {json, json + len};
    if (!scan_object(&s, event_member, &fields)) {
        reader_close(r, index, "an event that is not a JSON object");
        return;
    }
    if (!r->synced) {
        if (strcmp(fields.type, "sync") == 0) {
            r->synced = true;
            synced_count++;
            handshaking--;
            start_next_reader();
        }
        return; /* the snapshot before the sync is not timed */
    }
    r->events++;
    last_event_ns = now_ns;
    if (strcmp(fields.type, "port_state") == 0) r->port_events++;
    if (strcmp(fields.type, "port_state") == 0 && fields.has_received) {
        if (latency_count == latency_cap) { /* rare: the array is preallocated for the expected run */
            latency_cap *= 2;
            double *p = realloc(latencies, latency_cap * sizeof *latencies);
            double *q = realloc(read_latencies, latency_cap * sizeof *read_latencies);
            if (!p || !q) die("out of memory");
            latencies = p;
            read_latencies = q;
        }
        read_latencies[latency_count] = (double)now_ns / 1000.0 - (double)fields.received_us;
        latencies[latency_count++] = (double)arrived_ns / 1000.0 - (double)fields.received_us;
    }
}

/* One complete SSE line (without its end). */
static void sse_line(struct reader *r, int index, const char *line, size_t len) {
    if (len == 0) { /* dispatch */
        if (r->has_data) dispatch(r, index, r->data.p, r->data.len);
        r->data.len = 0;
        r->has_data = false;
        return;
    }
    if (line[0] == ':') { /* a comment: heartbeats, `: closed: slow` */
        if (len > 2 && !strncmp(line, ": closed", 8))
            snprintf(r->closed_comment, sizeof r->closed_comment, "%.*s", (int)len - 2, line + 2);
        return;
    }
    const char *colon = memchr(line, ':', len);
    size_t name_len = colon ? (size_t)(colon - line) : len;
    const char *value = colon ? colon + 1 : line + len;
    size_t value_len = (size_t)(line + len - value);
    if (value_len > 0 && value[0] == ' ') value++, value_len--;
    if (key_is(line, name_len, "data")) {
        if (r->has_data) buf_append(&r->data, "\n", 1);
        buf_append(&r->data, value, value_len);
        r->has_data = true;
    }
    /* `id:`, `event:` and `retry:` are not needed: the type is in the data's JSON, as it is for WebSocket. */
}

/* Decoded body bytes of an SSE stream: split into lines (\r\n, \n or \r). */
static void sse_bytes(struct reader *r, int index, const char *p, size_t len) {
    for (size_t i = 0; i < len && r->phase == BODY; i++) {
        char c = p[i];
        if (c == '\n' && r->after_cr) {
            r->after_cr = false;
            continue;
        }
        r->after_cr = c == '\r';
        if (c == '\r' || c == '\n') {
            sse_line(r, index, r->line.p, r->line.len);
            r->line.len = 0;
            continue;
        }
        /* Copy the run of ordinary bytes at once. */
        size_t j = i;
        while (j < len && p[j] != '\r' && p[j] != '\n') j++;
        if (r->line.len + (j - i) > MAX_MESSAGE) {
            reader_close(r, index, "an SSE line too long");
            return;
        }
        buf_append(&r->line, p + i, j - i);
        i = j - 1;
    }
}

/* The body of an SSE response: chunked transfer encoding decoded here. Returns false once the body has ended. */
static bool sse_body(struct reader *r, int index, const char *p, size_t len) {
    if (!r->chunked) {
        sse_bytes(r, index, p, len);
        return true;
    }
    size_t i = 0;
    while (i < len && r->phase == BODY) {
        char c = p[i];
        switch (r->chunk) {
        case CHUNK_SIZE:
        case CHUNK_EXT:
            i++;
            if (c == '\n') {
                r->chunk = r->chunk_left ? CHUNK_DATA : CHUNK_TRAILER;
                r->chunk_line_empty = true;
            } else if (r->chunk == CHUNK_EXT || c == '\r') {
                /* chunk extensions and the \r are ignored */
            } else if (c == ';' || c == ' ' || c == '\t') {
                r->chunk = CHUNK_EXT;
            } else {
                int digit = c >= '0' && c <= '9'   ? c - '0'
                            : c >= 'a' && c <= 'f' ? c - 'a' + 10
                            : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                   : -1;
                if (digit < 0 || r->chunk_left > (MAX_MESSAGE >> 4)) {
                    reader_close(r, index, "a bad chunk size");
                    return false;
                }
                r->chunk_left = r->chunk_left * 16 + (uint64_t)digit;
            }
            break;
        case CHUNK_DATA: {
            size_t n = len - i < r->chunk_left ? len - i : (size_t)r->chunk_left;
            sse_bytes(r, index, p + i, n);
            i += n;
            r->chunk_left -= n;
            if (r->chunk_left == 0) r->chunk = CHUNK_DATA_END;
            break;
        }
        case CHUNK_DATA_END: /* the \r\n after a chunk's data */
            i++;
            if (c == '\n') r->chunk = CHUNK_SIZE;
            else if (c != '\r') {
                reader_close(r, index, "no CRLF after a chunk");
                return false;
            }
            break;
        case CHUNK_TRAILER: /* after the last chunk: trailer lines up to an empty one */
            i++;
            if (c == '\n') {
                if (r->chunk_line_empty) {
                    r->chunk = CHUNK_DONE;
                    return false;
                }
                r->chunk_line_empty = true;
            } else if (c != '\r') {
                r->chunk_line_empty = false;
            }
            break;
        case CHUNK_DONE: return false;
        }
    }
    return r->phase == BODY;
}

static void ws_send_frame(struct reader *r, int index, int opcode, const char *payload, size_t len) {
    uint8_t header[8] = {(uint8_t)(0x80 | opcode), (uint8_t)(0x80 | len)}; /* control frames: len <= 125 */
    uint8_t mask[4];
    random_bytes(mask, sizeof mask);
    memcpy(header + 2, mask, 4);
    buf_append(&r->out, header, 6);
    for (size_t i = 0; i < len; i++) {
        char masked = (char)(payload[i] ^ mask[i & 3]);
        buf_append(&r->out, &masked, 1);
    }
    flush(r, index);
}

/* Whole frames from r->in; a partial one stays there for the next read. */
static void ws_frames(struct reader *r, int index) {
    size_t off = 0;
    while (r->phase == BODY) {
        const uint8_t *p = (const uint8_t *)r->in.p + off;
        size_t avail = r->in.len - off;
        if (avail < 2) break;
        bool fin = p[0] & 0x80;
        int opcode = p[0] & 0x0f;
        if (p[0] & 0x70) { reader_close(r, index, "a frame with RSV bits (no extension was negotiated)"); return; }
        if (p[1] & 0x80) { reader_close(r, index, "a masked frame from the server"); return; }
        uint64_t len = p[1] & 0x7f;
        size_t header = 2;
        if (len == 126) {
            if (avail < 4) break;
            len = (uint64_t)p[2] << 8 | p[3];
            header = 4;
        } else if (len == 127) {
            if (avail < 10) break;
            len = 0;
            for (int i = 0; i < 8; i++) len = len << 8 | p[2 + i];
            header = 10;
        }
        if (len > MAX_MESSAGE) { reader_close(r, index, "a frame too large"); return; }
        if (avail < header + len) {
            buf_reserve(&r->in, header + (size_t)len - avail); /* room for the rest of the frame */
            break;
        }
        const char *payload = (const char *)p + header;
        off += header + (size_t)len;
        if (opcode >= 0x8 && (!fin || len > 125)) {
            reader_close(r, index, "a fragmented or long control frame");
            return;
        }
        switch (opcode) {
        case 0x1: /* text */
        case 0x2: /* binary */
            if (r->in_message) { reader_close(r, index, "a new message inside a fragmented one"); return; }
            if (fin) dispatch(r, index, payload, (size_t)len);
            else {
                r->in_message = true;
                r->message.len = 0;
                buf_append(&r->message, payload, (size_t)len);
            }
            break;
        case 0x0: /* continuation */
            if (!r->in_message) { reader_close(r, index, "a continuation frame with no message"); return; }
            if (r->message.len + len > MAX_MESSAGE) { reader_close(r, index, "a message too large"); return; }
            buf_append(&r->message, payload, (size_t)len);
            if (fin) {
                r->in_message = false;
                dispatch(r, index, r->message.p, r->message.len);
            }
            break;
        case 0x8: { /* close: answer with the same status code, then go */
            char why[160] = "closed by the server";
            if (len >= 2)
                snprintf(why, sizeof why, "closed by the server: %d %.*s",
                         (uint8_t)payload[0] << 8 | (uint8_t)payload[1], (int)len - 2, payload + 2);
            ws_send_frame(r, index, 0x8, payload, len >= 2 ? 2 : 0);
            if (r->phase == BODY) reader_close(r, index, why);
            break;
        }
        case 0x9: ws_send_frame(r, index, 0xA, payload, (size_t)len); break; /* ping → pong */
        case 0xA: break;                                                      /* pong */
        default: { reader_close(r, index, "an unknown opcode"); return; }
        }
    }
    if (r->phase != BODY) return;
    memmove(r->in.p, r->in.p + off, r->in.len - off);
    r->in.len -= off;
}

/* The response headers are complete in r->in (`end` bytes, the blank line included). */
static bool parse_headers(struct reader *r, int index, size_t end) {
    char *text = r->in.p;
    text[end - 2] = 0; /* the headers as one string */
    int status = 0;
    if (sscanf(text, "HTTP/1.%*d %d", &status) != 1) {
        reader_close(r, index, "no HTTP status line");
        return false;
    }
    int expected = r->kind == SSE ? 200 : 101;
    if (status != expected) {
        char why[160];
        char *eol = strstr(text, "\r\n");
        if (eol) *eol = 0;
        snprintf(why, sizeof why, "%s (expected %d)", text, expected);
        reader_close(r, index, why);
        return false;
    }
    bool upgrade = false, accepted = false;
    for (char *line = strstr(text, "\r\n"); line; line = strstr(line, "\r\n")) {
        line += 2;
        char *eol = strstr(line, "\r\n");
        if (eol) *eol = 0;
        char *colon = strchr(line, ':');
        if (colon) {
            *colon = 0;
            char *value = colon + 1;
            while (*value == ' ' || *value == '\t') value++;
            char *tail = value + strlen(value);
            while (tail > value && (tail[-1] == ' ' || tail[-1] == '\t')) *--tail = 0;
            if (!strcasecmp(line, "Transfer-Encoding") && strcasestr(value, "chunked")) r->chunked = true;
            if (!strcasecmp(line, "Upgrade") && !strcasecmp(value, "websocket")) upgrade = true;
            if (!strcasecmp(line, "Sec-WebSocket-Accept") && !strcmp(value, r->accept)) accepted = true;
        }
        if (!eol) break;
        line = eol;
        *eol = '\r';
    }
    if (r->kind == WS && !(upgrade && accepted)) {
        reader_close(r, index, upgrade ? "a wrong Sec-WebSocket-Accept" : "101 without Upgrade: websocket");
        return false;
    }
    r->phase = BODY;
    r->chunk = CHUNK_SIZE;
    r->chunk_left = 0;
    return true;
}

static void on_readable(struct reader *r, int index) {
    buf_reserve(&r->in, 16384);
    struct iovec iov = {.iov_base = r->in.p + r->in.len, .iov_len = r->in.cap - r->in.len};
    union {
        char space[CMSG_SPACE(sizeof(struct timespec))];
        struct cmsghdr align;
    } control;
    struct msghdr message = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control, .msg_controllen = sizeof control};
    ssize_t n = recvmsg(r->fd, &message, 0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
        reader_close(r, index, strerror(errno));
        return;
    }
    if (n == 0) {
        char why[128];
        snprintf(why, sizeof why, "connection closed by the server%s%s", r->closed_comment[0] ? ": " : "",
                 r->closed_comment);
        reader_close(r, index, why);
        return;
    }
    now_ns = monotonic_ns();
    arrived_ns = now_ns; /* without a timestamp (none came with these bytes), the read's time */
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&message); c; c = CMSG_NXTHDR(&message, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
            struct timespec at;
            memcpy(&at, CMSG_DATA(c), sizeof at);
            arrived_ns = (uint64_t)((int64_t)at.tv_sec * 1000000000 + at.tv_nsec + realtime_to_monotonic_ns);
        }
    }
    r->in.len += (size_t)n;
    if (r->phase == HEADERS) {
        size_t scan_from = r->in.len - (size_t)n >= 3 ? r->in.len - (size_t)n - 3 : 0;
        char *end = memmem(r->in.p + scan_from, r->in.len - scan_from, "\r\n\r\n", 4);
        if (!end) {
            if (r->in.len > 65536) reader_close(r, index, "response headers too long");
            return;
        }
        size_t header_len = (size_t)(end - r->in.p) + 4;
        if (!parse_headers(r, index, header_len)) return;
        memmove(r->in.p, r->in.p + header_len, r->in.len - header_len);
        r->in.len -= header_len;
    }
    if (r->kind == WS) {
        ws_frames(r, index);
    } else {
        bool open = sse_body(r, index, r->in.p, r->in.len);
        if (r->phase == BODY) {
            r->in.len = 0; /* the SSE parser keeps its own state: every byte is consumed */
            if (!open) {
                char why[128];
                snprintf(why, sizeof why, "the SSE stream ended%s%s", r->closed_comment[0] ? ": " : "",
                         r->closed_comment);
                reader_close(r, index, why);
            }
        }
    }
}

static void on_connected(struct reader *r, int index) {
    int error = 0;
    socklen_t len = sizeof error;
    getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &error, &len);
    if (error) {
        reader_close(r, index, strerror(error));
        return;
    }
    r->phase = HEADERS;
    char request[512];
    int n;
    if (r->kind == SSE) {
        n = snprintf(request, sizeof request,
                     "GET /v1/sse/events?events=port_state HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                     "Accept: text/event-stream\r\n\r\n",
                     opt_port);
    } else {
        uint8_t nonce[16];
        char key[25], concatenated[64];
        uint8_t digest[20];
        random_bytes(nonce, sizeof nonce);
        base64(nonce, sizeof nonce, key);
        snprintf(concatenated, sizeof concatenated, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
        sha1((const uint8_t *)concatenated, strlen(concatenated), digest);
        base64(digest, sizeof digest, r->accept);
        n = snprintf(request, sizeof request,
                     "GET /v1/ws/events?events=port_state HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                     "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     opt_port, key);
    }
    buf_append(&r->out, request, (size_t)n);
    r->write_wanted = true; /* so that flush() re-registers with EPOLLIN whatever is left */
    flush(r, index);
}

static struct sockaddr_in daemon_address(void) {
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt_port)};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return address;
}

/* Starts readers while fewer than MAX_HANDSHAKES are between connect() and their sync. */
static void start_next_reader(void) {
    while (next_to_start < opt_clients && handshaking < MAX_HANDSHAKES) {
        int index = next_to_start++;
        struct reader *r = &readers[index];
        r->kind = index % 2 == 0 ? SSE : WS;
        r->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (r->fd < 0) die("socket: %s", strerror(errno));
        int one = 1;
        setsockopt(r->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (setsockopt(r->fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) < 0)
            die("SO_TIMESTAMPNS: %s", strerror(errno));
        struct sockaddr_in address = daemon_address();
        r->phase = CONNECTING;
        handshaking++;
        struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = (uint64_t)index};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, r->fd, &ev) < 0) die("epoll_ctl: %s", strerror(errno));
        if (connect(r->fd, (struct sockaddr *)&address, sizeof address) == 0) {
            on_connected(r, index);
        } else if (errno != EINPROGRESS) {
            reader_close(r, index, strerror(errno));
        }
        /* EINPROGRESS: EPOLLOUT says when it is done */
    }
}

/* A client that connects with a tiny receive buffer, asks for every event and never reads. */
static int deaf_client(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket: %s", strerror(errno));
    int size = 2048;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    struct sockaddr_in address = daemon_address();
    if (connect(fd, (struct sockaddr *)&address, sizeof address) < 0) die("deaf client: connect: %s", strerror(errno));
    static const char request[] = "GET /v1/sse/events HTTP/1.1\r\nHost: bench\r\n\r\n";
    if (send(fd, request, sizeof request - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof request - 1))
        die("deaf client: send: %s", strerror(errno));
    return fd;
}

/* ---- GET /metrics: the daemon's count of port_state events published, and of clients closed as slow ---- */

static const char metrics_request[] = "GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";

struct http_response {
    struct buf text; /* the response so far, NUL-terminated */
    size_t body;     /* where the body starts; 0 while the headers are incomplete */
    long content_length;
    bool chunked;
};

/* Takes n more bytes (already in text); true once the response is complete by its own framing. */
static bool response_complete(struct http_response *r, size_t n) {
    r->text.len += n;
    r->text.p[r->text.len] = 0;
    if (!r->body) {
        char *end = strstr(r->text.p, "\r\n\r\n");
        if (!end) return false;
        *end = 0; /* the headers alone, for the look-ups below */
        r->body = (size_t)(end - r->text.p) + 4;
        r->content_length = -1;
        char *field = strcasestr(r->text.p, "\r\nContent-Length:");
        if (field) r->content_length = strtol(field + 17, NULL, 10);
        field = strcasestr(r->text.p, "\r\nTransfer-Encoding:");
        if (field) {
            char *eol = strstr(field + 2, "\r\n");
            if (eol) *eol = 0;
            r->chunked = strcasestr(field, "chunked") != NULL;
            if (eol) *eol = '\r';
        }
        *end = '\r';
    }
    size_t have = r->text.len - r->body;
    if (r->content_length >= 0) return have >= (size_t)r->content_length;
    return r->chunked && have >= 5 && !memcmp(r->text.p + r->text.len - 5, "0\r\n\r\n", 5);
}

/* Decodes a complete chunked body in place; returns its length, or -1 if it is malformed. */
static long dechunk(char *body, size_t len) {
    size_t in = 0, out = 0;
    for (;;) {
        char *eol = memmem(body + in, len - in, "\r\n", 2);
        if (!eol) return -1;
        char *digits_end;
        unsigned long size = strtoul(body + in, &digits_end, 16);
        if (digits_end == body + in) return -1;
        in = (size_t)(eol - body) + 2;
        if (size == 0) return (long)out;
        if (len - in < size + 2) return -1;
        memmove(body + out, body + in, size);
        out += size, in += size + 2;
    }
}

/* The value of the sample `name` (metric and labels) in a Prometheus text exposition, or `absent`. */
static long sample(const char *text, const char *name, long absent) {
    size_t len = strlen(name);
    for (const char *line = text; line; line = strchr(line, '\n'), line = line ? line + 1 : NULL)
        if (!strncmp(line, name, len) && line[len] == ' ') return (long)strtod(line + len, NULL);
    return absent;
}

struct metrics {
    long closed_slow;          /* stream clients closed as slow (0 while the daemon has no such line), or -1 */
    long port_state_published; /* port_state events published on the bus, or -1 */
};

/* The two samples from a response (complete, or cut short by the server's close); frees it. */
static struct metrics parse_metrics(struct http_response *r, bool report_closed) {
    struct metrics result = {-1, -1};
    int status = 0;
    if (r->body && sscanf(r->text.p, "HTTP/1.%*d %d", &status) == 1 && status == 200) {
        char *text = r->text.p + r->body;
        long len = (long)(r->text.len - r->body);
        if (r->content_length >= 0 && r->content_length < len) len = r->content_length;
        if (r->chunked) len = dechunk(text, (size_t)len);
        if (len >= 0) {
            text[len] = 0;
            result.closed_slow = sample(text, "portsyncd_stream_clients_closed_total{reason=\"slow\"}", 0);
            result.port_state_published = sample(text, "portsyncd_events_published_total{type=\"port_state\"}", -1);
            if (report_closed && closed_early[SSE] + closed_early[WS]) /* why, as the daemon counts it */
                for (const char *line = text; line; line = strchr(line, '\n'), line = line ? line + 1 : NULL)
                    if (!strncmp(line, "portsyncd_stream_clients_closed_total{", 38))
                        fprintf(stderr, "stream_clients: %.*s\n", (int)strcspn(line, "\n"), line);
        }
    }
    if (result.closed_slow < 0)
        fprintf(stderr, "stream_clients: GET /metrics: no usable response (status %d)\n", status);
    buf_free(&r->text);
    return result;
}

/* One blocking GET /metrics (at the end, when nothing else is left to read); with the daemon's reasons on stderr
   when readers were closed before the end. */
static struct metrics fetch_metrics(void) {
    struct http_response response = {0};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval timeout = {.tv_sec = 30};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    struct sockaddr_in address = daemon_address();
    if (connect(fd, (struct sockaddr *)&address, sizeof address) < 0 ||
        send(fd, metrics_request, sizeof metrics_request - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof metrics_request - 1)) {
        fprintf(stderr, "stream_clients: GET /metrics: %s\n", strerror(errno));
    } else {
        for (;;) { /* until the body is complete (Content-Length or the last chunk) or the server closes */
            buf_reserve(&response.text, 65536);
            ssize_t n = recv(fd, response.text.p + response.text.len, response.text.cap - response.text.len - 1, 0);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) fprintf(stderr, "stream_clients: GET /metrics: %s\n", strerror(errno));
            if (n <= 0 || response_complete(&response, (size_t)n)) break;
        }
    }
    if (fd >= 0) close(fd);
    if (!response.text.p) return (struct metrics){-1, -1};
    return parse_metrics(&response, true);
}

/* One GET /metrics in the event loop while the readers go on reading (a busy daemon may take seconds). */
enum purpose { AT_READY, AT_STOP, RECHECK };
#define METRICS_TAG (UINT64_MAX - 1)
#define METRICS_TIMEOUT_S 60

static struct {
    int fd; /* -1: none pending */
    enum purpose purpose;
    bool connected;
    uint64_t deadline;
    struct http_response response;
} pending = {.fd = -1};

static void metrics_done(enum purpose purpose, struct metrics metrics);

static void metrics_finish(bool ok) {
    enum purpose purpose = pending.purpose;
    epoll_ctl(epfd, EPOLL_CTL_DEL, pending.fd, NULL);
    close(pending.fd);
    pending.fd = -1;
    struct metrics metrics = {-1, -1};
    if (ok && pending.response.text.p) metrics = parse_metrics(&pending.response, false);
    buf_free(&pending.response.text);
    metrics_done(purpose, metrics);
}

static void metrics_start(enum purpose purpose) {
    pending.purpose = purpose;
    pending.connected = false;
    pending.deadline = monotonic_ns() + (uint64_t)METRICS_TIMEOUT_S * 1000000000u;
    pending.response = (struct http_response){0};
    pending.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (pending.fd < 0) die("socket: %s", strerror(errno));
    struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = METRICS_TAG};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, pending.fd, &ev) < 0) die("epoll_ctl: %s", strerror(errno));
    struct sockaddr_in address = daemon_address();
    if (connect(pending.fd, (struct sockaddr *)&address, sizeof address) < 0 && errno != EINPROGRESS) {
        fprintf(stderr, "stream_clients: GET /metrics: %s\n", strerror(errno));
        metrics_finish(false);
    }
}

static void metrics_event(uint32_t events) {
    if (!pending.connected) {
        int error = 0;
        socklen_t len = sizeof error;
        getsockopt(pending.fd, SOL_SOCKET, SO_ERROR, &error, &len);
        /* The request is tiny: a fresh socket's buffer takes it whole. */
        if (error || send(pending.fd, metrics_request, sizeof metrics_request - 1, MSG_NOSIGNAL) !=
                         (ssize_t)(sizeof metrics_request - 1)) {
            fprintf(stderr, "stream_clients: GET /metrics: %s\n", strerror(error ? error : errno));
            metrics_finish(false);
            return;
        }
        pending.connected = true;
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = METRICS_TAG};
        epoll_ctl(epfd, EPOLL_CTL_MOD, pending.fd, &ev);
        return;
    }
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
    buf_reserve(&pending.response.text, 65536);
    struct buf *text = &pending.response.text;
    ssize_t n = recv(pending.fd, text->p + text->len, text->cap - text->len - 1, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n < 0) fprintf(stderr, "stream_clients: GET /metrics: %s\n", strerror(errno));
    if (n <= 0) {
        metrics_finish(n == 0);
        return;
    }
    if (response_complete(&pending.response, (size_t)n)) metrics_finish(true);
}

static int parse_int(const char *name, const char *value) {
    char *end;
    long n = value ? strtol(value, &end, 10) : -1;
    if (!value || *end || n < 0 || n > 1000000) die("%s wants a number, got %s", name, value ? value : "nothing");
    return (int)n;
}

static void parse_args(int argc, char **argv) {
    bool have_port = false;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *names[] = {"--port", "--clients", "--deaf"};
        int *targets[] = {&opt_port, &opt_clients, &opt_deaf};
        bool known = false;
        for (int k = 0; k < 3; k++) {
            size_t len = strlen(names[k]);
            if (strncmp(arg, names[k], len) != 0 || (arg[len] != 0 && arg[len] != '=')) continue;
            const char *value = arg[len] == '=' ? arg + len + 1 : (i + 1 < argc ? argv[++i] : NULL);
            *targets[k] = parse_int(names[k], value);
            have_port |= k == 0;
            known = true;
        }
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            printf("usage: stream_clients --port PORT [--clients N (1000)] [--deaf N (10)]\n");
            exit(0);
        }
        if (!known) die("unknown argument %s (usage: --port PORT [--clients N] [--deaf N])", arg);
    }
    if (!have_port || opt_port == 0 || opt_port > 65535) die("--port PORT is required");
}

static void raise_fd_limit(void) {
    rlim_t needed = (rlim_t)opt_clients + (rlim_t)opt_deaf + 64;
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) < 0 || limit.rlim_cur >= needed) return;
    if (limit.rlim_max < needed) limit.rlim_max = needed; /* needs CAP_SYS_RESOURCE; tried anyway */
    limit.rlim_cur = needed;
    if (setrlimit(RLIMIT_NOFILE, &limit) < 0)
        die("cannot raise RLIMIT_NOFILE to %lu: %s", (unsigned long)needed, strerror(errno));
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void print_latency(const char *name, bool have, double value) {
    if (have) printf(", \"%s\": %.1f", name, value);
    else printf(", \"%s\": null", name);
}

/* ---- main ---- */

static bool ready = false;   /* `ready` printed */
static bool finished = false; /* after the stop: every reader has every event, or that cannot be known */

static void print_ready(void) {
    ready = true;
    printf("ready\n");
    fflush(stdout);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = STDIN_TAG};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, STDIN_FILENO, &ev) < 0) {
        /* a regular file or /dev/null: a read never waits, so the line (or EOF) is there now */
        stopping = true;
        stop_at = monotonic_ns();
        if (published_at_ready >= 0) metrics_start(AT_STOP);
    }
}

/* Readers still open that have fewer port_state events than expected. */
static int readers_behind(void) {
    int behind = 0;
    for (int i = 0; i < opt_clients; i++)
        if (readers[i].phase == BODY && readers[i].port_events < (uint64_t)expected) behind++;
    return behind;
}

static void metrics_done(enum purpose purpose, struct metrics metrics) {
    long published = metrics.port_state_published;
    switch (purpose) {
    case AT_READY:
        published_at_ready = published;
        print_ready();
        break;
    case AT_STOP:
        if (published >= published_at_ready) expected = published - published_at_ready;
        break; /* otherwise: no count, so the quiet window decides */
    case RECHECK:
        /* Everyone had what was published at the stop; more may have come since (the bus behind STATE_DB). */
        if (published > published_at_ready + expected) expected = published - published_at_ready;
        else finished = true;
        break;
    }
}

int main(int argc, char **argv) {
    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    readers = calloc((size_t)opt_clients + 1, sizeof *readers);
    latency_cap = (size_t)opt_clients * 1024 > 65536 ? (size_t)opt_clients * 1024 : 65536;
    latencies = malloc(latency_cap * sizeof *latencies);
    read_latencies = malloc(latency_cap * sizeof *read_latencies);
    if (!readers || !latencies || !read_latencies) die("out of memory");
    struct timespec real, mono;
    clock_gettime(CLOCK_REALTIME, &real);
    clock_gettime(CLOCK_MONOTONIC, &mono);
    realtime_to_monotonic_ns = ((int64_t)mono.tv_sec - (int64_t)real.tv_sec) * 1000000000 +
                               ((int64_t)mono.tv_nsec - (int64_t)real.tv_nsec);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) die("epoll_create1: %s", strerror(errno));

    int *deaf = calloc((size_t)opt_deaf + 1, sizeof *deaf);
    if (!deaf) die("out of memory");
    for (int i = 0; i < opt_deaf; i++) deaf[i] = deaf_client();
    start_next_reader();

    uint64_t started = monotonic_ns();
    bool ready_asked = false;
    struct epoll_event events[256];
    while (!finished) {
        uint64_t now = monotonic_ns(), until = UINT64_MAX;
        if (pending.fd >= 0 && now >= pending.deadline) {
            fprintf(stderr, "stream_clients: GET /metrics: no answer in %d s\n", METRICS_TIMEOUT_S);
            metrics_finish(false);
            continue;
        }
        if (!ready) {
            until = started + (uint64_t)SYNC_TIMEOUT_S * 1000000000u;
            if (now >= until)
                die("only %d of %d readers had their sync after %d s", synced_count, opt_clients, SYNC_TIMEOUT_S);
            if (synced_count == opt_clients && !ready_asked) {
                ready_asked = true;
                metrics_start(AT_READY); /* `ready` once the daemon's count is known */
                continue;
            }
        } else if (stopping) {
            until = stop_at + (uint64_t)STOP_TIMEOUT_S * 1000000000u;
            if (pending.fd < 0) {
                if (expected >= 0) {
                    if (readers_behind() == 0) {
                        metrics_start(RECHECK);
                        continue;
                    }
                } else { /* no count from the daemon: until no event has come for a while */
                    uint64_t last = last_event_ns > stop_at ? last_event_ns : stop_at;
                    uint64_t quiet = last + QUIET_AFTER_STOP_MS * 1000000ull;
                    if (now >= quiet) break;
                    if (quiet < until) until = quiet;
                }
            }
            if (now >= until) {
                if (expected >= 0)
                    fprintf(stderr, "stream_clients: %d readers still lacked some of the %ld events after %d s\n",
                            readers_behind(), expected, STOP_TIMEOUT_S);
                break;
            }
        }
        if (pending.fd >= 0 && pending.deadline < until) until = pending.deadline;
        int timeout = until == UINT64_MAX ? -1 : (int)((until - now) / 1000000) + 1;
        int n = epoll_wait(epfd, events, (int)(sizeof events / sizeof events[0]), timeout);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait: %s", strerror(errno));
        }
        for (int i = 0; i < n; i++) {
            if (events[i].data.u64 == STDIN_TAG) {
                char line[256];
                ssize_t got = read(STDIN_FILENO, line, sizeof line);
                if (got <= 0 || memchr(line, '\n', (size_t)got)) {
                    epoll_ctl(epfd, EPOLL_CTL_DEL, STDIN_FILENO, NULL);
                    stopping = true;
                    stop_at = monotonic_ns();
                    if (published_at_ready >= 0) metrics_start(AT_STOP);
                }
                continue;
            }
            if (events[i].data.u64 == METRICS_TAG) {
                if (pending.fd >= 0) metrics_event(events[i].events);
                continue;
            }
            int index = (int)events[i].data.u64;
            struct reader *r = &readers[index];
            if (r->phase == CLOSED) continue;
            if (r->phase == CONNECTING) {
                on_connected(r, index);
                continue;
            }
            if (events[i].events & EPOLLOUT) flush(r, index);
            if (r->phase != CLOSED && events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(r, index);
        }
    }
    if (pending.fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, pending.fd, NULL);
        close(pending.fd);
        buf_free(&pending.response.text);
    }
    /* Stop: the readers go first (a WebSocket one says goodbye with a close frame), then the daemon's count. */
    int connected = 0;
    uint64_t events_total = 0, events_min = UINT64_MAX, events_max = 0;
    for (int i = 0; i < opt_clients; i++) {
        struct reader *r = &readers[i];
        if (r->phase == BODY) {
            connected++;
            if (r->kind == WS) ws_send_frame(r, i, 0x8, "\x03\xe8", 2);
        }
        events_total += r->events;
        if (r->port_events < events_min) events_min = r->port_events;
        if (r->port_events > events_max) events_max = r->port_events;
        reader_close(r, i, NULL);
    }
    if (opt_clients == 0) events_min = 0;
    if (closed_early[SSE] + closed_early[WS])
        fprintf(stderr, "stream_clients: readers closed before the end: %d SSE, %d WebSocket\n", closed_early[SSE],
                closed_early[WS]);
    qsort(latencies, latency_count, sizeof *latencies, compare_doubles);
    qsort(read_latencies, latency_count, sizeof *read_latencies, compare_doubles);
    bool have = latency_count > 0;
    size_t p50 = (size_t)(0.50 * (double)latency_count), p99 = (size_t)(0.99 * (double)latency_count);
    if (p50 >= latency_count) p50 = latency_count - 1;
    if (p99 >= latency_count) p99 = latency_count - 1;
    long slow = fetch_metrics().closed_slow;
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    double cpu = (double)(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                 (double)(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
    printf("{\"readers\": %d, \"deaf\": %d, \"readers_connected\": %d, \"events\": %llu, "
           "\"events_per_reader_min\": %llu, \"events_per_reader_max\": %llu",
           opt_clients, opt_deaf, connected, (unsigned long long)events_total, (unsigned long long)events_min,
           (unsigned long long)events_max);
    if (expected >= 0) printf(", \"events_expected_per_reader\": %ld", expected);
    else printf(", \"events_expected_per_reader\": null");
    print_latency("bus_to_socket_p50_us", have, have ? latencies[p50] : 0);
    print_latency("bus_to_socket_p99_us", have, have ? latencies[p99] : 0);
    print_latency("bus_to_socket_max_us", have, have ? latencies[latency_count - 1] : 0);
    print_latency("bus_to_read_p50_us", have, have ? read_latencies[p50] : 0);
    print_latency("bus_to_read_p99_us", have, have ? read_latencies[p99] : 0);
    if (slow >= 0) printf(", \"closed_slow\": %ld", slow);
    else printf(", \"closed_slow\": null");
    printf(", \"clients_cpu_s\": %.2f}\n", cpu);
    fflush(stdout);
    for (int i = 0; i < opt_deaf; i++) close(deaf[i]);
    return 0;
}
