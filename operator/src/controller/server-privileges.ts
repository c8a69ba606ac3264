// Checks, on the leader at start and then every resync, that no database
// outside the tenants' own still lets PUBLIC connect: otherwise every tenant's
// login role could open it (`postgres`, `template1` out of the box). Databases
// the operator owns are fixed; the rest are named in a warning and in the
// gauge `tenantry_operator_databases_open_to_public`, so a server that missed
// its preparation (docs/operator.md, "Preparing the server") shows.
import type { Gauge } from 'prom-client';
import type { Logger } from '../../../lib/logger.js';
import type { PublicConnectReport } from '../sql/server-privileges.js';

export interface PublicConnectCheckOptions {
  db: { closePublicConnect(): Promise<PublicConnectReport> };
  /** One series per database still open to PUBLIC, value 1. */
  gauge: Gauge<'database'>;
  log: Logger;
  intervalMs: number;
}

export class PublicConnectCheck {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  /** The databases reported last time, so a steady state is logged once, not every resync. */
  private reported = '';

  constructor(private readonly options: PublicConnectCheckOptions) {}

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
    // A standby does not check; it must not report a stale finding.
    this.options.gauge.reset();
    this.reported = '';
  }

  /** One check; also what `start` runs on every interval. */
  async checkOnce(): Promise<PublicConnectReport> {
    const { db, gauge, log } = this.options;
    const report = await db.closePublicConnect();
    if (report.revoked.length > 0) {
      log.info({ databases: report.revoked }, 'revoked CONNECT from PUBLIC on databases the operator owns');
    }
    gauge.reset();
    for (const database of report.open) gauge.set({ database }, 1);
    const open = report.open.join(',');
    if (open && open !== this.reported) {
      log.warn(
        { databases: report.open },
        'these databases let every role connect, tenant login roles included; revoke CONNECT from PUBLIC on them (docs/operator.md, "Preparing the server")',
      );
    }
    this.reported = open;
    return report;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.checkOnce()
        .then(
          () => undefined,
          (error: unknown) =>
            this.options.log.warn(
              { err: String(error) },
              'could not check which databases PUBLIC may connect to',
            ),
        )
        .finally(() => {
          this.running = undefined;
          this.schedule(this.options.intervalMs);
        });
    }, delayMs);
  }
}
