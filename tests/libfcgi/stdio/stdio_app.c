/*
 * A libfcgi stdio-layer program (fcgi_stdio.h), driven by tests/libfcgi_stdio.rs.
 *
 * Each request's TEST parameter picks what it exercises; everything it observes is printed
 * to the request's stdout (or stderr) for the test to compare. In CGI mode (stdin not a
 * socket) TEST comes from the process environment. After the accept loop ends, the program
 * reports, straight to descriptor 1, what the stdio functions returned once the request
 * streams were gone.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wchar.h>

#include "fcgi_stdio.h" /* last: it renames FILE, printf, ... */

extern char **environ;

static const char *param(const char *name)
{
    const char *v = getenv(name);
    return v ? v : "";
}

/* printf to descriptor 1, bypassing the stdio layer. */
static void say(const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0)
        (void)!write(1, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* The file the library that defines FCGI_Accept was loaded from. */
static const char *library_path(void)
{
    Dl_info info;
    if (dladdr((void *)FCGI_Accept, &info) && info.dli_fname)
        return info.dli_fname;
    return "?";
}

static uint64_t fnv1a64(uint64_t h, const unsigned char *p, size_t n)
{
    while (n--) {
        h ^= *p++;
        h *= 0x100000001b3ULL;
    }
    return h;
}

static void header(void)
{
    printf("Content-Type: text/plain\r\n\r\n");
}

/* Every output function, stderr, formats, the environment, fileno, the exit status. */
static void t_output(int n)
{
    size_t items;
    header();
    puts("puts line");
    putchar('P');
    putchar('\n');
    fputs("fputs line\n", stdout);
    fwrite("fwrite line\n", 1, 12, stdout);
    items = fwrite("abcdef", 2, 3, stdout);
    putc('\n', stdout);
    fputc('c', stdout);
    printf("\nfwrite items=%zu\n", items);
    printf("formats: %zu %hhd %ls %jd %05.1f %s %%\n", (size_t)18446744073709551615ULL, 300,
           L"wide", (intmax_t)-42, 3.14159, "str");
    printf("fileno stdout=%d stdin=%d stderr=%d\n", fileno(stdout), fileno(stdin),
           fileno(stderr));
    printf("FOO=%s ROLE=%s missing=%s\n", param("FOO"), param("FCGI_ROLE"),
           getenv("NOT_A_PARAM") ? "set" : "unset");
    printf("request=%d\n", n);
    printf("start_filter_data=%d\n", FCGI_StartFilterData());
    printf("ferror=%d\n", ferror(stdout));
    /* The executable's copy of _fcgi_sF is the object the library filled in. */
    FCGX_PutS("via FCGX_PutS\n", FCGI_ToFcgiStream(FCGI_stdout));
    printf("stdio_stream=%s\n", FCGI_ToFILE(FCGI_stdout) ? "set" : "null");
    printf("lib=%s\n", library_path());
    fprintf(stderr, "to stderr %d\n", 42);
    fputs("fputs stderr\n", stderr);
    FCGI_SetExitStatus(atoi(param("STATUS")));
}

/* getchar, ungetc, fgets, fread, feof on the request body. */
static void t_read(void)
{
    char line[64], rest[256];
    int eof0 = feof(stdin);
    int c1 = getchar();
    int u = ungetc(c1, stdin);
    int c2 = getchar();
    char *l = fgets(line, sizeof line, stdin);
    size_t r = fread(rest, 1, sizeof rest, stdin);
    int eof1 = feof(stdin);
    int c3 = getchar();
    size_t r2 = fread(rest, 1, sizeof rest, stdin);
    header();
    printf("eof0=%d c1=%c ungetc=%c c2=%c\n", eof0, c1, u, c2);
    printf("fgets=[%s]\n", l ? l : "(null)");
    printf("fread=%zu [%.*s]\n", r, (int)r, rest);
    printf("eof1=%s getchar=%d fread_again=%zu\n", eof1 ? "yes" : "no", c3, r2);
}

/* gets, and fread counting whole items. */
static void t_gets(void)
{
    char buf[256], items[256];
    char *g1 = gets(buf);
    char s1[64], s2[64], s3[64];
    size_t k;
    strcpy(s1, g1 ? g1 : "(null)");
    g1 = gets(buf);
    strcpy(s2, g1 ? g1 : "(null)");
    g1 = gets(buf);
    strcpy(s3, g1 ? g1 : "(null)");
    k = fread(items, 4, 100, stdin); /* the 10 bytes left: 2 whole items */
    header();
    printf("gets=[%s] [%s] [%s]\n", s1, s2, s3);
    printf("items=%zu [%.8s]\n", k, items);
    g1 = gets(buf);
    printf("gets_at_eof=%s\n", g1 ? g1 : "(null)");
}

/* The body back through fread/fwrite in odd-sized pieces, its hash to stderr. */
static void t_echo(void)
{
    static unsigned char buf[7777];
    uint64_t h = 0xcbf29ce484222325ULL;
    size_t total = 0, k, bad = 0;
    printf("Content-Type: application/octet-stream\r\n\r\n");
    while ((k = fread(buf, 1, sizeof buf, stdin)) > 0) {
        h = fnv1a64(h, buf, k);
        total += k;
        if (fwrite(buf, 1, k, stdout) != k)
            bad++;
    }
    fprintf(stderr, "len=%zu fnv=%016llx short_writes=%zu\n", total, (unsigned long long)h,
            bad);
}

/* fflush(NULL) and fflush(stdout) send what was written before the program waits for more
 * input: the test sends each next body byte only after it has seen the flushed output. */
static void t_flush(void)
{
    int a, b, r1, r2;
    header();
    printf("first");
    r1 = fflush(NULL);
    a = getchar();
    printf(" got %c, second", a);
    r2 = fflush(stdout);
    b = getchar();
    printf(" got %c, fflush=%d,%d\n", b, r1, r2);
}

/* The FILTER role: stdin to EOF, then FCGI_StartFilterData and the DATA stream. */
static void t_filter(void)
{
    char in[256], data[256];
    size_t ni = fread(in, 1, sizeof in, stdin);
    int sfd = FCGI_StartFilterData();
    size_t nd = fread(data, 1, sizeof data, stdin);
    header();
    printf("stdin=[%.*s] start_filter_data=%d data=[%.*s]\n", (int)ni, in, sfd, (int)nd, data);
}

/* The wrappers of libc streams: fopen, fclose, fseek, ftell, ..., tmpfile, popen, fdopen,
 * freopen; seeking a FastCGI stream; perror. */
static void t_files(void)
{
    char path[1024], path2[1024], l[64], all[64];
    const char *dir = param("DIR");
    FILE *f, *t, *p, *d;
    fpos_t pos;
    long off;
    int fd, c, e1, e2, e3, r;
    size_t n;

    header();
    snprintf(path, sizeof path, "%s/f.txt", dir);
    snprintf(path2, sizeof path2, "%s/g.txt", dir);

    f = fopen(path, "w+");
    if (f == NULL) {
        printf("fopen failed: %s\n", strerror(errno));
        return;
    }
    printf("fprintf=%d\n", fprintf(f, "line one\nline two\n"));
    off = ftell(f);
    rewind(f);
    fgets(l, sizeof l, f);
    printf("ftell=%ld fgets=[%s]\n", off, strtok(l, "\n"));
    r = fgetpos(f, &pos);
    fgets(l, sizeof l, f);
    printf("fgetpos=%d fgets=[%s]", r, strtok(l, "\n"));
    r = fsetpos(f, &pos);
    fgets(l, sizeof l, f);
    printf(" fsetpos=%d again=[%s]\n", r, strtok(l, "\n"));
    r = fseek(f, 5, SEEK_SET);
    c = fgetc(f);
    printf("fseek=%d fgetc=%c fileno_ok=%d feof=%d ferror=%d\n", r, c, fileno(f) > 2, feof(f),
           ferror(f));
    printf("fclose=%d\n", fclose(f));

    f = fopen(path, "r");
    n = fread(all, 1, sizeof all, f);
    printf("reread=%zu feof=%d\n", n, feof(f) != 0);
    fclose(f);

    t = tmpfile();
    fputs("tmp data\n", t);
    rewind(t);
    fgets(l, sizeof l, t);
    printf("tmpfile=[%s] fclose=%d\n", strtok(l, "\n"), fclose(t));

    p = popen("echo popen out", "r");
    fgets(l, sizeof l, p);
    printf("popen=[%s] pclose=%d\n", strtok(l, "\n"), pclose(p));

    fd = open(path, O_RDONLY);
    d = fdopen(fd, "r");
    fgets(l, sizeof l, d);
    printf("fdopen=[%s] fclose=%d\n", strtok(l, "\n"), fclose(d));

    f = fopen(path, "r");
    f = freopen(path2, "w", f);
    fputs("reopened\n", f);
    fclose(f);
    f = fopen(path2, "r");
    fgets(l, sizeof l, f);
    printf("freopen=[%s]\n", strtok(l, "\n"));
    fclose(f);

    errno = 0;
    r = fseek(stdout, 0, SEEK_SET);
    e1 = errno == ESPIPE;
    errno = 0;
    off = ftell(stdin);
    e2 = errno == ESPIPE;
    errno = 0;
    rewind(stdout);
    e3 = errno == ESPIPE;
    printf("fcgx fseek=%d ftell=%ld espipe=%d%d%d fgetpos=%d setvbuf=%d\n", r, off, e1, e2, e3,
           fgetpos(stdout, &pos), setvbuf(stdout, NULL, _IONBF, 0));
    setbuf(stdout, NULL);

    errno = 0;
    f = fopen("/nonexistent/dir/file", "r");
    e1 = errno;
    printf("fopen_missing=%s\n", f ? "opened" : "null");
    errno = e1;
    perror("open");
    fputs("|after perror\n", stderr);
}

/* freopen of the request's stderr: it becomes a file until the next FCGI_Accept. */
static void t_freopen(void)
{
    char path[1024], l[64] = "";
    FILE *f, *r;
    int fd, closed;
    snprintf(path, sizeof path, "%s/err.txt", param("DIR"));
    r = freopen(path, "w", stderr);
    fprintf(stderr, "into the file\n");
    fd = fileno(stderr);
    closed = fclose(stderr);
    f = fopen(path, "r");
    if (f) {
        fgets(l, sizeof l, f);
        fclose(f);
    }
    header();
    printf("freopen=%s fileno_ok=%d fclose=%d file=[%s] fprintf_after_fclose=%d\n",
           r == stderr ? "stderr" : "other", fd > 2, closed, strtok(l, "\n"),
           fprintf(stderr, "lost\n"));
}

/* Every wrapper given a FILE with no stream (NULL, and a wrapper already closed). */
static void t_nulls(void)
{
    FILE *z = NULL;
    char buf[8] = "x";
    fpos_t pos;
    header();
    setbuf(z, NULL);
    rewind(z);
    clearerr(z);
    printf("fclose=%d freopen=%s setvbuf=%d fseek=%d ftell=%d fgetpos=%d fsetpos=%d\n",
           fclose(z), freopen("/dev/null", "r", z) ? "set" : "null",
           setvbuf(z, NULL, _IONBF, 0), fseek(z, 0, SEEK_SET), ftell(z), fgetpos(z, &pos),
           fsetpos(z, &pos));
    printf("fgetc=%d ungetc=%d fgets=%s fputc=%d fputs=%d fread=%zu fwrite=%zu\n", fgetc(z),
           ungetc('a', z), fgets(buf, sizeof buf, z) ? "set" : "null", fputc('a', z),
           fputs("a", z), fread(buf, 1, 1, z), fwrite(buf, 1, 1, z));
    printf("feof=%d ferror=%d fileno=%d pclose=%d fprintf=%d vfprintf_via_fprintf=%d\n",
           feof(z), ferror(z), fileno(z), pclose(z), fprintf(z, "x"), fprintf(z, "%d", 1));
    printf("fflush_all=%d fread_overflow=%zu\n", fflush(NULL),
           fread(buf, (size_t)1 << 62, 8, stdin));
}

/* CGI mode: the real stdio streams and the process environment. */
static void t_cgi(void)
{
    char line[64];
    char body[256];
    size_t n;
    char *l = fgets(line, sizeof line, stdin);
    n = fread(body, 1, sizeof body, stdin);
    header();
    printf("cgi FOO=%s\n", param("FOO"));
    printf("fgets=[%s] fread=%zu [%.*s] feof=%d\n", l ? strtok(l, "\n") : "(null)", n, (int)n,
           body, feof(stdin) != 0);
    printf("fileno stdout=%d stdin=%d stderr=%d\n", fileno(stdout), fileno(stdin),
           fileno(stderr));
    printf("formats: %zu %hhd %ls\n", (size_t)7, 300, L"wide");
    puts("puts line");
    fwrite("fwrite\n", 1, 7, stdout);
    fprintf(stderr, "cgi stderr\n");
    printf("lib=%s\n", library_path());
}

/* What the output functions returned before the first FCGI_Accept, when stdout has no
 * stream yet (printed by the "nostream" test). */
static int before_printf, before_vprintf, before_fprintf, before_puts, before_fputs;
static size_t before_fwrite;

static int call_vprintf(const char *fmt, ...)
{
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vprintf(fmt, ap);
    va_end(ap);
    return n;
}

static void t_nostream(void)
{
    header();
    printf("before accept: printf=%d vprintf=%d fprintf=%d puts=%d fputs=%d fwrite=%zu\n",
           before_printf, before_vprintf, before_fprintf, before_puts, before_fputs,
           before_fwrite);
}

int main(void)
{
    int n = 0, rc;
    int cgi = -1;

    /* No stream yet: nothing may be written anywhere. */
    before_printf = printf("before accept\n");
    before_vprintf = call_vprintf("before accept\n");
    before_fprintf = fprintf(stdout, "before accept\n");
    before_puts = puts("before accept");
    before_fputs = fputs("before accept\n", stdout);
    before_fwrite = fwrite("before accept\n", 1, 14, stdout);

    while ((rc = FCGI_Accept()) >= 0) {
        const char *t = param("TEST");
        n++;
        if (cgi < 0)
            cgi = FCGX_IsCGI();
        if (!strcmp(t, "output"))
            t_output(n);
        else if (!strcmp(t, "read"))
            t_read();
        else if (!strcmp(t, "gets"))
            t_gets();
        else if (!strcmp(t, "echo"))
            t_echo();
        else if (!strcmp(t, "flush"))
            t_flush();
        else if (!strcmp(t, "filter"))
            t_filter();
        else if (!strcmp(t, "files"))
            t_files();
        else if (!strcmp(t, "freopen"))
            t_freopen();
        else if (!strcmp(t, "nulls"))
            t_nulls();
        else if (!strcmp(t, "nostream"))
            t_nostream();
        else if (!strcmp(t, "cgi"))
            t_cgi();
        else {
            header();
            printf("unknown TEST '%s'\n", t);
        }
    }

    if (cgi == 1) {
        /* stdout is still the real one. */
        printf("second accept=%d\n", rc);
        return 0;
    }
    {
        /* FastCGI mode after a failed accept: no stream is left; nothing may crash. */
        char buf[8];
        int p = printf("after loop\n");
        int fp = fputs("after loop\n", stdout);
        int fe = fprintf(stderr, "after loop\n");
        size_t fw = fwrite("abc", 1, 3, stdout);
        int pc = putchar('x');
        int pu = puts("x");
        int ff = fflush(stdout);
        int fo = feof(stdin);
        int ge = getchar();
        char *fg = fgets(buf, sizeof buf, stdin);
        FCGI_SetExitStatus(3);
        FCGI_perror("x");
        FCGI_Finish();
        say("after: accept=%s printf_wrote=%s fputs=%d fprintf=%d fwrite=%zu putchar=%d puts=%d "
            "fflush=%d feof=%d getchar=%d fgets=%s environ=%s requests=%d\n",
            rc < 0 ? "negative" : "non-negative", p > 0 ? "yes" : "no", fp, fe, fw, pc, pu, ff, fo, ge,
            fg ? "set" : "null", environ ? "set" : "null", n);
    }
    return 0;
}
