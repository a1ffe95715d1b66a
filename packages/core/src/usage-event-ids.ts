/**
 * Makes usage event ids: a random prefix per source and a sequence number, so they are unique
 * without a random draw per event, and fixed once written, so re-exports carry the same ids.
 */
export class UsageEventIds {
  readonly #prefix = `${globalThis.crypto.randomUUID()}-`;
  #sequence = 0;

  /** The next id of this source. */
  next(): string {
    this.#sequence += 1;
    return this.#prefix + this.#sequence.toString(36);
  }
}
