import type { PubSub, Topic } from '@google-cloud/pubsub';
import { ChainError, errorMessage } from '../errors';
import type { OutgoingMessage, Publisher } from '../ports';

/** Client-side batching of published messages: a batch leaves after this many messages or milliseconds. */
export interface BatchingSettings {
  maxMessages: number;
  maxMilliseconds: number;
}

/**
 * Small batches with a short delay: publishOps keeps a bounded number of chunk messages in flight
 * (each up to CHUNK_SIZE IDs), so waiting long for a full batch would only add latency.
 */
export const DEFAULT_BATCHING: BatchingSettings = { maxMessages: 100, maxMilliseconds: 10 };

/**
 * Publishes JSON messages to Pub/Sub topics. One Topic object is kept per topic name, so that
 * messages to the same topic share its client-side batches.
 */
export class PubSubPublisher implements Publisher {
  private readonly topics = new Map<string, Topic>();
  private readonly batching: BatchingSettings;

  constructor(
    private readonly pubsub: PubSub,
    options: { batching?: BatchingSettings } = {},
  ) {
    this.batching = options.batching ?? DEFAULT_BATCHING;
  }

  /** Publishes `message.data` as JSON (UTF-8) with its attributes; resolves with the message ID. */
  async publish(topicName: string, message: OutgoingMessage): Promise<string> {
    const data = Buffer.from(JSON.stringify(message.data ?? null), 'utf8');
    try {
      return await this.topic(topicName).publishMessage({ data, attributes: message.attributes ?? {} });
    } catch (error) {
      throw new ChainError(`Publishing to the topic ${topicName} failed: ${errorMessage(error)}`, { topic: topicName, attributes: message.attributes, bytes: data.length }, { cause: error });
    }
  }

  private topic(name: string): Topic {
    let topic = this.topics.get(name);
    if (!topic) {
      topic = this.pubsub.topic(name, { batching: { ...this.batching } });
      this.topics.set(name, topic);
    }
    return topic;
  }
}
