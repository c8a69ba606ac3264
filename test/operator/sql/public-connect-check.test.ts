import { Writable } from 'node:stream';
import { expect } from 'chai';
import { pino } from 'pino';
import { PublicConnectCheck } from '../../../operator/src/controller/server-privileges.js';
import { createOperatorMetrics } from '../../../operator/src/runtime/metrics.js';
import type { PublicConnectReport } from '../../../operator/src/sql/server-privileges.js';

describe('the operator check of databases open to PUBLIC', () => {
  it('names what it could not fix in a warning and the gauge, once per change, and clears both on stop', async () => {
    const lines: { level: number; msg: string; databases?: string[] }[] = [];
    const log = pino(
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          lines.push(JSON.parse(chunk.toString()) as (typeof lines)[number]);
          done();
        },
      }),
    );
    const reports: PublicConnectReport[] = [
      { revoked: ['tenantry_scratch'], open: ['postgres', 'template1'] },
      { revoked: [], open: ['postgres', 'template1'] },
      { revoked: [], open: [] },
    ];
    const metrics = createOperatorMetrics({ defaultMetrics: false });
    const check = new PublicConnectCheck({
      db: { closePublicConnect: () => Promise.resolve(reports.shift()!) },
      gauge: metrics.databasesOpenToPublic,
      log,
      intervalMs: 60_000,
    });
    const gauge = async () =>
      (await metrics.databasesOpenToPublic.get()).values.map((v) => `${v.labels.database}=${v.value}`).sort();

    await check.checkOnce();
    expect(await gauge()).to.deep.equal(['postgres=1', 'template1=1']);
    await check.checkOnce();
    const warnings = lines.filter((line) => line.level === 40);
    expect(warnings).to.have.length(1);
    expect(warnings[0]?.databases).to.deep.equal(['postgres', 'template1']);
    expect(lines.find((line) => line.level === 30)?.databases).to.deep.equal(['tenantry_scratch']);

    await check.checkOnce();
    expect(await gauge()).to.deep.equal([]);
    metrics.databasesOpenToPublic.set({ database: 'stale' }, 1);
    await check.stop();
    expect(await gauge()).to.deep.equal([]);
  });
});
