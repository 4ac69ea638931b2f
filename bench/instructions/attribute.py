#!/usr/bin/env python3
"""Instructions per request from a callgrind dump of the gateway bench (see `run`).

Requests are the calls of hyper's server-side encoder in the counted window (one per
response the gateway began): not the client's, which also counts the OTLP exporter's
requests when export is on; guest functions are named from wasmtime's perf map."""
import bisect
import collections
import re
import subprocess
import sys

dump, perf_map, label = sys.argv[1], sys.argv[2], sys.argv[3]
REQUEST = "<hyper::proto::h1::role::Server as hyper::proto::h1::Http1Transaction>::encode"

names, calls, totals = {}, collections.Counter(), 0
callee = None
for line in open(dump, errors="replace"):
    m = re.match(r"(c?fn)=\((\d+)\)(?: (.*))?", line)
    if m:
        kind, ident, name = m.groups()
        if name:
            names[ident] = name.strip()
        if kind == "cfn":
            callee = names.get(ident, ident)
        continue
    m = re.match(r"calls=(\d+)", line)
    if m and callee:
        calls[callee] += int(m.group(1))
    m = re.match(r"totals: (\d+)", line)
    if m:
        totals = int(m.group(1))
requests = calls[REQUEST]
if requests < 50:
    sys.exit(f"{label}: {requests} requests in the counted window")

symbols = []
try:
    for line in open(perf_map):
        start, size, name = line.rstrip("\n").split(" ", 2)
        symbols.append((int(start, 16), int(size, 16), name))
except FileNotFoundError:
    pass
symbols.sort()
starts = [s[0] for s in symbols]


def guest_symbol(address):
    i = bisect.bisect_right(starts, address) - 1
    if i >= 0 and address < symbols[i][0] + symbols[i][1]:
        return re.sub(r"wasm\[(\d+)\]::function\[\d+\]::", r"wasm[\1]::", symbols[i][2])
    return None


annotated = subprocess.run(
    ["callgrind_annotate", "--threshold=100", dump], capture_output=True, text=True
).stdout
parts, guest = collections.Counter(), collections.Counter()
for line in annotated.splitlines():
    m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(\S+)", line)
    if not m or "PROGRAM TOTALS" in line:
        continue
    cost, where = int(m.group(1).replace(",", "")), m.group(2)
    # Code without a symbol in an object file (musl's assembly `memcpy` in the static
    # host) is the host's; only code in no object at all ("[???]") is JIT-compiled guest code.
    if where.startswith("???:0x") and "[???]" in line:
        name = guest_symbol(int(where[6:].split("'")[0], 16)) or "unnamed"
        guest[name] += cost
        parts["guest " + name.split("::")[0]] += cost
    elif "libc.so" in line:
        parts["libc"] += cost
    else:
        parts["host"] += cost

k = lambda cost: f"{cost / requests / 1000:8.1f} k"
print(f"{label}: {totals / requests / 1000:.1f} k instructions per request ({requests} requests)")
for name, cost in parts.most_common(12):
    print(f"  {k(cost)}  {name}")
print("  top guest functions:")
for name, cost in guest.most_common(int(sys.argv[4]) if len(sys.argv) > 4 else 25):
    print(f"  {k(cost)}  {name[:140]}")
