/*
 * loop_app.c - the benchmark hello on fcgi-runtime's non-blocking face (fcgi_loop_*): one
 * thread, one epoll loop, no thread of the library. Answers what native_app.c's "hello" mode
 * answers, so the two compare one thread of each face.
 *
 *   loop_app ADDR
 */
#include <fcgi.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/resource.h>

static const char HELLO[] = "Content-Type: text/plain\r\n\r\nHello, world!\n";

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: loop_app ADDR\n");
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    /* Any number of requests per connection: opt in (fcgi_listen advertises FCGI_MPXS_CONNS=0,
       as PHP's layer does). */
    fcgi_set_limit(FCGI_LIMIT_MPXS_CONNS, 1);
    int lfd = fcgi_listen(argv[1], 1024);
    fcgi_loop *lp = lfd < 0 ? NULL : fcgi_loop_new(lfd);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN};
    if (!lp || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fcgi_loop_fd(lp), &ev) < 0) {
        fprintf(stderr, "loop_app: cannot serve %s\n", argv[1]);
        return 1;
    }
    while (!fcgi_in_shutdown()) {
        int wait = fcgi_loop_work(lp);
        fcgi_request *r;
        /* The hello needs no body and fits any socket: answered at once. A request woken
         * later (its connection closed, say) has been finished already; nothing to do. */
        while ((r = fcgi_loop_accept(lp)) != NULL) {
            fcgi_loop_write(r, FCGI_STDOUT, HELLO, (int)sizeof HELLO - 1);
            fcgi_loop_finish(r);
        }
        while (fcgi_loop_woken(lp) != NULL) {
        }
        struct epoll_event got;
        epoll_wait(ep, &got, 1, wait);
    }
    fcgi_loop_free(lp);
    return 0;
}
