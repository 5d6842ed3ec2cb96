import * as amqp from 'amqplib';
import type { Logger } from '../../observability/logger';
import { describeError } from '../../errors';
import type { Secret } from '../../config/secret';

/**
 * Manila's notifications on RabbitMQ (oslo.messaging `messagingv2`): a
 * private, exclusive queue bound to the `notifications.*` topics of the
 * control exchange (`openstack` unless Manila sets another). Every `share*` event (share.create.end,
 * share.delete.end, share_network...) asks the source for an early resync;
 * the event's content is not trusted or used (hints only: Manila emits
 * nothing for access rules, so polling stays the source of truth).
 * State: the connection and channel, reconnect timer and attempt count,
 * counters for status. Reconnects with backoff and jitter, forever, until
 * close().
 */
export interface NotificationStatus {
  connected: boolean;
  received: number;
  lastEvent: string | null;
  lastEventAt: string | null;
  lastError: { code: string; message: string } | null;
}

export class ManilaNotifications {
  private conn: amqp.ChannelModel | null = null;
  private timer: NodeJS.Timeout | null = null;
  private failures = 0;
  private closed = false;
  readonly status: NotificationStatus = { connected: false, received: 0, lastEvent: null, lastEventAt: null, lastError: null };

  constructor(
    private readonly url: Secret,
    private readonly exchange: string,
    private readonly onHint: (event: string) => void,
    private readonly log: Logger,
  ) {}

  start(): void {
    void this.connect();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== null) {
      clearTimeout(this.timer);
    }
    const c = this.conn;
    this.conn = null;
    if (c !== null) {
      await c.close().catch(() => undefined);
    }
  }

  private async connect(): Promise<void> {
    if (this.closed) {
      return;
    }
    try {
      const conn = await amqp.connect(this.url.reveal(), { timeout: 10_000 });
      if (this.closed) {
        await conn.close().catch(() => undefined);
        return;
      }
      this.conn = conn;
      conn.on('error', () => undefined);
      conn.on('close', () => this.lost('connection closed'));
      const ch = await conn.createChannel();
      ch.on('error', () => undefined);
      // The exchange exists once any Manila service started (RPC uses it
      // too); its flags are Manila's, so it is checked, never declared.
      await ch.checkExchange(this.exchange);
      const q = await ch.assertQueue('', { exclusive: true, autoDelete: true, durable: false });
      await ch.bindQueue(q.queue, this.exchange, 'notifications.*');
      await ch.consume(
        q.queue,
        (msg) => {
          if (msg === null) {
            return;
          }
          const event = eventType(msg.content);
          this.status.received++;
          this.status.lastEvent = event;
          this.status.lastEventAt = new Date().toISOString();
          if (event !== null && /^share/.test(event)) {
            this.onHint(event);
          }
        },
        { noAck: true },
      );
      this.failures = 0;
      this.status.connected = true;
      this.status.lastError = null;
      this.log.info({ exchange: this.exchange }, 'listening to Manila notifications');
    } catch (err) {
      this.lost(err);
    }
  }

  private lost(err: unknown): void {
    const wasConnected = this.status.connected;
    this.status.connected = false;
    const c = this.conn;
    this.conn = null;
    if (c !== null) {
      void c.close().catch(() => undefined);
    }
    if (this.closed || this.timer !== null) {
      return;
    }
    // amqplib's messages can quote the URL; keep only the errno-like code.
    const d = describeError(err);
    this.status.lastError = { code: d.code, message: typeof err === 'string' ? err : d.code };
    this.failures++;
    if (wasConnected || this.failures === 1) {
      this.log.warn({ code: d.code }, 'Manila notifications unavailable; polling only until they are back');
    }
    const delay = Math.min(60_000, 1000 * 2 ** Math.min(this.failures, 6)) * (0.5 + Math.random() / 2);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.connect();
    }, delay);
    this.timer.unref();
  }
}

/** `event_type` of an oslo.messaging v2 envelope (or a bare v1 message). */
export function eventType(body: Buffer): string | null {
  try {
    const outer = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
    const inner = typeof outer['oslo.message'] === 'string' ? (JSON.parse(outer['oslo.message']) as Record<string, unknown>) : outer;
    const e = inner['event_type'];
    // The broker's word: it goes into status and a debug line, so bound it.
    return typeof e === 'string' ? e.slice(0, 200) : null;
  } catch {
    return null;
  }
}
