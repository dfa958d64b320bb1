// A real WireGuard mesh for tests: every node is a network namespace with its own mount
// namespace (so each can have its own wg0…, whose UAPI sockets live in /run/wireguard), joined
// to the test's root namespace by a bridge that carries both SSH and the WireGuard underlay.
// Each plane of each node is a Debian wireguard-go process (userspace; the kernel module is not
// needed, /dev/net/tun is) configured with the real `wg` and `ip`. The lab's sshd for a node runs
// inside that node's namespaces, so Castellan's commands there are the real wg and ping.
//
// Needs root, `ip netns`, /dev/net/tun, wireguard-go and wg. meshPrerequisites() says what is
// missing, so a test can fail with that sentence instead of passing silently.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface MeshPlane {
  readonly name: string; // wg0
  readonly port: number; // 51820
  /** First two octets of the plane's /16: node i is <net>.0.<i+1>. */
  readonly net: string;
}

export interface MeshNodeNet {
  readonly name: string;
  readonly netns: string;
  /** Underlay (and SSH) address on the bridge. */
  readonly address: string;
  /** argv prefix that runs a program inside this node's namespaces. */
  readonly enter: string[];
  /** Private key file and public key per plane. */
  readonly keys: ReadonlyMap<string, { readonly privateKeyFile: string; readonly publicKey: string }>;
}

export interface WgMesh {
  readonly nodes: readonly MeshNodeNet[];
  readonly planes: readonly MeshPlane[];
  /** Host vars for the inventory: wireguard, wireguard_planes, wireguard_endpoint_host. */
  inventoryVars(): Record<string, Record<string, unknown>>;
  /** Run argv inside a node's namespaces. */
  exec(node: string, argv: readonly string[]): Promise<string>;
  /** Start (and configure) the wireguard-go of these planes on a node. */
  startPlanes(node: string, planes?: readonly string[]): Promise<void>;
  /** Stop a node's wireguard-go processes: its interfaces vanish, its peers stop answering. */
  stopPlanes(node: string, planes?: readonly string[]): Promise<void>;
  /** Until every running plane of these nodes has a handshake with each of its running peers newer than `after` (epoch s). */
  waitHandshakes(nodes: readonly string[], after: number, timeoutMs?: number, except?: (node: string, plane: string, peer: string) => boolean): Promise<void>;
  /**
   * Remove and re-add a node's peer on a plane: its session is dropped and the next keepalive
   * shakes hands again. Tests use it to give live peers fresh handshakes at once (WireGuard
   * would re-key them by itself only after two minutes).
   */
  readdPeer(node: string, plane: string, peer: string): Promise<void>;
  /** Replace `peer`'s key on `node`'s plane with another key (a misconfigured peer). */
  replacePeerKey(node: string, plane: string, peer: string, publicKey: string): Promise<void>;
  down(): Promise<void>;
}

const IP = '/usr/sbin/ip';
const WG = '/usr/bin/wg';
const WIREGUARD_GO = '/usr/bin/wireguard-go';

/** What this machine lacks for a real mesh, or null when it has everything. */
export async function meshPrerequisites(): Promise<string | null> {
  if (process.getuid?.() !== 0) return 'the WireGuard mesh test needs root (network namespaces, tun devices)';
  for (const [file, pkg] of [[IP, 'iproute2'], [WG, 'wireguard-tools'], [WIREGUARD_GO, 'wireguard-go'], ['/usr/bin/nsenter', 'util-linux'], ['/usr/bin/ping', 'iputils-ping']] as const) {
    if (!existsSync(file)) return `${file} is missing (Debian package ${pkg}; scripts/test installs it)`;
  }
  if (!existsSync('/dev/net/tun')) return '/dev/net/tun is missing: wireguard-go needs the tun device';
  const probe = `castellan-probe-${process.pid}`;
  try {
    await run(IP, ['netns', 'add', probe]);
  } catch (error) {
    return `this kernel or container does not allow network namespaces (ip netns add: ${error instanceof Error ? error.message.trim() : String(error)})`;
  }
  await run(IP, ['netns', 'del', probe]).catch(() => undefined);
  return null;
}

async function waitFor(what: string, timeoutMs: number, test: () => Promise<boolean> | boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await test()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A /24 on the 10.250/16 range that no interface or route of this machine uses. */
async function freeSubnet(): Promise<string> {
  const { stdout } = await run(IP, ['-4', '-o', 'route', 'show', 'table', 'all']);
  for (let attempt = 0; attempt < 50; attempt++) {
    const third = 1 + Math.floor(Math.random() * 253);
    const prefix = `10.250.${third}`;
    if (!stdout.includes(`${prefix}.`)) return prefix;
  }
  throw new Error('no free 10.250.x.0/24 for the mesh underlay');
}

// What a mesh leaves behind when its test process is SIGKILLed (its wireguard-go and namespace
// holders die with it, by parent-death signal; namespaces and the bridge are kernel objects and
// stay): named after the test process's pid, so a later run can tell which are orphans.
const MESH_NETNS = /^castellan-(?:cw|probe-)(\d+)(?:-node\d+)?$/;
const MESH_BRIDGE = /^cw(\d+)br$/;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the namespaces and bridges of earlier mesh runs whose process is gone (a test killed
 * with SIGKILL never ran its cleanup). A live process's mesh is left alone. Returns what it removed.
 */
export async function removeStaleMeshes(): Promise<string[]> {
  const removed: string[] = [];
  const names = (await run(IP, ['netns', 'list'])).stdout.split('\n').map((l) => l.trim().split(/\s+/)[0] ?? '');
  for (const name of names) {
    const pid = MESH_NETNS.exec(name)?.[1];
    if (pid === undefined || alive(Number(pid))) continue;
    // Deleting the namespace deletes its end of each veth, and with it the bridge's end.
    await run(IP, ['netns', 'del', name]).then(() => removed.push(`netns ${name}`), () => undefined);
  }
  const links = (await run(IP, ['-o', 'link', 'show', 'type', 'bridge'])).stdout.split('\n');
  for (const line of links) {
    const name = /^\d+:\s+([^:@\s]+)/.exec(line)?.[1] ?? '';
    const pid = MESH_BRIDGE.exec(name)?.[1];
    if (pid === undefined || alive(Number(pid))) continue;
    await run(IP, ['link', 'del', name]).then(() => removed.push(`bridge ${name}`), () => undefined);
  }
  return removed;
}

export async function startWgMesh(options: { dir: string; nodes: number; planes: readonly MeshPlane[] }): Promise<WgMesh> {
  const missing = await meshPrerequisites();
  if (missing) throw new Error(missing);
  await removeStaleMeshes();
  // The whole pid (interface names allow 15 bytes: cw + 7 digits + v + index fits), so
  // removeStaleMeshes() can tell whose they are.
  const id = `cw${process.pid}`;
  const bridge = `${id}br`;
  const prefix = await freeSubnet();
  const holders: ChildProcess[] = [];
  const daemons = new Map<string, ChildProcess>(); // `${node}/${plane}` → wireguard-go
  const nodes: MeshNodeNet[] = [];
  await mkdir('/run/wireguard', { recursive: true });

  const cleanup = async (): Promise<void> => {
    for (const d of daemons.values()) d.kill('SIGKILL');
    for (const h of holders) h.kill('SIGKILL');
    for (const n of nodes) await run(IP, ['netns', 'del', n.netns]).catch(() => undefined);
    await run(IP, ['link', 'del', bridge]).catch(() => undefined);
  };

  try {
    await run(IP, ['link', 'add', bridge, 'type', 'bridge']);
    await run(IP, ['addr', 'add', `${prefix}.1/24`, 'dev', bridge]);
    await run(IP, ['link', 'set', bridge, 'up']);
    for (let i = 0; i < options.nodes; i++) {
      const name = `node${String(i + 1).padStart(2, '0')}`;
      const netns = `castellan-${id}-${name}`;
      const address = `${prefix}.${10 + i}`;
      const veth = `${id}v${i}`;
      const nodeDir = path.join(options.dir, name);
      const wgDir = path.join(nodeDir, 'run-wireguard');
      await mkdir(wgDir, { recursive: true, mode: 0o700 });
      await run(IP, ['netns', 'add', netns]);
      await run(IP, ['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns]);
      await run(IP, ['link', 'set', veth, 'master', bridge, 'up']);
      await run(IP, ['-n', netns, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
      await run(IP, ['-n', netns, 'link', 'set', 'eth0', 'up']);
      await run(IP, ['-n', netns, 'link', 'set', 'lo', 'up']);
      // The node's mount namespace: `ip netns exec` mounts the namespace's /sys, unshare keeps
      // a private copy in which /run/wireguard is this node's own directory. The holder sleeps
      // so the namespaces can be entered; it dies with the test process.
      const holder = spawn(IP, ['netns', 'exec', netns, 'unshare', '--mount', '--propagation', 'private', '/bin/sh', '-c', 'mount --bind "$0" /run/wireguard && exec setpriv --pdeathsig SIGKILL -- sleep infinity', wgDir], { stdio: 'ignore' });
      holders.push(holder);
      const pid = holder.pid;
      if (pid === undefined) throw new Error(`${name}: could not start the namespace holder`);
      await waitFor(`${name}'s namespace holder`, 10_000, async () => (await run('/bin/cat', [`/proc/${pid}/comm`]).catch(() => ({ stdout: '' }))).stdout.trim() === 'sleep');
      const enter = ['/usr/bin/nsenter', `--net=/proc/${pid}/ns/net`, `--mount=/proc/${pid}/ns/mnt`, '--'];
      const keys = new Map<string, { privateKeyFile: string; publicKey: string }>();
      for (const plane of options.planes) {
        const privateKey = (await run(WG, ['genkey'])).stdout.trim();
        const publicKey = await pipeTo(WG, ['pubkey'], privateKey);
        const privateKeyFile = path.join(nodeDir, `${plane.name}.key`);
        await writeFile(privateKeyFile, `${privateKey}\n`, { mode: 0o600 });
        await chmod(privateKeyFile, 0o600);
        keys.set(plane.name, { privateKeyFile, publicKey });
      }
      nodes.push({ name, netns, address, enter, keys });
    }
  } catch (error) {
    await cleanup();
    throw error;
  }

  const node = (name: string): MeshNodeNet => {
    const found = nodes.find((n) => n.name === name);
    if (!found) throw new Error(`no mesh node ${name}`);
    return found;
  };
  const plane = (name: string): MeshPlane => {
    const found = options.planes.find((p) => p.name === name);
    if (!found) throw new Error(`no plane ${name}`);
    return found;
  };
  const index = (name: string): number => nodes.indexOf(node(name));
  const exec = async (name: string, argv: readonly string[]): Promise<string> => {
    const [program = '', ...args] = [...node(name).enter, ...argv];
    return (await run(program, args)).stdout;
  };
  const peerArgs = (p: MeshPlane, peer: MeshNodeNet, publicKey?: string): string[] => [
    'peer', publicKey ?? peer.keys.get(p.name)?.publicKey ?? '',
    'endpoint', `${peer.address}:${p.port}`,
    'allowed-ips', `${p.net}.0.${nodes.indexOf(peer) + 1}/32`,
    'persistent-keepalive', '25',
  ];

  const startPlanes = async (name: string, which?: readonly string[]): Promise<void> => {
    const n = node(name);
    for (const p of options.planes.filter((x) => !which || which.includes(x.name))) {
      const key = `${name}/${p.name}`;
      if (daemons.has(key)) continue;
      // wireguard-go's own words if it gives up (it logs to stdout in the foreground), instead of
      // only a timeout; a loaded CI machine starts it slowly (30 s before the socket counts as
      // missing). In a full clean-clone run it once exited at start (exit 1, words not captured
      // then): it is started a second time before the harness gives up, and both answers are kept.
      const said: string[] = [];
      for (let attempt = 1; ; attempt++) {
        const daemon = spawn(n.enter[0] ?? '', [...n.enter.slice(1), '/usr/bin/setpriv', '--pdeathsig', 'SIGKILL', '--', WIREGUARD_GO, p.name], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, WG_PROCESS_FOREGROUND: '1' } });
        daemons.set(key, daemon);
        let words = '';
        for (const stream of [daemon.stdout, daemon.stderr]) stream?.on('data', (d: Buffer) => (words = (words + d.toString()).slice(-2000)));
        const exited = await waitFor(`${name} ${p.name} UAPI socket`, 30_000, async () => {
          if (daemon.exitCode !== null) return true;
          return (await exec(name, [WG, 'show', 'interfaces']).catch(() => '')).split(/\s+/).includes(p.name);
        }).then(() => daemon.exitCode !== null);
        if (!exited) break;
        said.push(`attempt ${attempt}: exit ${daemon.exitCode}: ${words.trim()}`);
        if (attempt === 2) throw new Error(`${name} ${p.name}: wireguard-go did not start: ${said.join(' | ')}`);
      }
      const peers = nodes.filter((peer) => peer !== n).flatMap((peer) => peerArgs(p, peer));
      await exec(name, [WG, 'set', p.name, 'private-key', n.keys.get(p.name)?.privateKeyFile ?? '', 'listen-port', String(p.port), ...peers]);
      await exec(name, [IP, 'addr', 'add', `${p.net}.0.${index(name) + 1}/16`, 'dev', p.name]);
      await exec(name, [IP, 'link', 'set', p.name, 'up']);
    }
  };

  const stopPlanes = async (name: string, which?: readonly string[]): Promise<void> => {
    for (const p of options.planes.filter((x) => !which || which.includes(x.name))) {
      const key = `${name}/${p.name}`;
      const daemon = daemons.get(key);
      if (!daemon) continue;
      daemons.delete(key);
      const gone = new Promise((r) => daemon.once('exit', r));
      daemon.kill('SIGTERM');
      await gone;
      await waitFor(`${name} ${p.name} to go away`, 10_000, async () => !(await exec(name, [WG, 'show', 'interfaces']).catch(() => '')).split(/\s+/).includes(p.name));
    }
  };

  const handshakes = async (name: string, p: string): Promise<Map<string, number>> => {
    const out = await exec(name, [WG, 'show', p, 'latest-handshakes']).catch(() => '');
    return new Map(out.trim().split('\n').filter(Boolean).map((l) => {
      const [k = '', t = '0'] = l.split('\t');
      return [k, Number(t)] as const;
    }));
  };

  return {
    nodes,
    planes: options.planes,
    inventoryVars: () =>
      Object.fromEntries(
        nodes.map((n, i) => [
          n.name,
          {
            wireguard_endpoint_host: n.address,
            wireguard_planes: Object.fromEntries(options.planes.map((p) => [p.name, { port: p.port }])),
            wireguard: Object.fromEntries(options.planes.map((p) => [p.name, { address: `${p.net}.0.${i + 1}/16`, public_key: n.keys.get(p.name)?.publicKey }])),
          },
        ]),
      ),
    exec,
    startPlanes,
    stopPlanes,
    async waitHandshakes(names, after, timeoutMs = 60_000, except = () => false) {
      const running = (n: string, p: string): boolean => daemons.has(`${n}/${p}`);
      await waitFor(`fresh handshakes among ${names.join(', ')}`, timeoutMs, async () => {
        for (const name of names) {
          for (const p of options.planes) {
            if (!running(name, p.name)) continue;
            const seen = await handshakes(name, p.name);
            for (const peer of nodes) {
              if (peer.name === name || !running(peer.name, p.name) || except(name, p.name, peer.name)) continue;
              if ((seen.get(peer.keys.get(p.name)?.publicKey ?? '') ?? 0) <= after) return false;
            }
          }
        }
        return true;
      });
    },
    async readdPeer(name, p, peer) {
      const pl = plane(p);
      await exec(name, [WG, 'set', p, 'peer', node(peer).keys.get(p)?.publicKey ?? '', 'remove']);
      await exec(name, [WG, 'set', p, ...peerArgs(pl, node(peer))]);
    },
    async replacePeerKey(name, p, peer, publicKey) {
      await exec(name, [WG, 'set', p, 'peer', node(peer).keys.get(p)?.publicKey ?? '', 'remove']);
      await exec(name, [WG, 'set', p, ...peerArgs(plane(p), node(peer), publicKey)]);
    },
    down: cleanup,
  };
}

function pipeTo(program: string, args: readonly string[], input: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(program, [...args], (error, stdout) => (error ? reject(new Error(`${program} failed`, { cause: error })) : resolve(stdout.trim())));
    child.stdin?.end(`${input}\n`);
  });
}
