// The benchmark's hello on Go's net/http/fcgi (the standard library), a peer measured beside
// bench/apps/*.c. Built by the suite (bench/suite/peers.rs) with Debian's golang-go.
//
//	go-hello ADDR THREADS MODE [MAX]
//
// MODE: hello (answers "Hello, world!\n") or big (100 KiB of text in one Write, the same body as
// the C programs). THREADS sets GOMAXPROCS; MAX must be 0 (the suite counts system calls of the
// C programs only). fcgi.Serve runs a goroutine per connection and one per request; Go sets
// TCP_NODELAY on accepted connections by default.
package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/fcgi"
	"os"
	"runtime"
	"strconv"
)

const big = 100 * 1024

func main() {
	if len(os.Args) < 4 || (len(os.Args) > 4 && os.Args[4] != "0") {
		fmt.Fprintln(os.Stderr, "usage: go-hello ADDR THREADS hello|big [0]")
		os.Exit(2)
	}
	threads, err := strconv.Atoi(os.Args[2])
	if err != nil || threads < 1 {
		threads = 1
	}
	runtime.GOMAXPROCS(threads)
	var body []byte
	switch os.Args[3] {
	case "hello":
		body = []byte("Hello, world!\n")
	case "big":
		body = make([]byte, big)
		for i := range body {
			if i%64 == 63 {
				body[i] = '\n'
			} else {
				body[i] = byte('a' + i%26)
			}
		}
	default:
		fmt.Fprintln(os.Stderr, "go-hello: MODE is hello or big")
		os.Exit(2)
	}
	l, err := net.Listen("tcp", os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "go-hello:", err)
		os.Exit(1)
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	})
	if err := fcgi.Serve(l, handler); err != nil {
		fmt.Fprintln(os.Stderr, "go-hello:", err)
		os.Exit(1)
	}
}
