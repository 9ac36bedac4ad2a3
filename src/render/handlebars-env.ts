// The one Handlebars environment of bulletin: its helpers, parsing with file:line:column errors, and
// compiling an already-parsed tree, so whitespace control runs once, when each file is parsed.
// This directory is the only importer of handlebars; this file is the only one that calls it.
import Handlebars from 'handlebars';
import { BulletinError } from '../domain/errors.js';
import { checkTemplateNesting } from './limits.js';
import type { Program } from './template-ast.js';

/** Helpers bulletin templates may call, beside Handlebars' own (if, unless, each, with, lookup, log). */
const BULLETIN_HELPERS: Readonly<Record<string, (...args: unknown[]) => unknown>> = {
  /** `{{default subscriber.attributes.city "your city"}}`: the value, or the fallback when it is empty. */
  default: (value, fallback) => (value === undefined || value === null || value === '' ? fallback : value),
  /** `{{urlencode subscriber.email}}`: for values placed inside a URL. */
  urlencode: (value) => encodeURIComponent(value === undefined || value === null ? '' : String(value)),
  /** `{{#if (eq subscriber.attributes.plan "pro")}}`: strict equality. */
  eq: (left, right) => left === right,
};

const BUILT_IN_HELPERS = ['if', 'unless', 'each', 'with', 'lookup', 'log'] as const;

/** Every helper name a template may use; anything else in helper position is an error. */
export const KNOWN_HELPERS: ReadonlySet<string> = new Set([...BUILT_IN_HELPERS, ...Object.keys(BULLETIN_HELPERS)]);

const environment = Handlebars.create();
for (const [name, helper] of Object.entries(BULLETIN_HELPERS)) {
  // Handlebars passes its options object last; our helpers ignore it.
  environment.registerHelper(name, (...args: unknown[]) => helper(...args.slice(0, -1)));
}

// Handlebars' compiler stages are exported by the library but not described by its typings.
interface CompilerStages {
  Compiler: new () => { compile(program: unknown, options: object): unknown };
  JavaScriptCompiler: new () => {
    compile(environment: unknown, options: object, context: undefined, asObject: true): unknown;
  };
  template(spec: unknown): (context: unknown) => string;
  Parser: { lexer: { yylloc?: { first_line: number; first_column: number } } };
}
const stages = environment as unknown as CompilerStages;

const KNOWN_HELPER_FLAGS = Object.fromEntries(Object.keys(BULLETIN_HELPERS).map((name) => [name, true]));

export type TemplateFunction = (context: object) => string;

/**
 * Compiles a parsed tree into a function. `escape: false` is for the plain-text part, where
 * `{{value}}` must not turn `&` into `&amp;`.
 */
export function compileProgram(program: Program, options: { escape: boolean }): TemplateFunction {
  const compileOptions = {
    data: true,
    knownHelpers: { ...KNOWN_HELPER_FLAGS },
    knownHelpersOnly: true,
    noEscape: !options.escape,
  };
  // The compiler annotates the tree it walks; give it its own copy.
  const compiled = new stages.Compiler().compile(structuredClone(program), compileOptions);
  const spec = new stages.JavaScriptCompiler().compile(compiled, compileOptions, undefined, true);
  return stages.template(spec);
}

const TOKEN_NAMES: Readonly<Record<string, string>> = {
  EOF: 'the end of the file (a {{…}} tag or a block is not closed)',
  INVALID: 'a character that cannot appear inside {{…}}',
  CLOSE: '"}}"',
  CLOSE_UNESCAPED: '"}}}"',
  OPEN: '"{{"',
  OPEN_ENDBLOCK: 'a closing {{/…}} tag',
  OPEN_INVERSE: 'an {{else}} or {{^…}} tag',
  OPEN_SEXPR: '"("',
  CLOSE_SEXPR: '")"',
};

/** 1-based line and column of a character offset. */
function positionOf(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  return { line: before.split('\n').length, column: offset - before.lastIndexOf('\n') };
}

function describeParseError(error: Error, file: string, text: string): string {
  // A Handlebars Exception carries the node position ("if doesn't match each - 2:3").
  const withPosition = error as Error & { lineNumber?: number; column?: number };
  if (typeof withPosition.lineNumber === 'number') {
    const message = error.message.replace(/ - \d+:\d+$/, '');
    return `${file}:${withPosition.lineNumber}:${(withPosition.column ?? 0) + 1}: template syntax error: ${message}.`;
  }
  // A parser error: Handlebars' message shows only a 20-character excerpt; the lexer knows where it stopped.
  const where = stages.Parser.lexer.yylloc;
  const line = where?.first_line ?? Number(/on line (\d+)/.exec(error.message)?.[1] ?? 1);
  const column = (where?.first_column ?? 0) + 1;
  const got = /got '([^']+)'/.exec(error.message)?.[1];
  const lastOpen = text.lastIndexOf('{{');
  if (got === 'EOF' && lastOpen >= 0 && !text.includes('}}', lastOpen)) {
    // The file ended inside a tag: point at the tag, not at the end of the file.
    const open = positionOf(text, lastOpen);
    return `${file}:${open.line}:${open.column}: template syntax error: this {{ is never closed by }}.`;
  }
  const detail = got === undefined ? error.message.split('\n')[0] : `unexpected ${TOKEN_NAMES[got] ?? got.toLowerCase()}`;
  return `${file}:${line}:${column}: template syntax error: ${detail}.`;
}

/** Parses a template (with Handlebars' standalone-line and `~` whitespace rules applied once). */
export function parseTemplate(text: string, file: string): Program {
  checkTemplateNesting(text, file);
  try {
    return environment.parse(text, { srcName: file }) as unknown as Program;
  } catch (error) {
    if (!(error instanceof Error)) throw error;
    throw new BulletinError('BAD_INPUT', describeParseError(error, file, text), { cause: error });
  }
}
