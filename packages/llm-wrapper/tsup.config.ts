import { defineConfig } from 'tsup';

export default defineConfig({
  entry: { index: 'src/index.ts', node: 'src/node.ts' },
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'es2022',
  // Keep `node:` on built-in imports: Deno and Workers (nodejs_compat) resolve built-ins by it.
  removeNodeProtocol: false,
  // The SDKs are the application's own copies; nothing of theirs is bundled.
  external: ['openai', '@anthropic-ai/sdk', 'ai', 'gpt-tokenizer', '@quotakit/core'],
});
