#!/usr/bin/env python3
"""Resident memory of a running `chatgate up` while clients load it (issue 13: "the RSS of
`chatgate up` under 16 connections for 60 s ... flat, not growing").

Usage: bench/memory/rss-under-load.py PORT SECONDS CONNECTIONS PID [API_KEY]
  e.g. ./target/release/chatgate up --listen 127.0.0.1:3999 &
       bench/memory/rss-under-load.py 3999 60 16 $(pgrep -f 'chatgate up --listen 127.0.0.1:3999')

Each connection is a keep-alive client sending `GET /v1/models` with the API key (the
embedded development key by default) as fast as Python lets it; the script prints the
process's VmRSS every 5 s and at the end, with the requests answered 200 and the others.
A memory check, not a throughput benchmark: the Python clients cap the rate.
"""
import http.client
import sys
import threading
import time

port, seconds, connections, pid = (int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
key = sys.argv[5] if len(sys.argv) > 5 else "chatgate-dev-key"
stop = time.time() + seconds
answered = [0] * connections
failed = [0] * connections


def rss_mib():
    with open(f"/proc/{pid}/status") as status:
        return int(status.read().split("VmRSS:")[1].split()[0]) / 1024


def client(i):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    while time.time() < stop:
        try:
            conn.request("GET", "/v1/models", headers={"Authorization": f"Bearer {key}"})
            response = conn.getresponse()
            response.read()
            if response.status == 200:
                answered[i] += 1
            else:
                failed[i] += 1
        except OSError:
            failed[i] += 1
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)


threads = [threading.Thread(target=client, args=(i,)) for i in range(connections)]
for t in threads:
    t.start()
start = time.time()
while time.time() < stop:
    print(f"t={time.time() - start:5.1f}s rss={rss_mib():.1f} MiB requests={sum(answered)} errors={sum(failed)}", flush=True)
    time.sleep(5)
for t in threads:
    t.join()
print(f"end rss={rss_mib():.1f} MiB requests={sum(answered)} errors={sum(failed)}")
