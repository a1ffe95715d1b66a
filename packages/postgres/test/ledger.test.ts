import {
  createQuotaEngine,
  MemoryStore,
  QuotaValidationError,
  USAGE_EVENT_FIELDS,
  type UsageEvent,
} from '@quotakit/core';
import { PostgresLedger, PostgresStore } from '@quotakit/postgres';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  createPool,
  describeWithPostgres,
  dropSchema,
  postgresAvailable,
  uniqueSchema,
} from './postgres-service.js';

const schema = uniqueSchema('ledger');
const ledgerSchema = uniqueSchema('ledger_only');
const pool = postgresAvailable ? createPool() : undefined;
const DAY = 86_400_000;
// A Monday, 10:00 UTC.
const NOW = Date.UTC(2030, 3, 1, 10);

let store: PostgresStore;

beforeAll(async () => {
  if (pool === undefined) return;
  store = new PostgresStore({ pool, schema });
  await store.migrate();
});
afterAll(async () => {
  if (pool === undefined) return;
  await dropSchema(pool, schema);
  await dropSchema(pool, ledgerSchema);
  await pool.end();
});

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of items) all.push(item);
  return all;
}

/** RFC 4180: fields separated by commas, quoted when they hold commas, quotes or newlines. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const char = text[i]!;
    if (quoted) {
      if (char === '"' && text[i + 1] === '"') {
        field += '"';
        i += 1;
      } else if (char === '"') quoted = false;
      else field += char;
    } else if (char === '"') quoted = true;
    else if (char === ',') {
      row.push(field);
      field = '';
    } else if (char === '\n') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else field += char;
  }
  row.push(field);
  rows.push(row);
  return rows;
}

function engineAt(clock: () => number) {
  return createQuotaEngine({
    store,
    clock,
    defaults: {
      llm_requests: { limit: 3, period: 'per_day' },
      llm_tokens: { limit: 1_000, period: 'per_day' },
      cost_usd: { limit: 10, period: 'per_month' },
    },
  });
}

describeWithPostgres('PostgresStore ledger', () => {
  it('writes one event per admitted consume, commit and record, and none for refusals, holds, releases or duplicates', async () => {
    const userId = `events-${schema}`;
    const engine = engineAt(() => NOW);
    const range = { from: new Date(NOW), to: new Date(NOW + 1), userId };
    expect(
      (await engine.consume({ userId, amounts: { llm_requests: 1, llm_tokens: 100 } })).allowed,
    ).toBe(true);
    expect((await engine.consume({ userId, amounts: { llm_tokens: 5_000 } })).allowed).toBe(false);
    const held = await engine.reserve({ userId, amounts: { llm_tokens: 400 } });
    expect(await collect(engine.usageEvents(range))).toHaveLength(2);
    await held.commit({ llm_tokens: 250 });
    const released = await engine.reserve({ userId, amounts: { llm_tokens: 100 } });
    await released.release();
    const record = { userId, resource: 'cost_usd', amount: 0.00475, idempotencyKey: `k-${schema}` };
    await engine.recordUsage(record);
    await engine.recordUsage(record);
    const events = await collect(engine.usageEvents(range));
    expect(events.map((event) => [event.resource, event.amount])).toEqual([
      ['llm_requests', 1],
      ['llm_tokens', 100],
      ['llm_tokens', 250],
      ['cost_usd', 0.00475],
    ]);
    expect(events[3]).toMatchObject({ idempotencyKey: record.idempotencyKey, userId });
    expect((await engine.getQuotaStatus('llm_tokens', { userId })).used).toBe(350);
    expect((await engine.getQuotaStatus('cost_usd', { userId })).used).toBe(0.00475);
  });

  it('exports CSV and CloudEvents lines that parse back to the same events', async () => {
    const userId = `export, "quoted" ${schema} 🚀`;
    const engine = engineAt(() => NOW + 1_000);
    const amounts = [0.00475, 1e-7, 123_456.789, 0.1 + 0.2, 3];
    for (const [i, amount] of amounts.entries()) {
      await engine.recordUsage({
        userId,
        tenantId: 'acme\u0000corp',
        resource: 'cost_usd',
        amount,
        taskId: `task,${i}`,
        metadata: { model: 'gpt-4o', note: 'a "b", c\nd', nul: 'x\u0000y', i },
      });
    }
    const range = { from: new Date(NOW + 1_000), to: new Date(NOW + 1_001), userId };
    const csv = await collect(engine.exportUsage({ ...range, format: 'csv' }));
    expect(csv[0]).toBe(USAGE_EVENT_FIELDS.join(','));
    const [header, ...rows] = parseCsv(csv.join('\n'));
    expect(header).toEqual([...USAGE_EVENT_FIELDS]);
    expect(rows).toHaveLength(amounts.length);
    const column = (name: (typeof USAGE_EVENT_FIELDS)[number]) => header!.indexOf(name);
    expect(rows.map((row) => Number(row[column('amount')]))).toEqual(amounts);
    expect(rows.map((row) => row[column('userId')])).toEqual(amounts.map(() => userId));
    expect(rows.map((row) => row[column('tenantId')])).toEqual(amounts.map(() => 'acme\u0000corp'));
    expect(JSON.parse(rows[0]![column('metadata')]!)).toEqual({
      model: 'gpt-4o',
      note: 'a "b", c\nd',
      nul: 'x\u0000y',
      i: 0,
    });
    expect(rows.map((row) => new Date(row[column('at')]!).getTime())).toEqual(
      amounts.map(() => NOW + 1_000),
    );

    const cloud = await collect(
      engine.exportUsage({ ...range, format: 'cloudevents', source: 'billing' }),
    );
    const parsed = cloud.map((line) => JSON.parse(line));
    expect(parsed.map((event) => event.data.amount)).toEqual(amounts);
    expect(parsed[0]).toMatchObject({
      specversion: '1.0',
      source: 'billing',
      type: 'dev.quotakit.usage.recorded',
      subject: userId,
      time: new Date(NOW + 1_000).toISOString(),
      data: { resource: 'cost_usd', userId, tenantId: 'acme\u0000corp', taskId: 'task,0' },
    });
    expect(parsed.map((event) => event.id)).toEqual(rows.map((row) => row[column('id')]));
    // A re-export carries the same ids, so downstream can de-duplicate.
    const again = await collect(
      engine.exportUsage({ ...range, format: 'cloudevents', source: 'billing' }),
    );
    expect(again.map((line) => JSON.parse(line).id)).toEqual(parsed.map((event) => event.id));
  });

  it('reports usage per window, resource and subject in a time zone', async () => {
    const tenantId = `report-${schema}`;
    let clock = NOW;
    const engine = engineAt(() => clock);
    // Monday 10:00 UTC and 23:30 UTC (Tuesday 01:30 in Berlin), Wednesday, and next Monday.
    const plan: Array<[number, string, number]> = [
      [NOW, 'u1', 1.5],
      [NOW, 'u2', 2],
      [NOW + 13.5 * 3_600_000, 'u1', 0.25],
      [NOW + 2 * DAY, 'u1', 4],
      [NOW + 7 * DAY, 'u2', 8],
    ];
    for (const [at, userId, amount] of plan) {
      clock = at;
      await engine.recordUsage({ tenantId, userId, resource: 'cost_usd', amount });
    }
    const range = { from: new Date(NOW - DAY), to: new Date(NOW + 14 * DAY), tenantId };
    const daily = await store.ledger.report({ ...range, groupBy: ['userId'] });
    expect(
      daily.map((row) => [row.windowStart.toISOString(), row.userId, row.amount, row.events]),
    ).toEqual([
      ['2030-04-01T00:00:00.000Z', 'u1', 1.75, 2],
      ['2030-04-01T00:00:00.000Z', 'u2', 2, 1],
      ['2030-04-03T00:00:00.000Z', 'u1', 4, 1],
      ['2030-04-08T00:00:00.000Z', 'u2', 8, 1],
    ]);
    expect(daily[0]!.windowEnd.toISOString()).toBe('2030-04-02T00:00:00.000Z');
    const berlin = await store.ledger.report({
      ...range,
      groupBy: [],
      window: 'per_day',
      timeZone: 'Europe/Berlin',
    });
    expect(berlin.map((row) => [row.windowStart.toISOString(), row.amount])).toEqual([
      ['2030-03-31T22:00:00.000Z', 3.5],
      ['2030-04-01T22:00:00.000Z', 0.25],
      ['2030-04-02T22:00:00.000Z', 4],
      ['2030-04-07T22:00:00.000Z', 8],
    ]);
    const weekly = await store.ledger.report({
      ...range,
      groupBy: ['tenantId'],
      window: 'per_week',
    });
    expect(weekly.map((row) => [row.windowStart.toISOString(), row.tenantId, row.amount])).toEqual([
      ['2030-04-01T00:00:00.000Z', tenantId, 7.75],
      ['2030-04-08T00:00:00.000Z', tenantId, 8],
    ]);
    const total = await store.ledger.report({ ...range, window: 'total', groupBy: ['userId'] });
    expect(total).toEqual([
      {
        windowStart: range.from,
        windowEnd: range.to,
        resource: 'cost_usd',
        userId: 'u1',
        amount: 5.75,
        events: 3,
      },
      {
        windowStart: range.from,
        windowEnd: range.to,
        resource: 'cost_usd',
        userId: 'u2',
        amount: 10,
        events: 2,
      },
    ]);
    await expect(
      store.ledger.report({ ...range, window: 'per_fortnight' as never }),
    ).rejects.toThrow(/window must be one of/);
    await expect(store.ledger.report({ ...range, timeZone: 'Mars/Olympus' })).rejects.toThrow(
      /timeZone/,
    );
  });

  it('reports cost per model through a metadata field', async () => {
    const tenantId = `models-${schema}`;
    const engine = engineAt(() => NOW);
    const spend: Array<[string | undefined, number]> = [
      ['gpt-4o', 0.5],
      ['claude-sonnet-4', 0.25],
      ['gpt-4o', 1],
      [undefined, 2],
    ];
    for (const [model, amount] of spend) {
      await engine.recordUsage({
        tenantId,
        resource: 'cost_usd',
        amount,
        metadata: model === undefined ? {} : { model, provider: 'x' },
      });
    }
    const range = { from: new Date(NOW - DAY), to: new Date(NOW + DAY), tenantId };
    const byModel = await store.ledger.report({
      ...range,
      window: 'total',
      groupBy: ['metadata.model'],
    });
    expect(byModel.map((row) => [row.metadata?.model, row.amount, row.events])).toEqual([
      [undefined, 2, 1],
      ['claude-sonnet-4', 0.25, 1],
      ['gpt-4o', 1.5, 2],
    ]);
    const daily = await store.ledger.report({
      ...range,
      groupBy: ['tenantId', 'metadata.model', 'metadata.provider'],
    });
    expect(daily.find((row) => row.metadata?.model === 'gpt-4o')).toMatchObject({
      tenantId,
      metadata: { model: 'gpt-4o', provider: 'x' },
      amount: 1.5,
    });
    await expect(
      store.ledger.report({ ...range, groupBy: ['metadata.'] as never }),
    ).rejects.toThrow(/metadata.<key>/);
    await expect(store.ledger.report({ ...range, groupBy: ['model'] as never })).rejects.toThrow(
      /groupBy accepts/,
    );
  });
});

describeWithPostgres('PostgresLedger beside another store', () => {
  it('keeps the usage of an engine whose counters live in memory, flushed on close', async () => {
    const ledger = new PostgresLedger({ pool: pool!, schema: ledgerSchema, pageSize: 3 });
    const first = await ledger.migrate();
    expect(first.applied.map((m) => `${m.component}:${m.version}`)).toEqual(['ledger:1']);
    expect((await ledger.migrate()).applied).toEqual([]);
    const engine = createQuotaEngine({
      store: new MemoryStore(),
      ledger,
      clock: () => NOW,
      defaults: { llm_tokens: { limit: 1_000_000, period: 'per_day' } },
    });
    for (let i = 0; i < 10; i++) {
      await engine.consume({ userId: 'mem', amounts: { llm_tokens: i + 1 } });
    }
    await engine.close();
    // Read page by page (3 per page), all at the same instant: insertion order, none skipped.
    const events = await collect(
      ledger.query({ from: new Date(NOW), to: new Date(NOW + 1), userId: 'mem' }),
    );
    expect(events.map((event) => event.amount)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    // Appends are idempotent by id: a retried batch doubles nothing.
    await ledger.append(events.slice(0, 4));
    const again = await collect(ledger.query({ from: new Date(NOW), to: new Date(NOW + 1) }));
    expect(again).toEqual(events);
  });

  it('reads events in [from, to), oldest first, filtered by subject and resource', async () => {
    const ledger = new PostgresLedger({ pool: pool!, schema: ledgerSchema });
    const event = (id: string, at: number, extra: Partial<UsageEvent>): UsageEvent => ({
      id: `${id}-${ledgerSchema}`,
      at: new Date(at),
      resource: 'llm_tokens',
      amount: 1,
      metadata: {},
      ...extra,
    });
    const base = NOW + 10 * DAY;
    await ledger.append([
      event('late', base + 2, { agentId: 'a' }),
      event('early', base, { agentId: 'a' }),
      event('other-agent', base + 1, { agentId: 'b' }),
      event('other-resource', base + 1, { agentId: 'a', resource: 'llm_requests' }),
      event('at-end', base + 3, { agentId: 'a' }),
    ]);
    const ids = (events: UsageEvent[]) => events.map((e) => e.id.split('-')[0]);
    const range = { from: new Date(base), to: new Date(base + 3) };
    expect(
      ids(await collect(ledger.query({ ...range, agentId: 'a', resource: 'llm_tokens' }))),
    ).toEqual(['early', 'late']);
    expect(ids(await collect(ledger.query(range)))).toEqual(['early', 'other', 'other', 'late']);
  });

  it('prunes the events before a date, a batch at a time, and keeps the rest', async () => {
    const ledger = new PostgresLedger({ pool: pool!, schema: ledgerSchema });
    const base = NOW + 20 * DAY;
    const events: UsageEvent[] = Array.from({ length: 7 }, (_, i) => ({
      id: `prune-${i}-${ledgerSchema}`,
      at: new Date(base + i * DAY),
      resource: 'llm_tokens',
      amount: i + 1,
      userId: 'pruned',
      metadata: {},
    }));
    await ledger.append(events);
    const range = { from: new Date(base), to: new Date(base + 7 * DAY), userId: 'pruned' };

    // Bad input deletes nothing.
    await expect(ledger.prune({ before: new Date(Number.NaN) })).rejects.toThrow(
      QuotaValidationError,
    );
    await expect(ledger.prune({ before: new Date(base + 9 * DAY), batchSize: 0 })).rejects.toThrow(
      QuotaValidationError,
    );
    expect(await collect(ledger.query(range))).toHaveLength(7);

    // Events from earlier tests in this schema are older still: they go too.
    const older = (await collect(ledger.query({ from: new Date(0), to: new Date(base) }))).length;
    const deleted = await ledger.prune({ before: new Date(base + 4 * DAY), batchSize: 2 });

    expect(deleted).toBe(older + 4);
    expect((await collect(ledger.query(range))).map((event) => event.amount)).toEqual([5, 6, 7]);
    expect(await collect(ledger.query({ from: new Date(0), to: new Date(base) }))).toEqual([]);
    expect(await ledger.prune({ before: new Date(base + 4 * DAY) })).toBe(0);
  });
});
