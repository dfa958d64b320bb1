// The fake-node farm: N in-process SSH servers (ssh2's Server) for benchmarks at N = 100..1000,
// where real sshd would cost ~170 ms of CPU per connection and measure sshd instead of the
// client. It is deliberately apart from the real-sshd lab (src/lab/sshd-lab.ts): nodes live on
// 127.1.x.y (never the lab's 127.0.0.x), share one port, one host key, and answer exec in-process
// (src/lab/fake-shell.ts). It writes the same known_hosts and inventory.yaml as the sshd lab, so
// Castellan, parallel-ssh, clush, pdsh and ansible can all be pointed at the same nodes.
//
// Faults can be injected per node (slow handshake, exec that never answers, exit 255, connection
// cut mid-output, an unpinned host key, refused connections) to test the executor's failure paths.
//
// File descriptors: each node holds one listening socket and each live connection one more, so
// N = 1000 plus a 1000-connection client in the same process needs ~3000 fds. Check `ulimit -n`
// (20000 on the project machine); startFarm refuses to start below nodes + 256.
//
// Run it as its own process so benchmark clients do not share its event loop:
//   node dist/src/lab/fake-farm.js --nodes 1000 --dir /tmp/farm   → prints one JSON ready line.
import { timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import ssh2 from 'ssh2';
import type { AuthContext, Connection, ServerChannel } from 'ssh2';
import { answerStep, parseCommandLine, withHold, wrapperMarker, type FakeCommand, type NodeIdentity } from './fake-shell.js';
import { serveHelper } from './fake-helper.js';
import { helperCommand } from '../ssh/node-helper.js';
import { generateKeyPair } from './keys.js';
import { knownHostsLine, nodeName, readPublicKey, writeCastellanConfig, writeInventory, writeKnownHosts } from './lab-files.js';
import { currentUser } from './login-user.js';
import { allocateLoopbackAddresses, findPortFreeOnAll } from './net.js';
import { quoteArgv } from '../ssh/quote.js';

const { Server, utils } = ssh2;

export interface NodeFault {
  /** Hold each TCP connection this long before the SSH handshake starts. */
  handshakeDelayMs?: number;
  /** Accept exec channels but never answer or exit (command timeout path). */
  neverAnswerExec?: boolean;
  /**
   * Every exec first waits this long (a slow command): ended like a sleep, by the lifeline, a
   * cancel or the remote deadline. Faults are per node: some nodes slow, the others quick.
   */
  holdMs?: number;
  /** Every exec exits with this code after its normal output (e.g. 255). */
  exitCode?: number;
  /** Write part of the output, then drop the TCP connection. */
  closeMidOutput?: boolean;
  /** Present a host key that is not in known_hosts (host-key-changed path). */
  differentHostKey?: boolean;
  /** No listener: connections are refused (unreachable node). */
  unreachable?: boolean;
}

export interface FarmNode {
  name: string;
  address: string;
  port: number;
}

export interface FarmExec {
  node: string;
  user: string;
  /** The raw command line received. */
  command: string;
  /** Castellan wrapper run id when the command came through the executor's wrapper. */
  runId: string | null;
  /** The program and arguments as the remote shell would split them (wrapper removed); null for sequences. */
  argv: string[] | null;
  at: number;
}

export interface FarmOptions {
  nodes: number; // 1..5000
  dir: string;
  /** Per node name. Changeable later with setFault. */
  faults?: Record<string, NodeFault>;
  /** First address; default 127.1.0.1 (x.y.z.0 and .255 are skipped). */
  baseAddress?: string;
  /** User written into the inventory; the fake accepts any user name with the farm's key. */
  loginUser?: string;
  /** Keep a log of every exec (default true); benchmarks at scale may turn it off. */
  recordExecs?: boolean;
  redisUrl?: string;
}

export interface FarmStats {
  connections: number;
  execs: number;
  /** Commands under way now (wrapper or helper runs; a neverAnswerExec run is not counted). */
  running: number;
}

export interface Farm {
  dir: string;
  nodes: FarmNode[];
  port: number;
  loginUser: string;
  inventoryFile: string;
  knownHostsFile: string;
  clientKeyFile: string;
  configFile: string;
  /** `address:port` per line, for `parallel-ssh -h`. */
  hostsFile: string;
  execLog: FarmExec[];
  stats(): FarmStats;
  setFault(name: string, fault: NodeFault | null): Promise<void>;
  stop(): Promise<void>;
}

const MAX_NODES = 5000;
/** The executor's node helper start line (ssh.node_helper: auto); the farm speaks its protocol. */
const HELPER_COMMAND = helperCommand();
const WRAPPER_SESSION_BASE = 40_000;

function openFileLimit(): number {
  try {
    const limits = readFileSync('/proc/self/limits', 'utf8');
    const match = /Max open files\s+(\d+|unlimited)/.exec(limits);
    return match?.[1] === 'unlimited' || !match ? Infinity : Number(match[1]);
  } catch {
    return Infinity;
  }
}

function sameBytes(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
  });

/** Everything a node needs at run time; faults are read per connection/exec so setFault applies at once. */
interface NodeRuntime {
  readonly node: FarmNode;
  fault: NodeFault;
  listener: net.Server | null;
  readonly sockets: Map<number, net.Socket>; // by remote port, to cut one connection mid-output
}

interface FarmContext {
  readonly clientKey: ReturnType<typeof utils.parseKey>;
  readonly hostKey: Buffer;
  readonly otherHostKey: Buffer;
  readonly record: boolean;
  readonly execLog: FarmExec[];
  readonly counters: FarmStats;
  nextSession: number;
}

function authenticate(ctx: AuthContext, farm: FarmContext): void {
  const allowed = farm.clientKey;
  if (ctx.method !== 'publickey' || allowed instanceof Error) return ctx.reject(['publickey']);
  const key = Array.isArray(allowed) ? (allowed[0] as Exclude<typeof allowed, Error | unknown[]>) : allowed;
  if (ctx.key.algo !== key.type || !sameBytes(ctx.key.data, key.getPublicSSH())) return ctx.reject(['publickey']);
  // Without a signature the client only asks whether the key would do; with one, it must verify.
  if (ctx.signature && ctx.blob && !key.verify(ctx.blob, ctx.signature, ctx.hashAlgo)) return ctx.reject(['publickey']);
  ctx.accept();
}

/** Read exactly `bytes` of channel input (or until EOF when bytes is Infinity). */
function readInput(channel: ServerChannel, bytes: number): Promise<{ data: string; ended: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let length = 0;
    if (bytes === 0) return resolve({ data: '', ended: false });
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      length += chunk.length;
      if (length >= bytes) finish(false);
    };
    const onEnd = (): void => finish(true);
    const finish = (ended: boolean): void => {
      channel.removeListener('data', onData);
      channel.removeListener('end', onEnd);
      const all = Buffer.concat(chunks);
      if (all.length > bytes) channel.unshift(all.subarray(bytes));
      resolve({ data: all.subarray(0, bytes).toString(), ended });
    };
    channel.on('data', onData);
    channel.once('end', onEnd);
  });
}

async function runExec(channel: ServerChannel, command: string, who: NodeIdentity, runtime: NodeRuntime, farm: FarmContext, socket: net.Socket | undefined): Promise<void> {
  const fault = runtime.fault;
  if (fault.neverAnswerExec) return; // the channel stays open until the client gives up
  const parsed = parseCommandLine(command);
  const out = (text: string): void => {
    if (text) channel.write(text);
  };
  const finish = (code: number): void => {
    channel.exit(fault.exitCode ?? code);
    channel.end();
  };

  if (parsed.control === 'find') return finish(0);
  if (parsed.control === 'kill') {
    out('gone\n');
    return finish(0);
  }
  if (parsed.unsupported) {
    channel.stderr.write(`fake node: unsupported ${parsed.unsupported}\n`);
    return finish(2);
  }

  farm.counters.running++;
  try {
    await runWrapped(channel, parsed, who, fault, farm, socket);
  } finally {
    farm.counters.running--;
  }
}

async function runWrapped(channel: ServerChannel, parsed: FakeCommand, who: NodeIdentity, fault: NodeFault, farm: FarmContext, socket: net.Socket | undefined): Promise<void> {
  const wrapper = parsed.wrapper;
  const out = (text: string): void => {
    if (text) channel.write(text);
  };
  const finish = (code: number): void => {
    channel.exit(fault.exitCode ?? code);
    channel.end();
  };
  // In the wrapper, stdin EOF is the lifeline: the command is cancelled, as on a real node.
  const cancel = new AbortController();
  let stdin = '';
  if (wrapper) {
    out(wrapperMarker(WRAPPER_SESSION_BASE + (farm.nextSession++ % 20_000)));
    const input = await readInput(channel, wrapper.stdinBytes);
    stdin = input.data;
    if (input.ended) cancel.abort();
    else {
      channel.once('end', () => cancel.abort());
      // A connection cut is the lifeline's EOF too (sshd closes the session's stdin).
      channel.once('close', () => cancel.abort());
      // Drain (and ignore) the lifeline, or the stream stays paused and never reports its end.
      channel.on('data', () => undefined);
    }
  }
  const deadline = wrapper && wrapper.deadlineMs > 0 ? Date.now() + wrapper.deadlineMs : Infinity;

  let status = 0;
  for (const step of withHold(parsed.steps, fault.holdMs)) {
    if (step.connector === '&&' && status !== 0) continue;
    if (step.connector === '||' && status === 0) continue;
    const answer = answerStep(step.argv, who);
    if (answer.sleepMs > 0) {
      const until = Math.min(Date.now() + answer.sleepMs, deadline);
      await sleep(until - Date.now(), cancel.signal);
      if (cancel.signal.aborted) return finish(143); // TERM from the lifeline
      if (until === deadline && deadline < Infinity) return finish(124); // timeout(1)'s status
    }
    let stdout = answer.stdout;
    if (answer.readsStdin) stdout = wrapper ? stdin : (await readInput(channel, Infinity)).data;
    if (fault.closeMidOutput && socket) {
      out(stdout.slice(0, Math.ceil(stdout.length / 2)) || 'partial');
      socket.destroy();
      return;
    }
    out(stdout);
    if (answer.stderr) channel.stderr.write(answer.stderr);
    status = answer.exitCode;
  }
  finish(status);
}

function serveConnection(client: Connection, remotePort: number, runtime: NodeRuntime, farm: FarmContext): void {
  let user = '';
  client.on('error', () => undefined); // a client vanishing mid-handshake is normal under load
  client.on('authentication', (ctx) => {
    user = ctx.username;
    authenticate(ctx, farm);
  });
  client.on('ready', () => {
    client.on('session', (acceptSession) => {
      const session = acceptSession();
      session.on('pty', (accept) => accept?.());
      session.on('env', (accept) => accept?.());
      session.on('shell', (_accept, reject) => reject?.());
      session.on('subsystem', (_accept, reject) => reject?.());
      session.on('exec', (accept, _reject, info) => {
        const channel = accept();
        if (info.command === HELPER_COMMAND) {
          serveHelper(channel, {
            who: { node: runtime.node.name, user },
            fault: () => runtime.fault,
            onEnd: () => farm.counters.running--,
            onStart: (runId, argv) => {
              farm.counters.execs++;
              if (farm.record) farm.execLog.push({ node: runtime.node.name, user, command: quoteArgv(argv), runId, argv: [...argv], at: Date.now() });
            },
            cut: () => runtime.sockets.get(remotePort)?.destroy(),
            nextSession: () => WRAPPER_SESSION_BASE + (farm.nextSession++ % 20_000),
          });
          return;
        }
        farm.counters.execs++;
        const parsed = farm.record ? parseCommandLine(info.command) : null;
        if (parsed) {
          const argv = parsed.steps.length === 1 ? [...(parsed.steps[0]?.argv ?? [])] : null;
          farm.execLog.push({ node: runtime.node.name, user, command: info.command, runId: parsed.wrapper?.runId ?? null, argv, at: Date.now() });
        }
        const who = { node: runtime.node.name, user };
        runExec(channel, info.command, who, runtime, farm, runtime.sockets.get(remotePort)).catch(() => {
          channel.destroy();
        });
      });
    });
  });
}

async function listen(runtime: NodeRuntime, servers: { main: InstanceType<typeof Server>; other: InstanceType<typeof Server> }, farm: FarmContext): Promise<void> {
  const listener = net.createServer((socket) => {
    // Without TCP_NODELAY each handshake round trip waits ~40 ms on delayed ACKs.
    socket.setNoDelay(true);
    farm.counters.connections++;
    const remotePort = socket.remotePort ?? 0;
    runtime.sockets.set(remotePort, socket);
    socket.once('close', () => runtime.sockets.delete(remotePort));
    socket.on('error', () => undefined);
    const fault = runtime.fault;
    const server = fault.differentHostKey ? servers.other : servers.main;
    const inject = (): void => {
      if (!socket.destroyed) server.injectSocket(socket);
    };
    if (fault.handshakeDelayMs) setTimeout(inject, fault.handshakeDelayMs).unref();
    else inject();
  });
  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.listen({ host: runtime.node.address, port: runtime.node.port, exclusive: true, backlog: 511 }, () => {
      listener.removeListener('error', reject);
      resolve();
    });
  });
  runtime.listener = listener;
}

function closeListener(runtime: NodeRuntime): Promise<void> {
  const listener = runtime.listener;
  runtime.listener = null;
  for (const socket of runtime.sockets.values()) socket.destroy();
  if (!listener) return Promise.resolve();
  return new Promise((resolve) => listener.close(() => resolve()));
}

async function ensureKey(file: string, comment: string): Promise<Buffer> {
  if (!existsSync(file) || !existsSync(`${file}.pub`)) await generateKeyPair(file, 'ed25519', comment);
  return readFile(file);
}

export async function startFarm(options: FarmOptions): Promise<Farm> {
  const count = options.nodes;
  if (!Number.isInteger(count) || count < 1 || count > MAX_NODES) throw new Error(`a farm has 1..${MAX_NODES} nodes, not ${count}`);
  const fdLimit = openFileLimit();
  if (fdLimit < count + 256) {
    throw new Error(`open-file limit ${fdLimit} is too low for ${count} fake nodes (need ≥ ${count + 256}, ~3×N with a client in-process); raise ulimit -n`);
  }
  const dir = path.resolve(options.dir);
  await mkdir(dir, { recursive: true });
  const clientKeyFile = path.join(dir, 'id_ed25519');
  const hostKeyFile = path.join(dir, 'ssh_host_ed25519_key');
  await ensureKey(clientKeyFile, 'castellan-farm-client');
  const farm: FarmContext = {
    clientKey: utils.parseKey(await readFile(clientKeyFile)),
    hostKey: await ensureKey(hostKeyFile, 'castellan-farm-host'),
    // The "changed host key" fault presents this one; it is never written to known_hosts.
    otherHostKey: await ensureKey(path.join(dir, 'ssh_host_ed25519_key.other'), 'castellan-farm-other-host'),
    record: options.recordExecs ?? true,
    execLog: [],
    counters: { connections: 0, execs: 0, running: 0 },
    nextSession: 0,
  };
  const loginUser = options.loginUser ?? currentUser();

  const addresses = allocateLoopbackAddresses(count, options.baseAddress ?? '127.1.0.1');
  const runtimes: NodeRuntime[] = addresses.map((address, i) => ({
    node: { name: nodeName(i + 1, count), address, port: 0 },
    fault: options.faults?.[nodeName(i + 1, count)] ?? {},
    listener: null,
    sockets: new Map(),
  }));
  const byName = new Map(runtimes.map((r) => [r.node.name, r]));
  for (const name of Object.keys(options.faults ?? {})) if (!byName.has(name)) throw new Error(`fault for unknown node ${name}`);

  // Two ssh2 Servers per node (pinned key, "changed" key), created lazily. They never listen
  // themselves: our listener injects each accepted socket, so the connection knows its node.
  const servers = new Map<NodeRuntime, { main: InstanceType<typeof Server>; other: InstanceType<typeof Server> }>();
  const makeServers = (runtime: NodeRuntime) => {
    const main = new Server({ hostKeys: [farm.hostKey] }, (client, info) => serveConnection(client, info.port, runtime, farm));
    const other = new Server({ hostKeys: [farm.otherHostKey] }, (client, info) => serveConnection(client, info.port, runtime, farm));
    servers.set(runtime, { main, other });
    return { main, other };
  };

  let port: number;
  for (let attempt = 1; ; attempt++) {
    port = await findPortFreeOnAll(addresses);
    try {
      for (const runtime of runtimes) {
        runtime.node.port = port;
        if (!runtime.fault.unreachable) await listen(runtime, servers.get(runtime) ?? makeServers(runtime), farm);
      }
      break;
    } catch (error) {
      await Promise.all(runtimes.map(closeListener));
      if (attempt >= 3) throw error;
    }
  }

  const knownHostsFile = path.join(dir, 'known_hosts');
  const inventoryFile = path.join(dir, 'inventory.yaml');
  const configFile = path.join(dir, 'castellan.yaml');
  const hostsFile = path.join(dir, 'hosts.txt');
  const nodes = runtimes.map((r) => r.node);
  const hostKeyPublic = await readPublicKey(hostKeyFile);
  const access = { user: loginUser, privateKeyFile: clientKeyFile, knownHostsFile };
  await writeKnownHosts(knownHostsFile, nodes.map((n) => knownHostsLine(n.address, n.port, hostKeyPublic)));
  await writeInventory(inventoryFile, nodes, access);
  await writeCastellanConfig(configFile, { ...access, inventoryFile, redisUrl: options.redisUrl });
  await writeFile(hostsFile, nodes.map((n) => `${n.address}:${n.port}\n`).join(''));

  return {
    dir,
    nodes,
    port,
    loginUser,
    inventoryFile,
    knownHostsFile,
    clientKeyFile,
    configFile,
    hostsFile,
    execLog: farm.execLog,
    stats: () => ({ ...farm.counters }),
    setFault: async (name, fault) => {
      const runtime = byName.get(name);
      if (!runtime) throw new Error(`no fake node ${name}`);
      runtime.fault = fault ?? {};
      if (runtime.fault.unreachable && runtime.listener) await closeListener(runtime);
      if (!runtime.fault.unreachable && !runtime.listener) await listen(runtime, servers.get(runtime) ?? makeServers(runtime), farm);
    },
    stop: async () => {
      await Promise.all(runtimes.map(closeListener));
    },
  };
}

// --- separate process: node dist/src/lab/fake-farm.js --nodes N --dir DIR [--faults JSON] ---------

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      nodes: { type: 'string', default: '100' },
      dir: { type: 'string' },
      faults: { type: 'string' },
      'base-address': { type: 'string' },
      'no-record': { type: 'boolean', default: false },
    },
  });
  if (!values.dir) throw new Error('usage: fake-farm --nodes N --dir DIR [--faults JSON] [--base-address 127.1.0.1] [--no-record]');
  const farm = await startFarm({
    nodes: Number(values.nodes),
    dir: values.dir,
    faults: values.faults ? (JSON.parse(values.faults) as Record<string, NodeFault>) : undefined,
    baseAddress: values['base-address'],
    recordExecs: !values['no-record'],
  });
  const ready = {
    ready: true,
    pid: process.pid,
    dir: farm.dir,
    port: farm.port,
    loginUser: farm.loginUser,
    inventoryFile: farm.inventoryFile,
    knownHostsFile: farm.knownHostsFile,
    clientKeyFile: farm.clientKeyFile,
    configFile: farm.configFile,
    hostsFile: farm.hostsFile,
    nodes: farm.nodes,
  };
  process.stdout.write(`${JSON.stringify(ready)}\n`);
  const shutdown = (): void => {
    farm.stop().then(() => process.exit(0), () => process.exit(1));
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
  // A benchmark that dies must not leave 1000 listeners behind: exit when re-parented.
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) shutdown();
  }, 1000);
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main().catch((error: unknown) => {
    process.stderr.write(`fake-farm: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
