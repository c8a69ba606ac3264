import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { tracingEnabled } from '../../../lib/telemetry/index.js';
import { OtlpReceiver } from '../../harness/otlp-receiver.js';
import { repoRoot } from '../../harness/repo-root.js';
import { eventually } from '../../harness/wait.js';

const probe = fileURLToPath(new URL('./telemetry-process.ts', import.meta.url));

/** What telemetry-process.ts finds in a process started with `env` and no other OTEL_* variable. */
function runProbe(env: Record<string, string>): Promise<any> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('OTEL_')));
  return new Promise((ok, fail) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', probe],
      { cwd: repoRoot, env: { ...clean, ...env }, timeout: 20_000 },
      (error, stdout, stderr) => {
        if (error) return fail(new Error(`${error.message}\n${stderr}`));
        ok(JSON.parse(stdout.trim().split('\n').at(-1)!));
      },
    );
  });
}

describe('telemetry: OTEL_* configuration', function () {
  this.timeout(30_000);

  it('is on only with an OTLP endpoint, and off when the SDK or the trace exporter is disabled', () => {
    const endpoint = 'http://127.0.0.1:4318';
    expect(tracingEnabled({})).to.equal(false);
    expect(tracingEnabled({ OTEL_EXPORTER_OTLP_ENDPOINT: '' })).to.equal(false);
    expect(tracingEnabled({ OTEL_EXPORTER_OTLP_ENDPOINT: '  ' })).to.equal(false);
    expect(tracingEnabled({ OTEL_SERVICE_NAME: 'x', OTEL_TRACES_SAMPLER: 'always_on' })).to.equal(false);
    expect(tracingEnabled({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint })).to.equal(true);
    expect(tracingEnabled({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${endpoint}/v1/traces` })).to.equal(true);
    expect(tracingEnabled({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_SDK_DISABLED: 'true' })).to.equal(
      false,
    );
    expect(tracingEnabled({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_SDK_DISABLED: 'TRUE' })).to.equal(
      false,
    );
    expect(tracingEnabled({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_SDK_DISABLED: 'false' })).to.equal(
      true,
    );
    expect(tracingEnabled({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_TRACES_EXPORTER: 'none' })).to.equal(
      false,
    );
    expect(tracingEnabled({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_TRACES_EXPORTER: 'otlp' })).to.equal(
      true,
    );
  });

  it('starts no SDK without an OTLP endpoint: nothing loaded, spans do not record, no context travels', async () => {
    const envs: Record<string, string>[] = [
      {},
      { OTEL_SDK_DISABLED: 'true', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9' },
    ];
    for (const env of envs) {
      const result = await runProbe(env);
      expect(result, JSON.stringify(env)).to.deep.include({
        enabled: false,
        sdkLoaded: false,
        recording: false,
        carrier: null,
      });
      // No propagator is registered: not even a well-formed traceparent is read.
      expect(result.parents.good).to.equal(null);
    }
  });

  describe('with an OTLP endpoint', () => {
    let receiver: OtlpReceiver;

    before(async () => {
      receiver = new OtlpReceiver();
      await receiver.start();
    });

    after(() => receiver.close());

    it('exports spans as the process service, and carries W3C trace context', async () => {
      const result = await runProbe({
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      });
      expect(result).to.deep.include({ enabled: true, sdkLoaded: true, recording: true });
      expect(result.carrier.traceparent).to.match(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
      const exported = await eventually('the exported span', () =>
        Promise.resolve(receiver.spans.find((s) => s.name === 'probe span')),
      );
      // Flushed by shutdown: the process exited before the batch delay.
      expect(exported.service).to.equal('tenantry-probe');
      expect(result.carrier.traceparent).to.include(exported.traceId);
    });

    it('reads a parent only from a well-formed traceparent; anything else starts a new trace', async () => {
      const { parents } = await runProbe({
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      });
      expect(parents).to.deep.equal({
        good: 'b7ad6b7169203331',
        buffer: 'b7ad6b7169203331',
        missing: null,
        null: null,
        string: null,
        number: null,
        malformed: null,
        zeroTrace: null,
        array: null,
      });
    });

    it('lets OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES name the service', async () => {
      await runProbe({
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_SERVICE_NAME: 'named-by-env',
      });
      await runProbe({
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_RESOURCE_ATTRIBUTES: 'service.name=named-by-attributes,deployment.environment.name=test',
      });
      const services = new Set(receiver.spans.map((s) => s.service));
      expect([...services]).to.include.members(['named-by-env', 'named-by-attributes']);
    });
  });
});
