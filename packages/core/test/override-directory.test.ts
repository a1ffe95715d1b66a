import { describe, expect, it } from 'vitest';
import {
  type ListedOverrides,
  ListingFailedError,
  MAX_DIRECTORY_SIZE,
  OverrideDirectory,
} from '../src/override-directory.js';
import type { StoredOverride } from '../src/store.js';

const override = (id: string, limit: number): StoredOverride => ({
  scope: 'user',
  id,
  resource: 'llm_tokens',
  rules: [{ limit, period: 'per_day' }],
});

/** A store listing that the test answers by hand. */
function manualListing() {
  const pending: Array<(all: readonly StoredOverride[], version?: string) => void> = [];
  let calls = 0;
  const list = () =>
    new Promise<ListedOverrides>((resolve) => {
      calls += 1;
      pending.push((overrides, version) => resolve({ overrides, version }));
    });
  return { list, pending, calls: () => calls };
}

describe('OverrideDirectory', () => {
  it('lists once for every caller at the same time, and answers from the listing until ttl', async () => {
    const { list, pending, calls } = manualListing();
    const directory = new OverrideDirectory(list, 5_000, () => {});
    const first = directory.lookup({ userId: 'a' }, 0);
    const second = directory.lookup({ userId: 'b', tenantId: 't' }, 1);
    pending.shift()!([override('a', 5)]);
    expect(await first).toEqual([override('a', 5)]);
    expect(await second).toEqual([]);
    expect(calls()).toBe(1);
    expect(directory.peek({ userId: 'a' }, 4_999)).toEqual([override('a', 5)]);
    expect(directory.peek({ userId: 'a' }, 5_000)).toBeUndefined();
  });

  it('does not keep a listing begun before forget(): it may miss the change', async () => {
    const { list, pending } = manualListing();
    const directory = new OverrideDirectory(list, 5_000, () => {});
    const before = directory.lookup({ userId: 'a' }, 0);
    directory.forget(); // this engine set an override meanwhile
    pending.shift()!([]);
    expect(await before).toBeUndefined(); // asked id by id instead
    const after = directory.lookup({ userId: 'a' }, 1);
    pending.shift()!([override('a', 7)]);
    expect(await after).toEqual([override('a', 7)]);
  });

  it("keeps the store's version of its listing until forget()", async () => {
    const { list, pending } = manualListing();
    const directory = new OverrideDirectory(list, 5_000, () => {});
    expect(directory.version).toBeUndefined();
    const first = directory.lookup({ userId: 'a' }, 0);
    pending.shift()!([override('a', 5)], '41');
    await first;
    expect(directory.version).toBe('41');
    directory.forget(); // the store said the overrides changed
    expect(directory.version).toBeUndefined();
    const second = directory.lookup({ userId: 'a' }, 1);
    pending.shift()!([override('a', 9)], '42');
    expect(await second).toEqual([override('a', 9)]);
    expect(directory.version).toBe('42');
  });

  it('keeps a listing under way when told the last one is stale, unless it is that one', async () => {
    const { list, pending } = manualListing();
    const directory = new OverrideDirectory(list, 5_000, () => {});
    const first = directory.lookup({ userId: 'a' }, 0);
    pending.shift()!([], '1');
    await first;
    // Expired: listed again; a decision's store call says '1' is stale meanwhile.
    const second = directory.lookup({ userId: 'a' }, 5_000);
    directory.forgetStale('1');
    pending.shift()!([override('a', 2)], '2');
    expect(await second).toEqual([override('a', 2)]); // installed, not thrown away
    expect(directory.version).toBe('2');
    // A listing that comes back at the version just said to be stale is made again.
    const third = directory.lookup({ userId: 'a' }, 10_000);
    directory.forgetStale('2');
    pending.shift()!([override('a', 2)], '2');
    await Promise.resolve();
    pending.shift()!([override('a', 3)], '3');
    expect(await third).toEqual([override('a', 3)]);
    expect(directory.version).toBe('3');
  });

  it('rejects after reporting a failed listing, and lists again next time', async () => {
    const errors: unknown[] = [];
    let fail = true;
    const directory = new OverrideDirectory(
      async () => {
        if (fail) throw new Error('store down');
        return { overrides: [override('a', 3)], version: undefined };
      },
      5_000,
      (error) => errors.push(error),
    );
    const failure = await directory.lookup({ userId: 'a' }, 0).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ListingFailedError);
    expect((failure as ListingFailedError).cause).toMatchObject({ message: 'store down' });
    expect((failure as ListingFailedError).elapsedMs).toBeGreaterThanOrEqual(0);
    expect(errors).toHaveLength(1);
    fail = false;
    expect(await directory.lookup({ userId: 'a' }, 1)).toEqual([override('a', 3)]);
  });

  it(`steps aside past ${MAX_DIRECTORY_SIZE} overrides, and when the ttl is 0`, async () => {
    let calls = 0;
    const many = Array.from({ length: MAX_DIRECTORY_SIZE + 1 }, (_, i) => override(`u${i}`, 1));
    const crowded = new OverrideDirectory(
      async () => {
        calls += 1;
        return { overrides: many, version: '1' };
      },
      5_000,
      () => {},
    );
    expect(await crowded.lookup({ userId: 'u0' }, 0)).toBeUndefined();
    expect(crowded.version).toBeUndefined(); // nothing listed to check a version of
    expect(await crowded.lookup({ userId: 'u0' }, 30_000)).toBeUndefined();
    expect(calls).toBe(1); // not listed again for a minute
    const off = new OverrideDirectory(
      async () => {
        calls += 1;
        return { overrides: [], version: undefined };
      },
      0,
      () => {},
    );
    expect(await off.lookup({ userId: 'u0' }, 0)).toBeUndefined();
    expect(calls).toBe(1);
  });
});
