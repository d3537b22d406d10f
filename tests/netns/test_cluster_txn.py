# Second-chance forwarding and transactions: the cluster block is prepared
# (program loaded and verified, maps filled) with the rest of a reload and
# attached only once nothing else can fail, so a rejected reload and a
# failed binary upgrade leave the running program exactly as it was: the
# same program id on the same interfaces, the same peers, no re-attach.
import os
import socket
import subprocess

import pytest

from cluster_topo import PORT, VIP4, ClusterNode, ClusterTopo, cluster4, run, tc_filters
from conftest import BUILD, Netns, wait_until

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


@pytest.fixture(scope="module")
def fault_sluice():
    """The daemon built with fault injection (make FAULT=1), next to the
    build under test (SAN=1 too when that is a sanitizer build)."""
    san = "san" in os.path.basename(BUILD)
    build = os.path.join(ROOT, "build-san-fault" if san else "build-fault")
    r = subprocess.run(["make", "-C", ROOT, "FAULT=1", "-j2"] + (["SAN=1"] if san else []) +
                       [os.path.basename(build) + "/sluice"], capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return os.path.join(build, "sluice")


@pytest.fixture
def ctopo(tmp_path):
    t = ClusterTopo(tmp_path)
    t.backend()
    yield t
    errors = t.close()
    assert not errors, errors


def rewrite(node, tail):
    with open(node.conf) as f:
        text = f.read()
    with open(node.conf, "w") as f:
        f.write(text.split("cluster {")[0] + tail)


def block(peers, attach):
    return "cluster {\n interface eth1;\n uplink eth0;\n attach %s;\n%s}\n" % (
        attach, "".join(" peer %s %s;\n" % p for p in peers))


def tcx_links(prog_id):
    """How many tcx links hold this program (links carry no namespace in
    bpftool 7.1, but a program id is unique on the host)."""
    out = run("bpftool", "-j", "link", "show").stdout
    import json
    return sum(1 for l in json.loads(out or "[]") if l.get("prog_id") == prog_id)


def attached_where(topo, node, st):
    """The interfaces of n1 where the running program sits, as the kernel
    says: tc filters name the program id; tcx links are counted by it."""
    if st["attached"] == "tc":
        return sorted(dev for dev in ("eth0", "eth1")
                      if (" id %d " % st["prog_id"]) in tc_filters(topo, node.n, dev))
    return tcx_links(st["prog_id"])


def peers(st):
    return sorted((p["name"], p["address"], p["mac"]) for p in st["peers"])


@pytest.mark.parametrize("attach", ["tcx", "tc"])
@pytest.mark.parametrize("how", ["bind", "announce"])
def test_failed_reload_keeps_the_running_program(ctopo, attach, how):
    node = ClusterNode(ctopo, "n1", cluster=False,
                       extra=block([("n2", cluster4(2)), ("n3", cluster4(3))], attach)).start()
    wait_until(node.peers_resolved, timeout=10, what="n1 resolves its peers")
    st = node.cluster()
    where = attached_where(ctopo, node, st)
    assert where == (["eth0", "eth1"] if attach == "tc" else 2), (where, st)
    # the block changes (n3 goes) and then something after it fails
    changed = block([("n2", cluster4(2))], attach)
    if how == "announce":
        rewrite(node, changed + "announce front {\n address %s/32;\n device eth1;\n}\n" % VIP4)
        why = "device eth1 already exists"
    else:
        rewrite(node, changed + "listen other { bind %s:%d; pool web; }\n" % (VIP4, PORT + 1))
        why = "%s:%d" % (VIP4, PORT + 1)
    with Netns(ctopo.ns["n1"]):
        squat = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    squat.bind((VIP4, PORT + 1))  # no SO_REUSEPORT: sluice's bind fails
    try:
        r = node.ctl("reload")
    finally:
        squat.close()
    assert r.returncode == 1 and why in r.stderr, r.stdout + r.stderr
    back = node.cluster()
    assert back["prog_id"] == st["prog_id"], "the running program was replaced: %r" % back
    assert back["attached"] == st["attached"] and peers(back) == peers(st), back
    assert attached_where(ctopo, node, back) == where
    log = node.log()
    assert log.count("cluster: attached") == 1, log
    assert "programs detached" not in log and "could not go back" not in log, log
    # the same change without the failure goes through: one program for another
    rewrite(node, changed)
    r = node.ctl("reload")
    assert r.returncode == 0, r.stdout + r.stderr
    new = node.cluster()
    assert new["prog_id"] != st["prog_id"] and [p["name"] for p in new["peers"]] == ["n2"]
    assert attached_where(ctopo, node, new) == where
    if attach == "tc":
        assert tcx_links(st["prog_id"]) == 0
    else:
        wait_until(lambda: tcx_links(st["prog_id"]) == 0, timeout=5, what="old links gone")
    assert node.stop() == 0


@pytest.mark.parametrize("attach", ["tcx", "tc"])
def test_failed_takeover_leaves_the_old_program(ctopo, attach):
    """A new process whose takeover fails (here: no process at that
    socket) exits without touching the running one's program: in tc mode
    it would otherwise have replaced the old filter in place and then
    removed it on its way out."""
    old = ClusterNode(ctopo, "n1", cluster=False,
                      extra=block([("n2", cluster4(2)), ("n3", cluster4(3))], attach)).start()
    wait_until(old.peers_resolved, timeout=10, what="n1 resolves its peers")
    st = old.cluster()
    where = attached_where(ctopo, old, st)
    new = ClusterNode(ctopo, "n1", cluster=False, name="sluice-n1-new",
                      extra=block([("n2", cluster4(2)), ("n3", cluster4(3))], attach))
    new.start(expect_fail=True, args=["--takeover", old.sock + ".nobody"])
    assert new.proc.returncode == 1, new.log()
    assert "takeover: cannot connect" in new.log(), new.log()
    after = old.cluster()
    assert after["prog_id"] == st["prog_id"] and peers(after) == peers(st), after
    assert attached_where(ctopo, old, after) == where, (where, new.log())
    assert old.stop() == 0


def test_json_escapes_the_cluster_interface(ctopo):
    """Linux takes '"' and '\\' in an interface name: `json show cluster`
    is still JSON and names it exactly."""
    name, ns = 'c"1\\', ctopo.ns["n1"]
    run("ip", "-n", ns, "link", "set", "eth1", "down")
    run("ip", "-n", ns, "link", "set", "eth1", "name", name)
    run("ip", "-n", ns, "link", "set", name, "up")
    node = ClusterNode(ctopo, "n1", cluster=False,
                       extra='cluster {\n interface "c\\"1\\\\";\n uplink eth0;\n'
                             ' peer n2 %s;\n}\n' % cluster4(2)).start()
    st = node.cluster()
    assert st["interface"] == name and [p["name"] for p in st["peers"]] == ["n2"], st
    assert node.stop() == 0


@pytest.mark.parametrize("attach", ["tcx", "tc"])
def test_replacement_refused_at_commit_keeps_the_running_program(ctopo, fault_sluice, attach):
    """The one commit that can fail: the kernel refuses to attach the new
    program half-way (an interface deleted between prepare and commit;
    injected here on the second interface). The rest of the reload
    stands (a new listener), the running program stays exactly as it was
    (its tc filter put back where the new one had replaced it), and the
    reply and the log say so."""
    node = ClusterNode(ctopo, "n1", cluster=False,
                       extra=block([("n2", cluster4(2)), ("n3", cluster4(3))], attach))
    node.proc = ctopo.spawn("n1", ["env", "SLUICE_FAULT=cluster_replace", fault_sluice, "-f",
                                   node.conf], node.name)
    wait_until(lambda: "ready: pid" in node.log() or node.proc.poll() is not None,
               what="n1 ready")
    assert node.proc.poll() is None, node.log()
    wait_until(node.peers_resolved, timeout=10, what="n1 resolves its peers")
    st = node.cluster()
    where = attached_where(ctopo, node, st)
    rewrite(node, block([("n2", cluster4(2))], attach) +
            "listen other { bind %s:%d; pool web; }\n" % (VIP4, PORT + 1))
    r = node.ctl("reload")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "but the cluster block was not applied, the running program is kept" in r.stdout, \
        r.stdout
    assert "injected failure (cluster_replace)" in r.stdout
    back = node.cluster()
    assert back["prog_id"] == st["prog_id"] and peers(back) == peers(st), back
    assert attached_where(ctopo, node, back) == where
    assert "reload: the cluster block was not applied" in node.log()
    listeners = node.ctl("show", "listeners", json_out=True)
    assert "other" in listeners.stdout, listeners.stdout
    assert node.stop() == 0


def test_reload_check_names_the_cluster_block(ctopo):
    """`reload check` and the reload's own report list what a reload
    would change: the cluster block too (added, changed, removed)."""
    node = ClusterNode(ctopo, "n1", cluster=False).start()
    steps = [(block([("n2", cluster4(2)), ("n3", cluster4(3))], "auto"), "cluster: added"),
             (block([("n2", cluster4(2))], "auto"), "cluster: changed"),
             (block([("n2", cluster4(2))], "auto"), "no change"),
             ("", "cluster: removed")]
    for text, said in steps:
        rewrite(node, text)
        r = node.ctl("reload", "check")
        assert r.returncode == 0 and said in r.stdout, (said, r.stdout + r.stderr)
        r = node.ctl("reload")
        assert r.returncode == 0 and said in r.stdout, (said, r.stdout + r.stderr)
    assert "reload: cluster: removed" in node.log()
    assert node.stop() == 0
