// Builds the whole static archive of one list from its archived bulletins: file path (relative to
// the output directory) → bytes. Pure and deterministic: the same bulletins give the same bytes.
import sanitizeHtml from 'sanitize-html';
import { atomFeed } from './feed.js';
import { gzip, monthMbox } from './mbox.js';
import { byMonth, pageName, threadOrder, type ArchivedBulletin } from './model.js';
import { ARCHIVE_STYLESHEET, bulletinPage, listIndexPage, monthPage, SORT_ORDERS, type ListInfo } from './pages.js';

/**
 * The bulletin's HTML as it may appear in a page: no scripts, styles, frames, forms or event
 * handlers, links only to http(s) and mailto (sanitize-html, a well-kept allow-list sanitiser).
 */
export function sanitizeBulletinHtml(bodyHtml: string): string {
  return sanitizeHtml(bodyHtml, {
    allowedTags: [...sanitizeHtml.defaults.allowedTags, 'img', 'h1', 'h2'],
    allowedAttributes: { a: ['href', 'title'], img: ['src', 'alt', 'title', 'width', 'height'], '*': ['lang', 'dir'] },
    allowedSchemes: ['http', 'https', 'mailto'],
    allowedSchemesByTag: { img: ['http', 'https', 'data'] },
    allowProtocolRelative: false,
  });
}

export function buildArchiveSite(slug: string, list: ListInfo, bulletins: readonly ArchivedBulletin[]): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  const put = (path: string, content: string | Buffer) => files.set(`${slug}/${path}`, typeof content === 'string' ? Buffer.from(content, 'utf8') : content);
  const byNumber = new Map(bulletins.map((bulletin) => [bulletin.number, bulletin]));
  const months = byMonth(bulletins);
  const summary: { month: string; count: number; mboxBytes: number }[] = [];
  for (const [month, monthBulletins] of months) {
    const mbox = gzip(monthMbox(monthBulletins, byNumber));
    put(`${month}.txt.gz`, mbox);
    summary.push({ month, count: monthBulletins.length, mboxBytes: mbox.length });
    for (const order of SORT_ORDERS) put(`${month}/${order}.html`, monthPage(list, month, order, monthBulletins));
    const threaded = threadOrder(monthBulletins).map((entry) => entry.bulletin);
    monthBulletins.forEach((bulletin, index) => {
      const at = threaded.indexOf(bulletin);
      put(
        `${month}/${pageName(bulletin.number)}`,
        bulletinPage(list, bulletin, {
          previousByDate: monthBulletins[index - 1] ?? null,
          nextByDate: monthBulletins[index + 1] ?? null,
          previousByThread: threaded[at - 1] ?? null,
          nextByThread: threaded[at + 1] ?? null,
        }),
      );
    });
  }
  put('index.html', listIndexPage(list, summary));
  put('archive.css', ARCHIVE_STYLESHEET);
  put('feed.xml', atomFeed(list, bulletins));
  return files;
}
