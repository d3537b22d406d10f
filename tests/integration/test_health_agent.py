"""Agent checks (HAProxy's agent protocol): a server's agent answers 50%,
then drain, then ready, then down #maintenance; each reply shows in the
weight, the admin state, the log and where new connections go."""

from health_fixtures import (SLOW, conf_global, daemons, free_ports, hub,  # noqa: F401
                             request)


def spread(lport, n):
    names = [request(lport) for _ in range(n)]
    assert None not in names, names
    return names.count("a"), names.count("b")


def test_agent_weight_drain_ready_down(tmp_path, hub, daemons):
    a, b = hub.add("a"), hub.add("b")
    agent = hub.add("agent-a", mode="agent", agent=b"up ready\n")
    lport = free_ports(1)[0]
    conf = conf_global() + f"""
pool web {{
    agent port {agent.port} interval 300ms timeout 500ms;
    server a 127.0.0.1:{a.port} weight 10;
    server b 127.0.0.1:{b.port} weight 10 agent off;
}}
listen www {{ bind 127.0.0.1:{lport}; pool web; }}
"""
    d = daemons(tmp_path, conf)
    d.wait_log(r"health: 0 active checks, 1 agent checks", 5 * SLOW)
    na, nb = spread(lport, 40)
    assert na == nb == 20

    mark = d.mark()
    agent.agent = b"50%\n"
    d.wait_log(r'server web/a weight 10 -> 5: agent says "50%"', 10 * SLOW, mark)
    na, nb = spread(lport, 60)  # smooth weighted round-robin: exactly 1 in 3
    assert (na, nb) == (20, 40)

    mark = d.mark()
    agent.agent = b"drain\n"
    d.wait_log(r'server web/a DRAIN: agent says "drain"', 10 * SLOW, mark)
    assert spread(lport, 20) == (0, 20)

    mark = d.mark()
    agent.agent = b"ready 100%\n"
    d.wait_log(r'server web/a READY: agent says "ready 100%"', 10 * SLOW, mark)
    d.wait_log(r'server web/a weight 5 -> 10: agent says "ready 100%"', 1, mark)
    na, nb = spread(lport, 40)
    assert na == nb == 20

    mark = d.mark()
    agent.agent = b"down #maintenance\n"
    d.wait_log(r'server web/a DOWN: agent says "down #maintenance"', 10 * SLOW, mark)
    assert spread(lport, 20) == (0, 20)

    mark = d.mark()
    agent.agent = b"up\n"
    d.wait_log(r'server web/a UP: agent says "up"', 10 * SLOW, mark)
    na, nb = spread(lport, 40)
    assert na == nb == 20

    # an agent that stops answering changes nothing
    mark = d.mark()
    agent.kill()
    d.wait_log(r"server web/a agent check failed: connect refused", 10 * SLOW, mark)
    na, nb = spread(lport, 40)
    assert na == nb == 20
