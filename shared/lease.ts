import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { z } from 'zod';
import { ConflictError } from './errors';
import type { Clock, Logger, ObjectStore } from './ports';

/**
 * The extraction lease: one object in the state bucket that a publishOps run (or an operator's
 * reconcile) holds while it works, so that two runs never extract at the same time. Taking it is
 * a create-only or generation-matched write. A holder that dies leaves it to expire, except on the
 * local stack, where a holder on this host whose process is gone is taken over at once.
 * Expiries are wall-clock instants: a simulated clock (`consolidate run --now`) never stamps them.
 */

const leaseSchema = z.object({
  holder: z.string(),
  purpose: z.string(),
  acquiredAt: z.string(),
  expiresAt: z.string(),
  releasedAt: z.string().optional(),
  host: z.string().optional(),
  pid: z.number().int().optional(),
});
export type LeaseRecord = z.infer<typeof leaseSchema>;

export interface HeldLease {
  record: LeaseRecord;
  generation: string;
  /** The lease of a dead local holder that this one replaced before it expired. */
  tookOverFrom?: LeaseRecord;
}

export interface LeaseOptions {
  store: ObjectStore;
  clock: Clock;
  object: string;
  durationMs: number;
  /** True where holders are processes of this host (the local stack): a dead one is taken over at once. */
  localHolders?: boolean;
  /** Says when a dead holder's lease is taken over. */
  logger?: Logger;
}

/**
 * The lease of a deployment: its object and duration come from the configuration; its clock is
 * the wall clock the composition root gives (`leaseClock`), else the chain's clock.
 */
export function leaseOptionsOf(deps: { store: ObjectStore; clock: Clock; leaseClock?: Clock; logger?: Logger; config: { leaseObject: string; leaseMs: number; backend?: string } }): LeaseOptions {
  const { store, config, logger } = deps;
  return { store, clock: deps.leaseClock ?? deps.clock, object: config.leaseObject, durationMs: config.leaseMs, localHolders: config.backend === 'local', logger };
}

/** The process that would hold a lease taken now. */
export function currentHolder(): { host: string; pid: number } {
  return { host: hostname(), pid: process.pid };
}

/** True when `pid` names no running process on this host (signal 0 probes without signalling). */
export function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

export type LeaseStanding = 'free' | 'held' | 'expired' | 'released' | 'holder-gone';

/** Where a lease stands at `now` (wall clock); `holder-gone` only for a local holder whose process is gone. */
export function leaseStanding(record: LeaseRecord | undefined, now: Date, localHolders = false): LeaseStanding {
  if (!record) return 'free';
  if (record.releasedAt !== undefined) return 'released';
  if (Date.parse(record.expiresAt) <= now.getTime()) return 'expired';
  if (localHolders && record.host === hostname() && record.pid !== undefined && processGone(record.pid)) return 'holder-gone';
  return 'held';
}

/** Who holds it, as an operator reads it: the holder, its process and host when known. */
export function describeHolder(record: LeaseRecord): string {
  return `${record.holder} (${record.purpose}${record.pid !== undefined ? `, process ${record.pid} on ${record.host ?? 'an unknown host'}` : ''})`;
}

/** The lease as stored, or undefined when there is none or it cannot be read as a lease. */
export async function readLease(options: Pick<LeaseOptions, 'store' | 'object'>): Promise<(LeaseRecord & { generation: string }) | undefined> {
  const stored = await options.store.read(options.object);
  const record = stored ? parseLease(stored.data) : undefined;
  return stored && record ? { ...record, generation: stored.generation } : undefined;
}

function parseLease(data: string): LeaseRecord | undefined {
  try {
    return leaseSchema.parse(JSON.parse(data));
  } catch {
    return undefined;
  }
}

/** True while the lease binds others: taken, not released, and not expired at `now`. */
export function leaseActive(record: LeaseRecord, now: Date): boolean {
  return leaseStanding(record, now) === 'held';
}

/** Takes the lease or throws a ConflictError naming its holder and when it expires. */
export async function acquireLease(options: LeaseOptions, purpose: string): Promise<HeldLease> {
  const now = options.clock.now();
  const record: LeaseRecord = {
    holder: `${purpose}-${now.toISOString()}-${randomBytes(3).toString('hex')}`,
    purpose,
    acquiredAt: now.toISOString(),
    expiresAt: new Date(now.getTime() + options.durationMs).toISOString(),
    ...currentHolder(),
  };
  const text = JSON.stringify(record, null, 2);
  const current = await options.store.read(options.object);
  let taken: boolean;
  let tookOverFrom: LeaseRecord | undefined;
  if (!current) {
    taken = await options.store.create(options.object, text);
  } else {
    const existing = parseLease(current.data);
    const standing = leaseStanding(existing, now, options.localHolders);
    if (existing && standing === 'held') throw busy(existing);
    if (standing === 'holder-gone') tookOverFrom = existing;
    taken = await options.store.replace(options.object, text, current.generation);
  }
  if (!taken) {
    const winner = await readLease(options);
    throw winner ? busy(winner) : new ConflictError('Another run took the lease at the same instant', { leaseObject: options.object });
  }
  if (tookOverFrom) {
    options.logger?.warn(`Took over the lease of ${describeHolder(tookOverFrom)}: that process is no longer running`, { leaseHolder: record.holder, previousHolder: tookOverFrom.holder, previousExpiresAt: tookOverFrom.expiresAt });
  }
  const held = await options.store.read(options.object);
  return { record, generation: held?.generation ?? '', tookOverFrom };
}

/** Gives the lease back (generation-matched: a lease that expired and was taken over stays with its new holder). */
export async function releaseLease(options: LeaseOptions, lease: HeldLease, logger: Logger): Promise<void> {
  const released: LeaseRecord = { ...lease.record, releasedAt: options.clock.now().toISOString() };
  const written = await options.store.replace(options.object, JSON.stringify(released, null, 2), lease.generation).catch((error: unknown) => {
    logger.warn('Could not release the lease; it expires on its own', { holder: lease.record.holder, expiresAt: lease.record.expiresAt, error });
    return true;
  });
  if (!written) logger.warn('The lease expired and was taken over before this run released it', { holder: lease.record.holder, expiresAt: lease.record.expiresAt });
}

function busy(holder: LeaseRecord): ConflictError {
  return new ConflictError(`Another run holds the lease: ${describeHolder(holder)}, taken at ${holder.acquiredAt}, expires at ${holder.expiresAt}`, {
    leaseHolder: holder.holder,
    leaseExpiresAt: holder.expiresAt,
  });
}
