// Audience filters (`--where`): a table of expressions against members with known attributes —
// quoting, Unicode, injection attempts, deep nesting, empty results — run as SQL on the test's
// database; mistakes are one sentence with their column; unknown attributes are refused by name.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseFilter, MAX_FILTER_NESTING } from '../src/domain/audience-filter.js';
import { sampleAudience } from '../src/store/audience.js';
import { inspect, LIST_FLAGS, rows } from './helpers/app.js';
import { runCli, runOk } from './helpers/cli.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';

let db: TestDatabase;
let listId: number;

const MEMBERS = `email,name,platform,state,mbps,renewal,note
ann@example.net,Ann Lee,mail,SA,100,2026-03-01,"say ""hi"", then go"
bob@example.net,Bob,web,NT,25,2025-12-31,
cat@example.org,Cát Nguyễn,mail,NSW,1000,2027-01-15,Ünïcode ✓
dan@example.org,,mail,NT,50.5,not a date,'; drop table subscribers; --
eve@sub.example.com,Eve O'Brien,,VIC,,,
`;

before(async () => {
  db = await createTestDatabase();
  await runOk(['list', 'create', 'news', ...LIST_FLAGS], db);
  const file = join(db.cwd, 'members.csv');
  await writeFile(file, MEMBERS);
  await runOk(['subscribers', 'import', file, '--list', 'news'], db);
  await runOk(['subscribers', 'add', 'gone@example.net', '--list', 'news', '--attr', 'platform=mail'], db);
  await runOk(['subscribers', 'remove', 'gone@example.net', '--list', 'news'], db);
  listId = (await rows<{ id: number }>(db, `SELECT id FROM lists WHERE slug = 'news'`))[0]!.id;
  // Fixed subscription times, a few around midnight UTC of 2026-01-01.
  await rows(
    db,
    `UPDATE memberships m SET subscribed_at = t.at::timestamptz FROM subscribers s,
       (VALUES ('ann', '2025-12-31T23:30:00Z'), ('bob', '2026-01-01T00:30:00Z'), ('cat', '2024-06-01T00:00:00Z'),
               ('dan', '2027-01-01T00:00:00Z'), ('eve', '2026-06-01T00:00:00Z')) AS t (who, at)
      WHERE s.id = m.subscriber_id AND s.email LIKE t.who || '@%'`,
  );
});
after(async () => {
  await db?.drop();
});

async function matching(filter: string): Promise<string[]> {
  return inspect(db, async (app) => (await sampleAudience(app.db, listId, parseFilter(filter), 100)).map((row) => row.email.split('@')[0]!));
}

const TABLE: [string, string[]][] = [
  ['attributes.platform = "mail"', ['ann', 'cat', 'dan']],
  ['attributes.platform = "mail" and attributes.state in ("SA", "NT")', ['ann', 'dan']],
  ["attributes.platform = 'web' or attributes.state = 'VIC'", ['bob', 'eve']],
  ['attributes.platform != "mail"', ['bob', 'eve']],
  ['not attributes.platform = "mail"', ['bob', 'eve']],
  ['not (attributes.platform = "mail" or attributes.platform = "web")', ['eve']],
  ['attributes.state not in ("NT", "SA")', ['cat', 'eve']],
  ['attributes.platform exists', ['ann', 'bob', 'cat', 'dan']],
  ['not attributes.platform exists', ['eve']],
  ['name exists', ['ann', 'bob', 'cat', 'eve']],
  ['attributes.mbps >= 100', ['ann', 'cat']],
  ['attributes.mbps < 50.5', ['bob']],
  ['attributes.mbps = 50.5', ['dan']],
  ['attributes.mbps in (25, 1000)', ['bob', 'cat']],
  ['attributes.mbps > -1', ['ann', 'bob', 'cat', 'dan']],
  ['attributes.renewal < 2026-06-01', ['ann', 'bob']],
  ['attributes.renewal >= 2026-06-01', ['cat']],
  ['email ends with "@EXAMPLE.ORG"', ['cat', 'dan']],
  ['email = "ANN@example.net"', ['ann']],
  ['email starts with "e" and email contains "sub."', ['eve']],
  ['name contains "nguyễn"', ['cat']],
  ['name = "Cát Nguyễn"', ['cat']],
  ['attributes.note contains "Ünïcode ✓"', ['cat']],
  ['attributes.note = "say \\"hi\\", then go"', ['ann']],
  ["name = 'Eve O\\'Brien'", ['eve']],
  ['name = "Eve O\'Brien"', ['eve']],
  ['attributes.note = "\\u00dcn\\u00efcode \\u2713"', ['cat']],
  ['attributes.note = "\'; drop table subscribers; --"', ['dan']],
  ['name = "x\\"; drop table subscribers; --"', []],
  ['attributes.platform = "mail" AND NOT attributes.state = "NT"', ['ann', 'cat']],
  ['attributes.platform = "nothing"', []],
  ['subscribed > 2000-01-01', ['ann', 'bob', 'cat', 'dan', 'eve']],
  ['subscribed < 2000-01-01T00:00+10:30', []],
  ['subscribed < 2026-01-01', ['ann', 'cat']],
  ['subscribed >= 2026-01-01 and subscribed < 2026-12-31', ['bob', 'eve']],
  ['subscribed >= 2026-01-01T00:00+10:30', ['ann', 'bob', 'dan', 'eve']],
  ['subscribed > 2026-01-01T00:30:00Z', ['dan', 'eve']],
  [`${'('.repeat(MAX_FILTER_NESTING - 1)}attributes.state = "SA"${')'.repeat(MAX_FILTER_NESTING - 1)}`, ['ann']],
  [`${'not '.repeat(MAX_FILTER_NESTING)}attributes.state = "SA"`, ['ann']],
];

describe('filters select exactly the members they say', () => {
  for (const [filter, expected] of TABLE) {
    test(filter.length > 80 ? `${filter.slice(0, 60)}… (${filter.length} characters)` : filter, async () => {
      assert.deepEqual(await matching(filter), expected);
    });
  }
});

test('the subscribers table is still there after the injection attempts', async () => {
  const [count] = await rows<{ count: number }>(db, 'SELECT count(*)::int AS count FROM subscribers');
  assert.equal(count!.count, 6);
});

test('no text of a filter reaches the SQL: values and attribute names are parameters', async () => {
  const { audienceCondition } = await import('../src/store/audience.js');
  const condition = audienceCondition(parseFilter(`attributes.x_drop = "'; drop table subscribers; --" or name in ("a'b")`), 2);
  assert.doesNotMatch(condition.text, /drop|x_drop|a'b/i);
  assert.deepEqual(condition.values, ['x_drop', "'; drop table subscribers; --", ["a'b"]]);
});

const MISTAKES: [string, RegExp][] = [
  ['attributes.platform = ', /^The filter is wrong at column 23: expected a value .* but found the end of the filter\.$/],
  ['attributes.platform == "mail"', /column 22: expected a value/],
  ['attributes.platform = "mail', /column 23: the string opened here has no closing "\./],
  ['attributes.platform = "mail" attributes.state = "SA"', /column 30: expected "and", "or" or the end of the filter, but found "a"\./],
  ['platform = "mail"', /column 1: expected "not", "\(" or a field \(email, name, subscribed or attributes\.<name>\)/],
  ['"; drop table subscribers; --', /column 1: expected/],
  ['email < 3', /column 1: email is text/],
  ['subscribed = 2026-01-01', /column 1: subscribed is a date/],
  ['subscribed > 2026-01-01T09:00', /column 14: a date and time needs an offset/],
  ['attributes.renewal < 2026-02-30', /column 22: 2026-02-30 is not a date/],
  ['attributes.state in ("SA", 3)', /column 28: the values of one "in" are all quoted strings or all numbers/],
  ['attributes.state starts "S"', /column 25: expected "with"/],
  ['attributes.a contains 3', /column 23: "contains" takes a quoted string/],
  ['name = "bad \\q escape"', /column 13: a backslash in a string starts an escape/],
  [
    `${'('.repeat(MAX_FILTER_NESTING + 1)}name = "x"${')'.repeat(MAX_FILTER_NESTING + 1)}`,
    new RegExp(`column ${MAX_FILTER_NESTING + 1}: parentheses and "not" nest at most ${MAX_FILTER_NESTING} deep`),
  ],
  [`${'not '.repeat(MAX_FILTER_NESTING + 1)}name = "x"`, /nest at most 32 deep/],
  [
    '(((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((',
    /nest at most/,
  ],
  ['', /The filter is empty/],
  ['x'.repeat(5000), /at most 4,000 are allowed/],
];

describe('mistakes are one sentence with the column', () => {
  for (const [filter, expected] of MISTAKES) {
    test(filter.length > 60 ? `${filter.slice(0, 40)}… (${filter.length} characters)` : filter || '(empty)', () => {
      assert.throws(
        () => parseFilter(filter),
        (error: Error) => {
          assert.match(error.message, expected);
          assert.equal(error.message.split(/\.\s/).length, 1, `one sentence: ${error.message}`);
          return true;
        },
      );
    });
  }
});

test('subscribers count --where counts active members only, with a sample; bad filters exit 65', async () => {
  const counted = (await runOk(['subscribers', 'count', '--list', 'news', '--where', 'attributes.platform = "mail"', '--json'], db)) as {
    count: number;
    sample: { email: string }[];
  };
  assert.equal(counted.count, 3, 'gone@example.net unsubscribed and is not counted');
  assert.deepEqual(
    counted.sample.map((member) => member.email),
    ['ann@example.net', 'cat@example.org', 'dan@example.org'],
  );
  const text = await runOk(['subscribers', 'count', '--list', 'news', '--where', 'attributes.state = "NT"'], db);
  assert.match(String(text), /^2\n {2}bob@example\.net \(Bob\)\n {2}dan@example\.org\n$/);
  const bad = await runCli(['subscribers', 'count', '--list', 'news', '--where', 'attributes.state = '], db);
  assert.equal(bad.code, 65);
  assert.match(bad.stderr, /^bulletin: The filter is wrong at column 20: expected a value/);
});

test("an attribute no member has is refused, naming the list's attributes, unless --allow-unknown", async () => {
  const refused = await runCli(['subscribers', 'count', '--list', 'news', '--where', 'attributes.platfrom = "mail"'], db);
  assert.equal(refused.code, 65);
  assert.match(
    refused.stderr,
    /column 1: no member of "news" has the attribute "platfrom" \(its members have: mbps, note, platform, renewal, state\); add --allow-unknown if it is meant\./,
  );
  const allowed = (await runOk(['subscribers', 'count', '--list', 'news', '--where', 'attributes.platfrom = "mail"', '--allow-unknown', '--json'], db)) as {
    count: number;
  };
  assert.equal(allowed.count, 0);
});

test('segments: create, ls with counts, count --segment, refused twice or when unknown', async () => {
  const created = (await runOk(['segment', 'create', 'mail-customers', '--list', 'news', '--where', 'attributes.platform = "mail"', '--json'], db)) as {
    count: number;
  };
  assert.equal(created.count, 3);
  const again = await runCli(['segment', 'create', 'mail-customers', '--list', 'news', '--where', 'name exists'], db);
  assert.equal(again.code, 65);
  assert.match(again.stderr, /already has a segment "mail-customers"/);
  const listed = (await runOk(['segment', 'ls', '--json'], db)) as { list: string; name: string; filter: string; count: number }[];
  assert.deepEqual(listed, [{ list: 'news', name: 'mail-customers', filter: 'attributes.platform = "mail"', count: 3 }]);
  const bySegment = (await runOk(['subscribers', 'count', '--list', 'news', '--segment', 'mail-customers', '--json'], db)) as {
    count: number;
    segment: string;
  };
  assert.equal(bySegment.count, 3);
  const unknown = await runCli(['subscribers', 'count', '--list', 'news', '--segment', 'nope'], db);
  assert.equal(unknown.code, 66);
  assert.match(unknown.stderr, /has no segment "nope" \(it has: mail-customers\)/);
  const badFilter = await runCli(['segment', 'create', 'broken', '--list', 'news', '--where', 'name ='], db);
  assert.equal(badFilter.code, 65);
});
