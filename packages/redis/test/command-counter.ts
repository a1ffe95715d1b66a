import type { Redis } from 'ioredis';

/**
 * Counts the commands a client sends, by name, on the client side: INFO commandstats would
 * also count what scripts run inside Redis.
 */
export function countCommands(client: Redis): { counts: Map<string, number>; reset(): void } {
  const counts = new Map<string, number>();
  const send = client.sendCommand.bind(client);
  client.sendCommand = ((...args: Parameters<Redis['sendCommand']>) => {
    const name = args[0].name.toLowerCase();
    counts.set(name, (counts.get(name) ?? 0) + 1);
    return send(...args);
  }) as Redis['sendCommand'];
  return { counts, reset: () => counts.clear() };
}
