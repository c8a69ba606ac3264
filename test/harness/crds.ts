import { join, resolve } from 'node:path';
import type { ControlPlane } from './control-plane.js';

export const crdDir = resolve(import.meta.dirname, '../../crds');
export const samplesDir = join(crdDir, 'samples');

/** Applies the Tenant CRD and waits until the API server serves it. */
export async function installTenantCrd(cp: ControlPlane): Promise<void> {
  await cp.kubectl([
    'apply',
    '--server-side',
    '--force-conflicts',
    '-f',
    join(crdDir, 'tenants.tenantry.io.yaml'),
  ]);
  await cp.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/tenants.tenantry.io']);
}

/** Runs kubectl and returns its error message, or '' when it succeeded. */
export function kubectlError(cp: ControlPlane, args: string[], input?: string): Promise<string> {
  return cp.kubectl(args, input).then(
    () => '',
    (error: Error) => error.message,
  );
}
