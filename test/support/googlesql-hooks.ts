import { stopGoogleSql } from './googlesql';

/** Mocha root hooks (.mocharc.json): the GoogleSQL service, started by its first user, stops after the run. */
export const mochaHooks = {
  async afterAll(): Promise<void> {
    await stopGoogleSql();
  },
};
