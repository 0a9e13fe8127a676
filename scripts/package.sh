#!/usr/bin/env bash
# Builds the release tarball: dist/collabhub-VERSION-linux-ARCH.tar.gz holding the collabhub binary (the
# pages compiled in, the Swift runtime linked statically), LICENSE, an example configuration file and a
# hardened systemd unit. On the target machine it needs only Debian's libev4, libssl3, libsqlite3-0
# and zlib1g.
#   CONFIG=debug STATIC=0 scripts/package.sh   # a quick package of the debug build (what the tests use)
set -euo pipefail
cd "$(dirname "$0")/.."
config=${CONFIG:-release}
out=${OUT:-dist}
scripts/deps.sh build
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
[ -z "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] || commit="$commit-dirty"
# The commit goes in with the pages (Build.commit), and only for this build.
printf '{"commit": "%s"}\n' "$commit" > Sources/Server/Web/build.json
trap 'rm -f Sources/Server/Web/build.json' EXIT
flags=(-c "$config" --product collabhub)
[ "${STATIC:-1}" = 1 ] && flags+=(--static-swift-stdlib)
swift build "${flags[@]}" 2>&1 | grep -aE "error|warning: |Compiling|Build complete" | grep -v "^\[" || true
bin=$(swift build "${flags[@]}" --show-bin-path)/collabhub
[ -x "$bin" ] || { echo "package: no binary at $bin" >&2; exit 1; }
version=$("$bin" version | awk '{print $2}')
name="collabhub-$version-linux-$(uname -m)"
stage=$(mktemp -d)
mkdir -p "$stage/$name" "$out"
cp "$bin" LICENSE scripts/deploy/collabhub.service scripts/deploy/collabhub.example.json "$stage/$name/"
strip "$stage/$name/collabhub" 2>/dev/null || true
tar -C "$stage" -czf "$out/$name.tar.gz" "$name"
rm -rf "$stage"
echo "$out/$name.tar.gz"
