/**
 * `npm run bench -- --history`: does a cycle cost its changes or the tables' history? The same
 * number of changed operations (default 100,000: recent ones updated, new ones, re-reads of the
 * lookback margin) over histories of different sizes, accumulated the way production accumulates
 * them (HISTORY_PER_DAY operations a day, every table appended in time order), so ten times the
 * history is ten times as many days. One cycle of the chain and one of the bare engine each,
 * compared row for row; the result is the ratio of the cycle at the largest history to the cycle
 * at the smallest (the target: at most 1.3).
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { historySpanMs, mixFor } from './generate';
import type { Knobs, PrepareRequest, PrepareResult } from './worker';
import { CHART, escape, n, s, tablesEqualCell, timingCells } from './report';
import type { BenchOptions, SizeResult } from './run';

export const DEFAULT_HISTORY_SIZES = [1_000_000, 10_000_000];
export const DEFAULT_HISTORY_CHANGED = 100_000;
/** Operations created a day: a million of history is 40 days, ten million 400 (more than OPERATION_MAX_AGE's 30 days either way). */
export const DEFAULT_HISTORY_PER_DAY = 25_000;
export const HISTORY_TARGET = 1.3;

/**
 * The cycle before issue 10 (unbounded reads), as issue 10 measured it on this kind of machine
 * with 100,000 changed operations: the fastest of its runs, in seconds.
 */
export const BEFORE: { history: number; chainS: number }[] = [
  { history: 1_000_000, chainS: 5.9 },
  { history: 10_000_000, chainS: 63.4 },
];

export interface HistoryOptions {
  sizes: number[];
  changed: number;
  perDay: number;
}

export interface HistoryResult {
  history: number;
  days: number;
  changed: number;
  mix: PrepareResult['mix'];
  sourceRows: { ussd: number; transactions: number; consolidatedBefore: number };
  prepareMs: number;
  chain: SizeResult['chain'];
  bare: SizeResult['bare'];
  ratio: number;
  matched: boolean;
  runs: SizeResult['runs'];
}

export interface HistoryReport {
  date: string;
  machine: { cpu: string; cores: number; memoryGiB: number; node: string; duckdb: string; os: string; loadAverageAtStart: number[]; loadAverageAtEnd: number[] };
  knobs: Knobs;
  repeat: number;
  operationMaxAge: string;
  options: HistoryOptions;
  results: HistoryResult[];
  /** Cycle at the largest history / cycle at the smallest, for the chain and the bare engine. */
  growth: { chain: number; bare: number } | null;
  target: number;
  wallMs: number;
  ok: boolean;
  problems: string[];
}

export type ChainAndBare = (size: number, dir: string, master: string, options: BenchOptions) => Promise<{ best: { chain: SizeResult['chain']; bare: SizeResult['bare'] }; runs: SizeResult['runs']; matched: boolean }>;
type InChild = <T>(role: string, request: unknown, dir: string, output: BenchOptions['childOutput']) => Promise<T>;

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

/** One history size: prepare its warehouse, then the chain's cycle and the bare engine on copies of it. */
export async function measureHistory(history: number, options: BenchOptions & { history: HistoryOptions }, work: string, steps: { inChild: InChild; chainAndBare: ChainAndBare }): Promise<HistoryResult> {
  const { log } = options;
  const { changed, perDay } = options.history;
  const mix = mixFor(changed, { operations: history, perDay });
  const days = historySpanMs(mix) / 86_400_000;
  const dir = join(work, `h${history}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const master = join(dir, 'prepared.duckdb');
  log(`  prepare: ${history.toLocaleString('en')} operations over ${days.toFixed(0)} days (${perDay.toLocaleString('en')} a day), then ${changed.toLocaleString('en')} changed in one window`);
  const prepared = await steps.inChild<PrepareResult>('prepare', { size: changed, file: master, history: { operations: history, perDay } } satisfies PrepareRequest, dir, options.childOutput);
  log(`  prepared in ${seconds(prepared.ms)}: ${prepared.ussdRows.toLocaleString('en')} USSD rows, ${prepared.transactionRows.toLocaleString('en')} transaction rows, ${prepared.consolidatedRows.toLocaleString('en')} consolidated`);
  try {
    const { best, runs, matched } = await steps.chainAndBare(changed, dir, master, options);
    return {
      history,
      days,
      changed,
      mix: prepared.mix,
      sourceRows: { ussd: prepared.ussdRows, transactions: prepared.transactionRows, consolidatedBefore: prepared.consolidatedRows },
      prepareMs: prepared.ms,
      chain: best.chain,
      bare: best.bare,
      ratio: best.chain.stagesMs.total / best.bare.ms.total,
      matched,
      runs,
    };
  } finally {
    if (!options.keep) rmSync(dir, { recursive: true, force: true });
  }
}

/** What every history size must satisfy, and the growth of the cycle with the history. */
export function historyProblems(report: HistoryReport): string[] {
  const problems: string[] = [];
  for (const r of report.results) {
    if (!r.matched) problems.push(`history ${r.history}: the chain's consolidated_table differs from the bare engine's`);
    if (r.chain.idCount !== r.changed) problems.push(`history ${r.history}: the cycle read ${r.chain.idCount} IDs, not ${r.changed}`);
    const m = r.chain.merge;
    if (m.inserted !== r.mix.inserted || m.updated !== r.mix.updated || m.unchanged !== r.mix.lookback) {
      problems.push(`history ${r.history}: merged ${m.inserted} inserted / ${m.updated} updated / ${m.unchanged} unchanged, generated ${r.mix.inserted} / ${r.mix.updated} / ${r.mix.lookback}`);
    }
  }
  if (report.growth && report.growth.chain > report.target) {
    const [first, last] = [report.results[0], report.results[report.results.length - 1]];
    problems.push(`the cycle at ${last.history} operations of history took ${report.growth.chain.toFixed(2)} times the cycle at ${first.history} (target: at most ${report.target})`);
  }
  return problems;
}


export function renderHistoryMarkdown(report: HistoryReport): string {
  const m = report.machine;
  const lines = [
    '## History: the same changes over a longer history (`npm run bench -- --history`)',
    '',
    `Measured ${report.date.slice(0, 16).replace('T', ' ')} UTC in ${s(report.wallMs)} s on ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB RAM, Node ${m.node}, DuckDB ${m.duckdb}; ` +
      `load average ${m.loadAverageAtStart.join(' / ')} at the start and ${m.loadAverageAtEnd.join(' / ')} at the end (other work shared the machine).`,
    '',
    `${n(report.options.changed)} changed operations in one window (45 % of them updated among the most recent operations, 50 % new, 5 % re-read in the lookback margin) ` +
      `over a history of N operations created at ${n(report.options.perDay)} a day (N / ${n(report.options.perDay)} days), every table appended in time order, ` +
      `as production accumulates them; \`OPERATION_MAX_AGE\` ${report.operationMaxAge}, \`CHUNK_SIZE\` ${n(report.knobs.chunkSize)}; ` +
      `${report.repeat > 1 ? `fastest of ${report.repeat} runs` : 'one run'} of the chain and of the bare engine per history, their tables compared row for row. Times in seconds.`,
    '',
    '| operations in the history | days | USSD rows | chain total | extract and publish | collect | stage IDs + launch | pipeline | MERGE | bare total | bare: stage IDs | bare: enrich | bare: MERGE | chain / bare | tables equal |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: |',
  ];
  for (const r of report.results) lines.push(`| ${n(r.history)} | ${r.days.toFixed(0)} | ${n(r.sourceRows.ussd)} | ${timingCells(r)} | ${r.ratio.toFixed(2)} | ${tablesEqualCell(r)} |`);
  if (report.growth) {
    const [first, last] = [report.results[0], report.results[report.results.length - 1]];
    lines.push(
      '',
      `The cycle at ${n(last.history)} operations of history against the cycle at ${n(first.history)}: **${report.growth.chain.toFixed(2)}** for the chain, ${report.growth.bare.toFixed(2)} for the bare engine ` +
        `(target: at most ${report.target}; ${report.growth.chain <= report.target ? 'met' : '**not met**'}).`,
    );
  }
  if (report.repeat > 1) lines.push('', `Every run (seconds), chain / bare: ${report.results.map((r) => `${n(r.history)}: ${r.runs.chainMs.map(s).join(', ')} / ${r.runs.bareMs.map(s).join(', ')}`).join('; ')}.`);
  const before = BEFORE.map((b) => `${n(b.history)}: ${b.chainS.toFixed(1)} s`).join(', ');
  lines.push('', `Before issue 10 (unbounded reads; issue 10's own measurement, 100,000 changed operations, fastest run): ${before}, a ratio of ${(BEFORE[1].chainS / BEFORE[0].chainS).toFixed(1)}.`);
  if (report.problems.length > 0) lines.push('', '### Problems', '', ...report.problems.map((p) => `- ${p}`));
  lines.push('');
  return lines.join('\n');
}

/** Cycle time against history size: before (issue 10's measurement) and after, chain and bare engine. */
export function renderHistorySvg(report: HistoryReport): string {
  const { width, height, margin } = CHART;
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom - 24;
  const sizes = [...new Set([...report.results.map((r) => r.history), ...BEFORE.map((b) => b.history)])];
  const lo = Math.log10(Math.min(...sizes)) - 0.2;
  const hi = Math.log10(Math.max(...sizes)) + 0.2;
  const series = [
    { name: 'before: the chain, unbounded reads (issue 10)', color: '#868e96', dash: '6 4', points: BEFORE.map((b) => [b.history, b.chainS] as const) },
    { name: 'after: the chain (scheduler → MERGED)', color: '#d9480f', dash: '', points: report.results.map((r) => [r.history, r.chain.stagesMs.total / 1000] as const) },
    { name: 'after: the bare engine (DuckDB alone)', color: '#1c7ed6', dash: '', points: report.results.map((r) => [r.history, r.bare.ms.total / 1000] as const) },
  ];
  const maxSeconds = Math.max(...series.flatMap((l) => l.points.map(([, v]) => v)));
  const step = maxSeconds > 50 ? 10 : maxSeconds > 20 ? 5 : maxSeconds > 8 ? 2 : 1;
  const top = Math.ceil((maxSeconds * 1.08) / step) * step;
  const x = (size: number) => margin.left + ((Math.log10(size) - lo) / (hi - lo)) * plotW;
  const y = (sec: number) => margin.top + 24 + plotH - (sec / top) * plotH;
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${margin.left}" y="24" font-size="15" font-weight="bold">${escape(`One cycle of ${n(report.options.changed)} changes against the history's size`)}</text>`,
    `<text x="${margin.left}" y="40" fill="#555">${escape(`${report.date.slice(0, 10)} · ${report.machine.cpu}, ${report.machine.cores} cores · ${n(report.options.perDay)} operations a day · OPERATION_MAX_AGE ${report.operationMaxAge}`)}</text>`,
  ];
  for (let v = 0; v <= top + 1e-9; v += step) {
    out.push(`<line x1="${margin.left}" y1="${y(v).toFixed(1)}" x2="${margin.left + plotW}" y2="${y(v).toFixed(1)}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${margin.left - 8}" y="${y(v).toFixed(1)}" text-anchor="end" dominant-baseline="middle" fill="#333">${v}</text>`);
  }
  const axisY = margin.top + 24 + plotH;
  for (const size of sizes) {
    out.push(`<line x1="${x(size).toFixed(1)}" y1="${axisY}" x2="${x(size).toFixed(1)}" y2="${axisY + 5}" stroke="#333"/>`);
    out.push(`<text x="${x(size).toFixed(1)}" y="${axisY + 19}" text-anchor="middle" fill="#333">${n(size)}</text>`);
  }
  out.push(
    `<line x1="${margin.left}" y1="${axisY}" x2="${margin.left + plotW}" y2="${axisY}" stroke="#333"/>`,
    `<line x1="${margin.left}" y1="${margin.top + 24}" x2="${margin.left}" y2="${axisY}" stroke="#333"/>`,
    `<text x="${margin.left + plotW / 2}" y="${height - 14}" text-anchor="middle" fill="#333">operations already in the tables (log scale)</text>`,
    `<text transform="translate(18 ${margin.top + 24 + plotH / 2}) rotate(-90)" text-anchor="middle" fill="#333">wall time of one cycle (s)</text>`,
  );
  series.forEach((line, index) => {
    const pts = line.points.map(([h, v]) => [x(h), y(v), v] as const);
    out.push(`<polyline fill="none" stroke="${line.color}" stroke-width="2.5"${line.dash ? ` stroke-dasharray="${line.dash}"` : ''} points="${pts.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(' ')}"/>`);
    for (const [px, py, v] of pts) {
      out.push(`<circle cx="${px.toFixed(1)}" cy="${py.toFixed(1)}" r="4" fill="${line.color}"/>`);
      out.push(`<text x="${(px + 8).toFixed(1)}" y="${(py + (index === 2 ? 14 : -8)).toFixed(1)}" fill="${line.color}" font-size="11">${v.toFixed(1)} s</text>`);
    }
    const ly = margin.top + 10 + index * 18;
    out.push(`<line x1="${margin.left + 14}" y1="${ly}" x2="${margin.left + 36}" y2="${ly}" stroke="${line.color}" stroke-width="2.5"${line.dash ? ` stroke-dasharray="${line.dash}"` : ''}/>`);
    out.push(`<text x="${margin.left + 42}" y="${ly}" dominant-baseline="middle" fill="#222">${escape(line.name)}</text>`);
  });
  out.push('</svg>', '');
  return out.join('\n');
}
