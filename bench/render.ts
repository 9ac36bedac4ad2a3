// Measures message composition: compiles a ~3 KB bulletin once, renders N personalised messages,
// and prints messages per second per core (CPU time from process.cpuUsage, not wall time).
// Usage: npx tsx bench/render.ts [--n 20000] [--verp] [--dkim rsa|ed25519]
import { generateKeyPairSync } from 'node:crypto';
import { parseArgs } from 'node:util';
import type { MailingList } from '../src/domain/list.js';
import { compileBulletin, parseBulletinSource, type DkimOptions } from '../src/render/index.js';

const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '20000' },
    verp: { type: 'boolean', default: false },
    dkim: { type: 'string' },
  },
});
const count = Number(values.n);
if (!Number.isInteger(count) || count <= 0) throw new Error('--n must be a positive integer');

const list: MailingList = {
  id: 1,
  slug: 'bulletins',
  name: 'ExampleNet-Bulletins',
  description: 'Announcements from the ExampleNet operations team',
  address: 'bulletins@lists.example.net',
  from: { name: 'ExampleNet Operations', address: 'noc@example.net' },
  baseUrl: 'https://lists.example.net',
  subjectPrefix: null,
  bounceAddress: null,
  templatesDir: null,
  createdAt: new Date(0),
  updatedAt: new Date(0),
};

const paragraph =
  'The core routers in the northern data centre will be replaced during the maintenance window. ' +
  'Traffic is rerouted through the southern site beforehand, so most services stay reachable; ' +
  'expect a few seconds of packet loss when each link is moved. ';
const source = parseBulletinSource(
  [
    '---',
    'subject: Network maintenance on Saturday 5 December',
    'summary: Core router replacement, short interruptions expected between 02:00 and 04:00 UTC.',
    'date: 2026-12-01',
    '---',
    'Hello {{default subscriber.name "subscriber"}},',
    '',
    paragraph.repeat(2),
    '',
    paragraph.repeat(2),
    '',
    '## What changes',
    '',
    '* New routers with twice the capacity',
    '* IPv6 on every customer link',
    '* A status page at <https://status.example.net>',
    '',
    '{{#if subscriber.attributes.site}}',
    'Your site, **{{subscriber.attributes.site}}**, is scheduled for 02:30 UTC.',
    '{{/if}}',
    '',
    paragraph.repeat(3),
    '',
    '> If a service is still unreachable after 04:30 UTC, reply to the ticket in your customer portal.',
    '',
    paragraph.repeat(2),
    '',
    'Thank you for your patience,  ',
    'the ExampleNet operations team',
  ].join('\n'),
  'bench.md',
);

let dkim: DkimOptions | null = null;
if (values.dkim === 'rsa' || values.dkim === 'ed25519') {
  const { privateKey } = values.dkim === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ed25519');
  dkim = { domain: 'example.net', selector: 'bench', privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
} else if (values.dkim !== undefined) {
  throw new Error('--dkim must be rsa or ed25519');
}

const bulletin = await compileBulletin({
  source,
  list,
  bulletinKey: '1',
  signing: { secret: 'bench-secret-0123456789abcdef', installationId: '00000000-0000-4000-8000-000000000001' },
  verp: values.verp,
  dkim,
  date: new Date('2026-12-01T08:00:00Z'),
});

const recipients = Array.from({ length: Math.min(count, 10_000) }, (_, i) => ({
  id: i + 1,
  email: `subscriber${i + 1}@example.org`,
  name: i % 3 === 0 ? null : `Subscriber Number ${i + 1}`,
  attributes: i % 2 === 0 ? { site: `Site ${i % 17}` } : {},
}));

// Warm up the JIT before measuring.
for (let i = 0; i < Math.min(2_000, count); i++) bulletin.render(recipients[i % recipients.length]!);

let bytes = 0;
const cpuBefore = process.cpuUsage();
const wallBefore = process.hrtime.bigint();
for (let i = 0; i < count; i++) bytes += bulletin.render(recipients[i % recipients.length]!).raw.length;
const cpu = process.cpuUsage(cpuBefore);
const wallSeconds = Number(process.hrtime.bigint() - wallBefore) / 1e9;
const cpuSeconds = (cpu.user + cpu.system) / 1e6;

const options = [values.verp ? 'VERP' : null, dkim ? `DKIM ${values.dkim}` : null].filter(Boolean).join(', ') || 'no VERP, no DKIM';
console.log(`bulletin body source: ${Buffer.byteLength(source.body)} bytes; average message: ${Math.round(bytes / count)} bytes (${options})`);
console.log(`${count} messages in ${cpuSeconds.toFixed(3)} s of CPU (${wallSeconds.toFixed(3)} s wall)`);
console.log(`${Math.round(count / cpuSeconds)} messages/s per core`);
