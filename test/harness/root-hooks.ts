import { stopSharedControlPlane } from './shared-cluster.js';
import { startStallWatchdog } from './stall-watchdog.js';

// Longer than any hook or test may take (their mocha timeouts end them first), so it fires only on a hang.
const watchdog = startStallWatchdog({ loopStallMs: 120_000, testStallMs: 15 * 60_000 });

export const mochaHooks = {
  beforeEach(this: Mocha.Context) {
    watchdog.testEvent(this.currentTest?.fullTitle() ?? '?');
  },
  afterEach(this: Mocha.Context) {
    watchdog.testEvent(`(after) ${this.currentTest?.fullTitle() ?? '?'}`);
  },
  async afterAll(this: Mocha.Context) {
    this.timeout(30_000);
    await stopSharedControlPlane();
  },
};
