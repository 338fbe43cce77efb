import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Storage } from '@google-cloud/storage';
import { GoogleAuth } from 'google-auth-library';
import type { Config } from '../config';
import type { ReplayOutcome, Replayer } from '../ports';
import { ChainError, errorMessage } from '../errors';
import { GcsObjectStore } from './gcs-object-store';

/**
 * What the operator's tool needs on Google Cloud beyond the functions' composition
 * (`composeGoogleCloud`): the state bucket on its own (for `status`), and an authenticated call
 * to the deployed publishOps with the caller's identity (for `replay`).
 */

/** The state bucket through the same adapter as the functions; constructing it makes no call. */
export function stateBucketStore(config: Config, storage = new Storage({ projectId: config.project })): GcsObjectStore {
  return new GcsObjectStore(storage.bucket(config.stateBucket));
}

/** Where the caller's identity token comes from: Application Default Credentials, else the Google Cloud CLI. */
export interface IdentityTokens {
  auth: Pick<GoogleAuth, 'getIdTokenClient'>;
  /** Runs `gcloud auth print-identity-token` (user accounts cannot mint a token for an audience through ADC). */
  gcloudToken: () => Promise<string>;
}

export const defaultIdentityTokens = (): IdentityTokens => ({
  auth: new GoogleAuth(),
  gcloudToken: async () => (await promisify(execFile)('gcloud', ['auth', 'print-identity-token'], { timeout: 30_000 })).stdout.trim(),
});

/** An identity token for `audience`, with where it came from. */
export async function identityToken(audience: string, tokens: IdentityTokens): Promise<{ token: string; source: 'application-default' | 'gcloud' }> {
  let adcProblem: string;
  try {
    const client = await tokens.auth.getIdTokenClient(audience);
    const token = await client.idTokenProvider.fetchIdToken(audience);
    if (token) return { token, source: 'application-default' };
    adcProblem = 'no token returned';
  } catch (error) {
    adcProblem = errorMessage(error);
  }
  try {
    const token = await tokens.gcloudToken();
    if (token) return { token, source: 'gcloud' };
    throw new Error('it printed nothing');
  } catch (error) {
    throw new ChainError(
      `No identity token to call publishOps: Application Default Credentials could not mint one (${adcProblem}), nor could \`gcloud auth print-identity-token\` (${errorMessage(error)}). ` +
        'Log in with `gcloud auth login` (a user) or set GOOGLE_APPLICATION_CREDENTIALS to a service account key, with roles/run.invoker on publishOps.',
      { audience },
    );
  }
}

export interface PublishOpsAnswer {
  status: number;
  body: Record<string, unknown>;
}

/** POSTs `body` to publishOps with the caller's identity token, as Cloud Scheduler does with its own. */
export async function callPublishOps(url: string, body: unknown, tokens: IdentityTokens, fetchImpl: typeof fetch = fetch): Promise<PublishOpsAnswer> {
  const { token } = await identityToken(url, tokens);
  let response: Response;
  try {
    response = await fetchImpl(url, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  } catch (error) {
    throw new ChainError(`Could not reach publishOps at ${url}: ${errorMessage(error)}`, { url }, { cause: error });
  }
  const text = await response.text();
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    parsed = { error: text.slice(0, 500) || response.statusText };
  }
  return { status: response.status, body: parsed };
}

/** The audit's repair from the operator's tool: the same `{"ids": [...]}` replay, with the caller's identity. */
export function operatorReplayer(url: string, tokens: IdentityTokens, fetchImpl: typeof fetch = fetch): Replayer {
  return {
    async replayIds(ids: string[]): Promise<ReplayOutcome> {
      const answer = await callPublishOps(url, { ids }, tokens, fetchImpl);
      if (answer.status !== 200) return { ok: false, merged: false, detail: `publishOps answered ${answer.status}: ${String(answer.body.error ?? JSON.stringify(answer.body))}` };
      const batchId = typeof answer.body.batchId === 'string' ? answer.body.batchId : undefined;
      return { ok: true, batchId, merged: false, detail: `publishOps sealed replay batch ${batchId ?? '-'} (${String(answer.body.idCount ?? ids.length)} IDs); the chain merges it` };
    },
  };
}
