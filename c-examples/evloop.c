/*
 * evloop.c - a single-threaded epoll program on fcgi-runtime's non-blocking face
 * (fcgi_loop_*): many slow requests at once, each waiting on a timer of the same loop.
 *
 *   evloop [-a ADDR] [-t THREADS]
 *
 * ADDR is "port", "host:port", "[v6]:port" or a Unix path; without -a the address comes from
 * FCGI_ADDR, else fd 0 must be a listening socket. With -t, THREADS blocking threads
 * (fcgi_accept_request) serve the same socket beside the loop: both faces in one process.
 *
 * Every request reads its whole body, then waits `sleep_ms` (from QUERY_STRING) on the
 * loop's timer heap, then answers:
 *   Content-Type: text/plain\r\n\r\n
 *   served_by=loop|thread\n
 *   request_id=<FastCGI id>\n
 *   stdin_length=<n>\n
 *   stdin_fnv1a64=<16 hex digits>\n
 * followed by `out` bytes (QUERY_STRING out=N) of the pattern byte i = 'a' + i % 26, written
 * as the connection takes them (FCGI_WOULD_BLOCK: wait until fcgi_loop_woken returns it).
 * QUERY_STRING "stats" answers the loop's counters instead:
 *   in_flight, max_in_flight, served, aborted, would_block (times a write had to wait).
 *
 * An aborted request (ABORT_REQUEST, its connection lost, or closed by the web server while
 * the request sleeps) is seen through fcgi_loop_woken and fcgi_is_aborted/fcgi_peer_closed, logged to stderr ("evloop: request N aborted") and given back at once,
 * even while it sleeps. On SIGTERM (fcgi_in_shutdown) the loop stops accepting, finishes the
 * requests it holds, and exits 0.
 */
#include <errno.h>
#include <fcgi.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define FNV_OFFSET UINT64_C(0xcbf29ce484222325)
#define FNV_PRIME UINT64_C(0x100000001b3)
#define CHUNK (64 * 1024)

enum state { READING, SLEEPING, WRITING };

struct req {
    fcgi_request *r;
    enum state st;
    uint64_t fnv;
    long long in_len;
    long sleep_ms;
    long long out_total, out_done;
    char head[256];
    int head_len, head_done;
    size_t heap_pos; /* index in the timer heap while SLEEPING */
};

static struct {
    long long in_flight, max_in_flight, served, aborted, would_block;
} stats;

/* ---- the timer heap: requests ordered by wake-up time ---------------------------------- */

struct timer {
    long long due_ms;
    struct req *q;
};
static struct timer *heap;
static size_t heap_len, heap_cap;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void heap_swap(size_t a, size_t b)
{
    struct timer t = heap[a];
    heap[a] = heap[b];
    heap[b] = t;
    heap[a].q->heap_pos = a;
    heap[b].q->heap_pos = b;
}

static void heap_up(size_t i)
{
    while (i > 0 && heap[(i - 1) / 2].due_ms > heap[i].due_ms) {
        heap_swap(i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_down(size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < heap_len && heap[l].due_ms < heap[m].due_ms)
            m = l;
        if (r < heap_len && heap[r].due_ms < heap[m].due_ms)
            m = r;
        if (m == i)
            return;
        heap_swap(i, m);
        i = m;
    }
}

static int heap_push(struct req *q, long long due)
{
    if (heap_len == heap_cap) {
        size_t cap = heap_cap ? heap_cap * 2 : 256;
        struct timer *h = realloc(heap, cap * sizeof *h);
        if (!h)
            return -1;
        heap = h;
        heap_cap = cap;
    }
    heap[heap_len] = (struct timer){due, q};
    q->heap_pos = heap_len++;
    heap_up(q->heap_pos);
    return 0;
}

static void heap_remove(struct req *q)
{
    size_t i = q->heap_pos;
    heap_len--;
    if (i == heap_len)
        return;
    heap_swap(i, heap_len);
    heap_up(i);
    heap_down(i);
}

/* ---- requests ------------------------------------------------------------------------- */

static long query_long(fcgi_request *r, const char *name)
{
    const char *qs = fcgi_getenv(r, "QUERY_STRING", 12);
    size_t n = strlen(name);
    for (const char *p = qs; p && *p;) {
        if (strncmp(p, name, n) == 0 && p[n] == '=')
            return strtol(p + n + 1, NULL, 10);
        p = strchr(p, '&');
        if (p)
            p++;
    }
    return 0;
}

static void done(struct req *q)
{
    fcgi_loop_finish(q->r);
    free(q);
    stats.in_flight--;
}

static void start_writing(struct req *q)
{
    q->st = WRITING;
    const char *qs = fcgi_getenv(q->r, "QUERY_STRING", 12);
    if (qs && strcmp(qs, "stats") == 0) {
        q->head_len = snprintf(q->head, sizeof q->head,
                               "Content-Type: text/plain\r\n\r\n"
                               "in_flight=%lld\nmax_in_flight=%lld\nserved=%lld\n"
                               "aborted=%lld\nwould_block=%lld\n",
                               stats.in_flight, stats.max_in_flight, stats.served,
                               stats.aborted, stats.would_block);
        return;
    }
    q->out_total = query_long(q->r, "out");
    q->head_len = snprintf(q->head, sizeof q->head,
                           "Content-Type: text/plain\r\n\r\n"
                           "served_by=loop\nrequest_id=%d\nstdin_length=%lld\n"
                           "stdin_fnv1a64=%016" PRIx64 "\n",
                           fcgi_request_id(q->r), q->in_len, q->fnv);
}

/* Moves a request on as far as it can go without waiting. Returns 0 while it waits (for
 * input, a timer or room to write), 1 once it is finished and freed. */
static int advance(struct req *q)
{
    static char buf[CHUNK];
    if (fcgi_is_aborted(q->r) || (q->st == SLEEPING && fcgi_peer_closed(q->r))) {
        /* Aborted, or its web server closed the connection while it sleeps (how nginx says
         * its client went away): nobody waits for the answer. */
        fprintf(stderr, "evloop: request %d aborted\n", fcgi_request_id(q->r));
        stats.aborted++;
        if (q->st == SLEEPING)
            heap_remove(q);
        done(q);
        return 1;
    }
    if (q->st == READING) {
        for (;;) {
            int n = fcgi_loop_read(q->r, buf, sizeof buf);
            if (n == FCGI_WOULD_BLOCK)
                return 0;
            if (n < 0) { /* body cut short: nothing to answer */
                done(q);
                return 1;
            }
            if (n == 0)
                break;
            for (int i = 0; i < n; i++) {
                q->fnv ^= (unsigned char)buf[i];
                q->fnv *= FNV_PRIME;
            }
            q->in_len += n;
        }
        q->sleep_ms = query_long(q->r, "sleep_ms");
        if (q->sleep_ms > 0) {
            q->st = SLEEPING;
            if (heap_push(q, now_ms() + q->sleep_ms) < 0) {
                done(q);
                return 1;
            }
            return 0;
        }
        start_writing(q);
    }
    if (q->st == SLEEPING)
        return 0; /* woken early (input after the end, say): the timer still runs */
    while (q->head_done < q->head_len) {
        int n = fcgi_loop_write(q->r, FCGI_STDOUT, q->head + q->head_done,
                                q->head_len - q->head_done);
        if (n == FCGI_WOULD_BLOCK) {
            stats.would_block++;
            return 0;
        }
        if (n < 0) {
            done(q);
            return 1;
        }
        q->head_done += n;
    }
    while (q->out_done < q->out_total) {
        long long left = q->out_total - q->out_done;
        int want = left < CHUNK ? (int)left : CHUNK;
        for (int i = 0; i < want; i++)
            buf[i] = (char)('a' + (q->out_done + i) % 26);
        int n = fcgi_loop_write(q->r, FCGI_STDOUT, buf, want);
        if (n == FCGI_WOULD_BLOCK) {
            stats.would_block++;
            return 0;
        }
        if (n < 0) {
            done(q);
            return 1;
        }
        q->out_done += n;
    }
    stats.served++;
    done(q);
    return 1;
}

/* ---- blocking threads beside the loop (-t) ------------------------------------------------ */

static int listen_fd = -1;

static void *blocking_thread(void *arg)
{
    (void)arg;
    fcgi_request *r = fcgi_init_request(listen_fd, NULL, NULL, NULL);
    static __thread char buf[CHUNK];
    while (r && fcgi_accept_request(r) >= 0) {
        uint64_t fnv = FNV_OFFSET;
        long long len = 0;
        int n;
        while ((n = fcgi_read(r, buf, sizeof buf)) > 0) {
            for (int i = 0; i < n; i++) {
                fnv ^= (unsigned char)buf[i];
                fnv *= FNV_PRIME;
            }
            len += n;
        }
        long ms = query_long(r, "sleep_ms");
        if (ms > 0) {
            struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
            while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
        }
        int hl = snprintf(buf, sizeof buf,
                          "Content-Type: text/plain\r\n\r\n"
                          "served_by=thread\nrequest_id=%d\nstdin_length=%lld\n"
                          "stdin_fnv1a64=%016" PRIx64 "\n",
                          fcgi_request_id(r), len, fnv);
        fcgi_write(r, FCGI_STDOUT, buf, hl);
        long long out = query_long(r, "out");
        for (long long done_ = 0; done_ < out;) {
            int want = out - done_ < CHUNK ? (int)(out - done_) : CHUNK;
            for (int i = 0; i < want; i++)
                buf[i] = (char)('a' + (done_ + i) % 26);
            if (fcgi_write(r, FCGI_STDOUT, buf, want) < 0)
                break;
            done_ += want;
        }
        fcgi_finish_request(r, 0);
    }
    fcgi_destroy_request(r);
    return NULL;
}

/* ---- the loop ----------------------------------------------------------------------------- */

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [-a ADDR] [-t THREADS]   (or FCGI_ADDR=ADDR, or a listening socket on fd 0)\n",
            argv0);
    exit(2);
}

int main(int argc, char **argv)
{
    const char *addr = NULL;
    int threads = 0, opt;
    while ((opt = getopt(argc, argv, "a:t:h")) != -1) {
        switch (opt) {
        case 'a': addr = optarg; break;
        case 't': threads = atoi(optarg); break;
        default: usage(argv[0]);
        }
    }
    /* Thousands of connections need thousands of descriptors: raise the soft limit. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    /* Any number of requests may share a connection: opt in to multiplexing, which fcgi_init and
       fcgi_listen leave off (FCGI_MPXS_CONNS=0), as PHP's layer does. */
    fcgi_set_limit(FCGI_LIMIT_MPXS_CONNS, 1);
    if (!addr)
        addr = getenv("FCGI_ADDR");
    if (addr) {
        listen_fd = fcgi_listen(addr, 1024);
        if (listen_fd < 0)
            return 1;
    } else if (fcgi_init()) {
        listen_fd = 0;
    } else {
        usage(argv[0]);
    }

    fcgi_loop *lp = fcgi_loop_new(listen_fd);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN};
    if (!lp || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fcgi_loop_fd(lp), &ev) < 0) {
        perror("evloop: setting up the loop");
        return 1;
    }
    for (int i = 0; i < threads; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, blocking_thread, NULL) != 0) {
            perror("evloop: pthread_create");
            return 1;
        }
        pthread_detach(t);
    }

    for (;;) {
        /* The runtime's work first: it says when it needs to run again (its timers). */
        int wait = fcgi_loop_work(lp);
        int shutting_down = fcgi_in_shutdown();
        if (!shutting_down) {
            fcgi_request *r;
            while ((r = fcgi_loop_accept(lp)) != NULL) {
                struct req *q = calloc(1, sizeof *q);
                if (!q) {
                    fcgi_loop_finish(r);
                    continue;
                }
                q->r = r;
                q->fnv = FNV_OFFSET;
                fcgi_set_request_data(r, q);
                if (++stats.in_flight > stats.max_in_flight)
                    stats.max_in_flight = stats.in_flight;
                advance(q);
            }
        }
        fcgi_request *w;
        while ((w = fcgi_loop_woken(lp)) != NULL)
            advance(fcgi_get_request_data(w));
        /* Timers of the application: requests whose sleep is over. */
        long long now = now_ms();
        while (heap_len > 0 && heap[0].due_ms <= now) {
            struct req *q = heap[0].q;
            heap_remove(q);
            start_writing(q);
            advance(q);
        }
        if (shutting_down && stats.in_flight == 0)
            break;
        if (heap_len > 0) {
            long long left = heap[0].due_ms - now;
            if (wait < 0 || left < wait)
                wait = (int)left;
        }
        struct epoll_event got;
        if (epoll_wait(ep, &got, 1, wait) < 0 && errno != EINTR) {
            perror("evloop: epoll_wait");
            return 1;
        }
    }
    fcgi_loop_free(lp);
    free(heap);
    return 0;
}
