// Builds a bulletin's two message templates (HTML and plain text) once: checks body, layouts and
// partials against the recipient context, puts the body into its layout and the partials in place,
// and splits each template into pieces the same for every recipient (rendered now) and personal ones.
import { BulletinError } from '../domain/errors.js';
import { PER_RECIPIENT_ROOTS, RECIPIENT_CONTEXT_SHAPE, type ContextShape, type SharedContext } from './context.js';
import { compileProgram, parseTemplate, type TemplateFunction } from './handlebars-env.js';
import { markdownToTemplates } from './markdown.js';
import type { BulletinSource } from './source.js';
import { checkTemplate, emptyInArchiveCopy } from './template-check.js';
import type { TemplateSet } from './template-files.js';
import { describeLocation, staticPartialName, type Expression, type Hash, type PathExpression, type Program, type Statement } from './template-ast.js';

/** A stretch of output: fixed for the whole bulletin, or rendered per recipient. */
export type TemplatePiece =
  { readonly kind: 'fixed'; readonly text: string } | { readonly kind: 'personal'; readonly index: number; readonly render: TemplateFunction };

export interface AssembledTemplate {
  /** The whole template in one function (previews, archive). */
  readonly render: TemplateFunction;
  /** The same output as `render`, as fixed text and personal pieces, in order. */
  readonly pieces: readonly TemplatePiece[];
  /** The output of every personal piece for one context, by piece index, in a single template call. */
  renderPersonal(context: object): string[];
}

/**
 * Separates the personal pieces in the output of their combined template. NUL cannot come from
 * the database (Postgres text holds no NUL); should a value carry one anyway, the pieces are
 * rendered one by one instead.
 */
const PIECE_SEPARATOR = '\u0000';

export interface AssembledTemplates {
  readonly html: AssembledTemplate;
  readonly text: AssembledTemplate;
  /** The HTML of the body alone, without the layout (for the web archive). */
  readonly htmlBodyOnly: TemplateFunction;
  /** The text of the body alone, without the layout (for the web archive's mbox). */
  readonly textBodyOnly: TemplateFunction;
  /** Places in the body that print a subscriber value, empty in the archive copy (file:line:column: …). */
  readonly emptyInArchive: readonly string[];
}

const LAYOUT_SHAPE: ContextShape = { ...RECIPIENT_CONTEXT_SHAPE, body: 'text' };
const MAX_PARTIAL_DEPTH = 8;

class PartialInliner {
  private readonly parsed = new Map<string, Program>();

  constructor(private readonly templates: TemplateSet) {}

  private partial(name: string, where: string): Program {
    let program = this.parsed.get(name);
    if (program === undefined) {
      const file = Object.hasOwn(this.templates.partials, name) ? this.templates.partials[name] : undefined;
      if (file === undefined) {
        const known = Object.keys(this.templates.partials).join(', ') || 'none';
        throw new BulletinError('BAD_INPUT', `${where}: there is no partial "${name}" (known: ${known}).`);
      }
      program = parseTemplate(file.text, file.path);
      this.parsed.set(name, program);
    }
    return program;
  }

  /** The program with every `{{> name}}` replaced by that partial's statements, recursively. */
  inline(program: Program, file: string, stack: readonly string[] = []): Program {
    return { ...program, body: this.statements(program.body, file, stack) };
  }

  private statements(body: readonly Statement[], file: string, stack: readonly string[]): Statement[] {
    const result: Statement[] = [];
    for (const statement of body) {
      const where = describeLocation(statement.loc, file);
      if (statement.type === 'PartialStatement') {
        const name = staticPartialName(statement);
        if (name === null || statement.params.length > 0 || (statement.hash?.pairs.length ?? 0) > 0) {
          throw new BulletinError('BAD_INPUT', `${where}: partials must be named literally and take no arguments, e.g. {{> footer}}.`);
        }
        if (stack.includes(name) || stack.length >= MAX_PARTIAL_DEPTH) {
          throw new BulletinError('BAD_INPUT', `${where}: partial "${name}" includes itself (${[...stack, name].join(' → ')}).`);
        }
        result.push(...this.inline(this.partial(name, where), file, [...stack, name]).body);
      } else if (statement.type === 'PartialBlockStatement') {
        throw new BulletinError('BAD_INPUT', `${where}: partial blocks ({{#> …}}) are not supported; use {{> name}}.`);
      } else if (statement.type === 'BlockStatement' || statement.type === 'DecoratorBlock') {
        result.push({
          ...statement,
          program: statement.program && this.inline(statement.program, file, stack),
          inverse: statement.inverse && this.inline(statement.inverse, file, stack),
        });
      } else {
        result.push(statement);
      }
    }
    return result;
  }
}

function isBodyMustache(statement: Statement): boolean {
  return (
    statement.type === 'MustacheStatement' &&
    statement.path.type === 'PathExpression' &&
    !statement.path.data &&
    statement.path.depth === 0 &&
    statement.path.original === 'body'
  );
}

/** Every path expression below a statement, in no particular order. */
function* pathsIn(statement: Statement | Program): Generator<PathExpression> {
  function* expression(node: Expression): Generator<PathExpression> {
    if (node.type === 'PathExpression') yield node;
    else if (node.type === 'SubExpression') yield* call(node.path, node.params, node.hash);
  }
  function* call(path: Expression, params: readonly Expression[], hash: Hash | undefined): Generator<PathExpression> {
    yield* expression(path);
    for (const param of params) yield* expression(param);
    for (const pair of hash?.pairs ?? []) yield* expression(pair.value);
  }
  switch (statement.type) {
    case 'Program':
      for (const child of statement.body) yield* pathsIn(child);
      return;
    case 'MustacheStatement':
    case 'Decorator':
      yield* call(statement.path, statement.params, statement.hash);
      return;
    case 'BlockStatement':
    case 'DecoratorBlock':
      yield* call(statement.path, statement.params, statement.hash);
      if (statement.program) yield* pathsIn(statement.program);
      if (statement.inverse) yield* pathsIn(statement.inverse);
      return;
    case 'PartialStatement':
    case 'PartialBlockStatement':
      yield* call(statement.name, statement.params, statement.hash);
      return;
    case 'ContentStatement':
    case 'CommentStatement':
      return;
  }
}

/**
 * Whether a top-level statement's output can differ between recipients. Conservative: anything
 * reaching the whole context (`this`, `../`, `@root`) counts as personal.
 */
function isPersonal(statement: Statement): boolean {
  if (statement.type === 'PartialStatement' || statement.type === 'PartialBlockStatement') return true;
  for (const path of pathsIn(statement)) {
    if (path.data) {
      if (path.parts[0] === 'root') return true;
      continue;
    }
    const head = path.parts[0];
    if (head === undefined || path.depth > 0 || PER_RECIPIENT_ROOTS.has(head)) return true;
  }
  return false;
}

/**
 * Compiled on first use: sends need only the combined personal template, so the whole-template
 * function (previews, the archive) and the one-piece fallbacks cost no memory in a send.
 */
function lazyTemplate(program: Program, escape: boolean): TemplateFunction {
  let compiled: TemplateFunction | null = null;
  return (context) => (compiled ??= compileProgram(program, { escape }))(context);
}

function assemble(root: Program, escape: boolean, shared: SharedContext): AssembledTemplate {
  const pieces: TemplatePiece[] = [];
  const personalRuns: Statement[][] = [];
  let run: Statement[] = [];
  let runIsPersonal = false;
  const flush = (): void => {
    if (run.length === 0) return;
    const program: Program = { ...root, body: run };
    if (runIsPersonal) {
      pieces.push({ kind: 'personal', index: personalRuns.length, render: lazyTemplate(program, escape) });
      personalRuns.push(run);
    } else {
      // Rendered with the shared context only: a misjudged personal variable shows as empty, never
      // as somebody else's value.
      const text = compileProgram(program, { escape })(shared);
      const previous = pieces[pieces.length - 1];
      if (previous?.kind === 'fixed') pieces[pieces.length - 1] = { kind: 'fixed', text: previous.text + text };
      else if (text !== '') pieces.push({ kind: 'fixed', text });
    }
    run = [];
  };
  for (const statement of root.body) {
    const personal = isPersonal(statement);
    if (personal !== runIsPersonal) flush();
    runIsPersonal = personal;
    run.push(statement);
  }
  flush();

  // One Handlebars call per message instead of one per piece: the runs, joined by a separator.
  const separator: Statement = { type: 'ContentStatement', value: PIECE_SEPARATOR, original: PIECE_SEPARATOR };
  const combined = compileProgram({ ...root, body: personalRuns.flatMap((body, i) => (i === 0 ? body : [separator, ...body])) }, { escape });
  const personalPieces = pieces.filter((piece) => piece.kind === 'personal');
  const renderPersonal = (context: object): string[] => {
    if (personalPieces.length === 0) return [];
    const outputs = combined(context).split(PIECE_SEPARATOR);
    return outputs.length === personalPieces.length ? outputs : personalPieces.map((piece) => piece.render(context));
  };
  return { render: lazyTemplate(root, escape), pieces, renderPersonal };
}

/** Puts the body's statements where the layout says `{{{body}}}`; nowhere else may name `body`. */
function spliceBody(layout: Program, body: Program, layoutFile: string): Program {
  const spliced: Statement[] = [];
  let found = false;
  for (const statement of layout.body) {
    if (isBodyMustache(statement)) {
      spliced.push(...body.body);
      found = true;
    } else {
      spliced.push(statement);
    }
  }
  if (!found) throw new BulletinError('BAD_INPUT', `${layoutFile}: the layout has no {{{body}}} at its top level.`);
  for (const statement of layout.body) {
    if (isBodyMustache(statement)) continue;
    for (const path of pathsIn(statement)) {
      if (!path.data && path.depth === 0 && path.parts[0] === 'body') {
        throw new BulletinError(
          'BAD_INPUT',
          `${describeLocation(path.loc, layoutFile)}: {{{body}}} must stand at the top level of the layout, outside any block.`,
        );
      }
    }
  }
  return { ...layout, body: spliced };
}

/** Typical widths of values that differ per recipient, for wrapping the text part. */
const PERSONAL_WIDTHS: Readonly<Record<string, number>> = { 'subscriber.email': 22, 'subscriber.name': 12 };

/**
 * How wide a value tag's output is expected to be in the text part: exact for values the same for
 * every recipient, typical for personal ones. Only for wrapping; never affects what is rendered.
 */
function valueWidths(shared: SharedContext): (tagText: string) => number {
  const pathWidth = (path: string): number => {
    if (Object.hasOwn(PERSONAL_WIDTHS, path)) return PERSONAL_WIDTHS[path]!;
    if (path === 'unsubscribeUrl') return shared.list.baseUrl.length + 44;
    let value: unknown = shared;
    for (const part of path.split('.')) {
      value = value !== null && typeof value === 'object' && Object.hasOwn(value, part) ? (value as Record<string, unknown>)[part] : undefined;
    }
    return typeof value === 'string' ? value.length : 8;
  };
  return (tagText) => {
    const inner = tagText.replace(/^\{\{\{?~?\s*/, '').replace(/\s*~?\}?\}\}$/, '');
    const words = inner.split(/\s+/);
    if (words[0] === 'default' && words[1] !== undefined) {
      const fallback = /"([^"]*)"|'([^']*)'/.exec(inner);
      return Math.max(pathWidth(words[1]), (fallback?.[1] ?? fallback?.[2] ?? '').length);
    }
    return words.length === 1 ? pathWidth(inner) : 8;
  };
}

/**
 * Checks and assembles the HTML and text templates of a bulletin. Throws BulletinError('BAD_INPUT')
 * for any syntax error or unknown variable, naming file, line and column.
 */
export function assembleTemplates(source: BulletinSource, templates: TemplateSet, shared: SharedContext): AssembledTemplates {
  const inliner = new PartialInliner(templates);
  const file = source.fileName;
  // Leading newlines make Handlebars count lines as the file does.
  const bodyAsWritten = inliner.inline(parseTemplate('\n'.repeat(source.bodyLine - 1) + source.body, file), file);
  checkTemplate(bodyAsWritten, RECIPIENT_CONTEXT_SHAPE, file);

  const layouts = {
    html: inliner.inline(parseTemplate(templates.htmlLayout.text, templates.htmlLayout.path), templates.htmlLayout.path),
    text: inliner.inline(parseTemplate(templates.textLayout.text, templates.textLayout.path), templates.textLayout.path),
  };
  checkTemplate(layouts.html, LAYOUT_SHAPE, templates.htmlLayout.path);
  checkTemplate(layouts.text, LAYOUT_SHAPE, templates.textLayout.path);

  const body = markdownToTemplates(source.body, file, source.bodyLine, valueWidths(shared));
  const htmlBody = inliner.inline(parseTemplate(body.html, `${file} (as HTML)`), file);
  const textBody = inliner.inline(parseTemplate(body.text, `${file} (as text)`), file);

  return {
    html: assemble(spliceBody(layouts.html, htmlBody, templates.htmlLayout.path), true, shared),
    text: assemble(spliceBody(layouts.text, textBody, templates.textLayout.path), false, shared),
    htmlBodyOnly: lazyTemplate(htmlBody, true),
    textBodyOnly: lazyTemplate(textBody, false),
    emptyInArchive: emptyInArchiveCopy(bodyAsWritten, file),
  };
}

/**
 * The body alone, as HTML and as text, for no recipient (the web archive): no layout, so two
 * templates to compile instead of a message's dozen. Variables are checked as for a message.
 */
export function renderBodyAlone(source: BulletinSource, templates: TemplateSet, context: SharedContext): { html: string; text: string } {
  const inliner = new PartialInliner(templates);
  const file = source.fileName;
  checkTemplate(inliner.inline(parseTemplate('\n'.repeat(source.bodyLine - 1) + source.body, file), file), RECIPIENT_CONTEXT_SHAPE, file);
  const body = markdownToTemplates(source.body, file, source.bodyLine, valueWidths(context));
  return {
    html: compileProgram(inliner.inline(parseTemplate(body.html, `${file} (as HTML)`), file), { escape: true })(context),
    text: compileProgram(inliner.inline(parseTemplate(body.text, `${file} (as text)`), file), { escape: false })(context),
  };
}
