// The versioned schema of every tenant database. The operator applies these;
// the API reads `latestSchemaVersion` (migrate.ts) to know what to expect.
//
// A migration's SQL is a template: `{{appRole}}` and `{{ownerRole}}` become the
// tenant's quoted role names when it runs. The checksum covers the template, so
// it is the same for every tenant. Never edit a released migration; add one.

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: 'users, audit log and outbox',
    sql: `
CREATE TABLE app.users (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  email text NOT NULL,
  password_hash text,
  first_name text,
  last_name text,
  role text NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'admin', 'member')),
  is_active boolean NOT NULL DEFAULT true,
  department text,
  external_id text UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_lower_key ON app.users (lower(email));

CREATE TABLE app.audit_log (
  id bigserial PRIMARY KEY,
  occurred_at timestamptz NOT NULL DEFAULT now(),
  actor text,
  action text NOT NULL,
  resource_type text NOT NULL,
  resource_id text,
  diff jsonb,
  ip inet,
  request_id text,
  prev_hash text,
  hash text NOT NULL
);
-- The default privileges gave the app full DML; the audit log is append-only.
REVOKE UPDATE, DELETE, TRUNCATE ON app.audit_log FROM {{appRole}};

CREATE TABLE app.outbox (
  id bigserial PRIMARY KEY,
  topic text NOT NULL,
  payload jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  sent_at timestamptz
);
CREATE INDEX outbox_unsent_idx ON app.outbox (id) WHERE sent_at IS NULL;
`,
  },
  {
    version: 2,
    name: 'refresh tokens',
    // Only a SHA-256 of each token is stored. A used or revoked row stays
    // until it expires, so presenting it again can be recognised as reuse.
    // The app gets its DML through the default privileges, like v1's tables.
    sql: `
CREATE TABLE app.refresh_tokens (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES app.users (id) ON DELETE CASCADE,
  family_id uuid NOT NULL,
  token_hash bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
  parent_id uuid,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  used_at timestamptz,
  revoked_at timestamptz,
  revoked_reason text,
  client text,
  ip text,
  CHECK (expires_at > created_at),
  CHECK ((revoked_at IS NULL) = (revoked_reason IS NULL))
);
CREATE INDEX refresh_tokens_family_id_idx ON app.refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_id_idx ON app.refresh_tokens (user_id);
`,
  },
];

/**
 * Tables in schema `app` on which the app role may only SELECT and INSERT.
 * Migrations revoke the rest themselves; this list lets a recreated app role
 * get the same privileges back. Keep it in step with the migrations.
 */
export const appendOnlyTables: readonly string[] = ['audit_log'];
