/**
 * The decimal text of a number, kept for as long as the same number comes again. A store call
 * sends the engine clock's `now` and the ttls derived from it as text: they change once a
 * millisecond, while calls come many times a millisecond under load, and `String()` of a
 * number that is not a small integer costs more than the rest of building a call's arguments.
 */
export class RecentText {
  #value = Number.NaN;
  #text = '';

  /** `String(value)`, computed only when `value` differs from the last one. */
  of(value: number): string {
    // NaN never equals itself, so the first call always computes; -0 and 0 share the text '0'.
    if (value !== this.#value) {
      this.#value = value;
      this.#text = String(value);
    }
    return this.#text;
  }
}
