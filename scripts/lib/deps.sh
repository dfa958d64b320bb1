# Shared by scripts/up, scripts/test and the benchmarks: install what is missing, nothing more.
# Debian packages come from apt (root, or sudo when available); npm packages from the lockfile.

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else
    echo "castellan: need root to run: $*" >&2
    echo "castellan: run this script as root, or install those packages first" >&2
    return 1
  fi
}

# ensure_packages BINARY:PACKAGE ...  installs PACKAGE when BINARY is missing.
ensure_packages() {
  local missing=()
  local pair bin pkg
  for pair in "$@"; do
    bin="${pair%%:*}"; pkg="${pair#*:}"
    if [ ! -x "$bin" ] && ! command -v "$bin" >/dev/null 2>&1; then missing+=("$pkg"); fi
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "castellan: installing Debian packages: ${missing[*]}" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# npm packages exactly as locked, quietly (errors only), leaving the tree as it was: `npm ci`
# never rewrites package-lock.json. Skipped when node_modules already matches the lockfile.
ensure_node_modules() {
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "castellan: installing npm packages from package-lock.json" >&2
    npm ci --no-audit --no-fund --loglevel=error >/dev/null
  fi
}

# Put `castellan` on PATH (like `npm link`, without npm re-installing anything): a symlink in
# npm's global bin directory to this checkout's launcher. Skipped when it already points here;
# a hint instead when that directory is not writable.
link_cli() {
  local here bindir current
  here="$(pwd -P)/bin/castellan.js"
  bindir="$(npm prefix -g 2>/dev/null)/bin"
  current="$(readlink -f "$(command -v castellan 2>/dev/null || true)" 2>/dev/null || true)"
  [ "$current" = "$here" ] && return 0
  if [ -d "$bindir" ] && [ -w "$bindir" ] && ln -sfn "$here" "$bindir/castellan" 2>/dev/null; then
    echo "castellan: linked $bindir/castellan -> $here" >&2
  else
    echo "castellan: could not link the command into $bindir; use $here, or: sudo ln -s $here /usr/local/bin/castellan" >&2
  fi
}

CASTELLAN_RUNTIME_PACKAGES=(
  /usr/sbin/sshd:openssh-server
  /usr/bin/ssh-keygen:openssh-client
  /usr/bin/redis-server:redis-server
  /usr/bin/setsid:util-linux
  /usr/bin/timeout:coreutils
  /usr/bin/pgrep:procps
  /usr/bin/setpriv:util-linux
  /usr/bin/python3:python3
)
