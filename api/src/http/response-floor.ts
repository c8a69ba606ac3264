// Answers that must not tell whether an account exists (password reset,
// self-registration) do their work, log rather than surface its failure, and
// take no less than a fixed floor, so neither the outcome nor the timing differs.

export interface FloorLog {
  warn(obj: object, msg: string): void;
}

/** Runs `work`, never throws, and resolves no sooner than `floorMs` after it began. */
export async function withResponseFloor(
  what: string,
  tenant: string,
  floorMs: number,
  log: FloorLog,
  work: () => Promise<void>,
): Promise<void> {
  const started = performance.now();
  try {
    await work();
  } catch (error) {
    log.warn(
      { tenant, err: error instanceof Error ? error.message : String(error) },
      `${what} could not be completed`,
    );
  }
  const elapsed = performance.now() - started;
  if (elapsed > floorMs) {
    log.warn(
      { tenant, elapsedMs: Math.round(elapsed), floorMs },
      `${what} took longer than its response floor; timing may tell whether the account exists`,
    );
    return;
  }
  await new Promise((ok) => setTimeout(ok, floorMs - elapsed));
}
