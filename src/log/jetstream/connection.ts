import {
  connect,
  credsAuthenticator,
  errors,
  nkeyAuthenticator,
  tokenAuthenticator,
  usernamePasswordAuthenticator,
  type Authenticator,
  type NatsConnection,
  type TlsOptions,
} from '@nats-io/transport-node';
import { SluiceError } from '../../errors.js';
import { checkOptionNames } from '../open-checks.js';

/**
 * How a log proves who it is to servers that require it: one of a user and password, a token, an nkey seed
 * (`SU…`, the user's private key: the servers know its public key) or a creds file's content (a user JWT and its
 * seed, for servers run in operator mode). The secrets go to the NATS client's own authenticators and nowhere
 * else: no error message, log line or `info()` result of Sluice holds them.
 */
export type JetStreamCredentials =
  | { readonly user: string; readonly password: string }
  | { readonly token: string }
  | { readonly nkeySeed: string }
  | { readonly creds: string | Uint8Array };

/**
 * TLS to the servers: PEM files (or PEM text) of the certificate authority that signed the servers' certificates
 * (default: the system's), and of this client's certificate and key when the servers verify clients. `true`:
 * TLS with the system's authorities and no client certificate.
 */
export interface JetStreamTls {
  readonly caFile?: string;
  readonly certFile?: string;
  readonly keyFile?: string;
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
}

/** Where and how to connect. */
export interface ConnectionTarget {
  readonly servers: string | readonly string[];
  readonly credentials?: JetStreamCredentials | undefined;
  readonly tls?: JetStreamTls | true | undefined;
}

const credentialKinds = ['user', 'token', 'nkeySeed', 'creds'] as const;
const tlsFields = ['caFile', 'certFile', 'keyFile', 'ca', 'cert', 'key'] as const;

/** Throws `TypeError` for credentials or TLS options of the wrong shape, never echoing a value. */
export function checkConnectionOptions(credentials: unknown, tls: unknown): void {
  if (credentials !== undefined) {
    if (typeof credentials !== 'object' || credentials === null) throw new TypeError('credentials must be an object');
    const given = credentialKinds.filter((kind) => kind in credentials);
    if (given.length !== 1) {
      throw new TypeError('credentials must hold exactly one of user (with password), token, nkeySeed or creds');
    }
    const record = credentials as Record<string, unknown>;
    const nonEmpty = (name: string): void => {
      if (typeof record[name] !== 'string' || record[name] === '') throw new TypeError(`credentials.${name} must be a non-empty string`);
    };
    const kind = given[0] as (typeof credentialKinds)[number];
    // A password beside a token (or any other stray field) would be dropped without a word.
    checkOptionNames(credentials, kind === 'user' ? ['user', 'password'] : [kind], 'credentials');
    if (kind === 'user') {
      nonEmpty('user');
      nonEmpty('password');
    } else if (kind === 'creds') {
      if (!(typeof record.creds === 'string' || record.creds instanceof Uint8Array) || record.creds.length === 0) {
        throw new TypeError('credentials.creds must be the non-empty content of a creds file (a string or bytes)');
      }
    } else {
      nonEmpty(kind);
      // An nkey seed is a user's: `SU` and base32. The client checks the rest when it signs.
      if (kind === 'nkeySeed' && !/^SU[A-Z2-7]{10,}$/.test(record.nkeySeed as string)) {
        throw new TypeError('credentials.nkeySeed must be a user nkey seed (SU…)');
      }
    }
  }
  if (tls !== undefined && tls !== true) {
    if (typeof tls !== 'object' || tls === null) throw new TypeError('tls must be true or an object');
    checkOptionNames(tls, tlsFields, 'tls');
    for (const field of tlsFields) {
      const value = (tls as Record<string, unknown>)[field];
      if (value !== undefined && (typeof value !== 'string' || value === '')) {
        throw new TypeError(`tls.${field} must be a non-empty string`);
      }
    }
    const { certFile, cert, keyFile, key } = tls as JetStreamTls;
    if ((certFile ?? cert) === undefined !== ((keyFile ?? key) === undefined)) {
      throw new TypeError('a TLS client certificate goes with its key');
    }
  }
}

function authenticatorOf(credentials: JetStreamCredentials): Authenticator {
  if ('user' in credentials) return usernamePasswordAuthenticator(credentials.user, credentials.password);
  if ('token' in credentials) return tokenAuthenticator(credentials.token);
  if ('nkeySeed' in credentials) return nkeyAuthenticator(new TextEncoder().encode(credentials.nkeySeed));
  const creds = credentials.creds;
  return credsAuthenticator(typeof creds === 'string' ? new TextEncoder().encode(creds) : creds);
}

/** `servers` (an array, or URLs separated by commas) as a list. */
export function serverList(servers: string | readonly string[]): string[] {
  return typeof servers === 'string' ? servers.split(',').map((server) => server.trim()) : [...servers];
}

/** A server URL fit for a message: any user information it holds is masked (`nats://a:b@host` → `nats://***@host`). */
export function redact(server: string): string {
  return server.replace(/^([a-z][a-z0-9+.-]*:\/\/)?[^@/]*@/i, (_, scheme: string | undefined) => `${scheme ?? ''}***@`);
}

/** Node's codes for a TLS peer whose certificate cannot be trusted or does not match. */
const tlsErrorPattern = /^(ERR_TLS_|ERR_SSL_|UNABLE_TO_|CERT_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT|HOSTNAME_MISMATCH)/;

/**
 * Connects for a log: reconnecting for ever (the writer decides when to give up), without async stack traces
 * (building one for every request halves publish throughput). Fails with `UNAUTHORIZED` when the servers refuse
 * the credentials (or none were given and they require some) or TLS cannot be set up with a trusted certificate,
 * and with `UNAVAILABLE` when no server answers.
 */
export async function connectTo(target: ConnectionTarget): Promise<NatsConnection> {
  const list = serverList(target.servers);
  const where = list.map(redact).join(', ');
  const tls: TlsOptions | undefined = target.tls === undefined ? undefined : target.tls === true ? {} : { ...target.tls };
  try {
    return await connect({
      servers: list,
      name: 'sluice',
      noAsyncTraces: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      ...(target.credentials === undefined ? {} : { authenticator: authenticatorOf(target.credentials) }),
      ...(tls === undefined ? {} : { tls }),
    });
  } catch (error) {
    throw connectFailure(where, error);
  }
}

function connectFailure(where: string, error: unknown): SluiceError {
  const why = error instanceof Error ? error.message : String(error);
  if (error instanceof errors.AuthorizationError || error instanceof errors.UserAuthenticationExpiredError) {
    return new SluiceError('UNAUTHORIZED', `the NATS servers ${where} refused the credentials: ${why}`, { cause: error });
  }
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && tlsErrorPattern.test(code)) {
    return new SluiceError('UNAUTHORIZED', `TLS to the NATS servers ${where} failed: ${why} (${code})`, { cause: error });
  }
  return new SluiceError('UNAVAILABLE', `cannot connect to the NATS servers ${where}: ${why}`, { cause: error });
}
