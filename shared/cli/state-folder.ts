import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { CliError } from './exit';

/**
 * The local state folder's own record, `<state-dir>/owner.json`: the warehouse whose watermark and
 * batches the folder holds, and the clock of its last run (simulated under --now, so that
 * `status` can tell ages in the same clock as the batches' timestamps).
 */
export interface OwnerRecord {
  warehouse: string;
  boundAt: string;
  lastRun?: { clock: 'simulated' | 'real'; now: string; at: string };
}

const OWNER = 'owner.json';

/** Fails (exit 2) unless `dir` is an existing folder; never creates it. */
export function requireStateFolder(dir: string): void {
  const path = resolve(dir);
  if (!existsSync(path)) {
    throw new CliError(`No state folder at ${path}: nothing has run with it yet. Point --state-dir (or STATE_DIR) at the folder a run used, or start one with \`consolidate run\`.`);
  }
  if (!statSync(path).isDirectory()) throw new CliError(`--state-dir ${path} is a file, not a folder. Point it at a folder (a new one is created by \`consolidate run\`).`);
}

/** Creates the folder for a run; refuses a path that is a file. */
export function ensureStateFolder(dir: string): void {
  const path = resolve(dir);
  if (existsSync(path) && !statSync(path).isDirectory()) throw new CliError(`--state-dir ${path} is a file, not a folder. Point it at a folder (it is created if missing).`);
  mkdirSync(path, { recursive: true });
}

export function readOwner(dir: string): OwnerRecord | undefined {
  const file = join(resolve(dir), OWNER);
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as OwnerRecord;
  } catch {
    throw new CliError(`${file} is not readable JSON; it records which warehouse the state folder belongs to. Restore it, or move the folder away to start afresh.`);
  }
}

function writeOwner(dir: string, record: OwnerRecord): void {
  const file = join(resolve(dir), OWNER);
  writeFileSync(`${file}.tmp`, `${JSON.stringify(record, null, 2)}\n`);
  renameSync(`${file}.tmp`, file);
}

/** Refuses (exit 2) a warehouse other than the one the folder belongs to. */
export function checkOwner(dir: string, warehouseFile: string): void {
  const owner = readOwner(dir);
  const wanted = resolve(warehouseFile);
  if (owner && resolve(owner.warehouse) !== wanted) {
    const state = resolve(dir);
    throw new CliError(
      `The state folder ${state} belongs to the warehouse ${owner.warehouse}, not ${wanted}: its watermark and batches are that warehouse's. ` +
        `Give this warehouse its own folder (--state-dir ${join(relative(process.cwd(), resolve(wanted, '..')) || '.', '.consolidation')}, say), or go on with ${owner.warehouse}.`,
    );
  }
}

/** Records the folder's warehouse (first use) after checking it. */
export function bindOwner(dir: string, warehouseFile: string): void {
  checkOwner(dir, warehouseFile);
  if (!readOwner(dir)) writeOwner(dir, { warehouse: resolve(warehouseFile), boundAt: new Date().toISOString() });
}

/** Records the clock of the run that just used the folder. */
export function recordRunClock(dir: string, simulatedNow: Date | undefined): void {
  const owner = readOwner(dir);
  if (!owner) return;
  const at = new Date();
  writeOwner(dir, { ...owner, lastRun: { clock: simulatedNow ? 'simulated' : 'real', now: (simulatedNow ?? at).toISOString(), at: at.toISOString() } });
}

/**
 * "Now" in the clock the folder's batches were stamped with: the real time, or, after a run under
 * --now, that run's simulated instant plus the real time elapsed since.
 */
export function folderNow(owner: OwnerRecord | undefined, real = new Date()): { now: Date; simulated: boolean } {
  if (owner?.lastRun?.clock !== 'simulated') return { now: real, simulated: false };
  return { now: new Date(Date.parse(owner.lastRun.now) + Math.max(0, real.getTime() - Date.parse(owner.lastRun.at))), simulated: true };
}
