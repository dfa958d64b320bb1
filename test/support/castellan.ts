// A whole Castellan for a test file: private redis-server, a lab of real sshd nodes, a
// castellan.yaml pointing at both, a runtime and (optionally) an in-process worker. Tests
// drive it through the service, or through the real CLI (`node bin/castellan.js`).
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll } from 'vitest';
import { stringify } from 'yaml';
import { loadConfig } from '../../config/load.js';
import { startRedis, type PrivateRedis } from '../../src/lab/redis.js';
import { labUp, type Lab, type LabOptions } from '../../src/lab/sshd-lab.js';
import { createLogger } from '../../src/log.js';
import { Redactor } from '../../queues/redact.js';
import { createRuntime, type Runtime } from '../../src/runtime.js';
import type { JobSettings } from '../../queues/context.js';

export const REPO = fileURLToPath(new URL('../..', import.meta.url));
export const CLI = path.join(REPO, 'bin', 'castellan.js');

export interface CastellanOptions {
  readonly nodes: number;
  readonly lab?: Omit<LabOptions, 'nodes' | 'dir' | 'redisUrl'>;
  /** Deep-merged over the generated config document (snake_case YAML shape). */
  readonly config?: Record<string, unknown>;
  /** Start an in-process worker (default true). */
  readonly worker?: boolean;
  readonly jobSettings?: Partial<JobSettings>;
  /** A second inventory file merged after the lab's (host vars a test writes, re-read on change). */
  readonly extraInventory?: string;
  /** Extra environment for secrets (`*_env`) in this test file. */
  readonly env?: Record<string, string>;
  /** Runs once the lab is up, before the config is loaded (rewrite the inventory, seed nodes). */
  readonly prepare?: (lab: Lab) => Promise<void>;
}

export interface CastellanHandle {
  readonly dir: string;
  readonly lab: Lab;
  readonly redis: PrivateRedis;
  readonly configFile: string;
  readonly runtime: Runtime;
  /** Run the real CLI with this config; resolves with its exit code and output. */
  cli(args: readonly string[], options?: { stdin?: string; env?: Record<string, string>; timeoutMs?: number }): Promise<CliResult>;
  /** Log lines written by this test file's runtime (JSON). */
  readonly logs: string[];
}

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function useCastellan(options: CastellanOptions): CastellanHandle {
  let state: { dir: string; lab: Lab; redis: PrivateRedis; configFile: string; runtime: Runtime } | undefined;
  const logs: string[] = [];

  beforeAll(async () => {
    for (const [k, v] of Object.entries(options.env ?? {})) process.env[k] = v;
    const dir = await mkdtemp(path.join(os.tmpdir(), 'castellan-e2e-'));
    const redis = await startRedis({ dir: path.join(dir, 'redis') });
    const lab = await labUp({ dieWithParent: true, ...(options.lab ?? {}), nodes: options.nodes, dir: path.join(dir, 'lab'), redisUrl: redis.url });
    await mkdir(path.join(dir, 'files'), { recursive: true });
    if (options.prepare) await options.prepare(lab);
    const doc = merge(
      {
        inventory: options.extraInventory ? [lab.inventoryFile, options.extraInventory] : lab.inventoryFile,
        known_hosts: lab.knownHostsFile,
        ssh: { user: lab.loginUser, private_key_file: lab.clientKeyFile, connect_timeout: '5s', command_timeout: '2m' },
        redis: { url: redis.url, prefix: 'castellan' },
        server: { listen: '127.0.0.1:0', public_url: 'http://127.0.0.1:8080' },
        auth: {
          roles: { admin: ['admins'], operator: ['ops'], approver: ['leads'], viewer: ['everyone'] },
          local_identity: { subject: 'local-admin', display_name: 'Local admin', groups: ['admins'] },
        },
        policy: { approvals: { required: 1, allow_self_approval: false, expiry: '15m' } },
        jobs: { files_root: path.join(dir, 'files') },
        audit: { file: path.join(dir, 'audit.jsonl') },
        log: { level: 'info' },
      },
      options.config ?? {},
    );
    const configFile = path.join(dir, 'castellan.yaml');
    await writeFile(configFile, stringify(doc));
    const config = await loadConfig(configFile);
    const sink = new (await import('node:stream')).Writable({
      write(chunk: Buffer, _enc, cb) {
        logs.push(chunk.toString('utf8'));
        cb();
      },
    });
    const logger = createLogger({ level: 'debug', redactor: new Redactor(config.secrets.values()), destination: sink });
    const runtime = await createRuntime(config, { mode: 'all', logger, jobSettings: options.jobSettings });
    if (options.worker !== false) await runtime.startWorker();
    state = { dir, lab, redis, configFile, runtime };
  });

  afterAll(async () => {
    if (!state) return;
    await state.runtime.close();
    await state.lab.down();
    await state.redis.stop();
    await rm(state.dir, { recursive: true, force: true });
  });

  const current = () => {
    if (!state) throw new Error('useCastellan(): starts in beforeAll');
    return state;
  };
  return {
    get dir() {
      return current().dir;
    },
    get lab() {
      return current().lab;
    },
    get redis() {
      return current().redis;
    },
    get configFile() {
      return current().configFile;
    },
    get runtime() {
      return current().runtime;
    },
    logs,
    cli: (args, o = {}) => runCli(['--config', current().configFile, ...args], o),
  };
}

export function runCli(args: readonly string[], o: { stdin?: string; env?: Record<string, string>; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, NO_COLOR: '1', ...(o.env ?? {}) }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(o.stdin ?? '');
  });
}

function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && b && typeof b === 'object' && !Array.isArray(b) ? merge(b as Record<string, unknown>, v as Record<string, unknown>) : v;
  }
  return out;
}
