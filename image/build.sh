#!/usr/bin/env bash
# `make image`: the OCI image of the gateway (image/Containerfile), built with buildah
# from Debian, daemonless, into storage of its own under target/image (removed after),
# and exported as
#   target/image/oci/                     an OCI image layout (index.json, blobs/sha256/…)
#   target/image/chatgate-<version>.oci.tar   the same layout as one tar (an OCI archive:
#                                         `buildah pull oci-archive:<file>` loads it)
#   target/image/sbom.spdx.json           the SBOM (image/sbom.py), also in the image at
#                                         /usr/share/doc/chatgate/sbom.spdx.json
#   target/image/spin/                    the Spin OCI artifact (what `spin registry push`
#                                         pushes, for SpinKube's SpinApp.spec.image) as an OCI
#                                         image layout, written by `chatgate registry layout`
#                                         (host/src/spin_oci.rs); push it with
#                                         `skopeo copy oci:target/image/spin:<version> docker://...`
#   target/image/chatgate-spin-<version>.oci.tar   that layout as one tar
# Inputs, as `make build` and the musl host build leave them:
#   target/x86_64-unknown-linux-musl/release/chatgate   the static host (it also writes the
#                                                       Spin artifact)
#   spin.toml and every component `source` it names (relative to the repository root)
# Reproducible: every timestamp (file times in the layer, the config's `created` and
# history) is SOURCE_DATE_EPOCH, by default the last commit's time, so the same inputs
# give the same digests.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${SOURCE_DATE_EPOCH:=$(git log -1 --format=%ct)}"
export SOURCE_DATE_EPOCH
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
revision=$(git rev-parse HEAD)
# An image of uncommitted changes is not the image of that commit: say so.
git diff --quiet HEAD -- 2>/dev/null || revision="$revision-dirty"
created=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
host_target=x86_64-unknown-linux-musl
host_bin=target/$host_target/release/chatgate
out=target/image
ctx=$out/context
rootfs=$ctx/rootfs

command -v buildah >/dev/null || { echo "image: buildah is missing: make test-deps (as root) installs it" >&2; exit 1; }
[ -x "$host_bin" ] || { echo "image: $host_bin is missing: make image-host builds it" >&2; exit 1; }
if file "$host_bin" 2>/dev/null | grep -q 'dynamically linked'; then
  echo "image: $host_bin is dynamically linked; a scratch image needs it static" >&2; exit 1
fi

rm -rf "$ctx" "$out/oci" "$out/spin" "$out"/chatgate-*.oci.tar "$out/sbom.spdx.json"
mkdir -p "$rootfs/tmp" "$rootfs/app"
chmod 1777 "$rootfs/tmp"
install -D -m 0555 "$host_bin" "$rootfs/usr/local/bin/chatgate"
install -m 0444 spin.toml "$rootfs/app/spin.toml"
# Every component source spin.toml names, at the same relative path under /app.
sources=$(python3 - <<'PY'
import sys, tomllib
manifest = tomllib.load(open("spin.toml", "rb"))
for name, component in sorted(manifest.get("component", {}).items()):
    source = component.get("source")
    if not isinstance(source, str):
        sys.exit(f"image: component `{name}`: only local file sources can be put in the image")
    if component.get("files"):
        sys.exit(f"image: component `{name}` mounts `files`, which image/build.sh does not copy yet")
    print(source)
PY
)
for source in $sources; do
  [ -f "$source" ] || { echo "image: $source (named in spin.toml) is missing: run make build" >&2; exit 1; }
  install -D -m 0444 "$source" "$rootfs/app/$source"
done
python3 image/sbom.py --rootfs "$rootfs" --host-target "$host_target" \
  --version "$version" --revision "$revision" --out "$out/sbom.spdx.json"
install -D -m 0444 "$out/sbom.spdx.json" "$rootfs/usr/share/doc/chatgate/sbom.spdx.json"
find "$rootfs" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

# Storage of its own (vfs: no overlay mounts needed), removed at the end.
storage=(--root "$PWD/$out/storage" --runroot "$PWD/$out/runroot" --storage-driver vfs)
cleanup() { buildah "${storage[@]}" rmi --all --force >/dev/null 2>&1 || true; rm -rf "$out/storage" "$out/runroot"; }
trap cleanup EXIT
tag=localhost/chatgate:$version
annotations=(
  "org.opencontainers.image.title=chatgate"
  "org.opencontainers.image.description=chatgate: the chatgate host serving spin.toml's WebAssembly components (telemetry, waf, auth, chat, retrieval, completion)"
  "org.opencontainers.image.version=$version"
  "org.opencontainers.image.revision=$revision"
  "org.opencontainers.image.created=$created"
  "org.opencontainers.image.licenses=$(sed -n 's/^license = "\(.*\)"$/\1/p' Cargo.toml | head -1)"
)
args=()
for a in "${annotations[@]}"; do args+=(--annotation "$a" --label "$a"); done
buildah "${storage[@]}" bud --quiet --format oci --timestamp "$SOURCE_DATE_EPOCH" \
  --identity-label=false "${args[@]}" -f image/Containerfile -t "$tag" "$ctx"
buildah "${storage[@]}" push --quiet "$tag" "oci:$out/oci:chatgate:$version"
# The archive is the layout as one tar, written here rather than by buildah's
# oci-archive transport, whose tar headers carry the time of writing.
archive() {
  find "$1" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
    -C "$1" -cf "$2" .
}
archive "$out/oci" "$out/chatgate-$version.oci.tar"
manifest_digest=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' "$out/oci/index.json")
echo "image: $out/oci (chatgate:$version, manifest $manifest_digest), $(du -sh "$out/chatgate-$version.oci.tar" | cut -f1) as $out/chatgate-$version.oci.tar"

# The Spin OCI artifact of the same spin.toml and components, for SpinKube. Its own
# repository when pushed (e.g. chatgate-spin), since it is not a container image.
"$host_bin" registry layout --manifest spin.toml --out "$out/spin" \
  --tag "$version" --created "$created" \
  --annotation "org.opencontainers.image.revision=$revision" \
  --annotation "org.opencontainers.image.licenses=$(sed -n 's/^license = "\(.*\)"$/\1/p' Cargo.toml | head -1)"
archive "$out/spin" "$out/chatgate-spin-$version.oci.tar"
