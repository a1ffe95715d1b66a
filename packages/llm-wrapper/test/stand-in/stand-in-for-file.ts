import { afterAll } from 'vitest';
import { type StandInProvider, startStandIn } from './stand-in-provider.js';

/**
 * Starts the stand-in provider for the calling test file (awaited at its top level); it
 * closes after the file's last test.
 */
export async function standInForFile(): Promise<StandInProvider> {
  const standIn = await startStandIn();
  afterAll(() => standIn.close());
  return standIn;
}
