# The Debian package: `make deb` builds it with dpkg-buildpackage, lintian
# finds no error, and on this machine (as root) dpkg -i installs it as
# Debian policy wants: the sluice system user and group (sysusers), the
# conffile that `sluice -c` passes, the unit enabled but not started and
# valid for systemd-analyze verify, no /run/sluice shipped. The installed
# daemon drops to that user and serves on a free loopback port. dpkg -r
# leaves only the conffile, the enablement and the user; dpkg -P leaves only
# the user. The package is always purged at the end, whatever failed.
import glob
import os
import pwd
import re
import signal
import subprocess
import time

import pytest

from conftest import BUILD, DEADLINE, ROOT, Procs, free_port, http_get, wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="dpkg -i needs root")

CONFFILE = "/etc/sluice/sluice.conf"
WANTS = "/etc/systemd/system/multi-user.target.wants/sluice.service"
UNIT = "/lib/systemd/system/sluice.service"


def dpkg(*args):
    """dpkg, waiting (bounded) while another dpkg or apt holds the lock."""
    end = time.monotonic() + 300
    while True:
        r = subprocess.run(["dpkg"] + list(args), capture_output=True, text=True,
                           timeout=300, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        if r.returncode == 0 or "lock" not in r.stderr or time.monotonic() > end:
            return r
        time.sleep(0.5)


def status():
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "sluice"], capture_output=True,
                       text=True)
    return r.stdout if r.returncode == 0 else "not-installed"


def exists(p):
    return os.path.lexists(p)


@pytest.fixture(scope="module")
def deb():
    r = subprocess.run(["make", "-C", ROOT, "deb"], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    debs = glob.glob(os.path.join(ROOT, "build/deb/sluice_*_*.deb"))
    assert len(debs) == 1, debs
    return debs[0]


def test_lintian_has_no_errors(deb):
    changes = glob.glob(os.path.join(ROOT, "build/deb/sluice_*.changes"))
    r = subprocess.run(["lintian", "--fail-on", "error", "--no-tag-display-limit"] + changes,
                       capture_output=True, text=True, timeout=600)
    errors = [l for l in r.stdout.splitlines() if l.startswith("E:")]
    assert r.returncode == 0 and not errors, r.stdout + r.stderr


def running_installed_daemons():
    out = []
    for pid in os.listdir("/proc"):
        try:
            if pid.isdigit() and os.readlink("/proc/%s/exe" % pid) == "/usr/sbin/sluice":
                out.append(int(pid))
        except OSError:
            pass
    return out


def serve_as_sluice_user(tmp_path):
    """The installed daemon with a config on a free loopback port that drops
    to the sysusers-made user; one request through it; SIGTERM, exit 0."""
    procs = Procs()
    be, port = free_port(), free_port()
    conf = tmp_path / "pkg.conf"
    conf.write_text("global { workers 1; user sluice; group sluice; log stderr info; }\n"
                    "pool p { server a 127.0.0.1:%d; }\n"
                    "listen l { bind 127.0.0.1:%d; pool p; }\n" % (be, port))
    os.chmod(tmp_path, 0o755)
    os.chmod(conf, 0o644)
    logp = tmp_path / "pkg.log"
    log = open(logp, "wb")
    try:
        procs.backend("pkgweb", be)
        d = procs.start(["/usr/sbin/sluice", "-f", str(conf)], stdout=log, stderr=log)
        wait_until(lambda: d.poll() is not None or " ready: pid %d," % d.pid in logp.read_text(),
                   what="the installed sluice to be ready")
        assert d.poll() is None, logp.read_text()
        with open("/proc/%d/status" % d.pid) as f:
            uid = re.search(r"^Uid:\s+(\d+)\s+(\d+)", f.read(), re.M)
        assert int(uid.group(2)) == pwd.getpwnam("sluice").pw_uid
        assert "pkgweb" in http_get(port)
        d.send_signal(signal.SIGTERM)
        assert d.wait(DEADLINE) == 0, logp.read_text()
    finally:
        procs.stop_all()
        log.close()


def test_install_remove_purge(deb, tmp_path):
    if status() != "not-installed":
        pytest.fail("a sluice package is already installed here (%s): not touching it"
                    % status())
    try:
        r = dpkg("-i", deb)
        assert r.returncode == 0, r.stdout + r.stderr
        assert status() == "install ok installed"
        files = subprocess.run(["dpkg-query", "-L", "sluice"], capture_output=True,
                               text=True, check=True).stdout.split()
        plain = [f for f in files if not os.path.isdir(f)]
        for f in ("/usr/sbin/sluice", "/usr/bin/sluicectl", "/usr/bin/rolling-deploy", UNIT,
                  CONFFILE, "/usr/lib/sysusers.d/sluice.conf",
                  "/usr/share/man/man8/sluice.8.gz", "/usr/share/man/man5/sluice.conf.5.gz",
                  "/usr/share/man/man8/sluicectl.8.gz"):
            assert f in plain, (f, plain)
        assert not any(f.startswith("/run") or f.startswith("/var/run") for f in files), files
        conffiles = subprocess.run(["dpkg-query", "-W", "-f=${Conffiles}", "sluice"],
                                   capture_output=True, text=True).stdout.split()
        assert conffiles[0::2] == [CONFFILE], conffiles
        # the system user and group, from sysusers
        pw = subprocess.run(["getent", "passwd", "sluice"], capture_output=True, text=True)
        assert pw.returncode == 0
        uid, shell = int(pw.stdout.split(":")[2]), pw.stdout.strip().split(":")[6]
        assert uid < 1000 and shell == "/usr/sbin/nologin", pw.stdout
        assert subprocess.run(["getent", "group", "sluice"], capture_output=True).returncode == 0
        # the shipped configuration is valid and listens nowhere
        r = subprocess.run(["/usr/sbin/sluice", "-c", "-f", CONFFILE], capture_output=True,
                           text=True, timeout=DEADLINE)
        assert r.returncode == 0, r.stderr
        assert not re.search(r"^\s*bind\s", open(CONFFILE).read(), re.M)
        # enabled, not started; the unit verifies against the installed paths
        assert os.readlink(WANTS) == UNIT
        assert running_installed_daemons() == []
        r = subprocess.run(["systemd-analyze", "verify", UNIT], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0 and r.stdout + r.stderr == "", r.stdout + r.stderr
        r = subprocess.run(["/usr/sbin/sluice", "-v"], capture_output=True, text=True)
        assert re.match(r"sluice \S+ \(commit [0-9a-f]{12}", r.stdout), r.stdout
        serve_as_sluice_user(tmp_path)

        r = dpkg("-r", "sluice")
        assert r.returncode == 0, r.stdout + r.stderr
        assert status() == "deinstall ok config-files"
        left = [f for f in plain if exists(f)]
        assert left == [CONFFILE], left
        # the enablement is configuration too: deb-systemd-helper drops it on purge
        assert os.readlink(WANTS) == UNIT
        assert subprocess.run(["getent", "passwd", "sluice"], capture_output=True).returncode == 0

        r = dpkg("-P", "sluice")
        assert r.returncode == 0, r.stdout + r.stderr
        assert status() == "not-installed"
        left = [f for f in files if exists(f) and not os.path.isdir(f)]
        assert left == [], left
        assert not exists("/etc/sluice")
        assert not exists(WANTS) and not exists("/etc/systemd/system/sluice.service")
        assert glob.glob("/var/lib/systemd/deb-systemd-helper-*/**/sluice.service*",
                         recursive=True) == []
        # Debian keeps system users after a purge
        assert subprocess.run(["getent", "passwd", "sluice"], capture_output=True).returncode == 0
    finally:
        if status() != "not-installed":
            dpkg("-P", "sluice")
