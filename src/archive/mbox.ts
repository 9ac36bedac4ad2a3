// A month of bulletins as an mbox file (mboxrd: body lines starting with ">*From " get one more ">"),
// gzipped without a time stamp in the header, so the same month always gives the same bytes.
import { gzipSync } from 'node:zlib';
import type { ArchivedBulletin } from './model.js';

function mboxDate(date: Date): string {
  // asctime(): `Sat Nov 28 20:44:00 2026`
  const [weekday, month, day, year, time] = [
    date.toUTCString().slice(0, 3),
    date.toUTCString().slice(8, 11),
    String(date.getUTCDate()).padStart(2, ' '),
    date.getUTCFullYear(),
    date.toISOString().slice(11, 19),
  ];
  return `${weekday} ${month} ${day} ${time} ${year}`;
}

function headerText(text: string): string {
  return text.replace(/[\r\n]+/g, ' ');
}

export function monthMbox(bulletins: readonly ArchivedBulletin[], byNumber: ReadonlyMap<number, ArchivedBulletin>): string {
  return bulletins
    .map((bulletin) => {
      const parent = bulletin.inReplyTo === null ? undefined : byNumber.get(bulletin.inReplyTo);
      const headers = [
        `From ${bulletin.authorAddress.replace(' at ', '@')} ${mboxDate(bulletin.date)}`,
        `From: ${headerText(bulletin.authorAddress)} (${headerText(bulletin.author)})`,
        `Date: ${bulletin.date.toUTCString().replace('GMT', '+0000')}`,
        `Subject: ${headerText(bulletin.title)}`,
        `Message-ID: ${bulletin.messageId}`,
        ...(parent ? [`In-Reply-To: ${parent.messageId}`, `References: ${parent.messageId}`] : []),
        'MIME-Version: 1.0',
        'Content-Type: text/plain; charset=utf-8',
        'Content-Transfer-Encoding: 8bit',
      ];
      const body = bulletin.text.replace(/\r\n?/g, '\n').replace(/^(>*From )/gm, '>$1');
      return `${headers.join('\n')}\n\n${body}${body.endsWith('\n') ? '' : '\n'}\n`;
    })
    .join('');
}

export function gzip(text: string): Buffer {
  // zlib writes mtime 0 and no file name: the output depends on the input only.
  return gzipSync(Buffer.from(text, 'utf8'), { level: 9 });
}
