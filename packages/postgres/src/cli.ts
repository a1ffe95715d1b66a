#!/usr/bin/env node
/**
 * `quotakit-postgres`: runs the migrations of @quotakit/postgres from a shell, a deploy step
 * or a CI job, without writing code.
 *
 *   quotakit-postgres migrate --url postgres://user@host/db --schema quotakit
 *   DATABASE_URL=postgres://... quotakit-postgres migrate --ledger-only
 */
import pg from 'pg';
import type { MigrationResult } from './migrations.js';
import { PostgresLedger } from './postgres-ledger.js';
import { PostgresStore } from './postgres-store.js';

const USAGE = `Usage: quotakit-postgres migrate [--url <postgres url>] [--schema <name>] [--ledger-only]

Creates or upgrades the QuotaKit tables in a PostgreSQL schema. Idempotent, and safe to run
from several processes at once.

  --url <url>       connection string (default: the DATABASE_URL environment variable)
  --schema <name>   schema to migrate (default: quotakit)
  --ledger-only     only the usage ledger (for a PostgresLedger beside another store)
  --help            show this text
`;

interface Command {
  url: string;
  schema: string | undefined;
  ledgerOnly: boolean;
}

class UsageError extends Error {}

function parse(args: readonly string[], env: NodeJS.ProcessEnv): Command | 'help' {
  if (args.includes('--help') || args.includes('-h')) return 'help';
  const [command, ...rest] = args;
  if (command !== 'migrate') {
    throw new UsageError(command === undefined ? 'No command given' : `Unknown command ${command}`);
  }
  let url = env.DATABASE_URL;
  let schema: string | undefined;
  let ledgerOnly = false;
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!;
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? arg.split(/=(.*)/s) : [arg];
    const value = () => {
      const next = inline ?? rest[++i];
      if (next === undefined || next === '') throw new UsageError(`${flag} needs a value`);
      return next;
    };
    if (flag === '--url') url = value();
    else if (flag === '--schema') schema = value();
    else if (flag === '--ledger-only') ledgerOnly = true;
    else throw new UsageError(`Unknown option ${arg}`);
  }
  if (url === undefined || url === '') {
    throw new UsageError('No database: pass --url or set DATABASE_URL');
  }
  return { url, schema, ledgerOnly };
}

function describe(result: MigrationResult): string {
  if (result.applied.length === 0) return `Schema "${result.schema}" is up to date.`;
  const applied = result.applied.map((m) => `${m.component} v${m.version} (${m.name})`);
  return `Schema "${result.schema}": applied ${applied.join(', ')}.`;
}

async function main(): Promise<number> {
  let command: Command | 'help';
  try {
    command = parse(process.argv.slice(2), process.env);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`${error.message}\n\n${USAGE}`);
    return 2;
  }
  if (command === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  const pool = new pg.Pool({ connectionString: command.url, max: 1 });
  pool.on('error', () => {});
  try {
    const options = { pool, ...(command.schema === undefined ? {} : { schema: command.schema }) };
    const target = command.ledgerOnly ? new PostgresLedger(options) : new PostgresStore(options);
    process.stdout.write(`${describe(await target.migrate())}\n`);
    return 0;
  } catch (error) {
    process.stderr.write(
      `Migration failed: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    return 1;
  } finally {
    await pool.end().catch(() => {});
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(
      `${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exitCode = 1;
  },
);
