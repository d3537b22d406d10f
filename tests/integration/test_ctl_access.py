# Access to the control socket: the file mode keeps other users out (a
# child process running as nobody gets "permission denied" on a 0600
# socket, and gets in on a 0666 one in the same directory), and a `level
# user` socket runs show and wait commands but refuses admin ones.
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile

import pytest

from conftest import (DEADLINE, SLUICECTL, Ctl, ctl_servers, free_port, h_name, make_conf,
                      run_sluicectl)

NOBODY = 65534

# Runs as nobody: connect, send one command, print {"errno"|"reply"} as JSON.
CHILD = r"""
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(20)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print(json.dumps({"errno": e.errno, "uid": __import__("os").getuid()}))
    sys.exit(0)
s.sendall(sys.argv[2].encode() + b"\n")
buf = b""
while not buf.endswith(b"\n\n"):
    b = s.recv(65536)
    if not b:
        break
    buf += b
print(json.dumps({"reply": buf.decode("utf-8", "replace"), "uid": __import__("os").getuid()}))
"""


def as_nobody():
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def nobody_cmd(path, line):
    r = subprocess.run([sys.executable, "-c", CHILD, path, line], preexec_fn=as_nobody,
                       capture_output=True, text=True, timeout=DEADLINE)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["uid"] == NOBODY
    return out


@pytest.fixture
def shared_dir():
    """A directory other users may traverse (pytest's tmp_path is 0700, which
    alone would keep nobody out and hide what the socket mode does)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run a child as nobody")
    d = tempfile.mkdtemp(prefix="sluice-ctl-", dir="/tmp")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d)


def test_socket_mode_keeps_other_users_out(shared_dir, sluice, backends):
    be = backends(h_name, name="a")
    admin = os.path.join(shared_dir, "sub", "admin.sock")  # sub/ created by the daemon
    user = os.path.join(shared_dir, "sub", "user.sock")
    port = free_port()
    d = sluice(make_conf(port, ["a %s" % be.addr],
                         global_extra="control %s mode 0600; control %s mode 0666 level user;"
                         % (admin, user)))
    d.wait_log(r"notice: control socket %s \(mode 0600, level admin\)" % admin)
    d.wait_log(r"notice: control socket %s \(mode 0666, level user\)" % user)
    assert stat.S_IMODE(os.stat(admin).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(user).st_mode) == 0o666
    assert stat.S_ISSOCK(os.stat(admin).st_mode)
    # nobody: refused by the 0600 socket ...
    out = nobody_cmd(admin, "server drain web/a")
    assert out.get("errno") == 13, "nobody could use the 0600 socket: %r" % out  # EACCES
    # ... also through sluicectl, which says so and exits 2
    r = subprocess.run([SLUICECTL, "-s", admin, "show", "info"], preexec_fn=as_nobody,
                       capture_output=True, text=True, timeout=DEADLINE)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Permission denied" in r.stderr, r.stderr
    # ... but gets in on the 0666 one next to it (so the mode is what refused)
    out = nobody_cmd(user, "show info")
    assert out.get("reply", "").startswith("version:"), out
    out = nobody_cmd(user, "server drain web/a")
    assert out.get("reply") == "error: permission denied\n\n", out
    # root still uses the admin socket
    with Ctl(admin) as c:
        assert c.cmd("show info").startswith("version:")
    assert ctl_servers(admin)["web/a"]["admin"] == "ready"


def test_user_level_allows_show_and_wait_only(tmp_path, sluice, backends):
    be = backends(h_name, name="a")
    admin, user = str(tmp_path / "admin.sock"), str(tmp_path / "user.sock")
    port = free_port()
    d = sluice(make_conf(port, ["a %s" % be.addr],
                         global_extra="control %s; control %s mode 0660 level user;"
                         % (admin, user)))
    d.wait_log(r"notice: control socket %s \(mode 0660, level user\)" % user)
    before = ctl_servers(admin)
    with Ctl(user) as c:
        for line in ("server ready web/a", "server drain web/a", "server maint web/a",
                     "server drain web/a within 1s", "server weight web/a 3",
                     "server shutdown-sessions web/a", "server add web n 127.0.0.1:9",
                     "server del web/a", "server del web/a force", "reload", "reload check",
                     "json server drain web/a",
                     # refused before its arguments are even looked at
                     "server drain nopool/x", "server weight"):
            r = c.cmd(line)
            assert r == "error: permission denied\n", "%r on a user socket -> %r" % (line, r)
        assert c.cmd("help").startswith("commands")
        for line in ("show info", "show listeners", "show pools", "show servers",
                     "show servers web", "show metrics"):
            r = c.cmd(line)
            assert r and not r.startswith("error: "), "%r -> %r" % (line, r)
        for line in ("show info", "show listeners", "show pools", "show servers"):
            json.loads(c.cmd("json " + line))
        assert c.cmd("wait drained web/a 1s") == "server web/a is drained\n"
        assert c.cmd("wait up web/a 1s") == "server web/a is up\n"
    assert ctl_servers(admin) == before
    # sluicectl on the user socket: exit 1 and the error on stderr
    r = run_sluicectl(["-s", user, "server", "drain", "web/a"])
    assert r.returncode == 1 and r.stderr == "error: permission denied\n" and r.stdout == "", r
    assert run_sluicectl(["-s", user, "show", "servers"]).returncode == 0
