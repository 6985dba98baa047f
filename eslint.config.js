// Lint: the recommended JavaScript and TypeScript rules, without type information (fast enough for every test run).
import js from '@eslint/js'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['node_modules/', 'results/', 'test-artifacts/', 'native/build/', 'dist/', '.dist-*/'] },
  // Plain JavaScript that runs in Node (the addon's install-time build script).
  { files: ['**/*.mjs'], languageOptions: { globals: { process: 'readonly', console: 'readonly' } } },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }]
    }
  },
  {
    // The journey builds objects per traced request: a literal with computed keys turns generic for good
    // after a quiet moment (src/journey/span-attributes.ts says why), so it fills them by assignment.
    files: ['src/journey/**/*.ts'],
    rules: {
      'no-restricted-syntax': ['error', {
        selector: 'ObjectExpression > Property[computed=true]',
        message: 'No computed keys in object literals here: fill the object by assignment (see src/journey/span-attributes.ts).'
      }]
    }
  }
)
