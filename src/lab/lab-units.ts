// Lab nodes share this machine's init, so `systemctl` and `journalctl` on them would act on
// the host (or fail: no systemd in a container). `castellan up` gives each lab node its own
// small systemd instead: two POSIX sh programs first on the node's PATH that keep unit state
// and a journal in the node's directory and print what the real programs print for the
// invocations Castellan's tools make (`systemctl show --property=… -- UNIT`, `restart`,
// `reload`, `start`, `stop`, `is-active`; `journalctl --unit=… --lines=… --output=short-iso`).
// So the quick start can show service_status, service_restart and journal working.
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface LabUnit {
  readonly name: string;
  readonly description: string;
  /** `active` (running) or `failed`: one failed unit shows how problems read. */
  readonly state: 'active' | 'failed';
}

export const LAB_UNITS: readonly LabUnit[] = [
  { name: 'ssh.service', description: 'OpenBSD Secure Shell server', state: 'active' },
  { name: 'cron.service', description: 'Regular background program processing daemon', state: 'active' },
  { name: 'nginx.service', description: 'A high performance web server and a reverse proxy server', state: 'active' },
  { name: 'backup.service', description: 'Nightly backup to the NAS', state: 'failed' },
];

// State: NODE/units/<unit> (key=value lines as `systemctl show` prints them), journal:
// NODE/journal/<unit>.log (short-iso lines). NODE is the bin dir's parent. The scripts are
// String.raw templates, so shell parameter expansions are written `\${…}` and unescaped here.
const shell = (text: string): string => text.replaceAll('\\${', '${');

const SYSTEMCTL = shell(String.raw`#!/bin/sh
# Castellan lab stand-in for systemctl (src/lab/lab-units.ts): unit state lives in this node's directory.
set -u
node_dir=$(cd "$(dirname "$0")/.." && pwd)
units="$node_dir/units"
journal="$node_dir/journal"
host=$(cat "$node_dir/name" 2>/dev/null || hostname)
now_show() { date -u '+%a %Y-%m-%d %H:%M:%S UTC'; }
now_iso() { date -u '+%Y-%m-%dT%H:%M:%S+0000'; }
unit_id() { case "$1" in *.*) printf '%s' "$1" ;; *) printf '%s.service' "$1" ;; esac; }
prop() { sed -n "s/^$2=//p" "$units/$1" | head -n 1; }
set_props() { # unit key=value...
  u="$1"; shift
  tmp="$units/.$u.$$"
  cp "$units/$u" "$tmp"
  for kv in "$@"; do
    k=\${kv%%=*}
    grep -v "^$k=" "$tmp" > "$tmp.x"; mv "$tmp.x" "$tmp"
    printf '%s\n' "$kv" >> "$tmp"
  done
  mv "$tmp" "$units/$u"
}
log() { # unit process message
  mkdir -p "$journal"
  printf '%s %s %s: %s\n' "$(now_iso)" "$host" "$2" "$3" >> "$journal/$1.log"
}
verb=""; props=""; unit=""
for arg in "$@"; do
  case "$arg" in
    --property=*) props=\${arg#--property=} ;;
    --) ;;
    -*) ;;
    *) if [ -z "$verb" ]; then verb="$arg"; elif [ -z "$unit" ]; then unit=$(unit_id "$arg"); fi ;;
  esac
done
[ -n "$verb" ] || { echo "systemctl: this lab stand-in needs a verb (show, restart, reload, start, stop, is-active)" >&2; exit 1; }
[ -n "$unit" ] || { echo "Too few arguments." >&2; exit 1; }
if [ ! -f "$units/$unit" ]; then
  case "$verb" in
    show)
      for p in $(printf '%s' "\${props:-Id,LoadState,ActiveState,SubState}" | tr ',' ' '); do
        case "$p" in
          Id) echo "Id=$unit" ;; LoadState) echo "LoadState=not-found" ;; ActiveState) echo "ActiveState=inactive" ;;
          SubState) echo "SubState=dead" ;; MainPID|NRestarts) echo "$p=0" ;; *) echo "$p=" ;;
        esac
      done
      exit 0 ;;
    is-active) echo inactive; exit 4 ;;
    *) echo "Failed to $verb $unit: Unit $unit not found." >&2; exit 5 ;;
  esac
fi
desc=$(prop "$unit" Description)
proc=\${unit%.service}
case "$verb" in
  show)
    for p in $(printf '%s' "\${props:-Id,Description,LoadState,ActiveState,SubState,UnitFileState,ActiveEnterTimestamp,StateChangeTimestamp,MainPID,NRestarts}" | tr ',' ' '); do
      if [ "$p" = Id ]; then echo "Id=$unit"; else echo "$p=$(prop "$unit" "$p")"; fi
    done ;;
  is-active)
    state=$(prop "$unit" ActiveState); echo "$state"; [ "$state" = active ] ;;
  restart|start)
    if [ "$verb" = restart ] && [ "$(prop "$unit" ActiveState)" = active ]; then
      log "$unit" systemd[1] "Stopping $desc..."
      log "$unit" systemd[1] "$unit: Deactivated successfully."
      log "$unit" systemd[1] "Stopped $desc."
    fi
    log "$unit" systemd[1] "Starting $desc..."
    pid=$(( ($$ % 30000) + 1000 ))
    set_props "$unit" ActiveState=active SubState=running "ActiveEnterTimestamp=$(now_show)" "StateChangeTimestamp=$(now_show)" "MainPID=$pid"
    log "$unit" "$proc[$pid]" "started (lab stand-in)"
    log "$unit" systemd[1] "Started $desc." ;;
  reload)
    [ "$(prop "$unit" ActiveState)" = active ] || { echo "Job for $unit failed: the unit is not active." >&2; exit 1; }
    log "$unit" systemd[1] "Reloading $desc..."
    log "$unit" systemd[1] "Reloaded $desc." ;;
  stop)
    log "$unit" systemd[1] "Stopping $desc..."
    set_props "$unit" ActiveState=inactive SubState=dead "StateChangeTimestamp=$(now_show)" MainPID=0
    log "$unit" systemd[1] "Stopped $desc." ;;
  *) echo "systemctl: the lab stand-in does not do '$verb'" >&2; exit 1 ;;
esac
`);

const JOURNALCTL = shell(String.raw`#!/bin/sh
# Castellan lab stand-in for journalctl (src/lab/lab-units.ts): one log file per unit in this node's directory.
set -u
node_dir=$(cd "$(dirname "$0")/.." && pwd)
unit=""; lines=10
for arg in "$@"; do
  case "$arg" in
    --unit=*) unit=\${arg#--unit=}; case "$unit" in *.*) ;; *) unit="$unit.service" ;; esac ;;
    --lines=*) lines=\${arg#--lines=} ;;
  esac
done
file="$node_dir/journal/$unit.log"
if [ -z "$unit" ] || [ ! -s "$file" ]; then echo "-- No entries --"; exit 0; fi
tail -n "$lines" "$file"
`);

function iso(at: Date): string {
  return `${at.toISOString().slice(0, 19)}+0000`;
}

function systemdTime(at: Date): string {
  const day = at.toUTCString().slice(0, 3);
  return `${day} ${at.toISOString().slice(0, 10)} ${at.toISOString().slice(11, 19)} UTC`;
}

/** Install the stand-ins in a node's bin dir and give it LAB_UNITS, booted at `bootedAt`. */
export async function installLabUnits(nodeDir: string, nodeName: string, bootedAt = new Date()): Promise<void> {
  await mkdir(join(nodeDir, 'bin'), { recursive: true });
  await mkdir(join(nodeDir, 'units'), { recursive: true });
  await mkdir(join(nodeDir, 'journal'), { recursive: true });
  await writeFile(join(nodeDir, 'name'), `${nodeName}\n`);
  for (const [name, text] of [['systemctl', SYSTEMCTL], ['journalctl', JOURNALCTL]] as const) {
    await writeFile(join(nodeDir, 'bin', name), text);
    await chmod(join(nodeDir, 'bin', name), 0o755);
  }
  let pid = 400;
  for (const unit of LAB_UNITS) {
    pid += 37;
    const active = unit.state === 'active';
    const props = [
      `Description=${unit.description}`,
      'LoadState=loaded',
      `ActiveState=${unit.state}`,
      `SubState=${active ? 'running' : 'failed'}`,
      'UnitFileState=enabled',
      `ActiveEnterTimestamp=${active ? systemdTime(bootedAt) : ''}`,
      `StateChangeTimestamp=${systemdTime(bootedAt)}`,
      `MainPID=${active ? pid : 0}`,
      'NRestarts=0',
    ];
    await writeFile(join(nodeDir, 'units', unit.name), `${props.join('\n')}\n`);
    const proc = unit.name.replace(/\.service$/, '');
    const log = active
      ? [`systemd[1]: Starting ${unit.description}...`, `${proc}[${pid}]: started (lab stand-in)`, `systemd[1]: Started ${unit.description}.`]
      : [`systemd[1]: Starting ${unit.description}...`, `${proc}[${pid}]: rsync: connection to nas.lab.invalid failed: No route to host`, `systemd[1]: ${unit.name}: Main process exited, code=exited, status=1/FAILURE`, `systemd[1]: ${unit.name}: Failed with result 'exit-code'.`, `systemd[1]: Failed to start ${unit.description}.`];
    await writeFile(join(nodeDir, 'journal', `${unit.name}.log`), log.map((l) => `${iso(bootedAt)} ${nodeName} ${l}\n`).join(''));
  }
}
