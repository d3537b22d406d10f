# make install with PREFIX and DESTDIR puts exactly the expected files in
# place, with their modes and the unit written for that prefix; the
# installed binary runs the demo configuration (on free loopback ports) and
# the installed sluicectl talks to it; make uninstall takes every file away.
import os
import re
import signal
import stat
import subprocess

from conftest import BUILD, DEADLINE, ROOT, Procs, free_port, http_get, wait_until

PREFIX = "/opt/sluice-test"
EXPECTED = {
    "sbin/sluice": 0o755,
    "bin/sluicectl": 0o755,
    "bin/rolling-deploy": 0o755,
    "share/man/man1/rolling-deploy.1": 0o644,
    "share/man/man5/sluice.conf.5": 0o644,
    "share/man/man8/sluice.8": 0o644,
    "share/man/man8/sluicectl.8": 0o644,
    "lib/systemd/system/sluice.service": 0o644,
    "share/doc/sluice/examples/sluice.conf": 0o644,
    "share/doc/sluice/examples/demo.conf": 0o644,
    "share/doc/sluice/examples/announce-node.conf": 0o644,
    "share/doc/sluice/examples/bird-node.conf": 0o644,
    "share/doc/sluice/examples/frr-node.conf": 0o644,
}


def make(target, destdir, *extra):
    args = ["make", "-C", ROOT, target, "DESTDIR=%s" % destdir, "PREFIX=%s" % PREFIX,
            "BUILD=%s" % BUILD] + list(extra)
    if "san" in os.path.basename(BUILD):
        args.append("SAN=1")
    r = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


def files_under(top):
    out = {}
    for d, _, names in os.walk(top):
        for n in names:
            p = os.path.join(d, n)
            out[os.path.relpath(p, top)] = stat.S_IMODE(os.lstat(p).st_mode)
    return out


def test_install_file_list_and_uninstall(tmp_path):
    dest = tmp_path / "root"
    make("install", str(dest))
    top = str(dest) + PREFIX
    got = files_under(str(dest))
    assert set(got) == {PREFIX.lstrip("/") + "/" + f for f in EXPECTED}, sorted(got)
    for f, mode in EXPECTED.items():
        assert files_under(top)[f] == mode, (f, oct(files_under(top)[f]))
    unit = open(os.path.join(top, "lib/systemd/system/sluice.service")).read()
    assert "@" not in unit
    assert "\nExecStart=%s/sbin/sluice -f /etc/sluice/sluice.conf\n" % PREFIX in unit
    assert "\nExecStartPre=%s/sbin/sluice -c -f /etc/sluice/sluice.conf\n" % PREFIX in unit
    assert "\nRuntimeDirectory=sluice\n" in unit
    # the installed pages are the tree's
    for page in ("man8/sluice.8", "man5/sluice.conf.5"):
        with open(os.path.join(top, "share/man", page)) as a, \
                open(os.path.join(ROOT, "man", os.path.basename(page))) as b:
            assert a.read() == b.read()
    make("uninstall", str(dest))
    assert files_under(str(dest)) == {}


def test_installed_binary_runs_the_demo(tmp_path):
    dest = tmp_path / "root"
    make("install", str(dest))
    top = str(dest) + PREFIX
    demo = open(os.path.join(top, "share/doc/sluice/examples/demo.conf")).read()
    # the demo's ports and control socket, moved to free ones of this test
    ports = {p: free_port() for p in ("8080", "9100", "9001", "9002", "9003", "9004")}
    for old, new in ports.items():
        demo = demo.replace("127.0.0.1:%s" % old, "127.0.0.1:%d" % new)
    sock = str(tmp_path / "ctl.sock")
    demo = demo.replace("/tmp/sluice-demo/ctl.sock", sock)
    assert sock in demo and "8080" not in demo
    conf = tmp_path / "demo.conf"
    conf.write_text(demo)
    procs = Procs()
    log = open(tmp_path / "sluice.log", "wb")
    try:
        for i in (1, 2, 3):
            procs.backend("web%d" % i, ports["900%d" % i])
        chk = subprocess.run([top + "/sbin/sluice", "-c", "-f", str(conf)],
                             capture_output=True, text=True, timeout=DEADLINE)
        assert chk.returncode == 0, chk.stderr
        d = procs.start([top + "/sbin/sluice", "-f", str(conf)], stdout=log, stderr=log)

        def ready():
            if d.poll() is not None:
                raise AssertionError("sluice exited %d: %s"
                                     % (d.returncode, open(tmp_path / "sluice.log").read()))
            return " ready: pid %d," % d.pid in open(tmp_path / "sluice.log").read()

        wait_until(ready, what="the installed sluice to be ready")

        def all_up():
            r = subprocess.run([top + "/bin/sluicectl", "-s", sock, "show", "servers"],
                               capture_output=True, text=True, timeout=DEADLINE)
            assert r.returncode == 0, r.stderr
            return len(re.findall(r"^demo\s+web\d\s+\S+\s+up\s", r.stdout, re.M)) == 3

        wait_until(all_up, what="web1-3 up through the installed sluicectl")
        names = [re.search(r"web\d", http_get(ports["8080"])).group(0) for _ in range(8)]
        # weights 2:1:1, smooth round robin: every backend served
        assert sorted(set(names)) == ["web1", "web2", "web3"], names
        assert names.count("web1") == 4, names
        d.send_signal(signal.SIGTERM)
        assert d.wait(DEADLINE) == 0
    finally:
        procs.stop_all()
        log.close()
