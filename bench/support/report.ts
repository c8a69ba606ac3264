// What every benchmark shares: its integer settings, JSON lines on stdout, progress on stderr.

const startedAt = performance.now();

/** A progress line on stderr, stamped with the seconds since the benchmark started. */
export function progress(message: string): void {
  const seconds = ((performance.now() - startedAt) / 1000).toFixed(1).padStart(7);
  process.stderr.write(`[bench ${seconds}s] ${message}\n`);
}

/** One measurement as a JSON line on stdout. */
export function emit(
  bench: string,
  metric: string,
  value: number,
  unit: string,
  baseline: number | null,
): void {
  const round = (n: number) => Number(n.toFixed(3));
  const line = {
    bench,
    metric,
    value: round(value),
    unit,
    baseline: baseline === null ? null : round(baseline),
  };
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

/** Nearest-rank percentile. */
export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

/** An integer setting from the environment, with a fallback and bounds; a bad value names the variable. */
export function intSetting(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  const value = raw === undefined || raw === '' ? fallback : Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`${name} must be an integer from ${min} to ${max} (got ${raw})`);
  }
  return value;
}
