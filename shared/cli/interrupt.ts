import { EXIT } from './exit';

/**
 * Ctrl-C (SIGINT) and SIGTERM: the first asks the command to stop at its next safe point (after
 * the current cycle) and says so; a second one exits at once.
 */
export class Interrupt {
  stopping = false;
  private wake: (() => void) | undefined;
  private readonly handler = () => {
    if (this.stopping) {
      this.say('Stopped at once (second Ctrl-C); an interrupted cycle is repaired by the next run.');
      process.exit(EXIT.interrupted);
    }
    this.stopping = true;
    this.say(this.message);
    this.wake?.();
  };

  constructor(
    private readonly message: string,
    private readonly say: (line: string) => void,
  ) {
    process.on('SIGINT', this.handler);
    process.on('SIGTERM', this.handler);
  }

  /** Waits until `deadline` (epoch ms) or the first interruption, whichever comes first. */
  async sleepUntil(deadline: number): Promise<void> {
    if (this.stopping) return;
    await new Promise<void>((done) => {
      const timer = setTimeout(done, Math.max(0, deadline - Date.now()));
      this.wake = () => {
        clearTimeout(timer);
        done();
      };
    });
    this.wake = undefined;
  }

  dispose(): void {
    process.off('SIGINT', this.handler);
    process.off('SIGTERM', this.handler);
  }
}
