// One control plane shared by the integration suites of a test run, started on
// first use and stopped by the root afterAll hook.
import { startControlPlane, type ControlPlane } from './control-plane.js';

let shared: Promise<ControlPlane> | undefined;

export function sharedControlPlane(): Promise<ControlPlane> {
  shared ??= startControlPlane();
  return shared;
}

export async function stopSharedControlPlane(): Promise<void> {
  if (!shared) return;
  const pending = shared;
  shared = undefined;
  await (await pending.catch(() => undefined))?.stop();
}
