/**
 * A binary min-heap of items ordered by `expiresAt`, so that expired reservations are found
 * in O(log n) without a timer per item (timers would follow the wall clock, not the engine's
 * injected clock).
 */
export class ExpiryQueue<T extends { readonly expiresAt: number }> {
  readonly #heap: T[] = [];

  get size(): number {
    return this.#heap.length;
  }

  push(item: T): void {
    const heap = this.#heap;
    heap.push(item);
    let index = heap.length - 1;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (heap[parent]!.expiresAt <= item.expiresAt) break;
      heap[index] = heap[parent]!;
      index = parent;
    }
    heap[index] = item;
  }

  /** Removes and returns the earliest item if it has expired by `now`. */
  popExpired(now: number): T | undefined {
    const heap = this.#heap;
    const top = heap[0];
    if (top === undefined || top.expiresAt > now) return undefined;
    const last = heap.pop()!;
    if (heap.length > 0) {
      let index = 0;
      const length = heap.length;
      for (;;) {
        const left = 2 * index + 1;
        if (left >= length) break;
        const right = left + 1;
        const child =
          right < length && heap[right]!.expiresAt < heap[left]!.expiresAt ? right : left;
        if (heap[child]!.expiresAt >= last.expiresAt) break;
        heap[index] = heap[child]!;
        index = child;
      }
      heap[index] = last;
    }
    return top;
  }
}
