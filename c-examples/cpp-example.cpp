/*
 * cpp-example.cpp - a C++ program that includes fcgi-runtime's native header (fcgi.h) together
 * with every libfcgi compatibility header (fastcgi.h, fcgiapp.h, fcgios.h, fcgi_stdio.h), and
 * serves requests through either API.
 *
 *   cpp-example [-n]      (FCGI_ADDR=ADDR in the environment, or fd 0 listening)
 *
 * Without -n it serves with libfcgi's FCGX_Accept_r; with -n with the native fcgi_accept_request.
 * Both answer the same, exactly:
 *
 *   Content-Type: text/plain\r\n\r\n
 *   API=<libfcgi|native>\n
 *   ROLE=<RESPONDER|AUTHORIZER|FILTER>\n
 *   PARAM <name>=<value>\n     one per param, sorted by name, FCGI_ROLE left out
 *   STDIN_LENGTH=<n>\n
 *   STDIN_REVERSED=<the stdin bytes in reverse order>\n
 *
 * Exits 0 when accepting fails.
 */
#include <fcgi.h>

#include <fastcgi.h>
#include <fcgiapp.h>
#include <fcgios.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <unistd.h>

// fcgi_stdio.h turns printf, FILE, stdin... into macros: it goes after the C++ headers.
#include <fcgi_stdio.h>

// The layouts libfcgi programs are compiled against (Debian's libfcgi 2.4.2, x86_64).
static_assert(sizeof(FCGX_Stream) == 72, "FCGX_Stream is 72 bytes");
static_assert(sizeof(FCGX_Request) == 80, "FCGX_Request is 80 bytes");
static_assert(sizeof(FCGI_FILE) == 16, "FCGI_FILE is 16 bytes");
static_assert(sizeof(FCGI_Header) == FCGI_HEADER_LEN, "FCGI_Header is 8 bytes");
static_assert(sizeof(FCGI_BeginRequestBody) == 8, "FCGI_BeginRequestBody is 8 bytes");
static_assert(sizeof(FCGI_EndRequestRecord) == 16, "FCGI_EndRequestRecord is 16 bytes");
// Constants both headers define agree.
static_assert(FCGI_RESPONDER == 1 && FCGI_AUTHORIZER == 2 && FCGI_FILTER == 3, "roles");
static_assert(FCGI_STDOUT == 6 && FCGI_UNKNOWN_ROLE == 3 && FCGI_KEEP_CONN == 1, "constants");
static_assert(FCGI_MAX_LENGTH == 0xffff, "FCGI_MAX_LENGTH");
static_assert(FCGX_CALL_SEQ_ERROR == -5 && FCGI_FAIL_ACCEPT_ON_INTR == 1, "fcgiapp.h constants");

namespace {

struct Exchange {
    int role = 0;
    std::map<std::string, std::string> params;
    std::string stdin_bytes;
};

const char *role_name(int role)
{
    switch (role) {
    case FCGI_RESPONDER:
        return "RESPONDER";
    case FCGI_AUTHORIZER:
        return "AUTHORIZER";
    case FCGI_FILTER:
        return "FILTER";
    default:
        return "?";
    }
}

std::string answer(const char *api, const Exchange &x)
{
    std::string out = "Content-Type: text/plain\r\n\r\n";
    out += std::string("API=") + api + "\n";
    out += std::string("ROLE=") + role_name(x.role) + "\n";
    for (const auto &kv : x.params) {
        if (kv.first != "FCGI_ROLE")
            out += "PARAM " + kv.first + "=" + kv.second + "\n";
    }
    out += "STDIN_LENGTH=" + std::to_string(x.stdin_bytes.size()) + "\n";
    std::string reversed(x.stdin_bytes.rbegin(), x.stdin_bytes.rend());
    out += "STDIN_REVERSED=" + reversed + "\n";
    return out;
}

// libfcgi's API behind a small RAII wrapper: the request is finished and freed on scope exit.
class LibfcgiServer {
  public:
    explicit LibfcgiServer(int sock)
    {
        FCGX_InitRequest(&req_, sock, 0);
    }
    ~LibfcgiServer()
    {
        FCGX_Free(&req_, 1);
    }
    LibfcgiServer(const LibfcgiServer &) = delete;
    LibfcgiServer &operator=(const LibfcgiServer &) = delete;

    bool next(Exchange &x)
    {
        if (FCGX_Accept_r(&req_) != 0)
            return false;
        x = Exchange();
        for (char **e = req_.envp; e && *e; ++e) {
            const char *eq = std::strchr(*e, '=');
            if (eq)
                x.params[std::string(*e, static_cast<size_t>(eq - *e))] = eq + 1;
        }
        const char *role = FCGX_GetParam("FCGI_ROLE", req_.envp);
        const std::string r = role ? role : "";
        x.role = r == "RESPONDER"    ? FCGI_RESPONDER
                 : r == "AUTHORIZER" ? FCGI_AUTHORIZER
                 : r == "FILTER"     ? FCGI_FILTER
                                     : 0;
        char buf[4096];
        int n;
        while ((n = FCGX_GetStr(buf, sizeof buf, req_.in)) > 0)
            x.stdin_bytes.append(buf, static_cast<size_t>(n));
        return true;
    }

    void reply(const std::string &s)
    {
        FCGX_PutStr(s.data(), static_cast<int>(s.size()), req_.out);
        FCGX_Finish_r(&req_);
    }

  private:
    FCGX_Request req_;
};

// The native API (fcgi.h), same shape.
class NativeServer {
  public:
    explicit NativeServer(int sock) : req_(fcgi_init_request(sock, nullptr, nullptr, nullptr)) {}
    ~NativeServer()
    {
        if (req_)
            fcgi_destroy_request(req_);
    }
    NativeServer(const NativeServer &) = delete;
    NativeServer &operator=(const NativeServer &) = delete;

    bool next(Exchange &x)
    {
        if (!req_ || fcgi_accept_request(req_) < 0)
            return false;
        x = Exchange();
        x.role = fcgi_request_role(req_);
        fcgi_loadenv(
            req_,
            [](const char *var, unsigned int var_len, char *val, unsigned int val_len, void *arg) {
                auto *params = static_cast<std::map<std::string, std::string> *>(arg);
                (*params)[std::string(var, var_len)] = std::string(val, val_len);
            },
            &x.params);
        char buf[4096];
        int n;
        while ((n = fcgi_read(req_, buf, sizeof buf)) > 0)
            x.stdin_bytes.append(buf, static_cast<size_t>(n));
        return true;
    }

    void reply(const std::string &s)
    {
        fcgi_write(req_, FCGI_STDOUT, s.data(), static_cast<int>(s.size()));
        fcgi_finish_request(req_, 0);
    }

  private:
    fcgi_request *req_;
};

template <class Server> int serve(const char *api, int sock)
{
    Server server(sock);
    Exchange x;
    while (server.next(x))
        server.reply(answer(api, x));
    return 0;
}

} // namespace

int main(int argc, char **argv)
{
    const bool native = argc > 1 && std::strcmp(argv[1], "-n") == 0;
    const char *addr = std::getenv("FCGI_ADDR");
    int sock = 0;

    if (native) {
        fcgi_init();
        if (addr && *addr)
            sock = fcgi_listen(addr, 128);
        if (sock < 0)
            return 1;
        return serve<NativeServer>("native", sock);
    }
    if (FCGX_Init() != 0)
        return 1;
    if (addr && *addr)
        sock = FCGX_OpenSocket(addr, 128);
    if (sock < 0)
        return 1;
    return serve<LibfcgiServer>("libfcgi", sock);
}
