// `bulletin inbound`: the SMTP server an operator puts behind the MX (or a Postfix transport) of the
// lists' domain. It takes mail only for the lists' own addresses (LIST-unsubscribe@, the bounce
// address and its VERP forms, the complaints address) and handles each message as `bounces process`
// would (mailHandler), in its own transaction, before it answers 250.
import { effectiveBounceAddress } from '../domain/list.js';
import { unsubscribeMailbox } from '../domain/links.js';
import { BulletinError } from '../domain/errors.js';
import type { InboundAddressKind } from '../bounce/inbound-mail.js';
import { DEFAULT_INBOUND_LIMITS, startInbound, type InboundLimits, type InboundRefusal, type RunningInbound } from '../bounce/smtp-receiver.js';
import { selectListsWithCounts } from '../store/lists.js';
import { mailHandler, type BounceOutcome } from './bounces.js';
import type { App } from './context.js';

export { DEFAULT_INBOUND_LIMITS, type InboundLimits };

export interface InboundServerOptions {
  readonly host: string;
  readonly port: number;
  /** The name the server gives itself (greeting, EHLO); default: the first list's domain. */
  readonly hostname?: string;
  /** Where feedback loops send their reports (ARF); null: none besides the bounce addresses. */
  readonly complaintsAddress?: string | null;
  readonly limits?: Partial<InboundLimits>;
  /** Bounces after which a member is `bounced`; default: the configuration's. */
  readonly threshold?: number;
  readonly log: (line: string) => void;
  /** Told what each message came to, and of each recipient refused as not ours (`not ours`), for the metrics. */
  readonly counted?: (outcome: InboundOutcome | 'not ours') => void;
}

/** What one message to the inbound server came to. */
export type InboundOutcome = 'hard bounce' | 'expired' | 'delayed' | 'unsubscribe request' | 'complaint' | 'ignored' | Exclude<InboundRefusal, 'not ours'>;

/** Every outcome, for the metrics (each shows at 0 before the first). */
export const INBOUND_OUTCOMES: readonly InboundOutcome[] = [
  'hard bounce',
  'expired',
  'delayed',
  'unsubscribe request',
  'complaint',
  'ignored',
  'too big',
  'not handled',
];

function outcomeKind(outcome: BounceOutcome): InboundOutcome {
  switch (outcome.kind) {
    case 'hard':
      return outcome.expired ? 'expired' : 'hard bounce';
    case 'delayed':
      return 'delayed';
    case 'unsubscribe':
      return 'unsubscribe request';
    case 'complaint':
      return 'complaint';
    case 'unrecognised':
      return 'ignored';
  }
}

/** How long the lists' addresses are remembered before they are read again (a new list shows up within this). */
const ADDRESSES_TTL_MS = 10_000;

function split(address: string): { local: string; domain: string } {
  const at = address.lastIndexOf('@');
  return { local: address.slice(0, at).toLowerCase(), domain: address.slice(at + 1).toLowerCase() };
}

/** Every address of every list, lower case, and what it is for; VERP forms are matched by their base. */
async function listAddresses(app: App, complaintsAddress: string | null): Promise<Map<string, InboundAddressKind>> {
  const addresses = new Map<string, InboundAddressKind>();
  for (const { list } of await selectListsWithCounts(app.db)) {
    addresses.set(unsubscribeMailbox(list).toLowerCase(), 'unsubscribe');
    addresses.set(effectiveBounceAddress(list).toLowerCase(), 'bounces');
  }
  if (complaintsAddress) addresses.set(complaintsAddress.toLowerCase(), 'complaints');
  return addresses;
}

/** `base+anything@domain` is the VERP form of `base@domain` (the token is verified when the message is read). */
export function kindOf(addresses: ReadonlyMap<string, InboundAddressKind>, address: string): InboundAddressKind | null {
  if (!/^[^@\s<>()[\]\\,;:"]+@[A-Za-z0-9.-]+$/.test(address)) return null;
  const exact = addresses.get(address.toLowerCase());
  if (exact !== undefined) return exact;
  const { local, domain } = split(address);
  const plus = local.indexOf('+');
  if (plus < 0) return null;
  const base = addresses.get(`${local.slice(0, plus)}@${domain}`);
  return base === 'bounces' ? base : null;
}

/** One log line's worth of what a message did. */
export function describeOutcome(outcome: BounceOutcome): string {
  switch (outcome.kind) {
    case 'hard':
      return `${outcome.expired ? 'expired at the relay' : 'hard bounce'} ${outcome.status} on ${outcome.list}${outcome.recorded ? '' : ' (recorded before)'}${outcome.deliveryId !== null ? `, delivery ${outcome.deliveryId}${outcome.deliveryFailed ? ' failed' : ''}` : ''}${outcome.nowBounced ? ', member now bounced' : ''}`;
    case 'delayed':
      return `delayed ${outcome.status}, ignored`;
    case 'unsubscribe':
      return `unsubscribe request: ${outcome.maskedAddress} ${outcome.outcome} on ${outcome.list} (mailto)`;
    case 'complaint':
      return `complaint (${outcome.feedbackType}) on ${outcome.list}${outcome.bulletinId !== null ? ` about bulletin ${outcome.bulletinId}` : ''}${outcome.recorded ? '' : ' (recorded before)'}${outcome.unsubscribed ? ', member unsubscribed' : ''}`;
    case 'unrecognised':
      return `ignored: ${outcome.reason}`;
  }
}

export async function startInboundServer(app: App, options: InboundServerOptions): Promise<RunningInbound> {
  const limits: InboundLimits = { ...DEFAULT_INBOUND_LIMITS, ...options.limits };
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isInteger(value) || value < 1)
      throw new BulletinError('USAGE', `The inbound limit ${name} must be a whole number of at least 1, not ${value}.`);
  }
  const complaintsAddress = options.complaintsAddress ?? null;
  let cached: { at: number; addresses: Map<string, InboundAddressKind> } | null = null;
  const addresses = async () => {
    if (cached === null || Date.now() - cached.at > ADDRESSES_TTL_MS) cached = { at: Date.now(), addresses: await listAddresses(app, complaintsAddress) };
    return cached.addresses;
  };
  const first = [...(await addresses()).keys()][0];
  const handle = await mailHandler(app, options.threshold);
  let received = 0;
  try {
    return await startInbound({
      host: options.host,
      port: options.port,
      hostname: options.hostname ?? (first ? split(first).domain : 'localhost'),
      limits,
      recipientKind: async (address) => kindOf(await addresses(), address),
      handle: async ({ raw, sentTo }) => {
        received += 1;
        // Mail to the -unsubscribe address is read as a request, anything else by its content.
        const kind = sentTo.some((each) => each.kind === 'unsubscribe') ? 'unsubscribe' : (sentTo[0]?.kind ?? 'bounces');
        const place = { file: `smtp#${received}`, line: null, index: null };
        const outcome = await handle({ place, raw, sentTo: kind });
        options.counted?.(outcomeKind(outcome));
        return describeOutcome(outcome);
      },
      log: options.log,
      ...(options.counted ? { refused: options.counted } : {}),
    });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === 'EADDRINUSE'
        ? 'the port is in use'
        : code === 'EACCES'
          ? 'permission denied (ports below 1024 need privileges)'
          : code === 'EADDRNOTAVAIL'
            ? 'no such address on this machine'
            : (error as Error).message;
    throw new BulletinError('CONFIG', `Cannot listen on ${options.host} port ${options.port}: ${why}.`, { cause: error });
  }
}
