#!/usr/bin/env python3
"""CPU time a running `chatgate up` spends per abandoned upload: the headers of a
1000-byte `POST /v1/chat/completions`, 6 bytes of its body, then close (the attack of
`tests/tests/capacity.rs` and the soak bench's noisy neighbour).

Usage: bench/cpu/abandoned-uploads.py PORT PID [COUNT]
  e.g. ./target/release/chatgate up --listen 127.0.0.1:3999 &
       bench/cpu/abandoned-uploads.py 3999 $(pgrep -f 'chatgate up --listen 127.0.0.1:3999')

Sends COUNT (10,000 by default) uploads, 200 at a time, from this one address; then
waits 3 s for the gateway to finish with them and prints the gateway's CPU time (user and
system, from /proc/PID/stat) per upload, and the script's own. Not every upload reaches
a component (the per-client upload budget refuses some at once, as it would an
attacker's, and some are closed first; the script does not tell them apart): the figure
is the mix the gateway sees. The generator runs on the same cores, so compare runs, not
machines.
"""
import asyncio
import sys
import time

port, pid = int(sys.argv[1]), int(sys.argv[2])
count = int(sys.argv[3]) if len(sys.argv) > 3 else 10_000


def cpu_seconds(pid):
    stat = open(f"/proc/{pid}/stat").read()
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / 100


upload = (
    f"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
    "content-type: application/json\r\ncontent-length: 1000\r\n\r\n" + " " * 6
).encode()


async def abandon(permits):
    async with permits:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(upload)
            await writer.drain()
            writer.close()
        except OSError:
            pass


async def storm():
    permits = asyncio.Semaphore(200)
    await asyncio.gather(*(abandon(permits) for _ in range(count)))


before, own_before, started = cpu_seconds(pid), time.process_time(), time.time()
asyncio.run(storm())
took = time.time() - started
time.sleep(3)
gateway = cpu_seconds(pid) - before
print(
    f"{count} abandoned uploads in {took:.1f} s; gateway CPU {gateway:.2f} s = "
    f"{gateway / count * 1e6:.0f} µs each; this script's CPU {time.process_time() - own_before:.2f} s"
)
