// List each node's ZFS boot environments: which one is running, which one the next boot uses.
import { z } from 'zod';
import { targetsOrAll, timeout } from './fields.js';
import { bootEnvironmentSchema, groupByDriver, listCommands, parseBeadmListing, parseZfsListing, type BootEnvironment } from './boot-env.js';
import { execStep, resolveHosts, singleBatchPlan, stepTimeout } from './planning.js';
import { hostReportSchema, reportHosts } from './reports.js';
import { foldNodeSet } from '../config/nodeset.js';
import { answered, bytesText, notAll, reportRows, type ResultViewDefinition } from './result-view.js';
import { defineTool, type StepResults } from './types.js';

function stepIds(index: number, groups: number): { list: string; bootfs: string } {
  const suffix = groups === 1 ? '' : `-${index + 1}`;
  return { list: `list${suffix}`, bootfs: `bootfs${suffix}` };
}

const bootEnvironmentsOutput = hostReportSchema({ environments: z.array(bootEnvironmentSchema), booted: z.string(), next_boot: z.string() });
type BootEnvironmentsData = z.output<typeof bootEnvironmentsOutput>;

/** One row per host and environment, marked booted / next boot; hosts with the same environments fold. */
const bootEnvironmentsView: ResultViewDefinition<BootEnvironmentsData, BootEnvironment> = {
  columns: [
    { label: 'environment', cell: (e) => e.name },
    {
      label: 'state',
      cell: (e) => [e.booted ? 'booted' : '', e.next_boot ? 'next boot' : ''].filter(Boolean).join(', '),
      tone: (e) => (e.next_boot && !e.booted ? 'warn' : undefined),
    },
    { label: 'created', cell: (e) => e.created.replace('T', ' ').replace(/:\d{2}(\.\d+)?Z$/, ' UTC') },
    { label: 'used', cell: (e) => (e.used_bytes === undefined ? '' : bytesText(e.used_bytes)), align: 'right' },
  ],
  rows: (data) => reportRows(data.hosts, (h) => h.environments),
  summary(data) {
    const up = answered(data.hosts, (h) => h.environments !== undefined);
    if (up.length === 0) return `no host answered (${data.hosts.length} asked)`;
    const switching = up.filter((h) => h.next_boot !== h.booted).map((h) => h.host);
    const booted = [...new Set(up.map((h) => h.booted ?? ''))];
    return `${notAll(up.length, data.hosts.length)}booted: ${booted.join(', ') || 'none found'}${switching.length ? `; ${foldNodeSet(switching)} boot another environment next` : ''}`;
  },
};

export const bootEnvironments = defineTool({
  name: 'boot_environments',
  title: 'List boot environments',
  description:
    'List the ZFS boot environments of each host, marking the running one and the one the next boot uses. ' +
    'Uses the tool the inventory names per host (castellan_be_tool: kbe, zectl, bectl; default plain zfs/zpool) under ' +
    'castellan_be_root (default rpool/ROOT). Mirrors `zectl list` / `bectl list` / `zfs list -r rpool/ROOT`.',
  risk: 'read',
  toolset: 'boot',
  idempotent: true,
  input: z.object({ targets: targetsOrAll, timeout }).strict(),
  output: bootEnvironmentsOutput,
  view: bootEnvironmentsView,
  plan(input, ctx) {
    const hosts = resolveHosts(ctx, input.targets);
    const groups = groupByDriver(ctx, hosts);
    const steps = groups.flatMap((group, i) => {
      const ids = stepIds(i, groups.length);
      const [list = [], bootfs] = listCommands(group.driver);
      const timeoutMs = stepTimeout(ctx, input.timeout);
      return [
        execStep({ id: ids.list, hosts: group.hosts, argv: list, asRoot: true, timeoutMs }),
        ...(bootfs ? [execStep({ id: ids.bootfs, hosts: group.hosts, argv: bootfs, asRoot: true, timeoutMs })] : []),
      ];
    });
    return singleBatchPlan('boot_environments', hosts, steps);
  },
  summarize(input, results, ctx) {
    const hosts = resolveHosts(ctx, input.targets);
    const groups = groupByDriver(ctx, hosts);
    return {
      hosts: groups.flatMap((group, i) => {
        const ids = stepIds(i, groups.length);
        const { driver } = group;
        return reportHosts(results, ids.list, (stdout, result) => {
          const environments: BootEnvironment[] =
            driver.tool === 'zectl' || driver.tool === 'bectl'
              ? parseBeadmListing(driver.tool, stdout)
              : parseZfsListing(driver.root, stdout, bootfsOutput(results, ids.bootfs, result.host));
          return {
            environments,
            booted: environments.find((e) => e.booted)?.name ?? '',
            next_boot: environments.find((e) => e.next_boot)?.name ?? '',
          };
        }).hosts;
      }),
    };
  },
});

function bootfsOutput(results: StepResults, stepId: string, host: string): string {
  const r = results.get(stepId)?.get(host);
  return r?.status === 'ok' ? r.stdout : '';
}
