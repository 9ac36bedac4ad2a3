// The name bulletin gives in SMTP's EHLO: a fully qualified domain name, never an address literal
// ([127.0.0.1]), which receivers score as a mark of bulk mail. One rule for SMTP_HELO and for the
// `helo=` option of a relay in SMTP_URL. No I/O.
import { isIP } from 'node:net';

export type HeloCheck = { ok: true; name: string } | { ok: false; reason: string };

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;

export function checkHeloName(input: string): HeloCheck {
  const name = input.trim().replace(/\.$/, '');
  if (/^\[.*\]$/.test(name) || isIP(name) !== 0) {
    return {
      ok: false,
      reason: `"${name}" is an address literal; receivers distrust an EHLO without a name: give this machine's fully qualified name, e.g. mail.example.net`,
    };
  }
  const labels = name.split('.');
  if (name.length > 253 || labels.length < 2 || !labels.every((label) => LABEL.test(label)) || /^\d+$/.test(labels.at(-1)!)) {
    return { ok: false, reason: `"${name}" is not a fully qualified domain name such as mail.example.net` };
  }
  return { ok: true, name: name.toLowerCase() };
}
