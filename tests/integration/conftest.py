# Integration fixtures for sluice: start the real daemon on a config written
# to tmp_path, wait for its log lines with deadlines, and run small backends
# (threads in the pytest process) that record what they saw. Teardown stops
# every daemon with SIGTERM, requires exit status 0 and fails the test when
# the log shows a sanitizer report. Standard library only; loopback only.
import hashlib
import os
import re
import resource
import selectors
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.abspath(os.environ.get("SLUICE_BUILD") or os.path.join(HERE, "..", "..", "build"))
SLUICE = os.path.join(BUILD, "sluice")

# Deadlines only matter when something is wrong; they are generous so that
# a sanitizer build (about 3x slower) passes on a loaded 2-core machine.
SAN = "san" in os.path.basename(BUILD)  # build-san (ASan, UBSan) and build-tsan alike
TSAN = "tsan" in os.path.basename(BUILD)
SLOW = float(os.environ.get("SLUICE_TIMEOUT_SCALE", "3" if SAN else "1"))
DEADLINE = 20.0 * SLOW

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer",
                   "WARNING: ThreadSanitizer", "FATAL: ThreadSanitizer")

CONN_RE = re.compile(
    r"info: conn (?P<listener>\S+) (?P<client>\S+) -> (?P<pool>[^/\s]+)/(?P<server>\S+) "
    r"up=(?P<up>\d+) down=(?P<down>\d+) dur=(?P<dur>\d+)ms end=(?P<end>\S+)"
    r"(?: sni=(?P<sni>\S+) alpn=(?P<alpn>\S+))?$"  # listeners with TLS routes
)

MiB = 1024 * 1024


def pytest_configure(config):
    # 2 000 client sockets plus their 2 000 backend ends live in this process
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# ---------------------------------------------------------------- helpers


def wait_until(pred, timeout=DEADLINE, interval=0.005, what="condition"):
    """Poll pred() until it returns a true value; bounded in time. Returns it."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= end:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def free_port(host="127.0.0.1"):
    """A TCP port that nothing listens on right now."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_is_free(port, host="127.0.0.1"):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def fmt_addr(host, port):
    return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)


def connect(port, host="127.0.0.1", src=None, timeout=DEADLINE):
    """A blocking client socket connected to host:port, optionally from the
    loopback address src (127.0.0.N) so that it looks like another client."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    if src is not None:
        s.bind((src, 0))
    s.connect((host, port))
    return s


def recv_all(sock, limit=1 << 30):
    """Read until EOF (socket timeout bounds each wait). Returns bytes."""
    parts, n = [], 0
    while n < limit:
        b = sock.recv(65536)
        if not b:
            break
        parts.append(b)
        n += len(b)
    return b"".join(parts)


def recv_line(sock, limit=4096):
    buf = b""
    while not buf.endswith(b"\n") and len(buf) < limit:
        b = sock.recv(1)
        if not b:
            break
        buf += b
    return buf


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        b = sock.recv(n - len(buf))
        if not b:
            raise AssertionError("EOF after %d of %d bytes" % (len(buf), n))
        buf += b
    return bytes(buf)


def get_name(port, host="127.0.0.1", src=None):
    """Connect, read the backend's name line, close. Returns the name."""
    with connect(port, host, src) as s:
        line = recv_line(s)
    assert line.endswith(b"\n"), "no name line from the backend (got %r)" % line
    return line.decode().strip()


def got_nothing(sock, wait):
    """True when nothing (no data, no EOF) arrives on sock within wait seconds.
    A bounded wait is the only way to observe an absence."""
    old = sock.gettimeout()
    sock.settimeout(wait)
    try:
        sock.recv(1)
        return False
    except socket.timeout:
        return True
    finally:
        sock.settimeout(old)


def linger0(sock):
    """Make close() send a reset."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def send_random(sock, nbytes, chunk=256 * 1024):
    """Send nbytes of fresh random data. Returns its sha256 hex digest."""
    h = hashlib.sha256()
    left = nbytes
    while left > 0:
        b = os.urandom(min(chunk, left))
        h.update(b)
        sock.sendall(b)
        left -= len(b)
    return h.hexdigest()


def recv_hash(sock):
    """Read to EOF hashing. Returns (sha256 hex, byte count)."""
    h = hashlib.sha256()
    n = 0
    while True:
        b = sock.recv(1 << 18)
        if not b:
            return h.hexdigest(), n
        h.update(b)
        n += len(b)


def duplex(sock, nbytes):
    """Send nbytes of random data (then FIN) while reading to EOF, both at
    once. Returns dict(sent=sha, nsent, got=sha, ngot)."""
    out = {}
    err = []

    def sender():
        try:
            out["sent"] = send_random(sock, nbytes)
            out["nsent"] = nbytes
            sock.shutdown(socket.SHUT_WR)
        except Exception as e:  # reported by the caller
            err.append(e)

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    out["got"], out["ngot"] = recv_hash(sock)
    t.join(DEADLINE * 3)
    if err:
        raise err[0]
    assert not t.is_alive(), "sender did not finish"
    return out


def proxy_v2_sig():
    return b"\r\n\r\n\x00\r\nQUIT\n"


def read_proxy_header(sock):
    """Read a PROXY v1 or v2 header byte by byte (never past its end).
    Returns (raw header bytes, parsed dict)."""
    first = recv_exact(sock, 12)
    if first == proxy_v2_sig():
        rest = recv_exact(sock, 4)
        plen = struct.unpack("!H", rest[2:4])[0]
        body = recv_exact(sock, plen)
        raw = first + rest + body
        return raw, parse_proxy_v2(raw)
    raw = first
    while not raw.endswith(b"\r\n"):
        assert len(raw) < 108, "v1 header too long: %r" % raw
        raw += recv_exact(sock, 1)
    return raw, parse_proxy_v1(raw)


def parse_proxy_v1(raw):
    parts = raw[:-2].decode("ascii").split(" ")
    assert parts[0] == "PROXY", raw
    if parts[1] == "UNKNOWN":
        return {"version": 1, "family": "UNKNOWN"}
    assert len(parts) == 6, raw
    return {
        "version": 1,
        "family": parts[1],
        "src": (parts[2], int(parts[4])),
        "dst": (parts[3], int(parts[5])),
    }


def parse_proxy_v2(raw):
    ver_cmd, fam, plen = raw[12], raw[13], struct.unpack("!H", raw[14:16])[0]
    d = {"version": ver_cmd >> 4, "command": ver_cmd & 0xF, "famproto": fam, "len": plen}
    body = raw[16:]
    if fam == 0x11:
        d["family"] = "TCP4"
        d["src"] = (socket.inet_ntop(socket.AF_INET, body[0:4]), struct.unpack("!H", body[8:10])[0])
        d["dst"] = (socket.inet_ntop(socket.AF_INET, body[4:8]), struct.unpack("!H", body[10:12])[0])
    elif fam == 0x21:
        d["family"] = "TCP6"
        d["src"] = (socket.inet_ntop(socket.AF_INET6, body[0:16]),
                    struct.unpack("!H", body[32:34])[0])
        d["dst"] = (socket.inet_ntop(socket.AF_INET6, body[16:32]),
                    struct.unpack("!H", body[34:36])[0])
    return d


def build_proxy_v1(src, dst):
    fam = "TCP6" if ":" in src[0] else "TCP4"
    return ("PROXY %s %s %s %d %d\r\n" % (fam, src[0], dst[0], src[1], dst[1])).encode()


def build_proxy_v2(src, dst):
    if ":" in src[0]:
        body = (socket.inet_pton(socket.AF_INET6, src[0]) + socket.inet_pton(socket.AF_INET6, dst[0])
                + struct.pack("!HH", src[1], dst[1]))
        fam = 0x21
    else:
        body = (socket.inet_pton(socket.AF_INET, src[0]) + socket.inet_pton(socket.AF_INET, dst[0])
                + struct.pack("!HH", src[1], dst[1]))
        fam = 0x11
    return proxy_v2_sig() + bytes([0x21, fam]) + struct.pack("!H", len(body)) + body


def make_conf(port, servers, host="127.0.0.1", balance="roundrobin", pool_extra="",
              listen_extra="", global_extra="", workers=2, grace="5s", pool="web",
              listener="www", log="info"):
    """A one-listener, one-pool configuration. servers: lines after 'server'."""
    srv = "".join("    server %s;\n" % s for s in servers)
    return (
        "global { workers %d; log stderr %s; grace %s; %s }\n"
        "pool %s {\n    balance %s;\n%s    %s\n}\n"
        "listen %s {\n    bind %s;\n    pool %s;\n    timeout connect 2s;\n    %s\n}\n"
        % (workers, log, grace, global_extra, pool, balance, srv, pool_extra, listener,
           fmt_addr(host, port), pool, listen_extra)
    )


# ---------------------------------------------------------------- daemon


class Daemon:
    """A running sluice. stderr and stdout go to a log file polled by tests."""

    def __init__(self, tmp_path, conf_text, name="sluice", args=(), prefix=(), binary=None):
        self.conf_path = str(tmp_path / ("%s.conf" % name))
        self.log_path = str(tmp_path / ("%s.log" % name))
        with open(self.conf_path, "w") as f:
            f.write(conf_text)
        self.logf = open(self.log_path, "wb")
        # prefix: a command that execs sluice in place (same pid), e.g. unshare
        self.proc = subprocess.Popen(list(prefix) + [binary or SLUICE, "-f", self.conf_path]
                                     + list(args),
                                     stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=self.logf)
        self.pid = self.proc.pid
        self.rc = None

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def lines(self):
        return self.log().splitlines()

    def wait_log(self, pattern, count=1, timeout=DEADLINE):
        """Wait until at least count log lines match the regex; returns them."""
        rx = re.compile(pattern)

        def found():
            if self.proc.poll() is not None and self.rc is None:
                self.rc = self.proc.returncode
            got = [l for l in self.lines() if rx.search(l)]
            if len(got) >= count:
                return got
            if self.rc is not None:
                # exited: the log is complete, nothing more will come
                raise AssertionError("sluice exited (%s) before logging %d x %r; log:\n%s"
                                     % (self.rc, count, pattern, self.log()[-4000:]))
            return None

        return wait_until(found, timeout, what="%d log line(s) matching %r" % (count, pattern))

    def wait_ready(self):
        self.wait_log(r"notice: sluice \S+ ready: pid %d, \d+ workers, config " % self.pid)

    def conns(self):
        out = []
        for l in self.lines():
            m = CONN_RE.search(l)
            if m:
                out.append(m.groupdict())
        return out

    def wait_conns(self, count, timeout=DEADLINE, **match):
        """Wait for at least count conn lines whose fields equal match."""
        def got():
            c = [d for d in self.conns() if all(d[k] == v for k, v in match.items())]
            return c if len(c) >= count else None

        return wait_until(got, timeout, what="%d conn log line(s) with %r; log tail:\n%s"
                          % (count, match, self.log()[-2000:]))

    def signal(self, sig):
        if self.proc.poll() is None:
            os.kill(self.pid, sig)

    def wait_exit(self, timeout=DEADLINE):
        try:
            self.rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.rc

    def stop(self, timeout=DEADLINE):
        """SIGTERM and wait; returns the exit status, None if still running."""
        self.signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def sanitizer_report(self):
        """The log from a little before its first sanitizer report, or None."""
        text = self.log()
        at = [text.find(m) for m in SANITIZER_MARKS if m in text]
        if not at:
            return None
        return text[max(0, min(at) - 500):]


# The relay suite runs in both relay modes: each test of these files that
# starts sluice runs once with the user-space relay and once with
# `relay kernel` (sockmap) as the global default.
RELAY_SUITE = {"test_relay.py", "test_proxyproto.py", "test_silent_client.py",
               "test_ctl_drain.py", "test_takeover.py", "test_reload_apply.py",
               "test_lifecycle_sigterm.py", "test_krelay.py", "test_ipv6.py",
               "test_tls_routes.py"}
KRELAY_DONE_RE = re.compile(r"notice: kernel relay: (\d+) connections relayed in the kernel, "
                            r"(\d+) stayed in user space")


def pytest_generate_tests(metafunc):
    if ("relay_mode" in metafunc.fixturenames
            and os.path.basename(str(metafunc.module.__file__)) in RELAY_SUITE
            and "relay_mode" not in getattr(metafunc.function, "pytestmark_names", ())):
        metafunc.parametrize("relay_mode", ["user", "kernel"])


@pytest.fixture
def relay_mode():
    """The relay the daemons of a test use by default: "user" outside the
    relay suite (pytest_generate_tests gives the suite both)."""
    return "user"


def with_relay(conf_text, mode):
    """conf_text with `relay MODE;` as the global default, unless it says
    relay itself."""
    if mode == "user" or re.search(r"(^|[{;\s])relay\s", conf_text):
        return conf_text
    if re.search(r"(^|\n)\s*global\s*\{", conf_text):
        return re.sub(r"(^|\n)(\s*global\s*\{)", r"\1\2 relay %s;" % mode, conf_text, count=1)
    return "global { relay %s; }\n" % mode + conf_text


# The relay mode of the running test, for configurations written later.
RELAY_NOW = ["user"]


def krelay_counts(d):
    """(relayed in the kernel, stayed in user space) from the exit notice of
    a stopped daemon, or None."""
    m = KRELAY_DONE_RE.search(d.log())
    return (int(m.group(1)), int(m.group(2))) if m else None


@pytest.fixture
def sluice(tmp_path, relay_mode):
    """Factory: sluice(conf_text) starts a daemon and waits until it is ready.
    Teardown: SIGTERM, exit status 0 required, no sanitizer report."""
    started = []
    RELAY_NOW[0] = relay_mode

    def start(conf_text, ready=True, name=None, args=(), prefix=(), binary=None):
        conf_text = with_relay(conf_text, relay_mode)
        d = Daemon(tmp_path, conf_text, name or "sluice%d" % len(started), args, prefix, binary)
        started.append(d)
        if ready:
            d.wait_ready()
        return d

    yield start
    problems = []
    for d in started:
        if d.rc is None and d.proc.poll() is None:
            rc = d.stop()
            if rc is None:
                d.proc.kill()  # our own child, by its Popen handle
                d.proc.wait()
                problems.append("sluice pid %d did not exit within %.0fs of SIGTERM"
                                % (d.pid, DEADLINE))
            elif rc != 0:
                problems.append("sluice pid %d exited %d after SIGTERM" % (d.pid, rc))
        else:
            if d.rc is None:
                d.rc = d.proc.returncode
            if d.rc != 0:
                problems.append("sluice pid %d exited %d" % (d.pid, d.rc))
        d.logf.close()
        if relay_mode != "user" and "notice: kernel relay loaded" not in d.log():
            problems.append("sluice pid %d ran without the kernel relay in relay %s mode"
                            % (d.pid, relay_mode))
        if os.environ.get("SLUICE_KRELAY_REPORT"):
            print("krelay counts of pid %d: %r" % (d.pid, krelay_counts(d)))
        rep = d.sanitizer_report()
        if rep is not None:
            problems.append("sanitizer report in the log of pid %d:\n%s" % (d.pid, rep[:8000]))
    RELAY_NOW[0] = "user"
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def run_sluice(args, timeout=DEADLINE):
    """Run sluice to completion (e.g. -c -f FILE). Returns CompletedProcess."""
    return subprocess.run([SLUICE] + args, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)


# ---------------------------------------------------------------- backends


class Backend:
    """A threaded TCP server on loopback: one thread per connection runs
    handler(backend, conn, rec); rec is a dict recorded in self.records.
    Counts open connections (active, max_active) under a condition."""

    def __init__(self, handler, host="127.0.0.1", name="backend", port=0):
        self.handler = handler
        self.host = host
        self.name = name
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.lsock = socket.socket(fam, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((host, port))
        self.lsock.listen(4096)
        self.port = self.lsock.getsockname()[1]
        self.addr = fmt_addr(host, self.port)
        self.cond = threading.Condition()
        self.records = []
        self.active = 0
        self.max_active = 0
        self.total = 0
        self.errors = []
        self.conns = set()
        self.closed = False
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    def _accept_loop(self):
        while not self.closed:
            try:
                c, peer = self.lsock.accept()
            except OSError:
                return
            rec = {"peer": peer[:2], "local": c.getsockname()[:2], "t_open": time.monotonic()}
            with self.cond:
                self.active += 1
                self.total += 1
                self.max_active = max(self.max_active, self.active)
                self.records.append(rec)
                self.conns.add(c)
                self.cond.notify_all()
            threading.Thread(target=self._run, args=(c, rec), daemon=True).start()

    def _run(self, c, rec):
        c.settimeout(DEADLINE * 3)
        try:
            self.handler(self, c, rec)
        except ConnectionResetError:
            rec["end"] = "reset"
        except Exception as e:  # checked by tests through self.errors
            rec["end"] = "error"
            rec["error"] = repr(e)
            self.errors.append(repr(e))
        finally:
            rec["t_end"] = time.monotonic()
            try:
                c.close()
            except OSError:
                pass
            with self.cond:
                self.active -= 1
                self.conns.discard(c)
                rec["done"] = True
                self.cond.notify_all()

    def wait(self, pred, timeout=DEADLINE, what="backend condition"):
        """Wait until pred(self) holds (evaluated under the lock)."""
        end = time.monotonic() + timeout
        with self.cond:
            while not pred(self):
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError("%s: timed out waiting for %s (active=%d total=%d)"
                                         % (self.name, what, self.active, self.total))
                self.cond.wait(min(left, 0.1))

    def wait_done(self, count, timeout=DEADLINE):
        """Wait until count connections have finished; returns their records."""
        self.wait(lambda b: sum(1 for r in b.records if r.get("done")) >= count, timeout,
                  "%d finished connections" % count)
        with self.cond:
            return [r for r in self.records if r.get("done")]

    def close(self):
        self.closed = True
        try:
            self.lsock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.lsock.close()
        with self.cond:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def read_to_end(c, rec):
    """Drain until EOF or reset; record how the peer finished."""
    n = 0
    try:
        while True:
            b = c.recv(65536)
            if not b:
                rec["end"] = "eof"
                break
            n += len(b)
    except ConnectionResetError:
        rec["end"] = "reset"
    rec["nread"] = rec.get("nread", 0) + n
    return n


# Handlers: each a function (backend, conn, rec).

def h_echo(b, c, rec):
    """Echo every byte; on EOF shut our write side too."""
    n = 0
    while True:
        d = c.recv(65536)
        if not d:
            rec["end"] = "eof"
            break
        n += len(d)
        c.sendall(d)
    rec["nread"] = n
    c.shutdown(socket.SHUT_WR)


def h_name(b, c, rec):
    """Say the backend's name, then hold until the client closes."""
    c.sendall(b.name.encode() + b"\n")
    read_to_end(c, rec)


def h_request_reply(b, c, rec):
    """Client-first: wait for a request line, answer "reply to LINE", close.
    A bare connect that sends nothing (a check) just ends."""
    line = b""
    while not line.endswith(b"\n"):
        d = c.recv(4096)
        if not d:
            rec["end"] = "eof-before-request"
            return
        line += d
    c.sendall(b"reply to " + line)
    rec["end"] = "answered"


def h_hold(b, c, rec):
    """Accept and hold: no reply; record how it ended."""
    read_to_end(c, rec)


def h_reply_after_eof(b, c, rec):
    """Half-close from the client: read all to EOF, then send back the sha256
    of it and its length, then the data reversed (a reply that is only
    possible after the whole input was seen)."""
    data = recv_all(c)
    rec["nread"] = len(data)
    rec["end"] = "eof"
    c.sendall(("%s %d\n" % (hashlib.sha256(data).hexdigest(), len(data))).encode() + data[::-1])
    c.shutdown(socket.SHUT_WR)


def h_close_first(b, c, rec):
    """Half-close from the server: greet, shut our write side, then keep
    receiving until the client's EOF; record what came in."""
    c.sendall(b"bye from server\n")
    c.shutdown(socket.SHUT_WR)
    rec["data"] = recv_all(c)
    rec["end"] = "eof"


def h_reset_after_read(b, c, rec):
    """Read something, then close with a reset."""
    rec["first"] = c.recv(65536)
    linger0(c)
    rec["end"] = "sent-reset"


def make_duplex(nbytes):
    """Send nbytes random (then FIN) while hashing all received to EOF."""
    def h(b, c, rec):
        r = duplex(c, nbytes)
        rec.update(r)
        rec["end"] = "eof"
    return h


def h_proxy_echo(b, c, rec):
    """Read a PROXY header, record it, then echo the rest."""
    rec["raw"], rec["hdr"] = read_proxy_header(c)
    h_echo(b, c, rec)


@pytest.fixture
def backends():
    """Factory: backends(handler, host=..., name=...) -> Backend; all closed at teardown."""
    made = []

    def start(handler, host="127.0.0.1", name=None, port=0):
        be = Backend(handler, host, name or "b%d" % len(made), port)
        made.append(be)
        return be

    yield start
    for be in made:
        be.close()


class SelectEcho:
    """A single-thread selectors echo server for thousands of connections."""

    def __init__(self, host="127.0.0.1"):
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((host, 0))
        self.lsock.listen(4096)
        self.lsock.setblocking(False)
        self.port = self.lsock.getsockname()[1]
        self.addr = fmt_addr(host, self.port)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.lsock, selectors.EVENT_READ, None)
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0
        self.total = 0
        self.stop_r, self.stop_w = socket.socketpair()
        self.sel.register(self.stop_r, selectors.EVENT_READ, "stop")
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        pending = {}
        while True:
            for key, ev in self.sel.select(1.0):
                if key.data == "stop":
                    for s in list(pending):
                        s.close()
                    self.sel.close()
                    self.lsock.close()
                    return
                if key.data is None:
                    for _ in range(256):
                        try:
                            c, _ = self.lsock.accept()
                        except (BlockingIOError, OSError):
                            break
                        c.setblocking(False)
                        pending[c] = b""
                        self.sel.register(c, selectors.EVENT_READ, "c")
                        with self.lock:
                            self.active += 1
                            self.total += 1
                            self.max_active = max(self.max_active, self.active)
                    continue
                c = key.fileobj
                try:
                    d = c.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    d = b""
                if d:
                    try:
                        c.send(d)  # small messages: the send buffer has room
                    except OSError:
                        pass
                    continue
                self.sel.unregister(c)
                pending.pop(c, None)
                c.close()
                with self.lock:
                    self.active -= 1

    def close(self):
        self.stop_w.send(b"x")
        self.thread.join(DEADLINE)
        self.stop_w.close()
        self.stop_r.close()


# ---------------------------------------------------------------- reload and lifecycle helpers
# (added for test_reload*.py and test_lifecycle_*.py)

import json as _json
import shutil
import tempfile


@pytest.fixture
def short_dir():
    """A fresh directory with a short path (unix socket paths are limited to
    108 bytes; pytest's tmp_path can be longer). Mode 0755 so that a daemon
    that dropped root can still read files in it. Removed at teardown."""
    d = tempfile.mkdtemp(prefix="slc")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def write_atomic(path, text):
    """Replace a file in one step (rename), so that a reload never reads a
    half-written file; world-readable. A configuration keeps the relay
    mode of the test (see RELAY_SUITE)."""
    if path.endswith(".conf"):
        text = with_relay(text, RELAY_NOW[0])
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def text_pos(text, needle, nth=0):
    """1-based (line, col) of the nth occurrence of needle in text."""
    i = -1
    for _ in range(nth + 1):
        i = text.index(needle, i + 1)
        assert i >= 0
    return text.count("\n", 0, i) + 1, i - text.rfind("\n", 0, i)


def wait_ctl(path, timeout=DEADLINE):
    """Connect to a control socket once it accepts."""
    def attempt():
        try:
            return ReloadCtl(path)
        except (FileNotFoundError, ConnectionRefusedError):
            return None
    return wait_until(attempt, timeout, interval=0.02, what="control socket %s" % path)


def proc_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def proc_status(pid, task=None):
    """/proc/PID/status (or of one thread) as a dict of strings."""
    path = "/proc/%d/status" % pid if task is None else "/proc/%d/task/%d/status" % (pid, task)
    out = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def proc_rss_kib(pid):
    return int(proc_status(pid)["VmRSS"].split()[0])


class LogTail:
    """Incremental reader of a daemon's log: only what came after mark()."""

    def __init__(self, daemon):
        self.d = daemon
        self.off = 0

    def mark(self):
        self.off = os.path.getsize(self.d.log_path)

    def new_text(self):
        with open(self.d.log_path, "rb") as f:
            f.seek(self.off)
            return f.read().decode("utf-8", "replace")

    def wait(self, pattern, timeout=DEADLINE):
        """Wait for a complete line matching pattern after the mark; returns
        the match. Fails at once if the daemon exited."""
        rx = re.compile(pattern, re.M)

        def found():
            text = self.new_text()
            text = text[: text.rfind("\n") + 1]
            m = rx.search(text)
            if m:
                return m
            if self.d.proc.poll() is not None:
                raise AssertionError("sluice exited (%s) waiting for %r; log tail:\n%s"
                                     % (self.d.proc.returncode, pattern, self.d.log()[-3000:]))
            return None

        return wait_until(found, timeout, interval=0.003, what="log line %r" % pattern)


_BLOB = os.urandom(1 << 20)


def echo_transfer(port, nbytes, host="127.0.0.1", timeout=DEADLINE, connect_timeout=None):
    """One connection through an echo path: send nbytes (a slice of a random
    blob, then FIN) while reading to EOF in the same thread; compare sha256
    and length. Returns None on success, else a string saying what failed
    ("refused" when connect() was refused)."""
    off = (os.getpid() * 7919 + nbytes * 31 + int(time.monotonic() * 1e6)) % (len(_BLOB) - nbytes)
    data = memoryview(_BLOB)[off:off + nbytes]
    want = hashlib.sha256(data).hexdigest()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(connect_timeout or timeout)
    try:
        try:
            s.connect((host, port))
        except ConnectionRefusedError:
            return "refused"
        except OSError as e:
            return "connect: %r" % e
        s.setblocking(False)
        sel = selectors.DefaultSelector()
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
        h = hashlib.sha256()
        sent = got = 0
        wr_open = True
        end = time.monotonic() + timeout
        try:
            while True:
                left = end - time.monotonic()
                if left <= 0:
                    return "timeout after sending %d, receiving %d of %d" % (sent, got, nbytes)
                for _key, ev in sel.select(min(left, 1.0)):
                    if ev & selectors.EVENT_WRITE and wr_open:
                        try:
                            sent += s.send(data[sent:sent + 65536])
                        except (BlockingIOError, InterruptedError):
                            pass
                        if sent == nbytes:
                            s.shutdown(socket.SHUT_WR)
                            wr_open = False
                            sel.modify(s, selectors.EVENT_READ)
                    if ev & selectors.EVENT_READ:
                        try:
                            b = s.recv(262144)
                        except (BlockingIOError, InterruptedError):
                            continue
                        if not b:
                            if got != nbytes or h.hexdigest() != want:
                                return ("EOF after receiving %d of %d bytes (sent %d)%s"
                                        % (got, nbytes, sent,
                                           ", data differs" if got == nbytes else ""))
                            return None
                        h.update(b)
                        got += len(b)
                        if got > nbytes:
                            return "received %d bytes, more than the %d sent" % (got, nbytes)
        except OSError as e:
            return "%r after sending %d, receiving %d of %d" % (e, sent, got, nbytes)
        finally:
            sel.close()
    finally:
        s.close()


class Load:
    """Steady bounded load: rate new connections per second for at most
    duration seconds (or until stop()), spread over nthreads client threads;
    each sends and verifies a random size in [min_bytes, max_bytes] through
    an echo path. Results: self.ok (count), self.failures [(t, error)],
    self.refused."""

    def __init__(self, port, rate, duration, min_bytes=2048, max_bytes=256 * 1024,
                 nthreads=16, host="127.0.0.1"):
        self.port, self.rate, self.duration = port, rate, duration
        self.min_bytes, self.max_bytes, self.host = min_bytes, max_bytes, host
        self.lock = threading.Lock()
        self.next_slot = 0
        self.ok = 0
        self.failures = []
        self.bytes = 0
        self.stopped = threading.Event()
        self.t0 = time.monotonic()
        self.t_end = None
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(nthreads)]
        for t in self.threads:
            t.start()

    def _size(self, i):
        # log-uniform between min and max: many small, some large
        import math
        lo, hi = math.log(self.min_bytes), math.log(self.max_bytes)
        x = ((i * 2654435761) % 1000003) / 1000003.0
        return int(math.exp(lo + (hi - lo) * x))

    def _run(self, k):
        while not self.stopped.is_set():
            with self.lock:
                i = self.next_slot
                self.next_slot += 1
            at = self.t0 + i / self.rate
            if at - self.t0 >= self.duration:
                return
            delay = at - time.monotonic()
            if delay > 0 and self.stopped.wait(delay):
                return
            n = self._size(i)
            err = echo_transfer(self.port, n, self.host)
            with self.lock:
                if err is None:
                    self.ok += 1
                    self.bytes += n
                else:
                    self.failures.append((round(time.monotonic() - self.t0, 3), n, err))

    def stop(self):
        self.stopped.set()

    def join(self, timeout=DEADLINE * 3):
        end = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, end - time.monotonic()))
        assert not any(t.is_alive() for t in self.threads), "load threads did not finish"
        self.t_end = time.monotonic()
        return self

    def summary(self):
        el = (self.t_end or time.monotonic()) - self.t0
        return ("%d ok, %d failed in %.1fs (%.0f conn/s, %.1f MiB each way)"
                % (self.ok, len(self.failures), el, (self.ok + len(self.failures)) / el,
                   self.bytes / MiB))


# ---------------------------------------------------------------- control socket
# Helpers for the control socket tests (test_ctl*.py): a line-protocol
# client, sluicectl and tools/rolling-deploy runners, a tagging echo backend.

SLUICECTL = os.path.join(BUILD, "sluicectl")
ROLLING_DEPLOY = os.path.abspath(os.path.join(HERE, "..", "..", "tools", "rolling-deploy"))


def ctl_global(sock, extra=""):
    """The global options for a daemon with an admin control socket."""
    return "control %s mode 0600; %s" % (sock, extra)


class Ctl:
    """A control socket client: one UNIX connection, pipelining allowed.
    cmd() sends one line and returns the reply without its final empty line."""

    def __init__(self, path, timeout=DEADLINE):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def reply(self):
        """Read one reply (up to and including the empty line). Returns the
        text without the final blank line; raises on EOF before it."""
        while b"\n\n" not in self.buf:
            b = self.sock.recv(65536)
            if not b:
                raise EOFError("control socket closed; got %r" % self.buf[-300:])
            self.buf += b
        i = self.buf.index(b"\n\n")
        out, self.buf = self.buf[: i + 1], self.buf[i + 2:]
        return out.decode("utf-8", "replace")

    def cmd(self, line):
        self.send(line.encode() + b"\n")
        return self.reply()

    def json(self, line):
        import json as _json
        r = self.cmd("json " + line)
        assert not r.startswith("error: "), "%s -> %s" % (line, r)
        return _json.loads(r)

    def ok(self, line):
        r = self.cmd(line)
        assert not r.startswith("error: "), "%s -> %s" % (line, r)
        return r

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def ctl_cmd(path, line, timeout=DEADLINE):
    """One command on a fresh connection; returns the reply text."""
    with Ctl(path, timeout) as c:
        return c.cmd(line)


def ctl_servers(path, pool=None):
    """json show servers [POOL] as {"pool/server": row}."""
    with Ctl(path) as c:
        rows = c.json("show servers" + (" " + pool if pool else ""))
    return {"%s/%s" % (r["pool"], r["server"]): r for r in rows}


def run_sluicectl(args, timeout=DEADLINE, **kw):
    """Run build/sluicectl ARGS. Returns CompletedProcess (text)."""
    return subprocess.run([SLUICECTL] + list(args), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout, **kw)


def run_rolling_deploy(args, timeout=DEADLINE * 3, env=None):
    """Run tools/rolling-deploy ARGS to completion. Returns CompletedProcess."""
    e = dict(os.environ)
    if env:
        e.update(env)
    return subprocess.run([ROLLING_DEPLOY] + list(args), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout, env=e)


TAG_LEN = 8


def h_echo_tag(b, c, rec):
    """Echo every byte; the first TAG_LEN bytes name the client connection
    (recorded as rec["tag"]) so a test can tell where each one went."""
    head = b""
    n = 0
    while True:
        d = c.recv(65536)
        if not d:
            rec["end"] = "eof"
            break
        if len(head) < TAG_LEN:
            head += d[: TAG_LEN - len(head)]
            if len(head) == TAG_LEN:
                rec["tag"] = head.decode("ascii", "replace")
        n += len(d)
        c.sendall(d)
    rec["nread"] = n
    rec["t_shut"] = time.monotonic()  # before the shutdown: never later than it
    c.shutdown(socket.SHUT_WR)


class ReloadCtl(Ctl):
    """Ctl whose cmd() drops the reply's last newline too, with shortcuts
    for the reload tests."""

    def cmd(self, line):
        return super().cmd(line).rstrip("\n")

    def servers(self):
        """{(pool, server): row} from json show servers."""
        return {(r["pool"], r["server"]): r for r in self.json("show servers")}

    def listeners(self):
        return {r["name"]: r for r in self.json("show listeners")}
