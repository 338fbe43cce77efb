import type { CloudEvent } from '@google-cloud/functions-framework';
import type { ZodType } from 'zod';
import type { Logger } from './ports';

/** A Pub/Sub message as a CloudEvent carries it: `data.message.{data (base64), attributes, messageId}`. */
export type DecodedMessage =
  | { ok: true; messageId: string; attributes: Record<string, string>; payload: unknown }
  | { ok: false; messageId: string; problem: string };

interface PubsubEnvelope {
  message?: { data?: unknown; attributes?: unknown; messageId?: unknown; message_id?: unknown };
}

/** Decodes the JSON payload of a Pub/Sub CloudEvent, or says what is wrong with it. */
export function decodePubsubEvent(event: CloudEvent<unknown>): DecodedMessage {
  const envelope = (event.data ?? {}) as PubsubEnvelope;
  const message = envelope.message;
  const messageId = String(message?.messageId ?? message?.message_id ?? event.id ?? 'unknown');
  if (!message || typeof message !== 'object') return { ok: false, messageId, problem: 'the event has no Pub/Sub message (data.message)' };
  if (typeof message.data !== 'string' || message.data.length === 0) return { ok: false, messageId, problem: 'the message has no data' };
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(message.data)) return { ok: false, messageId, problem: 'the message data is not base64' };
  const text = Buffer.from(message.data, 'base64').toString('utf8');
  let payload: unknown;
  try {
    payload = JSON.parse(text);
  } catch {
    return { ok: false, messageId, problem: 'the message data is not JSON' };
  }
  const attributes = message.attributes && typeof message.attributes === 'object' ? (message.attributes as Record<string, string>) : {};
  return { ok: true, messageId, attributes, payload };
}

/** A zod error as one readable line: "ids: expected array; chunk: too small". */
export function describeIssues(issues: { path: PropertyKey[]; message: string }[]): string {
  return issues.map((i) => `${i.path.map(String).join('.') || '(message)'}: ${i.message}`).join('; ');
}

/**
 * Decodes a Pub/Sub CloudEvent and validates its payload. A message that is not base64 JSON, or
 * not of the expected shape, is logged at ERROR with its message ID and yields undefined: the
 * caller returns, which acknowledges it, so it is set aside instead of retried forever.
 */
export function readMessage<T>(
  event: CloudEvent<unknown>,
  schema: ZodType<T>,
  topic: string,
  logger: Logger,
): { messageId: string; data: T } | undefined {
  const decoded = decodePubsubEvent(event);
  if (!decoded.ok) {
    logger.error(`Malformed message on ${topic}, acknowledged and set aside: ${decoded.problem}`, { messageId: decoded.messageId });
    return undefined;
  }
  const parsed = schema.safeParse(decoded.payload);
  if (!parsed.success) {
    logger.error(`Message of the wrong shape on ${topic}, acknowledged and set aside: ${describeIssues(parsed.error.issues)}`, { messageId: decoded.messageId });
    return undefined;
  }
  return { messageId: decoded.messageId, data: parsed.data };
}

/** Dataflow's JobState enum in number order (google.dataflow.v1beta3.JobState). */
const JOB_STATES = [
  'JOB_STATE_UNKNOWN',
  'JOB_STATE_STOPPED',
  'JOB_STATE_RUNNING',
  'JOB_STATE_DONE',
  'JOB_STATE_FAILED',
  'JOB_STATE_CANCELLED',
  'JOB_STATE_UPDATED',
  'JOB_STATE_DRAINING',
  'JOB_STATE_DRAINED',
  'JOB_STATE_PENDING',
  'JOB_STATE_CANCELLING',
  'JOB_STATE_QUEUED',
  'JOB_STATE_RESOURCE_CLEANING_UP',
  'JOB_STATE_PAUSING',
  'JOB_STATE_PAUSED',
] as const;

/**
 * A Dataflow job state as its name, whether it came as the name or as the enum's number (JSON
 * encodings of the Job may carry either, the number also as a string). Undefined for anything else.
 */
export function jobStateName(value: unknown): string | undefined {
  if (typeof value === 'number' || (typeof value === 'string' && /^\d+$/.test(value))) return JOB_STATES[Number(value)];
  if (typeof value === 'string' && (JOB_STATES as readonly string[]).includes(value)) return value;
  return undefined;
}
