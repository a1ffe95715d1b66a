import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Whether this machine can start a redis-server of its own (outage tests need one). */
export const canStartRedis =
  spawnSync('redis-server', ['--version']).status === 0 &&
  spawnSync('redis-cli', ['--version']).status === 0;

/** A free TCP port on the loopback address, as the OS hands it out. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * A throwaway redis-server on its own port, which a test can stop and start again to play
 * an outage without touching the shared Redis the other test files use.
 */
export class SpareRedis {
  readonly port: number;
  readonly url: string;
  readonly #pidFile: string;

  private constructor(port: number) {
    this.port = port;
    this.url = `redis://127.0.0.1:${port}`;
    this.#pidFile = join(tmpdir(), `quotakit-spare-redis-${port}.pid`);
  }

  static async start(): Promise<SpareRedis> {
    const spare = new SpareRedis(await freePort());
    spare.start();
    return spare;
  }

  /** Starts (or restarts) the server and returns once it answers PING. */
  start(): void {
    execFileSync('redis-server', [
      '--port',
      String(this.port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--daemonize',
      'yes',
      '--pidfile',
      this.#pidFile,
      '--logfile',
      join(tmpdir(), `quotakit-spare-redis-${this.port}.log`),
    ]);
    waitForPing(this.port);
  }

  /** Kills the server (SIGKILL: an outage, not a polite shutdown) and waits until it is gone. */
  stop(): void {
    let pid: number;
    try {
      pid = Number(readFileSync(this.#pidFile, 'utf8').trim());
    } catch {
      return;
    }
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
    for (let attempt = 0; attempt < 100; attempt++) {
      try {
        process.kill(pid, 0);
      } catch {
        break;
      }
      spawnSync('sleep', ['0.05']);
    }
    rmSync(this.#pidFile, { force: true });
  }
}

/** A throwaway Redis Cluster of three masters on free ports (no replicas). */
export class SpareCluster {
  readonly ports: readonly number[];
  readonly #dir: string;

  private constructor(ports: number[], dir: string) {
    this.ports = ports;
    this.#dir = dir;
  }

  static async start(): Promise<SpareCluster> {
    const ports: number[] = [];
    for (let i = 0; i < 3; i++) ports.push(await freePort());
    const dir = mkdtempSync(join(tmpdir(), 'quotakit-cluster-'));
    const cluster = new SpareCluster(ports, dir);
    for (const port of ports) {
      execFileSync('redis-server', [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        `nodes-${port}.conf`,
        '--dir',
        dir,
        '--save',
        '',
        '--appendonly',
        'no',
        '--daemonize',
        'yes',
        '--pidfile',
        join(dir, `${port}.pid`),
        '--logfile',
        join(dir, `${port}.log`),
      ]);
    }
    for (const port of ports) waitForPing(port);
    execFileSync(
      'redis-cli',
      [
        '--cluster',
        'create',
        ...ports.map((port) => `127.0.0.1:${port}`),
        '--cluster-replicas',
        '0',
        '--cluster-yes',
      ],
      { stdio: 'ignore' },
    );
    for (let attempt = 0; attempt < 200; attempt++) {
      const ok = ports.every((port) =>
        spawnSync('redis-cli', ['-p', String(port), 'cluster', 'info'], {
          encoding: 'utf8',
        }).stdout?.includes('cluster_state:ok'),
      );
      if (ok) return cluster;
      spawnSync('sleep', ['0.05']);
    }
    cluster.stop();
    throw new Error('the Redis Cluster did not come up');
  }

  stop(): void {
    for (const port of this.ports) {
      try {
        process.kill(
          Number(readFileSync(join(this.#dir, `${port}.pid`), 'utf8').trim()),
          'SIGKILL',
        );
      } catch {
        // Not started, or already gone.
      }
    }
    rmSync(this.#dir, { recursive: true, force: true });
  }
}

function waitForPing(port: number): void {
  for (let attempt = 0; attempt < 100; attempt++) {
    const ping = spawnSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8' });
    if (ping.stdout?.trim() === 'PONG') return;
    spawnSync('sleep', ['0.05']);
  }
  throw new Error(`redis-server on port ${port} did not start`);
}
