// The Prometheus metrics of one process (prom-client, on a registry of its own): a send's listener
// (SendEvents) for send, resume, retry and worker, with the queue depth counted at scrape time, and
// the web server's unsubscribes and requests for serve, the mail inbound took or refused. Every
// metric is named in README, "Metrics and logs".
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { DELIVERY_STATES } from '../../domain/delivery.js';
import type { SendEvents } from '../../send/send-events.js';
import { INBOUND_OUTCOMES, type InboundOutcome } from '../inbound.js';
import { countByState } from '../../store/deliveries.js';
import type { App } from '../context.js';

/** A registry and its text, for GET /metrics. */
export interface MetricsSource {
  readonly contentType: string;
  text(): Promise<string>;
}

/** Outcomes `bulletin_deliveries_total` counts (each shows, at 0, before the first). */
const OUTCOMES = ['sent', 'deferred', 'failed', 'uncertain', 'skipped'] as const;
const REPLY_CLASSES = ['2xx', '4xx', '5xx', 'none'] as const;
/** The sends whose queue depth a scrape counts: the latest this process worked on. */
const WATCHED_SENDS = 20;

/** A process's own registry, with prom-client's default metrics, and its text for GET /metrics. */
abstract class OwnRegistry implements MetricsSource {
  protected readonly registry = new Registry();
  readonly contentType = this.registry.contentType;

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  protected counter(name: string, help: string, labelNames: string[] = []): Counter {
    return new Counter({ name, help, labelNames, registers: [this.registry] });
  }

  protected gauge(name: string, help: string, labelNames: string[]): Gauge {
    return new Gauge({ name, help, labelNames, registers: [this.registry] });
  }
}

/** The metrics of a sending process; `events` is its listener, `watchQueue` lets scrapes count the queue. */
export class SendMetrics extends OwnRegistry {
  private app: App | null = null;
  /** Bulletin ids this process worked on, oldest first. */
  private readonly sends: number[] = [];
  private readonly causes = new Map<number, string>();
  /** While the database is unreachable: up to when its seconds were counted. */
  private downCountedTo: number | null = null;

  private readonly deliveries = this.counter('bulletin_deliveries_total', 'Outcomes this process recorded, by outcome (each attempt counts)', ['outcome']);
  private readonly attempts = this.counter('bulletin_attempts_total', 'Messages this process handed to a relay and got an outcome for', []);
  private readonly replies = this.counter('bulletin_smtp_replies_total', "Relays' replies to those messages, by class (none: no reply)", ['class']);
  private readonly pace = this.gauge('bulletin_pace_messages_per_second', 'The pace allowed now, in messages per second, by bulletin', ['bulletin']);
  private readonly paceCause = this.gauge('bulletin_pace_cause', 'Why the pace is what it is (1 for the current cause), by bulletin', ['bulletin', 'cause']);
  private readonly paused = this.gauge('bulletin_paused', '1 while the send is paused (bulletin pause), by bulletin', ['bulletin']);
  private readonly relayUp = this.gauge('bulletin_relay_up', '1 while the relay takes sessions, 0 while it is down (cooling down)', ['relay']);
  private readonly databaseUp = this.gauge('bulletin_database_up', '1 while the database answers, 0 while it is unreachable', []);
  private readonly unreachable: Counter;

  constructor() {
    super();
    for (const outcome of OUTCOMES) this.deliveries.inc({ outcome }, 0);
    for (const replyClass of REPLY_CLASSES) this.replies.inc({ class: replyClass }, 0);
    this.attempts.inc(0);
    this.databaseUp.set(1);
    const countDownSeconds = () => this.countDownSeconds();
    const countQueues = (gauge: Gauge) => this.countQueues(gauge);
    this.unreachable = new Counter({
      name: 'bulletin_database_unreachable_seconds_total',
      help: 'Seconds this process found the database unreachable',
      registers: [this.registry],
      collect() {
        countDownSeconds();
      },
    });
    new Gauge({
      name: 'bulletin_queue_deliveries',
      help: 'Deliveries by state, of the sends this process works on (counted at each scrape), by bulletin',
      labelNames: ['bulletin', 'state'],
      registers: [this.registry],
      async collect() {
        await countQueues(this);
      },
    });
  }

  /** From now on a scrape counts the deliveries of the sends by state in this app's database. */
  watchQueue(app: App): void {
    this.app = app;
  }

  readonly events: SendEvents = {
    sendStarted: ({ bulletinId, rate }) => {
      const at = this.sends.indexOf(bulletinId);
      if (at >= 0) this.sends.splice(at, 1);
      this.sends.push(bulletinId);
      if (this.sends.length > WATCHED_SENDS) this.sends.shift();
      if (rate !== null) this.pace.set({ bulletin: String(bulletinId) }, rate);
      this.setCause(bulletinId, 'configured');
      this.paused.set({ bulletin: String(bulletinId) }, 0);
    },
    attempt: (event) => {
      this.deliveries.inc({ outcome: event.state });
      if (!event.tried) return;
      this.attempts.inc();
      this.replies.inc({ class: event.replyClass });
      if (event.relay !== '') this.relayUp.set({ relay: event.relay }, 1);
    },
    skipped: ({ count }) => this.deliveries.inc({ outcome: 'skipped' }, count),
    paceChanged: ({ bulletinId, rate, cause }) => {
      this.pace.set({ bulletin: String(bulletinId) }, rate);
      this.setCause(bulletinId, cause ?? 'configured');
    },
    paused: ({ bulletinId }) => this.paused.set({ bulletin: String(bulletinId) }, 1),
    unpaused: ({ bulletinId }) => this.paused.set({ bulletin: String(bulletinId) }, 0),
    relayDown: ({ relay }) => this.relayUp.set({ relay }, 0),
    relayUp: ({ relay }) => this.relayUp.set({ relay }, 1),
    databaseDown: ({ since }) => {
      this.databaseUp.set(0);
      this.downCountedTo = Math.min(since.getTime(), Date.now());
    },
    databaseBack: () => {
      this.countDownSeconds();
      this.downCountedTo = null;
      this.databaseUp.set(1);
    },
  };

  private setCause(bulletinId: number, cause: string): void {
    const bulletin = String(bulletinId);
    const before = this.causes.get(bulletinId);
    if (before !== undefined && before !== cause) this.paceCause.remove({ bulletin, cause: before });
    this.causes.set(bulletinId, cause);
    this.paceCause.set({ bulletin, cause }, 1);
  }

  /** Adds the seconds of an outage still going on (or just over) to its counter. */
  private countDownSeconds(): void {
    if (this.downCountedTo === null) return;
    const now = Date.now();
    this.unreachable.inc(Math.max(0, now - this.downCountedTo) / 1000);
    this.downCountedTo = now;
  }

  /** The deliveries of each watched send by state; while the database is away, the last counts stay. */
  private async countQueues(gauge: Gauge): Promise<void> {
    const app = this.app;
    if (app === null) return;
    for (const bulletinId of this.sends) {
      const counts = await countByState(app.db, bulletinId).catch(() => null);
      if (counts === null) continue;
      for (const state of DELIVERY_STATES) gauge.set({ bulletin: String(bulletinId), state }, counts[state]);
    }
  }
}

/** Unsubscribe sources the web server records (each shows, at 0, before the first). */
const WEB_SOURCES = ['one-click', 'page'] as const;

/** The metrics of `serve`: unsubscribes by source and requests by status. */
export class WebMetrics extends OwnRegistry {
  private readonly unsubscribes = this.counter(
    'bulletin_unsubscribes_total',
    'Members who left a list through this server, by source (one-click: RFC 8058 POST; page: the button)',
    ['source'],
  );
  private readonly requests = this.counter('bulletin_http_requests_total', 'HTTP requests this server answered, by status code', ['status']);

  constructor() {
    super();
    for (const source of WEB_SOURCES) this.unsubscribes.inc({ source }, 0);
  }

  unsubscribed(source: string): void {
    this.unsubscribes.inc({ source });
  }

  answered(status: number): void {
    this.requests.inc({ status: String(status) });
  }
}

/** The metrics of `inbound`: each message by what it came to, and the recipients refused. */
export class InboundMetrics extends OwnRegistry {
  private readonly messages = this.counter(
    'bulletin_inbound_messages_total',
    'Messages this server took or refused, by outcome (hard bounce, expired, delayed, unsubscribe request, complaint, ignored, too big, not handled)',
    ['outcome'],
  );
  private readonly refusedRecipients = this.counter(
    'bulletin_inbound_recipients_refused_total',
    "Recipients refused with 550 because they are not one of the lists' own addresses",
  );

  constructor() {
    super();
    for (const outcome of INBOUND_OUTCOMES) this.messages.inc({ outcome }, 0);
    this.refusedRecipients.inc(0);
  }

  readonly counted = (outcome: InboundOutcome | 'not ours'): void => {
    if (outcome === 'not ours') this.refusedRecipients.inc();
    else this.messages.inc({ outcome });
  };
}
