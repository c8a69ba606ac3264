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
  {
    version: 3,
    name: 'outgoing webhooks',
    // Endpoints keep the current signing secret and, during a rotation, the
    // previous one until it expires, so receivers get both signatures. A message
    // is one event (its id is the Standard Webhooks webhook-id); a delivery is
    // that message on its way to one endpoint; an attempt is one HTTP request.
    // The app gets its DML through the default privileges, like v1's tables.
    sql: `
CREATE TABLE app.webhook_endpoints (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  url text NOT NULL CHECK (url ~ '^https?://'),
  description text,
  event_types text[] NOT NULL DEFAULT '{}',
  secret text NOT NULL CHECK (secret ~ '^whsec_[A-Za-z0-9+/]+={0,2}$'),
  previous_secret text CHECK (previous_secret ~ '^whsec_[A-Za-z0-9+/]+={0,2}$'),
  previous_secret_expires_at timestamptz,
  enabled boolean NOT NULL DEFAULT true,
  disabled_reason text,
  disabled_at timestamptz,
  failing_since timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CHECK ((previous_secret IS NULL) = (previous_secret_expires_at IS NULL)),
  CHECK (enabled = (disabled_at IS NULL))
);

CREATE TABLE app.webhook_messages (
  id text PRIMARY KEY CHECK (id ~ '^msg_[A-Za-z0-9]{8,64}$'),
  event_type text NOT NULL,
  payload jsonb NOT NULL,
  outbox_id bigint,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_messages_created_at_idx ON app.webhook_messages (created_at);

CREATE TABLE app.webhook_deliveries (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  message_id text NOT NULL REFERENCES app.webhook_messages (id) ON DELETE CASCADE,
  endpoint_id uuid NOT NULL REFERENCES app.webhook_endpoints (id) ON DELETE CASCADE,
  status text NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'delivering', 'succeeded', 'retrying', 'failed', 'deferred')),
  attempts int NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  deferrals int NOT NULL DEFAULT 0 CHECK (deferrals >= 0),
  next_attempt_at timestamptz,
  last_attempt_at timestamptz,
  last_error text,
  last_response_status int,
  last_duration_ms int,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_message_id_idx ON app.webhook_deliveries (message_id);
CREATE INDEX webhook_deliveries_endpoint_id_idx ON app.webhook_deliveries (endpoint_id, created_at);
CREATE INDEX webhook_deliveries_open_idx ON app.webhook_deliveries (status)
  WHERE status NOT IN ('succeeded', 'failed');

CREATE TABLE app.webhook_attempts (
  id bigserial PRIMARY KEY,
  delivery_id uuid NOT NULL REFERENCES app.webhook_deliveries (id) ON DELETE CASCADE,
  attempt int NOT NULL CHECK (attempt >= 1),
  started_at timestamptz NOT NULL,
  duration_ms int NOT NULL CHECK (duration_ms >= 0),
  response_status int,
  error text,
  outcome text NOT NULL CHECK (outcome IN ('succeeded', 'failed'))
);
CREATE INDEX webhook_attempts_delivery_id_idx ON app.webhook_attempts (delivery_id, attempt);
`,
  },
  {
    version: 4,
    name: 'api clients',
    // Per-tenant OAuth clients for the client_credentials grant. Only a SHA-256
    // of each secret is stored (the secret is 32 random bytes, so a plain hash is
    // enough). Revoking sets revoked_at and keeps the row, so the audit log's
    // references stay meaningful. Owners are never API clients.
    // The app gets its DML through the default privileges, like v1's tables.
    sql: `
CREATE TABLE app.api_clients (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  client_id text NOT NULL UNIQUE CHECK (client_id ~ '^[a-z0-9-]+\\.cl_[A-Za-z0-9_-]{16,64}$'),
  secret_hash bytea NOT NULL CHECK (octet_length(secret_hash) = 32),
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 150),
  role text NOT NULL CHECK (role IN ('admin', 'member')),
  created_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz,
  revoked_at timestamptz
);
CREATE INDEX api_clients_created_at_idx ON app.api_clients (created_at);
`,
  },
  {
    version: 5,
    name: 'incoming integrations',
    // Provider configuration per tenant (the tenant is the database, so one row
    // per provider): the signing secret and, during a rotation, the previous one
    // until it expires; both are write-only through the API. An incoming event is
    // unique on (provider, event_id) for as long as the row lives, which is the
    // deduplication horizon (rows are never purged by the platform). The synced
    // records (subscriptions, payments, invoices, message deliveries) are keyed by
    // the provider's own ids, so reprocessing an event upserts instead of adding.
    // The app gets its DML through the default privileges, like v1's tables.
    sql: `
CREATE TABLE app.integration_providers (
  provider text PRIMARY KEY
    CHECK (provider IN ('user-service', 'payment-service', 'communication-service')),
  organization_id text NOT NULL CHECK (length(organization_id) BETWEEN 1 AND 200),
  secret text NOT NULL CHECK (secret ~ '^whsec_[A-Za-z0-9+/]+={0,2}$'),
  previous_secret text CHECK (previous_secret ~ '^whsec_[A-Za-z0-9+/]+={0,2}$'),
  previous_secret_expires_at timestamptz,
  secret_updated_at timestamptz NOT NULL DEFAULT now(),
  api_base_url text CHECK (api_base_url ~ '^https?://'),
  credentials jsonb,
  credentials_updated_at timestamptz,
  retry_policy jsonb NOT NULL DEFAULT '{}',
  rate_limit jsonb NOT NULL DEFAULT '{}',
  enabled boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CHECK ((previous_secret IS NULL) = (previous_secret_expires_at IS NULL))
);

-- Written by the worker: the provider API's circuit breaker and last error, for health.
CREATE TABLE app.integration_provider_status (
  provider text PRIMARY KEY,
  circuit_state text NOT NULL DEFAULT 'closed' CHECK (circuit_state IN ('closed', 'open', 'half-open')),
  circuit_open_until timestamptz,
  consecutive_failures int NOT NULL DEFAULT 0,
  last_error text,
  last_error_at timestamptz,
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE app.integration_events (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  provider text NOT NULL,
  event_id text NOT NULL CHECK (length(event_id) BETWEEN 1 AND 200),
  event_type text NOT NULL,
  organization_id text,
  payload jsonb NOT NULL,
  status text NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'processing', 'completed', 'retrying', 'failed')),
  attempts int NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  last_error text,
  next_attempt_at timestamptz,
  received_at timestamptz NOT NULL DEFAULT now(),
  processed_at timestamptz,
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (provider, event_id)
);
CREATE INDEX integration_events_received_at_idx ON app.integration_events (received_at);
CREATE INDEX integration_events_open_idx ON app.integration_events (provider, received_at)
  WHERE status NOT IN ('completed', 'failed');
CREATE INDEX integration_events_updated_at_idx ON app.integration_events (provider, updated_at);

-- Fields a provider may set on a user (never role, password or ids).
ALTER TABLE app.users ADD COLUMN title text, ADD COLUMN manager_external_id text;

CREATE TABLE app.subscriptions (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  external_id text NOT NULL UNIQUE,
  customer_id text,
  plan text,
  platform_plan text,
  status text NOT NULL,
  billing_cycle text,
  amount numeric(14, 2),
  currency text,
  trial_end timestamptz,
  current_period_start timestamptz,
  current_period_end timestamptz,
  canceled_at timestamptz,
  last_event_id text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE app.payments (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  external_id text NOT NULL UNIQUE,
  subscription_external_id text,
  status text NOT NULL CHECK (status IN ('succeeded', 'failed')),
  amount numeric(14, 2),
  currency text,
  failure_reason text,
  failure_code text,
  retry_at timestamptz,
  attempt_number int,
  occurred_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payments_subscription_idx ON app.payments (subscription_external_id);

CREATE TABLE app.invoices (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  external_id text NOT NULL UNIQUE,
  subscription_external_id text,
  customer_id text,
  status text,
  amount numeric(14, 2),
  currency text,
  due_date timestamptz,
  issued_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE app.message_deliveries (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  message_id text NOT NULL UNIQUE,
  recipient text,
  template text,
  status text NOT NULL,
  detail jsonb NOT NULL DEFAULT '{}',
  last_event_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
`,
  },
  {
    version: 6,
    name: 'outbox notifications',
    // Tells listening relays that outbox rows were committed, so they relay at
    // once instead of at their next poll. One notification per statement and
    // topic root (the topic up to its first dot, e.g. "integration"), so each
    // relay wakes only for its own rows; PostgreSQL delivers them at commit and
    // folds identical ones within a transaction. The relays read the rows
    // themselves. The channel is `outboxChannel` below. OR REPLACE and IF
    // EXISTS keep it safe on a database where these objects already exist.
    sql: `
CREATE OR REPLACE FUNCTION app.notify_outbox() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_catalog.pg_notify('app_outbox', root)
     FROM (SELECT DISTINCT left(split_part(topic, '.', 1), 100) AS root FROM inserted) AS roots;
  RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS outbox_notify ON app.outbox;
CREATE TRIGGER outbox_notify AFTER INSERT ON app.outbox
  REFERENCING NEW TABLE AS inserted
  FOR EACH STATEMENT EXECUTE FUNCTION app.notify_outbox();
`,
  },
  {
    version: 7,
    name: 'verified email addresses',
    // When the user last proved to control the address (a mailed token, or an
    // SSO sign-in whose IdP vouches for it). NULL means never: SSO then takes
    // the account over instead of linking to a password someone else may have
    // chosen (docs/sso.md). Rows that exist now stay NULL: the old
    // self-registration left nothing that tells its accounts apart.
    sql: `
ALTER TABLE app.users ADD COLUMN IF NOT EXISTS email_verified_at timestamptz;
`,
  },
  {
    version: 8,
    name: 'tenant uid of refresh tokens and api clients',
    // The uid of the Tenant a refresh token or API client was issued under. A
    // database kept under deletionPolicy Retain can come back under a new
    // Tenant of the same name, which must refuse what the earlier one issued.
    // Rows from before this migration stay NULL (refused) unless the operator
    // stamps them for the Tenant that owned the database all along
    // (claimLegacyRows in migrate.ts).
    sql: `
ALTER TABLE app.refresh_tokens ADD COLUMN tenant_uid text CHECK (length(tenant_uid) BETWEEN 1 AND 64);
ALTER TABLE app.api_clients ADD COLUMN tenant_uid text CHECK (length(tenant_uid) BETWEEN 1 AND 64);
`,
  },
  {
    version: 9,
    name: 'trace context of outbox rows',
    // The W3C trace context (`traceparent`, `tracestate`) of the request or
    // message that wrote the row, so the relay publishes it in the same trace
    // (docs/tracing.md). NULL when tracing is off. A W3C tracestate is at
    // most 512 characters; the bound keeps a stray value from bloating the row.
    sql: `
ALTER TABLE app.outbox ADD COLUMN IF NOT EXISTS trace_context jsonb
  CHECK (jsonb_typeof(trace_context) = 'object' AND octet_length(trace_context::text) <= 1024);
`,
  },
];

/** The channel migration 6 notifies, with each inserted topic's root as the payload. */
export const outboxChannel = 'app_outbox';

/**
 * Tables in schema `app` on which the app role may only SELECT and INSERT.
 * Migrations revoke the rest themselves; this list lets a recreated app role
 * get the same privileges back. Keep it in step with the migrations.
 */
export const appendOnlyTables: readonly string[] = ['audit_log'];
