import type { Config } from './config';
import type { Manifest } from './batch';
import type { ReadBounds } from './sql/statements';

/**
 * The bounds of a batch's reads: its window of changes, and readAfter = the window's start minus
 * OPERATION_MAX_AGE. Every statement and the pipeline of the batch read the sources within them,
 * so a cycle costs its window plus OPERATION_MAX_AGE of source rows, whatever the history.
 */
export function readBounds(window: { from: string; to: string }, config: Pick<Config, 'operationMaxAgeMs'>): ReadBounds {
  return { from: window.from, to: window.to, readAfter: new Date(Date.parse(window.from) - config.operationMaxAgeMs).toISOString() };
}

/** A batch's bounds as its manifest recorded them (older manifests: from the configuration). */
export function manifestBounds(manifest: Manifest, config: Pick<Config, 'operationMaxAgeMs'>): ReadBounds & { asOf: string } {
  const bounds = readBounds(manifest.window, config);
  return { ...bounds, readAfter: manifest.readAfter ?? bounds.readAfter, asOf: manifest.asOf ?? manifest.window.to };
}
