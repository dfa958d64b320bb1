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

# npm packages as locked; skipped when node_modules already matches the lockfile.
# `npm ci` refuses a lockfile that lacks entries for other platforms' optional packages
# (msgpackr-extract for darwin/win32/linux-arm, via bullmq): a registry mirror without them
# can never write such a lockfile. `npm install` then installs the same locked versions,
# skipping the optional packages it cannot fetch.
ensure_node_modules() {
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    if ! npm ci --no-audit --no-fund; then
      echo "castellan: npm ci refused the lockfile (optional packages of other platforms missing from this registry); installing the locked versions with npm install" >&2
      npm install --no-audit --no-fund
    fi
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
