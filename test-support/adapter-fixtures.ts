/**
 * Fixtures of the HTTP adapters' tests (@quotakit/express and @quotakit/hono), shared so that
 * both test the same failures and drive the same browser.
 */
import { existsSync } from 'node:fs';
import { MemoryStore, type QuotaStore } from '@quotakit/core';

/** A store whose counters fail the way a Redis that went away fails. */
export function failingStore(): QuotaStore {
  const memory = new MemoryStore();
  const fail = () => Promise.reject(new Error('ECONNREFUSED 127.0.0.1:6379'));
  return {
    read: fail,
    consume: fail,
    record: fail,
    settle: fail,
    getOverrides: fail,
    setOverride: fail,
    removeOverride: fail,
    listOverrides: fail,
    claim: (request) => memory.claim(request),
  };
}

/** Debian's Chromium, when installed (`.ci/run` installs it). */
export function findChromium(): string | undefined {
  const candidates = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'];
  return candidates.find((path): path is string => path !== undefined && existsSync(path));
}

/** Flags for a headless Chromium in a container, without background traffic. */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];
