#!/usr/bin/env bash
# System packages the tests read, installed by `make test`:
#   modsecurity-crs                OWASP CRS 3.3 (/usr/share/modsecurity-crs), loaded
#                                  unmodified by crates/seclang/tests/crs.rs.
#   nginx-light,                   the reference WAF (nginx + ModSecurity v3 + the same CRS)
#   libnginx-mod-http-modsecurity  that tests/tests/e2e/waf_reference.rs compares chatgate-seclang
#                                  with, and tests/benches/waf.rs measures.
#   buildah, musl-tools            `make image`: buildah builds the OCI image (image/build.sh);
#                                  musl-gcc compiles the C parts of the host (SQLite, ring,
#                                  zstd, wasmtime's helpers) for the static musl host.
#   skopeo                         tests/tests/e2e/image.rs: reads and copies the Spin OCI
#                                  artifact `make image` writes (target/image/spin), as
#                                  pushing it to a registry would.
#   iproute2, curl, procps         tests/tests/e2e/netns.rs: `ip netns` and veth pairs, the
#                                  client in its namespace, `sysctl` (procps; also `kill`,
#                                  which the image and cli tests send SIGTERM with).
#   openssl                        tests/tests/e2e/image.rs: the certificate of the HTTPS test
#                                  (curl is its client).
#   chromium                       the browser tests/tests/e2e/ui.rs drives with Playwright
#                                  (tests/ui: `make sdk` installs Playwright, not a browser).
#   python3-venv, nodejs, npm      only when `python3 -m venv` or `npm` is missing: the
#                                  official OpenAI SDKs of tests/tests/e2e/sdk.rs (`make sdk`).
# Versions are Debian 12's (not pinned: a pin would break on the next security update;
# the tests print the versions they ran against).
# cargo-deny, which `make lint` needs too, is .ci/install-cargo-deny.sh's (a compile, run
# beside the build, while these packages download).
# Idempotent: does nothing when they are installed. Installs only as root on a system with
# apt-get; elsewhere it says what is missing, and the tests that need it fail saying so.
set -euo pipefail
packages=(modsecurity-crs nginx-light libnginx-mod-http-modsecurity chromium buildah musl-tools skopeo iproute2 curl procps openssl)
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
# Checked by command, not by package: python3 and npm may come from elsewhere (pyenv,
# NodeSource's nodejs, which bundles npm).
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
command -v npm >/dev/null || missing+=(nodejs npm)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "test-deps: missing ${missing[*]}; install it (apt-get install --no-install-recommends ${missing[*]}) or its tests fail" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# Try the cached package lists first; refresh them only if that fails.
apt-get install -y -q --no-install-recommends "${missing[@]}" \
  || { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; }
