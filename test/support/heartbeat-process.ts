// A worker's heartbeat run as its own process by the liveness tests, so that it can be
// SIGKILLed (a crash) or SIGSTOPped (a freeze) like a real worker. It notes one running
// delivery, then says "ready" on stdout; its log lines go to stderr.
//   node dist/test/support/heartbeat-process.js <redis-url> <prefix> <worker-id> <ttl-ms>
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { Heartbeat } from '../../queues/heartbeat.js';
import { keys } from '../../queues/keys.js';

const [url = '', prefix = 'castellan', id = 'w1', ttl = '3000'] = process.argv.slice(2);
// Like a worker connection: waits outages out, reconnects quickly.
const redis = new Redis(url, { maxRetriesPerRequest: null, retryStrategy: (times) => Math.min(times * 200, 2000) });
redis.on('error', () => undefined);
const heartbeat = new Heartbeat(redis, keys(prefix), { id, sites: [''], pid: process.pid, host: 'test' }, Number(ttl), pino(pino.destination(2)));
await heartbeat.start();
await heartbeat.running(`job-of-${id}`, { job: `job-of-${id}` });
process.stdout.write('ready\n');
