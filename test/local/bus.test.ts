import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalBus } from '../../shared/local/bus';
import { FaultInjector, NO_FAULTS, type FaultPlan } from '../../shared/local/faults';
import { JsonLogger } from '../../shared/logger';

interface Received {
  headers: IncomingMessage['headers'];
  body: any;
}

/** A loopback server that answers with the statuses it is given, in turn (then 204). */
async function subscriber(statuses: number[] = [], delayMs = 0): Promise<{ url: string; received: Received[]; maxConcurrent: () => number; close: () => Promise<void> }> {
  const received: Received[] = [];
  let current = 0;
  let max = 0;
  const server: Server = createServer((req, res) => {
    let text = '';
    req.on('data', (c) => (text += c));
    req.on('end', () => {
      current++;
      max = Math.max(max, current);
      received.push({ headers: req.headers, body: JSON.parse(text) });
      setTimeout(() => {
        current--;
        res.statusCode = statuses.shift() ?? 204;
        res.end();
      }, delayMs);
    });
  });
  await new Promise<void>((ready) => server.listen(0, '127.0.0.1', ready));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    received,
    maxConcurrent: () => max,
    close: () => new Promise((done) => { server.closeAllConnections(); server.close(() => done()); }),
  };
}

describe('local bus', () => {
  let dir: string;
  const logs: any[] = [];
  const logger = new JsonLogger((line) => logs.push(JSON.parse(line)), 'DEBUG');
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'bus-'));
    logs.length = 0;
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('delivers a binary-mode CloudEvent with the Pub/Sub envelope', async () => {
    const sub = await subscriber();
    const bus = new LocalBus({ maxAttempts: 3, concurrency: 2, deadLetterDir: dir, logger });
    bus.subscribe('ids', 'collect', sub.url);
    const id = await bus.publish('ids', { data: { hello: 'world' }, attributes: { batchId: 'b1' } });
    await bus.idle();
    assert.equal(sub.received.length, 1);
    const { headers, body } = sub.received[0];
    assert.equal(headers['ce-type'], 'google.cloud.pubsub.topic.v1.messagePublished');
    assert.equal(headers['ce-specversion'], '1.0');
    assert.equal(headers['ce-id'], id);
    assert.equal(headers['ce-source'], '//pubsub.googleapis.com/projects/local/topics/ids');
    assert.deepEqual(JSON.parse(Buffer.from(body.message.data, 'base64').toString()), { hello: 'world' });
    assert.deepEqual(body.message.attributes, { batchId: 'b1' });
    assert.equal(body.message.messageId, id);
    assert.equal(body.subscription, 'projects/local/subscriptions/collect');
    await sub.close();
  });

  const retryCases = [
    { name: 'retries a 500 and then succeeds', statuses: [500, 503], maxAttempts: 5, deliveries: 3, deadLetters: 0 },
    { name: 'retries a 429 and a 404 like any non-2xx', statuses: [429, 404], maxAttempts: 5, deliveries: 3, deadLetters: 0 },
    { name: 'dead-letters after maxAttempts failed deliveries', statuses: [500, 500, 500, 500], maxAttempts: 3, deliveries: 3, deadLetters: 1 },
  ];
  for (const c of retryCases) {
    it(c.name, async () => {
      const sub = await subscriber([...c.statuses]);
      const bus = new LocalBus({ maxAttempts: c.maxAttempts, concurrency: 2, initialBackoffMs: 5, maxBackoffMs: 20, deadLetterDir: dir, logger });
      bus.subscribe('ids', 'collect', sub.url);
      await bus.publish('ids', { data: { n: 1 } });
      await bus.idle();
      assert.equal(sub.received.length, c.deliveries);
      assert.equal(bus.deadLettered().length, c.deadLetters);
      if (c.deadLetters) {
        const letter = JSON.parse(readFileSync(bus.deadLettered()[0].file, 'utf8'));
        assert.equal(letter.attempts, c.maxAttempts);
        assert.equal(letter.lastStatus, '500');
        assert.ok(logs.some((l) => l.severity === 'ERROR' && /dead-lettered after 3 deliveries/.test(l.message) && l.messageId));
      }
      await sub.close();
    });
  }

  it('keeps several deliveries in flight, never more than its concurrency', async () => {
    const sub = await subscriber([], 30);
    const bus = new LocalBus({ maxAttempts: 1, concurrency: 4, deadLetterDir: dir, logger });
    bus.subscribe('ids', 'collect', sub.url);
    await Promise.all(Array.from({ length: 20 }, (_, i) => bus.publish('ids', { data: { i } })));
    await bus.idle();
    assert.equal(sub.received.length, 20);
    assert.equal(sub.maxConcurrent(), 4);
    await sub.close();
  });

  it('delivers Eventarc-style events with extension attributes', async () => {
    const sub = await subscriber();
    const bus = new LocalBus({ maxAttempts: 1, concurrency: 1, deadLetterDir: dir, logger });
    bus.subscribe('jobs', 'merge', sub.url);
    bus.emitEvent({ topic: 'jobs', type: 'google.cloud.dataflow.job.v1beta3.statusChanged', source: '//dataflow.googleapis.com/projects/p/locations/r', extensions: { job: 'j1' }, data: { payload: { id: '1' } } });
    await bus.idle();
    assert.equal(sub.received[0].headers['ce-job'], 'j1');
    assert.deepEqual(sub.received[0].body, { payload: { id: '1' } });
    await sub.close();
  });

  describe('delivery faults (fault injection)', () => {
    const faultsOf = (changes: Partial<FaultPlan>) => new FaultInjector({ ...NO_FAULTS, crash: [], ...changes }, logger);
    const order = (sub: { received: Received[] }) => sub.received.map((r) => JSON.parse(Buffer.from(r.body.message.data, 'base64').toString()).n as number);

    it('duplicate: every message is delivered 2 or 3 times, each copy with the message\'s ID', async () => {
      const sub = await subscriber();
      const faults = faultsOf({ duplicate: true, seed: 5 });
      const bus = new LocalBus({ maxAttempts: 1, concurrency: 4, deadLetterDir: dir, logger, faults });
      bus.subscribe('ids', 'collect', sub.url);
      const ids = await Promise.all(Array.from({ length: 10 }, (_, n) => bus.publish('ids', { data: { n } })));
      await bus.idle();
      const perId = new Map<string, number>();
      for (const { headers, body } of sub.received) {
        assert.equal(headers['ce-id'], body.message.messageId, 'a copy keeps its message ID (a redelivery, not a new message)');
        perId.set(body.message.messageId, (perId.get(body.message.messageId) ?? 0) + 1);
      }
      assert.deepEqual([...perId.keys()].sort(), [...ids].sort());
      const counts = [...perId.values()];
      assert.ok(counts.every((n) => n === 2 || n === 3), `2 or 3 copies each: ${counts.join(',')}`);
      assert.ok(counts.includes(2) && counts.includes(3), 'both happen over ten messages');
      assert.equal(faults.fired.duplicate, 10);
      await sub.close();
    });

    it('duplicate: status events (Eventarc) are duplicated too, with one event ID', async () => {
      const sub = await subscriber();
      const bus = new LocalBus({ maxAttempts: 1, concurrency: 2, deadLetterDir: dir, logger, faults: faultsOf({ duplicate: true }) });
      bus.subscribe('jobs', 'merge', sub.url);
      const id = bus.emitEvent({ topic: 'jobs', type: 'google.cloud.dataflow.job.v1beta3.statusChanged', source: '//dataflow.googleapis.com/projects/p/locations/r', data: { payload: { id: 'j1' } } });
      await bus.idle();
      assert.ok(sub.received.length === 2 || sub.received.length === 3);
      assert.ok(sub.received.every((r) => r.headers['ce-id'] === id));
      await sub.close();
    });

    it('delay: the first delivery of a burst waits until every later one was delivered', async () => {
      const sub = await subscriber([], 5);
      const faults = faultsOf({ delay: true });
      const bus = new LocalBus({ maxAttempts: 1, concurrency: 2, deadLetterDir: dir, logger, faults });
      bus.subscribe('ids', 'collect', sub.url);
      await Promise.all([0, 1, 2, 3, 4].map((n) => bus.publish('ids', { data: { n } })));
      assert.equal(bus.isIdle(), false, 'a held delivery keeps the bus busy');
      await bus.idle();
      const received = order(sub);
      assert.equal(received.length, 5, 'nothing lost');
      assert.equal(received.at(-1), 0, `the first message is delivered last: ${received.join(',')}`);
      assert.deepEqual([...received].sort(), [0, 1, 2, 3, 4]);
      assert.equal(faults.fired.delay, 1);
      await sub.close();
    });

    it('delay: a message published alone is held, then delivered (nothing is held forever)', async () => {
      const sub = await subscriber();
      const bus = new LocalBus({ maxAttempts: 1, concurrency: 2, deadLetterDir: dir, logger, faults: faultsOf({ delay: true }) });
      bus.subscribe('ids', 'collect', sub.url);
      await bus.publish('ids', { data: { n: 9 } });
      await bus.idle();
      assert.deepEqual(order(sub), [9]);
      await sub.close();
    });

    it('reorder: the queued deliveries go out in another order, the same one for the same seed', async () => {
      const run = async (seed: number | undefined) => {
        const sub = await subscriber();
        const faults = seed === undefined ? undefined : faultsOf({ reorder: true, seed });
        const bus = new LocalBus({ maxAttempts: 1, concurrency: 1, deadLetterDir: dir, logger, faults });
        bus.subscribe('ids', 'collect', sub.url);
        await Promise.all(Array.from({ length: 12 }, (_, n) => bus.publish('ids', { data: { n } })));
        await bus.idle();
        await sub.close();
        return order(sub);
      };
      const inOrder = Array.from({ length: 12 }, (_, n) => n);
      assert.deepEqual(await run(undefined), inOrder, 'without the fault: publication order');
      const reordered = await run(11);
      assert.notDeepEqual(reordered, inOrder, 'another order');
      assert.deepEqual([...reordered].sort((a, b) => a - b), inOrder, 'every message once');
      assert.deepEqual(await run(11), reordered, 'reproducible with the seed');
    });
  });

  it('dead-letters a message whose subscriber is down', async () => {
    const bus = new LocalBus({ maxAttempts: 2, concurrency: 1, initialBackoffMs: 5, deadLetterDir: dir, logger });
    bus.subscribe('ids', 'collect', 'http://127.0.0.1:9/');
    await bus.publish('ids', { data: {} });
    await bus.idle();
    assert.equal(bus.deadLettered().length, 1);
  });
});
