import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { ConflictError } from './errors';
import type { Clock, Logger, ObjectStore } from './ports';

/**
 * The extraction lease: one object in the state bucket that a publishOps run (or an operator's
 * reconcile) holds while it works, so that two runs never extract at the same time. Taking it is
 * a create-only or generation-matched write; a holder that dies leaves it to expire.
 */

const leaseSchema = z.object({
  holder: z.string(),
  purpose: z.string(),
  acquiredAt: z.string(),
  expiresAt: z.string(),
  releasedAt: z.string().optional(),
});
export type LeaseRecord = z.infer<typeof leaseSchema>;

export interface HeldLease {
  record: LeaseRecord;
  generation: string;
}

export interface LeaseOptions {
  store: ObjectStore;
  clock: Clock;
  object: string;
  durationMs: number;
}

/** The lease of a deployment: its object and duration come from the configuration. */
export function leaseOptionsOf(deps: { store: ObjectStore; clock: Clock; config: { leaseObject: string; leaseMs: number } }): LeaseOptions {
  return { store: deps.store, clock: deps.clock, object: deps.config.leaseObject, durationMs: deps.config.leaseMs };
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
  return record.releasedAt === undefined && Date.parse(record.expiresAt) > now.getTime();
}

/** Takes the lease or throws a ConflictError naming its holder and when it expires. */
export async function acquireLease(options: LeaseOptions, purpose: string): Promise<HeldLease> {
  const now = options.clock.now();
  const record: LeaseRecord = {
    holder: `${purpose}-${now.toISOString()}-${randomBytes(3).toString('hex')}`,
    purpose,
    acquiredAt: now.toISOString(),
    expiresAt: new Date(now.getTime() + options.durationMs).toISOString(),
  };
  const text = JSON.stringify(record, null, 2);
  const current = await options.store.read(options.object);
  let taken: boolean;
  if (!current) {
    taken = await options.store.create(options.object, text);
  } else {
    const existing = parseLease(current.data);
    if (existing && leaseActive(existing, now)) throw busy(existing);
    taken = await options.store.replace(options.object, text, current.generation);
  }
  if (!taken) {
    const winner = await readLease(options);
    throw winner ? busy(winner) : new ConflictError('Another run took the lease at the same instant', { leaseObject: options.object });
  }
  const held = await options.store.read(options.object);
  return { record, generation: held?.generation ?? '' };
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
  return new ConflictError(`Another run holds the lease: ${holder.holder} (${holder.purpose}), taken at ${holder.acquiredAt}, expires at ${holder.expiresAt}`, {
    leaseHolder: holder.holder,
    leaseExpiresAt: holder.expiresAt,
  });
}
