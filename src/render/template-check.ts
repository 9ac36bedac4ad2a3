// Static check of a parsed template against the recipient context: every variable must be one some
// recipient can have (`{{subscriber.nmae}}` is an error, not an empty string), every helper known.
// Runs before any message exists; reports every problem with file:line:column.
import { BulletinError } from '../domain/errors.js';
import type { ContextShape } from './context.js';
import { KNOWN_HELPERS } from './handlebars-env.js';
import {
  describeLocation,
  type Expression,
  type Hash,
  type Literal,
  type PathExpression,
  type Program,
  type SourceLocation,
  type Statement,
} from './template-ast.js';

/** How each helper may be called: as a block or not, and with how many arguments. */
const HELPER_RULES: Readonly<Record<string, { readonly block: boolean; readonly min: number; readonly max: number; readonly example: string }>> = {
  if: { block: true, min: 1, max: 1, example: '{{#if subscriber.name}}…{{/if}}' },
  unless: { block: true, min: 1, max: 1, example: '{{#unless subscriber.name}}…{{/unless}}' },
  each: { block: true, min: 1, max: 1, example: '{{#each subscriber.attributes.tags}}…{{/each}}' },
  with: { block: true, min: 1, max: 1, example: '{{#with list}}{{name}}{{/with}}' },
  lookup: { block: false, min: 2, max: 2, example: '{{lookup subscriber.attributes "city"}}' },
  log: { block: false, min: 0, max: Infinity, example: '{{log list.name}}' },
  default: { block: false, min: 2, max: 2, example: '{{default subscriber.name "customer"}}' },
  urlencode: { block: false, min: 1, max: 1, example: '{{urlencode subscriber.email}}' },
  eq: { block: false, min: 2, max: 2, example: '{{#if (eq subscriber.attributes.plan "pro")}}' },
};

/** Names every object inherits: a template may never reach them, directly or through `lookup`. */
const PROTOTYPE_NAMES: ReadonlySet<string> = new Set([...Object.getOwnPropertyNames(Object.prototype), 'prototype']);

type CallKind = 'mustache' | 'block' | 'subexpression';

function arguments_(count: number): string {
  return count === 1 ? 'one argument' : count === 2 ? 'two arguments' : `${count} arguments`;
}

/** Data variables Handlebars sets inside `{{#each}}`; `@root` is handled apart. */
const LOOP_DATA = new Set(['index', 'key', 'first', 'last']);
/** Helpers that run their block in the same context, so `../` does not count them. */
const SAME_CONTEXT_HELPERS = new Set(['if', 'unless']);

interface Scope {
  readonly shape: ContextShape;
  readonly blockParams: readonly string[];
}

class TemplateChecker {
  readonly problems: string[] = [];

  constructor(
    private readonly rootShape: ContextShape,
    private readonly file: string,
  ) {}

  private report(loc: SourceLocation | undefined, sentence: string): void {
    this.problems.push(`${describeLocation(loc, this.file)}: ${sentence}`);
  }

  program(program: Program | undefined, scopes: readonly Scope[]): void {
    if (program === undefined) return;
    for (const statement of program.body) this.statement(statement, scopes);
  }

  private statement(node: Statement, scopes: readonly Scope[]): void {
    switch (node.type) {
      case 'ContentStatement':
      case 'CommentStatement':
        return;
      case 'MustacheStatement':
        this.call('mustache', node.path, node.params, node.hash, scopes, node.loc);
        return;
      case 'BlockStatement': {
        const helper = this.call('block', node.path, node.params, node.hash, scopes, node.loc);
        const innerScopes = this.blockScopes(helper, node.params, node.program, scopes);
        this.program(node.program, innerScopes);
        this.program(node.inverse, scopes);
        return;
      }
      case 'PartialStatement':
      case 'PartialBlockStatement':
        this.report(node.loc, 'partials must be named literally and take no arguments, e.g. {{> footer}}.');
        return;
      case 'Decorator':
      case 'DecoratorBlock':
        this.report(node.loc, 'decorators are not supported in bulletin templates.');
        return;
    }
  }

  /** The scopes inside a block: `with` and `each` change the context, `if`/`unless` do not. */
  private blockScopes(helper: string | null, params: Expression[], program: Program | undefined, scopes: readonly Scope[]): Scope[] {
    const blockParams = program?.blockParams ?? [];
    if (helper !== null && SAME_CONTEXT_HELPERS.has(helper)) return [...scopes];
    if (helper === 'with') {
      const first = params[0];
      const shape = first?.type === 'PathExpression' ? (this.shapeOf(first, scopes) ?? 'free') : 'free';
      return [...scopes, { shape, blockParams }];
    }
    // each, or a block over a value (Handlebars iterates arrays, enters objects): items are free-form.
    return [...scopes, { shape: 'free', blockParams }];
  }

  /** Checks a mustache or block head; returns the helper name when it calls one. */
  private call(
    kind: CallKind,
    path: PathExpression | Literal,
    params: Expression[],
    hash: Hash | undefined,
    scopes: readonly Scope[],
    loc: SourceLocation | undefined,
  ): string | null {
    for (const param of params) this.expression(param, scopes);
    for (const pair of hash?.pairs ?? []) this.expression(pair.value, scopes);
    const hasArguments = params.length > 0 || (hash?.pairs.length ?? 0) > 0;
    if (path.type !== 'PathExpression') {
      this.report(loc, `{{${String(path.original ?? path.value)}}} is a literal; write a variable or a helper call.`);
      return null;
    }
    const simpleName = !path.data && path.depth === 0 && path.parts.length === 1 && path.original === path.parts[0];
    if (simpleName && KNOWN_HELPERS.has(path.original)) {
      this.helperUse(kind, path.original, params, hash, scopes, loc);
      return path.original;
    }
    if (hasArguments) {
      this.report(loc, `{{${path.original} …}} calls an unknown helper "${path.original}" (known: ${[...KNOWN_HELPERS].join(', ')}).`);
      return null;
    }
    this.shapeOf(path, scopes);
    return null;
  }

  private expression(expression: Expression, scopes: readonly Scope[]): void {
    if (expression.type === 'PathExpression') this.shapeOf(expression, scopes);
    else if (expression.type === 'SubExpression') this.call('subexpression', expression.path, expression.params, expression.hash, scopes, expression.loc);
  }

  /** Handlebars checks these only when a message is rendered, and some not at all: check them now. */
  private helperUse(
    kind: CallKind,
    name: string,
    params: Expression[],
    hash: Hash | undefined,
    scopes: readonly Scope[],
    loc: SourceLocation | undefined,
  ): void {
    const rule = HELPER_RULES[name];
    if (rule === undefined) return;
    const written = kind === 'block' ? `{{#${name}}}` : kind === 'subexpression' ? `(${name})` : `{{${name}}}`;
    if (rule.block && kind !== 'block') {
      this.report(loc, `${written} works only as a block: write ${rule.example}.`);
      return;
    }
    if (!rule.block && kind === 'block') {
      this.report(loc, `${written} is not a block helper: write ${rule.example}.`);
      return;
    }
    const allowedHash = name === 'log' ? ['level'] : [];
    const badPair = hash?.pairs.find((pair) => !allowedHash.includes(pair.key));
    if (badPair !== undefined) {
      this.report(loc, `${written} takes no option "${badPair.key}=…": write ${rule.example}.`);
      return;
    }
    if (params.length < rule.min || params.length > rule.max) {
      const wanted = rule.min === rule.max ? `exactly ${arguments_(rule.min)}` : `at least ${arguments_(rule.min)}`;
      this.report(loc, `${written} needs ${wanted}, not ${params.length}: write ${rule.example}.`);
      return;
    }
    if (name === 'lookup') this.lookupKey(params[0]!, params[1]!, scopes, loc);
  }

  /** `lookup` only with a key written out, never one every object has, and one the value can have. */
  private lookupKey(target: Expression, key: Expression, scopes: readonly Scope[], loc: SourceLocation | undefined): void {
    if (key.type !== 'StringLiteral' && key.type !== 'NumberLiteral') {
      this.report(
        loc,
        '{{lookup}} needs its key written out in quotes, e.g. {{lookup subscriber.attributes "city"}}; a key computed from data cannot be checked.',
      );
      return;
    }
    const keyText = String(key.value);
    if (PROTOTYPE_NAMES.has(keyText)) {
      this.report(loc, `{{lookup … "${keyText}"}} reaches a property every object has, not a value of the bulletin; it is not allowed.`);
      return;
    }
    if (target.type !== 'PathExpression') return;
    const shape = this.shapeOf(target, scopes, false);
    if (shape === undefined || shape === 'free') return;
    if (shape === 'text') {
      this.report(loc, `{{lookup ${target.original} "${keyText}"}}: ${target.original} is a single value; it has no "${keyText}".`);
    } else if (!Object.hasOwn(shape, keyText)) {
      this.report(loc, unknownVariableSentence(`lookup ${target.original} "${keyText}"`, target.original, keyText, shape));
    }
  }

  /** The shape a path leads to, or undefined after reporting why it leads nowhere (if `report`). */
  private shapeOf(path: PathExpression, scopes: readonly Scope[], report = true): ContextShape | undefined {
    if (!report) {
      const before = this.problems.length;
      const shape = this.shapeOf(path, scopes);
      this.problems.length = before;
      return shape;
    }
    if (path.data) {
      const [head, ...rest] = path.parts;
      if (head === 'root') return this.resolve(rest, this.rootShape, '@root', path);
      if (head !== undefined && LOOP_DATA.has(head) && rest.length === 0) return 'text';
      this.report(path.loc, `{{${path.original}}} is not a data variable Handlebars provides here.`);
      return undefined;
    }
    if (path.depth >= scopes.length) {
      this.report(path.loc, `{{${path.original}}} climbs above the top of the template.`);
      return undefined;
    }
    const scoped = /^(?:\.|this\b)/.test(path.original);
    const head = path.parts[0];
    if (!scoped && path.depth === 0 && head !== undefined && scopes.some((scope) => scope.blockParams.includes(head))) {
      return 'free';
    }
    const scope = scopes[scopes.length - 1 - path.depth]!;
    return this.resolve(path.parts, scope.shape, '', path);
  }

  private resolve(parts: readonly string[], start: ContextShape, prefix: string, path: PathExpression): ContextShape | undefined {
    let shape = start;
    let walked = prefix;
    for (const part of parts) {
      if (PROTOTYPE_NAMES.has(part)) {
        this.report(path.loc, `{{${path.original}}} reaches "${part}", a property every object has, not a value of the bulletin; it is not allowed.`);
        return undefined;
      }
      if (shape === 'free') continue;
      if (shape === 'text') {
        this.report(path.loc, `{{${path.original}}}: ${walked} is a single value; it has no "${part}".`);
        return undefined;
      }
      const next: ContextShape | undefined = Object.hasOwn(shape, part) ? shape[part] : undefined;
      if (next === undefined) {
        this.report(path.loc, unknownVariableSentence(path.original, walked, part, shape));
        return undefined;
      }
      shape = next;
      walked = walked === '' ? part : `${walked}.${part}`;
    }
    return shape;
  }
}

function editDistance(a: string, b: string): number {
  const previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = previous[0]!;
    previous[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = previous[j]!;
      previous[j] = Math.min(above + 1, previous[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return previous[b.length]!;
}

function unknownVariableSentence(original: string, walked: string, part: string, shape: { readonly [key: string]: ContextShape }): string {
  const qualify = (key: string): string => (walked === '' || walked === '@root' ? key : `${walked}.${key}`);
  const keys = Object.keys(shape);
  const closest = keys.map((key) => ({ key, distance: editDistance(part.toLowerCase(), key.toLowerCase()) })).sort((x, y) => x.distance - y.distance)[0];
  const hint =
    closest !== undefined && closest.distance <= Math.max(2, Math.floor(part.length / 3))
      ? `did you mean ${qualify(closest.key)}?`
      : `known: ${keys.map(qualify).join(', ')}.`;
  return `{{${original}}} is not a variable any recipient has; ${hint}`;
}

/**
 * Checks a template tree against a context shape. Throws BulletinError('BAD_INPUT') listing every
 * problem, one per line, each starting with file:line:column.
 */
export function checkTemplate(program: Program, shape: ContextShape, file: string): void {
  const checker = new TemplateChecker(shape, file);
  checker.program(program, [{ shape, blockParams: [] }]);
  if (checker.problems.length > 0) throw new BulletinError('BAD_INPUT', checker.problems.join('\n'));
}

/**
 * The archive copy has no subscriber: every `subscriber.*` is empty there. This lists every place
 * that would print one as nothing ("You are receiving this at ."), with file:line:column: a
 * subscriber value printed bare, or through `lookup`/`urlencode`, outside a block that the
 * archive copy skips ({{#if subscriber.…}}, {{#each subscriber.…}}, {{#with subscriber.…}}, the
 * {{else}} of {{#unless subscriber.…}}). `{{default subscriber.name "customer"}}` prints its fallback
 * there, and is the way to write a personal value that reads well in both copies.
 */
export function emptyInArchiveCopy(program: Program, file: string): string[] {
  const found: string[] = [];
  const mentionsSubscriber = (expression: Expression | undefined, inSubscriber: boolean): boolean => {
    if (expression === undefined) return false;
    if (expression.type === 'PathExpression') return isSubscriberPath(expression, inSubscriber);
    if (expression.type === 'SubExpression') return expression.params.some((param) => mentionsSubscriber(param, inSubscriber));
    return false;
  };
  const walk = (body: Program | undefined, inSubscriber: boolean): void => {
    for (const statement of body?.body ?? []) {
      if (statement.type === 'MustacheStatement') {
        const path = statement.path;
        if (path.type !== 'PathExpression') continue;
        const helper = path.parts.length === 1 && !path.data && path.depth === 0 ? path.original : null;
        const prints =
          helper === 'lookup' || helper === 'urlencode'
            ? mentionsSubscriber(statement.params[0], inSubscriber)
            : helper !== null && KNOWN_HELPERS.has(helper)
              ? false
              : isSubscriberPath(path, inSubscriber);
        if (prints) {
          const shown = helper === null || !KNOWN_HELPERS.has(helper) ? path.original : `${helper} …`;
          found.push(
            `${describeLocation(statement.loc, file)}: {{${shown}}} prints nothing in the archive copy, which has no subscriber; ` +
              `write {{default ${path.original === shown ? shown : 'subscriber.…'} "…"}} or put it inside {{#if subscriber.…}}…{{/if}}.`,
          );
        }
      } else if (statement.type === 'BlockStatement') {
        const path = statement.path;
        const helper = path.type === 'PathExpression' && path.parts.length === 1 ? path.original : null;
        const subject = statement.params[0];
        const aboutSubscriber = mentionsSubscriber(subject, inSubscriber);
        if (helper === 'if') {
          // The archive copy takes the {{else}}: the block itself never shows there.
          if (!aboutSubscriber) walk(statement.program, inSubscriber);
          walk(statement.inverse, inSubscriber);
        } else if (helper === 'unless') {
          walk(statement.program, inSubscriber);
          if (!aboutSubscriber) walk(statement.inverse, inSubscriber);
        } else if (helper === 'each' || helper === 'with') {
          // `with subscriber` enters an object with empty fields; anything below it is empty.
          const entersSubscriber = subject?.type === 'PathExpression' && isSubscriberRoot(subject, inSubscriber);
          if (entersSubscriber && helper === 'with') walk(statement.program, true);
          else if (!aboutSubscriber) walk(statement.program, false);
          walk(statement.inverse, inSubscriber);
        } else {
          walk(statement.program, inSubscriber);
          walk(statement.inverse, inSubscriber);
        }
      }
    }
  };
  walk(program, false);
  return found;
}

function isSubscriberRoot(path: PathExpression, inSubscriber: boolean): boolean {
  const parts = path.data && path.parts[0] === 'root' ? path.parts.slice(1) : path.data ? null : path.parts;
  if (parts === null) return false;
  return (parts.length === 1 && parts[0] === 'subscriber') || (inSubscriber && parts.length === 0);
}

function isSubscriberPath(path: PathExpression, inSubscriber: boolean): boolean {
  if (path.data) return path.parts[0] === 'root' && path.parts[1] === 'subscriber' && path.parts.length > 2;
  if (inSubscriber && path.depth === 0) return path.parts.length > 0;
  return path.depth === 0 && path.parts[0] === 'subscriber' && path.parts.length > 1;
}
