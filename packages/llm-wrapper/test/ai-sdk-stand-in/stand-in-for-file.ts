import { afterAll, beforeEach } from 'vitest';
import { type StandIn, startStandIn } from './server.js';

/**
 * Starts the stand-in for the calling test file (awaited at its top level): the stand-in
 * forgets what it saw before each test and closes after the file's last one.
 */
export async function standInForFile(): Promise<StandIn> {
  const standIn = await startStandIn();
  beforeEach(() => {
    standIn.reset();
  });
  afterAll(() => standIn.close());
  return standIn;
}
