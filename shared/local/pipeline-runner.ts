import { randomInt } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { DuckDBConnection } from '@duckdb/node-api';
import { parse as parseYaml } from 'yaml';
import { errorMessage } from '../errors';
import { checkPipelineVariables } from '../pipeline/variables';
import { duckdbDialect, type SqlDialect } from '../sql/dialect';
import type { Clock, JobLauncher, JobState, LaunchRequest, LaunchedJob, Logger, TableRef } from '../ports';
import type { DuckDbWarehouse } from './duckdb-warehouse';

/** A job as Dataflow's statusChanged events carry it (`data.payload`). */
export interface DataflowJob {
  id: string;
  projectId: string;
  name: string;
  type: 'JOB_TYPE_BATCH';
  currentState: JobState;
  currentStateTime: string;
  createTime: string;
  location: string;
  labels: Record<string, string>;
}

/** A terminal state forced on a job (fault injection). */
export type ForcedOutcome = 'DONE' | 'FAILED' | 'CANCELLED';

export interface LocalPipelineRunnerOptions {
  warehouse: DuckDbWarehouse;
  /** The Beam YAML pipeline file (read at every launch). */
  pipelineFile: string;
  project: string;
  region: string;
  /** Called with a snapshot of the job on every state change, in order; failures are logged. */
  emit: (job: DataflowJob) => Promise<void>;
  clock: Clock;
  logger: Logger;
  /**
   * Fault injection: 'FAILED' or 'CANCELLED' ends the job in that state without running the
   * pipeline (it writes nothing, like a failed Dataflow job); 'DONE' or undefined runs it.
   */
  outcome?: (request: LaunchRequest) => ForcedOutcome | undefined;
}

const TERMINAL: ReadonlySet<JobState> = new Set(['JOB_STATE_DONE', 'JOB_STATE_FAILED', 'JOB_STATE_CANCELLED', 'JOB_STATE_UPDATED', 'JOB_STATE_DRAINED']);
const KEPT_FINISHED_JOBS = 1_000;

/**
 * Dataflow and the Yaml_Template on one machine: runs the repository's Beam YAML pipeline on
 * DuckDB, moves each job through QUEUED, RUNNING and a terminal state, and emits every state
 * like Dataflow's statusChanged events. Launching the name of an active job adopts it (the 409
 * path); a finished job's name can be launched again.
 */
export class LocalPipelineRunner implements JobLauncher {
  private readonly known: DataflowJob[] = [];
  private readonly running = new Set<Promise<void>>();
  private counter = 0;

  constructor(private readonly options: LocalPipelineRunnerOptions) {}

  async launch(request: LaunchRequest): Promise<LaunchedJob> {
    checkPipelineVariables(request.variables);
    const active = this.known.find((job) => job.name === request.jobName && !TERMINAL.has(job.currentState));
    if (active) {
      this.options.logger.info('A job of that name is active; adopting it (409)', { jobName: active.name, jobId: active.id, batchId: request.batchId });
      return { jobId: active.id, jobName: active.name, adopted: true };
    }
    const now = this.options.clock.now();
    const job: DataflowJob = {
      id: `${now.toISOString().slice(0, 19).replace('T', '_').replace(/:/g, '_')}-${++this.counter}${String(randomInt(1_000_000)).padStart(6, '0')}`,
      projectId: this.options.project,
      name: request.jobName,
      type: 'JOB_TYPE_BATCH',
      currentState: 'JOB_STATE_QUEUED',
      currentStateTime: now.toISOString(),
      createTime: now.toISOString(),
      location: this.options.region,
      labels: { ...request.labels },
    };
    this.known.push(job);
    this.forgetOldJobs();
    const run = this.run(job, request).finally(() => this.running.delete(run));
    this.running.add(run);
    this.options.logger.info('Local Dataflow job launched', { jobName: job.name, jobId: job.id, batchId: request.batchId });
    return { jobId: job.id, jobName: job.name, adopted: false };
  }

  /** Resolves when no job is running. */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
  }

  /** The job's current state, or undefined for a job this runner never launched (or has forgotten). */
  async jobState(jobId: string): Promise<JobState | undefined> {
    return this.known.find((job) => job.id === jobId)?.currentState;
  }

  /** Every known job (the latest 1,000 finished ones and all active ones), oldest first. */
  jobs(): DataflowJob[] {
    return this.known.map((job) => ({ ...job, labels: { ...job.labels } }));
  }

  private async run(job: DataflowJob, request: LaunchRequest): Promise<void> {
    const logger = this.options.logger.child({ jobName: job.name, jobId: job.id, batchId: request.batchId });
    const started = performance.now();
    await this.emit(job, logger);
    await this.moveTo(job, 'JOB_STATE_RUNNING', logger);
    let final: JobState = 'JOB_STATE_DONE';
    try {
      const forced = this.options.outcome?.(request);
      if (forced === 'FAILED' || forced === 'CANCELLED') {
        final = `JOB_STATE_${forced}`;
        logger.warn(`Job forced to ${final} (fault injection); the pipeline did not run`);
      } else {
        const rows = await this.execute(request, logger);
        logger.info('Local Dataflow job done', { rows, ms: Math.round(performance.now() - started) });
      }
    } catch (error) {
      final = 'JOB_STATE_FAILED';
      logger.error(`Local Dataflow job ${job.name} failed: ${errorMessage(error)}`, { error });
    }
    await this.moveTo(job, final, logger);
  }

  private async execute(request: LaunchRequest, logger: Logger): Promise<number> {
    const file = this.options.pipelineFile;
    const plan = pipelinePlanOf(await readFile(file, 'utf8'), request.variables, file);
    if (plan.write.write === 'WRITE_TRUNCATE') {
      logger.warn(`Transform "${plan.write.name}" (WriteToBigQuery) asks for WRITE_TRUNCATE, which the Storage Write API sink ignores: it appends, as here`);
    }
    return runPlan(this.options.warehouse, plan);
  }

  private async moveTo(job: DataflowJob, state: JobState, logger: Logger): Promise<void> {
    job.currentState = state;
    job.currentStateTime = this.options.clock.now().toISOString();
    await this.emit(job, logger);
  }

  private async emit(job: DataflowJob, logger: Logger): Promise<void> {
    try {
      await this.options.emit({ ...job, labels: { ...job.labels } });
    } catch (error) {
      logger.error(`Could not emit the job's state ${job.currentState}: ${errorMessage(error)}`, { jobState: job.currentState, error });
    }
  }

  private forgetOldJobs(): void {
    let finished = this.known.filter((job) => TERMINAL.has(job.currentState)).length;
    for (let i = 0; i < this.known.length && finished > KEPT_FINISHED_JOBS; ) {
      if (TERMINAL.has(this.known[i].currentState)) {
        this.known.splice(i, 1);
        finished--;
      } else i++;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The pipeline file: jinja variables, then the subset of Beam YAML the pipeline uses.

/** Renders `{{ name }}` from `variables`; any other jinja construct or an unknown variable is an error. */
export function renderJinja(text: string, variables: Record<string, string>, file = 'the pipeline'): string {
  const lineOf = (index: number) => text.slice(0, index).split('\n').length;
  const other = /\{%[\s\S]*?(%\}|$)|\{#[\s\S]*?(#\}|$)/.exec(text);
  if (other) {
    throw new Error(`The local runner supports only {{ variable }} substitution; found ${other[0].slice(0, 60)} in ${file} (line ${lineOf(other.index)})`);
  }
  return text.replace(/\{\{([\s\S]*?)\}\}/g, (match, inner: string, index: number) => {
    const name = inner.trim();
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      throw new Error(`The local runner supports only {{ variable }} substitution; found ${match.slice(0, 60)} in ${file} (line ${lineOf(index)})`);
    }
    if (!Object.hasOwn(variables, name)) {
      throw new Error(`Unknown jinja variable "${name}" in ${file} (line ${lineOf(index)}); the job's variables are: ${Object.keys(variables).sort().join(', ') || 'none'}`);
    }
    return variables[name];
  });
}

/** The pipeline file's text with its jinja variables substituted, checked and parsed into its plan. */
export function pipelinePlanOf(text: string, variables: Record<string, string>, file = 'the pipeline'): PipelinePlan {
  const rendered = renderJinja(text, variables, file);
  let document: unknown;
  try {
    document = parseYaml(rendered);
  } catch (error) {
    throw new Error(`${file} is not valid YAML once its variables are substituted: ${errorMessage(error)}`, { cause: error });
  }
  return parsePipeline(document, file);
}

type WriteDisposition = 'WRITE_TRUNCATE' | 'WRITE_APPEND' | 'WRITE_EMPTY';
type CreateDisposition = 'CREATE_IF_NEEDED' | 'CREATE_NEVER';

interface ReadStep {
  kind: 'read';
  name: string;
  query: string;
}
interface MapStep {
  kind: 'map';
  name: string;
  fields: [string, string][];
  append: boolean;
  drop: string[];
}
interface WriteStep {
  kind: 'write';
  name: string;
  table: TableRef;
  create: CreateDisposition;
  write: WriteDisposition;
}

/** A validated chain: one read, any number of maps, one write. */
export interface PipelinePlan {
  read: ReadStep;
  maps: MapStep[];
  write: WriteStep;
}

const SUPPORTED_TRANSFORMS = ['ReadFromBigQuery', 'MapToFields', 'WriteToBigQuery'];
const CONFIG_KEYS: Record<string, string[]> = {
  ReadFromBigQuery: ['query'],
  MapToFields: ['language', 'fields', 'append', 'drop'],
  WriteToBigQuery: ['table', 'create_disposition', 'write_disposition'],
};
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function onlyKeys(value: Record<string, unknown>, allowed: string[], where: string): void {
  const extra = Object.keys(value).filter((k) => !allowed.includes(k));
  if (extra.length > 0) throw new Error(`${where}: ${extra.join(', ')} not supported by the local runner (supported: ${allowed.join(', ')})`);
}

/** Checks the parsed YAML against what the local runner supports and returns its plan. */
export function parsePipeline(document: unknown, file = 'the pipeline'): PipelinePlan {
  if (!isObject(document) || !isObject(document.pipeline)) throw new Error(`${file}: expected a top-level "pipeline" mapping`);
  onlyKeys(document, ['pipeline'], `${file}: top-level key(s)`);
  const pipeline = document.pipeline;
  onlyKeys(pipeline, ['type', 'transforms'], `${file}: pipeline key(s)`);
  if (pipeline.type !== 'chain') throw new Error(`${file}: the local runner supports only "pipeline.type: chain", found ${JSON.stringify(pipeline.type)}`);
  if (!Array.isArray(pipeline.transforms) || pipeline.transforms.length === 0) throw new Error(`${file}: pipeline.transforms must be a non-empty list`);

  const steps = pipeline.transforms.map((raw: unknown, index: number) => parseTransform(raw, index, file));
  const [first, ...rest] = steps;
  const last = rest.pop();
  if (first.kind !== 'read') throw new Error(`${file}: the chain must start with ReadFromBigQuery; transform "${first.name}" is not one`);
  if (!last || last.kind !== 'write') throw new Error(`${file}: the chain must end with WriteToBigQuery`);
  const misplaced = rest.find((step) => step.kind !== 'map');
  if (misplaced) throw new Error(`${file}: transform "${misplaced.name}" must be the first (read) or the last (write) of the chain`);
  return { read: first, maps: rest as MapStep[], write: last };
}

function parseTransform(raw: unknown, index: number, file: string): ReadStep | MapStep | WriteStep {
  if (!isObject(raw)) throw new Error(`${file}: transform #${index + 1} is not a mapping`);
  const type = String(raw.type);
  const name = typeof raw.name === 'string' ? raw.name : `${type}#${index + 1}`;
  const where = `${file}: transform "${name}" (${type})`;
  if (!SUPPORTED_TRANSFORMS.includes(type)) throw new Error(`${where}: transform type ${type} is not supported by the local runner (supported: ${SUPPORTED_TRANSFORMS.join(', ')})`);
  onlyKeys(raw, ['type', 'name', 'config'], `${where}: key(s)`);
  const config = raw.config;
  if (!isObject(config)) throw new Error(`${where}: config must be a mapping`);
  onlyKeys(config, CONFIG_KEYS[type], `${where}: config key(s)`);

  if (type === 'ReadFromBigQuery') {
    if (typeof config.query !== 'string' || config.query.trim() === '') throw new Error(`${where}: config.query must be a non-empty SQL query`);
    return { kind: 'read', name, query: config.query.trim().replace(/;\s*$/, '') };
  }
  if (type === 'MapToFields') {
    if (config.language !== 'sql') throw new Error(`${where}: the local runner supports only "language: sql", found ${JSON.stringify(config.language)}`);
    if (!isObject(config.fields) || Object.keys(config.fields).length === 0) throw new Error(`${where}: config.fields must map field names to SQL expressions`);
    const fields = Object.entries(config.fields).map(([field, expression]): [string, string] => {
      if (!IDENTIFIER.test(field)) throw new Error(`${where}: field name "${field}" is not a plain identifier`);
      if (typeof expression !== 'string' || expression.trim() === '') throw new Error(`${where}: field ${field} must be a SQL expression (a string)`);
      return [field, expression.trim()];
    });
    const append = config.append ?? false;
    if (typeof append !== 'boolean') throw new Error(`${where}: config.append must be true or false`);
    const drop = config.drop ?? [];
    if (!Array.isArray(drop) || drop.some((d) => typeof d !== 'string' || !IDENTIFIER.test(d))) throw new Error(`${where}: config.drop must be a list of field names`);
    if (drop.length > 0 && !append) throw new Error(`${where}: config.drop applies only with append: true`);
    return { kind: 'map', name, fields, append, drop: drop as string[] };
  }
  const table = typeof config.table === 'string' ? /^([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)$/.exec(config.table) : null;
  if (!table) throw new Error(`${where}: config.table must be schema.table on DuckDB, found ${JSON.stringify(config.table)}`);
  // Beam's defaults differ between its SDKs: the local runner asks for both dispositions.
  const { create_disposition: create, write_disposition: write } = config;
  if (create !== 'CREATE_IF_NEEDED' && create !== 'CREATE_NEVER') throw new Error(`${where}: create_disposition must be CREATE_IF_NEEDED or CREATE_NEVER, found ${JSON.stringify(create)}`);
  if (write !== 'WRITE_TRUNCATE' && write !== 'WRITE_APPEND' && write !== 'WRITE_EMPTY') throw new Error(`${where}: write_disposition must be WRITE_TRUNCATE, WRITE_APPEND or WRITE_EMPTY, found ${JSON.stringify(write)}`);
  return { kind: 'write', name, table: { dataset: table[1], table: table[2] }, create, write };
}

// ---------------------------------------------------------------------------------------------
// Execution on DuckDB: each step is a CTE over the previous one; the write is one statement.

/** Runs the plan; returns the number of rows written. */
export async function runPlan(warehouse: DuckDbWarehouse, plan: PipelinePlan): Promise<number> {
  const select = await planSelect(plan, (ctes, step) => warehouse.withConnection((c) => columnsOf(c, ctes, step)));
  return write(warehouse, plan.write, select);
}

/**
 * The plan's read and transforms as one SELECT, each step a CTE over the previous one;
 * `describe` gives the columns of the steps so far (a MapToFields keeps or drops them by name,
 * and a field that clashes with one is an error).
 */
export async function planSelect(plan: PipelinePlan, describe: (ctes: string[], step: ReadStep | MapStep) => Promise<string[]>, dialect: SqlDialect = duckdbDialect): Promise<string> {
  const step = (n: number) => dialect.identifier(`step_${n}`);
  const ctes = [`${step(0)} AS (\n${plan.read.query}\n)`];
  let columns = await describe(ctes, plan.read);
  for (const map of plan.maps) {
    ctes.push(`${step(ctes.length)} AS (\n${mapSelect(map, columns, step(ctes.length - 1), dialect)}\n)`);
    columns = await describe(ctes, map);
  }
  return `WITH ${ctes.join(',\n')}\nSELECT * FROM ${step(ctes.length - 1)}`;
}

/**
 * The same SELECT without knowing the columns (no engine to ask, or parameters still unbound):
 * a MapToFields with `append` selects `*` minus what it drops. Used by the audit in both dialects.
 */
export function planSelectUnresolved(plan: PipelinePlan, dialect: SqlDialect): string {
  const step = (n: number) => dialect.identifier(`step_${n}`);
  const ctes = [`${step(0)} AS (\n${plan.read.query}\n)`];
  for (const map of plan.maps) ctes.push(`${step(ctes.length)} AS (\n${mapSelect(map, undefined, step(ctes.length - 1), dialect)}\n)`);
  return `WITH ${ctes.join(',\n')}\nSELECT * FROM ${step(ctes.length - 1)}`;
}

/**
 * BigQuery functions the pipeline's SQL uses, under their BigQuery names, for the connection that
 * runs it (temporary macros: nothing is written to the warehouse).
 */
const BIGQUERY_FUNCTIONS = ['CREATE OR REPLACE TEMP MACRO unix_micros(ts) AS epoch_us(ts)'];

export async function defineBigQueryFunctions(connection: DuckDBConnection): Promise<void> {
  for (const sql of BIGQUERY_FUNCTIONS) await connection.run(sql);
}

/** The output columns of the steps so far; a failure is reported as the transform's. */
export async function columnsOf(connection: DuckDBConnection, ctes: string[], step: ReadStep | MapStep): Promise<string[]> {
  try {
    await defineBigQueryFunctions(connection);
    const reader = await connection.runAndReadAll(`DESCRIBE WITH ${ctes.join(',\n')}\nSELECT * FROM "step_${ctes.length - 1}"`);
    const names = reader.getRows().map((row) => String(row[0]));
    const duplicate = names.find((name, i) => names.indexOf(name) !== i);
    if (duplicate) throw new Error(`its output has two fields named ${duplicate}`);
    return names;
  } catch (error) {
    throw new Error(`Transform "${step.name}" (${step.kind === 'read' ? 'ReadFromBigQuery' : 'MapToFields'}) failed: ${errorMessage(error)}`, { cause: error });
  }
}

function mapSelect(map: MapStep, input: string[] | undefined, from: string, dialect: SqlDialect): string {
  const where = `Transform "${map.name}" (MapToFields)`;
  const computed = map.fields.map(([field, expression]) => `(${expression}) AS ${dialect.identifier(field)}`);
  if (input === undefined) {
    const list = map.append ? [dialect.starExcept(map.drop), ...computed] : computed;
    return `SELECT\n  ${list.join(',\n  ')}\nFROM ${from}`;
  }
  const missing = map.drop.filter((d) => !input.includes(d));
  if (missing.length > 0) throw new Error(`${where}: cannot drop ${missing.join(', ')}: not in its input (${input.join(', ')})`);
  const kept = map.append ? input.filter((c) => !map.drop.includes(c)) : [];
  const clash = map.fields.find(([field]) => kept.includes(field));
  if (clash) throw new Error(`${where}: field ${clash[0]} already exists in its input; drop it or use append: false`);
  const list = [...kept.map((c) => dialect.identifier(c)), ...computed];
  return `SELECT\n  ${list.join(',\n  ')}\nFROM ${from}`;
}

async function count(connection: DuckDBConnection, table: string): Promise<number> {
  const reader = await connection.runAndReadAll(`SELECT count(*) FROM ${table}`);
  return Number(reader.getRows()[0][0]);
}

const TIMESTAMP_TYPES: Record<string, string> = {
  'TIMESTAMP WITH TIME ZONE': 'make_timestamptz',
  TIMESTAMP: 'make_timestamp',
  TIMESTAMP_NS: 'make_timestamp',
  TIMESTAMP_MS: 'make_timestamp',
  TIMESTAMP_S: 'make_timestamp',
};

/**
 * The rows as Beam hands them to the sink: a TIMESTAMP is a Joda instant of whole milliseconds
 * (microseconds / 1000 in Java's long division, which rounds toward zero), so the sink writes it
 * without its microseconds. Every other type passes as it is.
 */
export async function asBeamRows(connection: DuckDBConnection, select: string): Promise<string> {
  const columns = (await connection.runAndReadAll(`DESCRIBE ${select}`)).getRows().map((row) => ({ name: String(row[0]), type: String(row[1]) }));
  const list = columns.map(({ name, type }) => {
    const make = TIMESTAMP_TYPES[type];
    const column = `"${name.replace(/"/g, '""')}"`;
    return make ? `${make}((epoch_us(${column}) // 1000) * 1000) AS ${column}` : column;
  });
  return `SELECT ${list.join(', ')}\nFROM (\n${select}\n) AS "beam_rows"`;
}

/**
 * WriteToBigQuery as Beam YAML runs it on Dataflow, the Storage Write API sink: it appends
 * (WRITE_TRUNCATE is ignored), creates a missing table from the first row only (no row, no
 * table), refuses a non-empty table with WRITE_EMPTY; one transaction.
 */
async function write(warehouse: DuckDbWarehouse, step: WriteStep, select: string): Promise<number> {
  const where = `Transform "${step.name}" (WriteToBigQuery) to ${warehouse.plainName(step.table)}`;
  const table = warehouse.qualify(step.table);
  try {
    if (step.create === 'CREATE_IF_NEEDED') await warehouse.ensureSchema(step.table.dataset);
    return await warehouse.transaction(async (c) => {
      await defineBigQueryFunctions(c);
      const rows = await asBeamRows(c, select);
      const found = await c.runAndReadAll('SELECT count(*) FROM duckdb_tables() WHERE schema_name = $schema AND table_name = $table', { schema: step.table.dataset, table: step.table.table });
      if (Number(found.getRows()[0][0]) === 0) {
        if (step.create === 'CREATE_NEVER') throw new Error('the table does not exist and create_disposition is CREATE_NEVER');
        await c.run(`CREATE TABLE ${table} AS\n${rows}`);
        const written = await count(c, table);
        if (written === 0) await c.run(`DROP TABLE ${table}`);
        return written;
      }
      if (step.write === 'WRITE_EMPTY' && (await count(c, table)) > 0) throw new Error('the table is not empty and write_disposition is WRITE_EMPTY');
      return (await c.run(`INSERT INTO ${table} BY NAME\n${rows}`)).rowsChanged;
    });
  } catch (error) {
    throw new Error(`${where} failed: ${errorMessage(error)}`, { cause: error });
  }
}
