import { z } from 'zod';
import { parseDuration } from './duration';

/**
 * The configuration: every environment variable the chain reads, with its description and
 * default. The composition root reads it once; nothing below it reads process.env.
 */

const identifier = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,1023}$/, 'must be a plain identifier (letters, digits, _)');
const topicName = z.string().regex(/^[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}$/, 'must be a valid Pub/Sub topic name');
const objectName = z.string().min(1).regex(/^[^\r\n#[\]*?]+$/, 'must be a valid object name');
const duration = z.string().refine((s) => parseDuration(s) !== undefined, 'must be a duration such as 90s, 15m or 2h');
const positiveInt = (max: number) => z.coerce.number().int().min(1).max(max);
/** INITIAL_WATERMARK's explicit "from the beginning of the history". */
export const FROM_THE_BEGINNING = 'beginning';
const BEGINNING = '1970-01-01T00:00:00Z';
/** MAX_WINDOW on Google Cloud when it is not set: 18 windows of 20 minutes per run while catching up. */
const GCP_MAX_WINDOW = '6h';
const timestamp = z.string().refine((s) => /^\d{4}-\d\d-\d\dT/.test(s) && !Number.isNaN(Date.parse(s)), 'must be an RFC 3339 timestamp');

interface VariableSpec {
  schema: z.ZodType;
  default?: string;
  description: string;
}

/** The variables, in the order the README's table lists them. */
export const VARIABLES = {
  CONSOLIDATION_BACKEND: { schema: z.enum(['local', 'gcp']), default: 'local', description: 'Adapters to use: `gcp` (BigQuery, Cloud Storage, Pub/Sub, Dataflow) or `local` (DuckDB, a folder, the local bus and runner).' },
  GCP_PROJECT: { schema: z.string().regex(/^[a-z][a-z0-9-]{4,28}[a-z0-9]$/, 'must be a Google Cloud project ID'), description: 'Project of BigQuery, Pub/Sub and Dataflow (required with `gcp`).' },
  REGION: { schema: z.string().regex(/^[a-z]+-[a-z]+\d{1,2}$/, 'must be a region such as europe-west1 or europe-west10'), default: 'europe-west1', description: 'Region of the Dataflow jobs and of the template.' },
  BIGQUERY_LOCATION: { schema: z.string().min(2), default: 'EU', description: 'Location of the BigQuery jobs (the datasets\' location).' },
  STATE_BUCKET: { schema: z.string().regex(/^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/, 'must be a bucket name'), description: 'Bucket holding the watermark and the batches (required with `gcp`).' },
  STATE_DIR: { schema: z.string().min(1), default: '.consolidation', description: 'Local stack: folder standing in for the state bucket (also holds logs and dead letters).' },
  WAREHOUSE_FILE: { schema: z.string().min(1), default: '', description: 'Local stack: the DuckDB file; empty means the demo warehouse `<STATE_DIR>/demo.duckdb`.' },
  SOURCE_DATASET: { schema: identifier, default: 'main', description: 'Dataset (DuckDB: schema) of the source tables.' },
  USSD_TABLE: { schema: identifier, default: 'ussd_operations', description: 'USSD operations table.' },
  TRANSACTIONS_TABLE: { schema: identifier, default: 'transactiongu', description: 'Back-end transactions table.' },
  SERVICES_TABLE: { schema: identifier, default: 'services', description: 'Services reference table.' },
  AGENTS_TABLE: { schema: identifier, default: 'agents', description: 'Agents reference table.' },
  CONSOLIDATED_DATASET: { schema: identifier, default: 'consolidated_dataset', description: 'Dataset (DuckDB: schema) of the consolidated table.' },
  CONSOLIDATED_TABLE: { schema: identifier, default: 'consolidated_table', description: 'The consolidated table.' },
  STAGING_DATASET: { schema: identifier, default: 'consolidation_staging', description: 'Dataset (DuckDB: schema) of the per-batch IDs and temp tables.' },
  IDS_TOPIC: { schema: topicName, default: 'ussd-operations-topic', description: 'Topic of the ID chunks and seals (publishOps -> collectIds).' },
  BATCHES_TOPIC: { schema: topicName, default: 'consolidation-batches', description: 'Topic announcing complete batches (collectIds -> launchDataflow).' },
  CHUNK_SIZE: { schema: positiveInt(100_000), default: '1000', description: 'Operation IDs per message on the IDs topic (a message also ends at 9 MB of IDs: Pub/Sub takes at most 10 MB).' },
  PUBLISH_CONCURRENCY: { schema: positiveInt(1_000), default: '16', description: 'Chunk messages publishOps keeps in flight at once (bounds its memory).' },
  WATERMARK_OBJECT: { schema: objectName, default: 'last_timestamp.txt', description: 'Object holding the watermark, a plain RFC 3339 timestamp.' },
  INITIAL_WATERMARK: {
    schema: z.union([z.literal(FROM_THE_BEGINNING), timestamp]),
    default: '',
    description: `Where the first run starts while the watermark object does not exist: an RFC 3339 timestamp, or \`${FROM_THE_BEGINNING}\` for the whole history (read in MAX_WINDOW steps). Required with \`gcp\`; empty locally means \`${FROM_THE_BEGINNING}\`.`,
  },
  LOOKBACK: { schema: duration, default: '15m', description: 'Margin re-read before the watermark to catch late rows.' },
  SAFETY_LAG: { schema: duration, default: '2m', description: 'The window ends this long before now, so rows still being written are left for the next run.' },
  OPERATION_MAX_AGE: { schema: duration, default: '30d', description: 'How long after its creation an operation or its transaction can still change. Every cycle reads the source rows of the last OPERATION_MAX_AGE before its window, no older; a change to an older operation is counted and reported, not consolidated (the audit finds it).' },
  MAX_WINDOW: {
    schema: duration,
    default: '',
    description: `Longest window one batch covers when catching up (0s: no limit); empty means \`${GCP_MAX_WINDOW}\` with \`gcp\` (a run must finish within the function's timeout), no limit locally.`,
  },
  LEASE_OBJECT: { schema: objectName, default: 'lease.json', description: 'Create-only object that publishOps holds while it extracts, so two runs never extract at once.' },
  LEASE_DURATION: { schema: duration, default: '10m', description: 'How long a publishOps lease lasts if its holder dies without releasing it (keep it above the function timeout).' },
  STUCK_AFTER: { schema: duration, default: '15m', description: 'A batch that has not moved for this long is repaired by the reconciler and flagged by `consolidate status`.' },
  MAX_ATTEMPTS: { schema: positiveInt(20), default: '3', description: 'Dataflow attempts per batch; after the last one fails the batch is marked FAILED for good and logged at ERROR.' },
  REPLAY_MAX_IDS: { schema: positiveInt(1_000_000), default: '50000', description: 'Most operation IDs one replay request may list.' },
  TEMPLATE_PATH: { schema: z.string().regex(/^gs:\/\//, 'must be a gs:// path'), default: '', description: 'Flex Template spec; empty means `gs://dataflow-templates-<REGION>/latest/flex/Yaml_Template`.' },
  PIPELINE_FILE: { schema: z.string().regex(/^gs:\/\//, 'must be a gs:// path'), default: '', description: 'The pipeline file as uploaded; empty means `gs://<STATE_BUCKET>/pipeline/consolidation.yaml`.' },
  DATAFLOW_TEMP_LOCATION: { schema: z.string().regex(/^gs:\/\//, 'must be a gs:// path'), default: '', description: 'Dataflow temp location; empty means `gs://<STATE_BUCKET>/dataflow/temp`.' },
  DATAFLOW_STAGING_LOCATION: { schema: z.string().regex(/^gs:\/\//, 'must be a gs:// path'), default: '', description: 'Dataflow staging location (where the launch stages the job\'s files); empty means `gs://<STATE_BUCKET>/dataflow/staging`.' },
  DATAFLOW_SERVICE_ACCOUNT: { schema: z.string().regex(/^$|^[^@\s]+@[^@\s]+$/, 'must be a service account e-mail'), default: '', description: 'Service account of the Dataflow workers (empty: the project default).' },
  DATAFLOW_MAX_WORKERS: { schema: positiveInt(1_000), default: '4', description: 'Upper bound of Dataflow workers per job.' },
  AUDIT_TABLE: { schema: identifier, default: 'consolidation_audit', description: 'Table (in `CONSOLIDATED_DATASET`) where each audit records the days it checked.' },
  AUDIT_DAYS: { schema: positiveInt(366), default: '3', description: 'Creation days an audit checks when not told which: the watermark\'s day and the days before it.' },
  AUDIT_REPAIR: { schema: z.enum(['true', 'false']), default: 'false', description: 'Whether the scheduled audit (the `audit` function) replays the differing operations it finds.' },
  PUBLISH_OPS_URL: { schema: z.string().regex(/^https:\/\//, 'must be an https:// URL'), default: '', description: 'URL of publishOps, where the `audit` function sends its replays (required with `AUDIT_REPAIR=true` on `gcp`).' },
  LOCAL_BUS_MAX_ATTEMPTS: { schema: positiveInt(100), default: '5', description: 'Local bus: deliveries of one message before it is dead-lettered.' },
  LOCAL_BUS_CONCURRENCY: { schema: positiveInt(256), default: '8', description: 'Local bus: deliveries in flight at once.' },
  LOG_LEVEL: { schema: z.enum(['DEBUG', 'INFO', 'WARNING', 'ERROR']), default: 'INFO', description: 'Lowest severity written to the log.' },
} satisfies Record<string, VariableSpec>;

export type VariableName = keyof typeof VARIABLES;

export interface Config {
  backend: 'local' | 'gcp';
  project: string;
  region: string;
  bigqueryLocation: string;
  stateBucket: string;
  stateDir: string;
  warehouseFile: string;
  tables: {
    ussd: { dataset: string; table: string };
    transactions: { dataset: string; table: string };
    services: { dataset: string; table: string };
    agents: { dataset: string; table: string };
    consolidated: { dataset: string; table: string };
  };
  stagingDataset: string;
  idsTopic: string;
  batchesTopic: string;
  chunkSize: number;
  publishConcurrency: number;
  watermarkObject: string;
  initialWatermark: Date;
  lookbackMs: number;
  safetyLagMs: number;
  maxWindowMs: number;
  operationMaxAgeMs: number;
  leaseObject: string;
  leaseMs: number;
  stuckAfterMs: number;
  maxAttempts: number;
  replayMaxIds: number;
  templatePath: string;
  pipelineFile: string;
  dataflowTempLocation: string;
  dataflowStagingLocation: string;
  dataflowServiceAccount: string;
  dataflowMaxWorkers: number;
  auditTable: { dataset: string; table: string };
  auditDays: number;
  auditRepair: boolean;
  publishOpsUrl: string;
  localBusMaxAttempts: number;
  localBusConcurrency: number;
  logLevel: 'DEBUG' | 'INFO' | 'WARNING' | 'ERROR';
}

/** Raised once with every bad variable, so start-up stops with one message that names them all. */
export class ConfigError extends Error {
  constructor(readonly problems: { variable: string; problem: string }[]) {
    super(`Invalid configuration: ${problems.map((p) => `${p.variable} ${p.problem}`).join('; ')}`);
    this.name = 'ConfigError';
  }
}

/** Reads and validates the configuration from an environment (process.env at the composition root). */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const values: Record<string, unknown> = {};
  const problems: { variable: string; problem: string }[] = [];
  for (const [name, spec] of Object.entries(VARIABLES) as [VariableName, VariableSpec][]) {
    // An empty variable (KEY= in a .env file, "" in a Terraform map) means "not set": take the default.
    const raw = env[name] === undefined || env[name] === '' ? spec.default : env[name];
    if (raw === undefined || raw === '') {
      values[name] = raw ?? '';
      continue;
    }
    const parsed = spec.schema.safeParse(raw);
    if (parsed.success) values[name] = parsed.data;
    else problems.push({ variable: name, problem: `(${JSON.stringify(raw)}) ${parsed.error.issues.map((i) => i.message).join(', ')}` });
  }
  if (values.CONSOLIDATION_BACKEND === 'gcp') {
    for (const name of ['GCP_PROJECT', 'STATE_BUCKET'] as const) {
      if (!values[name] && !problems.some((p) => p.variable === name)) problems.push({ variable: name, problem: 'is required when CONSOLIDATION_BACKEND=gcp' });
    }
    if (!values.INITIAL_WATERMARK && !problems.some((p) => p.variable === 'INITIAL_WATERMARK')) {
      problems.push({
        variable: 'INITIAL_WATERMARK',
        problem: `is required when CONSOLIDATION_BACKEND=gcp: set where the first run starts (an RFC 3339 timestamp), or \`${FROM_THE_BEGINNING}\` to consolidate the whole history, MAX_WINDOW at a time`,
      });
    }
  }
  if (values.CONSOLIDATION_BACKEND === 'gcp' && values.AUDIT_REPAIR === 'true' && !values.PUBLISH_OPS_URL && !problems.some((p) => p.variable === 'PUBLISH_OPS_URL')) {
    problems.push({ variable: 'PUBLISH_OPS_URL', problem: 'is required when AUDIT_REPAIR=true and CONSOLIDATION_BACKEND=gcp (the audit replays through publishOps)' });
  }
  if (values.LEASE_OBJECT && values.LEASE_OBJECT === values.WATERMARK_OBJECT) problems.push({ variable: 'LEASE_OBJECT', problem: 'must differ from WATERMARK_OBJECT' });
  const maxAge = typeof values.OPERATION_MAX_AGE === 'string' ? parseDuration(values.OPERATION_MAX_AGE) : undefined;
  if (maxAge !== undefined && maxAge < 3_600_000) problems.push({ variable: 'OPERATION_MAX_AGE', problem: `(${JSON.stringify(values.OPERATION_MAX_AGE)}) must be at least 1h` });
  for (const name of ['LEASE_DURATION', 'STUCK_AFTER'] as const) {
    const ms = typeof values[name] === 'string' ? parseDuration(values[name] as string) : undefined;
    if (ms !== undefined && ms < 60_000) problems.push({ variable: name, problem: `(${JSON.stringify(values[name])}) must be at least 1m` });
  }
  if (problems.length > 0) throw new ConfigError(problems);

  const v = values as Record<VariableName, string & number>;
  const source = (table: string) => ({ dataset: v.SOURCE_DATASET, table });
  return {
    backend: v.CONSOLIDATION_BACKEND as 'local' | 'gcp',
    project: v.GCP_PROJECT,
    region: v.REGION,
    bigqueryLocation: v.BIGQUERY_LOCATION,
    stateBucket: v.STATE_BUCKET,
    stateDir: v.STATE_DIR,
    warehouseFile: v.WAREHOUSE_FILE,
    tables: {
      ussd: source(v.USSD_TABLE),
      transactions: source(v.TRANSACTIONS_TABLE),
      services: source(v.SERVICES_TABLE),
      agents: source(v.AGENTS_TABLE),
      consolidated: { dataset: v.CONSOLIDATED_DATASET, table: v.CONSOLIDATED_TABLE },
    },
    stagingDataset: v.STAGING_DATASET,
    idsTopic: v.IDS_TOPIC,
    batchesTopic: v.BATCHES_TOPIC,
    chunkSize: v.CHUNK_SIZE,
    publishConcurrency: v.PUBLISH_CONCURRENCY,
    watermarkObject: v.WATERMARK_OBJECT,
    initialWatermark: new Date(!v.INITIAL_WATERMARK || v.INITIAL_WATERMARK === FROM_THE_BEGINNING ? BEGINNING : v.INITIAL_WATERMARK),
    lookbackMs: parseDuration(v.LOOKBACK)!,
    safetyLagMs: parseDuration(v.SAFETY_LAG)!,
    maxWindowMs: parseDuration(v.MAX_WINDOW || (v.CONSOLIDATION_BACKEND === 'gcp' ? GCP_MAX_WINDOW : '0s'))!,
    operationMaxAgeMs: parseDuration(v.OPERATION_MAX_AGE)!,
    leaseObject: v.LEASE_OBJECT,
    leaseMs: parseDuration(v.LEASE_DURATION)!,
    stuckAfterMs: parseDuration(v.STUCK_AFTER)!,
    maxAttempts: v.MAX_ATTEMPTS,
    replayMaxIds: v.REPLAY_MAX_IDS,
    templatePath: v.TEMPLATE_PATH || `gs://dataflow-templates-${v.REGION}/latest/flex/Yaml_Template`,
    pipelineFile: v.PIPELINE_FILE || (v.STATE_BUCKET ? `gs://${v.STATE_BUCKET}/pipeline/consolidation.yaml` : ''),
    dataflowTempLocation: v.DATAFLOW_TEMP_LOCATION || (v.STATE_BUCKET ? `gs://${v.STATE_BUCKET}/dataflow/temp` : ''),
    dataflowStagingLocation: v.DATAFLOW_STAGING_LOCATION || (v.STATE_BUCKET ? `gs://${v.STATE_BUCKET}/dataflow/staging` : ''),
    dataflowServiceAccount: v.DATAFLOW_SERVICE_ACCOUNT,
    dataflowMaxWorkers: v.DATAFLOW_MAX_WORKERS,
    auditTable: { dataset: v.CONSOLIDATED_DATASET, table: v.AUDIT_TABLE },
    auditDays: v.AUDIT_DAYS,
    auditRepair: (v.AUDIT_REPAIR as string) === 'true',
    publishOpsUrl: v.PUBLISH_OPS_URL,
    localBusMaxAttempts: v.LOCAL_BUS_MAX_ATTEMPTS,
    localBusConcurrency: v.LOCAL_BUS_CONCURRENCY,
    logLevel: v.LOG_LEVEL as Config['logLevel'],
  };
}
