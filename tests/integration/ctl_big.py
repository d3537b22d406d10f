"""Helpers for the control-plane abuse tests (issue 9 items 2-4): a daemon
with one pool of N servers (a few of them health-checked often, so that
lateness shows), an admin and a user-level control socket and a metrics
port; and the lateness it reports."""
import time

from conftest import SelectEcho, ctl_global, free_port, Ctl, wait_ctl

CHECKED = 40  # servers checked every 100 ms: 400 checks a second


def big_conf(tmp_path, backend, nservers, checked=CHECKED):
    admin = str(tmp_path / "admin.sock")
    user = str(tmp_path / "user.sock")
    port, mport = free_port(), free_port()
    lines = []
    for i in range(nservers):
        extra = "" if i < checked else " check off"
        lines.append("    server s%d %s%s;" % (i, backend.addr, extra))
    conf = (
        "global { workers 1; log stderr notice; grace 1s; %s"
        " control %s mode 0666 level user; metrics 127.0.0.1:%d; }\n"
        "pool big {\n    check tcp { interval 100ms; timeout 1s; rise 2; fall 3; }\n%s\n}\n"
        "listen www { bind 127.0.0.1:%d; pool big; }\n"
        % (ctl_global(admin), user, mport, "\n".join(lines), port))
    return conf, admin, user, mport


def start_big(tmp_path, sluice, nservers, checked=CHECKED):
    backend = SelectEcho()
    conf, admin, user, mport = big_conf(tmp_path, backend, nservers, checked)
    d = sluice(conf)
    wait_ctl(admin).close()
    d.admin, d.user, d.mport, d.backend = admin, user, mport, backend
    with Ctl(admin) as c:
        # every checked server up before the abuse starts
        end = time.monotonic() + 30
        while time.monotonic() < end:
            rows = c.json("show servers big")
            if sum(r["health"] == "up" for r in rows) == nservers:
                break
            time.sleep(0.05)  # polling the daemon's state, bounded above
        # (an old binary without the instrument fails later, on what it does)
        c.cmd("clear lateness")
    return d


def lateness(admin):
    """show info's lateness, or None from a binary that does not measure it."""
    with Ctl(admin) as c:
        return c.json("show info").get("lateness")


def fmt_late(late):
    if late is None:
        return "not measured"
    return ", ".join("%s p50 %.2f ms p99 %.2f ms max %.2f ms (%d)" % (
        k, v["p50_us"] / 1e3, v["p99_us"] / 1e3, v["max_us"] / 1e3, v["count"])
        for k, v in sorted(late.items()))
