#!/usr/bin/env python3
r"""Replays corpus JSONL files through libmodsecurity 3 (Debian's libmodsecurity3, called
with ctypes, no nginx) with one rule file, and prints the blocked share per file and
expectation; with V=1 also every request whose verdict differs from its `expect`, with the
rule ids ModSecurity logged.

  python3 tests/waf/modsec_replay.py RULES.conf tests/waf/corpus/*.jsonl

RULES.conf is a file of Includes, e.g. for CRS 3.3 with the prompt-field policy (v3 form,
see make_modsec_policy.py):
  SecRuleEngine On
  SecRequestBodyAccess On
  SecRule REQUEST_HEADERS:Content-Type "^application/json" "id:200001,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON"
  SecRule REQUEST_HEADERS:Content-Type "(?:application(?:/soap\+|/)|text/)xml" "id:200000,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=XML"
  Include tests/waf/modsecurity/chat-policy-v3-before.conf
  Include /etc/modsecurity/crs/crs-setup.conf
  Include /usr/share/modsecurity-crs/rules/*.conf
  Include tests/waf/modsecurity/chat-policy-v3-after.conf
(owasp-crs.load cannot be used: libmodsecurity 3.0.9 rejects its IncludeOptional lines.
Without the XML rule, from ModSecurity's recommended configuration, no XML body is parsed
and the XML-borne attacks pass: 688 of the corpus's 938 attacks blocked instead of 748.)
"""
import ctypes
import json
import os
import re
import sys

lib = ctypes.CDLL("libmodsecurity.so.3")
class Intervention(ctypes.Structure):
    _fields_ = [("status", ctypes.c_int), ("pause", ctypes.c_int), ("url", ctypes.c_char_p), ("log", ctypes.c_char_p), ("disruptive", ctypes.c_int)]
lib.msc_init.restype = ctypes.c_void_p
lib.msc_create_rules_set.restype = ctypes.c_void_p
lib.msc_new_transaction.restype = ctypes.c_void_p
lib.msc_new_transaction.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
lib.msc_rules_add_file.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p)]
for f in ["msc_process_connection", "msc_process_uri", "msc_add_n_request_header", "msc_process_request_headers", "msc_append_request_body",
          "msc_process_request_body", "msc_intervention", "msc_process_logging", "msc_transaction_cleanup"]:
    getattr(lib, f).argtypes = None
LOGCB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
logs = []
def cb(data, msg):
    logs.append(ctypes.cast(msg, ctypes.c_char_p).value.decode(errors="replace"))
cbf = LOGCB(cb)
ms = lib.msc_init()
lib.msc_set_log_cb.argtypes = [ctypes.c_void_p, LOGCB]
lib.msc_set_log_cb(ctypes.c_void_p(ms), cbf)
rules = lib.msc_create_rules_set()
conf, corpus = sys.argv[1], sys.argv[2:]
err = ctypes.c_char_p()
if lib.msc_rules_add_file(ctypes.c_void_p(rules), conf.encode(), ctypes.byref(err)) < 0:
    print("load error:", err.value.decode()); sys.exit(1)
tot = {}
for path in corpus:
    for line in open(path):
        r = json.loads(line)
        logs.clear()
        t = ctypes.c_void_p(lib.msc_new_transaction(ctypes.c_void_p(ms), ctypes.c_void_p(rules), None))
        lib.msc_process_connection(t, b"192.0.2.10", 40000, b"127.0.0.1", 80)
        lib.msc_process_uri(t, r["uri"].encode(), r["method"].encode(), r.get("protocol", "HTTP/1.1").split("/")[1].encode())
        for k, v in r["headers"]:
            kb, vb = k.encode(), v.encode()
            lib.msc_add_n_request_header(t, kb, len(kb), vb, len(vb))
        it = Intervention(status=200)
        blocked = False
        lib.msc_process_request_headers(t)
        if lib.msc_intervention(t, ctypes.byref(it)) and it.disruptive: blocked = True
        if not blocked:
            b = r["body"].encode()
            if b: lib.msc_append_request_body(t, b, len(b))
            lib.msc_process_request_body(t)
            it = Intervention(status=200)
            if lib.msc_intervention(t, ctypes.byref(it)) and it.disruptive: blocked = True
        lib.msc_process_logging(t)
        lib.msc_transaction_cleanup(t)
        exp = r["expect"] == "block"
        key = (path.split("/")[-1], r["expect"])
        c = tot.setdefault(key, [0, 0]); c[1] += 1; c[0] += blocked
        if blocked != exp and os.environ.get("V"):
            ids = sorted(set(re.findall(r'\[id "(\d+)"\]', " ".join(logs))))
            print("WRONG", r["id"], r["expect"], ids[:12])
for k, (b, n) in sorted(tot.items()):
    print(f"{k[0]:28} expect {k[1]:5}: blocked {b}/{n} = {100*b/n:.1f} %")
