import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const adapterBoundary = {
  patterns: [
    {
      group: ['@lazy-content/core/*', '**/core/src/**', '**/core/dist/**', '../../core/**'],
      message: 'Adapters import only the public entry point "@lazy-content/core": the core decides, adapters translate.',
    },
  ],
};

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', 'coverage/**', '.lazy-content/**', 'bench/.out/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setImmediate: 'readonly', URL: 'readonly', AbortController: 'readonly', fetch: 'readonly' },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'error',
    },
  },
  {
    files: ['packages/express/**', 'packages/koa/**', 'packages/nestjs/**'],
    rules: { 'no-restricted-imports': ['error', adapterBoundary] },
  },
);
