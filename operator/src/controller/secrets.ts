// Step 4: the connection Secret in the tenant namespace, and its copy in the
// platform namespace that the shared API reads.
import { jdbcUri, pgpassLine, postgresUri, type ConnectionInfo } from '../sql/connection-info.js';
import { databaseSecret, platformDatabaseSecret } from '../specs/index.js';
import type { Step } from './context.js';

export const secretsStep: Step = {
  condition: 'Secrets',
  async run(ctx) {
    const { tenant, names, deps } = ctx;
    const credentials = ctx.dbCredentials;
    if (!credentials) throw new Error('database credentials are not known yet');
    const { host, port } = deps.endpoints.postgres;
    const info: ConnectionInfo = {
      host,
      port,
      database: names.database,
      user: credentials.username,
      password: credentials.password,
    };
    const data = {
      host,
      port: String(port),
      dbname: names.database,
      username: credentials.username,
      password: credentials.password,
      uri: postgresUri(info),
      'jdbc-uri': jdbcUri(info),
      pgpass: pgpassLine(info),
    };
    // The platform copy first: it is the source of truth for the password.
    await deps.cluster.apply(platformDatabaseSecret(tenant, data, deps.build.secretsNamespace));
    await deps.cluster.apply(databaseSecret(tenant, data));
    ctx.dbSecretData = data;
    (ctx.status.database ??= {}).secretName = names.dbSecret;
    return { reason: 'Ready', message: `Secret ${names.dbSecret} holds the connection details` };
  },
};
