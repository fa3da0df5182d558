#!/usr/bin/env python3
"""Requests parked behind a busy single-threaded worker, behind nginx with upstream keep-alive.

PHP's model: two single-threaded processes sharing one listening socket behind nginx
(`upstream { keepalive 8; }`, `fastcgi_keep_conn on`): `c-examples/build/prefork -w 2`, or
php-fpm with `pm = static`, `pm.max_children = 2` (`--app fpm`: target/php, relinked on the
library; `--app fpm-stock`: target/php-stock, PHP's own layer; both from `make php`). CLIENTS
HTTP clients send fast requests (answered at once) for SECONDS while one more client sends
only slow ones (each sleeps SLOW_MS in the application), one after the other: one process is
nearly always busy with a slow request and the other is free for the fast ones. A fast request
that takes longer than SLOW_MS waited behind a slow one although the other process was free.

    bench/parked_requests.py [--app prefork|fpm|fpm-stock] [--mode relay|shed|off]
                             [--secs 10] [--clients 8]

`--mode` sets the library's FCGI_RUNTIME_RELAY and FCGI_RUNTIME_SHED_IDLE (relay: `auto`, the
default, which relays in these single-threaded processes since their listening socket is
shared; shed: closing idle connections; off: neither).
Prints the fast requests' count, p50, p99, max, how many took longer than the slow script, the
failed requests, and nginx's "upstream prematurely closed" lines. Run from the repository root
after `make build`; needs nginx (Debian's nginx-light).
"""

import argparse
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, secs=10):
    end = time.time() + secs
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on port {port}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--app", default="prefork", choices=["prefork", "fpm", "fpm-stock"])
    ap.add_argument("--mode", default="relay", choices=["relay", "shed", "off"])
    ap.add_argument("--secs", type=float, default=10)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--slow-ms", type=int, default=200)
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="parked-")
    app_port, http_port = free_port(), free_port()
    env = dict(os.environ, FCGI_ADDR=f"127.0.0.1:{app_port}",
               FCGI_RUNTIME_RELAY="auto" if a.mode == "relay" else "0",
               FCGI_RUNTIME_SHED_IDLE="1" if a.mode == "shed" else "0",
               LD_LIBRARY_PATH=os.path.join(ROOT, "target/release"))
    script = os.path.join(tmp, "x.php")
    with open(script, "w") as f:
        f.write("<?php\nif (isset($_GET['sleep_ms'])) usleep((int)$_GET['sleep_ms'] * 1000);\n"
                "echo 'pid ', getmypid(), \"\\n\";\n")
    if a.app == "prefork":
        cmd = [os.path.join(ROOT, "c-examples/build/prefork"), "-w", "2"]
    else:
        fpm_conf = os.path.join(tmp, "fpm.conf")
        with open(fpm_conf, "w") as f:
            f.write(f"[global]\nerror_log = {tmp}/fpm.log\n[www]\nlisten = 127.0.0.1:{app_port}\n"
                    "pm = static\npm.max_children = 2\nclear_env = no\n")
        prefix = "target/php" if a.app == "fpm" else "target/php-stock"
        cmd = [os.path.join(ROOT, prefix, "sbin/php-fpm"), "-n", "-F", "-y", fpm_conf,
               "--allow-to-run-as-root"]
    app = subprocess.Popen(cmd, env=env, start_new_session=True)
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""daemon off; master_process off; worker_processes 1;
error_log {tmp}/error.log warn; pid {tmp}/nginx.pid;
events {{ worker_connections 1024; }}
http {{ access_log off; client_body_temp_path {tmp}/cb; fastcgi_temp_path {tmp}/f;
  proxy_temp_path {tmp}/p; uwsgi_temp_path {tmp}/u; scgi_temp_path {tmp}/s;
  upstream app {{ server 127.0.0.1:{app_port}; keepalive 8; }}
  server {{ listen 127.0.0.1:{http_port};
    location / {{ include /etc/nginx/fastcgi_params; fastcgi_param SCRIPT_FILENAME {script};
      fastcgi_pass app; fastcgi_keep_conn on; }} }} }}
""")
    nginx = subprocess.Popen(["/usr/sbin/nginx", "-p", tmp, "-c", conf])
    try:
        wait_port(app_port)
        wait_port(http_port)
        fast, errors = [], [0]
        lock = threading.Lock()
        stop = time.time() + a.secs

        def client(k):
            conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=30)
            slow = k == a.clients
            while time.time() < stop:
                path = f"/x?sleep_ms={a.slow_ms}" if slow else "/x"
                t0 = time.perf_counter()
                try:
                    conn.request("GET", path)
                    r = conn.getresponse()
                    r.read()
                    ok = r.status == 200
                except (OSError, http.client.HTTPException):
                    ok = False
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=30)
                dt = (time.perf_counter() - t0) * 1000
                with lock:
                    if not ok:
                        errors[0] += 1
                    elif not slow:
                        fast.append(dt)

        threads = [threading.Thread(target=client, args=(k,)) for k in range(a.clients + 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        fast.sort()
        if not fast:
            sys.exit("no fast request was answered")
        pct = lambda p: fast[min(len(fast) - 1, int(len(fast) * p))]
        parked = sum(1 for x in fast if x > a.slow_ms)
        with open(os.path.join(tmp, "error.log"), errors="replace") as f:
            closed = sum(1 for line in f if "prematurely closed" in line)
        print(f"{a.app}, mode {a.mode}: {len(fast)} fast requests, p50 {pct(0.5):.1f} ms, "
              f"p99 {pct(0.99):.1f} ms, max {fast[-1]:.1f} ms; {parked} "
              f"({100.0 * parked / len(fast):.2f}%) slower than the {a.slow_ms} ms script; "
              f"{errors[0]} errors; {closed} 'upstream prematurely closed' in nginx's log")
    finally:
        nginx.terminate()
        os.killpg(app.pid, signal.SIGKILL)
        app.wait()
        nginx.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
