import type { GoogleAuth } from 'google-auth-library';
import { errorMessage } from '../errors';
import type { Logger, ReplayOutcome, Replayer } from '../ports';

export interface PublishOpsReplayerOptions {
  auth: Pick<GoogleAuth, 'getIdTokenClient'>;
  /** publishOps' URL: the audience of the ID token too. */
  url: string;
  logger: Logger;
  /** Tries when publishOps answers 409 (a run holds the lease), spaced by `retryDelayMs`. */
  attempts?: number;
  retryDelayMs?: number;
  sleep?: (ms: number) => Promise<void>;
}

interface HttpFailure {
  response?: { status?: number; data?: unknown };
}

/**
 * The audit's repair on Google Cloud: POSTs `{"ids": [...]}` to publishOps with an ID token of
 * the function's identity, the replay path an operator uses. The batch is sealed when publishOps
 * answers; the chain merges it on its own, and the next audit checks the result.
 */
export class PublishOpsReplayer implements Replayer {
  constructor(private readonly options: PublishOpsReplayerOptions) {}

  async replayIds(ids: string[]): Promise<ReplayOutcome> {
    const { url, logger } = this.options;
    const attempts = this.options.attempts ?? 3;
    const sleep = this.options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
    const client = await this.options.auth.getIdTokenClient(url);
    for (let attempt = 1; ; attempt++) {
      try {
        const response = await client.request<{ status?: string; batchId?: string; idCount?: number }>({
          url,
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          data: { ids },
          responseType: 'json',
        });
        const body = response.data ?? {};
        return { ok: true, batchId: body.batchId, merged: false, detail: `publishOps sealed replay batch ${body.batchId ?? '-'} (${body.idCount ?? ids.length} IDs); the chain merges it` };
      } catch (error) {
        const status = (error as HttpFailure).response?.status;
        const said = (error as HttpFailure).response?.data;
        const reason = `publishOps answered ${status ?? 'nothing'}: ${typeof said === 'object' && said && 'error' in said ? String((said as { error: unknown }).error) : errorMessage(error)}`;
        if (status === 409 && attempt < attempts) {
          logger.info('publishOps holds the lease; the audit retries its replay', { attempt, reason });
          await sleep(this.options.retryDelayMs ?? 30_000);
          continue;
        }
        return { ok: false, merged: false, detail: reason };
      }
    }
  }
}
