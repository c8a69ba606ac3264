// The W3C trace context across RabbitMQ (docs/tracing.md). A relay
// publishes each message in a `send` span whose parent is the context stored
// with its outbox row, and puts that span's `traceparent`/`tracestate` in the
// message headers; the queue consumer processes each delivery in a `process`
// span whose parent is what the headers carry. Republished retries keep the
// headers, so every attempt of a delivery joins the same trace. With tracing
// off these are the OpenTelemetry API's no-ops and no header is added.
import { context, SpanKind, trace, type Attributes, type Span } from '@opentelemetry/api';
import { activeTraceCarrier, contextFromCarrier, endWith, tracer } from '../../lib/telemetry/index.js';

export interface MessageTarget {
  exchange: string;
  routingKey: string;
  messageId?: string | undefined;
}

function messagingAttributes(target: MessageTarget): Attributes {
  return {
    'messaging.system': 'rabbitmq',
    'messaging.destination.name': target.exchange,
    'messaging.rabbitmq.destination.routing_key': target.routingKey,
    ...(target.messageId ? { 'messaging.message.id': target.messageId } : {}),
  };
}

/**
 * Starts the `send` span of one publish, as a child of `storedContext` (an
 * outbox row's `trace_context`; without one, of whatever is active), and
 * returns it with the headers that carry it.
 */
export function startPublishSpan(
  target: MessageTarget,
  storedContext: unknown,
): { span: Span; traceHeaders: Record<string, string> } {
  const parent = contextFromCarrier(storedContext);
  const span = tracer().startSpan(
    `send ${target.exchange}`,
    {
      kind: SpanKind.PRODUCER,
      attributes: {
        ...messagingAttributes(target),
        'messaging.operation.type': 'send',
        'messaging.operation.name': 'publish',
      },
    },
    parent,
  );
  return { span, traceHeaders: activeTraceCarrier(trace.setSpan(parent, span)) ?? {} };
}

/**
 * Runs `handle` for one delivery in a `process` span whose parent is the
 * context in the message headers, so its queries, logs and outgoing requests
 * join the publisher's trace.
 */
export function inProcessSpan<T>(
  queue: string,
  target: MessageTarget,
  headers: Record<string, unknown>,
  attempt: number,
  handle: () => Promise<T>,
): Promise<T> {
  const parent = contextFromCarrier(headers);
  const span = tracer().startSpan(
    `process ${queue}`,
    {
      kind: SpanKind.CONSUMER,
      attributes: {
        ...messagingAttributes(target),
        'messaging.operation.type': 'process',
        'messaging.operation.name': 'consume',
        'messaging.destination.subscription.name': queue,
        'messaging.rabbitmq.message.delivery_attempt': attempt,
      },
    },
    parent,
  );
  return context.with(trace.setSpan(parent, span), () => endWith(span, handle()));
}
