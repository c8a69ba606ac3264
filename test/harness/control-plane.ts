// A private Kubernetes control plane for tests and local development: etcd,
// kube-apiserver (own PKI and admin kubeconfig), kube-controller-manager,
// kube-scheduler and, when it was built, KWOK with one fake node. Everything
// listens on free loopback ports and lives in one temporary directory, so
// several instances can run side by side. Processes and the directory are
// removed on stop(), and also when the host process exits or is interrupted.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync, closeSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from './repo-root.js';

const run = promisify(execFile);

export const kubernetesVersion = readFileSync(join(repoRoot, 'tools/k8s/VERSION'), 'utf8').trim();

/** The directory `make tools` builds into, keyed by the pinned Kubernetes version. */
export function toolsBinDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.TENANTRY_TOOLS_BIN) return env.TENANTRY_TOOLS_BIN;
  const cache =
    env.TENANTRY_TOOLS_CACHE ?? join(env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'tenantry/tools');
  return join(cache, `k8s-${kubernetesVersion}`);
}

export function toolPath(name: string): string {
  const path = join(toolsBinDir(), name);
  if (!existsSync(path)) {
    throw new Error(`${name} was not found at ${path}; run 'make tools' to build the control-plane binaries`);
  }
  return path;
}

export interface ControlPlaneOptions {
  /** Start KWOK and a fake node when the binary exists (default true). */
  kwok?: boolean;
  /** How long to wait for each component to become ready. */
  readyTimeoutMs?: number;
}

export interface ControlPlane {
  readonly dir: string;
  readonly kubeconfigPath: string;
  readonly server: string;
  readonly hasKwok: boolean;
  /** Process ids of every component, for leak checks. */
  readonly pids: readonly number[];
  kubectl(args: readonly string[], input?: string): Promise<string>;
  /** Stops only kube-apiserver and starts it again on the same port and data. */
  restartApiServer(): Promise<void>;
  stop(): Promise<void>;
}

interface Component {
  name: string;
  args: string[];
  child?: ChildProcess;
  exited?: Promise<void>;
}

const live = new Set<RunningControlPlane>();
let exitHooksInstalled = false;

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on('exit', () => {
    for (const cp of live) cp.killNow();
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      for (const cp of live) cp.killNow();
      // Re-raise only when nobody else handles the signal, so the default exit still happens.
      if (process.listenerCount(signal) === 1) {
        process.removeListener(signal, onSignal);
        process.kill(process.pid, signal);
      }
    };
    process.on(signal, onSignal);
  }
}

async function freePorts(count: number): Promise<number[]> {
  // Hold every listener until all ports are known so one call never repeats a port.
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((ok, fail) => {
          const server = createServer();
          server.once('error', fail);
          server.listen(0, '127.0.0.1', () => ok(server));
        }),
    ),
  );
  const ports = servers.map((s) => {
    const address = s.address();
    if (address === null || typeof address === 'string') throw new Error('no port assigned');
    return address.port;
  });
  await Promise.all(servers.map((s) => new Promise((ok) => s.close(ok))));
  return ports;
}

const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

async function openssl(dir: string, args: string[]): Promise<void> {
  await run('openssl', args, { cwd: dir });
}

/** CA, apiserver serving cert, admin client cert (system:masters) and service-account keys. */
async function createPki(dir: string): Promise<void> {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await openssl(dir, [
    'req',
    '-x509',
    ...ec,
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    '-days',
    '30',
    '-subj',
    '/CN=tenantry-test-ca',
  ]);
  const sign = async (name: string, subject: string, ext: string) => {
    await writeFile(join(dir, `${name}.ext`), ext);
    await openssl(dir, ['req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject]);
    await openssl(dir, [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      // A random serial per certificate: -CAcreateserial shares ca.srl, which the two
      // signings running side by side would read while the other writes it.
      '-set_serial',
      `0x${randomBytes(16).toString('hex')}`,
      '-out',
      `${name}.crt`,
      '-days',
      '30',
      '-extfile',
      `${name}.ext`,
    ]);
  };
  await Promise.all([
    sign(
      'apiserver',
      '/CN=kube-apiserver',
      'subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n',
    ),
    sign('admin', '/O=system:masters/CN=tenantry-admin', 'extendedKeyUsage=clientAuth\n'),
    openssl(dir, [
      'genpkey',
      '-algorithm',
      'EC',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-out',
      'sa.key',
    ]).then(() => openssl(dir, ['pkey', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'])),
  ]);
}

function kubeconfig(server: string, dir: string): string {
  const b64 = (file: string) => readFileSync(join(dir, file)).toString('base64');
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: tenantry',
    '  cluster:',
    `    server: ${server}`,
    `    certificate-authority-data: ${b64('ca.crt')}`,
    'users:',
    '- name: admin',
    '  user:',
    `    client-certificate-data: ${b64('admin.crt')}`,
    `    client-key-data: ${b64('admin.key')}`,
    'contexts:',
    '- name: tenantry',
    '  context: {cluster: tenantry, user: admin}',
    'current-context: tenantry',
    '',
  ].join('\n');
}

const fakeNode = `apiVersion: v1
kind: Node
metadata:
  name: kwok-node-0
  annotations:
    node.alpha.kubernetes.io/ttl: "0"
    kwok.x-k8s.io/node: fake
  labels:
    kubernetes.io/hostname: kwok-node-0
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "110"}
  capacity: {cpu: "32", memory: 256Gi, pods: "110"}
`;

class RunningControlPlane implements ControlPlane {
  readonly kubeconfigPath: string;
  readonly server: string;
  hasKwok = false;
  private readonly components: Component[] = [];
  private stopped = false;

  constructor(
    readonly dir: string,
    private readonly ports: {
      etcd: number;
      peer: number;
      api: number;
      kcm: number;
      scheduler: number;
      kwok: number;
    },
    private readonly readyTimeoutMs: number,
  ) {
    this.kubeconfigPath = join(dir, 'admin.kubeconfig');
    this.server = `https://127.0.0.1:${ports.api}`;
  }

  get pids(): number[] {
    return this.components.flatMap((c) => (c.child?.pid === undefined ? [] : [c.child.pid]));
  }

  async start(wantKwok: boolean): Promise<void> {
    const d = this.dir;
    const p = this.ports;
    await createPki(d);
    const etcdUrl = `http://127.0.0.1:${p.etcd}`;
    this.launch('etcd', [
      `--data-dir=${join(d, 'etcd')}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=http://127.0.0.1:${p.peer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${p.peer}`,
      `--initial-cluster=default=http://127.0.0.1:${p.peer}`,
      '--unsafe-no-fsync',
      '--log-level=warn',
    ]);
    await this.waitFor('etcd', () => httpOk(`${etcdUrl}/health`));

    this.launch('kube-apiserver', this.apiServerArgs(etcdUrl));
    await this.waitForApiServer();
    await writeFile(this.kubeconfigPath, kubeconfig(this.server, d), { mode: 0o600 });

    const common = [
      `--kubeconfig=${this.kubeconfigPath}`,
      `--authentication-kubeconfig=${this.kubeconfigPath}`,
      `--authorization-kubeconfig=${this.kubeconfigPath}`,
      '--leader-elect=false',
      '--bind-address=127.0.0.1',
    ];
    this.launch('kube-controller-manager', [
      ...common,
      '--controllers=*',
      `--root-ca-file=${join(d, 'ca.crt')}`,
      `--service-account-private-key-file=${join(d, 'sa.key')}`,
      `--cluster-signing-cert-file=${join(d, 'ca.crt')}`,
      `--cluster-signing-key-file=${join(d, 'ca.key')}`,
      `--secure-port=${p.kcm}`,
      `--cert-dir=${join(d, 'kcm')}`,
    ]);
    this.launch('kube-scheduler', [
      ...common,
      `--secure-port=${p.scheduler}`,
      `--cert-dir=${join(d, 'scheduler')}`,
    ]);

    if (wantKwok && existsSync(join(toolsBinDir(), 'kwok'))) {
      this.launch('kwok', [
        `--kubeconfig=${this.kubeconfigPath}`,
        '--manage-all-nodes=false',
        '--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake',
        `--server-address=127.0.0.1:${p.kwok}`,
        '--node-ip=127.0.0.1',
        '--node-lease-duration-seconds=40',
        `--config=${join(import.meta.dirname, 'kwok-stages.yaml')}`,
      ]);
      await this.kubectl(['apply', '-f', '-'], fakeNode);
      this.hasKwok = true;
    }
    await Promise.all([
      this.waitFor('kube-controller-manager', () => this.healthz(p.kcm)),
      this.waitFor('kube-scheduler', () => this.healthz(p.scheduler)),
    ]);
  }

  private apiServerArgs(etcdUrl: string): string[] {
    const d = this.dir;
    return [
      `--etcd-servers=${etcdUrl}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${this.ports.api}`,
      `--cert-dir=${join(d, 'apiserver-certs')}`,
      `--tls-cert-file=${join(d, 'apiserver.crt')}`,
      `--tls-private-key-file=${join(d, 'apiserver.key')}`,
      `--client-ca-file=${join(d, 'ca.crt')}`,
      '--authorization-mode=RBAC',
      '--service-cluster-ip-range=10.0.0.0/24',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${join(d, 'sa.pub')}`,
      `--service-account-signing-key-file=${join(d, 'sa.key')}`,
      '--disable-admission-plugins=ServiceAccount',
      '--allow-privileged=true',
      '--endpoint-reconciler-type=none',
    ];
  }

  async restartApiServer(): Promise<void> {
    const api = this.components.find((c) => c.name === 'kube-apiserver');
    if (!api) throw new Error('kube-apiserver is not running');
    await terminate(api);
    this.components.splice(this.components.indexOf(api), 1);
    this.launch('kube-apiserver', api.args);
    await this.waitForApiServer();
  }

  async kubectl(args: readonly string[], input?: string): Promise<string> {
    return new Promise((ok, fail) => {
      const child = execFile(
        toolPath('kubectl'),
        [`--kubeconfig=${this.kubeconfigPath}`, ...args],
        { maxBuffer: 64 * 1024 * 1024 },
        (error, stdout, stderr) => {
          if (error) fail(new Error(`kubectl ${args.join(' ')} failed: ${stderr.trim() || error.message}`));
          else ok(stdout);
        },
      );
      // kubectl may exit before reading its input (a quick failure); its exit status reports that.
      child.stdin?.on('error', () => undefined);
      child.stdin?.end(input ?? '');
    });
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    // Stop in reverse start order so clients go before the apiserver and etcd.
    for (const component of [...this.components].reverse()) await terminate(component);
    live.delete(this);
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Synchronous last-resort cleanup for process exit and signals. */
  killNow(): void {
    for (const c of this.components) {
      if (c.child?.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL');
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  private launch(name: string, args: string[]): void {
    const log = openSync(join(this.dir, `${name}.log`), 'a');
    const child = spawn(toolPath(name), args, { stdio: ['ignore', log, log] });
    closeSync(log);
    const component: Component = { name, args, child };
    component.exited = new Promise((ok) => child.once('exit', () => ok()));
    child.once('error', () => undefined);
    this.components.push(component);
  }

  private async waitFor(name: string, probe: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + this.readyTimeoutMs;
    for (;;) {
      const component = this.components.find((c) => c.name === name);
      if (component?.child && component.child.exitCode !== null) {
        throw new Error(
          `${name} exited with code ${component.child.exitCode} during start-up:\n${await this.logTail(name)}`,
        );
      }
      if (await probe().catch(() => false)) return;
      if (Date.now() > deadline) {
        throw new Error(
          `${name} was not ready after ${this.readyTimeoutMs} ms:\n${await this.logTail(name)}`,
        );
      }
      await sleep(100);
    }
  }

  private waitForApiServer(): Promise<void> {
    return this.waitFor('kube-apiserver', () => this.httpsOk(this.ports.api, '/readyz', true));
  }

  private healthz(port: number): Promise<boolean> {
    return this.httpsOk(port, '/healthz', false);
  }

  private httpsOk(port: number, path: string, clientCert: boolean): Promise<boolean> {
    const d = this.dir;
    return new Promise((ok) => {
      const req = httpsRequest(
        {
          host: '127.0.0.1',
          port,
          path,
          timeout: 2000,
          ...(clientCert
            ? {
                ca: readFileSync(join(d, 'ca.crt')),
                cert: readFileSync(join(d, 'admin.crt')),
                key: readFileSync(join(d, 'admin.key')),
              }
            : { rejectUnauthorized: false }),
        },
        (res) => {
          res.resume();
          ok(res.statusCode === 200);
        },
      );
      req.on('error', () => ok(false));
      req.on('timeout', () => req.destroy());
      req.end();
    });
  }

  private async logTail(name: string): Promise<string> {
    const text = await readFile(join(this.dir, `${name}.log`), 'utf8').catch(() => '');
    return text.split('\n').slice(-30).join('\n');
  }
}

function httpOk(url: string): Promise<boolean> {
  return new Promise((ok) => {
    const req = httpRequest(url, { timeout: 2000 }, (res) => {
      res.resume();
      ok(res.statusCode === 200);
    });
    req.on('error', () => ok(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

async function terminate(component: Component, graceMs = 5000): Promise<void> {
  const child = component.child;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const killed = await Promise.race([component.exited?.then(() => true), sleep(graceMs).then(() => false)]);
  if (!killed) {
    child.kill('SIGKILL');
    await component.exited;
  }
}

export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  installExitHooks();
  const dir = mkdtempSync(join(tmpdir(), 'tenantry-cp-'));
  const [etcd, peer, api, kcm, scheduler, kwok] = await freePorts(6);
  const cp = new RunningControlPlane(
    dir,
    { etcd: etcd!, peer: peer!, api: api!, kcm: kcm!, scheduler: scheduler!, kwok: kwok! },
    options.readyTimeoutMs ?? 60_000,
  );
  live.add(cp);
  try {
    await cp.start(options.kwok ?? true);
  } catch (error) {
    await cp.stop();
    throw error;
  }
  return cp;
}
