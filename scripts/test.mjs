// `npm test`: type-check, run vitest, then print `N passed, N failed[, N skipped]` as the last line (CI reads it).
// Extra arguments (`npm test -- src/errors.test.ts`) go to vitest.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const run = (cmd, args) => spawnSync(cmd, args, { stdio: 'inherit' }).status ?? 1;
const fail = (why) => {
  console.error(`test: ${why}`);
  process.exit(1);
};

if (run('npx', ['tsc', '-p', 'tsconfig.json', '--noEmit']) !== 0) fail('type check failed (npx tsc -p tsconfig.json --noEmit)');
// The CLI and browser tests run the built dist/: build it so they test the source as it is now.
if (run('npx', ['tsc', '-p', 'tsconfig.build.json']) !== 0) fail('build failed (npm run build)');

const dir = mkdtempSync(join(tmpdir(), 'attnpatch-test-'));
const jsonFile = join(dir, 'vitest.json');
const status = run('npx', [
  'vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${jsonFile}`, ...process.argv.slice(2),
]);
const report = existsSync(jsonFile) ? JSON.parse(readFileSync(jsonFile, 'utf8')) : undefined;
rmSync(dir, { recursive: true, force: true });
if (!report) fail(`vitest exited with ${status} and wrote no report`);

// NOTE: a test file that fails to load has no failed test in it; count it as one failure so it cannot pass silently.
const brokenFiles = report.testResults.filter(
  (f) => f.status === 'failed' && !f.assertionResults.some((t) => t.status === 'failed'),
).length;
const passed = report.numPassedTests;
const failed = report.numFailedTests + brokenFiles;
const skipped = report.numPendingTests + report.numTodoTests;
console.log(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
if (failed > 0 || status !== 0 || passed + failed === 0) process.exit(1);
