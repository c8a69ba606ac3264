// The chart version before the current one, from git history, for the upgrade
// test: the newest commit touching the chart whose Chart.yaml carries another
// version, i.e. the chart as it last stood under the previous version number.
// Only the first-parent line counts: a side branch merged after the version bump
// still carries the old number, but its chart was never released under it.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';

export interface ChartRelease {
  /** The commit the chart is taken from. */
  commit: string;
  version: string;
}

function git(repo: string, args: readonly string[]): string {
  return execFileSync('git', args, {
    cwd: repo,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    stdio: ['ignore', 'pipe', 'pipe'],
  }).trim();
}

function chartVersion(chartYaml: string, where: string): string {
  const version = (parse(chartYaml) as { version?: unknown } | null)?.version;
  if (typeof version !== 'string' || version === '') throw new Error(`${where} has no version`);
  return version;
}

/**
 * The previous version of the chart at `chartPath` (relative to the repository `repo`):
 * the newest commit on HEAD's first-parent line that touches the chart and whose Chart.yaml
 * version differs from the working tree's. Throws when the history is shallow or holds
 * no other version, rather than letting an upgrade test pass without an upgrade.
 */
export function previousChartRelease(repo: string, chartPath: string): ChartRelease {
  let shallow: string;
  try {
    shallow = git(repo, ['rev-parse', '--is-shallow-repository']);
  } catch (error) {
    throw new Error(`${repo} is not a git checkout; the upgrade test needs the chart's history`, {
      cause: error,
    });
  }
  if (shallow === 'true') {
    throw new Error(
      'the git history is shallow, so the previous chart version cannot be found; run `git fetch --unshallow`',
    );
  }
  const current = chartVersion(readFileSync(join(repo, chartPath, 'Chart.yaml'), 'utf8'), 'Chart.yaml');
  for (const commit of git(repo, ['rev-list', '--first-parent', 'HEAD', '--', chartPath])
    .split('\n')
    .filter(Boolean)) {
    let chartYaml: string;
    try {
      chartYaml = git(repo, ['show', `${commit}:${chartPath}/Chart.yaml`]);
    } catch {
      continue; // the chart was deleted or not yet written in this commit
    }
    const version = chartVersion(chartYaml, `Chart.yaml at ${commit}`);
    if (version !== current) return { commit, version };
  }
  throw new Error(`no commit in the git history has a chart version other than ${current}`);
}

/** Writes the tree of `commit` (or only `paths` of it) into the directory `into`. */
export function extractTree(repo: string, commit: string, into: string, paths: readonly string[] = []): void {
  mkdirSync(into, { recursive: true });
  const archive = join(into, '.tree.tar');
  execFileSync('git', ['archive', '--format=tar', '-o', archive, commit, ...paths], { cwd: repo });
  execFileSync('tar', ['-xf', archive, '-C', into]);
  rmSync(archive);
}
