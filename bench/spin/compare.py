#!/usr/bin/env python3
"""Runs the shipped `spin.toml` on a Spin binary and on `chatgate up`, side by side, sends
both the same requests and compares their answers (status, OpenAI error code, response
object); with `--bench`, then runs the gateway bench's scenarios against each in turn.

    bench/spin/compare.py <spin binary> [--bench <gateway bench binary>] [--turns N]

After `make build` and `make host HOST_TRIPLE=x86_64-unknown-linux-musl`. No Spin binary is
part of the toolchain, so no test runs this: it is how the README's "Running on Spin"
check was made, kept so that it can be made again. The manifest served is the shipped
one with `hello` on `/hello` (for the bench's baseline), written beside `spin.toml` (its
paths are relative) and removed at the end; quotas are off. Exits 1 when an answer differs.
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "spin-compare.toml"
HELLO = """
[[trigger.http]]
route = "/hello"
component = "hello"
[component.hello]
source = "target/wasm32-wasip2/release/hello.wasm"
"""
KEY = {"authorization": "Bearer chatgate-dev-key"}
JSON = {**KEY, "content-type": "application/json"}


def chat(content, stream=False):
    body = {"model": "chatgate-rag", "messages": [{"role": "user", "content": content}]}
    if stream:
        body["stream"] = True
    return json.dumps(body).encode()


# (what is checked, path, headers, body)
REQUESTS = [
    ("models with the development key", "/v1/models", KEY, None),
    ("models without a key", "/v1/models", {}, None),
    ("a RAG answer", "/v1/chat/completions", JSON, chat("What does the web application firewall block?")),
    ("a streamed RAG answer", "/v1/chat/completions", JSON, chat("What does the web application firewall block?", True)),
    ("SQL injection in the query", "/v1/models?id=1%27%20OR%20%271%27=%271", KEY, None),
    ("a chat message holding markup", "/v1/chat/completions", JSON, chat("<script>alert(document.cookie)</script>")),
    ("a chat message holding SQL", "/v1/chat/completions", JSON, chat("How do I write SELECT name FROM users WHERE id = 1?")),
    ("the health check", "/healthz", {}, None),
    ("the UI", "/", {}, None),
    ("an unknown API path", "/v1/nothing", KEY, None),
]


def answer(origin, path, headers, body):
    """Status, then what is compared of the body: the error code, the `object`, or the
    content type for a body that is not JSON."""
    request = urllib.request.Request(origin + path, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, content_type, text = response.status, response.headers.get("content-type", ""), response.read()
    except urllib.error.HTTPError as error:
        status, content_type, text = error.code, error.headers.get("content-type", ""), error.read()
    if content_type.startswith("application/json"):
        document = json.loads(text)
        return status, (document.get("error") or {}).get("code") or document.get("object")
    return status, content_type.split(";")[0]


def wait_for(origin, seconds=180):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            urllib.request.urlopen(origin + "/hello", timeout=2).read()
            return
        except OSError:
            time.sleep(1)
    sys.exit(f"{origin} did not answer within {seconds} s")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("spin")
    parser.add_argument("--bench", help="the gateway bench binary, for its BENCH_ORIGIN mode")
    parser.add_argument("--turns", type=int, default=3)
    args = parser.parse_args()
    # The bench runs from tests/ (its data paths are relative to it), so a relative path
    # given here would not be found there.
    if args.bench:
        args.bench = str(pathlib.Path(args.bench).resolve())
    MANIFEST.write_text((ROOT / "spin.toml").read_text() + HELLO)
    env = {**os.environ, "SPIN_VARIABLE_QUOTA_REQUESTS_PER_MINUTE": "0", "SPIN_VARIABLE_QUOTA_TOKENS_PER_MINUTE": "0"}
    chatgate = ROOT / "target/x86_64-unknown-linux-musl/release/chatgate"
    hosts = {
        "spin": ("http://127.0.0.1:3001", [args.spin, "up", "--from", str(MANIFEST), "--experimental-wasi-otel", "--listen", "127.0.0.1:3001"]),
        "chatgate": ("http://127.0.0.1:3999", [str(chatgate), "up", "-f", str(MANIFEST), "--listen", "127.0.0.1:3999", "--key-value", "none"]),
    }
    servers = []
    try:
        for name, (origin, command) in hosts.items():
            log = open(ROOT / f"target/spin-compare-{name}.log", "w")
            servers.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
        for origin, _ in hosts.values():
            wait_for(origin)
        differ = 0
        for what, path, headers, body in REQUESTS:
            answers = {name: answer(origin, path, headers, body) for name, (origin, _) in hosts.items()}
            same = len(set(answers.values())) == 1
            differ += not same
            print(f"{'same' if same else 'DIFFERENT':<10} {what:<34} " + "  ".join(f"{n} {a}" for n, a in answers.items()))
        if args.bench:
            for turn in range(args.turns):
                for name, (origin, _) in hosts.items():
                    bench_env = {**os.environ, "BENCH_ORIGIN": origin, "BENCH_SECONDS": "4", "BENCH_CONNECTIONS": "16", "BENCH_CLOSE": "1"}
                    out = subprocess.run([args.bench, "--bench"], cwd=ROOT / "tests", env=bench_env, capture_output=True, text=True).stdout
                    for line in out.splitlines():
                        if line.startswith("there "):
                            print(f"turn {turn + 1} {name:<8} {line[6:]}")
        sys.exit(1 if differ else 0)
    finally:
        for server in servers:
            server.terminate()
            server.wait()
        MANIFEST.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
