// The rows of app.api_clients, through the ApiClient model. The rules (who
// manages which client, the secret check, the token) are in api-clients.ts.
import { col, fn, type Transaction } from 'sequelize';
import type { NonOwnerRole } from '../../../lib/tenant/index.js';
import type { ApiClientAttributes, TenantModels } from '../tenancy/models.js';
import type { TenantDb } from '../tenancy/tenant-databases.js';

/** A client as the API shows it, without its secret hash. */
export type ApiClientRow = Omit<ApiClientAttributes, 'secret_hash' | 'tenant_uid'>;

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

const viewAttributes = [
  'id',
  'client_id',
  'name',
  'role',
  'created_by',
  'created_at',
  'last_used_at',
  'revoked_at',
] as const satisfies (keyof ApiClientRow)[];

export class ApiClientStore {
  readonly #model: TenantModels['ApiClient'];

  constructor(db: TenantDb) {
    this.#model = db.models.ApiClient;
  }

  count(): Promise<number> {
    return this.#model.count();
  }

  /** Newest first. */
  async list(slice: { limit: number; offset: number }): Promise<ApiClientRow[]> {
    const rows = await this.#model.findAll({
      attributes: [...viewAttributes],
      order: [
        ['created_at', 'DESC'],
        ['id', 'ASC'],
      ],
      limit: slice.limit,
      offset: slice.offset,
    });
    return rows.map((row) => row.get({ plain: true }));
  }

  async insert(client: NewApiClient, transaction: Transaction): Promise<ApiClientRow> {
    const row = await this.#model.create(
      {
        client_id: client.clientId,
        secret_hash: client.secretHash,
        name: client.name,
        role: client.role,
        created_by: client.createdBy,
        tenant_uid: client.tenantUid,
      },
      { transaction, returning: [...viewAttributes] },
    );
    return row.get({ plain: true });
  }

  /** The client, locked (FOR UPDATE) until `transaction` ends. */
  async lock(id: string, transaction: Transaction): Promise<ApiClientRow | undefined> {
    const row = await this.#model.findByPk(id, { attributes: [...viewAttributes], transaction, lock: true });
    return row?.get({ plain: true });
  }

  /** Marks the client revoked now, unless it already was. */
  async revoke(id: string, transaction: Transaction): Promise<ApiClientRow> {
    const [, rows] = await this.#model.update(
      { revoked_at: fn('coalesce', col('revoked_at'), fn('now')) },
      { where: { id }, returning: [...viewAttributes], transaction },
    );
    return rows[0]!.get({ plain: true });
  }

  async findByClientId(clientId: string): Promise<ApiClientCredentialRow | undefined> {
    const row = await this.#model.findOne({
      where: { client_id: clientId },
      attributes: [...viewAttributes, 'secret_hash', 'tenant_uid'],
    });
    return row?.get({ plain: true });
  }

  async recordUse(id: string): Promise<void> {
    await this.#model.update({ last_used_at: fn('now') }, { where: { id } });
  }
}
