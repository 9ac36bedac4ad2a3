// The Atom feed (RFC 4287) of a list's latest bulletins, each with its summary when it has one. Written here rather than with a feed
// library: thirty lines whose escaping and byte-for-byte stability can be read at a glance.
import { escapeXml, monthOf, pageName, type ArchivedBulletin } from './model.js';
import type { ListInfo } from './pages.js';

export const FEED_LENGTH = 20;

export function atomFeed(list: ListInfo, bulletins: readonly ArchivedBulletin[]): string {
  const latest = [...bulletins].sort((a, b) => b.date.getTime() - a.date.getTime() || b.number - a.number).slice(0, FEED_LENGTH);
  const updated = latest[0]?.date.toISOString() ?? '1970-01-01T00:00:00.000Z';
  const entries = latest.map((bulletin) => {
    const url = `${list.archiveUrl}${monthOf(bulletin.date)}/${pageName(bulletin.number)}`;
    return `  <entry>
    <title type="text">${escapeXml(bulletin.title)}</title>
    <id>${escapeXml(url)}</id>
    <link rel="alternate" type="text/html" href="${escapeXml(url)}"/>
    <updated>${bulletin.date.toISOString()}</updated>
    <author><name>${escapeXml(bulletin.author)}</name></author>
${bulletin.summary === null ? '' : `    <summary type="text">${escapeXml(bulletin.summary)}</summary>\n`}    <content type="html">${escapeXml(bulletin.bodyHtml)}</content>
  </entry>
`;
  });
  return `<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title type="text">${escapeXml(list.name)}</title>
  <subtitle type="text">${escapeXml(list.description)}</subtitle>
  <id>${escapeXml(list.archiveUrl)}</id>
  <link rel="self" type="application/atom+xml" href="${escapeXml(`${list.archiveUrl}feed.xml`)}"/>
  <link rel="alternate" type="text/html" href="${escapeXml(list.archiveUrl)}"/>
  <updated>${updated}</updated>
${entries.join('')}</feed>
`;
}
