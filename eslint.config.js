// One type-aware flat config for the whole repository.
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import tseslint from 'typescript-eslint';

/** A no-restricted-imports pattern refusing relative imports that climb out into one of `folders`. */
function importsFrom(folders, from) {
  return {
    regex: `^(\\.\\./)+(${folders.join('|')})/`,
    message: `${from} must not import from ${folders.map((f) => `${f}/`).join(', ')}: the folder READMEs say what may import what.`,
  };
}

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'tools/', 'charts/', '.dev/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      eqeqeq: ['error', 'always'],
    },
  },
  // Who may import what (the folder READMEs say why): the operator, the API and
  // the worker import shared code from lib/ only, never from one another, and
  // lib/ imports from none of them. Tests, hack/ and bench/ may import anything.
  {
    files: ['operator/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [importsFrom(['api', 'worker', 'test'], 'operator/')] }],
    },
  },
  {
    files: ['api/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [importsFrom(['operator', 'worker', 'test'], 'api/')] }],
    },
  },
  {
    files: ['worker/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [importsFrom(['operator', 'api', 'test'], 'worker/')] }],
    },
  },
  {
    files: ['lib/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [importsFrom(['operator', 'api', 'worker', 'test'], 'lib/')] },
      ],
    },
  },
  {
    files: ['**/*.js', '**/*.cjs', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
  },
  {
    files: ['**/*.cjs'],
    languageOptions: {
      sourceType: 'commonjs',
      globals: { require: 'readonly', module: 'writable', console: 'readonly' },
    },
  },
  {
    files: ['test/**/*.ts'],
    rules: {
      // chai's `expect(x).to.be.true` style reads as an unused expression.
      '@typescript-eslint/no-unused-expressions': 'off',
      // Tests poke at arbitrary JSON response bodies.
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
    },
  },
  prettier,
);
