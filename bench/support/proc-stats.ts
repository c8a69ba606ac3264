// CPU and memory of processes read from /proc, so the bench measures the
// operator (and the services it drives) from outside without instrumenting
// them. Linux only.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second for utime/stime in /proc/<pid>/stat (100 on every common kernel). */
export const clockTicks = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

interface StatFields {
  ppid: number;
  /** utime + stime of the process itself, in ticks. */
  own: number;
  /** cutime + cstime: children it has waited for, in ticks. */
  children: number;
}

function readStat(pid: number): StatFields | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name may contain spaces and parentheses; the fields start after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state) of proc(5), so field n is fields[n - 3].
  const at = (n: number) => Number(fields[n - 3] ?? 0);
  return { ppid: at(4), own: at(14) + at(15), children: at(16) + at(17) };
}

/** User + system CPU seconds of one process (not its children); undefined once it is gone. */
export function cpuSeconds(pid: number): number | undefined {
  const stat = readStat(pid);
  return stat === undefined ? undefined : stat.own / clockTicks;
}

/** Sum of cpuSeconds over processes that are still there. */
export function totalCpuSeconds(pids: readonly number[]): number {
  return pids.reduce((sum, pid) => sum + (cpuSeconds(pid) ?? 0), 0);
}

/** VmRSS and VmHWM (peak resident set) in KiB. */
export function memoryKiB(pid: number): { rss: number; hwm: number } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
  return { rss: field('VmRSS'), hwm: field('VmHWM') };
}

function allPids(): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .map(Number);
}

function commOf(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/**
 * CPU of a whole process tree rooted at `root`: the root, its live children,
 * and (through the root's cutime/cstime) the children that already exited.
 * PostgreSQL forks a backend per connection, so this is how its work shows up.
 */
export function treeCpuSeconds(root: number): number {
  const rootStat = readStat(root);
  if (!rootStat) return 0;
  let ticks = rootStat.own + rootStat.children;
  for (const pid of allPids()) {
    if (pid === root) continue;
    const stat = readStat(pid);
    if (stat?.ppid === root) ticks += stat.own + stat.children;
  }
  return ticks / clockTicks;
}

/** The PostgreSQL postmaster: a `postgres` process whose parent is not one. */
export function findPostmaster(): number | undefined {
  for (const pid of allPids()) {
    if (commOf(pid) !== 'postgres') continue;
    const parent = readStat(pid)?.ppid;
    if (parent !== undefined && commOf(parent) !== 'postgres') return pid;
  }
  return undefined;
}

/** RabbitMQ's Erlang VM processes. */
export function findRabbitMq(): number[] {
  return allPids().filter((pid) => commOf(pid) === 'beam.smp');
}

/** Busy (non-idle, non-iowait) CPU seconds of the whole machine since boot, from /proc/stat. */
export function machineBusySeconds(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const [, ...values] = line.trim().split(/\s+/);
  const n = values.map(Number);
  // user nice system idle iowait irq softirq steal (guest is already inside user)
  const busy = (n[0] ?? 0) + (n[1] ?? 0) + (n[2] ?? 0) + (n[5] ?? 0) + (n[6] ?? 0) + (n[7] ?? 0);
  return busy / clockTicks;
}

/** One reading of every CPU counter the bench compares across phases. */
export interface CpuSnapshot {
  at: number;
  machine: number;
  controlPlane: number;
  postgres: number;
  rabbitmq: number;
  /** Operator (or baseline) process, when one is being watched. */
  subject: number;
}

export class CpuAccounting {
  private readonly postmaster = findPostmaster();
  private readonly rabbit = findRabbitMq();

  constructor(private readonly controlPlanePids: readonly number[]) {}

  snapshot(subjectPid?: number): CpuSnapshot {
    return {
      at: performance.now(),
      machine: machineBusySeconds(),
      controlPlane: totalCpuSeconds(this.controlPlanePids),
      postgres: this.postmaster === undefined ? 0 : treeCpuSeconds(this.postmaster),
      rabbitmq: totalCpuSeconds(this.rabbit),
      subject: subjectPid === undefined ? 0 : (cpuSeconds(subjectPid) ?? 0),
    };
  }

  static delta(from: CpuSnapshot, to: CpuSnapshot): CpuSnapshot {
    return {
      at: (to.at - from.at) / 1000,
      machine: to.machine - from.machine,
      controlPlane: to.controlPlane - from.controlPlane,
      postgres: to.postgres - from.postgres,
      rabbitmq: to.rabbitmq - from.rabbitmq,
      subject: to.subject - from.subject,
    };
  }
}
