import { createHash, createHmac } from 'node:crypto';
import { expect } from 'chai';
import pg from 'pg';
import {
  jdbcUri,
  pgpassLine,
  postgresUri,
  scramSha256Verifier,
  type ConnectionInfo,
} from '../../../operator/src/sql/connection-info.js';

const awkward: ConnectionInfo = {
  host: 'db.tenantry.svc',
  port: 5432,
  database: 'tenant_acme',
  user: 'tenant_acme_a',
  password: 'p@ss:w/o?r#d %&\\=+ ok',
};

describe('tenant connection info', () => {
  it('builds a URI that node-postgres reads back field by field', () => {
    const uri = postgresUri(awkward, { sslmode: 'disable' });
    expect(uri.startsWith('postgresql://tenant_acme_a:')).to.be.true;
    expect(uri).to.not.include(awkward.password);
    const client = new pg.Client({ connectionString: uri });
    expect(client.user).to.equal(awkward.user);
    expect(client.password).to.equal(awkward.password);
    expect(client.host).to.equal(awkward.host);
    expect(client.port).to.equal(5432);
    expect(client.database).to.equal(awkward.database);
    expect(new URL(uri).searchParams.get('sslmode')).to.equal('disable');
  });

  it('brackets an IPv6 host', () => {
    const uri = postgresUri({ ...awkward, host: '::1', password: 'x' });
    expect(uri).to.equal('postgresql://tenant_acme_a:x@[::1]:5432/tenant_acme');
  });

  it('puts JDBC credentials in the query, encoded', () => {
    const uri = jdbcUri(awkward, { sslmode: 'require' });
    expect(uri.startsWith('jdbc:postgresql://db.tenantry.svc:5432/tenant_acme?')).to.be.true;
    const query = new URL(uri.slice('jdbc:'.length)).searchParams;
    expect(query.get('user')).to.equal(awkward.user);
    expect(query.get('password')).to.equal(awkward.password);
    expect(query.get('sslmode')).to.equal('require');
    expect(uri).to.not.include(' ');
  });

  it('escapes backslash and colon in a .pgpass line', () => {
    const line = pgpassLine({ ...awkward, password: 'a:b\\c' });
    expect(line).to.equal('db.tenantry.svc:5432:tenant_acme:tenant_acme_a:a\\:b\\\\c');
    // Split on unescaped colons only: exactly five fields, the last one the password.
    const fields = line.split(/(?<!\\):/);
    expect(fields).to.have.length(5);
    expect(fields[4]?.replaceAll(/\\(.)/g, '$1')).to.equal('a:b\\c');
  });

  describe('SCRAM-SHA-256 verifier', () => {
    // RFC 7677 section 3: user "user", password "pencil".
    const salt = Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64');
    const authMessage =
      'n=user,r=rOprNGfwEbeRWgbNEkqO,' +
      'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,' +
      'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0';

    it('matches the RFC 7677 test vector', () => {
      const verifier = scramSha256Verifier('pencil', { salt, iterations: 4096 });
      const match = /^SCRAM-SHA-256\$4096:([^$]+)\$([^:]+):(.+)$/.exec(verifier);
      expect(match, verifier).to.not.be.null;
      const [, saltB64, storedB64, serverB64] = match ?? [];
      expect(saltB64).to.equal('W22ZaJ0SNY7soEsUEjb6gQ==');
      const serverKey = Buffer.from(serverB64 ?? '', 'base64');
      const serverSignature = createHmac('sha256', serverKey).update(authMessage).digest('base64');
      expect(serverSignature).to.equal('6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=');
      // The client proof from the RFC, minus the client signature, is the client key; its hash is the stored key.
      const storedKey = Buffer.from(storedB64 ?? '', 'base64');
      const clientSignature = createHmac('sha256', storedKey).update(authMessage).digest();
      const proof = Buffer.from('dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=', 'base64');
      const clientKey = Buffer.from(proof.map((byte, i) => byte ^ (clientSignature[i] ?? 0)));
      expect(createHash('sha256').update(clientKey).digest().equals(storedKey)).to.be.true;
    });

    it('uses a fresh salt each time and never contains the password', () => {
      const a = scramSha256Verifier('correct horse');
      const b = scramSha256Verifier('correct horse');
      expect(a).to.not.equal(b);
      expect(a).to.not.include('correct horse');
    });

    it('refuses passwords SASLprep could change, without echoing them', () => {
      expect(() => scramSha256Verifier('pässwörd'))
        .to.throw(/printable ASCII/)
        .with.property('message')
        .that.does.not.include('pässwörd');
      expect(() => scramSha256Verifier('')).to.throw(/printable ASCII/);
    });
  });
});
