import assert from 'node:assert/strict';
import sinon from 'sinon';
import { Interrupt } from '../../shared/cli/interrupt';

describe('Ctrl-C during a command', () => {
  afterEach(() => sinon.restore());

  it('the first asks to stop at the next safe point and says so, and ends a wait; the second exits at once with 130', async () => {
    const listeners = process.listenerCount('SIGINT');
    const exit = sinon.stub(process, 'exit');
    const said: string[] = [];
    const interrupt = new Interrupt('Stopping after the current cycle.', (line) => said.push(line));
    try {
      const waiting = interrupt.sleepUntil(Date.now() + 60_000);
      process.emit('SIGINT');
      await waiting;
      assert.equal(interrupt.stopping, true);
      assert.deepEqual(said, ['Stopping after the current cycle.']);
      assert.equal(exit.callCount, 0);
      process.emit('SIGINT');
      assert.deepEqual(exit.firstCall.args, [130]);
      assert.match(said[1], /^Stopped at once \(second Ctrl-C\)/);
    } finally {
      interrupt.dispose();
    }
    assert.equal(process.listenerCount('SIGINT'), listeners, 'nothing left listening once disposed');
  });
});
