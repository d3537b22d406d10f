"""A client that connects and says nothing (a browser's preconnect) in front
of a client-first server must not be blamed on the server: the server
connection is established when the connect completes, not when bytes move.
Silent clients live until `timeout idle`, legitimate clients from other
addresses see no failure, the server stays UP with no connect error, and a
client that waits longer than `timeout connect` before its request is
served (issue 9 item 1)."""
import threading
import time

from conftest import (ctl_global, ctl_servers, connect, free_port, got_nothing,
                      h_request_reply, make_conf, recv_line, wait_until)

SILENT_SRC = "127.0.0.5"
LEGIT_SRCS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")


def request(port, src, wait=0.0):
    """One request from src; returns the reply line or an error string."""
    try:
        with connect(port, src=src, timeout=10) as s:
            if wait:
                time.sleep(wait)  # the client's own think time, not a sync point
            s.sendall(b"GET %s\n" % src.encode())
            line = recv_line(s)
            return line.decode() if line else "EOF"
    except OSError as e:
        return "error %r" % e


def test_silent_clients_do_not_fail_the_server(sluice, backends, short_dir):
    be = backends(h_request_reply, name="app")
    port = free_port()
    sock = short_dir + "/ctl.sock"
    conf = make_conf(
        port, ["a %s" % be.addr],
        pool_extra="check tcp { interval 300ms; timeout 300ms; rise 2; fall 3; }\n"
                   "    observe-errors 3;",
        listen_extra="timeout connect 400ms; timeout idle 2500ms; retries 2;",
        global_extra=ctl_global(sock))
    d = sluice(conf)
    wait_until(lambda: ctl_servers(sock)["web/a"]["checks"] >= 2, what="two checks")

    silent, stop = [], threading.Event()
    failures, replies = [], []

    def attacker():
        # three silent connections a second from one address, held open
        while not stop.is_set() and len(silent) < 9:
            silent.append(connect(port, src=SILENT_SRC))
            stop.wait(1 / 3)

    def legit(src):
        while not stop.is_set():
            r = request(port, src)
            (replies if r == "reply to GET %s\n" % src else failures).append((src, r))
            stop.wait(0.02)

    threads = [threading.Thread(target=attacker)]
    threads += [threading.Thread(target=legit, args=(s,)) for s in LEGIT_SRCS]
    for t in threads:
        t.start()
    try:
        # a client that thinks longer than timeout connect before it asks
        slow = request(port, "127.0.0.6", wait=1.0)
        wait_until(lambda: len(silent) >= 9, timeout=10, what="nine silent connections")
        # the first silent ones are now well past timeout connect
        silent_alive = got_nothing(silent[-1], 0.6)
    finally:
        stop.set()
        for t in threads:
            t.join(15)

    assert not failures, "%d legitimate requests failed: %r" % (len(failures), failures[:5])
    assert len(replies) >= 20, len(replies)
    row = ctl_servers(sock)["web/a"]
    assert row["health"] == "up", row
    assert row["connect_errors"] == 0, row
    assert "DOWN" not in d.log()
    assert slow == "reply to GET 127.0.0.6\n", slow
    assert silent_alive, "a silent client was closed before timeout idle"
    # silent clients end at timeout idle, as idle clients, never as connect failures
    ends = wait_until(lambda: [c["end"] for c in d.conns() if c["client"].startswith(SILENT_SRC)]
                      if len([c for c in d.conns() if c["client"].startswith(SILENT_SRC)]) >= 9
                      else None, what="the silent clients' log lines")
    assert set(ends) == {"idle-timeout"}, ends
    for s in silent:
        s.close()
