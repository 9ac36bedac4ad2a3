// The audience filter language (`--where`): its grammar (a Peggy PEG, compiled once on first use),
// the tree it parses into, and the checks that make every mistake one sentence with its column.
// Pure: src/store/audience.ts turns a checked tree into parameterised SQL.
import peggy from 'peggy';
import { BulletinError } from './errors.js';
import { ATTRIBUTE_NAME } from './subscriber.js';

/** The longest filter accepted, and how deep parentheses and `not` may nest. */
export const MAX_FILTER_LENGTH = 4000;
export const MAX_FILTER_NESTING = 32;

export type FilterField =
  | { readonly kind: 'email'; readonly column: number }
  | { readonly kind: 'name'; readonly column: number }
  | { readonly kind: 'subscribed'; readonly column: number }
  | { readonly kind: 'attribute'; readonly name: string; readonly column: number };

export type FilterValue =
  | { readonly type: 'string'; readonly value: string; readonly column: number }
  | { readonly type: 'number'; readonly value: string; readonly column: number }
  /** `date`: YYYY-MM-DD; `value` is that date, or an ISO instant when a time (with offset) was given. */
  | { readonly type: 'date'; readonly value: string; readonly withTime: boolean; readonly column: number };

export type CompareOperator = '=' | '!=' | '<' | '<=' | '>' | '>=';

export type FilterNode =
  | { readonly kind: 'and' | 'or'; readonly items: readonly FilterNode[]; readonly column: number }
  | { readonly kind: 'not'; readonly operand: FilterNode; readonly column: number }
  | { readonly kind: 'compare'; readonly field: FilterField; readonly op: CompareOperator; readonly value: FilterValue; readonly column: number }
  | { readonly kind: 'in'; readonly field: FilterField; readonly negated: boolean; readonly values: readonly FilterValue[]; readonly column: number }
  | { readonly kind: 'contains' | 'startsWith' | 'endsWith'; readonly field: FilterField; readonly value: FilterValue; readonly column: number }
  | { readonly kind: 'exists'; readonly field: FilterField; readonly column: number };

/**
 * The grammar. Keywords are case-insensitive; strings are in double or single quotes with `\"`,
 * `\'`, `\\`, `\n`, `\t` and `\uXXXX` escapes; `not` binds tighter than `and`, `and` than `or`.
 */
const GRAMMAR = String.raw`
Filter = _ expr:Or _ End { return expr; }
End "the end of the filter" = !.

Or  = head:And tail:(_ OrKw _ @And)* { return tail.length === 0 ? head : { kind: 'or', items: [head, ...tail], column: head.column }; }
And = head:Not tail:(_ AndKw _ @Not)* { return tail.length === 0 ? head : { kind: 'and', items: [head, ...tail], column: head.column }; }
Not = NotKw _ operand:Not { return { kind: 'not', operand, column: location().start.column }; }
    / Primary
Primary = "(" _ @Or _ ")"
        / Comparison

Comparison = field:Field _ test:Test { return { ...test, field, column: field.column }; }

Test
  = ExistsOp { return { kind: 'exists' }; }
  / negated:(@NotOp _)? InOp _ "(" _ head:Value tail:(_ "," _ @Value)* _ ")" { return { kind: 'in', negated: negated !== null, values: [head, ...tail] }; }
  / ContainsOp _ value:Value { return { kind: 'contains', value }; }
  / StartsOp _ WithKw _ value:Value { return { kind: 'startsWith', value }; }
  / EndsOp _ WithKw _ value:Value { return { kind: 'endsWith', value }; }
  / op:SymbolOp _ value:Value { return { kind: 'compare', op, value }; }
ExistsOp "an operator (=, !=, <, <=, >, >=, in, not in, contains, starts with, ends with, exists)" = ExistsKw
NotOp "an operator (=, !=, <, <=, >, >=, in, not in, contains, starts with, ends with, exists)" = NotKw
InOp "an operator (=, !=, <, <=, >, >=, in, not in, contains, starts with, ends with, exists)" = InKw
ContainsOp "an operator (=, !=, <, <=, >, >=, in, not in, contains, starts with, ends with, exists)" = ContainsKw
StartsOp "an operator (=, !=, <, <=, >, >=, in, not in, contains, starts with, ends with, exists)" = StartsKw
EndsOp "an operator (=, !=, <, <=, >, >=, in, not in, contains, starts with, ends with, exists)" = EndsKw
SymbolOp "an operator (=, !=, <, <=, >, >=, in, not in, contains, starts with, ends with, exists)" = $("!=" / "<=" / ">=" / "=" / "<" / ">")

Field "a field (email, name, subscribed or attributes.<name>)"
  = "attributes."i name:$([A-Za-z_] [A-Za-z0-9_]*) { return { kind: 'attribute', name, column: location().start.column }; }
  / kind:("email"i / "name"i / "subscribed"i) !IdentChar { return { kind: kind.toLowerCase(), column: location().start.column }; }

Value "a value (a quoted string, a number or a date)"
  = String / Date / Number

String
  = '"' chars:DoubleChar* '"' { return { type: 'string', value: chars.join(''), column: location().start.column }; }
  / "'" chars:SingleChar* "'" { return { type: 'string', value: chars.join(''), column: location().start.column }; }
  / quote:["'] { error('the string opened here has no closing ' + quote); }
DoubleChar = [^"\\\0-\x1f] / Escape
SingleChar = [^'\\\0-\x1f] / Escape
Escape "an escape (\\\", \\', \\\\, \\n, \\t or \\uXXXX)"
  = "\\" @( '"' / "'" / "\\" / "n" { return '\n'; } / "t" { return '\t'; }
          / "u" hex:$([0-9a-fA-F]|4|) { return String.fromCharCode(parseInt(hex, 16)); } )
  / "\\" { error('a backslash in a string starts an escape: \\" \\\' \\\\ \\n \\t or \\uXXXX'); }

Date
  = date:$([0-9]|4| "-" [0-9]|2| "-" [0-9]|2|) time:$("T"i [0-9]|2| ":" [0-9]|2| (":" [0-9]|2| ("." [0-9]+)?)?)? offset:$("Z"i / [+-] [0-9]|2| ":" [0-9]|2|)? !IdentChar
    { return { type: 'date', date, time, offset, column: location().start.column }; }

Number = text:$("-"? [0-9]+ ("." [0-9]+)?) !IdentChar { return { type: 'number', value: text, column: location().start.column }; }

AndKw = "and"i !IdentChar
OrKw = "or"i !IdentChar
NotKw = "not"i !IdentChar
InKw = "in"i !IdentChar
ExistsKw = "exists"i !IdentChar
ContainsKw = "contains"i !IdentChar
StartsKw = "starts"i !IdentChar
EndsKw = "ends"i !IdentChar
WithKw = "with"i !IdentChar
IdentChar = [A-Za-z0-9_.]
_ "space" = [ \t\r\n]*
`;

let parser: peggy.Parser | undefined;

function filterParser(): peggy.Parser {
  parser ??= peggy.generate(GRAMMAR);
  return parser;
}

/** A filter mistake: one sentence naming the column (1-based) where the filter went wrong. */
export function filterError(column: number, problem: string): BulletinError {
  return new BulletinError('BAD_INPUT', `The filter is wrong at column ${column}: ${problem}.`);
}

/** Parses and checks a filter; throws one sentence with the column of the first mistake. */
export function parseFilter(text: string): FilterNode {
  if (text.length > MAX_FILTER_LENGTH) {
    throw new BulletinError(
      'BAD_INPUT',
      `The filter has ${text.length.toLocaleString('en-US')} characters; at most ${MAX_FILTER_LENGTH.toLocaleString('en-US')} are allowed.`,
    );
  }
  if (text.trim() === '') throw new BulletinError('BAD_INPUT', 'The filter is empty: write a condition such as attributes.platform = "mail".');
  checkParenthesesDepth(text);
  let raw: RawNode;
  try {
    raw = filterParser().parse(text) as RawNode;
  } catch (error) {
    if (error instanceof filterParser().SyntaxError) {
      const syntax = error as peggy.parser.SyntaxError;
      throw filterError(syntax.location.start.column, syntax.expected ? describeExpected(syntax.expected, syntax.found) : syntax.message);
    }
    throw error;
  }
  return check(raw, 0);
}

/** Parentheses deeper than the limit are refused before parsing, so no input can exhaust the stack. */
function checkParenthesesDepth(text: string): void {
  let depth = 0;
  let quote: string | null = null;
  for (let index = 0; index < text.length; index++) {
    const char = text[index]!;
    if (quote !== null) {
      if (char === '\\') index++;
      else if (char === quote) quote = null;
    } else if (char === '"' || char === "'") quote = char;
    else if (char === '(') {
      depth++;
      const lineStart = text.lastIndexOf('\n', index - 1);
      if (depth > MAX_FILTER_NESTING) throw filterError(index - lineStart, `parentheses and "not" nest at most ${MAX_FILTER_NESTING} deep`);
    } else if (char === ')') depth = Math.max(0, depth - 1);
  }
}

function describeExpected(expected: peggy.parser.Expectation[], found: string | null): string {
  const names = [
    ...new Set(
      expected.map((item) => {
        switch (item.type) {
          case 'literal':
            return `"${item.text}"`;
          case 'other':
            return item.description;
          case 'end':
            return 'the end of the filter';
          case 'any':
            return 'any character';
          default:
            return 'a character';
        }
      }),
    ),
  ].filter((name) => name !== 'space');
  const list = names.length <= 1 ? (names[0] ?? 'something else') : `${names.slice(0, -1).join(', ')} or ${names[names.length - 1]}`;
  const saw = found === null ? 'the end of the filter' : JSON.stringify(found);
  return `expected ${list}, but found ${saw}`;
}

type RawValue =
  | { type: 'string'; value: string; column: number }
  | { type: 'number'; value: string; column: number }
  | { type: 'date'; date: string; time: string | null; offset: string | null; column: number };

type RawNode =
  | { kind: 'and' | 'or'; items: RawNode[]; column: number }
  | { kind: 'not'; operand: RawNode; column: number }
  | { kind: 'compare'; field: FilterField; op: CompareOperator; value: RawValue; column: number }
  | { kind: 'in'; field: FilterField; negated: boolean; values: RawValue[]; column: number }
  | { kind: 'contains' | 'startsWith' | 'endsWith'; field: FilterField; value: RawValue; column: number }
  | { kind: 'exists'; field: FilterField; column: number };

function check(node: RawNode, depth: number): FilterNode {
  if (depth > MAX_FILTER_NESTING) throw filterError(node.column, `parentheses and "not" nest at most ${MAX_FILTER_NESTING} deep`);
  switch (node.kind) {
    case 'and':
    case 'or':
      return { kind: node.kind, items: node.items.map((item) => check(item, depth + 1)), column: node.column };
    case 'not':
      return { kind: 'not', operand: check(node.operand, depth + 1), column: node.column };
    case 'exists':
      return { kind: 'exists', field: checkField(node.field), column: node.column };
    case 'compare': {
      const field = checkField(node.field);
      const value = checkValue(node.value);
      checkComparison(field, node.op, value);
      return { kind: 'compare', field, op: node.op, value, column: node.column };
    }
    case 'in': {
      const field = checkField(node.field);
      const values = node.values.map(checkValue);
      for (const value of values) checkComparison(field, '=', value, 'in');
      const mixed = values.find((value) => value.type !== values[0]!.type);
      if (mixed) throw filterError(mixed.column, 'the values of one "in" are all quoted strings or all numbers');
      if (values[0]!.type === 'date') throw filterError(values[0]!.column, '"in" takes quoted strings or numbers, not dates');
      return { kind: 'in', field, negated: node.negated, values, column: node.column };
    }
    default: {
      const field = checkField(node.field);
      const value = checkValue(node.value);
      const operator = { contains: 'contains', startsWith: 'starts with', endsWith: 'ends with' }[node.kind];
      if (field.kind === 'subscribed') throw filterError(field.column, `subscribed is a date: compare it with <, <=, > or >=, not "${operator}"`);
      if (value.type !== 'string') throw filterError(value.column, `"${operator}" takes a quoted string`);
      return { kind: node.kind, field, value, column: node.column };
    }
  }
}

function checkField(field: FilterField): FilterField {
  if (field.kind === 'attribute' && !ATTRIBUTE_NAME.test(field.name)) {
    throw filterError(field.column, `"${field.name.slice(0, 80)}" is not an attribute name (letters, digits and _, at most 64)`);
  }
  return field;
}

function checkValue(value: RawValue): FilterValue {
  if (value.type !== 'date') return value;
  const [year, month, day] = value.date.split('-').map(Number) as [number, number, number];
  const calendar = new Date(Date.UTC(year, month - 1, day));
  if (calendar.getUTCFullYear() !== year || calendar.getUTCMonth() !== month - 1 || calendar.getUTCDate() !== day) {
    throw filterError(value.column, `${value.date} is not a date`);
  }
  if (value.time === null || value.time === '') {
    if (value.offset) throw filterError(value.column, `a date with an offset needs a time too (like ${value.date}T09:00${value.offset})`);
    return { type: 'date', value: value.date, withTime: false, column: value.column };
  }
  if (!value.offset) {
    throw filterError(value.column, `a date and time needs an offset, such as Z or +10:30 (${value.date}${value.time}+00:00), so that it means one moment`);
  }
  const instant = new Date(`${value.date}${value.time.toUpperCase()}${value.offset.toUpperCase()}`);
  if (Number.isNaN(instant.getTime())) throw filterError(value.column, `${value.date}${value.time}${value.offset} is not a date and time`);
  return { type: 'date', value: instant.toISOString(), withTime: true, column: value.column };
}

function checkComparison(field: FilterField, op: CompareOperator, value: FilterValue, operator: string = op): void {
  const ordering = op !== '=' && op !== '!=';
  if (field.kind === 'subscribed') {
    if (!ordering) throw filterError(field.column, `subscribed is a date: compare it with <, <=, > or >=, not "${operator}"`);
    if (value.type !== 'date') throw filterError(value.column, 'subscribed compares with a date, such as 2026-01-31 or 2026-01-31T09:00+10:30');
    return;
  }
  if (field.kind === 'email' || field.kind === 'name') {
    if (ordering)
      throw filterError(field.column, `${field.kind} is text: "${op}" compares numbers and dates; use =, !=, in, contains, starts with or ends with`);
    if (value.type !== 'string') throw filterError(value.column, `${field.kind} compares with a quoted string`);
    return;
  }
  if (ordering && value.type === 'string') throw filterError(value.column, `"${op}" compares numbers and dates, not quoted strings`);
  if (value.type === 'date' && value.withTime) {
    throw filterError(value.column, 'attributes compare with a date (YYYY-MM-DD), not a date and time');
  }
}

/** Every attribute name a filter mentions, with the column of its first mention. */
export function filterAttributes(node: FilterNode): Map<string, number> {
  const found = new Map<string, number>();
  const visit = (current: FilterNode): void => {
    if ('items' in current) current.items.forEach(visit);
    else if ('operand' in current) visit(current.operand);
    else if (current.field.kind === 'attribute' && !found.has(current.field.name)) found.set(current.field.name, current.field.column);
  };
  visit(node);
  return found;
}
