#!/bin/sh
# Golden config tests: every tests/conf/good/*.conf passes `sluice -c` and
# warns exactly as its .warn file says (nothing when there is none);
# every tests/conf/bad/X.conf fails and prints exactly tests/conf/bad/X.err
# (paths relative to the repository root).
set -u
bin=${1:-build/sluice}
fail=0; pass=0
# a good file prints no warning, or exactly those of its .warn file
for f in tests/conf/good/*.conf conf/*.conf; do
	case "$f" in conf/bird-*.conf) continue ;; esac # BIRD's, for an announcing node
	want="${f%.conf}.warn"
	if ! out=$("$bin" -c -f "$f" 2>&1); then
		echo "FAIL good $f:"; echo "$out"; fail=$((fail + 1)); continue
	fi
	warn=$("$bin" -c -f "$f" 2>&1 >/dev/null)
	if [ "$warn" != "$(cat "$want" 2>/dev/null)" ]; then
		echo "FAIL good $f warnings:"; echo "  got:  $warn"
		echo "  want: $(cat "$want" 2>/dev/null)"; fail=$((fail + 1)); continue
	fi
	pass=$((pass + 1))
done
for f in tests/conf/bad/*.conf; do
	want="${f%.conf}.err"
	out=$("$bin" -c -f "$f" 2>&1); rc=$?
	if [ "$rc" -ne 1 ]; then
		echo "FAIL bad $f: exit $rc, expected 1"; fail=$((fail + 1)); continue
	fi
	if [ "$out" != "$(cat "$want")" ]; then
		echo "FAIL bad $f:"; echo "  got:  $out"; echo "  want: $(cat "$want")"
		fail=$((fail + 1)); continue
	fi
	pass=$((pass + 1))
done
echo "conf: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
