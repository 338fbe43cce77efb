import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultKnobs, parseArgs, runBenchmark, type BenchReport } from '../../bench/run';

/**
 * A small run of `npm run bench` (10,000 changed operations, one run, no settings sweep), so that
 * the benchmark cannot rot: every step in its own process, results written to a temporary folder.
 */
describe('the benchmark (smoke run at 10,000)', function () {
  this.timeout(120_000);
  const SIZE = 10_000;
  const committed = join(__dirname, '..', '..', 'bench', 'results.json');
  const committedBefore = existsSync(committed) ? { text: readFileSync(committed, 'utf8'), mtime: statSync(committed).mtimeMs } : undefined;
  let out: string;
  let report: BenchReport;
  const lines: string[] = [];

  before(async () => {
    out = mkdtempSync(join(tmpdir(), 'bench-smoke-'));
    report = await runBenchmark({ ...parseArgs(['--sizes', String(SIZE), '--repeat', '1', '--no-sweep', '--out', out]), log: (line) => lines.push(line), childOutput: 'capture' });
  });
  after(() => rmSync(out, { recursive: true, force: true }));

  it('finds the chain and the bare engine gave the same consolidated_table, row for row', () => {
    const [result] = report.sizes;
    assert.deepEqual(report.problems, []);
    assert.equal(report.ok, true);
    assert.equal(result.matched, true);
    assert.equal(result.bare.comparison.onlyInChain, 0);
    assert.equal(result.bare.comparison.onlyInBare, 0);
    // N changed operations over max(N, 1000) already consolidated: half of them new
    assert.equal(result.bare.comparison.chainRows, SIZE + SIZE / 2);
    assert.ok(lines.some((line) => /results matched row for row/.test(line)));
  });

  it('merged exactly the generated changes: inserts, updates, and unchanged re-reads', () => {
    const [{ chain, mix }] = report.sizes;
    assert.equal(chain.idCount, SIZE);
    assert.deepEqual(
      { inserted: chain.merge.inserted, updated: chain.merge.updated, unchanged: chain.merge.unchanged },
      { inserted: mix.inserted, updated: mix.updated, unchanged: mix.lookback },
    );
    assert.ok(mix.inserted > 0 && mix.updated > 0 && mix.lookback > 0);
  });

  it('counts one message per chunk plus the seal, the announcement and the job events, and one invocation per delivery', () => {
    const [{ chain, messages, invocations }] = report.sizes;
    const chunks = Math.ceil(SIZE / defaultKnobs().chunkSize);
    assert.equal(chain.chunkCount, chunks);
    const ids = Object.entries(chain.messages).filter(([topic]) => topic.startsWith('ussd-operations-topic'));
    assert.deepEqual(Object.fromEntries(ids), { 'ussd-operations-topic (chunk)': chunks, 'ussd-operations-topic (seal)': 1 });
    assert.equal(chain.messages['consolidation-batches'], 1);
    assert.equal(chain.messages['dataflow-job-status'], 3);
    assert.equal(messages.total, chunks + 1 + 1 + 3);
    assert.equal(chain.invocations.publishOps, 1);
    assert.equal(chain.invocations['collect-ids'], chunks + 1);
    assert.equal(invocations, messages.total + 1);
    assert.equal(chain.deadLetters, 0);
  });

  it('times every stage and both engines, and measures memory', () => {
    const [{ chain, bare, ratio, probe }] = report.sizes;
    for (const [stage, ms] of Object.entries(chain.stagesMs)) assert.ok(ms >= 0 && ms < 60_000, `${stage}: ${ms}`);
    assert.ok(chain.stagesMs.total >= chain.stagesMs.publish + chain.stagesMs.pipeline);
    assert.ok(bare.ms.total > 0 && bare.ms.total >= bare.ms.enrich);
    assert.ok(Math.abs(ratio - chain.stagesMs.total / bare.ms.total) < 1e-9);
    assert.ok(chain.peakRssMB > 50 && bare.peakRssMB > 50);
    assert.equal(probe.idCount, SIZE);
    assert.ok(probe.samples >= 1);
    assert.ok(probe.liveGrowthMB >= 0 && probe.liveGrowthMB < 50, `publishOps live heap growth ${probe.liveGrowthMB} MB`);
  });

  it('writes JSON, Markdown and SVG into the folder it was given, not over the committed results', () => {
    const json = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as BenchReport;
    assert.equal(json.sizes[0].size, SIZE);
    assert.ok(json.machine.cores > 0 && json.machine.node.startsWith('v'));
    const md = readFileSync(join(out, 'results.md'), 'utf8');
    assert.match(md, /^# Benchmark/);
    assert.match(md, /\| 10,000 \| \*\*\d+\.\d\d\*\* \|/);
    assert.match(md, new RegExp(json.machine.cpu.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    const svg = readFileSync(join(out, 'scaling.svg'), 'utf8');
    assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.equal(svg.match(/<polyline /g)?.length, 2);
    assert.match(svg, /bare engine/);
    if (committedBefore) {
      assert.equal(readFileSync(committed, 'utf8'), committedBefore.text);
      assert.equal(statSync(committed).mtimeMs, committedBefore.mtime);
    }
  });

  it('refuses bad options', () => {
    assert.throws(() => parseArgs(['--sizes', '10,abc']), /--sizes takes a positive integer/);
    assert.throws(() => parseArgs(['--sizes', '5']), /at least 20/);
    assert.throws(() => parseArgs(['--frobnicate']), /unknown option --frobnicate/);
    assert.deepEqual(parseArgs(['--chunk-size', '10_000']).knobs.chunkSize, 10_000);
  });
});
