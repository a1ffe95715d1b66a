import { createQuotaEngine } from '@quotakit/core';
import { RedisStore } from '@quotakit/redis';
import { Redis } from 'ioredis';
import { RateLimiterRedis } from 'rate-limiter-flexible';
const client = new Redis();
const which = process.argv[2];
const engine = createQuotaEngine({ store: new RedisStore({ client, prefix: 'profq' }), defaults: { llm_requests: { limit: 1e9, period: 'per_day' } } });
const peer = new RateLimiterRedis({ storeClient: client, points: 1e9, duration: 86400, keyPrefix: 'profp' });
const ids = Array.from({ length: 100_000 }, (_, i) => `user-${i}`);
const op = which === 'q' ? (id: string) => engine.consume({ userId: id, amounts: { llm_requests: 1 } }).then((d) => { if (!d.allowed) throw new Error('refused'); }) : (id: string) => peer.consume(id, 1);
async function run(count: number) { let next = 0; await Promise.all(Array.from({ length: 64 }, async () => { while (next < count) await op(ids[next++ % ids.length]!); })); }
await client.ping();
await run(100_000);
const t = performance.now(); await run(200_000); console.log(which, Math.round(200_000 / (performance.now() - t) * 1000), 'ops/s');
client.disconnect();
