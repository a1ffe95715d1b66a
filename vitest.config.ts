import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (path: string) => fileURLToPath(new URL(path, import.meta.url));

export default defineConfig({
  resolve: {
    // Tests run against the sources; the packed tarballs are checked separately.
    alias: [
      {
        find: /^@quotakit\/core\/testing$/,
        replacement: src('./packages/core/src/testing/index.ts'),
      },
      { find: /^@quotakit\/core$/, replacement: src('./packages/core/src/index.ts') },
      { find: /^@quotakit\/express$/, replacement: src('./packages/express/src/index.ts') },
      { find: /^@quotakit\/hono$/, replacement: src('./packages/hono/src/index.ts') },
      { find: /^@quotakit\/redis$/, replacement: src('./packages/redis/src/index.ts') },
      { find: /^@quotakit\/postgres$/, replacement: src('./packages/postgres/src/index.ts') },
      {
        find: /^@quotakit\/llm-wrapper\/node$/,
        replacement: src('./packages/llm-wrapper/src/node.ts'),
      },
      {
        find: /^@quotakit\/llm-wrapper$/,
        replacement: src('./packages/llm-wrapper/src/index.ts'),
      },
    ],
  },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'examples/**/*.test.ts'],
    // A JSON report per Node version, summed into CI's closing line by scripts/test-summary.mjs.
    reporters: ['default', 'json'],
    outputFile: { json: `test-output/vitest-node${process.versions.node.split('.')[0]}.json` },
    testTimeout: 20_000,
    hookTimeout: 30_000,
  },
});
