// The mail port: services hand a message to a `Mailer` and never learn how it
// travels. Adapters here: an outbox that writes each message as a JSON file
// (development; `make dev` points it at .dev/mail/), and a stand-in for when no
// transport is configured, which drops messages with a warning that names
// only their kind. An SMTP adapter is not written yet (see api/README.md).
// No adapter logs a message's text: it carries one-time tokens.
import { randomUUID } from 'node:crypto';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export type MailKind = 'password-reset' | 'owner-invite' | 'registration' | 'registration-existing';

export interface MailMessage {
  to: string;
  subject: string;
  /** Plain text; may hold a one-time token, so it is never logged. */
  text: string;
  /** What the message is for, so logs and tests can tell messages apart without reading them. */
  kind: MailKind;
}

export interface Mailer {
  /** Resolves once the message is handed over for delivery; rejects if it could not be. */
  send(message: MailMessage): Promise<void>;
}

interface MailLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** Writes every message as `<time>-<uuid>.json` into a directory, readable by its owner only. */
export class OutboxMailer implements Mailer {
  constructor(
    private readonly directory: string,
    private readonly from: string,
    private readonly log: MailLog,
  ) {}

  private sequence = 0;

  async send(message: MailMessage): Promise<void> {
    await mkdir(this.directory, { recursive: true, mode: 0o700 });
    const id = randomUUID();
    const createdAt = new Date();
    // Names sort in the order of sending, even for two messages in the same millisecond.
    this.sequence += 1;
    const name = `${createdAt.toISOString().replaceAll(/[:.]/g, '-')}-${String(this.sequence).padStart(9, '0')}-${id}.json`;
    const document = { id, created_at: createdAt.toISOString(), from: this.from, ...message };
    // Written aside and renamed, so a reader never sees half a message.
    const partial = join(this.directory, `.${name}.partial`);
    await writeFile(partial, `${JSON.stringify(document, null, 2)}\n`, { mode: 0o600 });
    await rename(partial, join(this.directory, name));
    this.log.info({ kind: message.kind, file: name }, 'mail written to the outbox');
  }
}

/** No transport configured: the message is dropped, and the log says so without its content. */
export class UndeliverableMailer implements Mailer {
  constructor(private readonly log: MailLog) {}

  send(message: MailMessage): Promise<void> {
    this.log.warn(
      { kind: message.kind },
      'no mail transport is configured (MAIL_OUTBOX_DIR); the message was dropped',
    );
    return Promise.resolve();
  }
}
