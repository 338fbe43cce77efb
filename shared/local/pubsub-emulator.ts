import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, appendFileSync, closeSync, constants as fsConstants, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { PubSub, type Subscription } from '@google-cloud/pubsub';
import type { Config } from '../config';
import { errorMessage } from '../errors';
import { PubSubPublisher } from '../gcp/pubsub-publisher';
import type { Logger, OutgoingMessage, Publisher } from '../ports';

/**
 * `consolidate run --pubsub-emulator`: the IDs topic and the batches topic are carried by the
 * Pub/Sub emulator of the Google Cloud CLI instead of the embedded bus. Each topic gets a push
 * subscription to its function's Functions Framework server, configured the way the deployed
 * triggers are (ack deadline, retry policy, dead-letter policy), and messages are published
 * through the Google Cloud adapter (PubSubPublisher) with the real client library. The Dataflow
 * status events still go through the local bus (Eventarc has no emulator).
 *
 * What the emulator (0.8.x, checked on this machine) does with the push subscriptions:
 * - it POSTs the classic push envelope `{ message: { data, attributes, messageId, publishTime },
 *   subscription }` (no ce-* headers). The Functions Framework turns it into a
 *   `google.cloud.pubsub.topic.v1.messagePublished` CloudEvent whose `data.message` holds `data`
 *   (base64), `attributes`, `messageId`, `publishTime` (the `subscription` field is dropped), and
 *   whose `source` is taken from the URL path, hence the push endpoints end in
 *   `projects/<project>/topics/<topic>`;
 * - a non-2xx answer is a nack: it redelivers with the subscription's retry policy (it honours
 *   minimumBackoff/maximumBackoff, about one second more per attempt);
 * - it honours the dead-letter policy: after maxDeliveryAttempts deliveries the message is
 *   forwarded to the dead-letter topic with the CloudPubSubDeadLetterSource* attributes. Like
 *   Pub/Sub itself it refuses maxDeliveryAttempts below 5 (or above 100), so
 *   LOCAL_BUS_MAX_ATTEMPTS is clamped to 5..100 here;
 * - it keeps everything in memory (no data directory flag: the temporary directory below is only
 *   its working directory).
 *
 * Dead letters are pushed to a small sink in this process that logs them at ERROR and writes them
 * to `<STATE_DIR>/dead-letter/<subscription>/`, as the local bus does.
 */

export const EMULATOR_PROJECT = 'local-consolidation';
/** Where the Debian/Ubuntu google-cloud-cli packages install the emulator. */
export const DEFAULT_EMULATOR_PATH = '/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator';
const EMULATOR_RELATIVE = join('platform', 'pubsub-emulator', 'bin', 'cloud-pubsub-emulator');
const START_TIMEOUT_MS = 30_000;
const ACK_DEADLINE_SECONDS = 60;
const MIN_BACKOFF_SECONDS = 1;
const MAX_BACKOFF_SECONDS = 10;
/** Pub/Sub (and the emulator) accept maxDeliveryAttempts in this range only. */
const DELIVERY_ATTEMPTS_RANGE = [5, 100] as const;

export type FunctionUrls = Record<'publishOps' | 'collectIds' | 'launchDataflow' | 'mergeOnComplete', string>;

export interface EmulatorPublisherOptions {
  urls: FunctionUrls;
  config: Config;
  logger: Logger;
  /** A running emulator (`host:port`, as PUBSUB_EMULATOR_HOST gives it); otherwise one is started. */
  host?: string;
  /** Lines for the user (the CLI's output). */
  out?: (line: string) => void;
  /** Where to look for the emulator; defaults to the standard install path and next to `gcloud` on PATH. */
  emulatorPath?: string;
}

export interface DeadLetter {
  subscription: string;
  messageId: string;
  deliveryAttempts: number;
  file: string;
}

export interface EmulatorPublisher extends Publisher {
  /** host:port of the emulator. */
  readonly host: string;
  /** True when this process started the emulator (and stops it on close). */
  readonly started: boolean;
  /** The emulator's process ID (and process group) when this process started it. */
  readonly pid: number | undefined;
  /** Subscription name -> push endpoint. */
  readonly subscriptions: Readonly<Record<string, string>>;
  /** Messages the emulator dead-lettered since start. */
  deadLettered(): readonly DeadLetter[];
  close(): Promise<void>;
}

export async function emulatorPublisher(options: EmulatorPublisherOptions): Promise<EmulatorPublisher> {
  const { config, logger } = options;
  const out = options.out ?? (() => undefined);
  const stateDir = resolve(config.stateDir);
  let emulator: RunningEmulator | undefined;
  let host: string;
  if (options.host) {
    host = normalizeHost(options.host);
    if (!(await answers(host, 3_000))) {
      throw new Error(`No Pub/Sub emulator answers at ${host} (PUBSUB_EMULATOR_HOST). Start one (gcloud beta emulators pubsub start --host-port=${host}), or unset PUBSUB_EMULATOR_HOST to let consolidate start its own.`);
    }
  } else {
    emulator = await startEmulator({ executable: findEmulator(options.emulatorPath), logFile: join(stateDir, 'logs', 'pubsub-emulator.log'), logger });
    host = emulator.host;
  }

  const pubsub = new PubSub({
    projectId: EMULATOR_PROJECT,
    // Given explicitly, so that PUBSUB_EMULATOR_HOST in the environment never decides where this goes.
    apiEndpoint: `http://${host}`,
    emulatorMode: true,
    // Without a universe domain the client asks Google's auth library, which probes the GCE
    // metadata server (a MetadataLookupWarning, or a long wait without a network).
    clientOptions: { universeDomain: 'googleapis.com' },
  });
  const deadLetters: DeadLetter[] = [];
  let sink: Server | undefined;
  const subscriptions: Subscription[] = [];
  try {
    sink = await startDeadLetterSink({ dir: join(stateDir, 'dead-letter'), logger, out, record: (letter) => deadLetters.push(letter) });
    const sinkUrl = `http://127.0.0.1:${(sink.address() as AddressInfo).port}/`;
    const maxDeliveryAttempts = Math.min(Math.max(config.localBusMaxAttempts, DELIVERY_ATTEMPTS_RANGE[0]), DELIVERY_ATTEMPTS_RANGE[1]);
    if (maxDeliveryAttempts !== config.localBusMaxAttempts) {
      logger.warn(`LOCAL_BUS_MAX_ATTEMPTS=${config.localBusMaxAttempts} is below what Pub/Sub accepts for a dead-letter policy; the emulator's subscriptions use ${maxDeliveryAttempts}`);
    }
    const deadLetterTopic = await ensureTopic(pubsub, 'consolidation-dead-letter');
    const plan = [
      { topic: config.idsTopic, name: 'collect-ids', endpoint: `${withSlash(options.urls.collectIds)}projects/${EMULATOR_PROJECT}/topics/${config.idsTopic}` },
      { topic: config.batchesTopic, name: 'launch-dataflow', endpoint: `${withSlash(options.urls.launchDataflow)}projects/${EMULATOR_PROJECT}/topics/${config.batchesTopic}` },
    ];
    const pushed: Record<string, string> = {};
    for (const sub of plan) {
      await ensureTopic(pubsub, sub.topic);
      subscriptions.push(
        await ensurePushSubscription(pubsub, sub.topic, sub.name, sub.endpoint, {
          ackDeadlineSeconds: ACK_DEADLINE_SECONDS,
          retryPolicy: { minimumBackoff: { seconds: MIN_BACKOFF_SECONDS }, maximumBackoff: { seconds: MAX_BACKOFF_SECONDS } },
          deadLetterPolicy: { deadLetterTopic, maxDeliveryAttempts },
        }),
      );
      pushed[sub.name] = sub.endpoint;
    }
    subscriptions.push(await ensurePushSubscription(pubsub, 'consolidation-dead-letter', 'consolidation-dead-letter-sink', sinkUrl, { ackDeadlineSeconds: 10 }));

    const publisher = new PubSubPublisher(pubsub);
    logger.info(`Pub/Sub emulator at ${host}${emulator ? ` (started, pid ${emulator.child.pid}, log ${emulator.logFile})` : ' (PUBSUB_EMULATOR_HOST)'}: ${plan.map((p) => `${p.topic} -> ${p.name} -> ${p.endpoint}`).join('; ')}`, {
      emulatorHost: host,
      project: EMULATOR_PROJECT,
      subscriptions: plan.map((p) => ({ topic: p.topic, subscription: p.name, pushEndpoint: p.endpoint })),
      ackDeadlineSeconds: ACK_DEADLINE_SECONDS,
      retryPolicy: { minimumBackoffSeconds: MIN_BACKOFF_SECONDS, maximumBackoffSeconds: MAX_BACKOFF_SECONDS },
      deadLetter: { topic: 'consolidation-dead-letter', maxDeliveryAttempts, sink: sinkUrl },
    });
    out(`Pub/Sub emulator at ${host}${emulator ? ` (started; log ${emulator.logFile})` : ''}: ${plan.map((p) => `${p.topic} -> ${p.name}`).join(', ')} (push, dead letter after ${maxDeliveryAttempts} deliveries)`);

    let closed = false;
    const sinkServer = sink;
    return {
      host,
      started: emulator !== undefined,
      pid: emulator?.child.pid,
      subscriptions: pushed,
      publish: (topic: string, message: OutgoingMessage) => publisher.publish(topic, message),
      deadLettered: () => deadLetters,
      async close() {
        if (closed) return;
        closed = true;
        // A shared emulator outlives this stack: turn its subscriptions into pull subscriptions so
        // that anything left waits in their backlog (and is pushed to the next stack) instead of
        // being pushed to closed ports until it is dead-lettered.
        if (!emulator) await Promise.allSettled(subscriptions.map((s) => s.modifyPushConfig({}, { timeout: 3_000 })));
        await pubsub.close().catch(() => undefined);
        await closeServer(sinkServer);
        await emulator?.stop();
      },
    };
  } catch (error) {
    await pubsub.close().catch(() => undefined);
    if (sink) await closeServer(sink);
    await emulator?.stop();
    throw new Error(`Setting up the Pub/Sub emulator at ${host} failed: ${errorMessage(error)}`, { cause: error });
  }
}

// ---------------------------------------------------------------------------------------------
// Finding and running the emulator

/**
 * The emulator's start script: the given path, the standard install path, or
 * `<sdk>/platform/pubsub-emulator/bin/cloud-pubsub-emulator` next to `gcloud` on PATH. Throws a
 * plain "not installed" error naming where it looked, and the same if Java is missing.
 */
export function findEmulator(explicit?: string): string {
  const candidates: string[] = explicit ? [explicit] : [DEFAULT_EMULATOR_PATH];
  if (!explicit) {
    for (const dir of (process.env.PATH ?? '').split(delimiter).filter(Boolean)) {
      const gcloud = join(dir, 'gcloud');
      if (!existsSync(gcloud)) continue;
      for (const bin of new Set([dirname(gcloud), dirname(safeRealpath(gcloud))])) {
        candidates.push(join(dirname(bin), EMULATOR_RELATIVE));
      }
    }
  }
  const unique = [...new Set(candidates)];
  const found = unique.find((path) => isExecutable(path));
  if (!found) {
    const gcloudNote = unique.length === 1 && !explicit ? ' (no gcloud on PATH)' : '';
    throw new Error(
      `The Pub/Sub emulator is not installed: looked for ${unique.join(', ')}${gcloudNote}. ` +
        'Install it with `gcloud components install pubsub-emulator` (or the google-cloud-cli-pubsub-emulator package), ' +
        'or run `consolidate run` without --pubsub-emulator: the embedded local bus carries the topics then.',
    );
  }
  const java = findJava();
  if (!java) {
    const home = process.env.JAVA_HOME ? `JAVA_HOME=${process.env.JAVA_HOME} has no bin/java` : 'no JAVA_HOME';
    throw new Error(
      `The Pub/Sub emulator at ${found} needs Java, which is not installed (${home}, no java on PATH). ` +
        'Install a Java runtime (11 or later), or run `consolidate run` without --pubsub-emulator: the embedded local bus carries the topics then.',
    );
  }
  return found;
}

function findJava(): string | undefined {
  const javaHome = process.env.JAVA_HOME;
  if (javaHome && isExecutable(join(javaHome, 'bin', 'java'))) return join(javaHome, 'bin', 'java');
  return (process.env.PATH ?? '')
    .split(delimiter)
    .filter(Boolean)
    .map((dir) => join(dir, 'java'))
    .find((path) => isExecutable(path));
}

interface RunningEmulator {
  host: string;
  child: ChildProcess;
  logFile: string;
  stop(): Promise<void>;
}

/**
 * Starts the emulator on a free loopback port, in its own process group (so that stopping it stops
 * the JVM its script starts), and waits until it answers. Retries on another port if the chosen
 * one was taken in between.
 */
async function startEmulator(options: { executable: string; logFile: string; logger: Logger }): Promise<RunningEmulator> {
  mkdirSync(dirname(options.logFile), { recursive: true });
  let lastError: Error | undefined;
  for (let attempt = 1; attempt <= 3; attempt++) {
    const port = await freePort();
    try {
      return await startOnce(options, port);
    } catch (error) {
      lastError = error as Error;
      if (!/address already in use|BindException/i.test(errorMessage(error))) break;
      options.logger.debug('Pub/Sub emulator port taken; trying another', { port });
    }
  }
  throw lastError!;
}

async function startOnce(options: { executable: string; logFile: string; logger: Logger }, port: number): Promise<RunningEmulator> {
  const host = `127.0.0.1:${port}`;
  const workDir = mkdtempSync(join(tmpdir(), 'pubsub-emulator-'));
  appendFileSync(options.logFile, `--- ${new Date().toISOString()}: ${options.executable} --host=127.0.0.1 --port=${port}\n`);
  const logFd = openSync(options.logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(options.executable, [`--host=127.0.0.1`, `--port=${port}`], { cwd: workDir, detached: true, stdio: ['ignore', logFd, logFd] });
  } finally {
    closeSync(logFd);
  }
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  let spawnError: Error | undefined;
  const exit = new Promise<void>((done) => {
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      done();
    });
    child.once('error', (error) => {
      spawnError = error;
      exited ??= { code: null, signal: null };
      done();
    });
  });

  const killGroup = (signal: NodeJS.Signals) => {
    if (exited || child.pid === undefined) return;
    try {
      process.kill(-child.pid, signal);
    } catch {
      // Already gone.
    }
  };
  // The emulator runs in its own process group, so it would outlive this process: stop it when
  // this process exits, and on a signal that nothing else handles (then die of that signal, as
  // without this handler). When the CLI handles the signal (--watch), it stops the stack itself.
  const removeWorkDir = () => rmSync(workDir, { recursive: true, force: true });
  const onExit = () => {
    killGroup('SIGKILL');
    removeWorkDir();
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (process.listenerCount(signal) > 1) return;
    onExit();
    removeHooks();
    process.kill(process.pid, signal);
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  const removeHooks = () => {
    process.off('exit', onExit);
    for (const s of signals) process.off(s, onSignal);
  };
  process.on('exit', onExit);
  for (const s of signals) process.on(s, onSignal);

  const stop = async () => {
    removeHooks();
    if (!exited) {
      killGroup('SIGTERM');
      const timer = setTimeout(() => killGroup('SIGKILL'), 5_000);
      await exit;
      clearTimeout(timer);
    }
    removeWorkDir();
  };

  const deadline = Date.now() + START_TIMEOUT_MS;
  const started = Date.now();
  for (;;) {
    if (exited) {
      await stop();
      const why = spawnError ? spawnError.message : `exited with ${exited.signal ?? `code ${exited.code}`}`;
      throw new Error(`The Pub/Sub emulator (${options.executable}) did not start: it ${why}. Its log, ${options.logFile}, ends with:\n${tail(options.logFile)}`);
    }
    if (await answers(host, 1_000)) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`The Pub/Sub emulator (${options.executable}) did not answer on ${host} within ${START_TIMEOUT_MS / 1000} s; see its log, ${options.logFile}:\n${tail(options.logFile)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  options.logger.debug('Pub/Sub emulator started', { host, pid: child.pid, ms: Date.now() - started, log: options.logFile });
  return { host, child, logFile: options.logFile, stop };
}

/** True if an emulator answers `GET /` ("Ok") at host:port. */
async function answers(host: string, timeoutMs: number): Promise<boolean> {
  try {
    const response = await fetch(`http://${host}/`, { signal: AbortSignal.timeout(timeoutMs) });
    await response.arrayBuffer();
    return response.ok;
  } catch {
    return false;
  }
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolvePort(port));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Topics and subscriptions

async function ensureTopic(pubsub: PubSub, name: string): Promise<string> {
  const topic = pubsub.topic(name);
  try {
    await pubsub.createTopic(name);
  } catch (error) {
    if (grpcCode(error) !== 6) throw error; // ALREADY_EXISTS
  }
  return topic.name;
}

interface SubscriptionSettings {
  ackDeadlineSeconds: number;
  retryPolicy?: { minimumBackoff: { seconds: number }; maximumBackoff: { seconds: number } };
  deadLetterPolicy?: { deadLetterTopic: string; maxDeliveryAttempts: number };
}

/**
 * Creates the push subscription, or, when it exists already (a shared emulator that a previous
 * run set up), points it at this run's endpoint and settings, keeping its backlog.
 */
async function ensurePushSubscription(pubsub: PubSub, topicName: string, name: string, endpoint: string, settings: SubscriptionSettings): Promise<Subscription> {
  const topic = pubsub.topic(topicName);
  try {
    const [subscription] = await topic.createSubscription(name, { pushConfig: { pushEndpoint: endpoint }, ...settings });
    return subscription;
  } catch (error) {
    if (grpcCode(error) !== 6) throw error;
  }
  const subscription = pubsub.subscription(name);
  const [metadata] = await subscription.getMetadata();
  if (metadata.topic !== topic.name) {
    throw new Error(`The subscription ${name} exists on ${metadata.topic}, not on ${topic.name}; delete it or use another emulator`);
  }
  await subscription.modifyPushConfig({ pushEndpoint: endpoint });
  await subscription.setMetadata({ ...settings });
  return subscription;
}

function grpcCode(error: unknown): number | undefined {
  return typeof (error as { code?: unknown })?.code === 'number' ? (error as { code: number }).code : undefined;
}

// ---------------------------------------------------------------------------------------------
// Dead letters

/** Receives the dead-letter topic's pushes: logs each at ERROR and writes it to `<dir>/<subscription>/`. */
async function startDeadLetterSink(options: { dir: string; logger: Logger; out: (line: string) => void; record: (letter: DeadLetter) => void }): Promise<Server> {
  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (part: Buffer) => parts.push(part));
    req.on('end', () => {
      void (async () => {
        const text = Buffer.concat(parts).toString('utf8');
        let body: { message?: { data?: string; attributes?: Record<string, string>; messageId?: string } } = {};
        try {
          body = JSON.parse(text);
        } catch {
          // Kept as text below.
        }
        const attributes = body.message?.attributes ?? {};
        const subscription = attributes.CloudPubSubDeadLetterSourceSubscription ?? 'unknown';
        const messageId = body.message?.messageId ?? `unknown-${Date.now()}`;
        const deliveryAttempts = Number(attributes.CloudPubSubDeadLetterSourceDeliveryCount ?? 0);
        let payload: unknown;
        try {
          payload = JSON.parse(Buffer.from(body.message?.data ?? '', 'base64').toString('utf8'));
        } catch {
          payload = undefined;
        }
        const dir = join(options.dir, subscription.replace(/[^A-Za-z0-9._-]/g, '_'));
        const file = join(dir, `${messageId.replace(/[^A-Za-z0-9._-]/g, '_')}.json`);
        await mkdir(dir, { recursive: true });
        await writeFile(file, JSON.stringify({ subscription, deliveryAttempts, attributes, payload, body: Object.keys(body).length ? body : text }, null, 2));
        const letter: DeadLetter = { subscription, messageId, deliveryAttempts, file };
        options.record(letter);
        const batchId = (payload as { batchId?: unknown } | undefined)?.batchId;
        options.logger.error(`Message dead-lettered by the Pub/Sub emulator after ${deliveryAttempts} deliveries to ${subscription}`, { messageId, subscription, batchId, file });
        options.out(`Dead letter: a message to ${subscription}${typeof batchId === 'string' ? ` (batch ${batchId})` : ''} failed ${deliveryAttempts} deliveries; kept in ${file}`);
        res.statusCode = 204;
        res.end();
      })().catch((error) => {
        options.logger.error('Could not record a dead letter', { error });
        res.statusCode = 500;
        res.end();
      });
    });
  });
  await new Promise<void>((ready) => server.listen(0, '127.0.0.1', ready));
  return server;
}

// ---------------------------------------------------------------------------------------------
// Helpers

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((done) => server.close(() => done()));
}

function normalizeHost(host: string): string {
  return host.trim().replace(/^https?:\/\//, '').replace(/\/+$/, '');
}

function withSlash(url: string): string {
  return url.endsWith('/') ? url : `${url}/`;
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function safeRealpath(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}
