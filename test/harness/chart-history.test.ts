// Finding the previous chart version in git history, on throwaway repositories.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { extractTree, previousChartRelease } from './chart-history.js';

describe('previous chart version from git history', () => {
  let dir: string;
  const git = (repo: string, ...args: string[]) =>
    execFileSync('git', args, { cwd: repo, encoding: 'utf8' }).trim();
  const commit = (repo: string, version: string, template: string, message: string) => {
    mkdirSync(join(repo, 'chart/templates'), { recursive: true });
    writeFileSync(join(repo, 'chart/Chart.yaml'), `apiVersion: v2\nname: c\nversion: ${version}\n`);
    writeFileSync(join(repo, 'chart/templates/cm.yaml'), template);
    git(repo, 'add', '-A');
    git(repo, '-c', 'user.name=t', '-c', 'user.email=t@example.com', 'commit', '-q', '-m', message);
    return git(repo, 'rev-parse', 'HEAD');
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'chart-history-'));
    git(dir, 'init', '-q', '-b', 'main');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('takes the chart as it last stood under the previous version', () => {
    commit(dir, '0.1.0', 'first', 'introduce 0.1.0');
    const last = commit(dir, '0.1.0', 'second', 'change the chart under 0.1.0');
    writeFileSync(join(dir, 'unrelated.txt'), 'x');
    git(dir, 'add', '-A');
    git(dir, '-c', 'user.name=t', '-c', 'user.email=t@example.com', 'commit', '-q', '-m', 'unrelated');
    commit(dir, '0.2.0', 'third', 'bump to 0.2.0');
    commit(dir, '0.2.0', 'fourth', 'change under 0.2.0');
    expect(previousChartRelease(dir, 'chart')).to.deep.equal({ commit: last, version: '0.1.0' });
    extractTree(dir, last, join(dir, 'out'));
    expect(readFileSync(join(dir, 'out/chart/templates/cm.yaml'), 'utf8')).to.equal('second');
    expect(readFileSync(join(dir, 'out/chart/Chart.yaml'), 'utf8')).to.include('version: 0.1.0');
    expect(existsSync(join(dir, 'out/unrelated.txt'))).to.equal(false);
    extractTree(dir, 'HEAD', join(dir, 'only'), ['chart/templates']);
    expect(readFileSync(join(dir, 'only/chart/templates/cm.yaml'), 'utf8')).to.equal('fourth');
    expect(existsSync(join(dir, 'only/chart/Chart.yaml'))).to.equal(false);
  });

  it('ignores a side branch that still carried the previous version when it was merged', () => {
    const released = commit(dir, '0.1.0', 'released', 'last change under 0.1.0');
    git(dir, 'checkout', '-q', '-b', 'side');
    const side = commit(dir, '0.1.0', 'side', 'side change, still 0.1.0');
    git(dir, 'checkout', '-q', 'main');
    commit(dir, '0.2.0', 'released', 'bump to 0.2.0');
    git(
      dir,
      '-c',
      'user.name=t',
      '-c',
      'user.email=t@example.com',
      'merge',
      '-q',
      '-X',
      'ours',
      '-m',
      'merge',
      'side',
    );
    // The side commit is newer than the release and touches the chart, but was never the main line.
    expect(git(dir, 'rev-list', 'HEAD', '--', 'chart').split('\n')).to.include(side);
    expect(previousChartRelease(dir, 'chart')).to.deep.equal({ commit: released, version: '0.1.0' });
  });

  it('compares with the working tree, so an uncommitted bump makes HEAD the previous version', () => {
    const head = commit(dir, '0.1.0', 'first', 'introduce 0.1.0');
    writeFileSync(join(dir, 'chart/Chart.yaml'), 'apiVersion: v2\nname: c\nversion: 0.2.0\n');
    expect(previousChartRelease(dir, 'chart')).to.deep.equal({ commit: head, version: '0.1.0' });
  });

  it('fails when the history holds no other version', () => {
    commit(dir, '0.1.0', 'first', 'one');
    commit(dir, '0.1.0', 'second', 'two');
    expect(() => previousChartRelease(dir, 'chart')).to.throw(/no commit .* other than 0\.1\.0/);
  });

  it('fails on a shallow clone, saying how to fetch the history', () => {
    commit(dir, '0.1.0', 'first', 'one');
    commit(dir, '0.2.0', 'second', 'two');
    const clone = join(dir, 'clone');
    execFileSync('git', ['clone', '-q', '--depth', '1', `file://${dir}`, clone]);
    expect(existsSync(join(clone, 'chart/Chart.yaml'))).to.equal(true);
    expect(() => previousChartRelease(clone, 'chart')).to.throw(/shallow.*git fetch --unshallow/);
    // The same repository with its history finds it.
    expect(previousChartRelease(dir, 'chart').version).to.equal('0.1.0');
  });

  it('fails outside a git checkout', () => {
    const plain = mkdtempSync(join(tmpdir(), 'chart-plain-'));
    try {
      expect(() => previousChartRelease(plain, 'chart')).to.throw(/not a git checkout/);
    } finally {
      rmSync(plain, { recursive: true, force: true });
    }
  });
});
