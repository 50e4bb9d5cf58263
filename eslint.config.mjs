import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['build/**', 'node_modules/**', '.stack/**', 'bin/**', 'charts/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'no-console': 'off',
    },
  },
  {
    // Dependency internals are reached only through src/seams/, where a seam test pins the
    // version and checks the behaviour relied on (imports are checked by dependency-cruiser).
    files: ['src/**/*.ts'],
    ignores: ['src/seams/**'],
    rules: {
      'no-restricted-syntax': [
        'error',
        {
          selector:
            'MemberExpression[property.name=/^(_sendPacket|_trackIncomingQoS2Publish|_incomingQoS2Ids|reschedulePing|handleMessage|reconnectPeriod|queueOptionsSymbol|registerMetric)$/]',
          message: 'dependency internals are reached only through src/seams/',
        },
      ],
    },
  },
);
