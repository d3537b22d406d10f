# Zero-downtime operations under steady load: while clients open 100 new
# connections a second, each echoing 256 KiB (sent in 16 paced chunks, so
# about 16 connections are in flight) checked with sha256, drain a
# server, wait until it is drained, delete it, add a new one, ready it, and
# run tools/rolling-deploy over every server of the pool. No connection may
# fail or be truncated or corrupted; a drained server gets no connection
# that started after the drain command returned; while the deploy command
# runs for a server, that server has no connection at all.
import hashlib
import json
import os
import random
import socket
import sys
import threading
import time

from conftest import (DEADLINE, TAG_LEN, Ctl, connect, ctl_global, ctl_servers,
                      free_port, h_echo_tag, make_conf, run_rolling_deploy, wait_until)

RATE = 100  # new connections per second
DURATION = 16.0  # seconds of load
NBYTES = 256 * 1024  # echoed and checked per connection
CHUNKS = 16  # sent with PACE_S between them, so ~16 connections are open at once
PACE_S = 0.010

DEPLOY_CMD = r"""
import json, os, sys, time
t0 = time.monotonic()
time.sleep(float(os.environ["DEPLOY_SECONDS"]))  # the 'deploy' itself
t1 = time.monotonic()
with open(sys.argv[1], "a") as f:
    f.write(json.dumps({"args": sys.argv[2:], "server": os.environ["SLUICE_SERVER"],
                        "address": os.environ["SLUICE_ADDRESS"],
                        "pool": os.environ["SLUICE_POOL"], "t0": t0, "t1": t1}) + "\n")
"""


class Load:
    """Paced clients: connection i starts at t0 + i/RATE, sends its tag and
    NBYTES-TAG_LEN bytes of random data (then FIN) while reading the echo to
    EOF; the result is checked with sha256. Every wait here is bounded."""

    def __init__(self, port, rate, duration, nbytes):
        self.port, self.rate, self.nbytes = port, rate, nbytes
        self.count = int(rate * duration)
        self.block = os.urandom(4 << 20)
        self.results = []
        self.lock = threading.Lock()
        self.threads = []
        self.sched = threading.Thread(target=self._schedule, daemon=True)
        self.finished_scheduling = threading.Event()

    def start(self):
        self.t0 = time.monotonic()
        self.sched.start()

    def _schedule(self):
        rnd = random.Random(1)
        for i in range(self.count):
            delay = self.t0 + i / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # pacing of the load, not waiting for an event
            off = rnd.randrange(len(self.block) - self.nbytes)
            t = threading.Thread(target=self._one, args=(i, off), daemon=True)
            t.start()
            self.threads.append(t)
        self.finished_scheduling.set()

    def _one(self, i, off):
        tag = ("%0*d" % (TAG_LEN, i)).encode()
        payload = memoryview(tag + self.block[off:off + self.nbytes - TAG_LEN])
        want = hashlib.sha256(payload).hexdigest()
        rec = {"tag": tag.decode(), "t_start": time.monotonic(), "ok": False}
        try:
            s = connect(self.port, timeout=DEADLINE)
            err = []

            def sender():
                try:
                    step = len(payload) // CHUNKS
                    for k in range(0, len(payload), step):
                        if k:
                            time.sleep(PACE_S)  # shapes the load: long-lived connections
                        s.sendall(payload[k:k + step])
                    s.shutdown(socket.SHUT_WR)
                except OSError as e:
                    err.append(e)

            st = threading.Thread(target=sender, daemon=True)
            st.start()
            h, n = hashlib.sha256(), 0
            while True:
                b = s.recv(1 << 18)
                if not b:
                    break
                h.update(b)
                n += len(b)
            st.join(DEADLINE)
            s.close()
            if err:
                rec["err"] = "send: %r" % err[0]
            elif n != self.nbytes:
                rec["err"] = "truncated: %d of %d bytes" % (n, self.nbytes)
            elif h.hexdigest() != want:
                rec["err"] = "corrupted: sha256 differs"
            else:
                rec["ok"] = True
        except Exception as e:  # every failure is counted and reported
            rec["err"] = repr(e)
        rec["t_end"] = time.monotonic()
        with self.lock:
            self.results.append(rec)

    def done(self):
        with self.lock:
            return len(self.results)

    def wait(self):
        assert self.finished_scheduling.wait(DEADLINE * 3 + self.count / self.rate)
        end = time.monotonic() + DEADLINE * 3
        for t in self.threads:
            t.join(max(0.0, end - time.monotonic()))
        assert self.done() == self.count, "%d of %d clients finished" % (self.done(),
                                                                         self.count)
        return self.results


def overlapping(recs, t0, t1):
    """Backend connections open at some point of [t0, t1]."""
    return [r for r in recs if r["t_open"] < t1 and r.get("t_shut", float("inf")) > t0]


def test_drain_del_add_and_rolling_deploy_under_load(tmp_path, sluice, backends):
    bes = {n: backends(h_echo_tag, name=n) for n in ("a", "b", "c", "d")}
    sock = str(tmp_path / "ctl.sock")
    port = free_port()
    d = sluice(make_conf(port, ["%s %s" % (n, bes[n].addr) for n in ("a", "b", "c")],
                         global_extra=ctl_global(sock), workers=2))
    load = Load(port, RATE, DURATION, NBYTES)
    load.start()
    wait_until(lambda: load.done() >= 150, timeout=DEADLINE, what="150 clients done")

    c = Ctl(sock)
    # drain b: no connection that starts after this returns goes to b
    c.ok("server drain web/b")
    t_drained = time.monotonic()
    r = c.ok("wait drained web/b 20s")
    t_empty = time.monotonic()
    assert r == "server web/b is drained\n"
    assert c.cmd("server del web/b") == "server web/b deleted\n"
    # a new server d: added in maint, gets nothing until it is ready
    assert c.cmd("server add web d %s" % bes["d"].addr) == "server web/d added (maint)\n"
    assert c.cmd("json show servers web").count('"server"') == 3
    t_ready_sent = time.monotonic()
    c.ok("server ready web/d")
    c.close()
    bes["d"].wait(lambda b: b.total >= 20, timeout=DEADLINE, what="d gets traffic")

    # the rolling deploy over a, c, d while the load goes on
    deploy_log = str(tmp_path / "deploy.log")
    script = str(tmp_path / "deploy.py")
    with open(script, "w") as f:
        f.write(DEPLOY_CMD)
    t_deploy = time.monotonic()
    rd = run_rolling_deploy(["-s", sock, "web", "--timeout", "20s", "--",
                             sys.executable, script, deploy_log, "{name}", "{address}"],
                            env={"DEPLOY_SECONDS": "0.3"})
    t_deployed = time.monotonic()
    assert rd.returncode == 0, "rolling-deploy failed:\n%s\n%s" % (rd.stdout, rd.stderr)
    assert "pool web: all 3 servers deployed" in rd.stdout, rd.stdout
    assert load.done() < load.count, "the load ended before the deploy: the test is too slow"

    results = load.wait()
    t_end = time.monotonic()
    failed = [x for x in results if not x["ok"]]
    durs = sorted(x["t_end"] - x["t_start"] for x in results)
    print("\nload: %d connections in %.1fs (%d KiB each), %d failed; latency p50 %.0f ms, "
          "p99 %.0f ms, max %.0f ms; most open at once per backend %s; deploy took %.1fs"
          % (len(results), t_end - load.t0, NBYTES // 1024, len(failed),
             durs[len(durs) // 2] * 1000, durs[int(len(durs) * 0.99)] * 1000,
             durs[-1] * 1000, {n: b.max_active for n, b in bes.items()},
             t_deployed - t_deploy))
    assert not failed, "%d of %d connections failed, e.g. %r" % (len(failed), len(results),
                                                                  failed[:5])
    assert len(results) == load.count

    # every connection reached exactly one backend, whole
    recs = {}
    for n, be in bes.items():
        be.wait(lambda b: b.active == 0, what="%s idle" % n)
        assert not be.errors, be.errors
        for r in be.records:
            recs.setdefault(r.get("tag"), []).append((n, r))
    for x in results:
        got = recs.get(x["tag"], [])
        assert len(got) == 1, "client %s reached %d backends" % (x["tag"], len(got))
        assert got[0][1]["nread"] == NBYTES
    where = {x["tag"]: recs[x["tag"]][0][0] for x in results}
    start = {x["tag"]: x["t_start"] for x in results}

    # b: nothing that started after the drain returned; nothing open after
    # wait drained answered
    late = [t for t, n in where.items() if n == "b" and start[t] > t_drained]
    assert not late, "%d connections started after the drain went to b" % len(late)
    inflight = overlapping(bes["b"].records, t_drained, t_drained)
    print("b had %d connections in flight when the drain returned; they all completed"
          % len(inflight))
    assert inflight, "no connection was open on b during the drain: the test shows nothing"
    assert not [r for r in bes["b"].records if r["t_shut"] > t_empty or r["t_open"] > t_empty]
    # d: nothing before it was ready
    assert all(r["t_open"] > t_ready_sent for r in bes["d"].records)

    # the deploy: in pool order, placeholders and environment both right, and
    # nothing open on a server while its command ran
    with open(deploy_log) as f:
        steps = [json.loads(l) for l in f]
    assert [s["server"] for s in steps] == ["a", "c", "d"]
    for s in steps:
        n = s["server"]
        assert s["args"] == [n, bes[n].addr] and s["address"] == bes[n].addr
        assert s["pool"] == "web"
        busy = overlapping(bes[n].records, s["t0"], s["t1"])
        assert not busy, "%s had %d connections open during its deploy" % (n, len(busy))
        # and it was back in service afterwards
        assert [r for r in bes[n].records if r["t_open"] > s["t1"]], \
            "%s got no connection after its deploy" % n
    final = ctl_servers(sock)
    assert {k: v["admin"] for k, v in final.items()} == {
        "web/a": "ready", "web/c": "ready", "web/d": "ready"}
    # the daemon saw no failure either
    ends = {}
    for cl in d.conns():
        ends[cl["end"]] = ends.get(cl["end"], 0) + 1
    assert set(ends) <= {"client-closed", "server-closed"}, ends
    assert sum(ends.values()) == load.count
