// The tools' result views on recorded host output: what an operator reads in the terminal
// and what an AI client reads in MCP text, with alike hosts folded on their rendered rows.
import { describe, expect, it } from 'vitest';
import { catalogue, getTool } from '../../tools/index.js';
import type { HostResult } from '../../tools/host-result.js';
import type { StepResults } from '../../tools/types.js';
import { resultView, type ResultView } from '../../src/present/result-view.js';
import { viewText } from '../../src/present/render/text.js';
import { ctx, hostResult } from './tools-fixtures.js';

const plainText = { color: false };

/** Run the tool's summarize over recorded results, as the worker does, and build its view. */
function viewOf(tool: string, input: Record<string, unknown>, steps: Record<string, HostResult[]>): ResultView {
  const def = getTool(tool);
  const results: StepResults = new Map(Object.entries(steps).map(([id, rs]) => [id, new Map(rs.map((r) => [r.host, r]))]));
  const data = def.summarize?.(def.input.parse(input), results, ctx) ?? def.answer?.(def.input.parse(input), ctx);
  const view = resultView(def, JSON.parse(JSON.stringify(data)));
  if (!view) throw new Error(`${tool}: no view for ${JSON.stringify(data)}`);
  return view;
}

const text = (view: ResultView): string => viewText(view, plainText).join('\n');

const five = ['node01', 'node02', 'node03', 'node04', 'node05'];

describe('ping', () => {
  it('folds alike hosts into one line with p50 and max latency', () => {
    const latencies = [12, 9, 31, 14, 11];
    const view = viewOf('ping', {}, { ping: five.map((h, i) => hostResult(h, '', 'ok', { durationMs: latencies[i] ?? 0 })) });
    expect(text(view)).toBe('node[01-05] (5) ok  p50 12 ms  max 31 ms');
    expect(view.summary).toBe('5 of 5 reachable; p50 12 ms, max 31 ms');
    expect(view.rows).toHaveLength(1);
    expect(view.rows[0]).toMatchObject({ key: 'node[01-05]', hosts: five, count: 5 });
  });

  it('an unreachable host is a row of its own with the reason', () => {
    const view = viewOf('ping', {}, {
      ping: [
        ...five.slice(0, 4).map((h) => hostResult(h, '', 'ok', { durationMs: 10 })),
        hostResult('node05', '', 'unreachable', { error: 'connect ETIMEDOUT 10.0.0.5:22' }),
      ],
    });
    expect(text(view).split('\n')).toEqual([
      '4 of 5 reachable (node05 is not); p50 10 ms, max 10 ms',
      'node[01-04] (4) ok           p50 10 ms  max 10 ms',
      'node05          unreachable                        connect ETIMEDOUT 10.0.0.5:22',
    ]);
    expect(view.rows[1]?.tones?.[0]).toBe('bad');
  });
});

describe('uptime', () => {
  it('reads as up and load, never the raw /proc text', () => {
    const view = viewOf('uptime', {}, {
      uptime: [
        hostResult('node01', '273600.12 1000000.00\n0.42 0.38 0.30 1/389 12345\n'),
        hostResult('node02', '7500.00 20000.00\n1.20 0.80 0.50 2/400 999\n'),
        hostResult('node03', '', 'unreachable', { error: 'connect ECONNREFUSED' }),
      ],
    });
    const shown = text(view);
    expect(shown.split('\n')).toEqual([
      '2 of 3 hosts answered; shortest up 2h 5m (node02); highest load 1.20 (node02)',
      'hosts     up  load',
      'node01 3d 4h  0.42 0.38 0.30',
      'node02 2h 5m  1.20 0.80 0.50',
      'node03 unreachable: connect ECONNREFUSED',
    ]);
    expect(shown).not.toContain('273600');
  });

  it('hosts with equal rows fold', () => {
    const same = '60.00 100.00\n0.00 0.00 0.00 1/1 1\n';
    const view = viewOf('uptime', {}, { uptime: five.map((h) => hostResult(h, same)) });
    expect(view.rows).toHaveLength(1);
    expect(text(view)).toBe('hosts              up  load\nnode[01-05] (5) 1m 0s  0.00 0.00 0.00');
  });
});

describe('resource_usage', () => {
  const capture = (memAvailableKib: number, rootPercentUsed: number, milliC: number): string =>
    [
      'loadavg 0.42 0.38 0.30 1/290 4242',
      'cpus 4',
      'mem MemTotal:        7998136 kB',
      `mem MemAvailable:    ${memAvailableKib} kB`,
      'mem SwapTotal:        102396 kB',
      'mem SwapFree:         102396 kB',
      `rootfs /dev/mmcblk0p2 1000000 ${rootPercentUsed * 10000} ${1000000 - rootPercentUsed * 10000} ${rootPercentUsed}% /`,
      `thermal cpu-thermal ${milliC}`,
    ].join('\n');

  it('host · load · memory used/total (%) · root disk % · temperature', () => {
    const view = viewOf('resource_usage', {}, {
      resources: [hostResult('node01', capture(4718592, 18, 52000)), hostResult('node02', capture(700000, 93, 81000))],
    });
    expect(text(view).split('\n')).toEqual([
      'highest: memory 91 % (node02), root disk 93 % (node02), 81 °C (node02)',
      'hosts  load            cpus              memory  root disk   temp',
      'node01 0.42 0.38 0.30     4  3.1/7.6 GiB (41 %)       18 %  52 °C',
      'node02 0.42 0.38 0.30     4  7.0/7.6 GiB (91 %)       93 %  81 °C',
    ]);
    const row = view.rows[1];
    expect(row?.tones).toEqual(['', '', 'bad', 'bad', 'bad']);
  });
});

describe('disk_usage', () => {
  const DF = `Filesystem     Type     1024-blocks     Used Available Capacity Mounted on
/dev/mmcblk0p2 ext4        30000000  5452595  23000000      19% /
/dev/mmcblk0p1 vfat          522230    75926    446304      15% /boot/firmware
`;
  it('df -h style sizes; the same filesystems on several hosts fold', () => {
    const view = viewOf('disk_usage', {}, { df: ['node01', 'node02', 'node03'].map((h) => hostResult(h, DF)) });
    expect(text(view).split('\n')).toEqual([
      'fullest: / on node01 at 19 %',
      'hosts           mounted on      size  used  avail  use%  filesystem',
      'node[01-03] (3) /                29G  5.2G    22G  19 %  /dev/mmcblk0p2 (ext4)',
      'node[01-03] (3) /boot/firmware  510M   75M   436M  15 %  /dev/mmcblk0p1 (vfat)',
    ]);
  });
});

describe('service_status', () => {
  const show = (active: string, sub: string, restarts: number): string =>
    [
      'Id=nginx.service',
      'Description=A high performance web server',
      'LoadState=loaded',
      `ActiveState=${active}`,
      `SubState=${sub}`,
      'UnitFileState=enabled',
      'ActiveEnterTimestamp=Mon 2025-01-06 10:00:00 UTC',
      'MainPID=812',
      `NRestarts=${restarts}`,
    ].join('\n');

  it('host · active/sub · since · restarts, alike hosts folded', () => {
    const view = viewOf('service_status', { unit: 'nginx' }, {
      show: [hostResult('node01', show('active', 'running', 0)), hostResult('node02', show('active', 'running', 0)), hostResult('node03', show('failed', 'failed', 3))],
    });
    expect(text(view).split('\n')).toEqual([
      'nginx.service active on 2 of 3 (node03: failed)',
      'hosts           state           since                 restarts',
      'node[01-02] (2) active/running  2025-01-06 10:00 UTC         0',
      'node03          failed/failed   2025-01-06 10:00 UTC         3',
    ]);
  });
});

describe('inventory tools', () => {
  it('list_nodes is a table, not JSON', () => {
    const view = viewOf('list_nodes', { targets: 'web,storage1' }, {});
    const shown = text(view);
    expect(shown).not.toContain('{');
    expect(shown.split('\n')[0]).toBe('3 nodes in 4 groups');
    expect(shown.split('\n')[1]).toMatch(/^node\s+address\s+groups\s+labels$/);
    expect(shown).toMatch(/^node01\s+10\.0\.0\.\S+\s+k8s_cluster,k8s_worker,web\s+role=k8s-worker rack=left$/m);
  });

  it('list_groups shows sizes and members as node sets', () => {
    const shown = text(viewOf('list_groups', {}, {}));
    expect(shown).toMatch(/^k8s_worker\s+4\s+node\[01-04\]$/m);
    expect(shown).toMatch(/^all\s+7\s+cp\[1-2\],node\[01-04\],storage1\s+k8s_cluster,nfs_server$/m);
  });
});

describe('every tool', () => {
  it('declares a view for its structured result', () => {
    const missing = catalogue.filter((t) => t.output !== undefined && t.view === undefined).map((t) => t.name);
    expect(missing).toEqual([]);
  });

  it('data that does not fit the output schema gets no view (the folded output stands)', () => {
    expect(resultView(getTool('uptime'), { summary_error: 'boom' })).toBeUndefined();
    expect(resultView(getTool('exec'), { anything: 1 })).toBeUndefined();
  });
});
