import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import type { ControlPlane } from '../harness/control-plane.js';
import { serviceUrls, uniqueSuffix } from '../harness/services.js';
import { sharedControlPlane } from '../harness/shared-cluster.js';
import { repoRoot } from '../harness/repo-root.js';

/** The real API process (`api/src/main.ts`), as it runs in production. */
async function startApiProcess(
  cp: ControlPlane,
  env: Record<string, string> = {},
): Promise<{ child: ChildProcess; port: number; logs: string[] }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'api/src/main.ts'], {
    cwd: repoRoot,
    env: {
      ...process.env,
      HOST: '127.0.0.1',
      PORT: '0',
      METRICS_HOST: '127.0.0.1',
      METRICS_PORT: '0',
      KUBECONFIG: cp.kubeconfigPath,
      PLATFORM_NAMESPACE: `tenantry-shutdown-${uniqueSuffix().slice(-6)}`,
      REDIS_URL: serviceUrls.redis,
      LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  const port = await new Promise<number>((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`the API did not start:\n${logs.join('')}`)), 30_000);
    const onData = (chunk: Buffer) => {
      logs.push(chunk.toString());
      const match = /"port":(\d+).*"msg":"api started"/.exec(chunk.toString());
      if (match) {
        clearTimeout(timer);
        ok(Number(match[1]));
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => fail(new Error(`the API exited with ${code}:\n${logs.join('')}`)));
  });
  return { child, port, logs };
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((ok, fail) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => ok(socket));
    socket.once('error', fail);
  });
}

describe('API process: keep-alive and graceful shutdown', function () {
  this.timeout(60_000);
  let cp: ControlPlane;

  before(async () => {
    cp = await sharedControlPlane();
  });

  it('on SIGTERM stops accepting, finishes the request in flight, then exits 0', async () => {
    const api = await startApiProcess(cp);
    const exited = new Promise<number | null>((ok) => api.child.once('exit', (code) => ok(code)));
    try {
      // A request whose body is still arriving when the signal comes.
      const body = JSON.stringify({
        tenant: 'no-such-tenant',
        email: 'a@example.com',
        password: 'x'.repeat(12),
      });
      const socket = await connect(api.port);
      const answer = new Promise<string>((ok) => {
        let text = '';
        socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
        socket.on('close', () => ok(text));
      });
      socket.write(
        `POST /api/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body.slice(0, 10)}`,
      );
      await new Promise((ok) => setTimeout(ok, 200));
      api.child.kill('SIGTERM');
      await new Promise((ok) => setTimeout(ok, 500));

      const refused = await connect(api.port).then(
        (s) => {
          s.destroy();
          return undefined;
        },
        (error: NodeJS.ErrnoException) => error.code,
      );
      expect(refused, 'new connections after SIGTERM').to.equal('ECONNREFUSED');
      expect(api.child.exitCode, 'still draining').to.equal(null);

      socket.write(body.slice(10));
      const response = await answer;
      expect(response).to.match(/^HTTP\/1\.1 (400|401|404|503) /);
      expect(response).to.include('application/problem+json');
      expect(await exited).to.equal(0);
      expect(api.logs.join('')).to.include('shutting down: draining requests');
    } finally {
      api.child.kill('SIGKILL');
    }
  });

  it('keeps an idle keep-alive connection open for HTTP_KEEP_ALIVE_SECONDS, then closes it', async () => {
    const api = await startApiProcess(cp, { HTTP_KEEP_ALIVE_SECONDS: '2' });
    try {
      const socket = await connect(api.port);
      let received = '';
      socket.on('data', (chunk: Buffer) => (received += chunk.toString()));
      const closed = new Promise<number>((ok) => socket.once('close', () => ok(performance.now())));
      const ask = async () => {
        const before = received.length;
        socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
        for (let i = 0; i < 100 && !received.slice(before).includes('{"status":"ok"}'); i++) {
          await new Promise((ok) => setTimeout(ok, 20));
        }
        return received.slice(before);
      };
      expect(await ask()).to.match(/^HTTP\/1\.1 200 [\s\S]*Keep-Alive: timeout=2/i);
      // Node's default would have closed it after 5 s idle; 1.5 s idle is within the 2 s set here.
      await new Promise((ok) => setTimeout(ok, 1500));
      expect(socket.destroyed, 'open after 1.5 s idle').to.equal(false);
      expect(await ask()).to.match(/^HTTP\/1\.1 200 /);
      const idleFrom = performance.now();
      const idleMs = (await closed) - idleFrom;
      expect(idleMs).to.be.within(1500, 4000);
    } finally {
      api.child.kill('SIGKILL');
    }
  });
});
