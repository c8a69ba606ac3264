// Group commit of incoming events against a real tenant database, used
// through the tenant's login role (the API's role): concurrent requests share
// one statement, every request learns exactly which of its events were new,
// and a statement that fails fails only its own requests, storing nothing.
import { expect } from 'chai';
import pg from 'pg';
import { Sequelize } from 'sequelize';
import { ProblemError } from '../../../api/src/http/problem.js';
import {
  IntegrationEventIntake,
  type NewEvent,
} from '../../../api/src/integrations/integration-event-intake.js';
import { defineModels } from '../../../api/src/tenancy/models.js';
import type { TenantDb } from '../../../api/src/tenancy/tenant-databases.js';
import { createLogger } from '../../../lib/logger.js';
import { createTestTenantDatabase, type TestTenantDatabase } from '../../harness/tenant-database.js';
import { uniqueSuffix } from '../../harness/services.js';

const log = createLogger('integration-event-intake-test', process.env.TEST_LOG_LEVEL ?? 'silent');

function event(eventId: string, provider: NewEvent['provider'] = 'communication-service'): NewEvent {
  return {
    provider,
    eventId,
    eventType: 'message.delivered',
    organizationId: 'org_1',
    payload: JSON.stringify({
      event_type: 'message.delivered',
      event_id: eventId,
      data: { message_id: 'm' },
    }),
  };
}

async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => expect.fail('expected a rejection'),
    (error: unknown) => error,
  );
}

describe('incoming event store (group commit, tenant database)', function () {
  this.timeout(60_000);

  let database: TestTenantDatabase;
  let superuser: pg.Client;
  const handles: TenantDb[] = [];
  /** Insert statements sent through handles made by `tenantDb`. */
  let inserts = 0;

  function tenantDb(): TenantDb {
    const sequelize = new Sequelize(database.loginUrl, {
      dialect: 'postgres',
      pool: { max: 4 },
      logging: (sql: string) => {
        if (sql.includes('INSERT INTO app.integration_events')) inserts += 1;
      },
    });
    const db = { tenant: 'store-test', sequelize, models: defineModels(sequelize) };
    handles.push(db);
    return db;
  }

  async function stored(eventIds: string[]): Promise<{ events: number; outbox: number }> {
    const { rows } = await superuser.query<{ events: number; outbox: number }>(
      `SELECT (SELECT count(*)::int FROM app.integration_events WHERE event_id = ANY($1)) AS events,
              (SELECT count(*)::int FROM app.outbox o JOIN app.integration_events e ON o.payload->>'event' = e.id::text
                WHERE e.event_id = ANY($1)
                  AND o.topic = 'integration.' || e.provider || '.' || e.event_type) AS outbox`,
      [eventIds],
    );
    return rows[0]!;
  }

  before(async () => {
    database = await createTestTenantDatabase('intake');
    superuser = new pg.Client({ connectionString: database.superuserUrl });
    await superuser.connect();
  });

  after(async () => {
    await Promise.all(handles.map((h) => h.sequelize.close()));
    await superuser?.end();
    await database?.drop();
  });

  it('puts concurrent requests in one statement and tells each exactly which of its events were new', async () => {
    const db = tenantDb();
    const store = new IntegrationEventIntake(log);
    const run = uniqueSuffix();
    const ids = Array.from({ length: 10 }, (_, i) => `evt_${run}_${i}`);
    // 40 requests, each event_id in four of them; every fifth request also repeats its own event.
    const requests = Array.from({ length: 40 }, (_, r) => {
      const events = [event(ids[r % 10]!)];
      if (r % 5 === 0) events.push(event(ids[r % 10]!));
      return events;
    });
    // The same event_id from another provider is a different event.
    requests.push([event(ids[0]!, 'user-service')]);
    inserts = 0;
    const results = await Promise.all(requests.map((events) => store.store(db, events)));
    expect(inserts).to.equal(1);

    const accepted = new Map<string, string[]>();
    results.forEach((rowIds, r) =>
      rowIds.forEach((id, i) => {
        if (id === undefined) return;
        const e = requests[r]![i]!;
        const key = `${e.provider}/${e.eventId}`;
        accepted.set(key, [...(accepted.get(key) ?? []), id]);
      }),
    );
    expect([...accepted.values()].map((v) => v.length)).to.deep.equal(Array(11).fill(1));
    expect(await stored(ids)).to.deep.equal({ events: 11, outbox: 11 });
    const { rows } = await superuser.query<{ id: string; provider: string; event_id: string }>(
      'SELECT id, provider, event_id FROM app.integration_events WHERE event_id = ANY($1)',
      [ids],
    );
    for (const row of rows) expect(accepted.get(`${row.provider}/${row.event_id}`)).to.deep.equal([row.id]);

    // Sent again, every one is a duplicate and nothing more is stored.
    const again = await Promise.all(requests.map((events) => store.store(db, events)));
    expect(again.flat().every((id) => id === undefined)).to.equal(true);
    expect(await stored(ids)).to.deep.equal({ events: 11, outbox: 11 });
  });

  it('accepts an event once when two replicas store it at the same moment', async () => {
    const run = uniqueSuffix();
    const ids = Array.from({ length: 50 }, (_, i) => `race_${run}_${i}`);
    const replicas = [0, 1].map(() => ({ db: tenantDb(), store: new IntegrationEventIntake(log) }));
    // Opposite orders: without a common lock order the two statements would deadlock.
    const [one, other] = await Promise.all([
      Promise.all(ids.map((id) => replicas[0]!.store.store(replicas[0]!.db, [event(id)]))),
      Promise.all(ids.toReversed().map((id) => replicas[1]!.store.store(replicas[1]!.db, [event(id)]))),
    ]);
    const acceptedPerId = ids.map(
      (_, i) => [one[i]![0], other.toReversed()[i]![0]].filter((id) => id !== undefined).length,
    );
    expect(acceptedPerId).to.deep.equal(Array(ids.length).fill(1));
    expect(await stored(ids)).to.deep.equal({ events: ids.length, outbox: ids.length });
  });

  it('fails only the requests of a failed statement, with a 503, storing none of their events', async () => {
    const db = tenantDb();
    const store = new IntegrationEventIntake(log);
    const run = uniqueSuffix();
    const poison = `poison_${run}`;
    // The insider's trigger fails the statement once the other rows of the group are already inserted.
    await superuser.query(`
      CREATE FUNCTION app.refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.event_id LIKE 'poison\\_%' THEN RAISE EXCEPTION 'refused'; END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER refuse_poison AFTER INSERT ON app.integration_events
        FOR EACH ROW EXECUTE FUNCTION app.refuse_poison();`);
    try {
      const before = store.store(db, [event(`first_${run}`)]);
      // The first statement has started: these two wait for it and then share the next one.
      await new Promise((ok) => setImmediate(ok));
      const good = store.store(db, [event(`good_${run}_0`), event(`good_${run}_1`)]);
      const bad = store.store(db, [event(poison)]);
      expect((await before)[0]).to.be.a('string');
      for (const failed of [good, bad]) {
        const error = await rejectionOf(failed);
        expect(error).to.be.instanceOf(ProblemError);
        expect((error as ProblemError).status).to.equal(503);
        expect((error as ProblemError).extra.headers).to.have.property('Retry-After');
      }
      expect(await stored([`good_${run}_0`, `good_${run}_1`, poison])).to.deep.equal({
        events: 0,
        outbox: 0,
      });
    } finally {
      await superuser.query('DROP TRIGGER refuse_poison ON app.integration_events');
      await superuser.query('DROP FUNCTION app.refuse_poison()');
    }
    // The queue goes on after a failure; a retry stores the good events.
    const retried = await store.store(db, [event(`good_${run}_0`), event(`good_${run}_1`)]);
    expect(retried.every((id) => typeof id === 'string')).to.equal(true);
    expect(await stored([`good_${run}_0`, `good_${run}_1`])).to.deep.equal({ events: 2, outbox: 2 });
  });

  it('splits a long queue into statements of at most the cap, never splitting a request', async () => {
    const db = tenantDb();
    const store = new IntegrationEventIntake(log, 10);
    const run = uniqueSuffix();
    const requests = Array.from({ length: 8 }, (_, r) =>
      Array.from({ length: r === 3 ? 12 : 4 }, (_, i) => event(`cap_${run}_${r}_${i}`)),
    );
    inserts = 0;
    const results = await Promise.all(requests.map((events) => store.store(db, events)));
    expect(results.flat().every((id) => typeof id === 'string')).to.equal(true);
    // 4+4 | 4 | 12 | 4+4 | 4+4: a request never waits behind a cap it cannot meet.
    expect(inserts).to.equal(5);
  });
});
