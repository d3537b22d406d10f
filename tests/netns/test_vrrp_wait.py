# A VRRP instance whose interface, or the interface's address, is missing
# when sluice starts (an address from DHCP, a VLAN created later): the
# daemon starts anyway, the instance stays in FAULT (no adverts, no VIPs)
# and takes part as soon as the interface and address appear, as
# keepalived does.
from conftest import NODE_IP, VIP, Node, vrrp_block, wait_until


def test_instance_waits_for_the_interface_address(topo):
    topo.ip("n1", "addr", "flush", "dev", "eth0")
    n1 = Node(topo, "n1", vrrp_block(150)).start()
    wait_until(lambda: "vrrp front: " in n1.log() and "FAULT until it appears" in n1.log(),
               what="n1 waiting")
    st = n1.status()
    assert st["state"] == "FAULT", st
    assert st["adverts_sent"] == 0 and not topo.has_vip("n1")
    # the peer hears nothing from n1 and takes the VIP alone
    n2 = Node(topo, "n2", vrrp_block(100)).start()
    n2.wait_state("MASTER")
    wait_until(lambda: topo.probe() == "n2", what="client served through n2")
    assert n1.status()["state"] == "FAULT"

    topo.ip("n1", "addr", "add", NODE_IP["n1"] + "/24", "dev", "eth0")
    wait_until(lambda: "vrrp front: eth0 has address %s: taking part" % NODE_IP["n1"]
               in n1.log(), what="n1 taking part")
    # higher priority, preempt on: n1 takes over
    n1.wait_state("MASTER")
    n2.wait_state("BACKUP")
    wait_until(lambda: topo.probe() == "n1", what="client served through n1")
    assert n2.status()["master"] == NODE_IP["n1"]


def test_instance_waits_for_the_interface(topo):
    vrrp = vrrp_block(150).replace("interface eth0;", "interface vl0;")
    n1 = Node(topo, "n1", vrrp).start()
    wait_until(lambda: "FAULT until it appears" in n1.log(), what="n1 waiting")
    assert n1.status()["state"] == "FAULT"
    # leave and join while waiting: accepted, still waiting
    assert n1.ctl("vrrp", "leave", "front").returncode == 0
    assert n1.ctl("vrrp", "join", "front").returncode == 0
    assert n1.status()["state"] == "FAULT"

    topo.ip("n1", "link", "add", "vl0", "type", "veth", "peer", "name", "vl0p")
    topo.ip("n1", "addr", "add", "192.0.2.50/24", "dev", "vl0")
    topo.ip("n1", "link", "set", "vl0p", "up")
    topo.ip("n1", "link", "set", "vl0", "up")
    n1.wait_state("MASTER")
    assert "vrrp front: vl0 has address 192.0.2.50: taking part" in n1.log()
    out = topo.ip("n1", "-4", "addr", "show", "dev", "vl0").stdout
    assert " %s/" % VIP in out, out


def test_reload_check_warns_about_a_missing_interface(topo):
    n1 = Node(topo, "n1", vrrp_block(150)).start()
    n1.wait_state("MASTER")
    with open(n1.conf) as f:
        text = f.read()
    with open(n1.conf, "w") as f:
        f.write(text.replace("interface eth0;", "interface eht0;"))
    r = n1.ctl("reload", "check")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "vrrp front: changed (restarts its election)" in r.stdout, r.stdout
    assert "vrrp front: warning: " in r.stdout and "FAULT until it appears" in r.stdout, \
        r.stdout
    assert n1.status()["state"] == "MASTER"  # a check changes nothing
