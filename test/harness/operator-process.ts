// Runs the real operator (`operator/src/main.ts`) as a child process, the way
// it runs in production, so tests can also SIGKILL it.
import { spawn, type ChildProcess } from 'node:child_process';
import { repoRoot } from './repo-root.js';

/** The V8 flags of the operator's container (charts/tenantry/templates/operator-deployment.yaml). */
export const operatorNodeFlags = ['--max-semi-space-size=1', '--max-old-space-size=128'];

export interface OperatorProcess {
  readonly child: ChildProcess;
  /** The health port (/healthz, /readyz). */
  readonly port: number;
  /** The metrics port (/metrics). */
  readonly metricsPort: number;
  readonly logs: string[];
  metrics(): Promise<string>;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Starts the operator from its TypeScript source through tsx, or with `compiled`
 * from the bundle `npm run build` writes, with the flags the chart runs it with.
 * `root` runs another checkout's operator, e.g. a previous release's from git history.
 */
export async function startOperator(
  env: Record<string, string>,
  timeoutMs = 30_000,
  options: { compiled?: boolean; root?: string } = {},
): Promise<OperatorProcess> {
  const args = options.compiled
    ? [...operatorNodeFlags, 'dist/operator.mjs']
    : ['--import', 'tsx', 'operator/src/main.ts'];
  const child = spawn(process.execPath, args, {
    cwd: options.root ?? repoRoot,
    env: {
      ...process.env,
      HTTP_HOST: '127.0.0.1',
      HTTP_PORT: '0',
      METRICS_HOST: '127.0.0.1',
      METRICS_PORT: '0',
      LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  const exited = new Promise<number | null>((ok) => child.once('exit', (code) => ok(code)));
  const { port, metricsPort } = await new Promise<{ port: number; metricsPort: number }>((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`operator did not start:\n${logs.join('\n')}`)), timeoutMs);
    const onLine = (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n').filter(Boolean)) {
        logs.push(line);
        if (logs.length > 5000) logs.shift();
        const port = /"port":(\d+)/.exec(line);
        if (port && line.includes('"msg":"operator started"')) {
          clearTimeout(timer);
          // Releases before METRICS_PORT served /metrics on the health port.
          const metrics = /"metricsPort":(\d+)/.exec(line) ?? port;
          ok({ port: Number(port[1]), metricsPort: Number(metrics[1]) });
        }
      }
    };
    child.stdout.on('data', onLine);
    child.stderr.on('data', onLine);
    void exited.then((code) => {
      clearTimeout(timer);
      fail(new Error(`operator exited with ${code}:\n${logs.join('\n')}`));
    });
  });
  // The operator dies with the test process; the hook goes once the operator has exited.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  void exited.then(() => process.off('exit', killOnExit));
  return {
    child,
    port,
    metricsPort,
    logs,
    metrics: async () => (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text(),
    kill: async (signal = 'SIGTERM') => {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      return exited;
    },
  };
}
