// The interleaved warm benchmark's options and table (bench/warm.ts): that the kept fan-outs
// are the last ones of each process and that the A/B line pairs rounds. No timing here.
import { describe, expect, it } from 'vitest';
import type { CastellanMeasurement, FanoutSample } from '../../bench/castellan-client.js';
import { keptWarm, parseWarmOptions, renderWarm, summarize, warmClients } from '../../bench/warm.js';

const sample = (wallMs: number, hostsOk = 10): FanoutSample => ({ wallMs, cpuMs: wallMs / 2, nodeCpuMs: Number.NaN, hostsOk, hosts: 10, hostP50Ms: 1, hostP95Ms: 2 });

describe('bench/warm', () => {
  it('defaults to 1000 fake nodes, 5 rounds of 1 cold + 10 warm, the last 7 kept', () => {
    const o = parseWarmOptions([]);
    expect(o.fleet).toEqual({ kind: 'farm', nodes: 1000 });
    expect([o.rounds, o.warm, o.keep]).toEqual([5, 10, 7]);
    expect(o.shapes).toEqual(['raw-ssh2', 'executor', 'pipeline']);
    expect(parseWarmOptions(['--sshd', '50']).fleet).toEqual({ kind: 'sshd', nodes: 50 });
    expect(parseWarmOptions(['--node-flags=--max-semi-space-size=64  --no-opt']).nodeFlags).toEqual(['--max-semi-space-size=64', '--no-opt']);
  });

  it('refuses what it cannot measure', () => {
    expect(() => parseWarmOptions(['--nodes', '10', '--sshd', '5'])).toThrow(/exclude/);
    expect(() => parseWarmOptions(['--warm', '3', '--keep', '4'])).toThrow(/--keep/);
    expect(() => parseWarmOptions(['--shapes', 'pipeline,bogus'])).toThrow(/unknown shape/);
    expect(() => parseWarmOptions(['--before', '/nonexistent-castellan-build'])).toThrow(/no dist/);
  });

  it('adds the before build\'s rows after this build\'s', () => {
    const clients = warmClients({ shapes: ['raw-ssh2', 'pipeline'], beforeScript: '/b/bench/castellan-client.js', beforeShapes: ['pipeline'] });
    expect(clients.map((c) => [c.label, c.build])).toEqual([['raw ssh2 loop', 'this'], ['Castellan pipeline', 'this'], ['Castellan pipeline (before)', 'before']]);
  });

  it('keeps the last warm fan-outs of a process and pairs rounds for the A/B line', () => {
    const m: CastellanMeasurement = { shape: 'pipeline', cold: sample(500), warm: [300, 200, 100, 110].map((w) => sample(w)), maxRssMb: 1 };
    expect(keptWarm(m, 2).map((s) => s.wallMs)).toEqual([100, 110]);
    const rows = [
      summarize('raw ssh2 loop', [[sample(50)], [sample(70)]], []),
      summarize('Castellan pipeline', [[sample(100)], [sample(200)]], []),
      summarize('Castellan pipeline (before)', [[sample(150)], [sample(150, 9)]], []),
    ];
    const text = renderWarm('t', rows, { rounds: 2, warm: 4, keep: 1 }, '1.0', '2.0', 10);
    expect(text).toMatch(/\| Castellan pipeline \| 150 ms \(100–200\) \| 75 ms \| 2\.50 \| 100, 200 \| – MB \| 10\/10 \|/);
    expect(text).toMatch(/\| Castellan pipeline \(before\) \| 150 ms .* \| 9\/10 \|/);
    expect(text).toMatch(/faster in 1 of 2 rounds/);
    expect(text).toMatch(/lower in 1 of 2 rounds/);
  });
});
