/**
 * Mocha root hooks (registered in .mocharc.json). Kept free of imports so that every test run
 * loads it cheaply: the GoogleSQL service registers its stop here when its first user starts it.
 */
const atEnd: (() => Promise<void>)[] = [];

/** Runs `stop` once after the whole test run. */
export function atEndOfRun(stop: () => Promise<void>): void {
  atEnd.push(stop);
}

export const mochaHooks = {
  async afterAll(): Promise<void> {
    for (const stop of atEnd.splice(0)) await stop();
  },
};
