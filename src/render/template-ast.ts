// The Handlebars syntax tree as bulletin reads it: typed node shapes and a position formatter.
// Handlebars' own typings describe nodes loosely; these unions let the checks below be exhaustive.

export interface Position {
  readonly line: number;
  /** 0-based, as Handlebars counts. */
  readonly column: number;
}

export interface SourceLocation {
  /** The file name given at parse time. */
  readonly source?: string;
  readonly start: Position;
  readonly end: Position;
}

interface Node {
  readonly loc?: SourceLocation;
}

export interface Program extends Node {
  readonly type: 'Program';
  body: Statement[];
  readonly blockParams?: string[];
  readonly chained?: boolean;
}

export interface PathExpression extends Node {
  readonly type: 'PathExpression';
  readonly data: boolean;
  readonly depth: number;
  readonly parts: string[];
  readonly original: string;
}

export interface SubExpression extends Node {
  readonly type: 'SubExpression';
  readonly path: PathExpression | Literal;
  readonly params: Expression[];
  readonly hash?: Hash;
}

export interface Literal extends Node {
  readonly type: 'StringLiteral' | 'NumberLiteral' | 'BooleanLiteral' | 'UndefinedLiteral' | 'NullLiteral';
  readonly value?: string | number | boolean;
  readonly original?: string | number | boolean;
}

export type Expression = PathExpression | SubExpression | Literal;

export interface Hash extends Node {
  readonly type: 'Hash';
  readonly pairs: { readonly key: string; readonly value: Expression }[];
}

export interface MustacheStatement extends Node {
  readonly type: 'MustacheStatement' | 'Decorator';
  readonly path: PathExpression | Literal;
  readonly params: Expression[];
  readonly hash?: Hash;
  readonly escaped: boolean;
}

export interface BlockStatement extends Node {
  readonly type: 'BlockStatement' | 'DecoratorBlock';
  readonly path: PathExpression | Literal;
  readonly params: Expression[];
  readonly hash?: Hash;
  readonly program?: Program;
  readonly inverse?: Program;
}

export interface PartialStatement extends Node {
  readonly type: 'PartialStatement' | 'PartialBlockStatement';
  readonly name: PathExpression | SubExpression | Literal;
  readonly params: Expression[];
  readonly hash?: Hash;
}

export interface ContentStatement extends Node {
  readonly type: 'ContentStatement';
  readonly value: string;
  readonly original: string;
}

export interface CommentStatement extends Node {
  readonly type: 'CommentStatement';
  readonly value: string;
}

export type Statement = MustacheStatement | BlockStatement | PartialStatement | ContentStatement | CommentStatement;

/** `file:line:column` (1-based column) of a node, for error messages. */
export function describeLocation(loc: SourceLocation | undefined, fallbackFile: string): string {
  if (loc === undefined) return fallbackFile;
  return `${loc.source ?? fallbackFile}:${loc.start.line}:${loc.start.column + 1}`;
}

/** The name of a partial statement when it is written literally (`{{> footer}}`, `{{> "footer"}}`). */
export function staticPartialName(statement: PartialStatement): string | null {
  const name = statement.name;
  if (name.type === 'PathExpression' && !name.data && name.depth === 0) return name.original;
  if (name.type === 'StringLiteral' || name.type === 'NumberLiteral') return String(name.value);
  return null;
}
