module fcgi-runtime/bench/peers/go-hello

go 1.19
