// `bulletin archive export` from real sends (through the outbox): the files and their structure,
// order and threading, escaping of hostile subjects, sanitised bodies, byte-identical re-exports
// that rewrite nothing, stable numbers, and no subscriber address, name or token anywhere.
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { exportArchive } from '../src/app/archive.js';
import { inspect, LIST_FLAGS, rows } from './helpers/app.js';
import { runCli, runOk } from './helpers/cli.js';
import { clockAt } from './helpers/clock.js';
import { createTestDatabase, DATABASE_KIND, type TestDatabase } from './helpers/database.js';

let db: TestDatabase;
let site: string;
const SUBSCRIBERS = [
  ['ada.lovelace@example.net', 'Ada Lovelace'],
  ['grace.hopper@example.org', 'Grace Hopper'],
  ['linus@example.com', 'Linus Unique-Name'],
] as const;
const HOSTILE = '<img src=x onerror=alert(1)> & "quotes"';

async function files(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name).slice(dir.length + 1))
    .sort();
}

/** Sends a bulletin as if on `at`: the archive files by the send date, so every month below follows from these dates. */
async function send(name: string, body: string, at: string): Promise<void> {
  await writeFile(join(db.cwd, name), body);
  await runOk(['send', join(db.cwd, name), '--list', 'news', '--outbox', join(db.cwd, 'outbox'), '--yes', '--quiet', '--verp'], { ...db, clock: clockAt(at) });
}

before(async () => {
  db = await createTestDatabase();
  site = join(db.cwd, 'site');
  await runOk(['list', 'create', 'news', ...LIST_FLAGS, '--description', 'Notices about <our> service & more'], db);
  for (const [address, name] of SUBSCRIBERS) await runOk(['subscribers', 'add', address, '--list', 'news', '--name', name], db);
  await send(
    'outage.md',
    '---\nsubject: Mail delays this week\n---\nDear {{default subscriber.name "customer"}} ({{subscriber.email}}),\n\nMail was **slow**.\n\n<script>alert("x")</script><a href="javascript:alert(1)" onclick="alert(2)">click</a>\n\nFrom here on, all is well. [Leave]({{unsubscribeUrl}})\n',
    '2026-11-20T08:00:00Z',
  );
  // Sent second, but dated in October: the archive orders and numbers by send date.
  await send('hostile.md', `---\nsubject: '${HOSTILE}'\n---\nA subject to escape.\n`, '2026-10-15T09:30:00Z');
  await send(
    'followup.md',
    '---\nsubject: Mail delays, resolved\nin-reply-to: outage.md\nsummary: The backlog is cleared & <all> is delivered.\n---\nThe backlog is cleared.\n',
    '2026-11-21T08:00:00Z',
  );
});
after(async () => {
  await db?.drop();
});

describe(`bulletin archive export (${DATABASE_KIND} database)`, () => {
  test('writes the list page, each month by thread, subject, author and date, a page per bulletin, mbox and feed', async () => {
    const summary = (await runOk(['archive', 'export', '--list', 'news', '--out', site, '--json'], db)) as {
      bulletins: number;
      months: number;
      written: number;
      numbered: number;
    };
    assert.deepEqual([summary.bulletins, summary.months, summary.numbered], [3, 2, 3]);
    const names = await files(site);
    assert.deepEqual(names, [
      'news/2026-November.txt.gz',
      'news/2026-November/000001.html',
      'news/2026-November/000002.html',
      'news/2026-November/author.html',
      'news/2026-November/date.html',
      'news/2026-November/subject.html',
      'news/2026-November/thread.html',
      'news/2026-October.txt.gz',
      'news/2026-October/000000.html',
      'news/2026-October/author.html',
      'news/2026-October/date.html',
      'news/2026-October/subject.html',
      'news/2026-October/thread.html',
      'news/archive.css',
      'news/feed.xml',
      'news/index.html',
    ]);
    assert.equal(summary.written, names.length);
    const index = await readFile(join(site, 'news/index.html'), 'utf8');
    assert.match(index, /<title>The ExampleNet-Bulletins Archives<\/title>/);
    assert.match(index, /Notices about &lt;our&gt; service &amp; more/);
    assert.ok(index.indexOf('November 2026') < index.indexOf('October 2026'), 'newest month first');
    for (const order of ['thread', 'subject', 'author', 'date']) assert.match(index, new RegExp(`href="2026-November/${order}\\.html"`));
    assert.match(index, /href="2026-October\.txt\.gz"/);
  });

  test('thread view nests the follow-up; bulletin pages link neighbours by date and thread and the list page', async () => {
    const thread = await readFile(join(site, 'news/2026-November/thread.html'), 'utf8');
    assert.match(thread, /<li><a href="000001\.html">Mail delays this week<\/a>[^]*?\n<ul>\n<li><a href="000002\.html">Mail delays, resolved<\/a>/);
    const first = await readFile(join(site, 'news/2026-November/000001.html'), 'utf8');
    assert.match(first, /<title>\[ExampleNet-Bulletins\] Mail delays this week<\/title>/);
    assert.match(first, /bulletins at lists\.example\.net/);
    assert.match(first, /Next message \(by date\): <a href="000002\.html">Mail delays, resolved<\/a>/);
    assert.match(first, /Next message \(by thread\): <a href="000002\.html">/);
    assert.match(first, /More information about the <a href="\.\.\/index\.html">ExampleNet-Bulletins<\/a> mailing list/);
    const date = await readFile(join(site, 'news/2026-November/date.html'), 'utf8');
    assert.ok(date.indexOf('000001.html') < date.indexOf('000002.html'));
    const subject = await readFile(join(site, 'news/2026-November/subject.html'), 'utf8');
    assert.ok(subject.indexOf('Mail delays this week') < subject.indexOf('Mail delays, resolved'), 'by subject, code point order: " " before ","');
  });

  test('bodies are sanitised and every other text is escaped, in the pages and in the feed', async () => {
    const body = await readFile(join(site, 'news/2026-November/000001.html'), 'utf8');
    assert.match(body, /Mail was <strong>slow<\/strong>/);
    assert.doesNotMatch(body, /<script|onclick|javascript:/i);
    for (const path of await files(site)) {
      if (path.endsWith('.gz')) continue;
      const text = await readFile(join(site, path), 'utf8');
      assert.doesNotMatch(text, /<img src=x|<[^>]*\bonerror\b/i, `${path}: the hostile subject is escaped`);
    }
    const hostile = await readFile(join(site, 'news/2026-October/000000.html'), 'utf8');
    assert.match(hostile, /<h1>\[ExampleNet-Bulletins\] &lt;img src=x onerror=alert\(1\)&gt; &amp; &quot;quotes&quot;<\/h1>/);
    const feed = await readFile(join(site, 'news/feed.xml'), 'utf8');
    assert.match(feed, /<title type="text">\[ExampleNet-Bulletins\] &lt;img src=x onerror=alert\(1\)&gt; &amp; &quot;quotes&quot;<\/title>/);
    assert.match(feed, /^<\?xml version="1\.0" encoding="utf-8"\?>\n<feed xmlns="http:\/\/www\.w3\.org\/2005\/Atom">/);
    assert.equal((feed.match(/<entry>/g) ?? []).length, 3);
  });

  test('no subscriber address, name, unsubscribe token or VERP address appears in any file', async () => {
    const tokens: string[] = [];
    for (const [address] of SUBSCRIBERS) {
      const { url } = (await runOk(['subscribers', 'unsubscribe-url', address, '--list', 'news', '--json'], db)) as { url: string };
      tokens.push(url.split('/u/')[1] as string);
    }
    const envelopes = await readdir(join(db.cwd, 'outbox'));
    const verp = new Set<string>();
    for (const name of envelopes) {
      const raw = await readFile(join(db.cwd, 'outbox', name), 'latin1');
      for (const match of raw.matchAll(/bulletins[+-][A-Za-z0-9_+-]{20,}@lists\.example\.net/g)) verp.add(match[0]);
      for (const match of raw.matchAll(/\/u\/([A-Za-z0-9_-]{40})/g)) tokens.push(match[1] as string);
    }
    const needles = [...SUBSCRIBERS.flatMap(([address, name]) => [address, name, address.split('@')[0] as string]), ...tokens, ...verp];
    assert.ok(tokens.length >= 3);
    for (const path of await files(site)) {
      let content = await readFile(join(site, path));
      if (path.endsWith('.gz')) content = gunzipSync(content);
      const text = content.toString('utf8');
      for (const needle of needles) assert.ok(!text.includes(needle), `${path} contains ${needle}`);
    }
  });

  test('the month mbox holds each bulletin once, with >From quoting and the thread headers', async () => {
    const mbox = gunzipSync(await readFile(join(site, 'news/2026-November.txt.gz'))).toString('utf8');
    assert.equal((mbox.match(/^From bulletins@lists\.example\.net /gm) ?? []).length, 2);
    assert.match(mbox, /^>From here on, all is well\./m);
    assert.match(mbox, /^In-Reply-To: <bulletin-\d+\.news@lists\.example\.net>$/m);
  });

  test('a re-export writes nothing and gives the same bytes; a new bulletin gets the next number and old numbers stay', async () => {
    const before = new Map<string, Buffer>();
    for (const path of await files(site)) before.set(path, await readFile(join(site, path)));
    const mtime = (await stat(join(site, 'news/index.html'))).mtimeMs;
    const again = (await runOk(['archive', 'export', '--list', 'news', '--out', site, '--json'], db)) as { written: number; unchanged: number };
    assert.deepEqual([again.written, again.unchanged], [0, before.size]);
    assert.equal((await stat(join(site, 'news/index.html'))).mtimeMs, mtime);
    await send('later.md', '---\nsubject: A later notice\n---\nMore news.\n', '2026-11-30T23:59:00Z');
    const third = (await runOk(['archive', 'export', '--list', 'news', '--out', site, '--json'], db)) as { written: number; numbered: number };
    assert.equal(third.numbered, 1);
    assert.ok(third.written < before.size + 1, `only changed files rewritten (${third.written})`);
    assert.deepEqual(await readFile(join(site, 'news/2026-October/000000.html')), before.get('news/2026-October/000000.html'));
    assert.ok((await files(site)).includes('news/2026-November/000003.html'));
  });

  test('a bulletin without its kept archive rendering is rendered once at export, to the same page', async () => {
    const page = join(site, 'news/2026-November/000001.html');
    const before = await readFile(page);
    await rows(db, `UPDATE bulletins SET archive_html = NULL, archive_text = NULL WHERE source_name = 'outage.md'`);
    const again = (await runOk(['archive', 'export', '--list', 'news', '--out', site, '--json'], db)) as { written: number };
    assert.equal(again.written, 0);
    assert.ok((await readFile(page)).equals(before));
    const [kept] = await rows<{ archive_html: string | null }>(db, `SELECT archive_html FROM bulletins WHERE source_name = 'outage.md'`);
    assert.match(kept?.archive_html ?? '', /Mail was <strong>slow<\/strong>/);
  });

  test('export needs an output directory and an existing list', async () => {
    const noOut = await runCli(['archive', 'export', '--list', 'news'], db);
    assert.equal(noOut.code, 2);
    assert.match(noOut.stderr, /--out DIR, or set BULLETIN_ARCHIVE_DIR/);
    const noList = await runCli(['archive', 'export', '--list', 'nope', '--out', site], db);
    assert.equal(noList.code, 66);
  });

  test('the gzip header has no time stamp or file name; a file the export did not write stays where it is', async () => {
    const gz = await readFile(join(site, 'news/2026-November.txt.gz'));
    assert.deepEqual([...gz.subarray(0, 4)], [0x1f, 0x8b, 8, 0], 'gzip, deflate, no FNAME/FCOMMENT/FEXTRA');
    assert.equal(gz.readUInt32LE(4), 0, 'MTIME is zero');
    await writeFile(join(site, 'news/robots.txt'), 'User-agent: *\n');
    await writeFile(join(site, 'news/2026-November/notes.txt'), 'kept\n');
    await runOk(['archive', 'export', '--list', 'news', '--out', site], db);
    assert.equal(await readFile(join(site, 'news/robots.txt'), 'utf8'), 'User-agent: *\n');
    assert.equal(await readFile(join(site, 'news/2026-November/notes.txt'), 'utf8'), 'kept\n');
    assert.ok(!(await files(site)).some((path) => path.endsWith('.tmp')), 'no temporary file left');
  });

  test('threads follow what each send threaded to: a file name sent again later, and a reference by id', async () => {
    await runOk(['list', 'create', 'threads', ...LIST_FLAGS.map((flag) => flag.replace('bulletins@', 'threads@'))], db);
    // Each send a minute after the one before, on 1 March 2026.
    let minute = 0;
    const sendTo = async (path: string, body: string) => {
      await mkdir(join(db.cwd, 'threads', path, '..'), { recursive: true });
      await writeFile(join(db.cwd, 'threads', path), body);
      const at = `2026-03-01T10:${String(++minute).padStart(2, '0')}:00Z`;
      await runOk(['send', join(db.cwd, 'threads', path), '--list', 'threads', '--outbox', join(db.cwd, 'outbox-threads'), '--yes', '--quiet'], {
        ...db,
        clock: clockAt(at),
      });
    };
    await sendTo('first/notice.md', '---\nsubject: Notice one\n---\nOne.\n');
    await sendTo('reply-one.md', '---\nsubject: Reply to one\nin-reply-to: notice.md\n---\nR1.\n');
    await sendTo('second/notice.md', '---\nsubject: Notice two\nin-reply-to: notice.md\n---\nTwo.\n');
    await sendTo('reply-two.md', '---\nsubject: Reply to two\nin-reply-to: notice.md\n---\nR2.\n');
    const [first] = await rows<{ id: number }>(db, `SELECT id FROM bulletins WHERE subject = 'Notice one'`);
    await sendTo('by-id.md', `---\nsubject: Reply by id\nin-reply-to: ${first?.id}\n---\nR3.\n`);
    const out = join(db.cwd, 'threads-site');
    await runOk(['archive', 'export', '--list', 'threads', '--out', out], db);
    const thread = await readFile(join(out, 'threads/2026-March/thread.html'), 'utf8');
    const tree = thread.slice(thread.indexOf('<ul class="bulletins">') + '<ul class="bulletins">'.length, thread.indexOf('<hr>'));
    const items = [...tree.matchAll(/<li><a href="\d{6}\.html">([^<]+)<\/a>|<\/?ul>/g)].map((match) => match[1] ?? match[0]);
    assert.deepEqual(items, ['Notice one', '<ul>', 'Reply to one', 'Notice two', '<ul>', 'Reply to two', '</ul>', 'Reply by id', '</ul>', '</ul>']);
    const mbox = gunzipSync(await readFile(join(out, 'threads/2026-March.txt.gz'))).toString('utf8');
    const messages = mbox.split(/^(?=From threads@lists\.example\.net )/m);
    const header = (subject: string, name: string) =>
      messages.find((message) => message.includes(`Subject: [ExampleNet-Bulletins] ${subject}\n`))?.match(new RegExp(`^${name}: (.*)$`, 'm'))?.[1];
    assert.equal(header('Reply to two', 'In-Reply-To'), header('Notice two', 'Message-ID'));
    assert.equal(header('Reply to one', 'In-Reply-To'), header('Notice one', 'Message-ID'));
    assert.equal(header('Reply by id', 'In-Reply-To'), header('Notice one', 'Message-ID'));
    assert.equal(header('Notice one', 'In-Reply-To'), undefined);
  });

  test('two exports at once hand out each number once and write the same bytes', async () => {
    await writeFile(join(db.cwd, 'extra.md'), '---\nsubject: One more notice\n---\nMore.\n');
    await runOk(['send', join(db.cwd, 'extra.md'), '--list', 'threads', '--outbox', join(db.cwd, 'outbox-threads'), '--yes', '--quiet'], {
      ...db,
      clock: clockAt('2026-03-02T10:00:00Z'),
    });
    await writeFile(join(db.cwd, 'extra2.md'), '---\nsubject: And another\n---\nMore.\n');
    await runOk(['send', join(db.cwd, 'extra2.md'), '--list', 'threads', '--outbox', join(db.cwd, 'outbox-threads'), '--yes', '--quiet'], {
      ...db,
      clock: clockAt('2026-03-02T10:05:00Z'),
    });
    const [left, right] = [join(db.cwd, 'concurrent-a'), join(db.cwd, 'concurrent-b')];
    const summaries = await inspect(db, (app) =>
      Promise.all([exportArchive(app, { slug: 'threads', outDir: left }), exportArchive(app, { slug: 'threads', outDir: right })]),
    );
    assert.equal(summaries[0].numbered + summaries[1].numbered, 2, 'the two new bulletins are numbered once, by one of the exports');
    const numbers = await rows<{ archive_number: number }>(
      db,
      `SELECT archive_number FROM bulletins JOIN lists ON lists.id = bulletins.list_id WHERE lists.slug = 'threads' ORDER BY archive_number`,
    );
    assert.deepEqual(
      numbers.map((row) => row.archive_number),
      [0, 1, 2, 3, 4, 5, 6],
    );
    const names = await files(left);
    assert.deepEqual(await files(right), names);
    for (const name of names) assert.ok((await readFile(join(left, name))).equals(await readFile(join(right, name))), `${name} is the same in both`);
  });
  test('the front matter summary is the excerpt in the month views and the feed', async () => {
    await runOk(['archive', 'export', '--list', 'news', '--out', site], db);
    for (const order of ['thread', 'date', 'subject', 'author']) {
      const month = await readFile(join(site, 'news/2026-November', `${order}.html`), 'utf8');
      assert.match(
        month,
        /Mail delays, resolved<\/a> <span class="small">[^<]+<\/span><br><span class="summary">The backlog is cleared &amp; &lt;all&gt; is delivered\.<\/span>/,
        order,
      );
      assert.equal((month.match(/class="summary"/g) ?? []).length, 1, 'a bulletin without a summary shows none');
    }
    const feed = await readFile(join(site, 'news/feed.xml'), 'utf8');
    assert.match(
      feed,
      /<title type="text">\[ExampleNet-Bulletins\] Mail delays, resolved<\/title>[\s\S]*?<summary type="text">The backlog is cleared &amp; &lt;all&gt; is delivered\.<\/summary>/,
    );
    assert.equal((feed.match(/<summary /g) ?? []).length, 1);
  });
});
