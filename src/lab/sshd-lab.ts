// The real-sshd lab: N OpenSSH daemons on 127.0.0.x, one per simulated node, each with its own
// host key, all on one free port. It is what integration tests and `castellan lab up` run
// against when fidelity matters (MaxSessions, signals, host-key pinning); for load at
// N = 100..1000 use the fake-node farm instead (real sshd costs ~170 ms of CPU per connection).
//
// Daemons are spawned detached, so a CLI can exit and leave the lab running; DIR/lab.json
// records what runs where so `labDown(dir)` / `labOpen(dir)` work from another process.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, open, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { allocateLoopbackAddresses, findPortFreeOnAll, waitForSshBanner } from './net.js';
import { generateKeyPair, forEachLimited, type KeyType } from './keys.js';
import { knownHostsLine, nodeName, readPublicKey, writeCastellanConfig, writeInventory, writeKnownHosts } from './lab-files.js';
import { assertReachableByOthers, currentUser, ensureLoginUser } from './login-user.js';
import { isAlive, readCommandLine, readProcessTable, stopProcessFamily } from './processes.js';

export interface LabNode {
  name: string; // 'node01' … (zero-padded to 2 digits; 3 when N > 99)
  address: string; // distinct 127.0.0.x per node within a lab
  port: number; // one free port per lab, same for all its nodes
  hostKeyFile: string; // private host key path; public key at `${hostKeyFile}.pub`
  pid: number | null; // sshd pid while running
}

export interface LabOptions {
  nodes: number; // 1..200
  dir: string; // created if missing; everything the lab writes lives here
  /** Default: the current user. As root, 'castellan-lab' (any castellan-*) is created if missing. */
  loginUser?: string;
  hostKeyTypes?: Array<'ed25519' | 'ecdsa' | 'rsa'>; // cycled over nodes; default all ed25519
  /** Written into castellan.yaml (`redis.url`); default redis://127.0.0.1:6379. */
  redisUrl?: string;
  /**
   * Give each node its own DIR/nodes/<name>/bin, first on the PATH of its sessions (sshd
   * SetEnv), so tests can install per-node programs (the zfs/kbe/kubectl stand-ins) that keep
   * their state in the node's directory. Off by default: nodes see the machine's PATH.
   */
  nodeBinDirs?: boolean;
  /**
   * Every sshd gets a parent-death signal (setpriv --pdeathsig SIGKILL): the nodes die with
   * the process that started them whatever kills it (SIGKILL included), as `castellan up` and
   * tests need. Off by default, so `castellan lab up` can exit and leave its lab running.
   */
  dieWithParent?: boolean;
  /**
   * Nodes that are network namespaces (the WireGuard mesh test): node i listens on
   * `addresses[i]:port` inside its own namespace, and its sshd is started through `enter(name)`,
   * an argv prefix that execs in place (`nsenter --net=… --mount=… --`), so the commands a
   * session runs see that node's interfaces. Absent: every node on 127.0.0.x, one probed port.
   */
  namespaces?: { addresses: readonly string[]; port: number; enter(name: string): string[] };
}

/** PATH of a lab session when the node has its own bin dir; the rest is sshd's usual default. */
const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** DIR/nodes/<name>/bin: the node's own programs (see LabOptions.nodeBinDirs). */
export function nodeBinDir(dir: string, name: string): string {
  return path.join(path.resolve(dir), 'nodes', name, 'bin');
}

export interface Lab {
  dir: string;
  nodes: LabNode[];
  loginUser: string;
  clientKeyFile: string; // DIR/id_ed25519 (no passphrase), public at .pub
  inventoryFile: string; // DIR/inventory.yaml (Ansible YAML)
  knownHostsFile: string; // DIR/known_hosts ([address]:port entries, pinned)
  configFile: string; // DIR/castellan.yaml (ready to use)
  /** sshd and every session it serves are stopped: the node becomes unreachable. */
  stopNode(name: string): Promise<void>;
  /** Same key, same address/port. */
  startNode(name: string): Promise<void>;
  /** New host key on the node (restarted, sessions dropped); known_hosts NOT updated. */
  rotateHostKey(name: string): Promise<void>;
  /** Stop every sshd of the lab and its sessions, wait until gone. */
  down(): Promise<void>;
}

const SSHD = '/usr/sbin/sshd';
const SETPRIV = '/usr/bin/setpriv';
const PRIVSEP_DIR = '/run/sshd';
const START_TIMEOUT_MS = 10_000;
const MAX_NODES = 200;
/** Lab daemons start a few at a time: the machine has 2 cores shared with other work. */
const START_CONCURRENCY = 6;
const PORT_ATTEMPTS = 3;

interface NodeRecord extends LabNode {
  hostKeyType: KeyType;
  configFile: string;
  logFile: string;
  pidFile: string;
  /** argv prefix that puts sshd in the node's namespaces (LabOptions.namespaces). */
  enter?: string[] | undefined;
}

interface LabState {
  version: 1;
  dir: string;
  loginUser: string;
  port: number;
  clientKeyFile: string;
  authorizedKeysFile: string;
  inventoryFile: string;
  knownHostsFile: string;
  configFile: string;
  redisUrl?: string | undefined;
  nodeBinDirs?: boolean | undefined;
  dieWithParent?: boolean | undefined;
  /** The port every namespaced node listens on (no probing: each namespace has its own ports). */
  fixedPort?: number | undefined;
  nodes: NodeRecord[];
}

/** sshd refused to bind: another process took the port between our probe and its start. */
class PortTakenError extends Error {}

function sshdConfig(node: NodeRecord, state: LabState): string {
  // AcceptEnv is deliberately absent (accept nothing); MaxSessions stays at OpenSSH's default
  // of 10 because real nodes have it and the executor must cope with it.
  return [
    `ListenAddress ${node.address}:${node.port}`,
    `HostKey ${node.hostKeyFile}`,
    `PidFile ${node.pidFile}`,
    `AuthorizedKeysFile ${state.authorizedKeysFile}`,
    'StrictModes no',
    'UsePAM no',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PubkeyAuthentication yes',
    'PermitRootLogin prohibit-password',
    'MaxStartups 100:30:200',
    'MaxSessions 10',
    'LogLevel INFO',
    'PrintMotd no',
    'Subsystem sftp internal-sftp',
    // SHLVL=1: bash run by sshd sources ~/.bashrc only as a top-level shell (SHLVL < 2 after its
    // own increment). A lab node is this machine, and its login user's .bashrc is the
    // developer's (pyenv init, say, whose rehash lock, left behind by a session a simulated
    // reboot killed, stalled every later command for 60 s): real nodes' dotfiles are not ours
    // to run either. A path with a space or quote would need sshd quoting; lab dirs come from mkdtemp.
    `SetEnv SHLVL=1${state.nodeBinDirs === true ? ` PATH=${nodeBinDir(state.dir, node.name)}:${SYSTEM_PATH}` : ''}`,
    '',
  ].join('\n');
}

// --- state file -------------------------------------------------------------------------

function stateFile(dir: string): string {
  return path.join(dir, 'lab.json');
}

const saveChains = new WeakMap<LabState, Promise<void>>();

/** Writes are serialized per lab and atomic (tmp + rename), so parallel node operations never tear lab.json. */
function saveState(state: LabState): Promise<void> {
  const previous = saveChains.get(state) ?? Promise.resolve();
  const next = previous.then(async () => {
    const tmp = `${stateFile(state.dir)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    await writeFile(tmp, `${JSON.stringify(state, null, 2)}\n`);
    await rename(tmp, stateFile(state.dir));
  });
  saveChains.set(state, next.catch(() => undefined));
  return next;
}

async function loadState(dir: string): Promise<LabState> {
  const state = JSON.parse(await readFile(stateFile(dir), 'utf8')) as LabState;
  if (state.version !== 1 || !Array.isArray(state.nodes)) throw new Error(`${stateFile(dir)} is not a lab state file`);
  // A recorded pid counts only while it is still this node's sshd (pids get reused).
  for (const node of state.nodes) if (node.pid !== null && !isNodeSshd(node.pid, node)) node.pid = null;
  return state;
}

// --- processes --------------------------------------------------------------------------

/**
 * sshd rewrites its process title ("sshd: /usr/sbin/sshd -D -f … [listener] …"), so its argv
 * is matched as one joined string rather than argument by argument.
 */
function commandLineText(pid: number): string {
  return (readCommandLine(pid) ?? []).join(' ');
}

function isNodeSshd(pid: number, node: NodeRecord): boolean {
  return isAlive(pid) && commandLineText(pid).includes(` -f ${node.configFile} `);
}

/** sshd listeners started from this lab's config files, recorded or not (e.g. after a crash mid-start). */
function labListeners(dir: string): number[] {
  const prefix = path.join(dir, 'nodes') + path.sep;
  return readProcessTable()
    .filter((proc) => proc.state !== 'Z')
    .filter((proc) => {
      const text = commandLineText(proc.pid);
      return text.includes(SSHD) && text.includes(` -f ${prefix}`);
    })
    .map((proc) => proc.pid);
}

async function logTail(file: string, lines = 15): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

async function startSshd(node: NodeRecord, state: LabState): Promise<void> {
  if (node.pid !== null && isNodeSshd(node.pid, node)) return;
  // sshd's own early errors (bad config, bind failure before -E applies) go to stderr: same log.
  const log = await open(node.logFile, 'a');
  let pid: number | undefined;
  try {
    const sshdArgs = ['-D', '-f', node.configFile, '-E', node.logFile];
    // setpriv execs sshd in place (same pid), so the recorded pid stays the listener's.
    const plain = state.dieWithParent === true ? [SETPRIV, '--pdeathsig', 'SIGKILL', '--', SSHD, ...sshdArgs] : [SSHD, ...sshdArgs];
    const [program = SSHD, ...args] = [...(node.enter ?? []), ...plain];
    const child = spawn(program, args, {
      // Own session either way: a terminal's Ctrl-C or hang-up reaches the owner, which stops
      // the nodes in order; without dieWithParent they also survive the CLI that started them.
      detached: true,
      stdio: ['ignore', log.fd, log.fd],
    });
    child.unref();
    pid = child.pid;
    const exited = new Promise<never>((_, reject) => {
      child.once('error', reject);
      child.once('exit', (code, signal) => reject(new Error(`sshd exited (${signal ?? `code ${code}`})`)));
    });
    exited.catch(() => undefined); // only observed through the race below
    if (pid === undefined) await exited;
    await Promise.race([waitForSshBanner(node.address, node.port, START_TIMEOUT_MS), exited]);
  } catch (error) {
    if (pid !== undefined) await stopProcessFamily([pid]);
    const tail = await logTail(node.logFile);
    const reason = error instanceof Error ? error.message : String(error);
    if (/Address already in use/.test(tail)) throw new PortTakenError(`${node.name}: port ${node.port} taken`);
    throw new Error(`${node.name}: sshd did not start on ${node.address}:${node.port}: ${reason}\n${tail}`, { cause: error });
  } finally {
    await log.close();
  }
  node.pid = pid ?? null;
  await saveState(state);
}

async function stopNodeRecord(node: NodeRecord, state: LabState): Promise<void> {
  if (node.pid !== null && isNodeSshd(node.pid, node)) await stopProcessFamily([node.pid]);
  node.pid = null;
  await saveState(state);
}

async function downState(state: LabState): Promise<void> {
  const recorded = state.nodes.flatMap((node) => (node.pid !== null && isNodeSshd(node.pid, node) ? [node.pid] : []));
  const roots = [...new Set([...recorded, ...labListeners(state.dir)])];
  await stopProcessFamily(roots);
  for (const node of state.nodes) node.pid = null;
  await saveState(state);
}

// --- files ------------------------------------------------------------------------------

/** Everything that depends on the port: sshd configs, known_hosts, inventory, castellan.yaml. */
async function writeLabFiles(state: LabState): Promise<void> {
  const pins: string[] = [];
  for (const node of state.nodes) {
    node.port = state.port;
    await writeFile(node.configFile, sshdConfig(node, state), { mode: 0o644 });
    pins.push(knownHostsLine(node.address, node.port, await readPublicKey(node.hostKeyFile)));
  }
  const access = { user: state.loginUser, privateKeyFile: state.clientKeyFile, knownHostsFile: state.knownHostsFile };
  await writeKnownHosts(state.knownHostsFile, pins);
  await writeInventory(state.inventoryFile, state.nodes, access);
  await writeCastellanConfig(state.configFile, { ...access, inventoryFile: state.inventoryFile, redisUrl: state.redisUrl });
  await saveState(state);
}

function findNode(state: LabState, name: string): NodeRecord {
  const node = state.nodes.find((candidate) => candidate.name === name);
  if (!node) throw new Error(`no node ${name} in the lab at ${state.dir}`);
  return node;
}

function asLab(state: LabState): Lab {
  return {
    dir: state.dir,
    nodes: state.nodes,
    loginUser: state.loginUser,
    clientKeyFile: state.clientKeyFile,
    inventoryFile: state.inventoryFile,
    knownHostsFile: state.knownHostsFile,
    configFile: state.configFile,
    stopNode: (name) => stopNodeRecord(findNode(state, name), state),
    startNode: (name) => startSshd(findNode(state, name), state),
    rotateHostKey: async (name) => {
      const node = findNode(state, name);
      await stopNodeRecord(node, state);
      await generateKeyPair(node.hostKeyFile, node.hostKeyType, `${node.name}-rotated`);
      await startSshd(node, state);
    },
    down: () => downState(state),
  };
}

// --- public API -------------------------------------------------------------------------

export async function labUp(options: LabOptions): Promise<Lab> {
  const count = options.nodes;
  if (!Number.isInteger(count) || count < 1 || count > MAX_NODES) {
    throw new Error(`a lab has 1..${MAX_NODES} nodes, not ${count}`);
  }
  const dir = path.resolve(options.dir);
  await mkdir(dir, { recursive: true });
  if (existsSync(stateFile(dir))) await labDown(dir);

  const loginUser = options.loginUser ?? currentUser();
  await ensureLoginUser(loginUser);
  if (loginUser !== currentUser()) {
    await chmod(dir, 0o755);
    await assertReachableByOthers(dir);
  }
  // sshd refuses to start without its privilege-separation directory.
  await mkdir(PRIVSEP_DIR, { recursive: true, mode: 0o755 });

  const clientKeyFile = path.join(dir, 'id_ed25519');
  if (!existsSync(clientKeyFile) || !existsSync(`${clientKeyFile}.pub`)) {
    await generateKeyPair(clientKeyFile, 'ed25519', 'castellan-lab-client');
  }
  // One file per account (sshd expands %u): the client key opens the login user only, so a
  // non-root lab really is non-root (no silent fallback to root logins).
  const authorizedKeysFile = path.join(dir, 'authorized_keys.%u');
  const loginUserKeys = authorizedKeysFile.replace('%u', loginUser);
  await writeFile(loginUserKeys, `${await readPublicKey(clientKeyFile)}\n`, { mode: 0o644 });
  await chmod(loginUserKeys, 0o644);

  const types = options.hostKeyTypes && options.hostKeyTypes.length > 0 ? options.hostKeyTypes : (['ed25519'] as const);
  if (options.namespaces && options.namespaces.addresses.length !== count) throw new Error(`namespaces: ${options.namespaces.addresses.length} addresses for ${count} nodes`);
  const addresses = options.namespaces ? [...options.namespaces.addresses] : allocateLoopbackAddresses(count, '127.0.0.2');
  const nodes: NodeRecord[] = addresses.map((address, i) => {
    const name = nodeName(i + 1, count);
    const hostKeyType = types[i % types.length] ?? 'ed25519';
    const nodeDir = path.join(dir, 'nodes', name);
    return {
      name,
      address,
      port: 0,
      hostKeyFile: path.join(nodeDir, `ssh_host_${hostKeyType}_key`),
      pid: null,
      hostKeyType,
      configFile: path.join(nodeDir, 'sshd_config'),
      logFile: path.join(nodeDir, 'sshd.log'),
      pidFile: path.join(nodeDir, 'sshd.pid'),
      enter: options.namespaces?.enter(name),
    };
  });
  await forEachLimited(nodes, START_CONCURRENCY, async (node) => {
    await mkdir(path.dirname(node.configFile), { recursive: true });
    if (options.nodeBinDirs === true) await mkdir(nodeBinDir(dir, node.name), { recursive: true });
    await generateKeyPair(node.hostKeyFile, node.hostKeyType, `${node.name}-host`);
  });

  const state: LabState = {
    version: 1,
    dir,
    loginUser,
    port: 0,
    clientKeyFile,
    authorizedKeysFile,
    inventoryFile: path.join(dir, 'inventory.yaml'),
    knownHostsFile: path.join(dir, 'known_hosts'),
    configFile: path.join(dir, 'castellan.yaml'),
    redisUrl: options.redisUrl,
    nodeBinDirs: options.nodeBinDirs,
    dieWithParent: options.dieWithParent,
    fixedPort: options.namespaces?.port,
    nodes,
  };

  for (let attempt = 1; ; attempt++) {
    state.port = state.fixedPort ?? (await findPortFreeOnAll(addresses));
    await writeLabFiles(state);
    try {
      await forEachLimited(nodes, START_CONCURRENCY, (node) => startSshd(node, state));
      return asLab(state);
    } catch (error) {
      await downState(state);
      if (!(error instanceof PortTakenError) || attempt >= PORT_ATTEMPTS) throw error;
    }
  }
}

/** Stop the lab recorded in DIR/lab.json (and any stray sshd started from DIR's configs). */
export async function labDown(dir: string): Promise<void> {
  const resolved = path.resolve(dir);
  if (!existsSync(stateFile(resolved))) {
    await stopProcessFamily(labListeners(resolved));
    return;
  }
  await downState(await loadState(resolved));
}

/** Re-open a lab from DIR/lab.json; nodes whose sshd is gone have pid null. */
export async function labOpen(dir: string): Promise<Lab> {
  return asLab(await loadState(path.resolve(dir)));
}
