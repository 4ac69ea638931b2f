#!/usr/bin/env python3
"""Converts the OWASP CRS 4 regression tests (go-ftw YAML, `tests/regression/tests` of a
CRS checkout or source archive) into the line format `tests/crs4.rs` reads, so the engine
can be checked against CRS's own expectations without a YAML parser in Rust.

    python3 crates/seclang/tests/support/crs_ftw_to_cases.py /tmp/crs4/tests/regression/tests > /tmp/crs4-ftw.cases
    CHATGATE_CRS4_DIR=/tmp/crs4 CHATGATE_CRS4_FTW=/tmp/crs4-ftw.cases \
        cargo test --release -p chatgate-seclang --test crs4 -- --nocapture

One record per stage; every field is hex so that any byte survives:

    T <rule id> <test id> <stage>
    M <method> / U <uri> / V <version> / H <name> <value> / B <body>
    E <expected ids, comma-separated> / N <ids that must not match>
    S <status codes the test accepts>
    RS <status> / RH <name> <value> / RB <body>   (the response albedo's /reflect returns)
    .

go-ftw's defaults are applied here: method GET, uri /, HTTP/1.1, and with
`autocomplete_headers` (the default) what go-ftw adds (see `autocomplete`). `encoded_request` and
`raw_request` are parsed as raw HTTP. The backend of CRS's test set-up (albedo) answers
`POST /reflect` with the status, headers and body (`body`, or base64 `encodedBody`) of the
JSON request body; other requests get an empty 200 answer and no response record.
"""

import base64
import json
import os
import re
import sys
import urllib.parse

import yaml


def hx(data):
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    return data.hex() or "-"


def parse_raw(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    if not _:
        head, _, body = raw.partition(b"\n\n")
    lines = head.replace(b"\r\n", b"\n").split(b"\n")
    parts = lines[0].split(b" ")
    method = parts[0]
    uri = b" ".join(parts[1:-1]) if len(parts) > 2 else (parts[1] if len(parts) > 1 else b"/")
    version = parts[-1] if len(parts) > 2 else b"HTTP/1.1"
    headers = []
    for line in lines[1:]:
        if b":" in line:
            k, v = line.split(b":", 1)
            headers.append((k.strip(), v.strip()))
    return method, uri, version, headers, body


def header(headers, name):
    for k, v in headers:
        if k.lower() == name.lower():
            return v
    return None


def autocomplete(method, headers, body):
    """What go-ftw (ftwhttp/request.go, BuildRequest) does to a request with
    `autocomplete_headers`: a body gets `Content-Type: application/x-www-form-urlencoded`
    when it has none; a form body that URL-decoding would not change has its keys and values
    escaped (Go's url.QueryEscape); a multipart body gets CRLF line ends; `Connection:
    close`, and `Content-Length` for a body or a method that permits one."""
    if body:
        if header(headers, "Content-Type") is None:
            headers.append(("Content-Type", "application/x-www-form-urlencoded"))
        if header(headers, "Content-Type") == "application/x-www-form-urlencoded":
            text = body.decode("utf-8", "surrogateescape")
            bad_escape = re.search(r"%(?![0-9A-Fa-f]{2})", text)
            if not bad_escape and urllib.parse.unquote_plus(text) == text:
                out = []
                for token in text.split("&"):
                    if "=" in token:
                        k, v = token.split("=", 1)
                        out.append(quote(k) + "=" + quote(v))
                    else:
                        out.append(quote(token))
                body = "&".join(out).encode("utf-8", "surrogateescape")
        if (header(headers, "Content-Type") or "").startswith("multipart/form-data;"):
            body = body.replace(b"\n", b"\r\n")
    if header(headers, "Connection") is None:
        headers.append(("Connection", "close"))
    if body or re.match(r"^POST|PUT|PATCH|DELETE$", method):
        if header(headers, "Content-Length") is None:
            headers.append(("Content-Length", str(len(body))))
    return body


def quote(s):
    return urllib.parse.quote_plus(s.encode("utf-8", "surrogateescape"), safe="~")


def stage_record(rule_id, test_id, n, stage):
    inp = stage.get("input", {}) or {}
    out = stage.get("output", {}) or {}
    log = out.get("log", {}) or {}
    expect = log.get("expect_ids", []) or []
    no_expect = log.get("no_expect_ids", []) or []
    status = out.get("status")
    if status is None:
        status = []
    elif not isinstance(status, list):
        status = [status]
    if not expect and not no_expect and not status:
        return None
    raw = None
    if "encoded_request" in inp:
        raw = base64.b64decode(inp["encoded_request"])
    elif "raw_request" in inp:
        raw = inp["raw_request"].encode("utf-8", "surrogateescape")
    if raw is not None:
        method, uri, version, headers, body = parse_raw(raw)
    else:
        method = inp.get("method", "GET")
        uri = inp.get("uri", "/")
        version = inp.get("version", "HTTP/1.1")
        headers = [(str(k), "" if v is None else str(v)) for k, v in (inp.get("headers") or {}).items()]
        body = inp.get("data", "") or ""
        if isinstance(body, list):
            body = "\r\n".join(body)
        # go-ftw renders `data` as a Go template; the tests use Sprig's `repeat` only.
        body = re.sub(
            r'\{\{\s*"([^"]*)"\s*\|\s*repeat\s+(\d+)\s*\}\}',
            lambda m: m.group(1) * int(m.group(2)),
            body,
        )
        body = body.encode("utf-8", "surrogateescape")
        if inp.get("autocomplete_headers", True):
            body = autocomplete(method, headers, body)
    lines = ["T %s %s %s" % (rule_id, test_id, n)]
    lines.append("M " + hx(method))
    lines.append("U " + hx(uri))
    lines.append("V " + hx(version))
    for k, v in headers:
        lines.append("H %s %s" % (hx(k), hx(v)))
    lines.append("B " + hx(body))
    lines.append("E " + (",".join(str(i) for i in expect) or "-"))
    lines.append("N " + (",".join(str(i) for i in no_expect) or "-"))
    lines.append("S " + (",".join(str(s) for s in status) or "-"))
    as_text = uri.decode("latin-1") if isinstance(uri, bytes) else uri
    m = method.decode("latin-1") if isinstance(method, bytes) else method
    if m == "POST" and as_text.split("?")[0] == "/reflect":
        try:
            spec = json.loads(body)
        except ValueError:
            spec = None
        if isinstance(spec, dict):
            lines.append("RS " + str(spec.get("status", 200)))
            rheaders = spec.get("headers") or {}
            if not any(k.lower() == "content-type" for k in rheaders):
                rheaders = dict(rheaders, **{"Content-Type": "text/plain; charset=utf-8"})
            for k, v in rheaders.items():
                lines.append("RH %s %s" % (hx(k), hx(str(v))))
            if "encodedBody" in spec:
                rbody = base64.b64decode(spec["encodedBody"])
            else:
                rbody = (spec.get("body") or "").encode("utf-8")
            lines.append("RB " + hx(rbody))
    lines.append(".")
    return "\n".join(lines)


def main():
    root = sys.argv[1]
    for dirpath, _, files in sorted(os.walk(root)):
        for f in sorted(files):
            if not f.endswith(".yaml"):
                continue
            with open(os.path.join(dirpath, f), encoding="utf-8", errors="surrogateescape") as fh:
                doc = yaml.safe_load(fh) or {}
            rule_id = doc.get("rule_id") or f.split(".")[0]
            for test in doc.get("tests", []):
                for n, stage in enumerate(test.get("stages", []), 1):
                    rec = stage_record(rule_id, test.get("test_id"), n, stage)
                    if rec:
                        print(rec)


if __name__ == "__main__":
    main()
