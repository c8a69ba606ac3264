import type { AddressInfo } from 'node:net';
import http from 'node:http';
import { Writable } from 'node:stream';
import { expect } from 'chai';
import express from 'express';
import { pino } from 'pino';
import { redactPaths } from '../../../lib/logger.js';
import { accessLog } from '../../../api/src/http/access-log.js';

interface Line {
  level: number;
  msg: string;
  reqId: string;
  req: { method: string; url: string };
  res: { statusCode: number };
  responseTime: number;
}

describe('access log', () => {
  const lines: Line[] = [];
  let server: http.Server;
  let base: string;
  let releaseSlow: (() => void) | undefined;

  before(async () => {
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(JSON.parse(chunk.toString()) as Line);
        done();
      },
    });
    const log = pino({ redact: { paths: redactPaths, censor: '[redacted]' } }, sink);
    const app = express();
    app.use(accessLog(log, { skip: (path) => path === '/healthz' }));
    app.get('/healthz', (_req, res) => void res.json({ ok: true }));
    app.get('/teapot', (_req, res) => void res.status(418).json({ short: true }));
    app.get('/boom', (_req, res) => void res.status(503).end());
    app.get('/slow', (_req, res) => {
      releaseSlow = () => res.end();
    });
    server = app.listen(0, '127.0.0.1');
    await new Promise((ok) => server.once('listening', ok));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise((ok) => server.close(ok)));
  beforeEach(() => {
    lines.length = 0;
  });

  const settled = async (count: number) => {
    for (let i = 0; i < 100 && lines.length < count; i++) await new Promise((ok) => setTimeout(ok, 10));
    expect(lines).to.have.length(count);
  };

  it('logs one line per request: method, path without the query, status, duration and the request id', async () => {
    const res = await fetch(`${base}/teapot?code=one-time-secret`, {
      headers: { 'x-request-id': 'trace-42', authorization: 'Bearer abc' },
    });
    expect(res.headers.get('x-request-id')).to.equal('trace-42');
    await settled(1);
    const [line] = lines;
    expect(line).to.include({ level: 30, msg: 'request completed', reqId: 'trace-42' });
    expect(line!.req).to.deep.equal({ method: 'GET', url: '/teapot' });
    expect(line!.res).to.deep.equal({ statusCode: 418 });
    expect(line!.responseTime).to.be.a('number').at.least(0);
    expect(JSON.stringify(line)).not.to.match(/one-time-secret|Bearer|abc/);
  });

  it('replaces a malformed request id with a fresh one', async () => {
    const res = await fetch(`${base}/teapot`, { headers: { 'x-request-id': 'bad id\twith spaces' } });
    const id = res.headers.get('x-request-id') ?? '';
    expect(id).to.match(/^[0-9a-f-]{36}$/);
    await settled(1);
    expect(lines[0]!.reqId).to.equal(id);
  });

  it('logs server errors at error level', async () => {
    await fetch(`${base}/boom`);
    await settled(1);
    expect(lines[0]).to.include({ level: 50, msg: 'request failed' });
    expect(lines[0]!.res.statusCode).to.equal(503);
  });

  it('logs a request the client abandoned at warn level', async () => {
    const req = http.get(`${base}/slow`);
    req.on('error', () => undefined);
    for (let i = 0; i < 100 && !releaseSlow; i++) await new Promise((ok) => setTimeout(ok, 10));
    req.destroy();
    await settled(1);
    expect(lines[0]).to.include({ level: 40, msg: 'request aborted' });
    expect(lines[0]!.req.url).to.equal('/slow');
    releaseSlow?.();
  });

  it('gives probes an id but no log line', async () => {
    const res = await fetch(`${base}/healthz/`);
    expect(res.headers.get('x-request-id')).to.be.a('string');
    await new Promise((ok) => setTimeout(ok, 50));
    expect(lines).to.have.length(0);
  });
});
