// Wiring of the send path's parts from configuration and flags: which transport (SMTP relay or
// .eml outbox), and the adaptive pace at the configured rate.
import { lookup, lookupService } from 'node:dns/promises';
import { hostname } from 'node:os';
import { BulletinError } from '../domain/errors.js';
import { checkHeloName } from '../domain/helo.js';
import { createOutboxTransport } from '../send/outbox-transport.js';
import { createRelayPool } from '../send/relay-pool.js';
import { parseRelayList } from '../send/relay-url.js';
import { createSmtpTransport } from '../send/smtp-transport.js';
import { AdaptivePace } from '../send/adaptive.js';
import type { SendEvents } from '../send/send-events.js';
import type { Transport } from '../send/transport.js';
import { dataTimeoutMs, parseRates, type Config, type SendSettings } from './config.js';

/** Where to send (`outbox`: .eml files instead of the relay) and how (default: the configuration's). */
export interface TransportChoice {
  readonly outbox?: string;
  readonly connections?: number;
  readonly messagesPerConnection?: number;
  readonly dataTimeoutMs?: number;
  /** Told when a relay goes down and comes back. */
  readonly events?: SendEvents;
}

export async function openTransport(config: Config, flags: TransportChoice): Promise<Transport> {
  if (flags.outbox !== undefined) return createOutboxTransport(flags.outbox);
  if (config.smtpUrl === null) {
    throw new BulletinError('CONFIG', 'No relay to send through: set SMTP_URL (e.g. smtp://relay.example.net:587), or write .eml files with --outbox DIR.');
  }
  const relays = parseRelayList(config.smtpUrl, config.smtpUser, config.smtpPass);
  const socketMs = flags.dataTimeoutMs ?? dataTimeoutMs(config.dataTimeout);
  const helos = await Promise.all(relays.map((relay) => relay.helo ?? config.smtpHelo ?? machineHeloName(relay.host)));
  // Even one relay goes through the pool: when it is down, sends wait for it instead of deferring.
  return createRelayPool(
    relays.map((relay, index) => ({
      weight: relay.weight,
      transport: createSmtpTransport({
        url: relay.description,
        relay,
        helo: helos[index]!,
        connections: flags.connections ?? config.connections,
        messagesPerConnection: flags.messagesPerConnection ?? 100,
        timeoutsMs: { socket: socketMs },
      }),
    })),
    flags.events ? { events: flags.events } : {},
  );
}

/**
 * The EHLO name when none is configured: this machine's fully qualified name (its host name if that
 * has a dot, else the name its address resolves back to). Without one, a relay on this machine
 * (loopback) is greeted as `localhost`; any other relay would see an address literal, so that is
 * refused with the setting to use instead.
 */
export async function machineHeloName(relayHost: string): Promise<string> {
  const candidates = [hostname()];
  try {
    const { address } = await lookup(hostname());
    candidates.push((await lookupService(address, 25)).hostname);
  } catch {
    // No address for this host name: only its own name can say.
  }
  for (const candidate of candidates) {
    const checked = checkHeloName(candidate);
    if (checked.ok) return checked.name;
  }
  if (isLoopback(relayHost)) return 'localhost';
  throw new BulletinError(
    'CONFIG',
    `This machine's name "${hostname()}" is not fully qualified, and receivers distrust an EHLO without one: set SMTP_HELO=mail.example.net (or ?helo= on the relay in SMTP_URL).`,
  );
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** The configured rate (messages per second), and the adaptive pace that lowers it under relay pushback. */
export function createPacing(rate: string, floor: string): { rate: number; pace: AdaptivePace } {
  return pacingOf(parseRates(rate, floor));
}

export function pacingOf(settings: Pick<SendSettings, 'rate' | 'floorRate'>): { rate: number; pace: AdaptivePace } {
  return { rate: settings.rate, pace: new AdaptivePace({ maxRate: settings.rate, floorRate: settings.floorRate }) };
}
