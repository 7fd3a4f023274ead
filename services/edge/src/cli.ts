#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { DEFAULT_ITERATIONS, hashPassword, removeUser, upsertUser, usernameProblem, writePasswordFile } from '@fleetmq/auth';
import { ConfigError } from '@fleetmq/protocol';
import { createDynamoTables } from './backends.js';
import { loadConfig, redactSecrets } from './config.js';
import { createLogger } from './logger.js';
import { startNode } from './main.js';
import { ADMIN_COMMANDS, adminCli } from './ops/admin-cli.js';

const USAGE = `Usage: fleetmq <command> [options]

Commands:
  start          start a broker node
  check-config   validate the configuration and print the effective one
  dynamo create-tables
                 create the DynamoDB tables named by the dynamodb config (idempotent)
  passwd [-c] FILE USER
                 add or update USER in a Mosquitto password file (-c: create or overwrite
                 FILE); the password comes from stdin, or is prompted for on a terminal
  passwd -D FILE USER
                 remove USER from FILE
  clients list|show, sessions list|show|discard, kick ID, retained list, drain
                 ask a running node's admin API (fleetmq clients --help)

Options:
  -c, --config FILE   YAML config file (default: $FLEETMQ_CONFIG, else built-in defaults)
  -h, --help          show this help
  -v, --version       print the version
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

const PASSWD_USAGE = `Usage: fleetmq passwd [-c] [--iterations N] FILE USER
       fleetmq passwd -D FILE USER

Writes Mosquitto's password file format ($7$: PBKDF2-SHA512, ${DEFAULT_ITERATIONS} rounds by default),
which mosquitto and FleetMQ (auth.passwordFile, auth.deviceTokens.tokensFile) read.
The password is the first line of stdin, or is prompted for twice on a terminal.

  -c, --create          create FILE, or overwrite it with this one user
  -D, --delete          remove USER from FILE
      --iterations N    PBKDF2 rounds (mosquitto_passwd writes 101)
`;

/** `fleetmq passwd`: like mosquitto_passwd, writing through the @fleetmq/auth helpers. */
async function passwd(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      create: { type: 'boolean', short: 'c' },
      delete: { type: 'boolean', short: 'D' },
      iterations: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(PASSWD_USAGE);
    return 0;
  }
  const [file, user, ...extra] = positionals;
  if (file === undefined || user === undefined || extra.length > 0 || (values.create && values.delete)) {
    process.stderr.write(`fleetmq passwd: give FILE and USER\n\n${PASSWD_USAGE}`);
    return 2;
  }
  const problem = usernameProblem(user);
  if (problem !== undefined) {
    process.stderr.write(`fleetmq passwd: username ${JSON.stringify(user)} cannot be stored: ${problem}\n`);
    return 2;
  }
  const iterations = values.iterations === undefined ? DEFAULT_ITERATIONS : Number(values.iterations);
  if (!Number.isInteger(iterations) || iterations < 1) {
    process.stderr.write(`fleetmq passwd: --iterations must be a whole number >= 1\n`);
    return 2;
  }
  let text = '';
  if (!values.create) {
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
      process.stderr.write(`fleetmq passwd: cannot read ${file} (${code})${code === 'ENOENT' && !values.delete ? '; use -c to create it' : ''}\n`);
      return 1;
    }
  }
  if (values.delete) {
    const next = removeUser(text, user);
    if (next === text) {
      process.stderr.write(`fleetmq passwd: user ${JSON.stringify(user)} not found in ${file}\n`);
      return 1;
    }
    await writePasswordFile(file, next);
    return 0;
  }
  const password = await readPassword();
  if (password === undefined) return 1;
  if (password === '') {
    process.stderr.write('fleetmq passwd: empty password\n');
    return 2;
  }
  await writePasswordFile(file, upsertUser(text, user, await hashPassword(password, { iterations })));
  return 0;
}

/** The first line of stdin; on a terminal, prompted for twice without echo (undefined: they differ). */
async function readPassword(): Promise<string | undefined> {
  if (!process.stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0]!;
  }
  const first = await promptHidden('Password: ');
  const second = await promptHidden('Reenter password: ');
  if (first !== second) {
    process.stderr.write('fleetmq passwd: passwords do not match\n');
    return undefined;
  }
  return first;
}

function promptHidden(question: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    process.stderr.write(question);
    stdin.setRawMode(true);
    stdin.resume();
    let text = '';
    const done = (err?: Error): void => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(text);
    };
    const onData = (data: Buffer): void => {
      for (const ch of data.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003') return done(new Error('interrupted'));
        if (ch === '\u007f' || ch === '\b') text = text.slice(0, -1);
        else text += ch;
      }
    };
    stdin.on('data', onData);
  });
}

async function main(argv: string[]): Promise<number> {
  // passwd has options of its own (-c is --create there, as in mosquitto_passwd)
  if (argv[0] === 'passwd') return passwd(argv.slice(1));
  // the admin verbs talk to a running node's ops server, with options of their own
  if (argv[0] !== undefined && ADMIN_COMMANDS.has(argv[0])) return adminCli(argv);
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
      process.stdout.write(`${JSON.stringify(redactSecrets(config), null, 2)}\n`);
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
        // POST /api/v1/node/drain runs the same stop
        void node.stopped().then(resolve);
        // SIGHUP re-reads the password file and acl_file (as Mosquitto does); it logs the outcome
        process.on('SIGHUP', () => {
          log.info({ signal: 'SIGHUP' }, 'signal_received');
          void node.reloadAuth();
        });
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
