// Real BMCs for tests: one Debian `ipmi_sim` (OpenIPMI's IPMI LAN simulator) per node on a
// loopback UDP port, with one admin user. ipmi_sim has no machine behind it, so its chassis
// control program is a small script that keeps the node's power state in a file and logs every
// request it gets (`set power 0`, `set power 1`, `set reset 1`, `set boot pxe`): that log is
// what "the simulator saw a power cycle" means in a test.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { createSocket } from 'node:dgram';
import path from 'node:path';

export interface SimBmc {
  readonly node: string;
  readonly address: string;
  readonly port: number;
  readonly user: string;
  /** What the chassis control program was asked, one request per line (`set power 1`). */
  requests(): Promise<string[]>;
  /** The simulated machine's power: '1' on, '0' off. */
  power(): Promise<'on' | 'off'>;
}

export interface SimBmcs {
  readonly bmcs: readonly SimBmc[];
  stop(): Promise<void>;
}

const IPMI_SIM = '/usr/bin/ipmi_sim';

/** A UDP port free on 127.0.0.1 right now (ipmi_sim listens on UDP). */
async function freeUdpPort(): Promise<number> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve, reject) => socket.bind(0, '127.0.0.1', () => resolve()).once('error', reject));
  const { port } = socket.address();
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

const CHASSIS = `#!/bin/sh
# ipmi_sim chassis control: <mc> get|set|check <name> [value]...
dir=$(dirname "$0")
mc=$1; op=$2; shift 2
echo "$op $*" >> "$dir/requests.log"
case $op in
  get)
    for p in "$@"; do
      case $p in
        power) echo "power:$(cat "$dir/power" 2>/dev/null || echo 0)" ;;
        boot) echo "boot:$(cat "$dir/boot" 2>/dev/null || echo default)" ;;
      esac
    done ;;
  set)
    while [ "$#" -ge 2 ]; do
      case $1 in
        power) echo "$2" > "$dir/power" ;;
        boot) echo "$2" > "$dir/boot" ;;
      esac
      shift 2
    done ;;
esac
exit 0
`;

export async function startSimBmcs(options: { dir: string; nodes: readonly string[]; user: string; password: string; power?: 'on' | 'off' }): Promise<SimBmcs> {
  if (!existsSync(IPMI_SIM)) throw new Error(`${IPMI_SIM} is missing (Debian package openipmi; scripts/test installs it)`);
  const children: ChildProcess[] = [];
  const bmcs: SimBmc[] = [];
  for (const node of options.nodes) {
    const dir = path.join(options.dir, node);
    await mkdir(path.join(dir, 'state'), { recursive: true });
    const port = await freeUdpPort();
    const chassis = path.join(dir, 'chassis');
    await writeFile(chassis, CHASSIS);
    await chmod(chassis, 0o755);
    await writeFile(path.join(dir, 'power'), options.power === 'on' ? '1\n' : '0\n');
    // The config file is read by ipmi_sim only: the password is test data, not a Castellan secret file.
    await writeFile(
      path.join(dir, 'lan.conf'),
      [
        `name "${node}"`,
        'set_working_mc 0x20',
        '  startlan 1',
        `    addr 127.0.0.1 ${port}`,
        '    priv_limit admin',
        '    allowed_auths_callback md5',
        '    allowed_auths_user md5',
        '    allowed_auths_operator md5',
        '    allowed_auths_admin md5',
        '    guid a123456789abcdefa123456789abcdef',
        '  endlan',
        `  chassis_control "${chassis} 0x20"`,
        `  user 2 true "${options.user}" "${options.password}" admin 10 md5`,
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    await writeFile(path.join(dir, 'bmc.emu'), ['mc_setbmc 0x20', 'mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr', 'sel_enable 0x20 1000 0x0a', 'mc_enable 0x20', ''].join('\n'));
    const child = spawn('/usr/bin/setpriv', ['--pdeathsig', 'SIGKILL', '--', IPMI_SIM, '-c', path.join(dir, 'lan.conf'), '-f', path.join(dir, 'bmc.emu'), '-s', path.join(dir, 'state'), '-n'], { cwd: dir, stdio: 'ignore' });
    children.push(child);
    bmcs.push({
      node,
      address: '127.0.0.1',
      port,
      user: options.user,
      requests: async () => (await readFile(path.join(dir, 'requests.log'), 'utf8').catch(() => '')).split('\n').filter(Boolean),
      power: async () => ((await readFile(path.join(dir, 'power'), 'utf8')).trim() === '1' ? 'on' : 'off'),
    });
  }
  // ipmi_sim binds at once; give it a moment to read its emu file before the first session.
  await new Promise((r) => setTimeout(r, 500));
  return {
    bmcs,
    async stop() {
      await Promise.all(
        children.map(
          (c) =>
            new Promise<void>((resolve) => {
              if (c.exitCode !== null || c.signalCode !== null) return resolve();
              c.once('exit', () => resolve());
              c.kill('SIGKILL');
            }),
        ),
      );
    },
  };
}
