"""A deny list of random IPv4 prefixes for the edge-policy benchmarks
(tools/bench, bench-guard, bench-lateness): n prefixes from /16 to /32,
none inside 127/8 (the load's addresses), one per line."""
import os
import random


def write_deny_list(path, n, seed):
    rnd = random.Random(seed)
    lines = []
    for _ in range(n):
        plen = rnd.randint(16, 32)
        a = rnd.getrandbits(32)
        if a >> 24 == 127:
            a ^= 1 << 31
        a &= (0xffffffff << (32 - plen)) & 0xffffffff
        lines.append("%d.%d.%d.%d/%d\n" % (a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255,
                                           plen))
    with open(path + ".tmp", "w") as f:
        f.write("".join(lines))
    os.replace(path + ".tmp", path)
    return path
