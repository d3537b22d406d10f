"""TLS and HTTPS checks through OpenSSL against local TLS servers whose
certificates the test makes with the openssl command: a good certificate
keeps the server up (and the SNI it receives is the configured one);
expired, wrong-name and untrusted certificates take it down with
`verify on`, each with OpenSSL's reason in the log."""

from health_fixtures import (SLOW, Certs, conf_global, daemons, free_ports, hub,  # noqa: F401
                             wait_until)

CHECK = "interval 300ms; timeout 1s; rise 1; fall 1;"


def test_tls_checks(tmp_path, hub, daemons):
    certs = Certs(tmp_path)
    good = hub.add("good", tls=certs.server("good", "good.test"))
    https = hub.add("https", tls=certs.server("https", "good.test"))
    expired = hub.add("expired", tls=certs.server("expired", "good.test", "20200101000000Z",
                                                  "20200201000000Z"))
    wrong = hub.add("wrong", tls=certs.server("wrong", "other.test"))
    untrusted = hub.add("untrusted", tls=certs.server("untrusted", "good.test",
                                                      self_signed=True))
    noverify = hub.add("noverify", tls=certs.server("noverify", "good.test",
                                                    self_signed=True))
    named = hub.add("named", tls=certs.server("named", "internal.test"))
    lport = free_ports(1)[0]

    def pool(name, kind, backend, extra):
        return f"""
pool {name} {{
    check {kind} {{ {CHECK} {extra} }}
    server {backend.name} 127.0.0.1:{backend.port};
}}"""
    verify = f"sni good.test; verify on; ca {certs.ca};"
    conf = conf_global() + "".join([
        pool("good", "tls", good, verify),
        pool("https", "https", https, verify + " path /healthz; status 200;"),
        pool("expired", "tls", expired, verify),
        pool("wrong", "tls", wrong, verify),
        pool("untrusted", "tls", untrusted, verify),
        pool("noverify", "tls", noverify, "sni good.test;"),
        pool("named", "tls", named,
             f"sni front.test; verify on; ca {certs.ca}; verify-name internal.test;"),
    ]) + f"\nlisten l {{ bind 127.0.0.1:{lport}; pool good; }}\n"
    d = daemons(tmp_path, conf)
    d.wait_log(r"server expired/expired DOWN: TLS certificate verify failed: "
               r"certificate has expired \(1/1\)", 10 * SLOW)
    d.wait_log(r"server wrong/wrong DOWN: TLS certificate verify failed: "
               r"hostname mismatch \(1/1\)", 10 * SLOW)
    d.wait_log(r"server untrusted/untrusted DOWN: TLS certificate verify failed: "
               r"self-signed certificate \(1/1\)", 10 * SLOW)
    # the good ones complete several checks and stay up
    wait_until(lambda: len(good.checks) >= 3 and sum(st == 200 for _, st in https.checks) >= 3 and
               len(noverify.checks) >= 3 and len(named.checks) >= 3, 10 * SLOW,
               what="TLS checks")
    for name in ("good", "https", "noverify", "named"):
        assert not d.find(rf"server {name}/{name} DOWN"), d.dump()
    # SNI as configured, checked by the servers
    assert good.sni and set(good.sni) == {"good.test"}
    assert set(https.sni) == {"good.test"}
    assert set(named.sni) == {"front.test"}
    # https: the HTTP request went through TLS
    answered = [st for _, st in https.checks if st != "tls"]
    assert len(answered) >= 3 and all(st == 200 for st in answered)
    # https status check fails on a bad status too
    mark = d.mark()
    https.status = 503
    d.wait_log(r"server https/https DOWN: HTTP 503 \(1/1\)", 10 * SLOW, mark)
    https.status = 200
    d.wait_log(r"server https/https UP: HTTP 200 \(1/1\)", 10 * SLOW, mark)


def test_tls_bad_ca_file_is_a_startup_error(tmp_path):
    import os
    import subprocess
    from health_fixtures import BUILD
    path = os.path.join(str(tmp_path), "bad.conf")
    with open(path, "w") as f:
        f.write(conf_global() + """
pool p { check tls { sni a.test; verify on; ca /nonexistent/ca.pem; } server a 127.0.0.1:9; }
listen l { bind 127.0.0.1:%d; pool p; }
""" % free_ports(1)[0])
    r = subprocess.run([os.path.join(BUILD, "sluice"), "-f", path], capture_output=True,
                       timeout=30 * SLOW)
    assert r.returncode == 1
    assert b"pool p: cannot load CA file /nonexistent/ca.pem" in r.stderr
