import { readFileSync } from 'node:fs';
import { SluiceError } from '../errors.js';
import type { JetStreamCredentials, JetStreamTls } from '../log/jetstream/connection.js';
import type { CommandLine, FlagSpec } from './args.js';
import type { OptionHelp } from './command.js';

/**
 * The flags that say how to reach servers that require credentials or TLS. Secrets come from files or from the
 * environment, never from the command line itself, where any user could read them with `ps`.
 */
export const natsAccessFlags: FlagSpec = {
  user: { type: 'string' },
  'password-file': { type: 'string' },
  'token-file': { type: 'string' },
  'nkey-seed-file': { type: 'string' },
  creds: { type: 'string' },
  'tls-ca': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
};

/** The environment variables that may hold a secret in place of its file. */
export const natsSecretVariables = {
  password: 'SLUICE_NATS_PASSWORD',
  token: 'SLUICE_NATS_TOKEN',
  nkeySeed: 'SLUICE_NATS_NKEY_SEED',
} as const;

export const natsAccessHelp: readonly OptionHelp[] = [
  ['--user <name>', `with --nats: the user; its password from --password-file or $${natsSecretVariables.password}`],
  ['--password-file <file>', 'the file holding the password of --user'],
  ['--token-file <file>', `the file holding a token (or $${natsSecretVariables.token})`],
  ['--nkey-seed-file <file>', `the file holding a user nkey seed, SU… (or $${natsSecretVariables.nkeySeed})`],
  ['--creds <file>', 'a creds file (user JWT and seed) for servers in operator mode'],
  ['--tls-ca <file>', 'TLS, trusting the certificate authority in this PEM file (default: the system ones)'],
  ['--tls-cert <file> --tls-key <file>', "TLS with this client certificate and key, for servers that verify clients"],
];

/** The names of the flags above. */
const natsAccessFlagNames: readonly string[] = Object.keys(natsAccessFlags);

export interface NatsAccess {
  readonly credentials?: JetStreamCredentials;
  readonly tls?: JetStreamTls;
}

/**
 * Reads the access flags (and variables): at most one kind of credentials; `--tls-cert` with `--tls-key`. A file
 * that cannot be read fails with `INVALID_INPUT`, naming the file and never its content.
 */
export function natsAccessOf(line: CommandLine, environment: NodeJS.ProcessEnv = process.env): NatsAccess {
  const user = line.string('user');
  const secret = (flag: string, variable: string): string | undefined => {
    const file = line.string(flag);
    if (file !== undefined) return readSecret(file, `--${flag}`);
    const value = environment[variable];
    return value === undefined || value === '' ? undefined : value;
  };
  const token = secret('token-file', natsSecretVariables.token);
  const nkeySeed = secret('nkey-seed-file', natsSecretVariables.nkeySeed);
  const credsFile = line.string('creds');
  const password = user === undefined ? undefined : secret('password-file', natsSecretVariables.password);
  if (user === undefined && line.string('password-file') !== undefined) throw line.usageError('--password-file goes with --user');
  if (user !== undefined && password === undefined) {
    throw line.usageError(`--user needs its password: --password-file <file> or $${natsSecretVariables.password}`);
  }
  const kinds: JetStreamCredentials[] = [];
  if (user !== undefined && password !== undefined) kinds.push({ user, password });
  if (token !== undefined) kinds.push({ token });
  if (nkeySeed !== undefined) kinds.push({ nkeySeed });
  if (credsFile !== undefined) kinds.push({ creds: readSecret(credsFile, '--creds') });
  if (kinds.length > 1) {
    throw line.usageError('give one kind of credentials: --user, a token, an nkey seed or --creds (check the environment)');
  }
  const ca = line.string('tls-ca');
  const cert = line.string('tls-cert');
  const key = line.string('tls-key');
  if ((cert === undefined) !== (key === undefined)) throw line.usageError('--tls-cert and --tls-key go together');
  const tls =
    ca === undefined && cert === undefined
      ? undefined
      : { ...(ca === undefined ? {} : { caFile: ca }), ...(cert === undefined ? {} : { certFile: cert, keyFile: key }) };
  return { ...(kinds[0] === undefined ? {} : { credentials: kinds[0] }), ...(tls === undefined ? {} : { tls }) };
}

/** True when any access flag was given (they need --nats). */
export function hasNatsAccessFlags(line: CommandLine): boolean {
  return natsAccessFlagNames.some((name) => line.string(name) !== undefined);
}

function readSecret(file: string, flag: string): string {
  try {
    // A trailing newline is what editors and `echo` add, never part of a secret.
    return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  } catch (error) {
    const why = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new SluiceError('INVALID_INPUT', `cannot read the file of ${flag}, ${file}: ${why}`, { cause: error });
  }
}
