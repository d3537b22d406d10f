# The manual pages: they render without a warning (mandoc -T lint -W warning,
# man --warnings), and they cannot drift from the program: every keyword of
# every configuration keyword table has an entry in sluice.conf(5) in the
# section of its block, and every command of the control socket's table has
# one in sluicectl(8). The lists come from the binary (sluice
# --dump-keywords) and, so that a table the dump forgot cannot hide a
# keyword, from the tables in the source as well.
import os
import re
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
BUILD = os.path.abspath(os.environ.get("SLUICE_BUILD") or os.path.join(ROOT, "build"))
SLUICE = os.path.join(BUILD, "sluice")
MAN = os.path.join(ROOT, "man")
PAGES = ["sluice.8", "sluice.conf.5", "sluicectl.8", "rolling-deploy.1"]
MACRO = re.compile(r"^[A-Z][a-z]{1,2}$")


def dump():
    out = subprocess.run([SLUICE, "--dump-keywords"], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    conf, ctl = [], []
    for line in out.splitlines():
        f = line.split("\t")
        if f[0] == "conf":
            conf.append((f[1], f[2], f[3] == "block"))
        elif f[0] == "ctl":
            ctl.append(f[1])
        else:
            raise AssertionError("unexpected --dump-keywords line %r" % line)
    return conf, ctl


def words_after(tokens, macro):
    """The plain words after the first `macro` token, up to the next macro."""
    if macro not in tokens:
        return []
    out = []
    for t in tokens[tokens.index(macro) + 1:]:
        if MACRO.match(t):
            break
        out.append(t)
    return out


def conf_page():
    """(sections, items): the .Ss titles, and (section, keyword) of each .It Ic."""
    sections, items, cur = set(), set(), None
    with open(os.path.join(MAN, "sluice.conf.5")) as f:
        for line in f:
            tok = line.split()
            if not tok:
                continue
            if tok[0] == ".Sh":
                cur = None
            elif tok[0] == ".Ss":
                cur = tok[1]
                sections.add(cur)
            elif tok[0] == ".It" and len(tok) > 2 and tok[1] == "Ic" and cur is not None:
                items.add((cur, tok[2]))
    return sections, items


def ctl_page():
    """The command words of each .It Cm entry under COMMANDS."""
    cmds, in_cmds = set(), False
    with open(os.path.join(MAN, "sluicectl.8")) as f:
        for line in f:
            tok = line.split()
            if not tok:
                continue
            if tok[0] == ".Sh":
                in_cmds = tok[1:] == ["COMMANDS"]
            elif in_cmds and tok[0] == ".It":
                w = words_after(tok, "Cm")
                for n in (1, 2):
                    cmds.add(" ".join(w[:n]))
    return cmds


def source_tables():
    """Keywords of the keyword tables and commands of the command table as
    written in src/conf and src/ctl: static const struct X NAME[] = { ... };
    where X names a keyword table (…kw, …keyword) or the command table."""
    table = re.compile(r"static const struct (\w+) (\w+)\[\] = \{(.*?)\n\};", re.S)
    conf, ctl = set(), set()
    for sub in ("conf", "ctl"):
        d = os.path.join(ROOT, "src", sub)
        for name in sorted(os.listdir(d)):
            if not name.endswith(".c"):
                continue
            with open(os.path.join(d, name)) as f:
                text = f.read()
            for m in table.finditer(text):
                kind, body = m.group(1), m.group(3)
                if kind == "cmd_entry":
                    for e in re.finditer(r'\{\s*"([^"]+)",\s*(NULL|"([^"]+)")', body):
                        ctl.add(e.group(1) + (" " + e.group(3) if e.group(3) else ""))
                elif kind.endswith("kw") or kind.endswith("keyword"):
                    for e in re.finditer(r'\{\s*"([^"]+)"', body):
                        conf.add((name, m.group(2), e.group(1)))
    return conf, ctl


def test_pages_lint_clean():
    r = subprocess.run(["mandoc", "-T", "lint", "-W", "warning"] +
                       [os.path.join(MAN, p) for p in PAGES],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", r.stdout + r.stderr


def test_pages_render_without_warnings():
    for p in PAGES:
        r = subprocess.run(["man", "--warnings", "-l", os.path.join(MAN, p)],
                           capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING="0"))
        assert r.returncode == 0, (p, r.stderr)
        assert r.stderr == "", (p, r.stderr)
        assert len(r.stdout.splitlines()) > 20, p


def test_every_config_keyword_has_an_entry():
    conf, _ = dump()
    assert len(conf) > 40
    sections, items = conf_page()
    missing = []
    for block, kw, opens in conf:
        if block == "top":
            if kw not in sections:
                missing.append("block '%s' has no '.Ss %s' section" % (kw, kw))
            continue
        if block not in sections:
            missing.append("block '%s' has no '.Ss %s' section" % (block, block))
        if (block, kw) not in items:
            missing.append("keyword '%s' of block '%s' has no '.It Ic %s' under "
                           "'.Ss %s'" % (kw, block, kw, block))
        if opens and kw not in sections:
            missing.append("block '%s' (in %s) has no '.Ss %s' section" % (kw, block, kw))
    assert not missing, "sluice.conf.5 is missing:\n" + "\n".join(missing)


def test_every_control_command_has_an_entry():
    _, ctl = dump()
    assert "show servers" in ctl and "reload" in ctl
    page = ctl_page()
    missing = [c for c in ctl if c not in page]
    assert not missing, "sluicectl.8 has no '.It Cm' entry under COMMANDS for: %s" % missing


def test_dump_covers_every_table_in_the_source():
    conf, ctl = dump()
    src_conf, src_ctl = source_tables()
    assert len(src_conf) > 40 and len(src_ctl) > 10
    dumped = {kw for _, kw, _ in conf}
    lost = ["%s: %s: '%s'" % e for e in sorted(src_conf) if e[2] not in dumped]
    assert not lost, ("keywords in a table that sluice --dump-keywords does not walk "
                      "(list the table in conf_keywords()):\n" + "\n".join(lost))
    lost = sorted(src_ctl - set(ctl))
    assert not lost, "commands missing from sluice --dump-keywords: %s" % lost
