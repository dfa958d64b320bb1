// Redis with two replicas under Sentinel, the deployment docs/deployment.md recommends: a
// primary that dies (SIGKILL, and it stays dead) while submissions go on. With one replica the
// new primary has no replica to confirm submissions until the old primary comes back; with two,
// the surviving replica follows the new primary as part of the failover, so submissions are
// confirmed again while the old primary stays dead. Every confirmed job ends correctly, none ran
// twice on its node (counted there), refusals said "unavailable" and never ran, and the audit
// is complete. The timing line is what `npm run bench:failover -- --replicas 2` reads.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  agreedPrimary,
  april,
  endings,
  expectRanOnceAndAudited,
  isRefused,
  MASTER,
  oscar,
  printFailoverTiming,
  ask,
  startFailoverSite,
  submitApproved,
  type Confirmed,
  type FailoverSite,
  type Refused,
} from '../support/sentinel.js';

let site: FailoverSite;

beforeAll(async () => {
  site = await startFailoverSite({ replicas: 2, nodes: 2 });
}, 180_000);

afterAll(async () => {
  await site?.down();
});

describe('Sentinel with two replicas', () => {
  it('a primary killed for good during submissions: submissions are confirmed again on the new primary, every confirmed job ends correctly and ran at most once', async () => {
    const { runtime, worker, sentinels, servers } = site;
    const [first, ...replicas] = servers;
    const tag = `castellan-replicas-${randomBytes(4).toString('hex')}`;
    const confirmed: Confirmed[] = [];
    const refused: Refused[] = [];
    let killedAt = 0;
    let switchedAt: number | undefined;
    let newPrimary: number | undefined;
    const deadline = Date.now() + 90_000;
    // Submissions one after the other; the primary SIGKILLed after the 3rd confirmed one; on
    // until 4 are confirmed after the sentinels name a new primary.
    for (let i = 0; Date.now() < deadline; i++) {
      if (killedAt > 0 && switchedAt === undefined) {
        const named = await agreedPrimary(sentinels, MASTER).catch(() => undefined);
        if (named !== undefined && named !== first!.port) [switchedAt, newPrimary] = [Date.now(), named];
      }
      if (confirmed.filter((c) => c.afterSwitch).length >= 4) break;
      const made = await submitApproved(runtime, { requester: oscar, approver: april }, `node0${(i % 2) + 1}`, `/tmp/${tag}-${i}.log`, tag, switchedAt !== undefined);
      if (isRefused(made)) {
        refused.push(made);
        continue;
      }
      confirmed.push(made);
      if (killedAt === 0 && confirmed.length >= 3) {
        killedAt = Date.now();
        await first!.kill();
      }
    }
    expect(switchedAt, 'the sentinels named a new primary').toBeDefined();
    expect(replicas.map((r) => r.port), 'a former replica is the new primary').toContain(newPrimary);
    // What two replicas are for: the old primary is still dead, yet submissions are confirmed.
    expect(confirmed.filter((c) => c.afterSwitch).length, `confirmed after the switch with the old primary dead (refused: ${refused.length})`).toBeGreaterThanOrEqual(4);
    const survivor = replicas.find((r) => r.port !== newPrimary)!;
    const link = /master_link_status:(\w+)/.exec(String(await ask(survivor.port, 'INFO', 'replication').catch((err: unknown) => String(err))))?.[1] ?? 'not a replica';

    const ended = await endings(runtime, oscar, confirmed, worker);
    printFailoverTiming(killedAt, switchedAt, ended, refused);
    console.log(`two replicas, primary killed: ${confirmed.length} confirmed (${confirmed.filter((c) => c.afterSwitch).length} after the switch), ${refused.length} refused; the other replica's link to the new primary: ${link}\n${ended.map((f) => `${f.id} ${f.state}: ${f.reason}`).join('\n')}`);
    await expectRanOnceAndAudited(runtime, ended, refused);
  }, 240_000);
});
