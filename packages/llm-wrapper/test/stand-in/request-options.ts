// Request options (passed as the SDKs' second argument) that choose how the stand-in answers.

/** Makes the stand-in answer with this HTTP error status and an error body. */
export function failingWith(status: number) {
  return { headers: { 'x-stand-in-status': String(status) } };
}

/** Makes the stand-in stream 1000 deltas, 2 ms apart: long enough to stop midway. */
export const LONG_SLOW_STREAM = {
  headers: { 'x-stand-in-chunks': '1000', 'x-stand-in-delay-ms': '2' },
};
