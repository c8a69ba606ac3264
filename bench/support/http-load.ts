// A small HTTP load generator for the benchmarks: a closed loop (fixed number
// of requests in flight, as fast as the server answers) for throughput, and an
// open loop (requests started on a fixed schedule, whether or not earlier ones
// finished) for latency at a given rate, so a slow server cannot hide its
// queueing delay by slowing the client down.
import http from 'node:http';

export interface LoadRequest {
  path: string;
  headers?: Record<string, string>;
}

export interface LoadResult {
  requests: number;
  /** Answers that were not the expected status, and transport errors. */
  failures: number;
  seconds: number;
  /** Per-request latency in ms, in completion order. */
  latenciesMs: number[];
  firstFailure?: string;
}

export function loadClient(baseUrl: string, maxSockets = 128) {
  const url = new URL(baseUrl);
  const agent = new http.Agent({ keepAlive: true, maxSockets });

  // Latency counts from `started`: in the open loop that is when the request was due, so a
  // generator that falls behind still charges the delay to the server (no coordinated omission).
  const send = (request: LoadRequest, expectStatus: number, started = performance.now()) =>
    new Promise<{ ok: boolean; ms: number; detail?: string }>((done) => {
      const req = http.request(
        {
          host: url.hostname,
          port: url.port,
          path: request.path,
          method: 'GET',
          agent,
          headers: request.headers,
          timeout: 10_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const ok = res.statusCode === expectStatus;
            done({
              ok,
              ms: performance.now() - started,
              ...(ok
                ? {}
                : { detail: `${res.statusCode}: ${Buffer.concat(chunks).toString().slice(0, 300)}` }),
            });
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error('timed out after 10 s')));
      req.on('error', (error) => done({ ok: false, ms: performance.now() - started, detail: error.message }));
      req.end();
    });

  const tally = (outcomes: { ok: boolean; ms: number; detail?: string }[], seconds: number): LoadResult => {
    const failed = outcomes.filter((o) => !o.ok);
    return {
      requests: outcomes.length,
      failures: failed.length,
      seconds,
      latenciesMs: outcomes.map((o) => o.ms),
      ...(failed[0]?.detail ? { firstFailure: failed[0].detail } : {}),
    };
  };

  return {
    /** `concurrency` requests in flight for `durationMs`. */
    async closedLoop(
      next: (i: number) => LoadRequest,
      options: { concurrency: number; durationMs: number; expectStatus?: number },
    ): Promise<LoadResult> {
      const outcomes: { ok: boolean; ms: number; detail?: string }[] = [];
      const started = performance.now();
      const deadline = started + options.durationMs;
      let i = 0;
      const lane = async () => {
        while (performance.now() < deadline)
          outcomes.push(await send(next(i++), options.expectStatus ?? 200));
      };
      await Promise.all(Array.from({ length: options.concurrency }, lane));
      return tally(outcomes, (performance.now() - started) / 1000);
    },

    /** Starts `ratePerSecond` requests a second for `durationMs`, each on its schedule. */
    async openLoop(
      next: (i: number) => LoadRequest,
      options: { ratePerSecond: number; durationMs: number; expectStatus?: number },
    ): Promise<LoadResult> {
      const total = Math.round((options.ratePerSecond * options.durationMs) / 1000);
      const interval = 1000 / options.ratePerSecond;
      const started = performance.now();
      const pending: Promise<{ ok: boolean; ms: number; detail?: string }>[] = [];
      for (let i = 0; i < total; i++) {
        const due = started + i * interval;
        const wait = due - performance.now();
        if (wait > 1) await new Promise((ok) => setTimeout(ok, wait));
        pending.push(send(next(i), options.expectStatus ?? 200, due));
      }
      const outcomes = await Promise.all(pending);
      return tally(outcomes, (performance.now() - started) / 1000);
    },

    close(): void {
      agent.destroy();
    },
  };
}
