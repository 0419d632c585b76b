#!/usr/bin/env bash
# The first hour of a new user, as written in the README: clone the repository
# into an empty folder with nothing beside it, install as the README says
# (into /usr/local, as root), build the C quick start with pkg-config and with
# CMake's find_package, run it, talk to it, stop it with SIGTERM; install the
# Python binding as python/README.md says and run its first example.
#
# It runs in private mount and network namespaces: /usr/local and /etc are
# overlays (the install, and ldconfig's cache, vanish afterwards) and the
# servers' fixed ports live on a private loopback. Needs root (as the README's
# install command does) and unshare(1).
#
# What is tested is the committed HEAD of SOURCE_DIR (a clone), not
# uncommitted changes.
#
# usage: fresh_clone_test.sh SOURCE_DIR
set -euo pipefail
src=$(cd "$1" && pwd)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
py=/usr/bin/python3

if [ "${WSG_FRESH_CLONE_INSIDE:-}" != 1 ]; then
  [ "$(id -u)" -eq 0 ] || { echo "fresh_clone: needs root (the README installs into /usr/local)" >&2; exit 1; }
  command -v unshare > /dev/null || { echo "fresh_clone: needs unshare (util-linux)" >&2; exit 1; }
  [ -z "$(git -C "$src" status --porcelain --untracked-files=no)" ] ||
    echo "fresh_clone: note: uncommitted changes in $src are not part of this test (it clones HEAD)" >&2
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/wsg-fresh.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  export WSG_FRESH_CLONE_INSIDE=1 WSG_FRESH_TMP=$tmp
  exec unshare --mount --net --fork "$0" "$src"
fi

tmp=$WSG_FRESH_TMP
step() { echo "== $*"; }
die() { echo "FAIL: $*" >&2; exit 1; }

# ---- the private machine: loopback up, /usr/local and /etc as overlays
ip link set lo up
mount --make-rprivate /
for d in usr/local etc; do
  name=${d//\//_}
  mkdir -p "$tmp/ov-$name/upper" "$tmp/ov-$name/work"
  mount -t overlay overlay -o "lowerdir=/$d,upperdir=$tmp/ov-$name/upper,workdir=$tmp/ov-$name/work" "/$d"
done
[ -z "$(ls /usr/local/lib/libwsgate* 2>/dev/null)" ] || die "/usr/local already holds a libwsgate"

# ---- a clone in an empty folder, nothing beside it
mkdir "$tmp/empty"
git clone -q "$src" "$tmp/empty/wsgate"
cd "$tmp/empty/wsgate"
[ "$(ls -A "$tmp/empty")" = wsgate ] || die "the clone's folder holds more than the clone"

# The code block after a marker line '<!-- example:NAME -->' (or
# '<!-- example: NAME -->') in FILE.
block() {
  sed -n "/<!-- example: \?$2 -->/,/^\`\`\`\$/p" "$1" | sed '1,2d;$d'
}

step "README install block, as written"
install_cmds=$(block README.md install)
[ -n "$install_cmds" ] || die "README.md has no install block (<!-- example:install -->)"
echo "$install_cmds"
bash -euo pipefail -c "$install_cmds" > "$tmp/install.log" 2>&1 || { tail -n 40 "$tmp/install.log"; die "install failed"; }
grep -q "Ran ldconfig" "$tmp/install.log" || { tail -n 20 "$tmp/install.log"; die "the install did not refresh the linker cache"; }
for f in /usr/local/include/wsgate/wsgate.h /usr/local/bin/wsgate-echo /usr/local/bin/wsgate-chat /usr/local/bin/wsgate-bench; do
  [ -e "$f" ] || die "$f not installed"
done

# Runs ./quick (listening on 9000 per the quick start), checks an echo and a
# graceful SIGTERM: the client gets 1001, the process exits 0.
check_quick_start() {
  local bin=$1
  "$bin" > "$tmp/quick.out" 2> "$tmp/quick.err" &
  local pid=$!
  "$py" "$here/fresh_clone_client.py" 9000 "$pid" || { cat "$tmp/quick.err"; kill -9 "$pid" 2>/dev/null; die "$bin: echo or graceful stop failed"; }
  local rc=0
  wait "$pid" || rc=$?
  [ "$rc" -eq 0 ] || { cat "$tmp/quick.err"; die "$bin exited $rc after SIGTERM (want 0)"; }
}

step "C quick start, built with pkg-config as the README writes"
mkdir "$tmp/quick" && cd "$tmp/quick"
block "$tmp/empty/wsgate/README.md" quickstart > quick.c
[ -s quick.c ] || die "README.md has no quick start (<!-- example:quickstart -->)"
build_cmd=$(block "$tmp/empty/wsgate/README.md" quickstart-build)
[ -n "$build_cmd" ] || die "README.md has no quick-start build line (<!-- example:quickstart-build -->)"
echo "$build_cmd"
bash -euo pipefail -c "$build_cmd" || die "the quick start does not build as written"
check_quick_start ./quick

step "C quick start, built with CMake's find_package as the README writes"
mkdir "$tmp/quick-cmake" && cd "$tmp/quick-cmake"
cp "$tmp/quick/quick.c" .
block "$tmp/empty/wsgate/README.md" cmake-consumer > CMakeLists.txt
[ -s CMakeLists.txt ] || die "README.md has no CMake consumer (<!-- example:cmake-consumer -->)"
{ cmake -S . -B build && cmake --build build; } > "$tmp/cmake-consumer.log" 2>&1 ||
  { cat "$tmp/cmake-consumer.log"; die "the CMake consumer does not build as written"; }
check_quick_start ./build/quick

step "Python binding, installed as python/README.md writes"
cd "$tmp/empty/wsgate"
py_cmds=$(block python/README.md python-install)
[ -n "$py_cmds" ] || die "python/README.md has no install block (<!-- example:python-install -->)"
echo "$py_cmds"
bash -euo pipefail -c "$py_cmds" > "$tmp/pip.log" 2>&1 || { tail -n 40 "$tmp/pip.log"; die "pip install failed"; }
leftovers=$(git status --porcelain --ignored -- python)
[ -z "$leftovers" ] || die "pip install left files in the source tree: $leftovers"
venv_python=$(sed -n 's|^\([^ ]*\)/bin/pip install.*|\1/bin/python|p' <<< "$py_cmds" | head -n 1)
case "$venv_python" in /*) ;; *) venv_python="$PWD/$venv_python" ;; esac  # relative to the clone
[ -x "$venv_python" ] || die "cannot find the venv's python from the install block"

step "a second install through pkg-config links the installed library, not a stale build"
"$py" -m venv --system-site-packages "$tmp/venv-pc"
WSGATE_PKG_CONFIG=1 "$tmp/venv-pc/bin/pip" install -q --no-build-isolation --no-index ./python > "$tmp/pip-pc.log" 2>&1 ||
  { tail -n 40 "$tmp/pip-pc.log"; die "pip install with WSGATE_PKG_CONFIG=1 failed"; }
core=$("$tmp/venv-pc/bin/python" -c 'import wsgate._core as c; print(c.__file__)')
linked=$(ldd "$core" | sed -n 's/.*libwsgate.so.0 => \([^ ]*\).*/\1/p')
# (wsgate.pc is relocatable: the path may read /usr/local/lib/pkgconfig/../)
[ -n "$linked" ] && [ "$(readlink -f "$linked")" = "$(readlink -f /usr/local/lib/libwsgate.so.0)" ] ||
  die "_core links '$linked', want /usr/local/lib/libwsgate.so.0"
[ -z "$(ls "$(dirname "$core")"/libwsgate.so* 2>/dev/null)" ] || die "a library was bundled although pkg-config was asked"

step "Python quick start (python/README.md's first example) on port 9000"
block python/README.md broadcast > "$tmp/quick.py"
[ -s "$tmp/quick.py" ] || die "python/README.md has no 'broadcast' example"
cd "$tmp"
PORT=9000 "$venv_python" "$tmp/quick.py" > "$tmp/quick.out" 2> "$tmp/quick.err" &
pid=$!
"$py" "$here/fresh_clone_client.py" 9000 "$pid" || { cat "$tmp/quick.err"; kill -9 "$pid" 2>/dev/null; die "Python quick start: echo or graceful stop failed"; }
rc=0
wait "$pid" || rc=$?
[ "$rc" -eq 0 ] || { cat "$tmp/quick.err"; die "the Python quick start exited $rc after SIGTERM (want 0)"; }

echo "fresh clone: install, C quick start (pkg-config and CMake), Python install and quick start all work as written"
