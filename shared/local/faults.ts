import type { JobLauncher, Logger, ObjectStore, Publisher, Warehouse } from '../ports';
import { mulberry32 } from './demo-data';
import type { ForcedOutcome } from './pipeline-runner';

/**
 * Fault injection for the local stack: what `consolidate run --inject` and the fault-matrix tests
 * turn on. Faults in the functions are injected through their ports (a decorated publisher,
 * store, launcher or warehouse throws right after the named step), so the functions run
 * unchanged; delivery faults are the bus's, job faults the runner's.
 */

/** The named steps at which a function crashes (throws, so its event is redelivered). */
export const CRASH_POINTS = {
  'publish.before-manifest': 'publishOps: after publishing the chunks, before writing the manifest',
  'publish.before-seal': 'publishOps: after publishing the chunks and writing the manifest, before the seal',
  'publish.before-watermark': 'publishOps: after publishing the seal, before advancing the watermark',
  'collect.before-ack': 'collectIds: after storing a chunk, before acknowledging the message',
  'launch.before-record': 'launchDataflow: after launching the job, before recording it in the batch state',
  'merge.before-mark': 'mergeOnComplete: after the MERGE, before marking the batch MERGED',
} as const;
export type CrashPoint = keyof typeof CRASH_POINTS;

export interface FaultPlan {
  /** Every message is delivered 2 or 3 times. */
  duplicate: boolean;
  /** Queued deliveries go out in random order. */
  reorder: boolean;
  /** The first message of every burst on each subscription is held back until all later ones are delivered. */
  delay: boolean;
  /** Crash points; each fires on its 1st, 4th, 7th, ... occurrence. */
  crash: CrashPoint[];
  /** Every cycle calls publishOps twice at the same time. */
  concurrent: boolean;
  /** The first attempt of every batch's job ends in this state; FAILED-ALWAYS: every attempt fails. */
  job?: 'FAILED' | 'CANCELLED' | 'FAILED-ALWAYS';
  /** The terminal statusChanged event of every batch's first attempt never arrives. */
  loseStatus: boolean;
  /** The first run of every MERGE fails with a concurrent-update error. */
  mergeConflict: boolean;
  /** Seed of the random choices (copies, order). */
  seed: number;
}

export const NO_FAULTS: FaultPlan = { duplicate: false, reorder: false, delay: false, crash: [], concurrent: false, loseStatus: false, mergeConflict: false, seed: 1 };

export const FAULT_HELP = [
  ['duplicate', 'every message delivered 2-3 times'],
  ['reorder', 'deliveries in random order'],
  ['delay', 'the first message of each burst delivered only after the later ones'],
  ...Object.entries(CRASH_POINTS).map(([point, text]) => [`crash:${point}`, `crash ${text}`]),
  ['concurrent', 'two publishOps calls at the same time every cycle'],
  ['job-failed | job-cancelled', 'the first attempt of every Dataflow job ends FAILED or CANCELLED'],
  ['job-failed-always', 'every attempt fails (the batch ends FAILED for good)'],
  ['lose-status', 'the first attempt\'s terminal statusChanged event never arrives'],
  ['merge-conflict', 'the first run of every MERGE fails with a concurrent-update error'],
  ['seed:N', 'seed of the random choices (default 1)'],
] as const;

/** Reads `duplicate,reorder,crash:merge.before-mark,...`; throws naming every unknown fault. */
export function parseFaults(spec: string): FaultPlan {
  const plan: FaultPlan = { ...NO_FAULTS, crash: [] };
  const unknown: string[] = [];
  for (const item of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    if (item === 'duplicate' || item === 'reorder' || item === 'delay' || item === 'concurrent') plan[item] = true;
    else if (item === 'lose-status') plan.loseStatus = true;
    else if (item === 'merge-conflict') plan.mergeConflict = true;
    else if (item === 'job-failed') plan.job = 'FAILED';
    else if (item === 'job-cancelled') plan.job = 'CANCELLED';
    else if (item === 'job-failed-always') plan.job = 'FAILED-ALWAYS';
    else if (item.startsWith('crash:') && item.slice(6) in CRASH_POINTS) plan.crash.push(item.slice(6) as CrashPoint);
    else if (/^seed:\d+$/.test(item)) plan.seed = Number(item.slice(5));
    else unknown.push(item);
  }
  if (unknown.length > 0) throw new Error(`Unknown fault(s): ${unknown.join(', ')}. Known: ${FAULT_HELP.map(([name]) => name).join(', ')}`);
  return plan;
}

/** Describes a plan in a few words (for reports): "duplicate, crash:collect.before-ack". */
export function describeFaults(plan: FaultPlan): string {
  const parts: string[] = [];
  if (plan.duplicate) parts.push('duplicate');
  if (plan.reorder) parts.push('reorder');
  if (plan.delay) parts.push('delay');
  parts.push(...plan.crash.map((c) => `crash:${c}`));
  if (plan.concurrent) parts.push('concurrent');
  if (plan.job) parts.push(`job-${plan.job.toLowerCase()}`);
  if (plan.loseStatus) parts.push('lose-status');
  if (plan.mergeConflict) parts.push('merge-conflict');
  return parts.join(', ') || 'none';
}

/**
 * The Functions Framework prints the stack of every error a function throws; injected crashes
 * are expected, so their traces are dropped from the console while faults are injected.
 * Returns the function that restores the console.
 */
export function muteInjectedCrashTraces(): () => void {
  const original = console.error;
  console.error = (...args: unknown[]) => {
    if (args.some((a) => (a instanceof Error && /Injected crash/.test(`${a.message} ${String(a.cause ?? '')}`)) || (typeof a === 'string' && /Injected crash/.test(a)))) return;
    original(...args);
  };
  return () => {
    console.error = original;
  };
}

export class InjectedCrash extends Error {
  constructor(readonly point: CrashPoint) {
    super(`Injected crash ${CRASH_POINTS[point]}`);
    this.name = 'InjectedCrash';
  }
}

const isMerge = (jobId: string | undefined) => /^consolidation_(reconciler_)?merge_/.test(jobId ?? '');

/** Applies one plan: decorates the ports, and answers the bus's and the runner's questions. */
export class FaultInjector {
  /** How many times each fault fired. */
  readonly fired: Record<string, number> = {};
  private readonly reached = new Map<string, number>();
  private readonly conflicted = new Set<string>();
  private random: () => number;

  constructor(
    readonly plan: FaultPlan,
    private readonly logger: Logger,
  ) {
    // Seeded, so that a fault run repeats exactly.
    this.random = mulberry32(plan.seed);
  }

  get active(): boolean {
    return describeFaults(this.plan) !== 'none';
  }

  private count(name: string): void {
    this.fired[name] = (this.fired[name] ?? 0) + 1;
  }

  /** Throws at the point's 1st, 4th, 7th, ... occurrence. */
  private maybeCrash(point: CrashPoint, fields: Record<string, unknown> = {}): void {
    if (!this.plan.crash.includes(point)) return;
    const n = (this.reached.get(point) ?? 0) + 1;
    this.reached.set(point, n);
    if ((n - 1) % 3 !== 0) return;
    this.count(`crash:${point}`);
    this.logger.warn(`Fault injection: ${CRASH_POINTS[point]}`, { fault: `crash:${point}`, ...fields });
    throw new InjectedCrash(point);
  }

  publisher(inner: Publisher): Publisher {
    return {
      publish: async (topic, message) => {
        const isSeal = (message.data as { type?: string } | null)?.type === 'seal';
        if (isSeal) this.maybeCrash('publish.before-seal', { topic });
        const id = await inner.publish(topic, message);
        if (isSeal) this.maybeCrash('publish.before-watermark', { topic });
        return id;
      },
    };
  }

  store(inner: ObjectStore): ObjectStore {
    return {
      read: (path) => inner.read(path),
      replace: (path, data, generation) => inner.replace(path, data, generation),
      exists: (path) => inner.exists(path),
      list: (prefix) => inner.list(prefix),
      delete: (path) => inner.delete(path),
      uri: (path) => inner.uri(path),
      create: async (path, data) => {
        if (path.endsWith('/manifest.json')) this.maybeCrash('publish.before-manifest', { path });
        const created = await inner.create(path, data);
        if (path.includes('/chunks/')) this.maybeCrash('collect.before-ack', { path });
        return created;
      },
    };
  }

  launcher(inner: JobLauncher): JobLauncher {
    return {
      jobState: (jobId) => inner.jobState(jobId),
      launch: async (request) => {
        const launched = await inner.launch(request);
        this.maybeCrash('launch.before-record', { jobName: launched.jobName });
        return launched;
      },
    };
  }

  warehouse<W extends Warehouse>(inner: W): Warehouse {
    return {
      dialect: inner.dialect,
      query: async (statement, options) => {
        if (this.plan.mergeConflict && isMerge(options?.jobId) && !this.conflicted.has(options!.jobId!)) {
          this.conflicted.add(options!.jobId!);
          this.count('merge-conflict');
          this.logger.warn('Fault injection: the MERGE fails with a concurrent-update error', { fault: 'merge-conflict', mergeJobId: options?.jobId });
          throw new Error(`Could not serialize access to table consolidated_table due to concurrent update (injected, job ${options?.jobId})`);
        }
        const result = await inner.query(statement, options);
        if (isMerge(options?.jobId)) this.maybeCrash('merge.before-mark', { mergeJobId: options?.jobId });
        return result;
      },
      stream: (statement, options) => inner.stream(statement, options),
      loadNdjson: (table, uris, schema, options) => inner.loadNdjson(table, uris, schema, options),
      ensureTable: (table, schema, options) => inner.ensureTable(table, schema, options),
      dropTable: (table) => inner.dropTable(table),
      tableLayout: (table) => inner.tableLayout(table),
      tableExists: (table) => inner.tableExists(table),
      qualify: (table) => inner.qualify(table),
      plainName: (table) => inner.plainName(table),
    };
  }

  /** The runner's forced outcome for a job. */
  jobOutcome(attempt: number): ForcedOutcome | undefined {
    const job = this.plan.job;
    if (!job || (job !== 'FAILED-ALWAYS' && attempt !== 1)) return undefined;
    this.count(`job-${job.toLowerCase()}`);
    return job === 'CANCELLED' ? 'CANCELLED' : 'FAILED';
  }

  /** True when this statusChanged event is to be lost. */
  loseEvent(state: string, attempt: number): boolean {
    if (!this.plan.loseStatus || attempt !== 1 || !/DONE|FAILED|CANCELLED/.test(state)) return false;
    this.count('lose-status');
    this.logger.warn('Fault injection: a terminal statusChanged event is lost', { fault: 'lose-status', jobState: state });
    return true;
  }

  /** Copies of one delivery (duplicate: 2 or 3). */
  copies(): number {
    if (!this.plan.duplicate) return 1;
    this.count('duplicate');
    return this.random() < 0.5 ? 2 : 3;
  }

  /** Which queued delivery goes next (reorder: any of them). */
  pick(queued: number): number {
    if (!this.plan.reorder || queued < 2) return 0;
    this.count('reorder');
    return Math.floor(this.random() * queued);
  }

  reorders(): boolean {
    return this.plan.reorder;
  }

  holdFirst(): boolean {
    return this.plan.delay;
  }

  noteHeld(): void {
    this.count('delay');
  }
}
