// The header of every bulletin message, built by an ordered list of small named steps (the idea of
// Mailman's pipelines). Steps run once per bulletin; a field that differs between recipients is a
// function of the recipient, every other field is finished text before the first message.
import type { MailingList } from '../domain/list.js';
import { CRLF, displayNameAtoms, headerField, mailboxField, rfc5322Date, unstructuredAtoms } from './mime-encoding.js';

/** What the steps know about the bulletin, once. Addresses are ASCII already. */
export interface BulletinHeaderFacts {
  readonly list: Pick<MailingList, 'name'>;
  readonly fromName: string;
  readonly fromAddress: string;
  /** Subject with the list prefix. */
  readonly subject: string;
  readonly date: Date;
  /** RFC 2919 identifier, e.g. `bulletins.lists.example.net`. */
  readonly listIdentifier: string;
  readonly archiveUrl: string;
  readonly helpUrl: string;
  readonly unsubscribeMailbox: string;
  /** The Content-Type of the whole message, e.g. `multipart/alternative; boundary="…"`. */
  readonly contentType: string;
  /** Whether the message follows up an earlier bulletin (In-Reply-To and References). */
  readonly isFollowUp: boolean;
}

/** What differs per recipient. The address is ASCII and checked; the name may be anything. */
export interface RecipientHeaderFacts {
  readonly address: string;
  readonly name: string;
  readonly messageId: string;
  readonly unsubscribeUrl: string;
  readonly unsubscribeToken: string;
  /** Message-ID of the same recipient's copy of the earlier bulletin, when following one up. */
  readonly parentMessageId: string | null;
}

export interface HeaderField {
  /** Field name as written, e.g. `List-Unsubscribe`. */
  readonly name: string;
  /** The whole folded field, `Name: value` and its CRLF, fixed or per recipient. */
  readonly text: string | ((recipient: RecipientHeaderFacts) => string);
}

type HeaderStep = (facts: BulletinHeaderFacts) => HeaderField[];

const fixed = (name: string, atoms: readonly string[]): HeaderField => ({ name, text: headerField(name, atoms) });

/** The steps, in the order their fields appear in the message. */
export const HEADER_PIPELINE: readonly (readonly [name: string, step: HeaderStep])[] = [
  ['from', (facts) => [{ name: 'From', text: mailboxField('From', facts.fromName, facts.fromAddress) }]],
  ['to', () => [{ name: 'To', text: (recipient) => mailboxField('To', recipient.name, recipient.address) }]],
  ['subject', (facts) => [fixed('Subject', unstructuredAtoms(facts.subject))]],
  ['date', (facts) => [fixed('Date', [rfc5322Date(facts.date)])]],
  ['message-id', () => [{ name: 'Message-ID', text: (recipient) => `Message-ID: ${recipient.messageId}${CRLF}` }]],
  [
    'threading',
    (facts) =>
      facts.isFollowUp
        ? [
            { name: 'In-Reply-To', text: (recipient) => `In-Reply-To: ${recipient.parentMessageId ?? ''}${CRLF}` },
            { name: 'References', text: (recipient) => `References: ${recipient.parentMessageId ?? ''}${CRLF}` },
          ]
        : [],
  ],
  ['mime-version', () => [fixed('MIME-Version', ['1.0'])]],
  // RFC 2919: which list this is, independent of the address it is sent from.
  ['rfc2919-list-id', (facts) => [fixed('List-Id', [...displayNameAtoms(facts.list.name), `<${facts.listIdentifier}>`])]],
  // RFC 2369. List-Unsubscribe folds only between its two URIs, never inside one, and is signed with
  // relaxed header canonicalization, so refolding by a relay cannot break the DKIM signature.
  [
    'rfc2369-list-fields',
    (facts) => [
      {
        name: 'List-Unsubscribe',
        text: (recipient) =>
          headerField('List-Unsubscribe', [
            `<${recipient.unsubscribeUrl}>,`,
            `<mailto:${facts.unsubscribeMailbox}?subject=unsubscribe%20${recipient.unsubscribeToken}>`,
          ]),
      },
      fixed('List-Archive', [`<${facts.archiveUrl}>`]),
      // The help page, and whom to write to (the From address: see README, "Help").
      fixed('List-Help', [`<${facts.helpUrl}>,`, `<mailto:${facts.fromAddress}?subject=help>`]),
      // An announce-only list: nobody can post to it by mail.
      fixed('List-Post', ['NO']),
    ],
  ],
  // RFC 8058: the https URI of List-Unsubscribe accepts a one-click POST.
  ['rfc8058-one-click', () => [fixed('List-Unsubscribe-Post', ['List-Unsubscribe=One-Click'])]],
  // Bulk mail, not to be answered by vacation responders (RFC 3834).
  ['bulk-mail', () => [fixed('Precedence', ['bulk']), fixed('Auto-Submitted', ['auto-generated'])]],
  ['content-type', (facts) => [{ name: 'Content-Type', text: `Content-Type: ${facts.contentType}${CRLF}` }]],
];

/** Runs every step once for a bulletin; the result is the header of every message, in order. */
export function planHeader(facts: BulletinHeaderFacts): HeaderField[] {
  return HEADER_PIPELINE.flatMap(([, step]) => step(facts));
}

/** The header of one recipient's message, as its fields in order (each ends with CRLF). */
export function headerFor(plan: readonly HeaderField[], recipient: RecipientHeaderFacts): string[] {
  return plan.map((field) => (typeof field.text === 'string' ? field.text : field.text(recipient)));
}
