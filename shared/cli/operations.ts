import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { reconcileUnderLease, type ReconcileAction } from '../../functions/reconciler';
import type { ChainDependencies } from '../../functions/dependencies';
import { BatchStore, DamagedStateError } from '../batch';
import type { Config } from '../config';
import { errorMessage } from '../errors';
import { composeGoogleCloud } from '../gcp/compose';
import { callPublishOps, defaultIdentityTokens, stateBucketStore, type IdentityTokens } from '../gcp/operator';
import { JsonLogger } from '../logger';
import { runCycle } from '../local/cycle';
import { FolderObjectStore } from '../local/folder-store';
import { StackClock, type LocalStack } from '../local/stack';
import { CliError, EXIT } from './exit';
import { formatCycle } from './report';
import { announceLeaseTakeover, openSession, startStack, warehouseOf, type SessionOptions } from './session';
import { checkOwner, folderNow, readOwner, recordRunClock, requireStateFolder } from './state-folder';
import { formatStatus, readStatus, statusExitCode, type StatusReport } from './status';

/**
 * The operator's commands (status, reconcile, replay) on either backend: the local stack, or a
 * deployed chain through the same Google Cloud adapters as the functions.
 */

export interface OperationOptions extends SessionOptions {
  /** The clock of the command (`--now`); the real time otherwise. */
  now?: Date;
  /** The tool's own variables (PUBLISH_OPS_URL, ...). */
  tool: Partial<Record<string, string>>;
  /** How a Google Cloud replay gets the caller's identity token (tests inject it). */
  identityTokens?: () => IdentityTokens;
  /** How the Google Cloud composition is built (tests inject stubbed clients). */
  composeGcp?: (config: Config) => ChainDependencies;
}

/** `consolidate status`: reads, never writes (nor creates the state folder). */
export async function statusReport(options: OperationOptions & { limit: number }): Promise<StatusReport> {
  const { config } = options;
  if (config.backend === 'gcp') {
    const store = options.composeGcp?.(config).store ?? stateBucketStore(config);
    return readStatus({ store, where: `gs://${config.stateBucket}`, config, now: options.now ?? new Date(), simulated: false, limit: options.limit, localHolders: false });
  }
  const stateDir = resolve(config.stateDir);
  requireStateFolder(stateDir);
  if (config.warehouseFile) checkOwner(stateDir, warehouseOf(config).warehouseFile);
  const clock = options.now ? { now: options.now, simulated: false } : folderNow(readOwner(stateDir));
  const bucket = join(stateDir, 'bucket');
  return readStatus({ store: new FolderObjectStore(bucket), where: bucket, config, now: clock.now, simulated: clock.simulated, limit: options.limit, localHolders: true });
}

export async function statusCommand(options: OperationOptions & { limit: number; json: boolean }): Promise<{ code: number; report: StatusReport }> {
  const report = await statusReport(options);
  if (!options.json) for (const line of formatStatus(report)) options.out(line);
  return { code: statusExitCode(report), report };
}

function describeAction(action: ReconcileAction): string {
  return `  ${action.batchId}  ${action.action.padEnd(16)} ${action.detail}`;
}

const troubled = (actions: ReconcileAction[]) => actions.some((a) => a.action === 'error' || a.action === 'gave-up');

/** `consolidate reconcile`: the reconciler on its own, under the lease; locally it waits for what it set moving. */
export async function reconcileCommand(options: OperationOptions): Promise<number> {
  const run = async (deps: ChainDependencies): Promise<ReconcileAction[]> => {
    try {
      return await reconcileUnderLease(deps);
    } catch (error) {
      throw new CliError(errorMessage(error), EXIT.failed);
    }
  };
  if (options.config.backend === 'gcp') {
    const deps = gcpDependencies(options);
    const actions = await run(deps);
    options.out(actions.length === 0 ? 'Reconciler: no open batch; nothing to repair.' : `Reconciler: ${actions.length} open batch(es):`);
    for (const action of actions) options.out(describeAction(action));
    if (actions.some((a) => a.action !== 'waiting' && a.action !== 'closed')) options.out('The repairs go on in the deployed chain; `consolidate status --backend gcp` follows them.');
    return troubled(actions) ? EXIT.failed : EXIT.ok;
  }
  return withStack(options, async (stack) => {
    const actions = await run(stack.deps);
    await stack.settle();
    options.out(actions.length === 0 ? 'Reconciler: no open batch; nothing to repair.' : `Reconciler: ${actions.length} open batch(es):`);
    for (const action of actions) options.out(describeAction(action));
    const batches = new BatchStore(stack.store);
    for (const action of actions.filter((a) => a.action !== 'waiting' && a.action !== 'closed')) {
      const state = await batches.readState(action.batchId).then(
        (read) => read?.state,
        (error: unknown) => {
          if (!(error instanceof DamagedStateError)) throw error;
          options.out(`  ${action.batchId}  ${error.message}`);
          return undefined;
        },
      );
      if (state) options.out(`  ${action.batchId}  now ${state.status}${state.merge ? ` (${state.merge.inserted} inserted, ${state.merge.updated} updated)` : ''}`);
    }
    return troubled(actions) ? EXIT.failed : EXIT.ok;
  });
}

/** Reads an IDs file: one operation ID per line; blank lines and lines starting with # are skipped. */
export function readIdsFile(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new CliError(`--ids-file ${file}: ${errorMessage(error)}`);
  }
  const ids = text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  if (ids.length === 0) throw new CliError(`--ids-file ${file}: no operation ID in it (one a line)`);
  return ids;
}

export type ReplayBody = { from: string; to: string } | { ids: string[] };

/** A refusal of publishOps (400: the request; 409: the lease) as the operator should read it. */
function refusal(status: number, message: string): CliError {
  if (status === 400) return new CliError(`replay refused: ${message}`, EXIT.usage);
  if (status === 409) return new CliError(`replay not started: ${message}. Run it again once that run has finished.`, EXIT.failed);
  return new CliError(`replay failed: ${message}`, EXIT.failed);
}

/**
 * `consolidate replay`. Locally: one replay through the whole chain, followed to its MERGE. On
 * Google Cloud: a POST to the deployed publishOps with the caller's identity token (see the README).
 */
export async function replayCommand(options: OperationOptions & { body: ReplayBody }): Promise<number> {
  if (options.config.backend === 'gcp') {
    const url = options.tool.PUBLISH_OPS_URL;
    if (!url) throw new CliError('replay on Google Cloud calls publishOps: set PUBLISH_OPS_URL (`terraform output -raw publish_ops_uri`) in the environment or the profile.');
    const answer = await callPublishOps(url, options.body, (options.identityTokens ?? defaultIdentityTokens)());
    if (answer.status !== 200) throw refusal(answer.status, String(answer.body.error ?? `HTTP ${answer.status}`));
    const body = answer.body as { status?: string; batchId?: string; idCount?: number; replay?: string };
    if (body.replay) options.out(`Replay of the ${body.replay} (as of the watermark; the watermark is not moved)`);
    options.out(body.status === 'sealed' ? `replay: batch ${body.batchId} · ${body.idCount} IDs sealed; the deployed chain takes it from here (\`consolidate status --backend gcp\`)` : 'replay: no operation to replay');
    return EXIT.ok;
  }
  return withStack(options, async (stack) => {
    const report = await runCycle(stack, { body: options.body, quietMs: options.pubsubEmulator ? 20_000 : 2_000 });
    if (report.httpStatus && report.httpStatus !== 200) throw refusal(report.httpStatus, report.error ?? 'no message');
    if (report.replay) options.out(`Replay of the ${report.replay} (as of the watermark; the watermark is not moved)`);
    for (const action of (report.reconciled ?? []).filter((a) => a.action !== 'waiting' && a.action !== 'closed')) options.out(`reconciler:${describeAction(action)}`);
    if (report.outcome === 'empty') options.out('replay: no operation to replay');
    else for (const line of formatCycle(1, report)) options.out(line.replace(/^cycle 1/, 'replay'));
    return report.ok ? EXIT.ok : EXIT.failed;
  });
}

function gcpDependencies(options: OperationOptions): ChainDependencies {
  if (options.composeGcp) return options.composeGcp(options.config);
  const logger = new JsonLogger((line) => options.verbose && process.stderr.write(`${line}\n`), 'DEBUG');
  return composeGoogleCloud(options.config, logger);
}

/** Starts the local stack with the command's clock, runs `work` on it, stops it. */
async function withStack(options: OperationOptions, work: (stack: LocalStack) => Promise<number>): Promise<number> {
  const session = openSession(options);
  // Without --now, a folder whose runs were simulated stays in its clock, so its batches' times agree.
  const folder = folderNow(readOwner(session.stateDir));
  const now = options.now ?? (folder.simulated ? folder.now : undefined);
  const clock = new StackClock();
  clock.set(now);
  await announceLeaseTakeover(session, options.config, options.out);
  const stack = await startStack(session, options, clock);
  try {
    return await work(stack);
  } finally {
    await stack.stop();
    recordRunClock(session.stateDir, now);
  }
}

