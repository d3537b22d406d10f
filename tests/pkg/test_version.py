# sluice -v and --version: the version, the git commit the binary was built
# from, and (--version, -vv) the build options, the optional features with
# + or -, and the libraries in use, as haproxy -vv.
import os
import re
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
BUILD = os.path.abspath(os.environ.get("SLUICE_BUILD") or os.path.join(ROOT, "build"))
SLUICE = os.path.join(BUILD, "sluice")


def run(*args):
    r = subprocess.run([SLUICE] + list(args), capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    return r.stdout


def makefile_version():
    with open(os.path.join(ROOT, "Makefile")) as f:
        return re.search(r"^VERSION := (\S+)$", f.read(), re.M).group(1)


def test_short_version_names_release_and_commit():
    out = run("-v")
    m = re.fullmatch(r"sluice (\S+) \(commit ([0-9a-f]{12})(-dirty)?\)\n", out)
    assert m, out
    assert m.group(1) == makefile_version()
    head = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True,
                          text=True)
    if head.returncode == 0:
        # a binary built before the last commit would name another one
        assert head.stdout.startswith(m.group(2)), (out, head.stdout)


def test_long_version_lists_build_features_and_libraries():
    out = run("--version")
    assert run("-vv") == out
    lines = out.splitlines()
    assert lines[0] == run("-v").strip()
    assert re.search(r"^  compiler: (gcc|clang) \S+", out, re.M), out
    assert re.search(r"^  CFLAGS: .*-O\d", out, re.M), out
    feat = re.search(r"^Features:((?: [+-][A-Z-]+)+)$", out, re.M)
    assert feat, out
    names = {f[1:]: f[0] for f in feat.group(1).split()}
    for n in ("KERNEL-RELAY", "BPF", "CARES", "SPLICE", "VRRP", "TLS-CHECKS", "SYSLOG"):
        assert n in names, (n, out)
        assert re.search(r"^  %s +%s:" % (n, "yes" if names[n] == "+" else "no "), out,
                         re.M), (n, out)
    # what this build has: the parts of the optional features that exist
    # src/cluster holds both BPF parts: second chance (cluster.c) and the
    # kernel relay (krelay.c)
    cl = os.path.join(ROOT, "src", "cluster")
    assert names["BPF"] == ("+" if os.path.exists(os.path.join(cl, "cluster.c")) else "-")
    assert names["KERNEL-RELAY"] == ("+" if os.path.exists(os.path.join(cl, "krelay.c")) else "-")
    assert names["CARES"] == ("+" if os.path.isdir(os.path.join(ROOT, "src", "resolve")) else "-")
    assert names["VRRP"] == "+" and names["SYSLOG"] == "+"
    assert re.search(r"^  libev \d+\.\d+ \(built with \d+\.\d+\)$", out, re.M), out
    assert re.search(r"^  OpenSSL 3\.\S+ .*\(built with OpenSSL 3\.", out, re.M), out
    assert re.search(r"^  libnl 3\.\d+\.\d+ \(built with 3\.\d+\.\d+\)$", out, re.M), out


def test_unknown_option_is_a_usage_error():
    r = subprocess.run([SLUICE, "--versoin"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "usage: sluice" in r.stderr
