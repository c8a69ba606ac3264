// A private RabbitMQ node on this machine, for benches and tests that must not
// disturb the shared broker: its own node name, AMQP, distribution and
// management ports (loopback only), data, log and config files in a temporary
// directory, and the open-file limit production uses (65,536; lowered to the
// hard limit where this process may not raise it). Run as root, the node runs
// as the `rabbitmq` user with that user's home, as Debian's wrapper does, so it
// shares the system's Erlang cookie; otherwise as the current user with its
// own. `stop()` ends the node and deletes the directory; every rabbitmqctl call
// has a hard timeout, since a plain TERM does not stop one.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, closeSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The open-file limit of RabbitMQ's production packages (systemd `LimitNOFILE`). */
export const productionFileLimit = 65_536;

const serverScript = '/usr/lib/rabbitmq/bin/rabbitmq-server';
const ctlScript = '/usr/lib/rabbitmq/bin/rabbitmqctl';

export interface RabbitMqNodeOptions {
  /** Short label in the node name: `<label>-<pid>-<n>@localhost`. */
  label?: string;
  /** Wanted open-file limit; the hard limit of this process caps it unless it may raise it. */
  fileLimit?: number;
  /** Extra lines of rabbitmq.conf. */
  config?: string[];
  startTimeoutMs?: number;
}

let started = 0;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** A free port whose CLI range (port + 10,000 .. + 10,010, RabbitMQ's default for rabbitmqctl) fits too. */
async function freeDistPort(): Promise<number> {
  for (;;) {
    const port = await freePort();
    if (port <= 55_000) return port;
  }
}

function hardFileLimit(): number {
  const line = readFileSync('/proc/self/limits', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Max open files'));
  const hard = line?.trim().split(/\s+/)[4];
  return hard === undefined || hard === 'unlimited' ? Infinity : Number(hard);
}

/** Whether prlimit may set `limit` here (raising the hard limit needs CAP_SYS_RESOURCE). */
function canSetFileLimit(limit: number): Promise<boolean> {
  return new Promise((resolve) => {
    execFile('prlimit', [`--nofile=${limit}:${limit}`, '--', 'true'], (error) => resolve(!error));
  });
}

interface RunAs {
  /** Command prefix that drops to the node's user, or nothing. */
  prefix: string[];
  uid?: number;
  gid?: number;
  home: string;
}

function runAs(): RunAs {
  if (process.getuid?.() !== 0) return { prefix: [], home: process.env.HOME ?? tmpdir() };
  const entry = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .map((l) => l.split(':'))
    .find((f) => f[0] === 'rabbitmq');
  if (!entry) throw new Error('running as root, but there is no rabbitmq user to run the node as');
  const [uid, gid, home] = [Number(entry[2]), Number(entry[3]), entry[5] ?? '/var/lib/rabbitmq'];
  return {
    prefix: ['setpriv', `--reuid=${uid}`, `--regid=${gid}`, '--init-groups', '--'],
    uid,
    gid,
    home,
  };
}

export class RabbitMqNode {
  private child: ChildProcess | undefined;
  private stopping: Promise<void> | undefined;
  /** The Erlang VM's process id (beam.smp), for /proc readings. */
  beamPid = 0;

  private constructor(
    readonly nodeName: string,
    readonly amqpPort: number,
    readonly distPort: number,
    readonly managementPort: number,
    /** The open-file limit the node runs with. */
    readonly fileLimit: number,
    /** Data, logs, configuration and pid file; removed by stop(). */
    readonly dir: string,
    private readonly pidFile: string,
    private readonly env: Record<string, string>,
    private readonly user: RunAs,
  ) {}

  static async start(options: RabbitMqNodeOptions = {}): Promise<RabbitMqNode> {
    const wanted = options.fileLimit ?? productionFileLimit;
    const fileLimit = (await canSetFileLimit(wanted)) ? wanted : Math.min(wanted, hardFileLimit());
    started += 1;
    const nodeName = `${options.label ?? 'tenantry'}-${process.pid}-${started}@localhost`;
    const [amqpPort, distPort, managementPort] = [await freePort(), await freeDistPort(), await freePort()];
    const dir = mkdtempSync(join(tmpdir(), 'tenantry-rabbitmq-'));
    const user = runAs();
    const conf = [
      `listeners.tcp.default = 127.0.0.1:${amqpPort}`,
      `management.tcp.ip = 127.0.0.1`,
      `management.tcp.port = ${managementPort}`,
      'loopback_users.guest = true',
      ...(options.config ?? []),
    ];
    writeFileSync(join(dir, 'rabbitmq.conf'), `${conf.join('\n')}\n`);
    writeFileSync(join(dir, 'enabled_plugins'), '[rabbitmq_management].\n');
    // Replaces the system's rabbitmq-env.conf, which names the shared node; the same loopback settings.
    writeFileSync(
      join(dir, 'rabbitmq-env.conf'),
      'ERL_EPMD_ADDRESS=127.0.0.1\nexport ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1}"\n',
    );
    if (user.uid !== undefined && user.gid !== undefined) chownSync(dir, user.uid, user.gid);
    const pidFile = join(dir, 'node.pid');
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
      HOME: user.home,
      LANG: 'C.UTF-8',
      RABBITMQ_NODENAME: nodeName,
      RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
      RABBITMQ_NODE_PORT: String(amqpPort),
      RABBITMQ_DIST_PORT: String(distPort),
      RABBITMQ_CONF_ENV_FILE: join(dir, 'rabbitmq-env.conf'),
      RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq.conf'),
      RABBITMQ_ADVANCED_CONFIG_FILE: join(dir, 'advanced.config'),
      RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
      RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
      RABBITMQ_LOG_BASE: join(dir, 'log'),
      RABBITMQ_PID_FILE: pidFile,
      ERL_EPMD_ADDRESS: '127.0.0.1',
    };
    const node = new RabbitMqNode(
      nodeName,
      amqpPort,
      distPort,
      managementPort,
      fileLimit,
      dir,
      pidFile,
      env,
      user,
    );
    const out = openSync(join(dir, 'console.log'), 'a');
    try {
      node.child = spawn(
        'prlimit',
        [`--nofile=${fileLimit}:${fileLimit}`, '--', ...user.prefix, serverScript],
        // Its own process group: a Ctrl-C at the terminal reaches the caller, whose clean-up stops the node.
        { cwd: dir, env, stdio: ['ignore', out, out], detached: true },
      );
    } finally {
      closeSync(out);
    }
    node.child.unref();
    try {
      await node.ctl(
        ['wait', '--timeout', String(Math.ceil((options.startTimeoutMs ?? 120_000) / 1000)), pidFile],
        (options.startTimeoutMs ?? 120_000) + 10_000,
      );
      node.beamPid = Number(readFileSync(pidFile, 'utf8').trim());
      await node.waitForManagement(60_000);
    } catch (error) {
      const tail = node.consoleTail();
      await node.stop();
      throw new Error(`the RabbitMQ node ${nodeName} did not start: ${String(error)}\n${tail}`, {
        cause: error,
      });
    }
    return node;
  }

  /** AMQP URL on the node's port; the default vhost unless given. */
  amqpUrl(username = 'guest', password = 'guest', vhost = '/'): string {
    return `amqp://${encodeURIComponent(username)}:${encodeURIComponent(password)}@127.0.0.1:${this.amqpPort}/${encodeURIComponent(vhost)}`;
  }

  /** The management API's base URL with the administrator's credentials (guest, loopback only). */
  get managementUrl(): string {
    return `http://guest:guest@127.0.0.1:${this.managementPort}/`;
  }

  /** GET on the management API; throws on anything but 200. */
  async management<T>(path: string, timeoutMs = 30_000): Promise<T> {
    const response = await fetch(`http://127.0.0.1:${this.managementPort}/api${path}`, {
      headers: { authorization: `Basic ${Buffer.from('guest:guest').toString('base64')}` },
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (response.status !== 200) throw new Error(`GET /api${path} answered ${response.status}`);
    return (await response.json()) as T;
  }

  /** rabbitmqctl against this node, killed (SIGKILL) after `timeoutMs`. */
  ctl(args: string[], timeoutMs = 60_000): Promise<string> {
    const seconds = Math.max(1, Math.ceil(timeoutMs / 1000));
    const command = [
      '-s',
      'KILL',
      String(seconds),
      ...this.user.prefix,
      ctlScript,
      '-n',
      this.nodeName,
      ...args,
    ];
    return new Promise((resolve, reject) => {
      execFile(
        'timeout',
        command,
        { env: this.env, cwd: this.dir, maxBuffer: 64 << 20 },
        (error, stdout, stderr) =>
          error
            ? reject(
                new Error(`rabbitmqctl ${args.join(' ')} failed: ${error.message} ${stderr.trim()}`.trim()),
              )
            : resolve(stdout),
      );
    });
  }

  /** Stops the RabbitMQ application; the Erlang VM stays up. */
  async stopApp(timeoutMs = 300_000): Promise<void> {
    await this.ctl(['stop_app'], timeoutMs);
  }

  /** Starts the application and waits until it runs and the management API answers. */
  async startApp(timeoutMs = 300_000): Promise<void> {
    await this.ctl(['start_app'], timeoutMs);
    await this.ctl(['await_startup', '--timeout', String(Math.ceil(timeoutMs / 1000))], timeoutMs + 10_000);
    await this.waitForManagement(timeoutMs);
  }

  /** Stops the node (hard after a deadline) and deletes its data; safe to call more than once. */
  stop(): Promise<void> {
    this.stopping ??= this.stopOnce();
    return this.stopping;
  }

  private async stopOnce(): Promise<void> {
    if (this.beamPid > 0 && alive(this.beamPid)) {
      await this.ctl(['stop', this.pidFile], 60_000).catch(() => undefined);
    }
    if (this.beamPid > 0 && alive(this.beamPid)) process.kill(this.beamPid, 'SIGKILL');
    const group = this.child?.pid;
    if (group !== undefined) {
      try {
        process.kill(-group, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    // Give the kernel a moment to release the VM's files before they are removed.
    for (let i = 0; i < 50 && this.beamPid > 0 && alive(this.beamPid); i++) await sleep(100);
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** The last `bytes` of the node's own log, for diagnosing a node that stopped answering. */
  logTail(bytes = 4000): string {
    try {
      return readFileSync(join(this.dir, 'log', `${this.nodeName}.log`), 'utf8').slice(-bytes);
    } catch {
      return '';
    }
  }

  private consoleTail(): string {
    try {
      return readFileSync(join(this.dir, 'console.log'), 'utf8').slice(-2000);
    } catch {
      return '';
    }
  }

  private async waitForManagement(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const ok = await this.management('/overview', 5_000).then(
        () => true,
        () => false,
      );
      if (ok) return;
      if (Date.now() > deadline) throw new Error(`the management API of ${this.nodeName} did not answer`);
      await sleep(250);
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
