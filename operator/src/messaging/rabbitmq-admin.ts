// Per-tenant RabbitMQ users through the management HTTP API. Each tenant gets
// one user whose configure/write/read permissions on the platform vhost match
// only names under its queue prefix, so it can neither see nor touch another
// tenant's queues and exchanges. The user's only tag is its Tenant's ownership
// marker; a user another Tenant owns is never changed or deleted.
import {
  assertClaims,
  claimOf,
  markedUid,
  mayUse,
  ownershipMarker,
  type TenantOwner,
  type TenantNames,
} from '../../../lib/tenant/index.js';
import { ServiceUnreachableError } from '../../../lib/services.js';
import type { BrokerAdmin } from '../controller/context.js';

export const managementServiceName = 'RabbitMQ management API';

export type TenantMessagingNames = Pick<TenantNames, 'amqpUser' | 'queuePrefix'>;

/** The management API could not be reached at all (refused, DNS, timeout). */
export class MessagingUnavailableError extends ServiceUnreachableError {
  constructor(url: string, cause: unknown) {
    super(managementServiceName, url, cause);
    this.name = 'MessagingUnavailableError';
  }
}

/** The management API answered with a status we did not expect. */
export class MessagingError extends Error {
  constructor(
    readonly method: string,
    readonly path: string,
    readonly status: number,
    readonly body: string,
  ) {
    super(`${managementServiceName} ${method} ${path} answered ${status}: ${body}`);
    this.name = 'MessagingError';
  }
}

/** Escapes every regex metacharacter; RabbitMQ evaluates permissions as PCRE-style regexes. */
export function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The configure/write/read regex granting a tenant the names under its prefix and nothing else. */
export function tenantPermissionPattern(queuePrefix: string): string {
  return `^${escapeRegex(queuePrefix)}.*`;
}

export interface TenantUserState {
  exists: boolean;
  /** Exactly the prefix permissions on the platform vhost, and none on any other vhost. */
  permissionsOk: boolean;
  /**
   * Only the ownership marker, no management tag: an `administrator` tag would
   * let the tenant rewrite its own permissions.
   */
  tagsOk: boolean;
}

export interface EnsureTenantUserResult {
  created: boolean;
  passwordReset: boolean;
  /** An existing user's permissions had drifted and were rewritten. */
  permissionsRepaired: boolean;
  tagsRepaired: boolean;
}

export interface DeleteTenantUserResult {
  userDeleted: boolean;
  queuesDeleted: string[];
  exchangesDeleted: string[];
  /** The user under the tenant's name that another owner holds; left untouched with its queues. */
  skipped?: string[];
}

export interface RabbitMqAdminOptions {
  /** Per-request timeout. */
  timeoutMs?: number;
  /** Replaceable so tests can observe the requests made. */
  fetch?: typeof fetch;
}

interface ManagementUser {
  name: string;
  password_hash: string;
  hashing_algorithm: string;
  tags: string[] | string;
}

interface ManagementPermission {
  vhost: string;
  configure: string;
  write: string;
  read: string;
}

const enc = encodeURIComponent;

export class RabbitMqAdmin implements BrokerAdmin {
  private readonly baseUrl: URL;
  private readonly authorization: string;
  private readonly secrets: string[];
  private readonly timeoutMs: number;
  private readonly fetchImpl: typeof fetch;

  constructor(
    private readonly managementUrl: string,
    readonly vhost = '/',
    options: RabbitMqAdminOptions = {},
  ) {
    const url = new URL(managementUrl);
    const username = decodeURIComponent(url.username);
    const password = decodeURIComponent(url.password);
    this.authorization = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
    // fetch refuses URLs with userinfo; credentials travel in the header instead.
    url.username = '';
    url.password = '';
    if (!url.pathname.endsWith('/')) url.pathname += '/';
    this.baseUrl = url;
    this.secrets = [password, this.authorization].filter((s) => s.length > 0);
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.fetchImpl = options.fetch ?? fetch;
  }

  /** Creates the platform vhost if missing; returns whether it was created. */
  async ensureVhost(): Promise<boolean> {
    const path = `/vhosts/${enc(this.vhost)}`;
    if ((await this.request('GET', path, undefined, [200, 404])).status === 200) return false;
    await this.request('PUT', path, {}, [201, 204]);
    return true;
  }

  async userState(names: TenantMessagingNames, owner: TenantOwner = {}): Promise<TenantUserState> {
    const user = await this.getUser(names.amqpUser);
    if (!user) return { exists: false, permissionsOk: false, tagsOk: false };
    const permissions = await this.getPermissions(names.amqpUser);
    return {
      exists: true,
      permissionsOk: this.permissionsMatch(permissions, names.queuePrefix),
      tagsOk: sameTags(tagList(user.tags), wantedTags(owner)),
    };
  }

  /**
   * Makes the tenant's user exist with exactly its prefix permissions. In the steady
   * state only GET requests are made. The password is written only when the user is
   * created or `resetPassword` is set, since writing it is what changes it.
   */
  async ensureTenantUser(
    names: TenantMessagingNames,
    password: string,
    options: { resetPassword?: boolean; owner?: TenantOwner } = {},
  ): Promise<EnsureTenantUserResult> {
    const owner = options.owner ?? {};
    if (password.length === 0) throw new TypeError(`empty AMQP password for ${names.amqpUser}`);
    const result: EnsureTenantUserResult = {
      created: false,
      passwordReset: false,
      permissionsRepaired: false,
      tagsRepaired: false,
    };
    const userPath = `/users/${enc(names.amqpUser)}`;
    const user = await this.getUser(names.amqpUser);
    if (user)
      assertClaims([{ what: `RabbitMQ user "${names.amqpUser}"`, claim: userClaim(names, user, owner) }]);
    const tags = wantedTags(owner).join(',');
    const tagsDrifted = !!user && !sameTags(tagList(user.tags), wantedTags(owner));
    if (!user || options.resetPassword) {
      await this.request('PUT', userPath, { password, tags }, [201, 204], [password]);
      result.created = !user;
      result.passwordReset = !!user;
      result.tagsRepaired = tagsDrifted;
    } else if (tagsDrifted) {
      // A PUT without a password clears it, so carry the existing hash over.
      await this.request(
        'PUT',
        userPath,
        { password_hash: user.password_hash, hashing_algorithm: user.hashing_algorithm, tags },
        [204],
      );
      result.tagsRepaired = true;
    }

    const permissions = user ? await this.getPermissions(names.amqpUser) : [];
    if (!this.permissionsMatch(permissions, names.queuePrefix)) {
      const pattern = tenantPermissionPattern(names.queuePrefix);
      await this.request(
        'PUT',
        `/permissions/${enc(this.vhost)}/${enc(names.amqpUser)}`,
        { configure: pattern, write: pattern, read: pattern },
        [201, 204],
      );
      // The tenant user belongs to the platform vhost only.
      for (const other of permissions.filter((p) => p.vhost !== this.vhost)) {
        await this.request(
          'DELETE',
          `/permissions/${enc(other.vhost)}/${enc(names.amqpUser)}`,
          undefined,
          [204, 404],
        );
      }
      result.permissionsRepaired = !!user;
    }
    return result;
  }

  /**
   * Deletes the user (which also closes its connections), then every queue and
   * exchange under the tenant's prefix in the platform vhost. Already gone is success.
   */
  async deleteTenantUser(
    names: TenantMessagingNames,
    owner: TenantOwner = {},
  ): Promise<DeleteTenantUserResult> {
    const user = await this.getUser(names.amqpUser);
    if (user && !mayUse(userClaim(names, user, owner))) {
      const skipped = [`RabbitMQ user "${names.amqpUser}"`];
      return { userDeleted: false, queuesDeleted: [], exchangesDeleted: [], skipped };
    }
    // The user goes first so that it cannot redeclare what is being removed.
    const deleted = await this.request('DELETE', `/users/${enc(names.amqpUser)}`, undefined, [204, 404]);
    const queuesDeleted = await this.deletePrefixed('queues', names.queuePrefix);
    const exchangesDeleted = await this.deletePrefixed('exchanges', names.queuePrefix);
    return { userDeleted: deleted.status === 204, queuesDeleted, exchangesDeleted };
  }

  private async deletePrefixed(kind: 'queues' | 'exchanges', prefix: string): Promise<string[]> {
    const listed = await this.request('GET', `/${kind}/${enc(this.vhost)}?columns=name`, undefined, [200]);
    const names = ((await listed.json()) as { name: string }[])
      .map((entry) => entry.name)
      .filter((name) => name.startsWith(prefix));
    const deleted: string[] = [];
    for (const name of names) {
      const response = await this.request(
        'DELETE',
        `/${kind}/${enc(this.vhost)}/${enc(name)}`,
        undefined,
        [204, 404],
      );
      if (response.status === 204) deleted.push(name);
    }
    return deleted;
  }

  private async getUser(user: string): Promise<ManagementUser | undefined> {
    const response = await this.request('GET', `/users/${enc(user)}`, undefined, [200, 404]);
    return response.status === 404 ? undefined : ((await response.json()) as ManagementUser);
  }

  /** Every vhost permission the user holds, so grants elsewhere count as drift too. */
  private async getPermissions(user: string): Promise<ManagementPermission[]> {
    const response = await this.request('GET', `/users/${enc(user)}/permissions`, undefined, [200, 404]);
    return response.status === 404 ? [] : ((await response.json()) as ManagementPermission[]);
  }

  private permissionsMatch(permissions: ManagementPermission[], queuePrefix: string): boolean {
    const pattern = tenantPermissionPattern(queuePrefix);
    const [only, ...rest] = permissions;
    return (
      rest.length === 0 &&
      only?.vhost === this.vhost &&
      only.configure === pattern &&
      only.write === pattern &&
      only.read === pattern
    );
  }

  private async request(
    method: string,
    path: string,
    body: unknown,
    expected: number[],
    extraSecrets: string[] = [],
  ): Promise<Response> {
    let response: Response;
    try {
      response = await this.fetchImpl(new URL(`api${path}`, this.baseUrl), {
        method,
        headers: { authorization: this.authorization, 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (error) {
      // fetch wraps the socket error in a bare "fetch failed"; the inner one says why.
      const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error;
      throw new MessagingUnavailableError(this.managementUrl, cause);
    }
    if (!expected.includes(response.status)) {
      const text = await response.text().catch(() => '');
      throw new MessagingError(
        method,
        path,
        response.status,
        redact(text, [...this.secrets, ...extraSecrets]),
      );
    }
    return response;
  }
}

function wantedTags(owner: TenantOwner): string[] {
  return owner.uid === undefined ? [] : [ownershipMarker(owner.uid)];
}

function sameTags(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((tag) => b.includes(tag));
}

function userClaim(names: TenantMessagingNames, user: ManagementUser, owner: TenantOwner) {
  const marker = tagList(user.tags).find((tag) => markedUid(tag) !== undefined) ?? null;
  return claimOf({ name: names.amqpUser, exists: true, marker }, owner);
}

function tagList(tags: string[] | string): string[] {
  // Older management versions report tags as one comma-separated string.
  return (Array.isArray(tags) ? tags : tags.split(',')).map((t) => t.trim()).filter((t) => t.length > 0);
}

/** Removes secrets from an error body, which may echo the request; long bodies are cut. */
function redact(text: string, secrets: string[]): string {
  let out = text;
  for (const secret of secrets) {
    out = out.split(secret).join('***');
    const encoded = JSON.stringify(secret).slice(1, -1);
    if (encoded !== secret) out = out.split(encoded).join('***');
  }
  return out.length > 1000 ? `${out.slice(0, 1000)}…` : out;
}

export interface AmqpEndpoint {
  host: string;
  port: number;
  vhost: string;
  username: string;
  password: string;
  queuePrefix: string;
  tls?: boolean;
}

/** The data fields of a tenant's AMQP Secret. */
export interface AmqpConnectionInfo {
  host: string;
  port: string;
  vhost: string;
  username: string;
  password: string;
  uri: string;
  queuePrefix: string;
}

export function amqpConnectionInfo(endpoint: AmqpEndpoint): AmqpConnectionInfo {
  const { host, port, vhost, username, password, queuePrefix, tls = false } = endpoint;
  const hostPart = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  const uri = `${tls ? 'amqps' : 'amqp'}://${enc(username)}:${enc(password)}@${hostPart}:${port}/${enc(vhost)}`;
  return { host, port: String(port), vhost, username, password, uri, queuePrefix };
}
