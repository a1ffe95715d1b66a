import { fileURLToPath } from 'node:url';
import { configDefaults, defineConfig } from 'vitest/config';

const src = (path: string) => fileURLToPath(new URL(path, import.meta.url));

// openai 7 and ai 7 need Node 22: their tests run only there (CI's second pass, under Node 24).
const NEEDS_NODE_22 = ['packages/llm-wrapper/test/latest-sdk-majors.test.ts'];
const nodeMajor = Number(process.versions.node.split('.')[0]);
if (nodeMajor < 22) {
  console.log(`Node ${nodeMajor}: not running ${NEEDS_NODE_22.join(', ')} (needs Node 22)`);
}

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
    exclude: [...configDefaults.exclude, ...(nodeMajor < 22 ? NEEDS_NODE_22 : [])],
    // A JSON report per Node version, summed into CI's closing line by scripts/test-summary.mjs.
    reporters: ['default', 'json'],
    outputFile: { json: `test-output/vitest-node${process.versions.node.split('.')[0]}.json` },
    testTimeout: 20_000,
    hookTimeout: 30_000,
  },
});
