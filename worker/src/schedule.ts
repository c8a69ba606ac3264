// The retry schedule: how long to wait before each attempt. Attempt 1 goes out
// at once; attempt n waits schedule[n-1]. Each distinct non-zero delay is one
// delay tier (one TTL queue), so a schedule with 10h twice has one 10h tier.

/** Standard Webhooks' schedule: immediately, 5s, 5m, 30m, 2h, 5h, 10h, 10h. */
export const standardSchedule: readonly number[] = [
  0, 5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000,
];

const units: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `250ms`, `5s`, `5m`, `2h`, `1d`, or a bare number of milliseconds. */
export function parseDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!match?.[1]) throw new RangeError(`"${text}" is not a duration such as 500ms, 5s, 5m, 2h or 1d`);
  return Math.round(Number(match[1]) * (units[match[2] ?? 'ms'] ?? 1));
}

/** Parses `0,5s,5m,...`: the first entry must be 0 and the delays must not decrease. */
export function parseSchedule(text: string): number[] {
  const delays = text.split(',').map(parseDuration);
  if (delays.length < 1 || delays[0] !== 0) throw new RangeError('a retry schedule starts with 0');
  if (delays.length > 50) throw new RangeError('a retry schedule has at most 50 attempts');
  delays.forEach((delay, i) => {
    if (i > 0 && delay <= 0) throw new RangeError('every retry after the first attempt needs a delay');
    if (i > 0 && delay < (delays[i - 1] ?? 0)) throw new RangeError('retry delays must not decrease');
  });
  return delays;
}

export class RetrySchedule {
  /** Distinct delay tiers in milliseconds, ascending. */
  readonly tiers: readonly number[];

  constructor(readonly delays: readonly number[]) {
    this.tiers = [...new Set(delays.filter((d) => d > 0))].sort((a, b) => a - b);
    if (this.tiers.length === 0) throw new RangeError('a retry schedule needs at least one retry');
  }

  /** How many attempts a delivery gets in all. */
  get maxAttempts(): number {
    return this.delays.length;
  }

  /**
   * The tier to wait in before attempt `nextAttempt`: its scheduled delay, or
   * the smallest tier at least `atLeastMs` (a Retry-After) when that is longer,
   * capped at the longest tier.
   */
  tierBefore(nextAttempt: number, atLeastMs = 0): number {
    const scheduled = this.delays[nextAttempt - 1] ?? this.tiers.at(-1) ?? 0;
    return this.tierAtLeast(Math.max(scheduled, atLeastMs));
  }

  /** The smallest tier of at least `ms`, or the longest tier. */
  tierAtLeast(ms: number): number {
    return this.tiers.find((t) => t >= ms) ?? (this.tiers.at(-1) as number);
  }
}
