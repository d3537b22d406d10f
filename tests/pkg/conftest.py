# Helpers for the install and package tests: the repository, the build the
# tests use, loopback ports, bounded waits, and a small HTTP backend run by
# the build's sluice-backend (the demo's). Standard library only.
import os
import socket
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
BUILD = os.path.abspath(os.environ.get("SLUICE_BUILD") or os.path.join(ROOT, "build"))
DEADLINE = 20.0


def free_port(host="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_until(pred, timeout=DEADLINE, interval=0.01, what="condition"):
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= end:
            raise AssertionError("timed out after %.0fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def http_get(port, host="127.0.0.1"):
    """One HTTP/1.0 request through port; returns the whole reply."""
    with socket.create_connection((host, port), timeout=DEADLINE) as s:
        s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        parts = []
        while True:
            b = s.recv(65536)
            if not b:
                return b"".join(parts).decode("utf-8", "replace")
            parts.append(b)


def port_listening(port, host="127.0.0.1"):
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


class Procs:
    """Processes a test started; stopped by their Popen handle at the end."""

    def __init__(self):
        self.procs = []

    def start(self, args, **kw):
        p = subprocess.Popen(args, stdin=subprocess.DEVNULL, **kw)
        self.procs.append(p)
        return p

    def backend(self, name, port):
        p = self.start([os.path.join(BUILD, "sluice-backend"), "-n", name,
                        "127.0.0.1:%d" % port], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        wait_until(lambda: port_listening(port), what="backend %s on %d" % (name, port))
        return p

    def stop_all(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(DEADLINE)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
