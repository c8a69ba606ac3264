import { stopSharedControlPlane } from './shared-cluster.js';

export const mochaHooks = {
  async afterAll(this: Mocha.Context) {
    this.timeout(30_000);
    await stopSharedControlPlane();
  },
};
