#!/usr/bin/env bash
# Installs the Debian packages CollabHub needs, only those missing (apt-get update runs once, and
# only when something is missing). Usage: scripts/deps.sh [build|test]
set -euo pipefail
build_pkgs=(libev-dev libssl-dev libsqlite3-dev zlib1g-dev openssl)
# python3-pip, -setuptools, -wheel: test_sdk_python.py pip-installs the Python SDK offline; mypy checks its types.
# node-typescript (tsc), node-react*, node-csstype, node-prop-types: the JavaScript packages' type check and
# test_js_sdk.py's React test (react-test-renderer); @types/react needs csstype and prop-types.
# redis-server, openssl: the cluster tests (test_cluster_tls.py makes its certificates with openssl and starts
# redis-server with TLS; redis-tools' redis-cli joins test_redis_cluster.py's Redis Cluster).
# valgrind, curl: the opt-in callgrind budget (CALLGRIND_BUDGET=1 scripts/test.sh, loadtest/bench_callgrind.sh).
# strace: test_tls_socket_io.py sees which system calls carry the TLS records.
test_pkgs=(valgrind curl strace redis-server redis-tools prometheus python3 python3-websockets python3-pytest python3-jsonschema nodejs node-ws node-typescript node-react node-react-dom node-react-test-renderer node-csstype node-prop-types chromium chromium-driver python3-selenium openssl python3-pip python3-setuptools python3-wheel mypy)
pkgs=("${build_pkgs[@]}")
[ "${1:-build}" = test ] && pkgs+=("${test_pkgs[@]}")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The OpenAPI validator of Protocol/openapi.json (test_contract.py): Debian has none, so it comes from PyPI.
if [ "${1:-build}" = test ] && ! /usr/bin/python3 -c "import openapi_spec_validator" 2>/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO /usr/bin/python3 -m pip install -q --break-system-packages "openapi-spec-validator>=0.7,<1"
fi
