import { defineConfig } from 'tsup';

export default defineConfig({
  entry: { index: 'src/index.ts', 'testing/index': 'src/testing/index.ts' },
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'es2022',
  // Keep `node:` on built-in imports: Deno and Workers (nodejs_compat) resolve built-ins by it.
  removeNodeProtocol: false,
  external: ['vitest'],
});
