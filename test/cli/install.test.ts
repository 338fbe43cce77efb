import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, type Ran } from '../support/cli';

/** The newest modification time of the TypeScript sources the package compiles. */
function newestSource(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(path));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

/** The lines of the README's "First steps" block. */
function readmeExample(): string[] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const block = /<!-- readme-example:start -->\n```sh\n([\s\S]*?)```\n<!-- readme-example:end -->/.exec(readme);
  assert.ok(block, 'the README has its "First steps" block');
  return block[1].split('\n').filter((line) => line.trim() !== '');
}

function shell(line: string, cwd: string, env: NodeJS.ProcessEnv): Promise<Ran> {
  return new Promise((done) => {
    const child = spawn('sh', ['-c', line], { cwd, env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.on('close', (code) => done({ code: code ?? -1, stdout, stderr }));
  });
}

/** What each README line must print besides exiting 0. */
const EXPECT: Record<string, RegExp> = {
  '--version': /^\d+\.\d+\.\d+\n$/,
  run: /Demo warehouse created at .*\.consolidation\/demo\.duckdb: 500 operations[\s\S]*Caught up: watermark 2026-01-15T10:00:00\.000Z[\s\S]*Totals/,
  status: /Watermark  2026-01-15T10:00:00\.000Z\n[\s\S]*Batches    12 in all, 0 open/,
  sql: /^reconciliation_status\s+n\n[\s\S]*MATCHED\s+\d+\n[\s\S]*\(5 rows\)/,
  replay: /Replay of the window \(2026-01-15T06:00:00\.000Z, 2026-01-15T07:00:00\.000Z\][\s\S]*consolidated_table: 0 inserted, \d+ updated/,
  prune: /Deleted 0 finished batch\(es\)/,
};

describe('installing consolidate and following the README from a folder outside the repository', function () {
  this.timeout(600_000);
  let prefix: string;
  let work: string;
  let env: NodeJS.ProcessEnv;

  before(() => {
    // The package's bin is the compiled file: compile when a source is newer (`npm ci` already did in a clean clone).
    const bin = join(ROOT, 'dist', 'shared', 'cli', 'consolidate.js');
    let built = 0;
    try {
      built = statSync(bin).mtimeMs;
    } catch {
      built = 0;
    }
    if (built < Math.max(newestSource(join(ROOT, 'shared')), newestSource(join(ROOT, 'functions')))) execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'ignore' });
    prefix = mkdtempSync(join(tmpdir(), 'cli-prefix-'));
    work = mkdtempSync(join(tmpdir(), 'cli-user-'));
    mkdirSync(join(work, 'home'));
    // The README's install command, into a throw-away prefix; --offline: nothing is fetched.
    execFileSync('npm', ['install', '--global', '--prefix', prefix, ROOT, '--offline', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: work, stdio: 'ignore' });
    env = { PATH: `${join(prefix, 'bin')}:${process.env.PATH ?? ''}`, HOME: join(work, 'home') };
  });
  after(() => {
    rmSync(prefix, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  });

  it('puts `consolidate` on the PATH, and every line of the README\'s first steps works from a new folder', async () => {
    const lines = readmeExample();
    assert.ok(lines.length >= 5, lines.join('\n'));
    for (const line of lines) {
      assert.match(line, /^consolidate /, 'the example is only consolidate commands');
      const { code, stdout, stderr } = await shell(line, work, env);
      assert.equal(code, 0, `${line}\n${stdout}${stderr}`);
      const word = line.split(/\s+/)[1];
      assert.ok(EXPECT[word], `no expectation for \`${line}\``);
      assert.match(stdout, EXPECT[word], line);
    }
    assert.ok(statSync(join(work, '.consolidation', 'demo.duckdb')).isFile(), 'the state went to the folder the commands ran in');
  });
});
