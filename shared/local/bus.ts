import { EventEmitter } from 'node:events';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger, OutgoingMessage, Publisher } from '../ports';

/**
 * The local stand-in for Pub/Sub push subscriptions and Eventarc: it POSTs binary-mode
 * CloudEvents to each subscriber's Functions Framework server on loopback, several in flight at
 * once, retries any non-2xx answer with exponential backoff, and dead-letters a message after
 * `maxAttempts` deliveries (written to `<deadLetterDir>` and logged at ERROR).
 */

export interface BusOptions {
  maxAttempts: number;
  concurrency: number;
  /** First retry delay; doubles per attempt up to maxBackoffMs. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  deadLetterDir: string;
  logger: Logger;
  project?: string;
  /** Delivery faults (fault injection): duplicated, reordered and held-back deliveries. */
  faults?: DeliveryFaults;
}

export interface DeliveryFaults {
  /** How many times to deliver one message (1 without the fault). */
  copies(): number;
  /** The index of the queued delivery to send next (0 without the fault). */
  pick(queued: number): number;
  /** True when deliveries are reordered: new ones then wait a turn of the event loop, so that they queue up. */
  reorders(): boolean;
  /** True to hold back the first delivery of every burst until the later ones are done. */
  holdFirst(): boolean;
  noteHeld(): void;
}

/** One delivery to make: the CloudEvent's headers and body, and where it goes. */
interface Delivery {
  endpoint: string;
  subscription: string;
  topic: string;
  messageId: string;
  headers: Record<string, string>;
  body: string;
  attempt: number;
}

export interface DeadLetter {
  subscription: string;
  topic: string;
  messageId: string;
  attempts: number;
  lastStatus: string;
  file: string;
}

/** Events for observers (the CLI's progress line, tests): published, delivered, dead-lettered. */
export type BusEvents = {
  published: [{ topic: string; messageId: string; data: unknown }];
  delivered: [{ subscription: string; messageId: string; status: number; attempt: number }];
  deadLettered: [DeadLetter];
};

export class LocalBus implements Publisher {
  readonly events = new EventEmitter<BusEvents>();
  private readonly subscriptions = new Map<string, { name: string; endpoint: string }[]>();
  private readonly queue: Delivery[] = [];
  /** Held-back deliveries, and the subscriptions that already held one in this burst. */
  private readonly held: Delivery[] = [];
  private readonly heldIn = new Set<string>();
  private pumpScheduled = false;
  private readonly deadLetters: DeadLetter[] = [];
  private inFlight = 0;
  private waiting = 0;
  private idleWaiters: (() => void)[] = [];
  private sequence = 0;
  private closed = false;

  constructor(private readonly options: BusOptions) {}

  /** Adds a push subscription: every message on `topic` is delivered to `endpoint`. */
  subscribe(topic: string, name: string, endpoint: string): void {
    const list = this.subscriptions.get(topic) ?? [];
    list.push({ name, endpoint });
    this.subscriptions.set(topic, list);
  }

  async publish(topic: string, message: OutgoingMessage): Promise<string> {
    if (this.closed) throw new Error(`The local bus is closed; cannot publish to ${topic}`);
    const messageId = String(++this.sequence);
    const publishTime = new Date().toISOString();
    const data = Buffer.from(JSON.stringify(message.data)).toString('base64');
    const project = this.options.project ?? 'local';
    const subscribers = this.subscriptions.get(topic) ?? [];
    if (subscribers.length === 0) this.options.logger.warn(`Message published to ${topic}, which has no subscription`, { messageId, topic });
    const copies = this.options.faults?.copies() ?? 1;
    for (const sub of subscribers) {
      const body = {
        message: { data, attributes: message.attributes ?? {}, messageId, message_id: messageId, publishTime, publish_time: publishTime },
        subscription: `projects/${project}/subscriptions/${sub.name}`,
      };
      const delivery: Delivery = {
        endpoint: sub.endpoint,
        subscription: sub.name,
        topic,
        messageId,
        attempt: 0,
        body: JSON.stringify(body),
        headers: {
          'ce-specversion': '1.0',
          'ce-id': messageId,
          'ce-source': `//pubsub.googleapis.com/projects/${project}/topics/${topic}`,
          'ce-type': 'google.cloud.pubsub.topic.v1.messagePublished',
          'ce-time': publishTime,
          'content-type': 'application/json',
        },
      };
      for (let copy = 0; copy < copies; copy++) this.enqueue({ ...delivery, headers: { ...delivery.headers } }, copy === 0);
    }
    this.events.emit('published', { topic, messageId, data: message.data });
    return messageId;
  }

  /**
   * Delivers an Eventarc-style event that is not a Pub/Sub message (the Dataflow job status
   * events): `type`, `source`, extension attributes, and `data` as the JSON body.
   */
  emitEvent(event: { type: string; source: string; subject?: string; extensions?: Record<string, string>; data: unknown; topic: string }): string {
    const id = `evt-${++this.sequence}`;
    const headers: Record<string, string> = {
      'ce-specversion': '1.0',
      'ce-id': id,
      'ce-source': event.source,
      'ce-type': event.type,
      'ce-time': new Date().toISOString(),
      'content-type': 'application/json',
    };
    if (event.subject) headers['ce-subject'] = event.subject;
    for (const [k, v] of Object.entries(event.extensions ?? {})) headers[`ce-${k}`] = v;
    const copies = this.options.faults?.copies() ?? 1;
    for (const sub of this.subscriptions.get(event.topic) ?? []) {
      for (let copy = 0; copy < copies; copy++) {
        this.enqueue({ endpoint: sub.endpoint, subscription: sub.name, topic: event.topic, messageId: id, attempt: 0, headers: { ...headers }, body: JSON.stringify(event.data) }, copy === 0);
      }
    }
    this.events.emit('published', { topic: event.topic, messageId: id, data: event.data });
    return id;
  }

  /** Resolves once nothing is queued, in flight, or waiting for a retry. */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  isIdle(): boolean {
    return this.queue.length === 0 && this.inFlight === 0 && this.waiting === 0 && this.held.length === 0 && !this.pumpScheduled;
  }

  deadLettered(): readonly DeadLetter[] {
    return this.deadLetters;
  }

  /** Stops accepting messages; deliveries already queued still run. */
  close(): void {
    this.closed = true;
  }

  private enqueue(delivery: Delivery, mayHold = true): void {
    if (mayHold && delivery.attempt === 0 && this.options.faults?.holdFirst() && !this.heldIn.has(delivery.subscription)) {
      this.heldIn.add(delivery.subscription);
      this.held.push(delivery);
      this.options.faults.noteHeld();
      this.options.logger.debug('Fault injection: delivery held back until the later ones are done', { subscription: delivery.subscription, messageId: delivery.messageId });
      queueMicrotask(() => this.notifyIfIdle());
      return;
    }
    this.queue.push(delivery);
    if (this.options.faults?.reorders()) {
      if (!this.pumpScheduled) {
        this.pumpScheduled = true;
        setTimeout(() => {
          this.pumpScheduled = false;
          this.pump();
        }, 1);
      }
      return;
    }
    this.pump();
  }

  private pump(): void {
    while (this.inFlight < this.options.concurrency && this.queue.length > 0) {
      const index = this.options.faults?.pick(this.queue.length) ?? 0;
      const delivery = this.queue.splice(index, 1)[0];
      this.inFlight++;
      void this.deliver(delivery).finally(() => {
        this.inFlight--;
        this.pump();
        this.notifyIfIdle();
      });
    }
  }

  private notifyIfIdle(): void {
    if (this.held.length > 0 && this.queue.length === 0 && this.inFlight === 0 && this.waiting === 0) {
      // Everything after the held-back deliveries is done: they go now, and a new burst may hold again.
      const released = this.held.splice(0);
      this.heldIn.clear();
      for (const delivery of released) this.queue.push(delivery);
      this.pump();
      return;
    }
    if (!this.isIdle()) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }

  private async deliver(delivery: Delivery): Promise<void> {
    const attempt = delivery.attempt + 1;
    let status = 'no answer';
    try {
      const response = await fetch(delivery.endpoint, { method: 'POST', headers: delivery.headers, body: delivery.body });
      await response.arrayBuffer();
      status = String(response.status);
      this.events.emit('delivered', { subscription: delivery.subscription, messageId: delivery.messageId, status: response.status, attempt });
      if (response.ok) return;
    } catch (error) {
      status = error instanceof Error ? error.message : String(error);
    }
    if (attempt >= this.options.maxAttempts) {
      await this.deadLetter(delivery, attempt, status);
      return;
    }
    const initial = this.options.initialBackoffMs ?? 100;
    const delay = Math.min(initial * 2 ** (attempt - 1), this.options.maxBackoffMs ?? 5_000);
    this.options.logger.debug('Delivery failed; retrying', { subscription: delivery.subscription, messageId: delivery.messageId, attempt, status, retryInMs: delay });
    this.waiting++;
    setTimeout(() => {
      this.waiting--;
      this.enqueue({ ...delivery, attempt });
    }, delay);
  }

  private async deadLetter(delivery: Delivery, attempts: number, lastStatus: string): Promise<void> {
    const dir = join(this.options.deadLetterDir, delivery.subscription);
    const file = join(dir, `${delivery.messageId}.json`);
    await mkdir(dir, { recursive: true });
    await writeFile(file, JSON.stringify({ topic: delivery.topic, subscription: delivery.subscription, attempts, lastStatus, headers: delivery.headers, body: JSON.parse(delivery.body) }, null, 2));
    const letter: DeadLetter = { subscription: delivery.subscription, topic: delivery.topic, messageId: delivery.messageId, attempts, lastStatus, file };
    this.deadLetters.push(letter);
    this.options.logger.error(`Message dead-lettered after ${attempts} deliveries to ${delivery.subscription} (last answer: ${lastStatus})`, { messageId: delivery.messageId, subscription: delivery.subscription, file });
    this.events.emit('deadLettered', letter);
  }
}
