#!/usr/bin/env python3
"""The image's SBOM: an SPDX 2.3 JSON document written from `cargo metadata` and Cargo.lock.

No SBOM tool is packaged for Debian 12 here, so this script builds the document from
what Cargo resolves. It lists:
- every file of the image's root filesystem (SHA-256), each GENERATED_FROM the workspace
  crate it was built from: /usr/local/bin/chatgate from `chatgate` (resolved for the musl
  target), each component `.wasm` from the crate of that name (for wasm32-wasip2);
- every crate that crate depends on, transitively, through normal dependencies (what is
  compiled into the file, proc-macros included; build-dependencies and dev-dependencies
  are not), as resolved for that target, with its version, package URL, declared
  license and, for crates.io crates, Cargo.lock's SHA-256 of the `.crate` file.
The document is deterministic: `created` is SOURCE_DATE_EPOCH and the namespace is
derived from the content.
"""

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tomllib
from datetime import datetime, timezone


def spdx_id(kind, text):
    return f"SPDXRef-{kind}-" + re.sub(r"[^A-Za-z0-9.-]", "-", text)


def metadata(target):
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked", "--filter-platform", target],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)


def license_expression(text):
    if not text:
        return "NOASSERTION"
    # Cargo's old `/` separator means OR.
    return " OR ".join(part.strip() for part in text.split("/")) if "/" in text else text


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rootfs", required=True)
    parser.add_argument("--host-target", required=True)
    parser.add_argument("--component-target", default="wasm32-wasip2")
    parser.add_argument("--version", required=True)
    parser.add_argument("--revision", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    lock = tomllib.load(open("Cargo.lock", "rb"))
    checksums = {(p["name"], p["version"]): p.get("checksum") for p in lock["package"]}

    files = []
    for dirpath, _, names in os.walk(args.rootfs):
        for name in names:
            path = os.path.join(dirpath, name)
            files.append("/" + os.path.relpath(path, args.rootfs))
    files.sort()

    resolved = {}
    for target in (args.host_target, args.component_target):
        resolved[target] = metadata(target)
    members = {
        p["name"]: p["id"]
        for p in resolved[args.host_target]["packages"]
        if p["id"] in resolved[args.host_target]["workspace_members"]
    }

    packages = {}
    relationships = set()
    image_id = "SPDXRef-Image"

    def crate_closure(target, root_name):
        meta = resolved[target]
        by_id = {p["id"]: p for p in meta["packages"]}
        nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
        root = members[root_name]
        seen, stack = set(), [root]
        while stack:
            node_id = stack.pop()
            if node_id in seen:
                continue
            seen.add(node_id)
            package = by_id[node_id]
            pid = spdx_id("Package", f"{package['name']}-{package['version']}")
            if pid not in packages:
                entry = {
                    "SPDXID": pid,
                    "name": package["name"],
                    "versionInfo": package["version"],
                    "downloadLocation": "NOASSERTION",
                    "filesAnalyzed": False,
                    "licenseConcluded": "NOASSERTION",
                    "licenseDeclared": license_expression(package.get("license")),
                    "copyrightText": "NOASSERTION",
                    "externalRefs": [{
                        "referenceCategory": "PACKAGE-MANAGER",
                        "referenceType": "purl",
                        "referenceLocator": f"pkg:cargo/{package['name']}@{package['version']}",
                    }],
                }
                checksum = checksums.get((package["name"], package["version"]))
                if checksum and package.get("source", "") and package["source"].startswith("registry+"):
                    entry["checksums"] = [{"algorithm": "SHA256", "checksumValue": checksum}]
                if node_id in meta["workspace_members"]:
                    entry["comment"] = "part of the chatgate workspace"
                packages[pid] = entry
            for dep in nodes[node_id]["deps"]:
                if any(kind["kind"] is None for kind in dep["dep_kinds"]):
                    dep_pkg = by_id[dep["pkg"]]
                    dep_pid = spdx_id("Package", f"{dep_pkg['name']}-{dep_pkg['version']}")
                    relationships.add((pid, "DEPENDS_ON", dep_pid))
                    stack.append(dep["pkg"])
        root_pkg = by_id[root]
        return spdx_id("Package", f"{root_pkg['name']}-{root_pkg['version']}")

    spdx_files = []
    for path in files:
        content = open(os.path.join(args.rootfs, path.lstrip("/")), "rb").read()
        fid = spdx_id("File", path.lstrip("/"))
        spdx_files.append({
            "SPDXID": fid,
            "fileName": "." + path,
            # SPDX 2.3 requires SHA-1 for files; SHA-256 is the one to rely on.
            "checksums": [
                {"algorithm": "SHA1", "checksumValue": hashlib.sha1(content).hexdigest()},
                {"algorithm": "SHA256", "checksumValue": hashlib.sha256(content).hexdigest()},
            ],
            "licenseConcluded": "NOASSERTION",
            "copyrightText": "NOASSERTION",
        })
        relationships.add((image_id, "CONTAINS", fid))
        base = os.path.basename(path)
        if path == "/usr/local/bin/chatgate":
            crate = crate_closure(args.host_target, "chatgate")
        elif base.endswith(".wasm"):
            name = base[: -len(".wasm")].replace("_", "-")
            if name not in members:
                sys.exit(f"sbom: {path}: no workspace crate named `{name}`")
            crate = crate_closure(args.component_target, name)
        else:
            continue
        relationships.add((fid, "GENERATED_FROM", crate))

    image = {
        "SPDXID": image_id,
        "name": "chatgate-image",
        "versionInfo": args.version,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": True,
        "hasFiles": [f["SPDXID"] for f in spdx_files],
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "primaryPackagePurpose": "CONTAINER",
        "comment": f"OCI image of chatgate at revision {args.revision}",
        "packageVerificationCode": {
            "packageVerificationCodeValue": hashlib.sha1(
                "".join(sorted(hashlib.sha1(open(os.path.join(args.rootfs, p.lstrip("/")), "rb").read()).hexdigest() for p in files)).encode()
            ).hexdigest()
        },
    }
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    document = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"chatgate-image-{args.version}",
        "documentNamespace": "",
        "creationInfo": {
            "created": datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "creators": ["Tool: chatgate image/sbom.py"],
        },
        "packages": [image] + [packages[k] for k in sorted(packages)],
        "files": spdx_files,
        "relationships": [
            {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": image_id}
        ] + [
            {"spdxElementId": a, "relationshipType": r, "relatedSpdxElement": b}
            for a, r, b in sorted(relationships)
        ],
    }
    content = json.dumps(document, sort_keys=True).encode()
    document["documentNamespace"] = (
        f"https://spdx.org/spdxdocs/chatgate-{args.version}-{hashlib.sha256(content).hexdigest()}"
    )
    with open(args.out, "w") as f:
        json.dump(document, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
