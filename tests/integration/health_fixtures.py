"""Fixtures for the health-check integration tests: the real daemon with its
log captured line by line, backends served from one asyncio thread (HTTP,
hanging, banner, agent, TLS), a client helper and certificates made with the
openssl command. Loopback only; every wait has a deadline; only processes
started here are stopped, by PID."""

import asyncio
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time
from datetime import datetime, timezone

import pytest

BUILD = os.environ.get("SLUICE_BUILD", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
SLOW = 3 if "san" in os.path.basename(os.path.normpath(BUILD)) else 1
SAN_PATTERNS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                "WARNING: ThreadSanitizer", "FATAL: ThreadSanitizer",
                "SUMMARY: UndefinedBehaviorSanitizer")
LOG_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z ")


def free_ports(n):
    """n distinct free TCP ports on 127.0.0.1 (held until all are chosen)."""
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def wait_until(pred, timeout, step=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}")


class LogLine:
    def __init__(self, text, mono):
        self.text = text
        self.mono = mono  # when the test read it (time.monotonic)
        m = LOG_TS.match(text)
        self.wall = (datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f")
                     .replace(tzinfo=timezone.utc).timestamp() if m else None)


class Daemon:
    """build/sluice -f FILE, stderr read by a thread into self.lines."""

    def __init__(self, tmp_path, conf_text, name="sluice.conf"):
        self.path = os.path.join(str(tmp_path), name)
        with open(self.path, "w") as f:
            f.write(conf_text)
        self.lines = []
        self.lock = threading.Lock()
        self.proc = subprocess.Popen([os.path.join(BUILD, "sluice"), "-f", self.path],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.wait_log(r"ready: pid \d+", 20 * SLOW)

    def _read(self):
        for raw in self.proc.stderr:
            line = LogLine(raw.decode(errors="replace").rstrip("\n"), time.monotonic())
            with self.lock:
                self.lines.append(line)

    def snapshot(self):
        with self.lock:
            return list(self.lines)

    def find(self, pattern, start=0):
        rx = re.compile(pattern)
        return [ln for ln in self.snapshot()[start:] if rx.search(ln.text)]

    def mark(self):
        with self.lock:
            return len(self.lines)

    def wait_log(self, pattern, timeout, start=0):
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for ln in self.snapshot()[start:]:
                if rx.search(ln.text):
                    return ln
            if self.proc.poll() is not None:
                time.sleep(0.2)
                raise AssertionError(f"sluice exited ({self.proc.returncode}) waiting for "
                                     f"{pattern!r}:\n{self.dump()}")
            time.sleep(0.02)
        raise AssertionError(f"no log line matching {pattern!r} within {timeout}s:\n"
                             f"{self.dump()}")

    def dump(self, last=60):
        return "\n".join(ln.text for ln in self.snapshot()[-last:])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30 * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                raise AssertionError("sluice did not stop on SIGTERM")
        self.reader.join(timeout=10)
        text = "\n".join(ln.text for ln in self.snapshot())
        for pat in SAN_PATTERNS:
            assert pat not in text, f"sanitizer report in sluice's stderr:\n{text[-6000:]}"
        return self.proc.returncode


class Backend:
    """One listening port served by the hub. mode: 'http' (checks get
    `status`, clients get the name), 'hang' (never answers), 'banner' (says
    `banner` first, answers `HELO` lines), 'agent' (writes `agent` and
    closes). Clients send a line; 'hold' lines keep the connection open."""

    def __init__(self, hub, name, port, mode="http", status=200, banner=b"", agent=b"",
                 tls=None):
        self.hub, self.name, self.port, self.mode = hub, name, port, mode
        self.status, self.banner, self.agent, self.tls = status, banner, agent, tls
        self.server = None
        self.checks = []  # (monotonic time, status answered or None)
        self.clients = []  # monotonic times
        self.sni = []
        self.writers = set()

    async def handle(self, reader, writer):
        self.writers.add(writer)
        try:
            await self._handle(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, OSError):
            pass
        finally:
            self.writers.discard(writer)
            writer.close()

    async def _handle(self, reader, writer):
        now = time.monotonic
        if self.tls is not None:
            self.checks.append((now(), "tls"))  # the handshake completed
        if self.mode == "agent":
            self.checks.append((now(), None))
            writer.write(self.agent)
            await writer.drain()
            return
        if self.mode == "banner":
            self.checks.append((now(), None))
            writer.write(self.banner)
            await writer.drain()
            if not self.banner.startswith(b"220"):
                return  # a refusing greeting, then close
        if self.mode == "hang":
            self.checks.append((now(), None))
            await reader.read()
            return
        line = await reader.readline()
        if line.startswith(b"GET "):
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            st = self.status
            self.checks.append((now(), st))
            writer.write(b"HTTP/1.0 %d Check\r\nContent-Length: 0\r\n\r\n" % st)
            await writer.drain()
            return
        if line.startswith(b"HELO "):
            writer.write(b"250 hello " + line[5:])
            await writer.drain()
            return
        if not line:
            if self.mode != "banner" and self.tls is None:
                self.checks.append((now(), None))  # tcp / tls check
            return
        self.clients.append(now())
        writer.write(self.name.encode() + b"\n")
        await writer.drain()
        while line.startswith(b"hold"):
            line = await reader.readline()
            if not line:
                return
            writer.write(self.name.encode() + b"\n")
            await writer.drain()

    async def _start(self):
        sslctx = None
        if self.tls is not None:
            sslctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            sslctx.load_cert_chain(*self.tls)

            def sni_cb(sslobj, name, ctx):
                self.sni.append(name)
            sslctx.sni_callback = sni_cb
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", self.port,
                                                 reuse_address=True, ssl=sslctx,
                                                 backlog=512)

    async def _kill(self):
        if self.server is not None:
            self.server.close()
            self.server = None
        for w in list(self.writers):
            w.transport.abort()

    def start(self):
        self.hub.call(self._start())
        return self

    def kill(self):
        """Stop listening (connections refused) and reset open ones."""
        self.hub.call(self._kill())

    def n_clients(self, since=0.0):
        return sum(1 for t in self.clients if t >= since)


class Hub:
    """An asyncio loop in a thread serving every backend of a test."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(lambda loop, ctx: None)  # quiet TLS aborts
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.backends = []

    def call(self, coro, timeout=30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def add(self, name, port=None, **kw):
        b = Backend(self, name, port or free_ports(1)[0], **kw).start()
        self.backends.append(b)
        return b

    def close(self):
        async def stop_all():
            for b in self.backends:
                await b._kill()
        try:
            self.call(stop_all())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)


def report(msg):
    """Record a measurement (printed, and appended to $HEALTH_REPORT)."""
    print(msg)
    path = os.environ.get("HEALTH_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(msg + "\n")


def conf_global(level="info"):
    return f"global {{ workers 2; log stderr {level}; grace 2s; }}\n"


def request(port, line=b"hello\n", timeout=5.0):
    """One client connection through sluice: returns the backend's name, or
    None when the connection was closed or reset without an answer."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(line)
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(256)
                if not chunk:
                    return None
                data += chunk
            return data.decode().strip()
    except (ConnectionError, socket.timeout):
        return None


class Certs:
    """A test CA and server certificates made with the openssl command."""

    def __init__(self, tmp_path):
        self.dir = os.path.join(str(tmp_path), "pki")
        os.makedirs(self.dir)
        self.ca_key, self.ca = self._p("ca.key"), self._p("ca.pem")
        self._run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", self.ca_key,
                  "-out", self.ca, "-subj", "/CN=sluice test CA", "-days", "2")
        with open(self._p("index.txt"), "w"):
            pass
        with open(self._p("serial"), "w") as f:
            f.write("1000\n")
        with open(self._p("ca.cnf"), "w") as f:
            f.write(f"""[ ca ]
default_ca = test
[ test ]
dir = {self.dir}
database = $dir/index.txt
serial = $dir/serial
new_certs_dir = $dir
certificate = {self.ca}
private_key = {self.ca_key}
default_md = sha256
policy = anything
copy_extensions = copy
unique_subject = no
[ anything ]
commonName = supplied
""")

    def _p(self, name):
        return os.path.join(self.dir, name)

    def _run(self, *args):
        subprocess.run(["openssl", *args], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=60)

    def server(self, name, cn, start=None, end=None, self_signed=False):
        """A key and certificate for cn (also its SAN); start/end as
        YYYYMMDDHHMMSSZ make it expired. Returns (cert, key)."""
        key, csr, crt = self._p(name + ".key"), self._p(name + ".csr"), self._p(name + ".pem")
        if self_signed:
            self._run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                      "-out", crt, "-subj", "/CN=" + cn, "-addext",
                      "subjectAltName=DNS:" + cn, "-days", "2")
            return crt, key
        self._run("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
                  "-subj", "/CN=" + cn, "-addext", "subjectAltName=DNS:" + cn)
        args = ["ca", "-batch", "-config", self._p("ca.cnf"), "-in", csr, "-out", crt,
                "-notext"]
        if start:
            args += ["-startdate", start, "-enddate", end]
        else:
            args += ["-days", "2"]
        self._run(*args)
        return crt, key


@pytest.fixture
def hub():
    h = Hub()
    yield h
    h.close()


@pytest.fixture
def daemons():
    started = []

    def start(tmp_path, conf_text):
        d = Daemon(tmp_path, conf_text)
        started.append(d)
        return d
    yield start
    errors = []
    for d in started:
        try:
            d.stop()
        except AssertionError as e:
            errors.append(str(e))
    assert not errors, "\n".join(errors)
