// The rows of app.api_clients. The rules (who manages which client, the
// secret check, the token) are in api-clients.ts.
import { QueryTypes, type Sequelize, type Transaction } from 'sequelize';
import type { NonOwnerRole } from '../../../lib/tenant/index.js';
import type { TenantDb } from '../tenancy/tenant-databases.js';

/** A client as the API shows it, without its secret hash. */
export interface ApiClientRow {
  id: string;
  client_id: string;
  name: string;
  role: NonOwnerRole;
  created_by: string;
  created_at: Date;
  last_used_at: Date | null;
  revoked_at: Date | null;
}

/** What the token endpoint needs besides: the secret's hash and the Tenant uid it was created under. */
export interface ApiClientCredentialRow extends ApiClientRow {
  secret_hash: Buffer;
  tenant_uid: string | null;
}

export interface NewApiClient {
  clientId: string;
  secretHash: Buffer;
  name: string;
  role: NonOwnerRole;
  createdBy: string;
  tenantUid: string;
}

const viewColumns = 'id, client_id, name, role, created_by, created_at, last_used_at, revoked_at';

export class ApiClientStore {
  readonly #sequelize: Sequelize;

  constructor(db: TenantDb) {
    this.#sequelize = db.sequelize;
  }

  async count(): Promise<number> {
    const [total] = await this.#select<{ count: string }>(
      'SELECT count(*) AS count FROM app.api_clients',
      [],
    );
    return Number(total?.count ?? 0);
  }

  /** Newest first. */
  list(slice: { limit: number; offset: number }): Promise<ApiClientRow[]> {
    return this.#select<ApiClientRow>(
      `SELECT ${viewColumns} FROM app.api_clients ORDER BY created_at DESC, id LIMIT $1 OFFSET $2`,
      [slice.limit, slice.offset],
    );
  }

  async insert(client: NewApiClient, transaction: Transaction): Promise<ApiClientRow> {
    const [row] = await this.#select<ApiClientRow>(
      `INSERT INTO app.api_clients (client_id, secret_hash, name, role, created_by, tenant_uid)
       VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${viewColumns}`,
      [client.clientId, client.secretHash, client.name, client.role, client.createdBy, client.tenantUid],
      transaction,
    );
    return row!;
  }

  /** The client, locked (FOR UPDATE) until `transaction` ends. */
  async lock(id: string, transaction: Transaction): Promise<ApiClientRow | undefined> {
    const [row] = await this.#select<ApiClientRow>(
      `SELECT ${viewColumns} FROM app.api_clients WHERE id = $1 FOR UPDATE`,
      [id],
      transaction,
    );
    return row;
  }

  /** Marks the client revoked now, unless it already was. */
  async revoke(id: string, transaction: Transaction): Promise<ApiClientRow> {
    const [row] = await this.#select<ApiClientRow>(
      `UPDATE app.api_clients SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING ${viewColumns}`,
      [id],
      transaction,
    );
    return row!;
  }

  async findByClientId(clientId: string): Promise<ApiClientCredentialRow | undefined> {
    const [row] = await this.#select<ApiClientCredentialRow>(
      `SELECT ${viewColumns}, secret_hash, tenant_uid FROM app.api_clients WHERE client_id = $1`,
      [clientId],
    );
    return row;
  }

  async recordUse(id: string): Promise<void> {
    await this.#sequelize.query('UPDATE app.api_clients SET last_used_at = now() WHERE id = $1', {
      bind: [id],
    });
  }

  #select<T extends object>(sql: string, bind: unknown[], transaction?: Transaction): Promise<T[]> {
    return this.#sequelize.query<T>(sql, {
      bind,
      type: QueryTypes.SELECT,
      ...(transaction ? { transaction } : {}),
    });
  }
}
