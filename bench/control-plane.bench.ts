// Start-up time of the private control plane used by tests and `make dev`:
// the median of 5 full starts (etcd, apiserver, controller-manager, scheduler,
// KWOK with a fake node), against a baseline of 5 starts without KWOK.
import { startControlPlane } from '../test/harness/control-plane.js';

const rounds = Number(process.env.BENCH_ROUNDS ?? 5);

async function medianStartMs(kwok: boolean): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const started = performance.now();
    const cp = await startControlPlane({ kwok });
    times.push(performance.now() - started);
    await cp.stop();
    process.stderr.write(
      `control plane (kwok=${kwok}) start ${i + 1}/${rounds}: ${times.at(-1)!.toFixed(0)} ms\n`,
    );
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

const full = await medianStartMs(true);
const baseline = await medianStartMs(false);
console.log(
  JSON.stringify({
    bench: 'control-plane',
    metric: 'startup_median_ms',
    value: Math.round(full),
    unit: 'ms',
    baseline: Math.round(baseline),
  }),
);
