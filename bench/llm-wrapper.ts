/**
 * @quotakit/llm-wrapper: the latency withQuota() adds to a model call, against the same openai
 * client unwrapped, both talking to the local stand-in provider over HTTP on 127.0.0.1 (the
 * package's test stand-in), with the engine's in-memory store.
 *
 * Cases: a non-streamed chat completion, and a streamed one read to its end (the wrapper
 * asks for usage and hides that chunk, so the wrapped stream carries one more event), and
 * the same stream when the caller asks for usage itself (both sides then get that chunk). The two
 * sides' calls are interleaved one by one (one call in flight), the side that starts
 * alternating each round; the figure per side is its median latency per call.
 * Limits are far above what a run spends (about 12,000 calls of 140 tokens): every call takes
 * the admit path. They are of the size real daily budgets have (a billion tokens, not 1e15),
 * which messages print as small integers.
 */
import { createQuotaEngine } from '@quotakit/core';
import { withQuota } from '@quotakit/llm-wrapper';
import OpenAI from 'openai';
import { startStandIn } from '../packages/llm-wrapper/test/stand-in/index.js';
import { type BenchOptions, type BenchSuite, median, printTable } from './harness.js';

const CALLS_PER_ROUND = 1_000;
const MESSAGES = [{ role: 'user' as const, content: 'Say hello to the benchmark.' }];

type Call = () => Promise<void>;

/**
 * Per-call latencies of both sides, the calls interleaved one by one (plain, wrapped, plain,
 * ...; the side that starts alternates each round), so that both see the same machine.
 */
async function measure(
  plain: Call,
  wrapped: Call,
  rounds: number,
): Promise<{ plain: number[]; wrapped: number[] }> {
  const latencies = { plain: [] as number[], wrapped: [] as number[] };
  const timed = async (call: Call, into: number[]) => {
    const started = performance.now();
    await call();
    into.push((performance.now() - started) * 1000);
  };
  // Warm-up: connections, JIT, the tokenizer.
  for (let i = 0; i < 200; i += 1) {
    await plain();
    await wrapped();
  }
  for (let round = 0; round < rounds; round += 1) {
    for (let i = 0; i < CALLS_PER_ROUND; i += 1) {
      if ((round + i) % 2 === 0) {
        await timed(plain, latencies.plain);
        await timed(wrapped, latencies.wrapped);
      } else {
        await timed(wrapped, latencies.wrapped);
        await timed(plain, latencies.plain);
      }
    }
  }
  return latencies;
}

export const llmWrapper: BenchSuite = {
  name: 'llm',
  title: '@quotakit/llm-wrapper: withQuota() added latency per call over the loopback stand-in',
  async run(options: BenchOptions) {
    // Requests are not kept: a run's heap must not grow with what it sent.
    const standIn = await startStandIn({ recordRequests: false });
    try {
      const engine = createQuotaEngine({
        defaults: {
          llm_requests: { limit: 1_000_000, period: 'per_day' },
          llm_tokens: { limit: 1_000_000_000, period: 'per_day' },
        },
      });
      const client = new OpenAI({ baseURL: standIn.openaiBaseURL, apiKey: 'bench', maxRetries: 0 });
      const metered = withQuota(client, { engine, subject: { userId: 'bench-user' } });
      const body = { model: 'gpt-4o-mini', messages: MESSAGES, max_completion_tokens: 100 };
      const usageStreamBody = {
        ...body,
        stream: true as const,
        stream_options: { include_usage: true },
      };

      const cases: { name: string; plain: Call; wrapped: Call }[] = [
        {
          name: 'chat.completions.create',
          plain: async () => {
            await client.chat.completions.create(body);
          },
          wrapped: async () => {
            await metered.chat.completions.create(body);
          },
        },
        {
          name: 'chat.completions.create, stream read to the end',
          plain: async () => {
            for await (const _ of await client.chat.completions.create({ ...body, stream: true })) {
              // read every chunk
            }
          },
          wrapped: async () => {
            for await (const _ of await metered.chat.completions.create({
              ...body,
              stream: true,
            })) {
              // read every chunk
            }
          },
        },
        {
          // The caller asks for usage itself: the wrapper then adds no chunk to the stream,
          // and what remains is its own work.
          name: 'chat.completions.create, stream with include_usage, read to the end',
          plain: async () => {
            for await (const _ of await client.chat.completions.create(usageStreamBody)) {
              // read every chunk
            }
          },
          wrapped: async () => {
            for await (const _ of await metered.chat.completions.create(usageStreamBody)) {
              // read every chunk
            }
          },
        },
      ];
      const rows: string[][] = [];
      for (const benchCase of cases) {
        const { plain, wrapped } = await measure(
          benchCase.plain,
          benchCase.wrapped,
          options.rounds,
        );
        const plainUs = median(plain);
        const wrappedUs = median(wrapped);
        const addedUs = wrappedUs - plainUs;
        rows.push([
          benchCase.name,
          plainUs.toFixed(0),
          wrappedUs.toFixed(0),
          addedUs.toFixed(0),
          `${((addedUs / plainUs) * 100).toFixed(1)} %`,
        ]);
      }
      console.log(
        `${options.rounds} rounds × ${CALLS_PER_ROUND} calls per side, interleaved one by one; median latency per call`,
      );
      printTable(['call', 'unwrapped µs', 'withQuota µs', 'added µs', 'added'], rows, [
        false,
        true,
        true,
        true,
        true,
      ]);
    } finally {
      await standIn.close();
    }
  },
};
