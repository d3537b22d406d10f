# A reload reads and resolves the file on a loader thread and applies it in
# steps of about a millisecond, so the control loop keeps serving while a
# large configuration is loaded; a second SIGHUP during a reload is queued
# (and says so), never lost; and a reload keeps the health checkers of the
# servers it does not change, with their counts.
import os
import re
import signal
import time

from conftest import (DEADLINE, SLOW, Ctl, LogTail, ctl_global, free_port, h_hold, wait_ctl,
                      wait_until, write_atomic)

BIG = 50000
HUGE = 200000


def big_conf(sock, port, be_addr, n, weight=1, extra_pool=""):
    """A pool of n servers nobody listens on (no check), a small pool with
    one real backend, one listener."""
    lines = ["global { workers 1; log stderr info; grace 1s; %s }" % ctl_global(sock),
             "pool big {"]
    lines += ["    server s%d 127.%d.%d.%d:9000 weight %d;" % (
        i, 16 + (i >> 16) % 16, (i >> 8) & 255, i & 255, weight) for i in range(n)]
    lines += ["}", "pool web { server a %s; %s }" % (be_addr, extra_pool),
              "listen www { bind 127.0.0.1:%d; pool web; }" % port]
    return "\n".join(lines) + "\n"


def start_big(short_dir, sluice, backends, n, prefix=()):
    """A daemon on big_conf(n); returns it, its control client, its log
    tail and a function writing the file again with another weight."""
    be = backends(h_hold, name="a")
    sock = os.path.join(short_dir, "ctl.sock")
    port = free_port()
    d = sluice(big_conf(sock, port, be.addr, n), prefix=prefix)

    def rewrite(weight):
        write_atomic(d.conf_path, big_conf(sock, port, be.addr, n, weight=weight))

    return d, wait_ctl(sock), LogTail(d), rewrite


def test_control_loop_serves_during_a_large_reload(short_dir, sluice, backends):
    # the daemon runs in the real-time class so that what is measured is
    # its own loop, not the other processes of a shared machine (its
    # loader thread lowers itself to the batch class in any case)
    d, ctl, tail, rewrite = start_big(short_dir, sluice, backends, HUGE,
                                      prefix=("chrt", "-f", "10"))
    # every server changes weight: the whole pool is updated
    rewrite(2)
    tail.mark()
    d.signal(signal.SIGHUP)
    tail.wait(r"notice: SIGHUP: reloading ")
    worst, samples = 0.0, 0
    done = re.compile(r"notice: reload of \S+ done$", re.M)
    end = time.monotonic() + DEADLINE * 3
    while not done.search(tail.new_text()):
        assert time.monotonic() < end, "the reload did not finish"
        t0 = time.monotonic()
        r = ctl.cmd("show info")
        took = time.monotonic() - t0
        assert r.startswith("version:"), r
        worst = max(worst, took)
        samples += 1
        time.sleep(0.002)  # a sampling rate: leave the loader some CPU
        # applied in one piece on this loop, 200 000 servers hold it for
        # a quarter of a second even in linear time (minutes before that);
        # in steps, an answer waits for one step at most (publishing the
        # pool's table, about 10 ms, is the longest)
        assert took < 0.1 * SLOW, "show info took %.3fs during the reload" % took
    print("show info during the reload: %d answers, the slowest %.1fms"
          % (samples, worst * 1000))
    assert samples >= 5
    assert "reload failed" not in tail.new_text()
    (pool,) = [p for p in ctl.json("show pools") if p["name"] == "big"]
    assert pool["servers"] == HUGE  # (the new weights: test_sighup_during_a_reload_is_queued)
    ctl.close()


def test_sighup_during_a_reload_is_queued(short_dir, sluice, backends):
    d, ctl, tail, rewrite = start_big(short_dir, sluice, backends, BIG)
    tail.mark()
    rewrite(3)
    d.signal(signal.SIGHUP)
    tail.wait(r"notice: SIGHUP: reloading ")
    # the first is being loaded (50 000 servers): the next one waits behind it
    d.signal(signal.SIGHUP)
    tail.wait(r"notice: SIGHUP while a reload is running: queued \(runs when that one ends\)$")
    # and a third request joins the queued one, and is answered by it
    ctl2 = Ctl(ctl.path)
    ctl2.send(b"reload\n")
    tail.wait(r"notice: reload command: a reload is already queued behind the running one$")
    tail.wait(r"notice: reload: running the queued reload of ")
    assert ctl2.reply().startswith("reload done:\n")
    ctl2.close()
    wait_until(lambda: len(re.findall(r"notice: reload of \S+ done$", tail.new_text(),
                                      re.M)) == 2,
               timeout=DEADLINE * 3, what="two reloads done")
    text = tail.new_text()
    assert len(re.findall(r"notice: reload of \S+ done$", text, re.M)) == 2, text[-3000:]
    assert "reload failed" not in text
    rows = ctl.json("show servers big")
    assert len(rows) == BIG and all(r["weight"] == 3 for r in rows)
    info = ctl.cmd("show info")
    assert re.search(r"^reloads: +2 ok, 0 failed$", info, re.M), info
    # the control socket's reload waits for its own outcome
    rewrite(4)
    reply = ctl.cmd("reload")
    assert reply.startswith("reload done:\n"), reply
    assert all(r["weight"] == 4 for r in ctl.json("show servers big"))
    ctl.close()


def test_reload_keeps_unchanged_checkers_and_their_counts(short_dir, sluice):
    # a server that refuses connections, checked every second with fall 3:
    # a reload between its second and third failure must not restart the
    # count (the old code built every checker anew at each reload)
    sock = os.path.join(short_dir, "ctl.sock")
    dead = free_port()
    conf = ("global { workers 1; log stderr info; grace 1s; %s }\n"
            "pool web {\n"
            "    check tcp { interval 1s; timeout 500ms; rise 1; fall 3; jitter 0%%; }\n"
            "    server a 127.0.0.1:%d;\n"
            "}\n"
            "pool other { server o 127.0.0.1:%d; }\n"
            "listen www { bind 127.0.0.1:%d; pool web; }\n" % (ctl_global(sock), dead, dead,
                                                                 free_port()))
    d = sluice(conf)
    ctl = wait_ctl(sock)
    tail = LogTail(d)
    d.wait_log(r"info: server web/a check failed: .* \(2/3\)$")
    tail.mark()
    write_atomic(d.conf_path, conf.replace("pool other { server o",
                                           "pool other { server p 127.0.0.1:%d; server o" % dead))
    assert ctl.cmd("reload").startswith("reload done:\n")
    m = tail.wait(r"(warning: server web/a DOWN: .* \(3/3\)|info: server web/a check failed: "
                  r".* \(1/3\))$")
    assert "DOWN" in m.group(1), "the reload restarted the check count: %s" % m.group(1)
    ctl.close()
