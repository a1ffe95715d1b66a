import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createQuotaEngine } from '@quotakit/core';
import { PostgresLedger, PostgresStore } from '@quotakit/postgres';
import type pg from 'pg';
import { afterAll, expect, it, vi } from 'vitest';
import {
  createPool,
  DATABASE_URL,
  describeWithPostgres,
  dropSchema,
  postgresAvailable,
  uniqueSchema,
} from './postgres-service.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = fileURLToPath(new URL('../src/cli.ts', import.meta.url));
const schemas: string[] = [];
const pools: pg.Pool[] = [];
const admin = postgresAvailable ? createPool({ max: 2 }) : undefined;

afterAll(async () => {
  if (admin === undefined) return;
  for (const pool of pools) await pool.end();
  for (const schema of schemas) await dropSchema(admin, schema);
  await admin.end();
});

function freshSchema(name: string): string {
  const schema = uniqueSchema(name);
  schemas.push(schema);
  return schema;
}

/** Runs the CLI from its source (tsx); resolves with its exit code and output. */
function cli(args: readonly string[], env: Record<string, string> = {}) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], {
      cwd: ROOT,
      env: { ...process.env, TSX_TSCONFIG_PATH: `${ROOT}tsconfig.json`, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

async function appliedVersions(schema: string): Promise<string[]> {
  const { rows } = await admin!.query(
    `SELECT component || ':' || version AS v FROM "${schema}".schema_migrations ORDER BY 1`,
  );
  return rows.map((row) => row.v);
}

describeWithPostgres('migrations', () => {
  it('succeeds when four processes and four pools migrate one schema at once, applying each version once', async () => {
    const schema = freshSchema('concurrent');
    // Hold the migration lock of the schema, so that all eight start waiting together.
    const gate = await admin!.connect();
    await gate.query('BEGIN');
    await gate.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [0x716b6d67, schema]);
    const inProcess = Array.from({ length: 4 }, () => {
      const pool = createPool({ max: 1 });
      pools.push(pool);
      return new PostgresStore({ pool, schema }).migrate();
    });
    const processes = Array.from({ length: 4 }, () =>
      cli(['migrate', '--url', DATABASE_URL, '--schema', schema]),
    );
    for (let attempt = 0; ; attempt++) {
      const { rows } = await gate.query(
        "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
      );
      if (rows[0].n >= 8) break;
      if (attempt > 600) throw new Error(`only ${rows[0].n} of 8 migrations waited for the lock`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    await gate.query('COMMIT');
    gate.release();
    const [results, runs] = await Promise.all([Promise.all(inProcess), Promise.all(processes)]);
    for (const run of runs) expect(run).toMatchObject({ code: 0, stderr: '' });
    const appliedInProcess = results.filter((result) => result.applied.length > 0);
    const appliedByCli = runs.filter((run) => run.stdout.includes('applied'));
    // Exactly one of the eight did the work; the others found it done.
    expect(appliedInProcess.length + appliedByCli.length).toBe(1);
    for (const run of runs) {
      if (!run.stdout.includes('applied')) {
        expect(run.stdout).toBe(`Schema "${schema}" is up to date.\n`);
      }
    }
    expect(await appliedVersions(schema)).toEqual(['ledger:1', 'store:1', 'store:2']);
    // A rerun is a no-op, and the store works.
    const store = new PostgresStore({ pool: admin!, schema });
    expect(await store.migrate()).toEqual({ schema, applied: [] });
    const engine = createQuotaEngine({
      store,
      defaults: { llm_requests: { limit: 1, period: 'per_day' } },
    });
    expect((await engine.consume({ userId: 'u', amounts: { llm_requests: 1 } })).allowed).toBe(
      true,
    );
    expect((await engine.consume({ userId: 'u', amounts: { llm_requests: 1 } })).allowed).toBe(
      false,
    );
  }, 60_000);

  it('migrates the ledger alone, then the store on top of it', async () => {
    const schema = freshSchema('layers');
    const ledgerOnly = await cli(['migrate', '--ledger-only', '--schema', schema], {
      DATABASE_URL,
    });
    expect(ledgerOnly).toMatchObject({
      code: 0,
      stdout: `Schema "${schema}": applied ledger v1 (usage events).\n`,
    });
    expect(await appliedVersions(schema)).toEqual(['ledger:1']);
    expect((await new PostgresLedger({ pool: admin!, schema }).migrate()).applied).toEqual([]);
    const store = await new PostgresStore({ pool: admin!, schema }).migrate();
    expect(store.applied).toEqual([
      { component: 'store', version: 1, name: 'counters and reservations' },
      { component: 'store', version: 2, name: 'overrides version' },
    ]);
  }, 60_000);

  it('upgrades a schema of the first release: its overrides are kept and versioned', async () => {
    const schema = freshSchema('upgrade');
    const store = new PostgresStore({ pool: admin!, schema });
    await store.migrate();
    // Back to what the first release left: store v1 only.
    await admin!.query(`DROP TABLE "${schema}".overrides_version;
      DROP FUNCTION "${schema}".bump_overrides_version() CASCADE;
      DELETE FROM "${schema}".schema_migrations WHERE component = 'store' AND version = 2`);
    const override = {
      scope: 'user' as const,
      id: 'u1',
      resource: 'llm_tokens',
      rules: [{ limit: 5, period: 'per_day' as const }],
    };
    await store.setOverride(override);
    // Not migrated yet: listed without a version (said once), and decisions still count and
    // still apply the override, with no error and no lookup per subject.
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    try {
      expect(await store.listVersionedOverrides()).toEqual({
        version: undefined,
        overrides: [override],
      });
      const errors: unknown[] = [];
      const engine = createQuotaEngine({
        store,
        defaults: { llm_tokens: { limit: 100, period: 'per_day' } },
        onError: (error) => errors.push(error),
      });
      for (const userId of ['u1', 'u2', 'u3']) {
        const decision = await engine.consume({ userId, amounts: { llm_tokens: 3 } });
        expect(decision.results.llm_tokens).toMatchObject({ allowed: true, used: 3 });
      }
      expect((await engine.checkQuota({ userId: 'u1', resource: 'llm_tokens' })).limit).toBe(5);
      expect(errors).toEqual([]);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(String(warn.mock.calls[0]![0])).toContain('migrate');
    } finally {
      warn.mockRestore();
    }
    expect((await store.migrate()).applied).toEqual([
      { component: 'store', version: 2, name: 'overrides version' },
    ]);
    const listed = await store.listVersionedOverrides();
    expect(listed.overrides).toEqual([override]);
    await store.removeOverride(override);
    const after = await store.listVersionedOverrides();
    expect(after).toEqual({ version: expect.any(String), overrides: [] });
    expect(after.version).not.toBe(listed.version);
    // Even a TRUNCATE, which fires no row trigger, changes the version.
    await store.setOverride(override);
    const filled = await store.listVersionedOverrides();
    await admin!.query(`TRUNCATE "${schema}".overrides`);
    const truncated = await store.listVersionedOverrides();
    expect(truncated.overrides).toEqual([]);
    expect(truncated.version).not.toBe(filled.version);
  }, 60_000);

  it('explains bad command lines and failures with an exit code', async () => {
    const noCommand = await cli([]);
    expect(noCommand.code).toBe(2);
    expect(noCommand.stderr).toContain('Usage: quotakit-postgres migrate');
    const noUrl = await cli(['migrate'], { DATABASE_URL: '' });
    expect(noUrl).toMatchObject({ code: 2 });
    expect(noUrl.stderr).toContain('pass --url or set DATABASE_URL');
    const badSchema = await cli(['migrate', '--url', DATABASE_URL, '--schema', 'no-dashes']);
    expect(badSchema.code).toBe(1);
    expect(badSchema.stderr).toContain('schema');
    const help = await cli(['--help']);
    expect(help).toMatchObject({ code: 0 });
    expect(help.stdout).toContain('--ledger-only');
  }, 60_000);
});
