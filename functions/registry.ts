import * as functions from '@google-cloud/functions-framework';
import type { ChainHandlers } from './handlers';

/** The names the functions are deployed under (Terraform's entry points). */
export const FUNCTION_NAMES = ['publishOps', 'collectIds', 'launchDataflow', 'mergeOnComplete'] as const;
export type FunctionName = (typeof FUNCTION_NAMES)[number];

/** The audit's entry point (deployed by terraform/audit.tf), beside the chain's four. */
export const AUDIT_FUNCTION_NAME = 'auditConsolidation';

/** Registers the four handlers with the Functions Framework under their entry-point names. */
export function registerFunctions(handlers: ChainHandlers): void {
  functions.http('publishOps', handlers.publishOps);
  functions.cloudEvent('collectIds', handlers.collectIds);
  functions.cloudEvent('launchDataflow', handlers.launchDataflow);
  functions.cloudEvent('mergeOnComplete', handlers.mergeOnComplete);
}
