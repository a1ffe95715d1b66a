import { describe, expect, it } from 'vitest';
import { manualClock } from '../../../test-support/manual-clock.js';
import { createQuotaEngine } from '../src/engine.js';
import { QuotaValidationError } from '../src/errors.js';
import { MemoryLedger } from '../src/memory-ledger.js';
import type { UsageEvent, UsageLedger, UsageQuery } from '../src/usage-ledger.js';

const DAY = { from: new Date('2026-11-28T00:00:00Z'), to: new Date('2026-11-29T00:00:00Z') };

function setup(ledger: UsageLedger = new MemoryLedger()) {
  const clock = manualClock('2026-11-28T12:00:00Z');
  const engine = createQuotaEngine({
    clock: clock.now,
    ledger,
    defaults: {
      llm_requests: { limit: 10, period: 'per_day' },
      llm_tokens: { limit: 1000, period: 'per_day' },
    },
  });
  return { clock, engine };
}

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of iterable) items.push(item);
  return items;
}

/** Minimal RFC 4180 parser for one line, enough to read exports back. */
function parseCsvLine(line: string): string[] {
  const fields: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const char = line[i]!;
    if (quoted) {
      if (char === '"' && line[i + 1] === '"') {
        field += '"';
        i++;
      } else if (char === '"') quoted = false;
      else field += char;
    } else if (char === '"') quoted = true;
    else if (char === ',') {
      fields.push(field);
      field = '';
    } else field += char;
  }
  fields.push(field);
  return fields;
}

describe('usage ledger', () => {
  it('keeps every recorded, consumed and committed amount, and nothing else', async () => {
    const { clock, engine } = setup();
    await engine.recordUsage({
      userId: 'u',
      resource: 'llm_tokens',
      amount: 120,
      taskId: 't1',
      idempotencyKey: 'k1',
      metadata: { model: 'gpt-4o', provider: 'openai' },
    });
    await engine.recordUsage({
      userId: 'u',
      resource: 'llm_tokens',
      amount: 120,
      idempotencyKey: 'k1',
    });
    clock.advance(1000);
    await engine.consume({
      userId: 'u',
      agentId: 'a',
      amounts: { llm_requests: 1, llm_tokens: 0 },
    });
    await engine.consume({ userId: 'u', amounts: { llm_tokens: 5000 } }); // refused
    const reservation = await engine.reserve({ userId: 'u', amounts: { llm_tokens: 300 } });
    const released = await engine.reserve({ userId: 'u', amounts: { llm_tokens: 100 } });
    await released.release();
    clock.advance(1000);
    await reservation.commit({ llm_tokens: 250 });
    const events = await collect(engine.usageEvents({ ...DAY, userId: 'u' }));
    expect(events.map((e) => [e.resource, e.amount])).toEqual([
      ['llm_tokens', 120],
      ['llm_requests', 1],
      ['llm_tokens', 250],
    ]);
    expect(events[0]).toMatchObject({
      userId: 'u',
      taskId: 't1',
      idempotencyKey: 'k1',
      metadata: { model: 'gpt-4o', provider: 'openai' },
      at: new Date('2026-11-28T12:00:00Z'),
    });
    expect(events[1]).toMatchObject({ agentId: 'a', metadata: {} });
    expect(new Set(events.map((e) => e.id)).size).toBe(3);
  });

  it('filters by time range, subject and resource', async () => {
    const { clock, engine } = setup();
    await engine.recordUsage({ userId: 'a', tenantId: 't', resource: 'llm_tokens', amount: 1 });
    await engine.recordUsage({ userId: 'b', tenantId: 't', resource: 'llm_requests', amount: 2 });
    clock.set('2026-11-29T00:00:00Z');
    await engine.recordUsage({ userId: 'a', tenantId: 't', resource: 'llm_tokens', amount: 3 });
    const amounts = async (query: Partial<UsageQuery>) =>
      (await collect(engine.usageEvents({ ...DAY, ...query }))).map((e) => e.amount);
    expect(await amounts({ tenantId: 't' })).toEqual([1, 2]);
    expect(await amounts({ userId: 'a' })).toEqual([1]);
    expect(await amounts({ resource: 'llm_requests' })).toEqual([2]);
    expect(await amounts({ to: new Date('2026-11-30T00:00:00Z') })).toEqual([1, 2, 3]);
  });

  it('exports CSV and CloudEvents lines that parse back to the same amounts and ids', async () => {
    const { engine } = setup();
    await engine.recordUsage({
      userId: 'u,"quoted"',
      resource: 'llm_tokens',
      amount: 12.5,
      metadata: { note: 'a, "b"\nc' },
    });
    await engine.recordUsage({ tenantId: 't', resource: 'llm_requests', amount: 1 });
    const csv = await collect(engine.exportUsage({ ...DAY, format: 'csv' }));
    expect(csv[0]).toBe(
      'id,at,resource,amount,userId,agentId,tenantId,runId,taskId,idempotencyKey,metadata',
    );
    expect(csv).toHaveLength(3);
    const header = parseCsvLine(csv[0]!);
    const rows = csv
      .slice(1)
      .map((line) => Object.fromEntries(parseCsvLine(line).map((value, i) => [header[i], value])));
    expect(rows.map((row) => Number(row.amount))).toEqual([12.5, 1]);
    expect(rows[0]!.userId).toBe('u,"quoted"');
    expect(JSON.parse(rows[0]!.metadata!)).toEqual({ note: 'a, "b"\nc' });

    const cloud = await collect(engine.exportUsage({ ...DAY, format: 'cloudevents' }));
    const parsed = cloud.map((line) => JSON.parse(line));
    expect(parsed.map((event) => event.data.amount)).toEqual([12.5, 1]);
    expect(parsed[1]).toMatchObject({
      specversion: '1.0',
      type: 'dev.quotakit.usage.recorded',
      source: 'quotakit',
      subject: 't',
      datacontenttype: 'application/json',
    });
    expect(parsed.map((event) => event.id)).toEqual(rows.map((row) => row.id));
    // A re-export carries the same ids: downstream de-duplicates.
    const again = await collect(engine.exportUsage({ ...DAY, format: 'cloudevents' }));
    expect(again.map((line) => JSON.parse(line).id)).toEqual(parsed.map((event) => event.id));
  });

  it('writes in batches off the hot path and flushes them on close', async () => {
    const appended: UsageEvent[][] = [];
    const slow: UsageLedger = {
      async append(events) {
        await new Promise((resolve) => setTimeout(resolve, 5));
        appended.push([...events]);
      },
      async *query() {},
    };
    const { engine } = setup(slow);
    for (let i = 0; i < 3; i++) {
      await engine.recordUsage({ userId: 'u', resource: 'llm_tokens', amount: 1 });
    }
    expect(appended).toHaveLength(0);
    await engine.close();
    expect(appended.flat()).toHaveLength(3);
    expect(appended).toHaveLength(1);
  });

  it('keeps events while the ledger fails and writes them when it is back', async () => {
    let failing = true;
    const errors: unknown[] = [];
    const kept: UsageEvent[] = [];
    const flaky: UsageLedger = {
      async append(events) {
        if (failing) throw new Error('ledger down');
        kept.push(...events);
      },
      async *query() {},
    };
    const engine = createQuotaEngine({ ledger: flaky, onError: (error) => errors.push(error) });
    await engine.recordUsage({ userId: 'u', resource: 'llm_tokens', amount: 7 });
    await engine.close();
    expect(errors).toHaveLength(1);
    failing = false;
    await engine.close();
    expect(kept.map((event) => event.amount)).toEqual([7]);
  });

  it('does not retry a failing ledger on every batch, only on its back-off timer', async () => {
    let attempts = 0;
    const down: UsageLedger = {
      async append() {
        attempts += 1;
        throw new Error('ledger down');
      },
      async *query() {},
    };
    const engine = createQuotaEngine({ ledger: down, onError: () => {} });
    for (let i = 0; i < 2_000; i++) {
      await engine.recordUsage({ userId: 'u', resource: 'llm_tokens', amount: 1 });
    }
    // The first full batch tried once; the 1,500 records after it waited for the timer.
    expect(attempts).toBe(1);
  });

  it('bounds the memory ledger to maxEvents, dropping the oldest', async () => {
    const ledger = new MemoryLedger({ maxEvents: 2 });
    const { engine } = setup(ledger);
    for (const amount of [1, 2, 3]) {
      await engine.recordUsage({ userId: 'u', resource: 'llm_tokens', amount });
    }
    expect((await collect(engine.usageEvents(DAY))).map((e) => e.amount)).toEqual([2, 3]);
    expect(ledger.size).toBe(2);
  });

  it('refuses bad queries and metadata with a typed error', async () => {
    const { engine } = setup();
    await expect(
      collect(engine.usageEvents({ from: new Date('x'), to: new Date() })),
    ).rejects.toThrow(QuotaValidationError);
    await expect(collect(engine.usageEvents({ from: DAY.to, to: DAY.from }))).rejects.toThrow(
      'from must not be after to',
    );
    await expect(collect(engine.exportUsage({ ...DAY, format: 'xml' as 'csv' }))).rejects.toThrow(
      /format must be/,
    );
    await expect(
      engine.recordUsage({ userId: 'u', resource: 'llm_tokens', amount: 1, metadata: [] as never }),
    ).rejects.toThrow('metadata must be a plain object');
    const noLedger = createQuotaEngine({ ledger: false });
    await expect(collect(noLedger.usageEvents(DAY))).rejects.toThrow(/no usage ledger/);
  });
});
