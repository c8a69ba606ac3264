// The Node.js runtime is pinned once (tools/node/versions); the image, `engines`, the type definitions and the
// process running these tests must agree with it.
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../harness/repo-root.js';

const read = (file: string) => readFileSync(join(repoRoot, file), 'utf8');
const pinned = new Map(
  read('tools/node/versions')
    .split('\n')
    .filter((line) => line.trim() && !line.startsWith('#'))
    .map((line) => {
      const [major, version, integrity] = line.trim().split(/\s+/);
      return [major!, { version: version!, integrity: integrity! }];
    }),
);
const runtime = pinned.get('22')!;
const packageJson = JSON.parse(read('package.json')) as {
  engines: { node: string };
  devDependencies: Record<string, string>;
  dependencies: Record<string, string>;
  overrides?: Record<string, string>;
};

describe('the Node.js runtime', () => {
  it('pins 22 and 24 with exact versions and sha512 integrities', () => {
    expect([...pinned.keys()]).to.deep.equal(['22', '24']);
    for (const [major, { version, integrity }] of pinned) {
      expect(version).to.match(new RegExp(`^${major}\\.\\d+\\.\\d+$`));
      expect(integrity).to.match(/^sha512-[A-Za-z0-9+/]{86}==$/);
    }
  });

  it('is the image the Dockerfile builds on', () => {
    expect(read('Dockerfile')).to.contain(`ARG NODE_IMAGE=node:${runtime.version}-bookworm-slim`);
  });

  it('satisfies engines, which the type definitions match', () => {
    const minimum = /^>=(\d+)\.(\d+)$/.exec(packageJson.engines.node);
    expect(minimum, packageJson.engines.node).to.not.equal(null);
    const [major, minor] = runtime.version.split('.').map(Number);
    expect(major).to.equal(Number(minimum![1]));
    expect(minor).to.be.at.least(Number(minimum![2]));
    expect(packageJson.devDependencies['@types/node']).to.match(new RegExp(`^${major}\\.`));
  });

  it('needs no override that existed only for Node 20', () => {
    expect(packageJson.overrides ?? {}).to.not.have.property('undici');
  });

  it('runs these tests on a pinned version', () => {
    const versions = [...pinned.values()].map((p) => `v${p.version}`);
    expect(versions).to.include(process.version);
  });
});
