import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll } from 'vitest';
import type { WorkerTask } from './fixtures/worker-task.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const WORKER = fileURLToPath(new URL('./fixtures/quota-worker.ts', import.meta.url));
const children = new Set<ChildProcess>();

afterAll(() => {
  for (const child of children) child.kill('SIGKILL');
});

/** A running worker: its process, each stdout line as it comes, and its exit. */
export interface Worker {
  readonly child: ChildProcess;
  /** Lines printed so far. */
  readonly lines: string[];
  /** Resolves once a line satisfies `test` (rejects if the worker exits first). */
  waitFor(test: (line: string, count: number) => boolean): Promise<string>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly stderr: () => string;
}

/**
 * Starts quota-worker.ts in a process of its own (tsx from the workspace root, which maps
 * @quotakit/* to the sources).
 */
export function startWorker(task: WorkerTask): Worker {
  const child = spawn(process.execPath, ['--import', 'tsx', WORKER], {
    cwd: ROOT,
    env: {
      ...process.env,
      TSX_TSCONFIG_PATH: `${ROOT}tsconfig.json`,
      QUOTA_WORKER: JSON.stringify(task),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    }),
  );
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const lines: string[] = [];
  const waiters = new Set<{
    test: (line: string, count: number) => boolean;
    resolve: (line: string) => void;
  }>();
  let buffered = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    let end = buffered.indexOf('\n');
    while (end >= 0) {
      const line = buffered.slice(0, end);
      buffered = buffered.slice(end + 1);
      lines.push(line);
      for (const waiter of waiters) {
        if (waiter.test(line, lines.length)) {
          waiters.delete(waiter);
          waiter.resolve(line);
        }
      }
      end = buffered.indexOf('\n');
    }
  });
  return {
    child,
    lines,
    exited,
    stderr: () => stderr,
    waitFor(test) {
      return new Promise<string>((resolve, reject) => {
        waiters.add({ test, resolve });
        void exited.then(({ code, signal }) =>
          reject(new Error(`worker exited (${code ?? signal}) first: ${stderr}`)),
        );
      });
    },
  };
}
