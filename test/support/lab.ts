// Per-test-file labs, like useRedis(): started in beforeAll, stopped (dir removed) in afterAll.
//
//   const lab = useLab({ nodes: 3 });           // real sshd nodes
//   const farm = useFarm({ nodes: 100 });       // in-process fake nodes
//   it('…', async () => { lab.current.nodes … farm.current.knownHostsFile … });
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { startFarm, type Farm, type FarmOptions } from '../../src/lab/fake-farm.js';
import { labUp, type Lab, type LabOptions } from '../../src/lab/sshd-lab.js';

export interface Handle<T> {
  /** The running lab/farm, valid from beforeAll on. */
  readonly current: T;
}

function useStarted<T>(prefix: string, start: (dir: string) => Promise<T>, stop: (value: T) => Promise<void>): Handle<T> {
  let value: T | undefined;
  let dir: string | undefined;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), prefix));
    value = await start(dir);
  });
  afterAll(async () => {
    if (value !== undefined) await stop(value);
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  return {
    get current(): T {
      if (value === undefined) throw new Error(`${prefix}: starts in beforeAll; use it inside a test or hook`);
      return value;
    },
  };
}

export function useLab(options: Omit<LabOptions, 'dir'>): Handle<Lab> {
  return useStarted('castellan-lab-', (dir) => labUp({ ...options, dir }), (lab) => lab.down());
}

export function useFarm(options: Omit<FarmOptions, 'dir'>): Handle<Farm> {
  return useStarted('castellan-farm-', (dir) => startFarm({ ...options, dir }), (farm) => farm.stop());
}
