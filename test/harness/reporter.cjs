// Mocha's spec reporter, plus the closing line `N passed, N failed` that CI reads.
'use strict';
// eslint-disable-next-line @typescript-eslint/no-require-imports -- mocha loads reporters with require()
const Mocha = require('mocha');

class TenantryReporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    runner.once('end', () => {
      const { passes, failures, pending } = runner.stats;
      console.log(`${passes} passed, ${failures} failed${pending ? `, ${pending} skipped` : ''}`);
    });
  }
}

module.exports = TenantryReporter;
