# Privilege drop: with `user nobody; group nogroup;` every thread of the
# daemon runs as 65534:65534 with exactly CAP_NET_BIND_SERVICE, CAP_NET_ADMIN
# and CAP_NET_RAW (0x3400) effective, permitted and in the bounding set; and
# a reload after the drop can still bind a port below 1024.
import grp
import os
import pwd
import re
import signal

import pytest

from conftest import LogTail, echo_transfer, free_port, h_echo, port_is_free, proc_status, \
    wait_ctl, write_atomic

CAPS = "0000000000003400"  # NET_BIND_SERVICE (10), NET_ADMIN (12), NET_RAW (13)
LOW = 81


def test_privilege_drop_keeps_network_caps_and_low_port_reload(short_dir, sluice, backends):
    if os.geteuid() != 0:
        pytest.skip("needs root to drop privileges")
    uid, gid = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid
    assert port_is_free(LOW), "port %d is in use: this test needs it free" % LOW
    be = backends(h_echo)
    sock = os.path.join(short_dir, "ctl.sock")
    port = free_port()
    glob = ("global { workers 2; log stderr info; grace 5s; control %s; "
            "user nobody; group nogroup; }\n" % sock)
    base = glob + "pool web { server a %s; }\nlisten www { bind 127.0.0.1:%d; pool web; }\n" % (
        be.addr, port)
    # the daemon must read its file as nobody after the drop: keep it in a
    # world-readable directory (the fixture names the file by this path)
    d = sluice(base, name=os.path.join(short_dir, "priv"))
    d.wait_log(r"notice: running as uid %d gid %d with CAP_NET_BIND_SERVICE, CAP_NET_ADMIN, "
               r"CAP_NET_RAW$" % (uid, gid))
    tasks = sorted(int(t) for t in os.listdir("/proc/%d/task" % d.pid))
    assert len(tasks) >= 3, tasks  # main, 2 workers (and the log thread)
    for t in tasks:
        st = proc_status(d.pid, t)
        assert st["Uid"].split() == [str(uid)] * 4, (t, st["Uid"])
        assert st["Gid"].split() == [str(gid)] * 4, (t, st["Gid"])
        assert st["Groups"].split() == [str(gid)], (t, st["Groups"])
        assert (st["CapEff"], st["CapPrm"], st["CapBnd"]) == (CAPS, CAPS, CAPS), (t, st)
        assert st["CapInh"] == "0000000000000000" and st["CapAmb"] == "0000000000000000", st
    assert echo_transfer(port, 5000) is None

    # a reload after the drop binds a port below 1024 and serves on it
    write_atomic(d.conf_path, base + "listen low { bind 127.0.0.1:%d; pool web; }\n" % LOW)
    tail = LogTail(d)
    tail.mark()
    d.signal(signal.SIGHUP)
    tail.wait(r"notice: reload: listen low: added, opens 127\.0\.0\.1:%d$" % LOW)
    assert echo_transfer(LOW, 5000) is None
    # ... and over the control socket, which was opened before the drop
    ctl = wait_ctl(sock)
    write_atomic(d.conf_path, base)
    assert ctl.ok("reload") == "reload done:\nlisten low: removed (its connections finish)"
    assert re.search(r"^reloads: +2 ok, 0 failed$", ctl.ok("show info"), re.M)
    ctl.close()
    for t in os.listdir("/proc/%d/task" % d.pid):  # still nothing more after reloads
        assert proc_status(d.pid, int(t))["CapEff"] == CAPS
