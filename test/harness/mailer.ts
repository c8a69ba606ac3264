// A Mailer that keeps messages in memory, for tests to read the tokens the
// API mails.
import type { MailKind, MailMessage, Mailer } from '../../api/src/mail/mailer.js';
import { eventually } from './wait.js';

export class MemoryMailer implements Mailer {
  readonly messages: MailMessage[] = [];

  send(message: MailMessage): Promise<void> {
    this.messages.push(message);
    return Promise.resolve();
  }

  to(address: string, kind?: MailKind): MailMessage[] {
    return this.messages.filter((m) => m.to === address && (kind === undefined || m.kind === kind));
  }

  /** Waits for the `index`-th message (0-based) to `address` and returns its one-time token. */
  async tokenFor(address: string, kind: MailKind, index = 0, timeoutMs = 30_000): Promise<string> {
    const message = await eventually(
      `mail #${index + 1} (${kind}) to ${address}`,
      () => Promise.resolve(this.to(address, kind)[index]),
      { timeoutMs },
    );
    return tokenIn(message);
  }
}

export function tokenIn(message: MailMessage): string {
  const token = /\b(?:pr|rg)_[A-Za-z0-9_-]{43}\b/.exec(message.text)?.[0];
  if (!token) throw new Error(`no token in the ${message.kind} mail to ${message.to}`);
  return token;
}
