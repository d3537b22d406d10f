# The daemon's own lateness figures for VRRP adverts (issue 9): a master
# counts every advert it sends against its due time, a backup counts none;
# `clear lateness` empties the figures; `show info` and the metrics say
# the same.
import json
import time

from conftest import Node, vrrp_block, wait_until


def lateness(node):
    r = node.ctl("show", "info", json_out=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)["lateness"]


def test_advert_lateness_counted(topo):
    n1 = Node(topo, "n1", vrrp_block(150, "50ms")).start()
    n1.wait_state("MASTER")
    n2 = Node(topo, "n2", vrrp_block(100, "50ms")).start()
    n2.wait_state("BACKUP")
    wait_until(lambda: n2.status()["adverts_received"] >= 2, what="n2 hears n1")
    for n in (n1, n2):
        assert n.ctl("clear", "lateness").returncode == 0
    t0 = time.monotonic()
    # 20 adverts at 50 ms: about a second
    wait_until(lambda: lateness(n1)["adverts"]["count"] >= 20, timeout=10.0,
               what="20 adverts counted")
    late = lateness(n1)
    el = time.monotonic() - t0
    # one advert per 50 ms, give or take the polling
    assert late["adverts"]["count"] <= el / 0.05 + 3, (late, el)
    print("\nadverts: %d in %.2f s, late p50 %.2f ms p99 %.2f ms max %.2f ms"
          % (late["adverts"]["count"], el, late["adverts"]["p50_us"] / 1e3,
             late["adverts"]["p99_us"] / 1e3, late["adverts"]["max_us"] / 1e3))
    # generous (a shared machine: with 20 samples p99 is the maximum); an
    # idle loop is about 1 ms late
    assert late["adverts"]["p50_us"] < 20000 and late["adverts"]["p99_us"] < 250000, late
    assert late["adverts"]["max_us"] >= late["adverts"]["p99_us"] >= late["adverts"]["p50_us"]
    # the backup sends nothing, so counts nothing
    assert lateness(n2)["adverts"]["count"] == 0
    m = n1.ctl("show", "metrics").stdout
    assert 'sluice_lateness_events_total{timer="advert"} ' in m
    assert n1.ctl("clear", "lateness").returncode == 0
    assert lateness(n1)["adverts"]["count"] <= 2
