/** Resolves with the reason `promise` rejects with, or with undefined if it fulfils. */
export function rejectionOf<Reason = unknown>(
  promise: Promise<unknown>,
): Promise<Reason | undefined> {
  return promise.then(
    () => undefined,
    (reason: unknown) => reason as Reason,
  );
}
