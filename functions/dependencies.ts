import type { Config } from '../shared/config';
import type { Clock, JobLauncher, Logger, ObjectStore, Publisher, Warehouse } from '../shared/ports';

/** What every function is built from; the composition root fills it with Google Cloud or local adapters. */
export interface ChainDependencies {
  config: Config;
  warehouse: Warehouse;
  store: ObjectStore;
  publisher: Publisher;
  launcher: JobLauncher;
  clock: Clock;
  /** The lease's clock when `clock` is simulated (the local stack's `--now`): leases expire in real time. */
  leaseClock?: Clock;
  logger: Logger;
  /** Suffix of new batch IDs; random unless a test fixes it. */
  batchSuffix?: () => string;
}
