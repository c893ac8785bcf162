#!/usr/bin/env bash
# Build (or reuse the cached) kube-apiserver v1.20.2 from Debian bookworm's `kubernetes` source
# package, for the end-to-end tests. Prints the binary's path on the last line of stdout.
#
#   tests/e2e/build-apiserver.sh            # cache in ${PLX_E2E_CACHE:-~/.cache/plx-store-webhook-e2e}
#
# Facts this follows (verified on Debian bookworm, 2 cores): GOPATH-mode build with Debian's
# Go 1.19; the tarball lacks the generated OpenAPI file, so the vendored openapi-gen runs first;
# the vendored reflect2 1.0.1 is replaced by Debian's 1.0.2 (1.0.1 segfaults under Go 1.19).
set -euo pipefail

VERSION="1.20.5+really1.20.2-1.1+deb12u1"
K8S_VERSION="v1.20.2"
CACHE="${PLX_E2E_CACHE:-$HOME/.cache/plx-store-webhook-e2e}"
BIN="$CACHE/kube-apiserver-$K8S_VERSION"
log() { echo "build-apiserver: $*" >&2; }

if [ -x "$BIN" ]; then
  log "cached: $BIN"
  echo "$BIN"
  exit 0
fi

need=()
command -v go >/dev/null 2>&1 || need+=(golang-go)
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v dpkg-source >/dev/null 2>&1 || need+=(dpkg-dev)
[ -d /usr/share/gocode/src/github.com/modern-go/reflect2 ] || need+=(golang-github-modern-go-reflect2-dev)
if [ "${#need[@]}" -gt 0 ]; then
  log "installing ${need[*]}"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
fi

WORK="$CACHE/build"
rm -rf "$WORK"
mkdir -p "$WORK/apt/lists/partial" "$WORK/src"

# A private deb-src list for bookworm main, on the mirror this machine already uses: the
# machine's own apt configuration is left untouched.
mirror=$(
  { cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ {print $2}';
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
      | awk '/^deb / {for(i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) {print $i; break}}'; } \
  | awk '!/-security/ && /\/debian\/?$/' | head -n1
) || true
[ -n "$mirror" ] || { log "no Debian mirror found in /etc/apt"; exit 1; }
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
echo "deb-src [signed-by=$keyring] $mirror bookworm main" > "$WORK/apt/sources.list"
echo "deb-src [signed-by=$keyring] $mirror bookworm-updates main" >> "$WORK/apt/sources.list"
APT=(-o "Dir::Etc::SourceList=$WORK/apt/sources.list" -o "Dir::Etc::SourceParts=-" -o "Dir::State::Lists=$WORK/apt/lists")
log "fetching source package kubernetes=$VERSION"
apt-get "${APT[@]}" update -qq >&2
(cd "$WORK/src" && apt-get "${APT[@]}" source --download-only "kubernetes=$VERSION" >&2)
dsc=$(ls "$WORK"/src/*.dsc | head -n1)
(cd "$WORK/src" && dpkg-source --no-check -x "$dsc" tree >&2)

export GOPATH="$WORK/gopath" GO111MODULE=off GOTOOLCHAIN=local CGO_ENABLED=0 GOPROXY=off GOFLAGS= GOCACHE="$CACHE/gocache"
mkdir -p "$GOPATH/src/k8s.io"
ln -s "$WORK/src/tree" "$GOPATH/src/k8s.io/kubernetes"
cd "$GOPATH/src/k8s.io/kubernetes"

log "replacing vendored reflect2 with Debian's"
rm -f vendor/github.com/modern-go/reflect2/*.go vendor/github.com/modern-go/reflect2/*.s
for f in /usr/share/gocode/src/github.com/modern-go/reflect2/*.go /usr/share/gocode/src/github.com/modern-go/reflect2/*.s; do
  [ -e "$f" ] || continue
  case "$f" in *_test.go) continue ;; esac
  cp "$f" vendor/github.com/modern-go/reflect2/
done

log "generating pkg/generated/openapi"
go build -o "$WORK/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen
# As upstream's Makefile.generated_files: every non-vendor Go package carrying a
# +k8s:openapi-gen= tag in any file (staging packages under their vendor/ import paths),
# except code-generator and sample-apiserver.
pkgs=$(
  { grep -rl --include='*.go' -e '+k8s:openapi-gen=' pkg cmd plugin staging/src/k8s.io 2>/dev/null || true; } \
  | xargs -n1 dirname | sort -u \
  | grep -v -e '^staging/src/k8s.io/code-generator' -e '^staging/src/k8s.io/sample-apiserver' \
  | sed -e 's#^staging/src/#k8s.io/kubernetes/vendor/#' -e 's#^pkg/#k8s.io/kubernetes/pkg/#' \
        -e 's#^cmd/#k8s.io/kubernetes/cmd/#' -e 's#^plugin/#k8s.io/kubernetes/plugin/#' \
  | paste -sd, -
)
log "openapi-gen over $(echo "$pkgs" | tr ',' '\n' | wc -l) packages"
"$WORK/openapi-gen" -i "$pkgs" -p k8s.io/kubernetes/pkg/generated/openapi -O zz_generated.openapi \
  -h vendor/k8s.io/code-generator/hack/boilerplate.go.txt \
  -r "$WORK/violations.report" >&2
if ! diff -q <(sort "$WORK/violations.report") <(sort api/api-rules/violation_exceptions.list) >/dev/null; then
  log "openapi-gen's violation report differs from api/api-rules/violation_exceptions.list:"
  diff <(sort "$WORK/violations.report") <(sort api/api-rules/violation_exceptions.list) | head -20 >&2 || true
fi

log "building kube-apiserver (a few minutes on 2 cores)"
v=k8s.io/kubernetes/vendor/k8s.io
ld="-s -w"
for p in "$v/component-base/version" "$v/client-go/pkg/version"; do
  ld="$ld -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=20 -X $p.gitTreeState=clean"
done
go build -ldflags "$ld" -o "$WORK/kube-apiserver" ./cmd/kube-apiserver
mv "$WORK/kube-apiserver" "$BIN"
cd /
rm -rf "$WORK"
log "built $BIN"
echo "$BIN"
