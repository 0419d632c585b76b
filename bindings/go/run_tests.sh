#!/usr/bin/env bash
# The Go binding's tests, against the INSTALLED library found only through
# pkg-config, as a Go user builds it:
#   - installs BUILD_DIR into a temporary prefix (cmake --install),
#   - gofmt, go vet and go test -race ./... in bindings/go (the package, the
#     chat example, the test client),
#   - the README's "Use from Go" snippet (between <!-- snippet:go:begin -->
#     and <!-- snippet:go:end -->) in a module of its own: go build, then run
#     it briefly (it echoes a message from a websockets client and stops on
#     SIGINT with exit 0), loading the installed libwsgate.so.0.
# Offline: no module outside the standard library, GOPROXY=off, GOFLAGS=-mod=mod.
# Writes nothing into the source tree: the install prefix is
# BUILD_DIR/go-binding-prefix, the build cache the user's Go cache (see
# GOCACHE below), the rest a temporary directory.
#
# usage: run_tests.sh SOURCE_DIR BUILD_DIR
# Set WSGATE_KEEP_TMP=1 to keep the temporary directory for inspection.
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 SOURCE_DIR BUILD_DIR" >&2
    exit 2
fi
src=$(cd "$1" && pwd)
build=$(cd "$2" && pwd)
cache=$build/CMakeCache.txt
[ -r "$cache" ] || { echo "go_binding: no CMakeCache.txt in $build" >&2; exit 2; }
command -v go > /dev/null || { echo "go_binding: no go on PATH (Debian: golang-go; scripts/deps.sh installs it)" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/wsg-go.XXXXXX")
pid=
cleanup() {
    [ -n "$pid" ] && kill -KILL "$pid" 2> /dev/null
    if [ "${WSGATE_KEEP_TMP:-0}" = 1 ]; then
        echo "go_binding: kept $tmp"
    else
        # The module cache is written read-only by go.
        chmod -R u+w "$tmp" 2> /dev/null || true
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

step() { echo "== $* ($(date +%T))"; }
die() {
    echo "FAIL: $*" >&2
    exit 1
}
cachevar() { sed -n "s/^$1:[A-Za-z_]*=//p" "$cache" | head -n 1; }

# ---------------------------------------------------------------- install
CMAKE=$(cachevar CMAKE_COMMAND)
libdir_rel=$(cachevar CMAKE_INSTALL_LIBDIR)
: "${CMAKE:=cmake}" "${libdir_rel:=lib}"
# A fixed prefix in the build tree, not a temporary one: the go build cache
# keeps a cgo package's linker flags (pkg-config's -L) with its objects, so a
# new prefix each run would link against a directory that is gone.
prefix=$build/go-binding-prefix
rm -rf "$prefix"
libdir=$prefix/$libdir_rel
step "install $build into $prefix"
"$CMAKE" --install "$build" --prefix "$prefix" > "$tmp/install.log" 2>&1 || { cat "$tmp/install.log" >&2; die "cmake --install failed"; }
real_lib=$(readlink -f "$libdir/libwsgate.so.0")

export PKG_CONFIG_PATH=$libdir/pkgconfig
export LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
[ "$(readlink -f "$(pkg-config --path wsgate)")" = "$(readlink -f "$libdir/pkgconfig/wsgate.pc")" ] ||
    die "pkg-config finds $(pkg-config --path wsgate), not the installed wsgate.pc"

# The build cache: WSGATE_GOCACHE, else the user's (content-addressed and
# safe to share, so CI runs in fresh clones on one machine find the standard
# library already built for -race: cold, that build takes minutes of CPU),
# else BUILD_DIR/go-cache. The prefix's -L in CGO_LDFLAGS is part of the
# cache key: a package cached for another prefix is rebuilt, not linked
# against that prefix's library.
gocache=${WSGATE_GOCACHE:-$(GOENV=off go env GOCACHE 2> /dev/null || true)}
case "$gocache" in
    /*) ;;
    *) gocache=$build/go-cache ;;
esac
export GOCACHE=$gocache GOPATH=$tmp/gopath GOMODCACHE=$tmp/gopath/pkg/mod
export GOFLAGS=-mod=mod GOPROXY=off GOWORK=off GOSUMDB=off GOENV=off CGO_ENABLED=1
export CGO_LDFLAGS="-L$libdir"
echo "GOCACHE=$GOCACHE"
go version

# What the tree holds before the run (ignored files too): compared at the end.
tree_state() { git -C "$src" status --porcelain --ignored -- bindings/go 2> /dev/null || true; }
before=$(tree_state)

# ---------------------------------------------------------------- package
cd "$src/bindings/go"
step "gofmt"
unformatted=$(gofmt -l .)
[ -z "$unformatted" ] || die "not gofmt-formatted: $unformatted (run gofmt -w bindings/go)"
# vet with the race detector's build flags: the standard library compiled
# for -race is then shared with go test -race (about 30 s less on a cold cache).
step "go vet -race ./..."
go vet -race ./...
step "go test -race ./..."
go test -race -count=1 ./...

# ---------------------------------------------------------------- README snippet
step "README snippet: build and run"
mkdir -p "$tmp/snippet"
sed -n '/<!-- snippet:go:begin -->/,/<!-- snippet:go:end -->/p' "$src/README.md" |
    sed '1d;$d' | sed '/^```/d' > "$tmp/snippet/main.go"
grep -q '^package main' "$tmp/snippet/main.go" || die "README.md has no Go snippet between <!-- snippet:go:begin --> and <!-- snippet:go:end -->"
grep -q '"listen.port": "9000"' "$tmp/snippet/main.go" || die "the README's Go snippet no longer sets listen.port 9000: update $0"
# Port 0 here, so it never collides with a real port 9000.
sed -i 's/"listen.port": "9000"/"listen.port": "0"/' "$tmp/snippet/main.go"
cat > "$tmp/snippet/go.mod" << MOD
module snippet

go 1.19

require wsgate v0.0.0

replace wsgate => $src/bindings/go
MOD
(cd "$tmp/snippet" && go build -o "$tmp/snippet/snippet" .)
resolved=$(ldd "$tmp/snippet/snippet" | sed -n 's/.*libwsgate\.so\.0 => \([^ ]*\).*/\1/p')
[ "$(readlink -f "$resolved")" = "$real_lib" ] || die "the snippet loads '$resolved', not the installed $real_lib"
"$tmp/snippet/snippet" 2> "$tmp/snippet.log" &
pid=$!
for _ in $(seq 100); do grep -q '"event":"listen"' "$tmp/snippet.log" && break; sleep 0.05; done
port=$(sed -n 's/.*"event":"listen".*"port":\([0-9]*\).*/\1/p' "$tmp/snippet.log" | head -n 1)
[ -n "$port" ] || { cat "$tmp/snippet.log" >&2; die "the snippet did not log its listen event"; }
/usr/bin/python3 - "$port" << 'PY' || die "no echo from the snippet"
import asyncio, sys, websockets
async def main():
    async with websockets.connect(f"ws://127.0.0.1:{sys.argv[1]}/") as ws:
        await ws.send("hello from the README")
        got = await asyncio.wait_for(ws.recv(), 10)
        assert got == "hello from the README", got
asyncio.run(main())
PY
kill -INT "$pid"
for _ in $(seq 100); do kill -0 "$pid" 2> /dev/null || break; sleep 0.05; done
kill -0 "$pid" 2> /dev/null && die "the snippet ignored SIGINT for 5 s"
rc=0
wait "$pid" || rc=$?
pid=
[ $rc -eq 0 ] || { cat "$tmp/snippet.log" >&2; die "the snippet exited $rc on SIGINT, want 0"; }
grep -q '"event":"stop"' "$tmp/snippet.log" || { cat "$tmp/snippet.log" >&2; die "the snippet logged no stop"; }

after=$(tree_state)
[ "$before" = "$after" ] || die "the run wrote into the source tree: $(diff <(echo "$before") <(echo "$after"))"
echo "go_binding ok"
