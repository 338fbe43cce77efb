import { randomUUID } from 'node:crypto';
import type { Bucket } from '@google-cloud/storage';
import { ChainError, errorMessage } from '../errors';
import type { ObjectStore, StoredObject } from '../ports';

const READ_TRIES = 5;
/** Custom metadata key that marks each conditional write with its own token. */
export const WRITE_TOKEN = 'consolidation-write';

/**
 * The state bucket on Cloud Storage. Writes are conditional on the object's generation (0 for
 * "does not exist yet"), so that of two concurrent writers exactly one wins: the loser gets 412
 * Precondition Failed, which this adapter reports as `false`.
 */
export class GcsObjectStore implements ObjectStore {
  constructor(private readonly bucket: Bucket) {}

  /**
   * The object's data and generation, read so that they agree: the generation from the metadata,
   * then the data of exactly that generation (if it was replaced in between, read again).
   */
  async read(path: string): Promise<StoredObject | null> {
    for (let tryNumber = 1; tryNumber <= READ_TRIES; tryNumber++) {
      let generation: string;
      try {
        const [metadata] = await this.bucket.file(path).getMetadata();
        generation = String(metadata.generation);
      } catch (error) {
        if (codeOf(error) === 404) return null;
        throw this.failure('read the metadata of', path, error);
      }
      try {
        const [data] = await this.bucket.file(path, { generation }).download();
        return { data: data.toString('utf8'), generation };
      } catch (error) {
        if (codeOf(error) !== 404) throw this.failure('download', path, error, { generation });
        // That generation was replaced or deleted after its metadata was read: look again.
      }
    }
    throw new ChainError(`The object ${this.uri(path)} kept changing while it was read (${READ_TRIES} tries)`, { bucket: this.bucket.name, path });
  }

  /** Creates the object only if it does not exist (ifGenerationMatch: 0). */
  async create(path: string, data: string): Promise<boolean> {
    return this.save(path, data, 0);
  }

  /** Replaces the object only if its current generation is still `generation`. */
  async replace(path: string, data: string, generation: string): Promise<boolean> {
    if (!/^\d+$/.test(generation)) throw new ChainError(`Not a Cloud Storage generation: ${JSON.stringify(generation)}`, { bucket: this.bucket.name, path, generation });
    return this.save(path, data, Number(generation));
  }

  async exists(path: string): Promise<boolean> {
    try {
      const [exists] = await this.bucket.file(path).exists();
      return exists;
    } catch (error) {
      throw this.failure('check the existence of', path, error);
    }
  }

  /** Names of the objects under `prefix`, sorted (every page of the listing). */
  async list(prefix: string): Promise<string[]> {
    try {
      const [files] = await this.bucket.getFiles({ prefix, autoPaginate: true });
      return files.map((file) => file.name).sort();
    } catch (error) {
      throw this.failure('list the objects under', prefix, error);
    }
  }

  async delete(path: string): Promise<void> {
    try {
      await this.bucket.file(path).delete({ ignoreNotFound: true });
    } catch (error) {
      throw this.failure('delete', path, error);
    }
  }

  uri(path: string): string {
    return `gs://${this.bucket.name}/${path}`;
  }

  /**
   * A single-request upload with a generation precondition, marked with a token of its own. A 412
   * normally means another writer won; but the client retries a conditional upload by itself, and
   * a retry of a try that had succeeded fails its precondition too. So a 412 reads the object back:
   * if it carries this write's token, the write won.
   */
  private async save(path: string, data: string, ifGenerationMatch: number): Promise<boolean> {
    const token = randomUUID();
    try {
      await this.bucket.file(path).save(data, { preconditionOpts: { ifGenerationMatch }, resumable: false, contentType: contentTypeOf(path), metadata: { metadata: { [WRITE_TOKEN]: token } } });
      return true;
    } catch (error) {
      if (codeOf(error) === 412) return this.writtenBy(path, token, ifGenerationMatch);
      throw this.failure('write', path, error, { ifGenerationMatch });
    }
  }

  /** True when the object as it is now was written with `token` (a retried write whose first try had won). */
  private async writtenBy(path: string, token: string, ifGenerationMatch: number): Promise<boolean> {
    try {
      const [metadata] = await this.bucket.file(path).getMetadata();
      return metadata.metadata?.[WRITE_TOKEN] === token;
    } catch (error) {
      if (codeOf(error) === 404) return false;
      throw this.failure('read back after a failed precondition', path, error, { ifGenerationMatch });
    }
  }

  private failure(action: string, path: string, error: unknown, context: Record<string, unknown> = {}): ChainError {
    return new ChainError(`Could not ${action} ${this.uri(path)}: ${errorMessage(error)}`, { bucket: this.bucket.name, path, ...context }, { cause: error });
  }
}

/** The Content-Type of an object, from its name (the batch files are JSON or NDJSON). */
export function contentTypeOf(path: string): string {
  if (path.endsWith('.ndjson')) return 'application/x-ndjson';
  if (path.endsWith('.json')) return 'application/json';
  return 'text/plain; charset=utf-8';
}

function codeOf(error: unknown): unknown {
  return (error as { code?: unknown } | null)?.code;
}
