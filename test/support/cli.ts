import { spawn, type ChildProcess } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { DuckDbWarehouse } from '../../shared/local/duckdb-warehouse';
import { duckdbCreateTable, loadSchema } from '../../shared/schema';

export const ROOT = resolve(__dirname, '..', '..');
export const CLI = join(ROOT, 'shared', 'cli', 'consolidate.ts');
const TSX = require.resolve('tsx/cjs');

export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** Starts `consolidate` as a user would (a separate process) from `cwd`, with a clean environment. */
export function startConsolidate(args: string[], options: { cwd: string; env?: Record<string, string> }): ChildProcess {
  return spawn(process.execPath, ['--require', TSX, CLI, ...args], {
    cwd: options.cwd,
    env: { PATH: process.env.PATH ?? '', HOME: options.cwd, ...options.env },
  });
}

/** Runs `consolidate` to its end (from the system's temporary folder unless `cwd` is given). */
export function consolidate(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}): Promise<Ran> {
  return new Promise((done) => {
    const child = startConsolidate(args, { cwd: options.cwd ?? tmpdir(), env: options.env });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (c) => (stdout += c));
    child.stderr!.on('data', (c) => (stderr += c));
    child.on('close', (code) => done({ code: code ?? -1, stdout, stderr }));
  });
}

/** A warehouse the tool did not create: the four source tables and a few rows, by hand. */
export async function userWarehouse(file: string, withAgents = true): Promise<void> {
  const warehouse = await DuckDbWarehouse.open(file);
  const c = await warehouse.connect();
  for (const name of ['ussd_operations', 'transactiongu', 'services', ...(withAgents ? ['agents'] : [])] as const) {
    await c.run(duckdbCreateTable(`main."${name}"`, loadSchema(name)));
  }
  await c.run(`INSERT INTO main.services VALUES ('S1', 'Cash in', 'WALLET')`);
  if (withAgents) await c.run(`INSERT INTO main.agents VALUES ('A1', 'Boutique Ndiaye', 'Dakar')`);
  await c.run(`INSERT INTO main.transactiongu VALUES
    ('T1', 'S1', 'P1', 5000, 50, 10, 'PENDING', '2026-05-01T09:01:00Z'),
    ('T1', 'S1', 'P1', 5000, 50, 10, 'SUCCESSFUL', '2026-05-01T09:05:00Z'),
    ('T2', 'S1', 'P2', 700, 7, 1, 'SUCCESSFUL', '2026-05-01T09:06:00Z')`);
  await c.run(`INSERT INTO main.ussd_operations VALUES
    ('OP1', 'S-1', '221770000001', '*144#', 'CASHIN', 5000, 'XOF', 'INITIATED', 'T1', 'A1', '2026-05-01T09:00:00Z', '2026-05-01T09:00:00Z'),
    ('OP1', 'S-1', '221770000001', '*144#', 'CASHIN', 5000, 'XOF', 'SUCCESS', 'T1', 'A1', '2026-05-01T09:00:00Z', '2026-05-01T09:04:00Z'),
    ('OP2', 'S-2', '221770000002', '*144#', 'TRANSFER', 750, 'XOF', 'SUCCESS', 'T2', NULL, '2026-05-01T09:02:00Z', '2026-05-01T09:03:00Z'),
    ('OP3', 'S-3', '221770000003', '*144#', 'AIRTIME', 100, 'XOF', 'TIMEOUT', NULL, 'A1', '2026-05-01T09:02:00Z', '2026-05-01T09:07:00Z'),
    (NULL, 'S-4', '221770000004', '*144#', 'AIRTIME', 100, 'XOF', 'SUCCESS', NULL, NULL, '2026-05-01T09:02:00Z', '2026-05-01T09:07:00Z')`);
  await warehouse.close();
}

export async function dump(file: string, sql: string): Promise<Record<string, unknown>[]> {
  const warehouse = await DuckDbWarehouse.open(file);
  try {
    return (await warehouse.query({ sql, params: {} })).rows;
  } finally {
    await warehouse.close();
  }
}

/** Follows a running `consolidate`: its output so far, its exit, and a wait for a line on one stream. */
export function follow(child: ChildProcess): { output: { stdout: string; stderr: string }; closed: Promise<number>; waitFor: (stream: 'stdout' | 'stderr', pattern: RegExp) => Promise<void> } {
  const output = { stdout: '', stderr: '' };
  const waiters: { stream: 'stdout' | 'stderr'; pattern: RegExp; done: () => void }[] = [];
  const check = () => {
    for (const w of [...waiters]) {
      if (w.pattern.test(output[w.stream])) {
        waiters.splice(waiters.indexOf(w), 1);
        w.done();
      }
    }
  };
  child.stdout!.on('data', (c) => ((output.stdout += c), check()));
  child.stderr!.on('data', (c) => ((output.stderr += c), check()));
  const closed = new Promise<number>((done) => child.on('close', (code) => done(code ?? -1)));
  const waitFor = (stream: 'stdout' | 'stderr', pattern: RegExp) =>
    new Promise<void>((done) => {
      waiters.push({ stream, pattern, done });
      check();
    });
  return { output, closed, waitFor };
}
