/**
 * `npm run bench`: how fast and how lean one cycle of the chain is, against the bare engine.
 *
 * For each size N (changed operations in one window), in fresh child processes (bench/worker.ts):
 *
 * 1. prepare: a warehouse with N changed operations and N already consolidated (bench/generate.ts);
 * 2. probe: publishOps alone over that warehouse, its live heap sampled as it streams;
 * 3. chain: one cycle on the local stack (copy A of the warehouse), from the scheduler's call to
 *    MERGED, with every message and delivery counted and the process's peak RSS;
 * 4. bare: the same consolidation by DuckDB alone (copy B), then its table compared with the
 *    chain's row for row.
 *
 * Writes results.json, results.md and scaling.svg into --out (default: this folder).
 */
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir, totalmem, type } from 'node:os';
import { join, resolve } from 'node:path';
import { loadConfig } from '../shared/config';
import { formatDuration } from '../shared/duration';
import type { BareRequest, BareResult, ChainRequest, ChainResult, Comparison, CompareRequest, Knobs, PrepareRequest, PrepareResult, ProbeRequest, ProbeResult } from './worker';
import { DEFAULT_HISTORY_CHANGED, DEFAULT_HISTORY_PER_DAY, DEFAULT_HISTORY_SIZES, HISTORY_TARGET, historyProblems, measureHistory, renderHistoryMarkdown, renderHistorySvg, type HistoryOptions, type HistoryReport } from './history';
import { renderMarkdown, renderSvg } from './report';

export const DEFAULT_SIZES = [10_000, 100_000, 1_000_000];
/** The chain's own defaults (shared/config.ts), which the benchmark uses unless told otherwise. */
export function defaultKnobs(): Knobs {
  const config = loadConfig({});
  return { chunkSize: config.chunkSize, publishConcurrency: config.publishConcurrency, busConcurrency: config.localBusConcurrency };
}
/** Settings also tried at the largest size (one chain run each), beside the ones of the main runs. */
export const SWEEP: readonly Knobs[] = [
  { chunkSize: 1000, publishConcurrency: 16, busConcurrency: 8 },
  { chunkSize: 1000, publishConcurrency: 16, busConcurrency: 32 },
  { chunkSize: 10_000, publishConcurrency: 16, busConcurrency: 8 },
  { chunkSize: 10_000, publishConcurrency: 64, busConcurrency: 8 },
  { chunkSize: 10_000, publishConcurrency: 16, busConcurrency: 32 },
  { chunkSize: 50_000, publishConcurrency: 16, busConcurrency: 8 },
];
/** publishOps' memory is "flat" when its live heap growth at the largest size is within this many MB of its growth at the smallest. */
export const FLAT_BOUND_MB = 2;
/** The target of the issue: a cycle at most this many times the bare engine's time at 1,000,000. */
export const TARGET_RATIO = 3;

export interface BenchOptions {
  sizes: number[];
  knobs: Knobs;
  /** Where results.json, results.md and scaling.svg go. */
  out: string;
  /** Scratch folder for the warehouses and state folders (removed afterwards unless keep). */
  work?: string;
  /** Chain and bare runs per size; the fastest of each is reported (every run is compared). */
  repeat: number;
  /** Also runs the chain at the largest size with each of SWEEP's settings. */
  sweep: boolean;
  keep: boolean;
  log: (line: string) => void;
  /** The steps' own progress lines: shown as they come (default), or kept and shown only if a step fails. */
  childOutput?: 'inherit' | 'capture';
  /** History mode (--history) instead of the size sweep. */
  history?: HistoryOptions;
}

export interface SweepResult {
  knobs: Knobs;
  stagesMs: ChainResult['stagesMs'];
  /** Against the fastest bare run of that size. */
  ratio: number;
  peakRssMB: number;
  publishStageHeapGrowthMB: number;
  messages: number;
  invocations: number;
  /** Equal to the bare engine's table in every column but batch_id, and the expected counts merged. */
  matched: boolean;
  /** The main runs' settings: their fastest run, not a run of its own. */
  main: boolean;
}

export interface SizeResult {
  size: number;
  mix: PrepareResult['mix'];
  sourceRows: { ussd: number; transactions: number; consolidatedBefore: number };
  prepareMs: number;
  chain: ChainResult;
  bare: BareResult;
  /** chain total / bare total. */
  ratio: number;
  probe: ProbeResult;
  messages: { total: number; perOperation: number; expectedChunks: number };
  invocations: number;
  matched: boolean;
  runs: { chainMs: number[]; bareMs: number[] };
}

export interface BenchReport {
  date: string;
  machine: { cpu: string; cores: number; memoryGiB: number; node: string; duckdb: string; os: string; loadAverageAtStart: number[] };
  knobs: Knobs;
  repeat: number;
  flatBoundMB: number;
  targetRatio: number;
  sizes: SizeResult[];
  sweep: { size: number; results: SweepResult[] } | null;
  publishOpsFlat: { smallest: number; largest: number; growthSmallestMB: number; growthLargestMB: number; flat: boolean } | null;
  wallMs: number;
  ok: boolean;
  problems: string[];
}

const WORKER = join(__dirname, 'worker.ts');

/** Runs one worker role in a fresh Node process (TypeScript through tsx, with gc exposed). */
async function inChild<T>(role: string, request: unknown, dir: string, output: BenchOptions['childOutput']): Promise<T> {
  const requestFile = join(dir, `${role}-request.json`);
  const resultFile = join(dir, `${role}-result.json`);
  writeFileSync(requestFile, JSON.stringify(request));
  rmSync(resultFile, { force: true });
  let captured = '';
  const code = await new Promise<number | null>((done, fail) => {
    const child = spawn(process.execPath, ['--expose-gc', '--require', require.resolve('tsx/cjs'), WORKER, role, requestFile, resultFile], {
      stdio: ['ignore', output === 'capture' ? 'pipe' : 'inherit', output === 'capture' ? 'pipe' : 'inherit'],
    });
    child.stdout?.on('data', (data: Buffer) => (captured += data.toString()));
    child.stderr?.on('data', (data: Buffer) => (captured += data.toString()));
    child.on('error', fail);
    child.on('exit', (exitCode) => done(exitCode));
  });
  if (code !== 0 || !existsSync(resultFile)) {
    throw new Error(`the ${role} step failed (exit code ${code})${captured ? `:\n${captured.slice(-4000)}` : '; see its output above'}`);
  }
  return JSON.parse(readFileSync(resultFile, 'utf8')) as T;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

async function measureSize(size: number, options: BenchOptions, work: string, keepFiles: boolean): Promise<SizeResult> {
  const log = options.log;
  const dir = join(work, `n${size}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const master = join(dir, 'prepared.duckdb');

  log(`  prepare: ${size.toLocaleString('en')} changed operations, ${Math.max(size, 1000).toLocaleString('en')} already consolidated`);
  const prepared = await inChild<PrepareResult>('prepare', { size, file: master } satisfies PrepareRequest, dir, options.childOutput);
  log(`  prepared in ${seconds(prepared.ms)}: ${prepared.ussdRows.toLocaleString('en')} USSD rows, ${prepared.transactionRows.toLocaleString('en')} transaction rows`);

  log('  probe: publishOps alone, its live heap sampled as it streams');
  const probe = await inChild<ProbeResult>('probe', { size, file: master, stateDir: join(dir, 'probe-state'), knobs: options.knobs } satisfies ProbeRequest, dir, options.childOutput);
  log(`  probe: ${probe.idCount.toLocaleString('en')} IDs in ${probe.chunkCount} chunks in ${seconds(probe.ms)}, live heap growth ${probe.liveGrowthMB.toFixed(2)} MB`);

  const { best, runs, matched } = await chainAndBare(size, dir, master, options);
  if (!options.keep && !keepFiles) rmSync(dir, { recursive: true, force: true });

  const { chain, bare } = best;
  const total = sum(chain.messages);
  return {
    size,
    mix: prepared.mix,
    sourceRows: { ussd: prepared.ussdRows, transactions: prepared.transactionRows, consolidatedBefore: prepared.consolidatedRows },
    prepareMs: prepared.ms,
    chain,
    bare,
    ratio: chain.stagesMs.total / bare.ms.total,
    probe,
    messages: { total, perOperation: total / size, expectedChunks: Math.ceil(size / options.knobs.chunkSize) },
    invocations: sum(chain.invocations),
    matched,
    runs,
  };
}

/** `options.repeat` runs of the chain's cycle and of the bare engine, each on fresh copies of `master`, every pair compared; the fastest of each. */
async function chainAndBare(size: number, dir: string, master: string, options: BenchOptions): Promise<{ best: { chain: ChainResult; bare: BareResult }; runs: SizeResult['runs']; matched: boolean }> {
  const log = options.log;
  let best: { chain: ChainResult; bare: BareResult } | undefined;
  const runs = { chainMs: [] as number[], bareMs: [] as number[] };
  let matched = true;
  for (let run = 1; run <= options.repeat; run++) {
    const tag = options.repeat > 1 ? ` (run ${run} of ${options.repeat})` : '';
    const chainFile = join(dir, 'chain.duckdb');
    const bareFile = join(dir, 'bare.duckdb');
    const stateDir = join(dir, 'chain-state');
    freshCopy(master, [chainFile, bareFile], stateDir);

    log(`  chain${tag}: one cycle on the local stack`);
    const chain = await inChild<ChainResult>('chain', { size, file: chainFile, stateDir, knobs: options.knobs } satisfies ChainRequest, dir, options.childOutput);
    if (!chain.ok) throw new Error(`the chain's cycle did not merge: ${chain.error ?? 'unknown error'}`);
    log(`  chain: ${seconds(chain.stagesMs.total)} (publish ${seconds(chain.stagesMs.publish)}, collect ${seconds(chain.stagesMs.collect)}, stage IDs + launch ${seconds(chain.stagesMs.launch)}, pipeline ${seconds(chain.stagesMs.pipeline)}, merge ${seconds(chain.stagesMs.merge)}); peak RSS ${Math.round(chain.peakRssMB)} MB`);

    log(`  bare engine${tag}: the same consolidation on DuckDB alone`);
    const bare = await inChild<BareResult>('bare', { size, file: bareFile, chainFile, batchId: chain.batchId, window: chain.window } satisfies BareRequest, dir, options.childOutput);
    const c = bare.comparison;
    log(`  bare: ${seconds(bare.ms.total)} (stage IDs ${seconds(bare.ms.stageIds)}, enrich ${seconds(bare.ms.enrich)}, MERGE ${seconds(bare.ms.merge)}); peak RSS ${Math.round(bare.peakRssMB)} MB`);
    log(
      c.matched
        ? `  results matched row for row: ${c.chainRows.toLocaleString('en')} rows in both consolidated tables`
        : `  RESULTS DIFFER: chain ${c.chainRows} rows, bare ${c.bareRows}; ${c.onlyInChain} only in the chain's, ${c.onlyInBare} only in the bare engine's`,
    );
    matched &&= c.matched;
    runs.chainMs.push(chain.stagesMs.total);
    runs.bareMs.push(bare.ms.total);
    if (!best) best = { chain, bare };
    else {
      if (chain.stagesMs.total < best.chain.stagesMs.total) best.chain = chain;
      if (bare.ms.total < best.bare.ms.total) best.bare = bare;
    }
  }
  return { best: best!, runs, matched };
}

const sum = (counts: Record<string, number>) => Object.values(counts).reduce((a, b) => a + b, 0);
const knobLabel = (k: Knobs) => `CHUNK_SIZE ${k.chunkSize}, PUBLISH_CONCURRENCY ${k.publishConcurrency}, LOCAL_BUS_CONCURRENCY ${k.busConcurrency}`;
/** True when the MERGE inserted, updated and left unchanged exactly what was generated. */
const countsMatch = (merge: ChainResult['merge'], mix: SizeResult['mix']) => merge.inserted === mix.inserted && merge.updated === mix.updated && merge.unchanged === mix.lookback;

/** Copies of the prepared warehouse (no write-ahead log left from an earlier run) and an empty state folder. */
function freshCopy(master: string, files: string[], stateDir: string): void {
  for (const file of files) {
    rmSync(`${file}.wal`, { force: true });
    copyFileSync(master, file);
  }
  rmSync(stateDir, { recursive: true, force: true });
}

const sameKnobs = (a: Knobs, b: Knobs) => a.chunkSize === b.chunkSize && a.publishConcurrency === b.publishConcurrency && a.busConcurrency === b.busConcurrency;

/** The chain at the size of `main` with each of SWEEP's settings, each result compared with the bare engine's table. */
async function sweep(main: SizeResult, options: BenchOptions, work: string): Promise<SweepResult[]> {
  const { size } = main;
  const dir = join(work, `n${size}`);
  const master = join(dir, 'prepared.duckdb');
  const results: SweepResult[] = [];
  const summary = (knobs: Knobs, chain: ChainResult, matched: boolean, isMain: boolean): SweepResult => ({
    knobs,
    stagesMs: chain.stagesMs,
    ratio: chain.stagesMs.total / main.bare.ms.total,
    peakRssMB: chain.peakRssMB,
    publishStageHeapGrowthMB: chain.publishStageHeapGrowthMB,
    messages: sum(chain.messages),
    invocations: sum(chain.invocations),
    matched,
    main: isMain,
  });
  try {
    for (const knobs of SWEEP) {
      if (sameKnobs(knobs, options.knobs)) continue;
      options.log(`  settings: ${knobLabel(knobs)}`);
      const chainFile = join(dir, 'sweep.duckdb');
      const stateDir = join(dir, 'sweep-state');
      freshCopy(master, [chainFile], stateDir);
      const chain = await inChild<ChainResult>('chain', { size, file: chainFile, stateDir, knobs } satisfies ChainRequest, dir, options.childOutput);
      const comparison = chain.ok ? await inChild<Comparison>('compare', { file: join(dir, 'bare.duckdb'), chainFile } satisfies CompareRequest, dir, options.childOutput) : undefined;
      const matched = chain.ok && countsMatch(chain.merge, main.mix) && chain.idCount === size && comparison?.matched === true;
      results.push(summary(knobs, chain, matched, false));
      options.log(`  => ${seconds(chain.stagesMs.total)} (publish ${seconds(chain.stagesMs.publish)}, collect ${seconds(chain.stagesMs.collect)}); ${matched ? 'same table' : 'TABLES DIFFER'}`);
    }
  } finally {
    if (!options.keep) rmSync(dir, { recursive: true, force: true });
  }
  results.push(summary(options.knobs, main.chain, main.matched, true));
  return results.sort((a, b) => a.knobs.chunkSize - b.knobs.chunkSize || a.knobs.publishConcurrency - b.knobs.publishConcurrency || a.knobs.busConcurrency - b.knobs.busConcurrency);
}

/** Checks what every size must satisfy; returns the problems found. */
function check(result: SizeResult): string[] {
  const problems: string[] = [];
  const { size, chain, mix } = result;
  if (!result.matched) problems.push(`${size}: the chain's consolidated_table differs from the bare engine's`);
  if (chain.idCount !== size) problems.push(`${size}: the cycle read ${chain.idCount} IDs, not ${size}`);
  if (!countsMatch(chain.merge, mix)) {
    problems.push(`${size}: merged ${chain.merge.inserted} inserted / ${chain.merge.updated} updated / ${chain.merge.unchanged} unchanged, generated ${mix.inserted} / ${mix.updated} / ${mix.lookback}`);
  }
  if (chain.deadLetters > 0) problems.push(`${size}: ${chain.deadLetters} message(s) dead-lettered`);
  if (chain.chunkCount !== result.messages.expectedChunks) problems.push(`${size}: ${chain.chunkCount} chunks, expected ${result.messages.expectedChunks}`);
  return problems;
}

const loadAverage = () => loadavg().map((l) => Math.round(l * 100) / 100);

function machine(): BenchReport['machine'] {
  const cpuList = cpus();
  return {
    cpu: cpuList[0]?.model ?? 'unknown',
    cores: cpuList.length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    duckdb: (require('@duckdb/node-api/package.json') as { version: string }).version,
    os: `${type()} ${release()}`,
    loadAverageAtStart: loadAverage(),
  };
}

/** results.md: the size sweep's tables and the history mode's, from whichever results the folder holds. */
export function writeMarkdown(out: string): void {
  const read = <T>(file: string): T | undefined => (existsSync(join(out, file)) ? (JSON.parse(readFileSync(join(out, file), 'utf8')) as T) : undefined);
  const sweep = read<BenchReport>('results.json');
  const history = read<HistoryReport>('history.json');
  const parts = [sweep ? renderMarkdown(sweep) : '# Benchmark\n', history ? renderHistoryMarkdown(history) : ''];
  writeFileSync(join(out, 'results.md'), parts.filter(Boolean).join('\n'));
}

/** History mode: one cycle of the same changes over each history size; writes history.json, history.svg and results.md. */
export async function runHistoryBenchmark(options: BenchOptions & { history: HistoryOptions }): Promise<HistoryReport> {
  const started = performance.now();
  const { log, history } = options;
  const config = loadConfig({});
  const report: HistoryReport = {
    date: new Date().toISOString(),
    machine: { ...machine(), loadAverageAtEnd: [] },
    knobs: options.knobs,
    repeat: options.repeat,
    operationMaxAge: formatDuration(config.operationMaxAgeMs),
    options: history,
    results: [],
    growth: null,
    target: HISTORY_TARGET,
    wallMs: 0,
    ok: true,
    problems: [],
  };
  const work = options.work ? resolve(options.work) : mkdtempSync(join(tmpdir(), 'consolidation-bench-'));
  mkdirSync(work, { recursive: true });
  log(`History benchmark: ${history.changed.toLocaleString('en')} changed operations over histories of ${history.sizes.map((h) => h.toLocaleString('en')).join(', ')} (${history.perDay.toLocaleString('en')} a day); scratch ${work}`);
  try {
    for (const size of history.sizes) {
      log(`history ${size.toLocaleString('en')}:`);
      const result = await measureHistory(size, options, work, { inChild, chainAndBare });
      report.results.push(result);
      log(`  => chain ${seconds(result.chain.stagesMs.total)} / bare ${seconds(result.bare.ms.total)}`);
    }
  } finally {
    if (!options.keep && !options.work) rmSync(work, { recursive: true, force: true });
  }
  if (report.results.length > 1) {
    const [first, last] = [report.results[0], report.results[report.results.length - 1]];
    report.growth = { chain: last.chain.stagesMs.total / first.chain.stagesMs.total, bare: last.bare.ms.total / first.bare.ms.total };
    log(`Cycle at ${last.history.toLocaleString('en')} / cycle at ${first.history.toLocaleString('en')}: chain ${report.growth.chain.toFixed(2)}, bare ${report.growth.bare.toFixed(2)} (target: at most ${HISTORY_TARGET})`);
  }
  report.problems = historyProblems(report);
  report.ok = report.problems.length === 0;
  report.machine.loadAverageAtEnd = loadAverage();
  report.wallMs = performance.now() - started;
  mkdirSync(options.out, { recursive: true });
  writeFileSync(join(options.out, 'history.json'), `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(join(options.out, 'history.svg'), renderHistorySvg(report));
  writeMarkdown(options.out);
  log(`Wrote ${join(options.out, 'history.json')}, history.svg and results.md; took ${seconds(report.wallMs)}`);
  for (const problem of report.problems) log(`PROBLEM: ${problem}`);
  return report;
}

export async function runBenchmark(options: BenchOptions): Promise<BenchReport> {
  const started = performance.now();
  const log = options.log;
  const report: BenchReport = {
    date: new Date().toISOString(),
    machine: machine(),
    knobs: options.knobs,
    repeat: options.repeat,
    flatBoundMB: FLAT_BOUND_MB,
    targetRatio: TARGET_RATIO,
    sizes: [],
    sweep: null,
    publishOpsFlat: null,
    wallMs: 0,
    ok: true,
    problems: [],
  };
  const work = options.work ? resolve(options.work) : mkdtempSync(join(tmpdir(), 'consolidation-bench-'));
  mkdirSync(work, { recursive: true });
  log(`Benchmark: sizes ${options.sizes.map((s) => s.toLocaleString('en')).join(', ')}; ${knobLabel(options.knobs)}; scratch ${work}`);
  try {
    for (const [index, size] of options.sizes.entries()) {
      const sizeStarted = performance.now();
      log(`size ${size.toLocaleString('en')}:`);
      const last = index === options.sizes.length - 1;
      const result = await measureSize(size, options, work, last && options.sweep);
      report.sizes.push(result);
      report.problems.push(...check(result));
      log(`  => chain ${seconds(result.chain.stagesMs.total)} / bare ${seconds(result.bare.ms.total)} = ${result.ratio.toFixed(2)}; ${result.messages.total} messages, ${result.invocations} invocations (size done in ${seconds(performance.now() - sizeStarted)})`);
      if (last && options.sweep) {
        report.sweep = { size, results: await sweep(result, options, work) };
        for (const r of report.sweep.results) if (!r.matched) report.problems.push(`${size}: the chain with ${knobLabel(r.knobs)} did not give the bare engine's table`);
      }
    }
  } finally {
    if (!options.keep && !options.work) rmSync(work, { recursive: true, force: true });
  }
  if (report.sizes.length > 1) {
    const [first, last] = [report.sizes[0], report.sizes[report.sizes.length - 1]];
    const flat = last.probe.liveGrowthMB <= first.probe.liveGrowthMB + FLAT_BOUND_MB;
    report.publishOpsFlat = { smallest: first.size, largest: last.size, growthSmallestMB: first.probe.liveGrowthMB, growthLargestMB: last.probe.liveGrowthMB, flat };
    if (!flat) report.problems.push(`publishOps' live heap grew ${last.probe.liveGrowthMB.toFixed(2)} MB at ${last.size}, more than ${FLAT_BOUND_MB} MB over its ${first.probe.liveGrowthMB.toFixed(2)} MB at ${first.size}`);
  }
  report.wallMs = performance.now() - started;
  report.ok = report.problems.length === 0;

  mkdirSync(options.out, { recursive: true });
  writeFileSync(join(options.out, 'results.json'), `${JSON.stringify(report, null, 2)}\n`);
  writeMarkdown(options.out);
  writeFileSync(join(options.out, 'scaling.svg'), renderSvg(report));
  log(`Wrote ${join(options.out, 'results.json')}, results.md and scaling.svg; benchmark took ${seconds(report.wallMs)}`);
  for (const problem of report.problems) log(`PROBLEM: ${problem}`);
  return report;
}

const USAGE = `usage: npm run bench -- [--sizes 10000,100000,1000000] [--out DIR] [--work DIR] [--repeat N] [--no-sweep] [--keep]
                          [--chunk-size N] [--publish-concurrency N] [--bus-concurrency N]
       npm run bench -- --history [1000000,10000000] [--changed 100000] [--per-day 25000] [--repeat N] [--out DIR] [--work DIR] [--keep]

  --sizes      changed operations per cycle, one measurement each (default 10000,100000,1000000)
  --out        where results.json, results.md and scaling.svg go (default: bench/)
  --work       scratch folder for warehouses and state (default: a temporary folder, removed)
  --repeat     chain and bare runs per size, the fastest reported (default 3)
  --no-sweep   skip the settings sweep at the largest size
  --keep       keep the scratch files
  --chunk-size, --publish-concurrency, --bus-concurrency
               CHUNK_SIZE, PUBLISH_CONCURRENCY, LOCAL_BUS_CONCURRENCY (default: the chain's defaults)

  --history    history mode instead of the size sweep: the same changes over histories of these
               sizes (default 1000000,10000000); one run each unless --repeat; writes history.json,
               history.svg and the history section of results.md
  --changed    history mode: changed operations in the cycle (default 100000)
  --per-day    history mode: operations created a day, so a history of N spans N / per-day days (default 25000)`;

export function parseArgs(argv: string[]): Omit<BenchOptions, 'log'> {
  const options: Omit<BenchOptions, 'log'> = { sizes: DEFAULT_SIZES, knobs: defaultKnobs(), out: __dirname, repeat: 3, sweep: true, keep: false };
  let repeatGiven = false;
  const positive = (flag: string, value: string | undefined): number => {
    const n = Number(value?.replace(/_/g, ''));
    if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} takes a positive integer, got ${value ?? 'nothing'}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    switch (flag) {
      case '--sizes':
        options.sizes = (value ?? '').split(',').map((s) => positive('--sizes', s.trim()));
        if (options.sizes.some((s) => s < 20)) throw new Error('--sizes: each size must be at least 20');
        i++;
        break;
      case '--out':
        if (!value) throw new Error('--out takes a folder');
        options.out = resolve(value);
        i++;
        break;
      case '--work':
        if (!value) throw new Error('--work takes a folder');
        options.work = resolve(value);
        i++;
        break;
      case '--repeat':
        options.repeat = positive(flag, value);
        repeatGiven = true;
        i++;
        break;
      case '--chunk-size':
        options.knobs.chunkSize = positive(flag, value);
        i++;
        break;
      case '--publish-concurrency':
        options.knobs.publishConcurrency = positive(flag, value);
        i++;
        break;
      case '--bus-concurrency':
        options.knobs.busConcurrency = positive(flag, value);
        i++;
        break;
      case '--history': {
        const sizes = value && !value.startsWith('--') ? (i++, value.split(',').map((s) => positive(flag, s.trim()))) : DEFAULT_HISTORY_SIZES;
        options.history = { changed: options.history?.changed ?? DEFAULT_HISTORY_CHANGED, perDay: options.history?.perDay ?? DEFAULT_HISTORY_PER_DAY, sizes };
        if (!repeatGiven) options.repeat = 1;
        break;
      }
      case '--changed':
      case '--per-day': {
        const n = positive(flag, value);
        options.history ??= { sizes: DEFAULT_HISTORY_SIZES, changed: DEFAULT_HISTORY_CHANGED, perDay: DEFAULT_HISTORY_PER_DAY };
        if (flag === '--changed') options.history.changed = n;
        else options.history.perDay = n;
        if (!repeatGiven) options.repeat = 1;
        i++;
        break;
      }
      case '--keep':
        options.keep = true;
        break;
      case '--no-sweep':
        options.sweep = false;
        break;
      case '--help':
      case '-h':
        throw new Error(USAGE);
      default:
        throw new Error(`unknown option ${flag}\n${USAGE}`);
    }
  }
  return options;
}

if (require.main === module) {
  if (process.argv.includes('--help') || process.argv.includes('-h')) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  let options: Omit<BenchOptions, 'log'>;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(2);
  }
  const log = (line: string) => void process.stdout.write(`${line}\n`);
  const history = options.history;
  (history ? runHistoryBenchmark({ ...options, history, log }) : runBenchmark({ ...options, log }))
    .then((report) => process.exit(report.ok ? 0 : 1))
    .catch((error: unknown) => {
      process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exit(1);
    });
}
