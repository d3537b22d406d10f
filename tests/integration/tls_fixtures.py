# Helpers for the TLS routing tests (test_tls_routes*.py): openssl s_server
# backends with their own certificates, a TLS client over Python's ssl, one
# that drives the handshake through memory so the test decides how the
# ClientHello goes on the wire (1-byte segments, several records), and a
# builder of crafted hellos. Loopback only; every wait has a deadline.
import os
import socket
import ssl
import struct
import subprocess
import time

import pytest

from conftest import DEADLINE, connect, free_port, recv_all, wait_until
from health_fixtures import Certs

ALPN_ALL = "h2,http/1.1,acme-tls/1"


class SServer:
    """openssl s_server -www with its own certificate for cn."""

    def __init__(self, tmp_path, certs, name, cn):
        self.name = name
        self.cn = cn
        self.cert, self.key = certs.server(name, cn)
        self.port = free_port()
        self.addr = "127.0.0.1:%d" % self.port
        self.log_path = str(tmp_path / ("s_server-%s.log" % name))
        self.logf = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            ["openssl", "s_server", "-accept", self.addr, "-cert", self.cert, "-key", self.key,
             "-www", "-alpn", ALPN_ALL],
            stdin=subprocess.DEVNULL, stdout=self.logf, stderr=subprocess.STDOUT)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("s_server %s exited: %s" % (name, self.log()))
            return "ACCEPT" in self.log()
        wait_until(ready, what="s_server %s to accept" % name)

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(DEADLINE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()


@pytest.fixture
def pki(tmp_path):
    return Certs(tmp_path)


@pytest.fixture
def sservers(tmp_path, pki):
    """Factory: sservers(name, cn) -> SServer; all stopped at teardown."""
    made = []

    def make(name, cn):
        s = SServer(tmp_path, pki, name, cn)
        made.append(s)
        return s
    yield make
    for s in made:
        s.stop()


def client_ctx(ca, alpn=None):
    """Verifies the chain against our CA; the name is checked by the test
    (some connections are meant to reach a certificate for another name)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    ctx.check_hostname = False
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def peer_cn(cert):
    return dict(x[0] for x in cert["subject"])["commonName"]


def tls_get(port, ca, sni, alpn=None, src=None):
    """A whole TLS exchange through port: handshake (SNI sni, or none when
    None), GET /, reply to EOF. Returns (certificate CN, ALPN chosen, reply)."""
    with connect(port, src=src) as raw:
        with client_ctx(ca, alpn).wrap_socket(raw, server_hostname=sni) as s:
            cn = peer_cn(s.getpeercert())
            proto = s.selected_alpn_protocol()
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            reply = recv_all(s)
    return cn, proto, reply


def client_hello(sni, alpn=None):
    """The ClientHello bytes Python's ssl sends for sni and alpn (one record)."""
    out = ssl.MemoryBIO()
    obj = client_ctx_noverify(alpn).wrap_bio(ssl.MemoryBIO(), out, server_hostname=sni)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def client_ctx_noverify(alpn=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


class MemTLS:
    """A TLS client whose bytes go through memory: the test sends its first
    flight (the ClientHello) itself, shaped as it likes, then pump() runs
    the rest of the handshake and the exchange over sock."""

    def __init__(self, ca, sni, alpn=None):
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = client_ctx(ca, alpn).wrap_bio(self.inc, self.out, server_hostname=sni)
        try:
            self.obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        self.hello = self.out.read()

    def _feed(self, sock):
        b = sock.recv(65536)
        if not b:
            raise AssertionError("EOF from the proxy during the TLS exchange")
        self.inc.write(b)

    def pump(self, sock, request=b"GET / HTTP/1.0\r\n\r\n"):
        """Finish the handshake, send request, read the reply to its end.
        Returns (certificate CN, ALPN chosen, reply)."""
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                pass
            data = self.out.read()
            if data:
                sock.sendall(data)
            self._feed(sock)
        data = self.out.read()
        if data:
            sock.sendall(data)
        self.obj.write(request)
        sock.sendall(self.out.read())
        reply = b""
        while True:
            try:
                b = self.obj.read(65536)
                if not b:
                    break
                reply += b
            except ssl.SSLWantReadError:
                try:
                    self._feed(sock)
                except AssertionError:
                    break  # s_server -www closes without close_notify sometimes
            except ssl.SSLZeroReturnError:
                break
        return peer_cn(self.obj.getpeercert()), self.obj.selected_alpn_protocol(), reply


def split_records(hello, cuts):
    """Re-frame a one-record hello as several handshake records, cut at the
    given offsets of the handshake message."""
    assert hello[0] == 22
    ver, msg = hello[1:3], hello[5:5 + struct.unpack("!H", hello[3:5])[0]]
    out, prev = b"", 0
    for c in list(cuts) + [len(msg)]:
        out += b"\x16" + ver + struct.pack("!H", c - prev) + msg[prev:c]
        prev = c
    return out


def send_bytewise(sock, data, pause=0.0005):
    """One byte per TCP segment (TCP_NODELAY, paced so they do not merge)."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for i in range(len(data)):
        sock.send(data[i:i + 1])
        time.sleep(pause)


# ---- crafted hellos (what no library would send) ----

def ext(t, data):
    return struct.pack("!HH", t, len(data)) + data


def ext_sni(name):
    entry = b"\x00" + struct.pack("!H", len(name)) + name
    return ext(0, struct.pack("!H", len(entry)) + entry)


def ext_alpn(names):
    lst = b"".join(bytes([len(n)]) + n for n in names)
    return ext(16, struct.pack("!H", len(lst)) + lst)


def crafted_hello(exts, record_version=b"\x03\x01"):
    """A ClientHello record with these extension bytes."""
    body = (b"\x03\x03" + os.urandom(32) + b"\x20" + os.urandom(32) + b"\x00\x04\x13\x01\x13\x02"
            + b"\x01\x00" + struct.pack("!H", len(exts)) + exts)
    msg = b"\x01" + struct.pack("!I", len(body))[1:] + body
    return b"\x16" + record_version + struct.pack("!H", len(msg)) + msg


def sslv2_hello():
    """An SSL 2.0-format ClientHello offering TLS 1.0 (RFC 5246 E.2)."""
    specs = b"\x00\x00\x2f\x00\x00\x35\x00\x00\x0a"
    chal = os.urandom(32)
    body = b"\x01\x03\x01" + struct.pack("!HHH", len(specs), 0, len(chal)) + specs + chal
    return struct.pack("!H", 0x8000 | len(body)) + body
