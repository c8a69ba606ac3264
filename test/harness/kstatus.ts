// The kstatus verdict on an object, computed by sigs.k8s.io/cli-utils itself:
// tools/kstatus, built by `make tools`, reads the object on stdin and prints
// {status, message, conditions}. Flux, kpt and Helm's waiter judge resources
// by the same library.
import { execFile } from 'node:child_process';
import { toolPath } from './control-plane.js';

export interface KstatusVerdict {
  status: 'InProgress' | 'Failed' | 'Current' | 'Terminating' | 'NotFound' | 'Unknown';
  message: string;
  conditions: { type: string; status: string; reason?: string; message?: string }[];
}

/** Runs the kstatus tool on `object` (a parsed object or its JSON/YAML text). */
export function kstatus(object: unknown): Promise<KstatusVerdict> {
  const input = typeof object === 'string' ? object : JSON.stringify(object);
  return new Promise((resolve, reject) => {
    const child = execFile(toolPath('kstatus'), [], { timeout: 10_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`kstatus failed: ${stderr.trim() || error.message}`));
      else resolve(JSON.parse(stdout) as KstatusVerdict);
    });
    child.stdin?.end(input);
  });
}
