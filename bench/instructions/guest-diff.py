#!/usr/bin/env python3
"""Instructions per request a guest spent in its own compiled code, from two callgrind
dumps of `examples/guest_instructions.rs` that differ only in how many requests the
command ran: `guest-diff.py <fewer.cg> <more.cg> <requests more>`. Each dump's perf map
(`<dump>.map`, wasmtime's) names the guest's functions; the host's side (compiling,
instantiating, WASI) is left out."""
import bisect
import collections
import re
import subprocess
import sys


def guest_costs(dump):
    symbols = []
    for line in open(dump + ".map"):
        start, size, name = line.rstrip("\n").split(" ", 2)
        symbols.append((int(start, 16), int(size, 16), name))
    symbols.sort()
    starts = [s[0] for s in symbols]
    annotated = subprocess.run(
        ["callgrind_annotate", "--threshold=100", dump], capture_output=True, text=True, check=True
    ).stdout
    costs = collections.Counter()
    for line in annotated.splitlines():
        m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(\S+)", line)
        if not m or "PROGRAM TOTALS" in line or not m.group(2).startswith("???:0x"):
            continue
        address = int(m.group(2)[6:].split("'")[0], 16)
        i = bisect.bisect_right(starts, address) - 1
        if i >= 0 and address < symbols[i][0] + symbols[i][1]:
            name = re.sub(r"wasm\[\d+\]::function\[\d+\]::", "", symbols[i][2])
        else:
            name = "unnamed"
        costs[name] += int(m.group(1).replace(",", ""))
    return costs


fewer, more, requests = guest_costs(sys.argv[1]), guest_costs(sys.argv[2]), int(sys.argv[3])
per_request = collections.Counter({name: more[name] - fewer[name] for name in more})
print(f"  {sum(per_request.values()) / requests / 1000:.1f} k instructions per request")
for name, cost in per_request.most_common(12):
    print(f"  {cost / requests / 1000:8.1f} k  {name[:110]}")
