// Lint rules chosen to catch the bugs that hurt an ops server most: floating promises
// (a lost SSH result or an unawaited job update), misused promises in callbacks, and
// unsafe `any` flowing out of parsed input.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// Layers point one way: config <- auth <- tools <- queues <- src. A lower layer that imports
// a higher one is an error, so shared words and helpers move down instead of leaking up.
const LAYERS = ['config', 'auth', 'tools', 'queues', 'src'];
const layerRules = LAYERS.slice(0, -1).map((layer, index) => {
  const above = LAYERS.slice(index + 1);
  return {
    files: [`${layer}/**/*.ts`],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: `^(\\.\\./)+(${above.join('|')})/`,
              message: `${layer}/ is below ${above.map((l) => `${l}/`).join(', ')} (layers: ${LAYERS.join(' <- ')}); move what you need down instead.`,
            },
          ],
        },
      ],
    },
  };
});

// The presentation layer is below every front end: Slack and the dashboard render its views.
const presentRule = {
  files: ['src/present/**/*.ts'],
  rules: {
    'no-restricted-imports': [
      'error',
      { patterns: [{ regex: '^(\\.\\./)+(cli|mcp|http|slack|dashboard)/', message: 'src/present/ is below the front ends; they import it, never the other way.' }] },
    ],
  },
};

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.lab/**', 'bench/results/**', 'coverage/**', 'bin/**', 'eslint.config.js'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-control-regex': 'off',
      eqeqeq: ['error', 'smart'],
    },
  },
  {
    // The dashboard's browser script: plain JS served as is, linted without type information.
    files: ['src/dashboard/assets/**/*.js'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      ...tseslint.configs.disableTypeChecked.languageOptions,
      sourceType: 'script',
      globals: Object.fromEntries(
        ['window', 'document', 'location', 'navigator', 'EventSource', 'URLSearchParams', 'FormData', 'fetch', 'setTimeout', 'setInterval', 'clearTimeout', 'CSS', 'Element', 'URL', 'XMLHttpRequest', 'Request', 'Headers'].map((name) => [name, 'readonly']),
      ),
    },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
  ...layerRules,
  presentRule,
);
