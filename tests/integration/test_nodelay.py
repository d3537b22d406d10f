"""TCP_NODELAY on both sides of a proxied connection, read from the
daemon's own sockets (pidfd_getfd(2) duplicates them into the test)."""
import ctypes
import os
import socket

from conftest import connect, free_port, h_echo, make_conf, recv_exact

SYS_PIDFD_OPEN = 434
SYS_PIDFD_GETFD = 438
_libc = ctypes.CDLL(None, use_errno=True)


def sockets_of(pid):
    """Duplicates of the TCP sockets of process pid, as socket objects."""
    pidfd = _libc.syscall(SYS_PIDFD_OPEN, pid, 0)
    assert pidfd >= 0, os.strerror(ctypes.get_errno())
    out = []
    try:
        for name in os.listdir("/proc/%d/fd" % pid):
            try:
                target = os.readlink("/proc/%d/fd/%s" % (pid, name))
            except OSError:
                continue
            if not target.startswith("socket:"):
                continue
            fd = _libc.syscall(SYS_PIDFD_GETFD, pidfd, int(name), 0)
            if fd < 0:
                continue
            s = socket.socket(fileno=fd)
            if s.family in (socket.AF_INET, socket.AF_INET6) and s.type == socket.SOCK_STREAM:
                out.append(s)
            else:
                s.close()
    finally:
        os.close(pidfd)
    return out


def test_nodelay_on_client_and_server_sockets(sluice, backends):
    be = backends(h_echo)
    port = free_port()
    d = sluice(make_conf(port, ["a %s" % be.addr]))
    c = connect(port)
    c.sendall(b"x")
    assert recv_exact(c, 1) == b"x"
    client_side = server_side = None
    for s in sockets_of(d.pid):
        try:
            peer = s.getpeername()
        except OSError:
            s.close()  # a listening socket
            continue
        if peer == c.getsockname():
            client_side = s
        elif peer[1] == be.port:
            server_side = s
        else:
            s.close()
    assert client_side is not None and server_side is not None
    assert client_side.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    assert server_side.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    client_side.close()
    server_side.close()
    c.close()
