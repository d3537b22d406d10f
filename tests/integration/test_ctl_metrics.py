# Metrics: `show metrics` and GET /metrics are Prometheus text exposition
# (checked by a small strict parser below: HELP and TYPE before the samples
# of their family, valid names and labels, numeric values, counters named
# *_total) and the values follow the traffic and the admin state.
import math
import re
import socket

from conftest import (DEADLINE, Ctl, connect, ctl_global, free_port, h_echo, make_conf,
                      recv_exact, wait_until)

NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*$")
SAMPLE_RE = re.compile(r"(?P<name>[^\s{]+)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)"
                       r"(?:\s+(?P<ts>-?\d+))?$")


def parse_labels(text, where):
    """'a="x",b="y\\"z"' -> {"a": "x", "b": 'y"z'}; strict about quoting."""
    labels = {}
    i = 0
    while i < len(text):
        m = re.compile(r"([^=\s,]+)=\"").match(text, i)
        assert m, "%s: bad label syntax at %r" % (where, text[i:])
        lname = m.group(1)
        assert LABEL_NAME_RE.match(lname) and not lname.startswith("__"), \
            "%s: bad label name %r" % (where, lname)
        i = m.end()
        val = []
        while True:
            assert i < len(text), "%s: unterminated label value" % where
            ch = text[i]
            if ch == "\\":
                nxt = text[i + 1:i + 2]
                assert nxt in ("\\", '"', "n"), "%s: bad escape \\%s" % (where, nxt)
                val.append("\n" if nxt == "n" else nxt)
                i += 2
                continue
            if ch == '"':
                i += 1
                break
            assert ch != "\n", where
            val.append(ch)
            i += 1
        assert lname not in labels, "%s: duplicate label %r" % (where, lname)
        labels[lname] = "".join(val)
        if i < len(text):
            assert text[i] == ",", "%s: expected ',' at %r" % (where, text[i:])
            i += 1
    return labels


def parse_prometheus(text):
    """Parse text exposition format 0.0.4. Returns {family: {"type", "help",
    "samples": [(labels dict, float)]}}. Asserts on every violation."""
    assert text.endswith("\n"), "exposition does not end with a newline"
    fams = {}
    current = None  # the family whose samples may follow
    done = set()  # families whose sample block is over
    pending = {}  # HELP/TYPE seen, samples not yet
    series = set()
    for no, line in enumerate(text[:-1].split("\n"), 1):
        where = "line %d %r" % (no, line)
        assert line.strip() != "", "%s: empty line inside the exposition" % where
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                assert NAME_RE.match(name), "%s: bad metric name" % where
                assert name not in fams and name not in done, \
                    "%s: %s after the samples of %s" % (where, parts[1], name)
                p = pending.setdefault(name, {})
                assert parts[1].lower() not in p, "%s: second %s" % (where, parts[1])
                if parts[1] == "TYPE":
                    assert len(parts) == 4 and parts[3] in ("counter", "gauge"), \
                        "%s: type must be counter or gauge" % where
                    p["type"] = parts[3]
                else:
                    assert len(parts) == 4 and parts[3].strip(), "%s: empty HELP" % where
                    p["help"] = parts[3]
            continue
        m = SAMPLE_RE.match(line)
        assert m, "%s: not a sample" % where
        name = m.group("name")
        assert NAME_RE.match(name), "%s: bad metric name" % where
        if name != current:
            if current is not None:
                done.add(current)
            assert name not in done, "%s: samples of %s are not together" % (where, name)
            p = pending.pop(name, {})
            assert "help" in p and "type" in p, \
                "%s: sample before the HELP and TYPE of its family" % where
            fams[name] = {"type": p["type"], "help": p["help"], "samples": []}
            current = name
        labels = parse_labels(m.group("labels") or "", where)
        v = m.group("value")
        assert re.fullmatch(r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?|[-+]?Inf|NaN", v), \
            "%s: value %r is not a number" % (where, v)
        key = (name, tuple(sorted(labels.items())))
        assert key not in series, "%s: duplicate series" % where
        series.add(key)
        fams[name]["samples"].append((labels, float(v)))
    assert not pending, "HELP/TYPE without samples: %s" % sorted(pending)
    for name, f in fams.items():
        if f["type"] == "counter":
            assert name.endswith("_total"), "counter %s is not named *_total" % name
            assert all(v >= 0 and not math.isinf(v) for _, v in f["samples"]), name
        else:
            assert not name.endswith("_total"), "gauge %s is named like a counter" % name
    return fams


def value(fams, name, **labels):
    got = [v for l, v in fams[name]["samples"] if all(l.get(k) == x for k, x in labels.items())]
    assert len(got) == 1, "%s%r: %d samples" % (name, labels, len(got))
    return got[0]


def show_metrics(sock):
    with Ctl(sock) as c:
        r = c.cmd("show metrics")
    assert not r.startswith("error: "), r
    return r


def http_get(port, path="/metrics", raw=None):
    """A tiny HTTP/1.1 client: returns (status line, headers dict, body)."""
    with connect(port) as s:
        s.sendall(raw if raw is not None else
                  ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % path).encode())
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        headers[k.strip().lower()] = v.strip()
    return lines[0], headers, body


def start(tmp_path, sluice, backends, global_extra=""):
    ba, bb = backends(h_echo, name="a"), backends(h_echo, name="b")
    sock = str(tmp_path / "ctl.sock")
    port, mport = free_port(), free_port()
    d = sluice(make_conf(port, ["a %s" % ba.addr, "b %s" % bb.addr],
                         global_extra=ctl_global(sock, "metrics 127.0.0.1:%d; %s"
                                                 % (mport, global_extra))))
    d.sock, d.port, d.mport = sock, port, mport
    d.wait_log(r"notice: metrics on http://127.0.0.1:%d/metrics" % mport)
    return d


def echo_once(port, nbytes):
    with connect(port) as s:
        s.sendall(b"m" * nbytes)
        assert recv_exact(s, nbytes) == b"m" * nbytes
        s.shutdown(socket.SHUT_WR)
        assert s.recv(1) == b""


def test_metrics_parse_and_move(tmp_path, sluice, backends):
    d = start(tmp_path, sluice, backends)
    before = parse_prometheus(show_metrics(d.sock))
    for fam in ("sluice_connections_total", "sluice_connections", "sluice_info",
                "sluice_listener_connections_total", "sluice_pool_connections_total",
                "sluice_server_connections_total", "sluice_server_connections",
                "sluice_server_up", "sluice_server_weight", "sluice_server_admin_state",
                "sluice_server_sent_bytes_total", "sluice_server_received_bytes_total"):
        assert fam in before, "family %s missing" % fam
    assert before["sluice_connections_total"]["type"] == "counter"
    assert before["sluice_server_connections"]["type"] == "gauge"
    assert value(before, "sluice_connections_total") == 0
    assert value(before, "sluice_server_up", pool="web", server="a") == 1
    assert value(before, "sluice_server_admin_state", pool="web", server="a", state="ready") == 1
    # traffic: 4 connections of 1000 bytes, roundrobin over a and b
    for _ in range(4):
        echo_once(d.port, 1000)
    wait_until(lambda: value(parse_prometheus(show_metrics(d.sock)), "sluice_connections") == 0,
               what="connections closed in the metrics")
    after = parse_prometheus(show_metrics(d.sock))
    assert value(after, "sluice_connections_total") == 4
    assert value(after, "sluice_listener_connections_total", listener="www") == 4
    assert value(after, "sluice_pool_connections_total", pool="web") == 4
    for srv in ("a", "b"):
        assert value(after, "sluice_server_connections_total", pool="web", server=srv) == 2
        assert value(after, "sluice_server_sent_bytes_total", pool="web", server=srv) == 2000
        assert value(after, "sluice_server_received_bytes_total", pool="web", server=srv) == 2000
    assert value(after, "sluice_listener_received_bytes_total", listener="www") == 4000
    # gauges follow open connections and the admin state
    held = [connect(d.port) for _ in range(2)]

    def one_each():
        f = parse_prometheus(show_metrics(d.sock))
        return all(value(f, "sluice_server_connections", pool="web", server=n) == 1
                   for n in ("a", "b"))

    wait_until(one_each, what="one open connection on each server in the metrics")
    with Ctl(d.sock) as c:
        c.ok("server drain web/a")
        c.ok("server weight web/b 7")
    now = parse_prometheus(show_metrics(d.sock))
    assert value(now, "sluice_connections") == 2
    assert value(now, "sluice_server_connections", pool="web", server="a") == 1
    assert value(now, "sluice_server_admin_state", pool="web", server="a", state="drain") == 1
    assert value(now, "sluice_server_admin_state", pool="web", server="a", state="ready") == 0
    assert value(now, "sluice_server_weight", pool="web", server="b") == 7
    for s in held:
        s.close()


def test_metrics_over_http(tmp_path, sluice, backends):
    d = start(tmp_path, sluice, backends)
    echo_once(d.port, 10)
    status, headers, body = http_get(d.mport)
    assert status == "HTTP/1.1 200 OK", status
    assert headers["content-type"].startswith("text/plain"), headers
    assert "version=0.0.4" in headers["content-type"]
    assert int(headers["content-length"]) == len(body)
    fams = parse_prometheus(body.decode())
    text = show_metrics(d.sock)
    assert sorted(parse_prometheus(text)) == sorted(fams)
    wait_until(lambda: value(parse_prometheus(http_get(d.mport)[2].decode()),
                             "sluice_connections_total") >= 1, what="one connection counted")
    # other paths and junk get a 404 or are closed; the endpoint keeps working
    status, _, _ = http_get(d.mport, "/")
    assert status.startswith("HTTP/1.1 404"), status
    with connect(d.mport) as s:
        s.settimeout(DEADLINE)
        try:
            s.sendall(bytes(range(256)) * 40)
            s.recv(100)
        except (ConnectionResetError, BrokenPipeError):
            pass
    status, _, body = http_get(d.mport)
    assert status == "HTTP/1.1 200 OK"
    parse_prometheus(body.decode())


def test_parser_rejects_bad_expositions():
    """The parser above must be able to fail, or the tests prove nothing."""
    good = "# HELP x_total X.\n# TYPE x_total counter\nx_total{a=\"1\"} 3\n"
    assert parse_prometheus(good)["x_total"]["samples"] == [({"a": "1"}, 3.0)]
    bad = [
        "x_total 3\n",  # no HELP/TYPE
        "# HELP x X.\n# TYPE x counter\nx 3\n",  # counter not *_total
        "# HELP x X.\n# TYPE x summary\nx 3\n",  # type
        "# HELP x X.\n# TYPE x gauge\nx three\n",  # value
        "# HELP 1x X.\n# TYPE 1x gauge\n1x 3\n",  # name
        "# HELP x X.\n# TYPE x gauge\nx{a=1} 3\n",  # unquoted label
        "# HELP x X.\n# TYPE x gauge\nx{a=\"1\",a=\"2\"} 3\n",  # duplicate label
        "# HELP x X.\n# TYPE x gauge\nx 3\n# HELP y Y.\n# TYPE y gauge\ny 1\nx 4\n",  # split
        "# HELP x X.\n# TYPE x gauge\nx 3",  # no final newline
    ]
    for text in bad:
        try:
            parse_prometheus(text)
        except AssertionError:
            continue
        raise AssertionError("accepted: %r" % text)


def test_metrics_label_values_are_escaped(tmp_path, sluice, backends):
    # pool and server names obey one name rule (no quote, no backslash:
    # test_server_doors.py); a log target's socket path is free text, and
    # its description is a label value
    path = str(tmp_path / 'q"\\x')  # a quote and a backslash: both must be escaped
    d = start(tmp_path, sluice, backends,
              'log syslog socket "%s" info;' % path.replace("\\", "\\\\").replace('"', '\\"'))
    with Ctl(d.sock) as c:
        assert c.cmd("server add web %s 127.0.0.1:9" % 'q"\\x').startswith("error: bad server name")
    fams = parse_prometheus(show_metrics(d.sock))
    assert value(fams, "sluice_log_lines_total", target="syslog " + path) >= 0
    assert value(fams, "sluice_log_dropped_total", target="syslog " + path) >= 0
