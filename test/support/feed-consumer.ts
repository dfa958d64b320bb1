// A notifier stand-in run as its own process by the feed tests, so that it can be killed
// with SIGKILL mid-stream: it consumes the all-jobs feed in a consumer group and records each
// entry id in a Redis list, in the same transaction that acknowledges the entry.
//   node dist/test/support/feed-consumer.js <redis-url> <prefix> <group> <consumer> <delay-ms>
import { Redis } from 'ioredis';
import { JobFeed } from '../../queues/feed.js';
import { keys } from '../../queues/keys.js';
import { sleep } from '../../queues/sleep.js';

const [url = '', prefix = 'castellan', group = 'notifier', consumer = 'c1', delay = '0'] = process.argv.slice(2);
const redis = new Redis(url, { maxRetriesPerRequest: 1 });
const k = keys(prefix);
const feed = new JobFeed(redis, k);
process.stdout.write('ready\n');
await feed.consume(
  async (entry, tx) => {
    await sleep(Number(delay));
    tx.rpush(`${prefix}:test:seen`, `${entry.id} ${entry.jobId} ${entry.event.type}`);
  },
  { group, consumer, startAt: '0', blockMs: 200 },
);
