# A listener closing (SIGTERM, or a reload that removes it) while a
# client's handshake is half done: the kernel answered the SYN, the
# client's connect() returned, and the client's last ACK has not reached
# the node yet. That client must be served, not reset when the listening
# socket closes; a client arriving after the stop must be refused, not
# accepted. The client's ACKs are held back by an nftables rule in its own
# namespace, and let through once the listener is closing.
import os
import signal
import socket
import threading
import time

import pytest

from conftest import BACKEND_IP, NODE_IP, Netns, Node, run, wait_until

DIRECT = 8081
ECHO_PORT = 9001
ECHO_SRC = r"""
import socket, threading, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(64)
print("ready", flush=True)
def serve(c):
    with c:
        while True:
            b = c.recv(4096)
            if not b:
                break
            c.sendall(b)
while True:
    c, a = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""


def nft(topo, *args):
    return run("ip", "netns", "exec", topo.ns["c"], "nft", *args)


def hold_acks(topo):
    """Drop the client's segments to DIRECT that carry an ACK and no SYN;
    count its SYNs."""
    nft(topo, "add", "table", "inet", "hold")
    nft(topo, "add", "chain", "inet", "hold", "out", "{ type filter hook output priority 0; }")
    nft(topo, "add", "rule", "inet", "hold", "out", "tcp", "dport", str(DIRECT), "tcp", "flags",
        "&", "(syn|ack)", "==", "ack", "drop")
    nft(topo, "add", "rule", "inet", "hold", "out", "tcp", "dport", str(DIRECT), "tcp", "flags",
        "&", "(syn|ack)", "==", "syn", "counter")


def syns_sent(topo):
    out = nft(topo, "list", "chain", "inet", "hold", "out").stdout
    return int(out.split("counter packets ")[1].split()[0])


def release_acks(topo):
    run("ip", "netns", "exec", topo.ns["c"], "nft", "delete", "table", "inet", "hold")


def client_socket(topo):
    with Netns(topo.ns["c"]):
        return socket.socket()


def ask(s):
    """Send a line and FIN, read to EOF: what came back through the node."""
    s.sendall(b"hello\n")
    s.shutdown(socket.SHUT_WR)
    data = b""
    while True:
        b = s.recv(100)
        if not b:
            return data
        data += b


def pending_handshakes(topo):
    r = run("ip", "netns", "exec", topo.ns["n1"], "ss", "-Htn", "state", "syn-recv",
            "( sport = :%d )" % DIRECT)
    return len(r.stdout.splitlines())


@pytest.mark.parametrize("how", ["sigterm", "reload"])
def test_half_done_handshake_is_served_when_the_listener_closes(topo, how):
    topo.backend(ECHO_SRC, ECHO_PORT)
    node = Node(topo, "n1", extra="pool echo { server e1 %s:%d; }\n"
                "listen direct { bind %s:%d; pool echo; }\n"
                % (BACKEND_IP, ECHO_PORT, NODE_IP["n1"], DIRECT)).start()
    s = client_socket(topo)
    s.settimeout(10)
    s.connect((NODE_IP["n1"], DIRECT))
    assert ask(s) == b"hello\n"
    s.close()

    hold_acks(topo)
    s = client_socket(topo)
    s.settimeout(10)
    s.connect((NODE_IP["n1"], DIRECT))  # returns: the SYN-ACK came back
    wait_until(lambda: pending_handshakes(topo) == 1, what="the handshake pending on n1")
    if how == "sigterm":
        os.kill(node.proc.pid, signal.SIGTERM)
        wait_until(lambda: "SIGTERM: stopping listeners" in node.log(), what="the stop")
    else:
        with open(node.conf) as f:
            text = f.read()
        with open(node.conf, "w") as f:
            f.write(text.replace("listen direct", "listen gone-direct")
                    .replace("bind %s:%d;" % (NODE_IP["n1"], DIRECT), "bind %s:%d;"
                             % (NODE_IP["n1"], DIRECT + 1)))
        os.kill(node.proc.pid, signal.SIGHUP)
        wait_until(lambda: "reload of %s done" % node.conf in node.log(), what="the reload")

    # a client arriving now is refused once the socket closes
    late = {}

    def late_client():
        c = client_socket(topo)
        c.settimeout(8)
        t0 = time.monotonic()
        try:
            c.connect((NODE_IP["n1"], DIRECT))
            late["r"] = "accepted"
        except OSError as e:
            late["r"] = type(e).__name__
        late["t"] = time.monotonic() - t0
        c.close()

    sent = syns_sent(topo)
    lt = threading.Thread(target=late_client, daemon=True)
    lt.start()
    wait_until(lambda: syns_sent(topo) > sent, what="the late client's SYN")
    assert node.proc.poll() is None, "the node exited with a handshake pending"
    assert pending_handshakes(topo) == 1

    release_acks(topo)
    try:
        got = ask(s)  # the data carries the ACK that completes the handshake
    except OSError as e:
        got = e
    s.close()
    assert got == b"hello\n", \
        "the client whose handshake was pending got %r" % (got,)

    lt.join(10)
    assert late.get("r") == "ConnectionRefusedError", late
    if how == "sigterm":
        assert topo.stop(node.proc, signal.SIGTERM, timeout=10) == 0
        assert "all connections finished" in node.log()
    else:
        assert node.proc.poll() is None
        s = client_socket(topo)
        s.settimeout(10)
        s.connect((NODE_IP["n1"], DIRECT + 1))
        assert ask(s) == b"hello\n"
        s.close()
    assert "unfinished" not in node.log()
