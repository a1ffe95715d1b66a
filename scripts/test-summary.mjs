// Prints "N passed, N failed, N skipped" for every vitest JSON report left by the runs in
// test-output/ (one per Node version), so CI logs end with one plain summary line.
import { readdirSync, readFileSync } from 'node:fs';

const dir = new URL('../test-output/', import.meta.url);
let passed = 0;
let failed = 0;
let skipped = 0;
for (const file of readdirSync(dir).filter((name) => /^vitest-.*\.json$/.test(name))) {
  const report = JSON.parse(readFileSync(new URL(file, dir), 'utf8'));
  passed += report.numPassedTests;
  failed += report.numFailedTests;
  skipped += report.numPendingTests + report.numTodoTests;
}
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
if (failed > 0) process.exitCode = 1;
