import { defineConfig } from 'vitest/config';
import { fileURLToPath } from 'node:url';

const pkg = (p: string) => fileURLToPath(new URL(p, import.meta.url));

// Tests run against the TypeScript sources of the workspace packages, so a test
// never sees a stale build. Multi-process tests spawn the built edge node.
export default defineConfig({
  resolve: {
    alias: {
      '@fleetmq/protocol': pkg('./libs/protocol/src/index.ts'),
      '@fleetmq/broker': pkg('./libs/broker/src/index.ts'),
      '@fleetmq/adapter-memory': pkg('./libs/adapter-memory/src/index.ts'),
      '@fleetmq/adapter-nats': pkg('./libs/adapter-nats/src/index.ts'),
      // a subpath before its package: an alias matches the start of a specifier
      '@fleetmq/adapter-dynamo/table-definitions': pkg('./libs/adapter-dynamo/src/table-definitions.ts'),
      '@fleetmq/adapter-dynamo': pkg('./libs/adapter-dynamo/src/index.ts'),
      '@fleetmq/adapter-redis': pkg('./libs/adapter-redis/src/index.ts'),
      '@fleetmq/auth': pkg('./libs/auth/src/index.ts'),
      '@fleetmq/transport': pkg('./libs/transport/src/index.ts'),
      '@fleetmq/testkit': pkg('./libs/testkit/src/index.ts'),
      '@fleetmq/bridge/topic-rules': pkg('./libs/bridge/src/topic-rules.ts'),
      '@fleetmq/bridge/bridge-metrics': pkg('./libs/bridge/src/bridge-metrics.ts'),
      '@fleetmq/bridge': pkg('./libs/bridge/src/index.ts'),
      '@fleetmq/edge': pkg('./services/edge/src/index.ts'),
    },
  },
  test: {
    include: ['libs/*/test/**/*.test.ts', 'services/*/test/**/*.test.ts', 'infra/test/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 20_000,
    hookTimeout: 30_000,
    pool: 'forks',
  },
});
