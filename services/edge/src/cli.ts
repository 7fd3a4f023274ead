#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ConfigError } from '@fleetmq/protocol';
import { createDynamoTables } from './backends.js';
import { loadConfig } from './config.js';
import { createLogger } from './logger.js';
import { startNode } from './main.js';

const USAGE = `Usage: fleetmq <command> [options]

Commands:
  start          start a broker node
  check-config   validate the configuration and print the effective one
  dynamo create-tables
                 create the DynamoDB tables named by the dynamodb config (idempotent)

Options:
  -c, --config FILE   YAML config file (default: $FLEETMQ_CONFIG, else built-in defaults)
  -h, --help          show this help
  -v, --version       print the version
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'v' },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (values.version) {
    process.stdout.write(`fleetmq ${version()}\n`);
    return 0;
  }
  const command = positionals[0] ?? 'start';
  switch (command) {
    case 'check-config': {
      const config = loadConfig({ file: values.config });
      process.stdout.write(`${JSON.stringify(config, null, 2)}\n`);
      return 0;
    }
    case 'dynamo': {
      if (positionals[1] !== 'create-tables') {
        process.stderr.write(`fleetmq: unknown dynamo command ${JSON.stringify(positionals[1] ?? '')}; try: fleetmq dynamo create-tables\n`);
        return 2;
      }
      const config = loadConfig({ file: values.config });
      if (config.dynamodb === undefined) {
        throw new ConfigError('dynamodb', 'is not configured', 'set dynamodb.region (and dynamodb.endpoint for DynamoDB Local) in the config file or FLEETMQ_DYNAMODB__REGION');
      }
      for (const result of await createDynamoTables(config.dynamodb)) {
        process.stdout.write(`${result.tableName}: table ${result.table}, ttl ${result.ttl}\n`);
      }
      return 0;
    }
    case 'start': {
      const config = loadConfig({ file: values.config });
      const log = createLogger(config.log.level);
      const node = await startNode(config, log);
      await new Promise<void>((resolve) => {
        const stop = (signal: string): void => {
          log.info({ signal }, 'signal_received');
          void node.stop().then(resolve);
        };
        process.once('SIGINT', () => stop('SIGINT'));
        process.once('SIGTERM', () => stop('SIGTERM'));
      });
      log.flush();
      return 0;
    }
    default:
      process.stderr.write(`fleetmq: unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof ConfigError) {
      process.stderr.write(`fleetmq: ${err.message}\n`);
      process.exitCode = 2;
    } else if (err instanceof Error && (err as NodeJS.ErrnoException).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      process.stderr.write(`fleetmq: ${err.message}\n\n${USAGE}`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`fleetmq: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 1;
    }
  },
);
