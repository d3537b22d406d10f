# The kernel relay with small socket buffers (tcp_rmem / tcp_wmem set low in
# the namespace, as a front door tuned for many connections would have
# them). Over the in-flight cap the program passes bytes up to user space,
# and the kernel may hold those bytes back (they wait in the socket's
# backlog) until after the FIN has arrived: recv() then says end of stream
# while bytes are still owed. Every byte must arrive, in order, both ways.
import hashlib
import json
import os
import re
import socket
import subprocess
import threading

import pytest

from conftest import Netns, run, sluice_in, stop_all

PORT, BACKEND_PORT = 8080, 9000
SIZE = 16 * 1024 * 1024
CONNS = 3

# Backend: for each connection, send SIZE random bytes (then FIN) while
# hashing everything received up to EOF; one JSON line per connection.
DUPLEX_SRC = r"""
import hashlib, json, os, socket, sys, threading
size = int(sys.argv[2])
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(64)
print("ready", flush=True)
lock = threading.Lock()
def serve(c):
    sent = hashlib.sha256()
    def sender():
        left = size
        while left:
            b = os.urandom(min(left, 65536)); sent.update(b); c.sendall(b); left -= len(b)
        c.shutdown(socket.SHUT_WR)
    t = threading.Thread(target=sender); t.start()
    got, n = hashlib.sha256(), 0
    while True:
        b = c.recv(262144)
        if not b:
            break
        got.update(b); n += len(b)
    t.join()
    c.close()
    with lock:
        print(json.dumps({"sent": sent.hexdigest(), "got": got.hexdigest(), "ngot": n}),
              flush=True)
while True:
    c, a = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""


@pytest.fixture
def ns(tmp_path):
    name = "skb%d" % (os.getpid() % 100000)
    run("ip", "netns", "add", name)
    procs = []
    try:
        run("ip", "-n", name, "link", "set", "lo", "up")
        run("ip", "netns", "exec", name, "sysctl", "-q", "-w",
            "net.ipv4.tcp_rmem=4096 32768 131072", "net.ipv4.tcp_wmem=4096 16384 131072")
        yield name, procs
    finally:
        stop_all(procs)
        run("ip", "netns", "del", name, check=False)


def duplex_client(name, out, i):
    with Netns(name):
        s = socket.socket()
    s.settimeout(60)
    try:
        s.connect(("127.0.0.1", PORT))
        sent = hashlib.sha256()

        def sender():
            left = SIZE
            while left:
                b = os.urandom(min(left, 65536))
                sent.update(b)
                s.sendall(b)
                left -= len(b)
            s.shutdown(socket.SHUT_WR)

        t = threading.Thread(target=sender, daemon=True)
        t.start()
        got, n = hashlib.sha256(), 0
        while True:
            b = s.recv(262144)
            if not b:
                break
            got.update(b)
            n += len(b)
        t.join(60)
        out[i] = {"sent": sent.hexdigest(), "got": got.hexdigest(), "ngot": n}
    except OSError as e:
        out[i] = {"error": repr(e)}
    finally:
        s.close()


def test_kernel_relay_small_buffers_every_byte_both_ways(ns, tmp_path):
    name, procs = ns
    be = subprocess.Popen(["ip", "netns", "exec", name, "/usr/bin/python3", "-c", DUPLEX_SRC,
                           str(BACKEND_PORT), str(SIZE)],
                          stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    procs.append(be)
    assert be.stdout.readline().strip() == "ready"
    conf = tmp_path / "s.conf"
    sock = tmp_path / "s.sock"
    log = tmp_path / "s.log"
    conf.write_text("global { log stderr info; control %s; relay kernel; }\n"
                    "pool web { server a 127.0.0.1:%d; }\n"
                    "listen www { bind 127.0.0.1:%d; pool web; }\n"
                    % (sock, BACKEND_PORT, PORT))
    d = sluice_in(name, conf, log, procs)
    assert "kernel relay loaded" in log.read_text(), log.read_text()

    out = [None] * CONNS
    threads = [threading.Thread(target=duplex_client, args=(name, out, i), daemon=True)
               for i in range(CONNS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    recs = [json.loads(be.stdout.readline()) for _ in range(CONNS)]
    d.terminate()
    assert d.wait(15) == 0
    text = log.read_text()
    assert all(r is not None and "error" not in r for r in out), out
    by_sent = {r["sent"]: r for r in recs}
    for r in out:
        # server -> client: every byte, in order
        assert r["ngot"] == SIZE, text[-3000:]
        assert r["got"] in by_sent, "the server's bytes arrived changed"
    for r in recs:
        # client -> server
        assert r["ngot"] == SIZE, text[-3000:]
        assert r["got"] in {c["sent"] for c in out}, "the client's bytes arrived changed"
    m = re.search(r"kernel relay: (\d+) connections relayed in the kernel", text)
    assert m and int(m.group(1)) == CONNS, text[-2000:]
    ups = re.findall(r"up=(\d+) down=(\d+)", text)
    assert ups == [(str(SIZE), str(SIZE))] * CONNS, ups
