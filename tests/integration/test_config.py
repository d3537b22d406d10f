# Configuration errors: `sluice -c -f` and `sluice -f` reject bad files with
# the exact FILE:LINE:COL: error: message line and a non-zero status, and
# bind nothing. Also: a valid file checks clean, and a global maxconn above
# what the descriptor limit allows is lowered with a warning.
import re

import pytest

from conftest import free_port, h_echo, make_conf, port_is_free, run_sluice


def pos(text, needle, nth=0):
    """1-based (line, col) of the nth occurrence of needle in text."""
    i = -1
    for _ in range(nth + 1):
        i = text.index(needle, i + 1)
    return text.count("\n", 0, i) + 1, i - text.rfind("\n", 0, i)


def listen(port, extra=""):
    return "listen www {\n    bind 127.0.0.1:%d;\n    pool web;\n%s}\n" % (port, extra)


POOL = "pool web {\n    server a 127.0.0.1:9001;\n}\n"


def case_unknown_keyword(port):
    text = POOL + listen(port, "    maxconn 10;\n    frobnicate on;\n")
    line, col = pos(text, "frobnicate")
    return text, line, col, re.escape("unknown keyword 'frobnicate' in listen 'www' "
                                      "(expected one of: bind, pool, maxconn, timeout, ") \
        + r"[^)]*\) \(near 'frobnicate'\)"


def case_missing_semicolon(port):
    text = POOL + listen(port, "    retries 2\n    maxconn 10;\n")
    line, col = pos(text, "retries 2")
    return text, line, col + len("retries 2"), \
        re.escape("expected ';' after '2' (near '2')")


def case_bad_address(port):
    text = "pool web {\n    server a 127.0.0.300:9001;\n}\n" + listen(port)
    line, col = pos(text, "127.0.0.300:9001")
    return text, line, col, re.escape("bad address '127.0.0.300' (expected numeric IPv4, "
                                      "or [IPv6]) (near '127.0.0.300:9001')")


def case_duplicate_pool(port):
    text = POOL + listen(port) + "pool  web { server b 127.0.0.1:9002; }\n"
    line, col = pos(text, "web", 2)  # pool web, pool web (listen), pool  web
    return text, line, col, re.escape("duplicate pool 'web' (first defined at line 1) "
                                      "(near 'web')")


def case_missing_pool(port):
    text = POOL + "listen www {\n    bind 127.0.0.1:%d;\n    pool nosuch;\n}\n" % port
    line, col = pos(text, "nosuch")
    return text, line, col, re.escape("pool 'nosuch' does not exist (near 'nosuch')")


def case_port_range(port):
    text = POOL + listen(port, "    bind 127.0.0.1:65536;\n")
    line, col = pos(text, "127.0.0.1:65536")
    return text, line, col, re.escape("port '65536' out of range (expected 1-65535) "
                                      "(near '127.0.0.1:65536')")


def case_weight_range(port):
    text = "pool web {\n    server a 127.0.0.1:9001 weight 257;\n}\n" + listen(port)
    line, col = pos(text, "257")
    return text, line, col, re.escape("weight '257' out of range (expected an integer 0-256) "
                                      "(near '257')")


def case_unterminated_block(port):
    text = listen(port) + "pool web {\n    server a 127.0.0.1:9001;\n"
    line, col = pos(text, "{", 1)
    return text, line, col, re.escape("unterminated block (expected '}' before end of file)") + "$"


CASES = [case_unknown_keyword, case_missing_semicolon, case_bad_address, case_duplicate_pool,
         case_missing_pool, case_port_range, case_weight_range, case_unterminated_block]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__[5:] for c in CASES])
@pytest.mark.parametrize("check", [True, False], ids=["check", "start"])
def test_bad_config_rejected(tmp_path, case, check):
    port = free_port()
    text, line, col, msg = case(port)
    path = tmp_path / "bad.conf"
    path.write_text(text)
    rc = run_sluice((["-c"] if check else []) + ["-f", str(path)])
    assert rc.returncode == 1, "status %d; stderr:\n%s" % (rc.returncode, rc.stderr)
    want = re.compile("^" + re.escape("%s:%d:%d: error: " % (path, line, col)) + msg)
    lines = rc.stderr.splitlines()
    assert lines and want.match(lines[0]), "want %s\ngot:\n%s" % (want.pattern, rc.stderr)
    assert "ready" not in rc.stderr
    assert port_is_free(port), "the listen port was bound"


def test_good_config_checks_clean(tmp_path):
    port = free_port()
    path = tmp_path / "good.conf"
    path.write_text(make_conf(port, ["a 127.0.0.1:9001 weight 10", "b [::1]:9002 backup "
                                     "send-proxy v2 maxconn 5"],
                              pool_extra="send-proxy v1; queue 100; timeout queue 2s;",
                              listen_extra="maxconn 20; retries 1; accept-proxy; "
                                           "timeout idle 5m; timeout half-closed 30s;"))
    rc = run_sluice(["-c", "-f", str(path)])
    assert rc.returncode == 0, rc.stderr
    assert rc.stdout == "%s: configuration is valid\n" % path
    assert port_is_free(port)


def test_global_maxconn_lowered_to_descriptor_limit(sluice, backends):
    be = backends(h_echo)
    port = free_port()
    d = sluice(make_conf(port, ["a %s" % be.addr], global_extra="maxconn 100000;"))
    (warn,) = d.wait_log(r"warning: global maxconn 100000 lowered to \d+: the descriptor "
                         r"limit is \d+ \(2 per connection, \d+ reserved\)")
    m = re.search(r"lowered to (\d+): the descriptor limit is (\d+) \(2 per connection, "
                  r"(\d+) reserved\)", warn)
    n, fds, reserved = (int(x) for x in m.groups())
    assert n == (fds - reserved) // 2 and n < 100000
    (lim,) = d.wait_log(r"notice: limits: \d+ descriptors, maxconn \d+")
    assert lim.endswith("notice: limits: %d descriptors, maxconn %d" % (fds, n))
    d.wait_log(r"notice: listen www on 127\.0\.0\.1:%d -> pool web$" % port)
