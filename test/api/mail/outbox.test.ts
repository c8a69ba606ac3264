import { expect } from 'chai';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OutboxMailer, UndeliverableMailer } from '../../../api/src/mail/mailer.js';

function recordingLog() {
  const lines: { level: string; obj: object; msg: string }[] = [];
  return {
    lines,
    info: (obj: object, msg: string) => lines.push({ level: 'info', obj, msg }),
    warn: (obj: object, msg: string) => lines.push({ level: 'warn', obj, msg }),
  };
}

const message = {
  kind: 'password-reset' as const,
  to: 'ada@acme.example',
  subject: 'Reset your password',
  text: `your token: pr_${'x'.repeat(43)}`,
};

describe('mail adapters', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tenantry-outbox-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes each message as a complete JSON file that only its owner can read', async () => {
    const log = recordingLog();
    const outbox = new OutboxMailer(join(dir, 'mail'), 'Tenantry <no-reply@tenantry.invalid>', log);
    await outbox.send(message);
    await outbox.send({ ...message, to: 'bob@acme.example' });
    const files = (await readdir(join(dir, 'mail'))).sort();
    expect(files).to.have.length(2);
    expect(files.every((f) => f.endsWith('.json') && !f.startsWith('.'))).to.equal(true);
    const first = JSON.parse(await readFile(join(dir, 'mail', files[0]!), 'utf8')) as Record<string, string>;
    expect(first).to.include({ ...message, from: 'Tenantry <no-reply@tenantry.invalid>' });
    expect(first.id).to.match(/^[0-9a-f-]{36}$/);
    expect((await stat(join(dir, 'mail', files[0]!))).mode & 0o777).to.equal(0o600);
  });

  it('never logs the text, which carries the token', async () => {
    const log = recordingLog();
    await new OutboxMailer(dir, 'x@y.example', log).send(message);
    await new UndeliverableMailer(log).send(message);
    expect(log.lines.map((l) => l.level)).to.deep.equal(['info', 'warn']);
    expect(JSON.stringify(log.lines)).not.to.contain('pr_');
    expect(JSON.stringify(log.lines)).not.to.contain(message.to);
  });
});
