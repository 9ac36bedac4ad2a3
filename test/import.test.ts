// `bulletin subscribers import` against real files: BOM, CRLF, quoting, blank lines, duplicates,
// invalid and international addresses, atomicity, re-runs, and unsubscribes that an import must not undo.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { LIST_FLAGS, rows } from './helpers/app.js';
import { runCli, runOk } from './helpers/cli.js';
import { createTestDatabase, DATABASE_KIND, type TestDatabase } from './helpers/database.js';
import type { ImportReport } from '../src/app/import-subscribers.js';

let db: TestDatabase;
let listCounter = 0;

before(async () => {
  db = await createTestDatabase();
});
after(async () => {
  await db?.drop();
});

async function newList(): Promise<string> {
  const slug = `import-${++listCounter}`;
  await runOk(['list', 'create', slug, ...LIST_FLAGS], db);
  return slug;
}

async function writeCsv(name: string, content: string | Buffer): Promise<string> {
  const path = join(db.cwd, name);
  await writeFile(path, content);
  return path;
}

/** What `--json` prints: the use case's report as it is. */
type ImportJson = ImportReport;

async function importJson(file: string, slug: string, ...extra: string[]): Promise<ImportJson> {
  return (await runOk(['subscribers', 'import', file, '--list', slug, '--json', ...extra], db)) as ImportJson;
}

async function members(slug: string) {
  return rows<{ email: string; name: string | null; attributes: Record<string, string>; status: string; status_source: string }>(
    db,
    `SELECT s.email, s.name, s.attributes, m.status, m.status_source
       FROM memberships m JOIN subscribers s ON s.id = m.subscriber_id JOIN lists l ON l.id = m.list_id
      WHERE l.slug = $1 ORDER BY s.email`,
    [slug],
  );
}

describe(`subscribers import (${DATABASE_KIND} database)`, () => {
  test('a messy real-world file: BOM, CRLF, quoted commas and newlines, blank lines, duplicates, IDN', async () => {
    const slug = await newList();
    const csv =
      '\uFEFFEmail,Name,city,plan\r\n' + // 1
      'alice@example.net,"Smith, Alice",Adelaide,adsl\r\n' + // 2
      '\r\n' + // 3
      'bob@example.net,"Bob\r\nthe Builder",Perth,\r\n' + // 4-5
      'ALICE@Example.NET,Alice Again,Sydney,nbn\r\n' + // 6: mixed-case duplicate of line 2
      'carol@bücher.example,Carol,,\r\n' + // 7: international domain
      'alice@example.net,"Smith, Alice",Adelaide,adsl\r\n' + // 8: exact duplicate row
      'not-an-address,Nobody,,\r\n' + // 9
      '\r\n' + // 10
      'dave@example.net,Dave,Hobart,fibre\r\n'; // 11
    const file = await writeCsv('messy.csv', csv);
    const report = await importJson(file, slug);
    assert.equal(report.rowsRead, 7);
    assert.equal(report.valid, 6);
    assert.equal(report.invalid, 1);
    assert.equal(report.duplicates, 2);
    assert.equal(report.membershipsAdded, 4);
    assert.deepEqual(report.rejects, [{ line: 9, email: 'not-an-address', reason: 'address has no @' }]);

    const found = await members(slug);
    assert.deepEqual(
      found.map((member) => member.email),
      ['alice@example.net', 'bob@example.net', 'carol@xn--bcher-kva.example', 'dave@example.net'],
    );
    const alice = found[0];
    assert.equal(alice?.name, 'Smith, Alice', 'the first occurrence of an address wins');
    assert.deepEqual(alice?.attributes, { city: 'Adelaide', plan: 'adsl' });
    assert.equal(found[1]?.name, 'Bob the Builder', 'a line break inside a name becomes a space');
    assert.deepEqual(found[1]?.attributes, { city: 'Perth' }, 'empty cells are not attributes');
    assert.ok(found.every((member) => member.status === 'active' && member.status_source === 'import'));
  });

  test('invalid addresses are reported with the line they start on and written to --rejects', async () => {
    const slug = await newList();
    const longLocal = `${'a'.repeat(65)}@example.net`;
    // 64 + 1 + 190 = 255 octets: every part within its own limit, the whole over RFC 5321's 254.
    const longAddress = `${'b'.repeat(64)}@${'c'.repeat(63)}.${'d'.repeat(63)}.${'e'.repeat(58)}.net`;
    const csv = [
      'email,name',
      'good@example.net,Good', // 2
      '"multi',
      'line@example.net",Broken', // 3-4: CR/LF inside the address
      `${longLocal},Long local`, // 5
      `${longAddress},Long`, // 6
      'two@@example.net,Double at', // 7
      'spaces in@example.net,Space', // 8
      '"x@example.net\r\nBcc: victim@example.org",Injection', // 9-10
      'lonely@,No domain', // 11
      'ok2@example.net,Also good', // 12
      '',
    ].join('\n');
    const file = await writeCsv('invalid.csv', csv);
    const rejectsFile = join(db.cwd, 'rejects.csv');
    const report = await importJson(file, slug, '--rejects', rejectsFile);
    assert.equal(report.valid, 2);
    assert.equal(report.invalid, 7);
    assert.deepEqual(
      report.rejects.map((reject) => reject.line),
      [3, 5, 6, 7, 8, 9, 11],
    );
    assert.match(report.rejects[0]?.reason ?? '', /line break/);
    assert.match(report.rejects[1]?.reason ?? '', /local part over 64/);
    assert.match(report.rejects[2]?.reason ?? '', /over 254 octets/);
    assert.match(report.rejects[5]?.reason ?? '', /line break/);
    const rejected = await readFile(rejectsFile, 'utf8');
    const rejectLines = rejected.trimEnd().split('\n');
    assert.equal(rejectLines[0], 'line,reason,email,name');
    assert.match(rejected, /^5,address has a local part over 64 octets \(RFC 5321\),a{65}@example\.net,Long local$/m);
    assert.deepEqual(
      (await members(slug)).map((member) => member.email),
      ['good@example.net', 'ok2@example.net'],
    );

    const human = await runCli(['subscribers', 'import', file, '--list', slug], db);
    assert.equal(human.code, 0);
    assert.match(human.stdout, /7 invalid rows skipped:/);
    // The line break from the file is shown as an escape, never sent to the terminal.
    assert.match(human.stdout, /line 9: "x@example\.net(\\r)?\\nBcc: victim@example\.org" address contains a line break/);
  });

  test('re-running an import changes nothing', async () => {
    const slug = await newList();
    const file = await writeCsv('rerun.csv', 'email,name,city\nerin@example.net,Erin,Darwin\nfrank@example.net,,Cairns\n');
    const first = await importJson(file, slug);
    assert.equal(first.membershipsAdded, 2);
    assert.equal(first.subscribersCreated, 2);
    const snapshot = async () =>
      rows(
        db,
        `SELECT s.*, m.* FROM subscribers s JOIN memberships m ON m.subscriber_id = s.id
                 JOIN lists l ON l.id = m.list_id WHERE l.slug = $1 ORDER BY s.email`,
        [slug],
      );
    const before = await snapshot();
    const second = await importJson(file, slug);
    assert.equal(second.membershipsAdded, 0);
    assert.equal(second.subscribersCreated, 0);
    assert.equal(second.subscribersUpdated, 0);
    assert.equal(second.alreadyActive, 2);
    assert.deepEqual(await snapshot(), before, 'not even a timestamp moved');
  });

  test('an import never re-activates an unsubscribe unless --resubscribe is given', async () => {
    const slug = await newList();
    const file = await writeCsv('old-spreadsheet.csv', 'email\ngina@example.net\nhank@example.net\n');
    await importJson(file, slug);
    await runOk(['subscribers', 'remove', 'gina@example.net', '--list', slug], db);
    const again = await importJson(file, slug);
    assert.equal(again.keptInactive, 1);
    assert.equal(again.resubscribed, 0);
    let found = await members(slug);
    assert.equal(found.find((member) => member.email === 'gina@example.net')?.status, 'unsubscribed');
    assert.equal(found.find((member) => member.email === 'gina@example.net')?.status_source, 'command line');

    const resubscribed = await importJson(file, slug, '--resubscribe');
    assert.equal(resubscribed.resubscribed, 1);
    found = await members(slug);
    assert.equal(found.find((member) => member.email === 'gina@example.net')?.status, 'active');
  });

  test('an erased address is never imported again', async () => {
    const slug = await newList();
    const file = await writeCsv('erased.csv', 'email,name\nivy@example.net,Ivy\njack@example.net,Jack\n');
    await importJson(file, slug);
    await runOk(['subscribers', 'remove', 'IVY@example.net', '--list', slug, '--purge'], db);
    assert.equal((await rows(db, `SELECT * FROM subscribers WHERE email = 'ivy@example.net'`)).length, 0);
    const again = await importJson(file, slug);
    assert.equal(again.suppressed, 1);
    assert.equal(again.membershipsAdded, 0);
    assert.deepEqual(
      (await members(slug)).map((member) => member.email),
      ['jack@example.net'],
    );
  });

  test('the import is atomic: a broken file imports nothing', async () => {
    const slug = await newList();
    const rowsBefore = Array.from({ length: 12_000 }, (_, index) => `person${index}@example.net,Person ${index}`);
    const file = await writeCsv('broken.csv', `email,name\n${rowsBefore.join('\n')}\n"unclosed@example.net,Oops\n`);
    const result = await runCli(['subscribers', 'import', file, '--list', slug], db);
    assert.equal(result.code, 65);
    assert.match(result.stderr, /is not valid CSV: .*nothing was imported/);
    assert.equal(result.stderr.trim().split('\n').length, 1, 'one sentence on stderr');
    assert.equal((await members(slug)).length, 0);
  });

  test('--dry-run counts but changes nothing', async () => {
    const slug = await newList();
    const file = await writeCsv('dry.csv', 'email\nkim@example.net\nlee@example.net\nbad\n');
    const report = await importJson(file, slug, '--dry-run');
    assert.equal(report.membershipsAdded, 2);
    assert.equal(report.invalid, 1);
    assert.equal((await members(slug)).length, 0);
  });

  test('header problems are clear errors with the input exit status', async () => {
    const slug = await newList();
    const noEmail = await writeCsv('no-email.csv', 'address,name\nx@example.net,X\n');
    const result = await runCli(['subscribers', 'import', noEmail, '--list', slug], db);
    assert.equal(result.code, 65);
    assert.match(result.stderr, /has no "email" column in its header row \(found: address, name\)/);
    const badColumn = await writeCsv('bad-column.csv', 'email,First Name\nx@example.net,X\n');
    const bad = await runCli(['subscribers', 'import', badColumn, '--list', slug], db);
    assert.equal(bad.code, 65);
    assert.match(bad.stderr, /"First Name".*e\.g\. "first_name"/);
    const missing = await runCli(['subscribers', 'import', join(db.cwd, 'nope.csv'), '--list', slug], db);
    assert.equal(missing.code, 65);
    assert.match(missing.stderr, /Cannot read .*nope\.csv/);
    const empty = await writeCsv('empty.csv', '');
    const none = await runCli(['subscribers', 'import', empty, '--list', slug], db);
    assert.equal(none.code, 65);
    assert.match(none.stderr, /is empty/);
  });

  test('rows with the wrong number of fields are rejected, the rest imported; stdin works', async () => {
    const slug = await newList();
    const report = (await runOk(['subscribers', 'import', '-', '--list', slug, '--json'], {
      ...db,
      stdin: 'email,name\nmia@example.net,Mia,extra\nned@example.net,Ned\n',
    })) as ImportJson;
    assert.equal(report.invalid, 1);
    assert.equal(report.rejects[0]?.line, 2);
    assert.match(report.rejects[0]?.reason ?? '', /has 3 fields where the header has 2/);
    assert.deepEqual(
      (await members(slug)).map((member) => member.email),
      ['ned@example.net'],
    );
  });

  test('limits: a field over 1,000 characters rejects its row, a header over 102 columns or a record over 128 KiB the file; control characters are shown escaped', async () => {
    const slug = await newList();
    const csv = await writeCsv(
      'limits.csv',
      `email,name,city\nlong@example.net,${'N'.repeat(1001)},Perth\nok@example.net,${'N'.repeat(1000)},Perth\n"evil\u001b[31m\r@example.net",Eve,x\n"""q""@example.com",Q,x\n`,
    );
    const result = await runCli(['subscribers', 'import', csv, '--list', slug], db);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /line 2: "long@example\.net" column 2 \("name"\) has 1,001 characters; a field may have at most 1,000/);
    // The escape sequence and the carriage return from the file are printed as escapes, never raw.
    assert.match(result.stdout, /line 4: "evil\\x1b\[31m\\r@example\.net" address contains a line break/);
    assert.doesNotMatch(result.stdout, /[\u0000-\u0009\u000b-\u001f]/);
    assert.match(result.stdout, /line 5: ""q"@example\.com" address has a quoted local part/);
    assert.deepEqual(
      (await members(slug)).map((member) => member.email),
      ['ok@example.net'],
    );

    const wide = await writeCsv('wide.csv', `email,name,${Array.from({ length: 101 }, (_, i) => `a${i}`).join(',')}\nx@example.net\n`);
    const refused = await runCli(['subscribers', 'import', wide, '--list', slug], db);
    assert.equal(refused.code, 65);
    assert.match(refused.stderr, /wide\.csv has 103 columns in its header row; at most 102 \(email, name and 100 attributes\); nothing was imported\./);

    const open = await writeCsv('open.csv', `email,name\nfirst@example.net,First\nsecond@example.net,"never closed\n${'x,'.repeat(70_000)}\n`);
    const huge = await runCli(['subscribers', 'import', open, '--list', slug], db);
    assert.equal(huge.code, 65);
    assert.match(huge.stderr, /open\.csv line \d+: a record is over 128 KiB, the most one row may hold \(a quote left open\?\); nothing was imported\./);
    assert.deepEqual(
      (await members(slug)).map((member) => member.email),
      ['ok@example.net'],
    );
  });

  test('subscribers add refuses a quoted local part, an overlong name or value, and shows the address escaped', async () => {
    const slug = await newList();
    const quoted = await runCli(['subscribers', 'add', '"q"@example.com', '--list', slug], db);
    assert.equal(quoted.code, 65);
    assert.match(quoted.stderr, /quoted local part .*write the address without quotes/);
    const control = await runCli(['subscribers', 'add', 'a\u001b[2Jb@example.com', '--list', slug], db);
    assert.equal(control.code, 65);
    assert.match(control.stderr, /"a\\x1b\[2Jb@example\.com" contains a control character/);
    assert.match((await runCli(['subscribers', 'add', 'n@example.com', '--list', slug, '--name', 'N'.repeat(1001)], db)).stderr, /at most 1,000/);
    assert.match(
      (await runCli(['subscribers', 'add', 'n@example.com', '--list', slug, '--attr', `city=${'C'.repeat(1001)}`], db)).stderr,
      /Attribute "city" has 1,001 characters/,
    );
    assert.deepEqual(await members(slug), []);
  });
});
