// ESLint (flat config) with typescript-eslint: the recommended rules, and the layering of
// DEVELOPERS.md as import rules, so an upward import fails `npm run lint` (and CI):
//   cli/web → app → send/archive/bounce → render/store → domain
// pg (and PGlite) only in src/store/, handlebars only in src/render/.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** An import of one of these top-level folders of src/, from anywhere below src/. */
const layers = (...names) => `^(\\.\\./)+(${names.join('|')})/`;
const database = { group: ['pg', 'pg-*', '@electric-sql/*'], message: 'Only src/store/ talks to the database (DEVELOPERS.md).' };
const handlebars = { group: ['handlebars', 'handlebars/*'], message: 'Only src/render/ uses handlebars (DEVELOPERS.md).' };

/** `files` may import neither the `forbidden` layers nor the libraries of other layers. */
function layer(files, forbidden, libraries) {
  return {
    files,
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            ...(forbidden.length > 0
              ? [{ regex: layers(...forbidden), message: `Imports point down: ${files[0]} may not import ${forbidden.join(', ')} (DEVELOPERS.md, Layout).` }]
              : []),
            ...libraries,
          ],
        },
      ],
    },
  };
}

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', '.bulletin/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        Buffer: 'readonly',
        URL: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        setImmediate: 'readonly',
        performance: 'readonly',
        AbortController: 'readonly',
        AbortSignal: 'readonly',
        TextEncoder: 'readonly',
        TextDecoder: 'readonly',
        structuredClone: 'readonly',
        fetch: 'readonly',
      },
    },
    rules: {
      // Control characters in patterns are the point here: input checks refuse them (addresses, headers, CSV).
      'no-control-regex': 'off',
      // Tests match aligned CLI output column by column, where two spaces read better than {2}.
      'no-regex-spaces': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
  layer(['src/domain/**'], ['app', 'cli', 'web', 'send', 'archive', 'bounce', 'render', 'store'], [database, handlebars]),
  layer(['src/store/**'], ['app', 'cli', 'web', 'send', 'archive', 'bounce', 'render'], [handlebars]),
  layer(['src/render/**'], ['app', 'cli', 'web', 'send', 'archive', 'bounce', 'store'], [database]),
  layer(['src/send/**', 'src/archive/**', 'src/bounce/**'], ['app', 'cli', 'web'], [database, handlebars]),
  layer(['src/app/**'], ['cli', 'web'], [database, handlebars]),
  layer(['src/web/**'], ['cli'], [database, handlebars]),
  layer(['src/cli/**'], [], [database, handlebars]),
);
