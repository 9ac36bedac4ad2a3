// The rendering module's public face: how a bulletin source becomes one correct message per
// recipient. The send engine, `bulletin preview` and the archive import from here, nowhere deeper.
//
// ## Usage
//
//   const source = await readBulletinSource('2026-11.md');           // or parseBulletinSource(text, name)
//   const bulletin = await compileBulletin({ source, list, bulletinKey: String(bulletinId), signing: { secret, installationId } });
//   for (const subscriber of subscribers) {
//     const { raw, envelope, messageId } = bulletin.render(subscriber); // { id, email, name, attributes }
//     await transport.send({ raw, envelope, messageId });          // src/send/transport.ts
//   }
//
// compileBulletin does all checking and all per-bulletin work; it throws BulletinError('BAD_INPUT')
// (file:line:column in the message) before any message exists. render() is pure and cheap: call it
// again for a retry and you get the same bytes and the same Message-ID (given the same `date`).
// It throws BAD_INPUT only for a recipient address that cannot be put in a header.
//
// ## Bulletin source
//
// A Markdown file with YAML front matter between `---` lines (BOM and CRLF tolerated):
//   subject      required, one line; the list prefix is added to the Subject header
//   list         optional list slug
//   date         optional YYYY-MM-DD or ISO date-time, shown as bulletin.date (default: send date)
//   summary      optional; inbox preview text (hidden preheader) and archive excerpt
//   in-reply-to  optional key of an earlier bulletin (the send engine's bulletin id): this message
//                gets In-Reply-To/References pointing at the same recipient's copy of that one
//   lang         optional BCP 47 language of the text, default en (the HTML's lang attribute)
// Unknown keys are errors (a typo like `subjet` would otherwise be silently lost), and so are YAML
// anchors and aliases. Every error names file:line:column.
// The subject is plain text, not a template.
//
// ## Templates
//
// The body is a Handlebars template first, then Markdown. Variables (anything else is an error):
//   subscriber.email, subscriber.name (empty when unknown), subscriber.attributes.<anything>
//   list.name, list.slug, list.description, list.address, list.baseUrl, list.archiveUrl, list.helpUrl
//   bulletin.subject, bulletin.date (long form in the bulletin's language), bulletin.isoDate,
//   bulletin.summary, bulletin.lang
//   unsubscribeUrl (this recipient's one-click link), archiveUrl (the list's archive)
// `{{x}}` escapes HTML in the HTML part (never in the text part); `{{{x}}}` does not escape.
// Attributes are free-form, so they cannot be checked: a missing attribute renders as an empty
// string. Use `{{default subscriber.attributes.city "your city"}}` or `{{#if subscriber.attributes.city}}`.
// Helpers: if, unless, each, with, lookup, log, plus default, urlencode (for values inside URLs) and
// eq (`{{#if (eq subscriber.attributes.plan "pro")}}`), each checked for its number of arguments and
// block use; lookup takes a key in quotes, never a prototype property. Put block tags ({{#if}},
// {{/if}}) on lines of their own, apart from Markdown blocks; `\{{` writes literal braces.
// Limits (limits.ts): a file of at most 1 MiB, 1,000 tags, 32 nested blocks, Markdown nested 32
// deep, HTML 64; each refused before any message with file:line:column.
//
// The archive copy (archiveBody(), renderBodyForArchive) has no subscriber: subscriber.* is
// empty. `emptyInArchive` lists every place in the body that prints one bare there; write
// `{{default subscriber.name "customer"}}` or `{{#if subscriber.name}}…{{/if}}` instead.
//
// The body is wrapped in `templates/email/layout.html.hbs` and `layout.text.hbs`, which include
// partials from `templates/email/partials/` as `{{> name}}` (no arguments). A templates directory
// (`templatesDir` option, or the list's) laid out the same way overrides those files one by one.
// Layouts place the body with `{{{body}}}` at their top level.
//
// ## Messages
//
// multipart/alternative (text, then HTML), UTF-8, quoted-printable (base64 when most of the text is
// not ASCII), CRLF, lines of at most 76 characters. Headers, from an ordered list of named steps
// (headers.ts): From, To, Subject, Date, Message-ID, [In-Reply-To, References], MIME-Version,
// List-Id, List-Unsubscribe, List-Archive, List-Help, List-Post: NO, List-Unsubscribe-Post,
// Precedence: bulk, Auto-Submitted, Content-Type; DKIM-Signature first when `dkim` is given (one
// key, or an RSA and an Ed25519 key: two signatures, RSA on top).
// Message-ID: `<32 hex digits@list domain>`, an HMAC of (installation id, bulletinKey, subscriber id)
// under the secret (without the installation id for `messageIdVersion` 1). Envelope sender: the
// list's bounce address, or `<local>+<verp token>@<domain>` with `verp`.

export { parseBulletinSource, readBulletinSource, type BulletinSource } from './source.js';
export { compileBulletin, SAMPLE_RECIPIENT, type CompileBulletinOptions, type CompiledBulletin } from './compose.js';
export { renderBodyForArchive } from './archive.js';
export { MESSAGE_ID_VERSION, type MessageIdVersion } from './message-id.js';
export type { Recipient } from './context.js';
export { dkimAlignment, type DkimOptions } from './dkim.js';
export { HEADER_PIPELINE } from './headers.js';
export { loadTemplateSet, type TemplateSet } from './template-files.js';
