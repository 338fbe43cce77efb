/**
 * One step of one size of the benchmark, run in a child process of its own so that its peak RSS is
 * its own: `prepare` (make the warehouse), `probe` (publishOps alone, its heap), `chain` (one
 * cycle on the local stack), `bare` (the same consolidation by DuckDB alone, then the row-for-row
 * comparison with the chain's result).
 *
 * Usage (bench/run.ts spawns it): node --expose-gc -r tsx/cjs bench/worker.ts ROLE REQUEST.json RESULT.json
 * Progress goes to stderr; the result is written as JSON to RESULT.json.
 */
import { mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { publishChangedOperations } from '../functions/publish-ops';
import { loadConfig, type Config } from '../shared/config';
import { JsonLogger } from '../shared/logger';
import { runCycle, type CycleProgress } from '../shared/local/cycle';
import { DuckDbWarehouse } from '../shared/local/duckdb-warehouse';
import { FolderObjectStore } from '../shared/local/folder-store';
import { LocalStack, StackClock } from '../shared/local/stack';
import type { JobLauncher, OutgoingMessage, Publisher } from '../shared/ports';
import { bareConsolidate, CONSOLIDATED, CONSOLIDATED_COLUMNS } from './bare';
import { CYCLE_AT, generateSources, HISTORY_BATCH_ID, mixFor, WATERMARK, type Mix } from './generate';

export interface Knobs {
  chunkSize: number;
  publishConcurrency: number;
  busConcurrency: number;
}

export interface PrepareRequest {
  size: number;
  file: string;
  /** History mode: this many operations already in the tables, accumulated at perDay a day. */
  history?: { operations: number; perDay: number };
}
export interface PrepareResult {
  mix: Mix;
  ussdRows: number;
  transactionRows: number;
  consolidatedRows: number;
  ms: number;
}

export interface ProbeRequest {
  size: number;
  file: string;
  stateDir: string;
  knobs: Knobs;
}
export interface ProbeResult {
  idCount: number;
  chunkCount: number;
  messages: number;
  /** publishOps' wall time, the forced GCs of the sampling left out. */
  ms: number;
  /** Time spent in the sampling's forced GCs (not in ms). */
  gcMs: number;
  /** Live heap (after a full GC) at the start of publishOps, MB. */
  baselineMB: number;
  /** Largest live heap growth over the baseline while publishOps streamed (a full GC before each sample), MB. */
  liveGrowthMB: number;
  /** Largest heapUsed growth over the baseline, garbage included (sampled without GC), MB. */
  heapGrowthMB: number;
  samples: number;
}

export interface ChainRequest {
  size: number;
  file: string;
  stateDir: string;
  knobs: Knobs;
}
export interface ChainResult {
  ok: boolean;
  error?: string;
  batchId: string;
  window: { from: string; to: string };
  idCount: number;
  chunkCount: number;
  stagesMs: { publish: number; collect: number; launch: number; pipeline: number; merge: number; total: number };
  merge: { inserted: number; updated: number; unchanged: number; sourceRows: number };
  messages: Record<string, number>;
  invocations: Record<string, number>;
  deadLetters: number;
  peakRssMB: number;
  /** heapUsed growth over the pre-cycle baseline during the publish stage (whole process: publishOps, the bus, collectIds). */
  publishStageHeapGrowthMB: number;
}

export interface BareRequest {
  size: number;
  file: string;
  chainFile: string;
  batchId: string;
  window: { from: string; to: string };
}
export interface BareResult {
  ms: { stageIds: number; enrich: number; merge: number; total: number };
  ids: number;
  peakRssMB: number;
  comparison: { chainRows: number; bareRows: number; onlyInChain: number; onlyInBare: number; matched: boolean };
}

export interface CompareRequest {
  file: string;
  chainFile: string;
}
export type Comparison = BareResult['comparison'];

const MB = 1024 * 1024;
const gc = (): void => (globalThis as { gc?: () => void }).gc?.();
const say = (text: string): void => void process.stderr.write(`    ${text}\n`);

export function benchConfig(stateDir: string, knobs: Knobs): Config {
  return loadConfig({
    STATE_DIR: stateDir,
    CHUNK_SIZE: String(knobs.chunkSize),
    PUBLISH_CONCURRENCY: String(knobs.publishConcurrency),
    LOCAL_BUS_CONCURRENCY: String(knobs.busConcurrency),
    LOOKBACK: '15m',
    SAFETY_LAG: '2m',
    LOG_LEVEL: 'INFO',
  });
}

function fileLogger(stateDir: string): JsonLogger {
  mkdirSync(join(stateDir, 'logs'), { recursive: true });
  const fd = openSync(join(stateDir, 'logs', 'bench.log'), 'a');
  return new JsonLogger((line) => writeSync(fd, `${line}\n`), 'INFO');
}

async function scalar(connection: DuckDBConnection, sql: string): Promise<number> {
  return Number((await connection.runAndReadAll(sql)).getRows()[0][0]);
}

export async function prepare(request: PrepareRequest): Promise<PrepareResult> {
  const started = performance.now();
  const mix = mixFor(request.size, request.history);
  const instance = await DuckDBInstance.create(request.file);
  const connection = await instance.connect();
  try {
    await connection.run("SET TimeZone='UTC'");
    const counts = await generateSources(connection, mix);
    // What earlier cycles consolidated: everything up to the watermark, by the bare engine.
    await bareConsolidate(connection, { window: { from: '1970-01-01T00:00:00.000Z', to: WATERMARK.toISOString() }, batchId: HISTORY_BATCH_ID, consolidatedAt: WATERMARK.toISOString() });
    // Production's cycles append to consolidated_table in time order; one MERGE of the whole history does not.
    if (mix.accumulated) await rewriteInOrder(connection, `"${CONSOLIDATED.dataset}"."${CONSOLIDATED.table}"`, 'created_at');
    await connection.run('CHECKPOINT');
    const consolidatedRows = await scalar(connection, `SELECT count(*) FROM "${CONSOLIDATED.dataset}"."${CONSOLIDATED.table}"`);
    return { mix, ussdRows: counts.ussdRows, transactionRows: counts.transactionRows, consolidatedRows, ms: performance.now() - started };
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

/** Rewrites a table with its rows sorted by `column`, as a table appended to in time order holds them. */
async function rewriteInOrder(connection: DuckDBConnection, table: string, column: string): Promise<void> {
  await connection.run(`CREATE TEMP TABLE sorted_rows AS SELECT * FROM ${table} ORDER BY "${column}"`);
  await connection.run(`DELETE FROM ${table}`);
  await connection.run(`INSERT INTO ${table} SELECT * FROM sorted_rows`);
  await connection.run('DROP TABLE sorted_rows');
}

/**
 * publishOps alone, as the function runs: the real handler code over the warehouse, with a
 * publisher that serializes each message like the real ones and drops it. About ten times in the
 * run (whatever the size) a full GC runs and the live heap is sampled, so the growth measured is
 * memory held, not garbage; the GCs' time is left out of the run's time.
 */
export async function probe(request: ProbeRequest): Promise<ProbeResult> {
  const config = benchConfig(request.stateDir, request.knobs);
  const warehouse = await DuckDbWarehouse.open(request.file);
  const store = new FolderObjectStore(join(request.stateDir, 'bucket'));
  await store.create(config.watermarkObject, WATERMARK.toISOString());
  let messages = 0;
  let chunks = 0;
  let baseline = 0;
  let liveMax = 0;
  let heapMax = 0;
  let samples = 0;
  let gcMs = 0;
  const every = Math.max(1, Math.round(request.size / request.knobs.chunkSize / 10));
  const publisher: Publisher = {
    publish: async (_topic: string, message: OutgoingMessage) => {
      Buffer.from(JSON.stringify(message.data));
      messages++;
      const heap = process.memoryUsage().heapUsed;
      heapMax = Math.max(heapMax, heap);
      if ((message.data as { type?: string }).type === 'chunk' && chunks++ % every === 0) {
        const gcStarted = performance.now();
        gc();
        liveMax = Math.max(liveMax, process.memoryUsage().heapUsed);
        gcMs += performance.now() - gcStarted;
        samples++;
      }
      await new Promise((resolve) => setImmediate(resolve));
      return String(messages);
    },
  };
  const launcher = {
    launch: async () => {
      throw new Error('publishOps launches nothing');
    },
    jobState: async () => undefined,
  } as JobLauncher;
  try {
    gc();
    baseline = process.memoryUsage().heapUsed;
    const started = performance.now();
    const result = await publishChangedOperations({ config, warehouse, store, publisher, launcher, clock: { now: () => new Date(CYCLE_AT) }, logger: fileLogger(request.stateDir) });
    const ms = performance.now() - started - gcMs;
    if (result.status !== 'sealed') throw new Error(`publishOps found nothing to publish (${result.status})`);
    return {
      idCount: result.idCount,
      chunkCount: result.chunkCount,
      messages,
      ms,
      gcMs,
      baselineMB: baseline / MB,
      liveGrowthMB: Math.max(0, liveMax - baseline) / MB,
      heapGrowthMB: Math.max(0, heapMax - baseline) / MB,
      samples,
    };
  } finally {
    await warehouse.close();
  }
}

/** One cycle on the local stack, from the scheduler's call to MERGED, counting every message and delivery. */
export async function chain(request: ChainRequest): Promise<ChainResult> {
  const config = benchConfig(request.stateDir, request.knobs);
  const clock = new StackClock();
  const stack = await LocalStack.start({ config, warehouseFile: request.file, logger: fileLogger(request.stateDir), clock });
  const messages: Record<string, number> = {};
  const invocations: Record<string, number> = { publishOps: 1 };
  stack.bus.events.on('published', ({ topic, data }) => {
    const type = (data as { type?: string })?.type;
    const key = topic === config.idsTopic ? `${topic} (${type})` : topic;
    messages[key] = (messages[key] ?? 0) + 1;
  });
  stack.bus.events.on('delivered', ({ subscription }) => {
    invocations[subscription] = (invocations[subscription] ?? 0) + 1;
  });
  try {
    await stack.store.create(config.watermarkObject, WATERMARK.toISOString());
    clock.set(CYCLE_AT);
    gc();
    const baseline = process.memoryUsage().heapUsed;
    let publishHeapMax = baseline;
    let stage: CycleProgress['stage'] = 'extract and publish';
    let lastShown = 0;
    const sampler = setInterval(() => {
      if (stage === 'extract and publish') publishHeapMax = Math.max(publishHeapMax, process.memoryUsage().heapUsed);
    }, 5);
    const report = await runCycle(stack, {
      quietMs: 30_000,
      onProgress: (p) => {
        const now = performance.now();
        if (p.stage !== stage || now - lastShown > 2_000) {
          say(`chain: ${p.stage} · IDs published ${p.idsPublished}${p.rowsMerged ? ` · rows merged ${p.rowsMerged}` : ''}`);
          lastShown = now;
        }
        stage = p.stage;
      },
    }).finally(() => clearInterval(sampler));
    const peakRssMB = process.resourceUsage().maxRSS / 1024;
    await stack.bus.idle();
    const merge = report.state?.merge;
    return {
      ok: report.ok && report.outcome === 'merged',
      error: report.error,
      batchId: report.batchId ?? '',
      window: report.window ?? { from: '', to: '' },
      idCount: report.idCount,
      chunkCount: report.chunkCount,
      stagesMs: report.stagesMs ?? { publish: 0, collect: 0, launch: 0, pipeline: 0, merge: 0, total: 0 },
      merge: { inserted: merge?.inserted ?? 0, updated: merge?.updated ?? 0, unchanged: merge?.unchanged ?? 0, sourceRows: merge?.sourceRows ?? 0 },
      messages,
      invocations,
      deadLetters: report.deadLetters,
      peakRssMB,
      publishStageHeapGrowthMB: (publishHeapMax - baseline) / MB,
    };
  } finally {
    await stack.stop();
  }
}

/** The bare engine on its copy of the warehouse, then the comparison with the chain's table. */
export async function bare(request: BareRequest): Promise<BareResult> {
  const instance = await DuckDBInstance.create(request.file);
  const connection = await instance.connect();
  try {
    await connection.run("SET TimeZone='UTC'");
    const result = await bareConsolidate(connection, { window: request.window, batchId: request.batchId, consolidatedAt: CYCLE_AT.toISOString() });
    const peakRssMB = process.resourceUsage().maxRSS / 1024;
    say('bare: comparing with the chain\'s consolidated_table row for row');
    return { ms: result.ms, ids: result.ids, peakRssMB, comparison: await compareTables(connection, request.chainFile, CONSOLIDATED_COLUMNS) };
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

/** Row-for-row comparison (as multisets) of this database's consolidated_table and the chain's. */
async function compareTables(connection: DuckDBConnection, chainFile: string, columnNames: readonly string[]): Promise<Comparison> {
  await connection.run(`ATTACH '${chainFile.replace(/'/g, "''")}' AS chain_result (READ_ONLY)`);
  try {
    const columns = columnNames.map((c) => `"${c}"`).join(', ');
    const mine = `SELECT ${columns} FROM "${CONSOLIDATED.dataset}"."${CONSOLIDATED.table}"`;
    const theirs = `SELECT ${columns} FROM chain_result."${CONSOLIDATED.dataset}"."${CONSOLIDATED.table}"`;
    const bareRows = await scalar(connection, `SELECT count(*) FROM (${mine})`);
    const chainRows = await scalar(connection, `SELECT count(*) FROM (${theirs})`);
    const onlyInBare = await scalar(connection, `SELECT count(*) FROM (${mine} EXCEPT ALL ${theirs})`);
    const onlyInChain = await scalar(connection, `SELECT count(*) FROM (${theirs} EXCEPT ALL ${mine})`);
    return { chainRows, bareRows, onlyInChain, onlyInBare, matched: chainRows === bareRows && onlyInChain === 0 && onlyInBare === 0 };
  } finally {
    await connection.run('DETACH chain_result');
  }
}

/**
 * The bare engine's table (already consolidated) against another chain run's: every column but
 * batch_id, whose random suffix differs from run to run.
 */
export async function compare(request: CompareRequest): Promise<Comparison> {
  const instance = await DuckDBInstance.create(request.file, { access_mode: 'READ_ONLY' });
  const connection = await instance.connect();
  try {
    return await compareTables(connection, request.chainFile, CONSOLIDATED_COLUMNS.filter((c) => c !== 'batch_id'));
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

const ROLES = { prepare, probe, chain, bare, compare } as const;

if (require.main === module) {
  const [role, requestFile, resultFile] = process.argv.slice(2);
  const work = ROLES[role as keyof typeof ROLES] as ((request: unknown) => Promise<unknown>) | undefined;
  if (!work || !requestFile || !resultFile) {
    process.stderr.write(`usage: worker.ts ${Object.keys(ROLES).join('|')} REQUEST.json RESULT.json\n`);
    process.exit(2);
  }
  work(JSON.parse(readFileSync(requestFile, 'utf8')))
    .then((result) => {
      writeFileSync(resultFile, JSON.stringify(result, null, 2));
      process.exit(0);
    })
    .catch((error: unknown) => {
      process.stderr.write(`worker ${role} failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exit(1);
    });
}
