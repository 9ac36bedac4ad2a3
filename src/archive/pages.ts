// The archive's HTML pages, in the shape of Mailman's pipermail: the list's page with a row per
// month, a month's bulletins by thread, subject, author or date, and one page per bulletin with
// its neighbours by date and by thread. HTML5, no JavaScript, one stylesheet, readable on a phone.
import { Html, html } from '../domain/html.js';
import { archiveDate, monthTitle, pageName, threadOrder, type ArchivedBulletin } from './model.js';

export interface ListInfo {
  readonly name: string;
  readonly description: string;
  /** The list's archive URL (for the feed link). */
  readonly archiveUrl: string;
}

export const ARCHIVE_STYLESHEET = `:root { color-scheme: light dark; --muted: #666; --rule: #ccc; --link: #1d4f91; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 46rem; padding: 1rem 1.25rem 3rem; font: 1rem/1.55 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
a { color: var(--link); }
h1 { font-size: 1.45rem; line-height: 1.3; margin: .5rem 0; }
h2 { font-size: 1.15rem; }
nav, .meta, footer, .small { font-size: .92rem; color: var(--muted); }
nav ul, ul.neighbours { list-style: none; padding: 0; margin: .5rem 0; }
hr { border: 0; border-top: 1px solid var(--rule); margin: 1.25rem 0; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .45rem .5rem .45rem 0; border-bottom: 1px solid var(--rule); vertical-align: top; }
ul.bulletins li { margin: .3rem 0; }
.summary { color: var(--muted); }
ul.bulletins ul { margin: .2rem 0 .2rem 1rem; padding-left: .75rem; border-left: 2px solid var(--rule); }
.body { overflow-wrap: anywhere; }
.body img { max-width: 100%; height: auto; }
.body pre { white-space: pre-wrap; }
@media (prefers-color-scheme: dark) { :root { --muted: #aaa; --rule: #444; --link: #8cb4ff; } }
`;

function page(options: { title: string; stylesheet: string; feed?: string; body: Html }): string {
  return html`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${options.title}</title>
<link rel="stylesheet" href="${options.stylesheet}">
${options.feed ? html`<link rel="alternate" type="application/atom+xml" href="${options.feed}">` : new Html('')}
</head>
<body>
${options.body}
</body>
</html>
`.text;
}

export type SortOrder = 'thread' | 'subject' | 'author' | 'date';
export const SORT_ORDERS: readonly SortOrder[] = ['thread', 'subject', 'author', 'date'];

/** The list's page: its name and description, and a row per month (newest first). */
export function listIndexPage(list: ListInfo, months: readonly { month: string; count: number; mboxBytes: number }[]): string {
  const rows = months.map(
    ({ month, count, mboxBytes }) => html`<tr><td>${monthTitle(month)}</td>
<td>${SORT_ORDERS.map((order, index) => html`${index > 0 ? ' · ' : ''}<a href="${month}/${order}.html">${order[0]?.toUpperCase() ?? ''}${order.slice(1)}</a>`)}</td>
<td><a href="${month}.txt.gz">Gzip'd text</a> <span class="small">(${count} ${count === 1 ? 'bulletin' : 'bulletins'}, ${formatSize(mboxBytes)})</span></td></tr>
`,
  );
  return page({
    title: `The ${list.name} Archives`,
    stylesheet: 'archive.css',
    feed: 'feed.xml',
    body: html`<h1>The ${list.name} Archives</h1>
${list.description ? html`<p>${list.description}</p>` : new Html('')}
<p class="small">Every bulletin sent to the list, by month. <a href="feed.xml">Atom feed</a> of the latest.</p>
${
  months.length === 0
    ? html`<p>No bulletins have been sent yet.</p>`
    : html`<table>
<thead><tr><th>Month</th><th>Sorted by</th><th>Downloadable version</th></tr></thead>
<tbody>
${rows}</tbody>
</table>`
}
`,
  });
}

function formatSize(bytes: number): string {
  return bytes < 1024 ? `${bytes} bytes` : `${(bytes / 1024).toFixed(1)} KB`;
}

/** A month's bulletins in one order; `thread` nests follow-ups. */
export function monthPage(list: ListInfo, month: string, order: SortOrder, bulletins: readonly ArchivedBulletin[]): string {
  const item = (bulletin: ArchivedBulletin) =>
    html`<a href="${pageName(bulletin.number)}">${bulletin.subject}</a> <span class="small">${bulletin.author}</span>${bulletin.summary === null ? new Html('') : html`<br><span class="summary">${bulletin.summary}</span>`}`;
  let list_: Html;
  if (order === 'thread') {
    list_ = nested(threadOrder(bulletins), item);
  } else {
    // Case-insensitive code-point order, not localeCompare: its result depends on the ICU data
    // Node was built with, and the output must be the same on every machine.
    const key = (bulletin: ArchivedBulletin) => (order === 'subject' ? bulletin.subject : bulletin.author).toLowerCase();
    const sorted = [...bulletins].sort((a, b) => {
      if (order !== 'date' && key(a) !== key(b)) return key(a) < key(b) ? -1 : 1;
      return a.date.getTime() - b.date.getTime() || a.number - b.number;
    });
    list_ = html`<ul class="bulletins">
${sorted.map(
  (bulletin) => html`<li>${item(bulletin)}</li>
`,
)}</ul>`;
  }
  const first = bulletins[0];
  const last = bulletins[bulletins.length - 1];
  return page({
    title: `The ${list.name} ${monthTitle(month)} Archive by ${order}`,
    stylesheet: '../archive.css',
    body: html`<h1>${monthTitle(month)} Archives by ${order}</h1>
<nav><ul>
<li>Messages sorted by: ${SORT_ORDERS.map((other, index) => html`${index > 0 ? ' ' : ''}${other === order ? html`<b>[ ${other} ]</b>` : html`<a href="${other}.html">[ ${other} ]</a>`}`)}</li>
<li><a href="../index.html">More info on this list and other months</a></li>
</ul></nav>
<p class="meta">Starting: ${first ? archiveDate(first.date) : ''}<br>Ending: ${last ? archiveDate(last.date) : ''}<br>Messages: ${bulletins.length}</p>
${list_}
<hr>
<p class="meta">Last message date: ${last ? archiveDate(last.date) : ''}</p>
`,
  });
}

function nested(ordered: readonly { bulletin: ArchivedBulletin; depth: number }[], item: (bulletin: ArchivedBulletin) => Html): Html {
  let out = '<ul class="bulletins">\n';
  let depth = 0;
  ordered.forEach(({ bulletin, depth: next }, index) => {
    if (index > 0) {
      if (next > depth) out += '\n<ul>\n'.repeat(next - depth);
      else {
        out += '</li>\n';
        for (let level = depth; level > next; level--) out += '</ul>\n</li>\n';
      }
    }
    depth = next;
    out += `<li>${item(bulletin).text}`;
  });
  if (ordered.length > 0) {
    out += '</li>\n';
    for (let level = depth; level > 0; level--) out += '</ul>\n</li>\n';
  }
  return new Html(`${out}</ul>`);
}

export interface Neighbours {
  readonly previousByDate: ArchivedBulletin | null;
  readonly nextByDate: ArchivedBulletin | null;
  readonly previousByThread: ArchivedBulletin | null;
  readonly nextByThread: ArchivedBulletin | null;
}

/** One bulletin: title, obscured sender, date, body, neighbours, and the list footer. */
export function bulletinPage(list: ListInfo, bulletin: ArchivedBulletin, neighbours: Neighbours): string {
  const link = (label: string, other: ArchivedBulletin | null) =>
    other
      ? html`<li>${label}: <a href="${pageName(other.number)}">${other.subject}</a></li>
`
      : new Html('');
  const navigation = html`<ul class="neighbours">
${link('Previous message (by date)', neighbours.previousByDate)}${link('Next message (by date)', neighbours.nextByDate)}${link('Previous message (by thread)', neighbours.previousByThread)}${link('Next message (by thread)', neighbours.nextByThread)}<li>Messages sorted by: <a href="date.html">[ date ]</a> <a href="thread.html">[ thread ]</a> <a href="subject.html">[ subject ]</a> <a href="author.html">[ author ]</a></li>
</ul>`;
  return page({
    title: bulletin.title,
    stylesheet: '../archive.css',
    body: html`<h1>${bulletin.title}</h1>
<p class="meta"><b>${bulletin.author}</b> ${bulletin.authorAddress}<br><time datetime="${bulletin.date.toISOString()}">${archiveDate(bulletin.date)}</time></p>
<nav>${navigation}</nav>
<hr>
<div class="body">
${new Html(bulletin.bodyHtml)}
</div>
<hr>
<nav>${navigation}</nav>
<hr>
<footer><p>More information about the <a href="../index.html">${list.name}</a> mailing list</p></footer>
`,
  });
}
