/** An item of an {@link ExpiryQueue}: the queue keeps `queueIndex` (its place in the heap). */
export interface QueuedItem {
  readonly expiresAt: number;
  /** Where the item sits in its queue; -1 when it is in none. Maintained by the queue. */
  queueIndex: number;
}

/**
 * A binary min-heap of items ordered by `expiresAt`, so that expired reservations are found
 * in O(log n) without a timer per item (timers would follow the wall clock, not the engine's
 * injected clock). Items know their place, so that a settled reservation leaves at once
 * (O(log n)) instead of staying in memory until its expiry: with a ten-minute TTL and
 * thousands of reservations a second, that was millions of dead entries.
 */
export class ExpiryQueue<T extends QueuedItem> {
  readonly #heap: T[] = [];

  get size(): number {
    return this.#heap.length;
  }

  push(item: T): void {
    this.#heap.push(item);
    this.#siftUp(item, this.#heap.length - 1);
  }

  /** Removes and returns the earliest item if it has expired by `now`. */
  popExpired(now: number): T | undefined {
    const top = this.#heap[0];
    if (top === undefined || top.expiresAt > now) return undefined;
    this.remove(top);
    return top;
  }

  /** Takes `item` out of the queue; nothing happens when it is not in it. */
  remove(item: T): void {
    const heap = this.#heap;
    const index = item.queueIndex;
    if (index < 0 || heap[index] !== item) return;
    item.queueIndex = -1;
    const last = heap.pop()!;
    if (last === item) return;
    // The last item fills the hole, then moves up or down to where it belongs.
    if (index > 0 && heap[(index - 1) >> 1]!.expiresAt > last.expiresAt) {
      this.#siftUp(last, index);
    } else {
      this.#siftDown(last, index);
    }
  }

  #siftUp(item: T, from: number): void {
    const heap = this.#heap;
    let index = from;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      const above = heap[parent]!;
      if (above.expiresAt <= item.expiresAt) break;
      heap[index] = above;
      above.queueIndex = index;
      index = parent;
    }
    heap[index] = item;
    item.queueIndex = index;
  }

  #siftDown(item: T, from: number): void {
    const heap = this.#heap;
    const length = heap.length;
    let index = from;
    for (;;) {
      const left = 2 * index + 1;
      if (left >= length) break;
      const right = left + 1;
      const child = right < length && heap[right]!.expiresAt < heap[left]!.expiresAt ? right : left;
      const below = heap[child]!;
      if (below.expiresAt >= item.expiresAt) break;
      heap[index] = below;
      below.queueIndex = index;
      index = child;
    }
    heap[index] = item;
    item.queueIndex = index;
  }
}
