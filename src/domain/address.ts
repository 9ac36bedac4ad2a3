// E-mail addresses: the one place that decides whether an address is acceptable and how it is stored
// (lower case, international domains as punycode), and parses "Name <address>" mailboxes. No I/O.
import { domainToASCII } from 'node:url';
import validator from 'validator';

export type AddressCheck = { ok: true; address: string } | { ok: false; reason: string };

/** RFC 5321 4.5.3.1: local part at most 64 octets, forward path at most 256 including the brackets. */
const MAX_LOCAL_PART = 64;
const MAX_ADDRESS = 254;
const MAX_DOMAIN = 253;
const MAX_LABEL = 63;

// Control characters, including CR and LF: such a value could smuggle a header into a message.
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f]/;
const LINE_BREAK = /[\r\n]/;
const NON_ASCII = /[^\u0000-\u007f]/;
// The everyday address, recognised without the full check: a strict subset of what validator's isEmail
// accepts (dot-atom local part of common characters, LDH labels, an alphabetic TLD). Imports of a
// million rows spend most of their address checking here instead of in isEmail (~4 µs each).
const PLAIN_ADDRESS = /^[a-z0-9_+-]+(?:\.[a-z0-9_+-]+)*@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/;

/**
 * Validates and normalises one address: trims surrounding blanks, lower-cases it, turns an
 * international domain into punycode. The reason of a rejection is a short phrase for a report.
 */
export function normalizeAddress(input: string): AddressCheck {
  if (LINE_BREAK.test(input)) return { ok: false, reason: 'contains a line break' };
  if (CONTROL_CHARACTER.test(input)) return { ok: false, reason: 'contains a control character' };
  const trimmed = input.trim();
  if (trimmed === '') return { ok: false, reason: 'is empty' };
  if (/\s/.test(trimmed)) return { ok: false, reason: 'contains a space' };
  const at = trimmed.lastIndexOf('@');
  if (at < 0) return { ok: false, reason: 'has no @' };
  const localPart = trimmed.slice(0, at);
  const domain = trimmed.slice(at + 1).replace(/\.$/, '');
  if (localPart === '') return { ok: false, reason: 'has nothing before the @' };
  // RFC 5321 allows "quoted"@local parts, but "q"@x and q@x are one mailbox to most systems, and
  // quotes let a local part carry "<", "," and "@" into headers: bulletin takes none.
  if (localPart.includes('"') || localPart.includes('\\')) {
    return { ok: false, reason: 'has a quoted local part ("…"@…), which bulletin does not accept: write the address without quotes' };
  }
  if (domain === '') return { ok: false, reason: 'has no domain' };
  if (NON_ASCII.test(localPart)) {
    return { ok: false, reason: 'has a non-ASCII local part (SMTPUTF8 is not supported)' };
  }
  if (Buffer.byteLength(localPart) > MAX_LOCAL_PART) {
    return { ok: false, reason: `has a local part over ${MAX_LOCAL_PART} octets (RFC 5321)` };
  }
  const asciiDomain = domainToASCII(domain.toLowerCase());
  if (asciiDomain === '') return { ok: false, reason: 'has an invalid domain' };
  if (asciiDomain.length > MAX_DOMAIN || asciiDomain.split('.').some((label) => label.length > MAX_LABEL)) {
    return { ok: false, reason: 'has a domain over the DNS length limits' };
  }
  const address = `${localPart.toLowerCase()}@${asciiDomain}`;
  if (address.length > MAX_ADDRESS) {
    return { ok: false, reason: `is over ${MAX_ADDRESS} octets (RFC 5321)` };
  }
  if (PLAIN_ADDRESS.test(address)) return { ok: true, address };
  const valid = validator.isEmail(address, {
    allow_display_name: false,
    allow_utf8_local_part: false,
    require_tld: true,
    allow_ip_domain: false,
  });
  if (!valid) return { ok: false, reason: 'is not a valid address' };
  return { ok: true, address };
}

export interface Mailbox {
  /** Display name, possibly empty; never contains CR or LF. */
  readonly name: string;
  /** Normalised address (see normalizeAddress). */
  readonly address: string;
}

export type MailboxCheck = { ok: true; mailbox: Mailbox } | { ok: false; reason: string };

/** Parses `Name <address>`, `"Name" <address>` or a bare address. */
export function parseMailbox(input: string): MailboxCheck {
  if (CONTROL_CHARACTER.test(input)) return { ok: false, reason: 'contains a line break or control character' };
  const angle = /^\s*(?:"((?:[^"\\]|\\.)*)"|([^<>"]*?))\s*<([^<>]+)>\s*$/.exec(input);
  const rawName = angle ? (angle[1]?.replace(/\\(.)/g, '$1') ?? angle[2] ?? '') : '';
  const rawAddress = angle ? (angle[3] ?? '') : input;
  const checked = normalizeAddress(rawAddress);
  if (!checked.ok) return { ok: false, reason: `address ${checked.reason}` };
  return { ok: true, mailbox: { name: rawName.trim(), address: checked.address } };
}

/** `Name <address>` as a person would write it (no MIME encoding: that is the renderer's job). */
export function formatMailbox(mailbox: Mailbox): string {
  if (mailbox.name === '') return mailbox.address;
  const needsQuotes = /[()<>[\]:;@\\,."]/.test(mailbox.name);
  const name = needsQuotes ? `"${mailbox.name.replace(/(["\\])/g, '\\$1')}"` : mailbox.name;
  return `${name} <${mailbox.address}>`;
}

/** An address already checked, split at its last @ into local part and domain. */
export function splitAddress(address: string): { local: string; domain: string } {
  const at = address.lastIndexOf('@');
  return { local: address.slice(0, at), domain: address.slice(at + 1) };
}
