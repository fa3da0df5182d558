/*
 * lf-fcgio.cpp - libfcgi's C++ echo (examples/echo-cpp.cpp) shape: Debian's libfcgi++
 * (fcgio.h, fcgi_streambuf) with std::cin / std::cout / std::cerr redirected to the request.
 *
 *   lf-fcgio           (FCGI_ADDR=ADDR in the environment, or fd 0 listening)
 *
 * Linked with -lfcgi++ -lfcgi: libfcgi++.so.0 is Debian's, and the libfcgi.so.0 under it is
 * whichever the loader finds (the project's build through the rpath or LD_LIBRARY_PATH).
 * For each request it reads the first line of STDIN with std::getline through an unbuffered
 * fcgi_streambuf (FCGX_GetChar), the rest with std::cin.read through a buffered one
 * (FCGX_GetStr), and answers, exactly:
 *
 *   Content-Type: text/plain\r\n\r\n
 *   REQUEST=<n>\n              requests served so far, this one included
 *   <envp[i]>\n                one per request environment entry, in order
 *   FIRST_LINE=<line>\n        STDIN up to its first '\n' (excluded)
 *   REST_LENGTH=<n>\n          bytes of STDIN after that line
 *   <the rest of STDIN>
 *
 * Param ECHO_STDERR=<text>: writes "cerr: <text>\n" through std::cerr (FCGI_STDERR records).
 * Exits 0 when FCGX_Accept_r fails.
 */
#include <cstdlib>
#include <fcgio.h>
#include <iostream>
#include <string>
#include <vector>

int main()
{
    const char *addr = std::getenv("FCGI_ADDR");
    int sock = 0;
    unsigned long served = 0;
    FCGX_Request request;

    if (FCGX_Init() != 0)
        return 1;
    if (addr && *addr)
        sock = FCGX_OpenSocket(addr, 128);
    if (sock < 0)
        return 1;
    FCGX_InitRequest(&request, sock, 0);

    std::streambuf *cin_buf = std::cin.rdbuf();
    std::streambuf *cout_buf = std::cout.rdbuf();
    std::streambuf *cerr_buf = std::cerr.rdbuf();

    while (FCGX_Accept_r(&request) == 0) {
        served++;
        std::string first_line, rest;
        {
            // Unbuffered: getline goes through FCGX_GetChar one byte at a time.
            fcgi_streambuf fin(request.in);
            std::cin.rdbuf(&fin);
            std::getline(std::cin, first_line);
        }
        {
            std::vector<char> inbuf(1000);
            fcgi_streambuf fin(request.in, inbuf.data(), static_cast<int>(inbuf.size()));
            std::cin.rdbuf(&fin);
            std::cin.clear();
            char chunk[777];
            while (std::cin.read(chunk, sizeof chunk) || std::cin.gcount() > 0)
                rest.append(chunk, static_cast<size_t>(std::cin.gcount()));
            std::cin.clear();
        }
        {
            std::vector<char> outbuf(512);
            fcgi_streambuf fout(request.out, outbuf.data(), static_cast<int>(outbuf.size()));
            fcgi_streambuf ferr(request.err);
            std::cout.rdbuf(&fout);
            std::cerr.rdbuf(&ferr);

            std::cout << "Content-Type: text/plain\r\n\r\n"
                      << "REQUEST=" << served << "\n";
            for (char **e = request.envp; e && *e; ++e)
                std::cout << *e << "\n";
            std::cout << "FIRST_LINE=" << first_line << "\n"
                      << "REST_LENGTH=" << rest.size() << "\n";
            std::cout.write(rest.data(), static_cast<std::streamsize>(rest.size()));
            const char *text = FCGX_GetParam("ECHO_STDERR", request.envp);
            if (text)
                std::cerr << "cerr: " << text << "\n";
            std::cout.flush();
            std::cerr.flush();
        }
        // The streambufs are gone: restore the originals before finishing the request.
        std::cin.rdbuf(cin_buf);
        std::cout.rdbuf(cout_buf);
        std::cerr.rdbuf(cerr_buf);
        std::cin.clear();
        std::cout.clear();
        std::cerr.clear();
        FCGX_Finish_r(&request);
    }
    return 0;
}
