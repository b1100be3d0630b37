/**
 * Access to servers that require it: real nats-server processes configured with users and passwords and an nkey
 * (one server), a token (another), operator mode with JWTs made here (a fourth, for creds files) and TLS verifying
 * clients, with a CA and certificates made here by openssl (a third). Each kind of credentials opens the log through the API and the CLI; a client without them, or with
 * wrong ones, is refused with UNAUTHORIZED; and no secret appears in an error message, `info()`, or the CLI's
 * output and stderr.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { nkeys } from '@nats-io/transport-node';
import { isSluiceError } from '../../../src/errors.js';
import { JetStreamLog, type JetStreamLogOptions } from '../../../src/log/jetstream/jetstream-log.js';
import { linesOf, startCli, type CliResult } from '../../cli/run-cli.js';
import { temporaryDirectory } from '../../helpers.js';
import { track } from './cleanup.js';
import { natsFixture } from './nats-servers.js';
import { operatorSetup } from './nats-operator.js';

const password = `pw-${randomBytes(12).toString('hex')}`;
const token = `tok-${randomBytes(12).toString('hex')}`;
const userKeys = nkeys.createUser();
const nkeySeed = new TextDecoder().decode(userKeys.getSeed());
const strangerSeed = new TextDecoder().decode(nkeys.createUser().getSeed());
const operator = operatorSetup();
const secrets = [password, token, nkeySeed, strangerSeed, ...operator.seeds];

const users = natsFixture(
  1,
  () =>
    `authorization { users: [ { user: alice, password: "${password}" }, { nkey: ${userKeys.getPublicKey()} } ] }\n`,
);
const tokens = natsFixture(1, () => `authorization { token: "${token}" }\n`);
const operated = natsFixture(1, () => operator.config);

const opensslFound = spawnSync('sh', ['-c', 'command -v openssl'], { encoding: 'utf8' }).status === 0;
const ciRun = process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false';
if (!opensslFound && ciRun) throw new Error('openssl is not installed: .ci/run installs it for the TLS tests');
const certificates = temporaryDirectory('sluice-tls-');
const pem = (name: string): string => join(certificates, name);
const tlsServers = natsFixture(1, () => {
  if (!opensslFound) return '';
  makeCertificates();
  return `tls { cert_file: "${pem('server.pem')}", key_file: "${pem('server.key')}", ca_file: "${pem('ca.pem')}", verify: true }\n`;
});

/** A CA, a server certificate for 127.0.0.1 and localhost, and a client certificate, all signed by the CA. */
function makeCertificates(): void {
  const openssl = (...args: string[]): void => {
    const result = spawnSync('openssl', args, { cwd: certificates, encoding: 'utf8' });
    assert.equal(result.status, 0, `openssl ${args.join(' ')}: ${result.stderr}`);
  };
  const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl('req', '-x509', ...key, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=sluice-test-ca');
  writeFileSync(pem('server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  for (const [name, subject] of [
    ['server', '/CN=127.0.0.1'],
    ['client', '/CN=sluice-client'],
  ] as const) {
    openssl('req', ...key, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject);
    const extensions = name === 'server' ? ['-extfile', 'server.ext'] : [];
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', ...extensions);
  }
}

/** Fails when any secret appears in `text`. */
function assertNoSecret(text: string, where: string): void {
  for (const secret of secrets) assert.ok(!text.includes(secret), `${where} holds a secret: ${text}`);
}

/** Opening with `options` fails with UNAUTHORIZED, and the error (message, cause, stack) holds no secret. */
async function refused(options: JetStreamLogOptions<unknown>, what: string): Promise<void> {
  const error = await JetStreamLog.open(options).then(
    async (log) => {
      await log.close();
      return undefined;
    },
    (failure: unknown) => failure,
  );
  assert.ok(isSluiceError(error, 'UNAUTHORIZED'), `${what}: expected UNAUTHORIZED, got ${String(error)}`);
  assertNoSecret(`${error.message} ${error.stack ?? ''} ${String((error.cause as Error | undefined)?.message)}`, what);
}

/** Opens a log with `options`, appends and reads back, and checks `info()` holds no secret. */
async function works(options: JetStreamLogOptions<unknown>): Promise<void> {
  await using log = await track(JetStreamLog.open(options));
  const offset = await log.append({ hello: options.stream });
  assert.deepEqual(await log.get(offset), { hello: options.stream });
  assertNoSecret(JSON.stringify(await log.info()), 'info()');
}

async function cli(args: readonly string[], env: Record<string, string> = {}, input?: string): Promise<CliResult> {
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    return await startCli(args, input ?? '').exited;
  } finally {
    for (const name of Object.keys(env)) {
      if (saved[name] === undefined) delete process.env[name];
      else process.env[name] = saved[name];
    }
  }
}

/** Writes `content` to a file of its own (mode 0600, as secrets are kept) and returns its path. */
function secretFile(root: string, name: string, content: string): string {
  const path = join(root, name);
  writeFileSync(path, `${content}\n`, { mode: 0o600 });
  return path;
}

describe('JetStreamLog with credentials and TLS', { skip: users.skip, timeout: 120_000 }, () => {
  it('opens with a user and password or an nkey; refuses none, a wrong password or an unknown nkey', async () => {
    const servers = users.servers().urls;
    await works({ servers, stream: 'alice', credentials: { user: 'alice', password } });
    await works({ servers, stream: 'nkey', credentials: { nkeySeed } });
    await refused({ servers, stream: 'alice' }, 'no credentials');
    await refused({ servers, stream: 'alice', credentials: { user: 'alice', password: `${password}x` } }, 'wrong password');
    await refused({ servers, stream: 'alice', credentials: { nkeySeed: strangerSeed } }, 'unknown nkey');
    // A password in a server URL is masked in messages too.
    const url = servers.replace('nats://', `nats://alice:${password}x@`);
    await refused({ servers: url, stream: 'alice' }, 'wrong password in the URL');
  });

  it('opens with a token; refuses none and a wrong one', { skip: tokens.skip }, async () => {
    const servers = tokens.servers().urls;
    await works({ servers, stream: 'token', credentials: { token } });
    await refused({ servers, stream: 'token' }, 'no token');
    await refused({ servers, stream: 'token', credentials: { token: `${token}x` } }, 'wrong token');
  });

  it('opens over TLS with the CA and a client certificate; refuses a client that does not trust the server', {
    skip: tlsServers.skip ?? (opensslFound ? undefined : 'openssl is not installed'),
  }, async () => {
    const servers = tlsServers.servers().urls;
    await works({ servers, stream: 'tls', tls: { caFile: pem('ca.pem'), certFile: pem('client.pem'), keyFile: pem('client.key') } });
    await refused({ servers, stream: 'tls' }, 'no CA');
  });

  it('opens with a creds file on servers in operator mode; refuses a user of an unknown account', {
    skip: operated.skip,
  }, async () => {
    const servers = operated.servers().urls;
    await works({ servers, stream: 'creds', credentials: { creds: operator.creds } });
    await works({ servers, stream: 'creds', credentials: { creds: new TextEncoder().encode(operator.creds) } });
    await refused({ servers, stream: 'creds' }, 'no creds');
    await refused({ servers, stream: 'creds', credentials: { creds: operator.strangerCreds } }, 'unknown account');
  });

  it('throws TypeError for credentials and TLS options of the wrong shape, without echoing them', () => {
    const servers = 'nats://127.0.0.1:1';
    for (const credentials of [
      { user: 'alice' },
      { user: 'alice', password, token },
      { token, password },
      { nkeySeed: 'SUAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', password },
      { token: '' },
      { nkeySeed: password },
      { creds: 42 },
      'alice',
    ]) {
      assert.throws(
        () => JetStreamLog.open({ servers, stream: 's', credentials: credentials as never }),
        (error: unknown) => error instanceof TypeError && (assertNoSecret(error.message, 'TypeError'), true),
      );
    }
    assert.throws(() => JetStreamLog.open({ servers, stream: 's', tls: { certFile: 'c.pem' } }), TypeError);
    assert.throws(() => JetStreamLog.open({ servers, stream: 's', tls: 'yes' as never }), TypeError);
    assert.throws(() => JetStreamLog.open({ servers, stream: 's', tls: { caFlie: 'ca.pem' } as never }), /tls has no option caFlie/);
  });
});

describe('sluice CLI with credentials and TLS', { skip: users.skip, timeout: 120_000 }, () => {
  const root = temporaryDirectory();

  /**
   * Appends through the CLI with `access` (unless `append` is false), checks `stat` counts `records` records, and
   * that nothing printed a secret. (Few runs: each CLI process takes most of a second on a busy machine.)
   */
  async function roundTrip(
    servers: string,
    stream: string,
    records: number,
    access: string[],
    env: Record<string, string> = {},
    append = true,
  ): Promise<void> {
    const on = ['--nats', servers, '--stream', stream, ...access];
    if (append) {
      const appended = await cli(['append', ...on], env, '{"n":1}\n');
      assert.equal(appended.status, 0, appended.stderr);
      assert.deepEqual(linesOf(appended.stdout), [String(records - 1)]);
    }
    const stat = await cli(['stat', ...on, '--json'], env);
    assert.equal(stat.status, 0, stat.stderr);
    assert.equal((JSON.parse(stat.stdout) as { records: number }).records, records);
    assertNoSecret(stat.stdout + stat.stderr, 'stat');
  }

  async function cliRefused(servers: string, access: string[], env: Record<string, string> = {}): Promise<void> {
    const result = await cli(['dump', '--nats', servers, '--stream', 'refused', ...access], env);
    assert.equal(result.status, 1, result.stderr);
    assert.match(result.stderr, /^sluice: UNAUTHORIZED: /);
    assertNoSecret(result.stdout + result.stderr, 'stderr');
  }

  it('takes a user with --password-file or $SLUICE_NATS_PASSWORD, and an nkey seed from a file', async () => {
    const servers = users.servers().urls;
    const passwordFile = secretFile(root, 'password', password);
    await roundTrip(servers, 'cli-alice', 1, ['--user', 'alice', '--password-file', passwordFile]);
    await roundTrip(servers, 'cli-alice', 1, ['--user', 'alice'], { SLUICE_NATS_PASSWORD: password }, false);
    await roundTrip(servers, 'cli-alice', 2, ['--nkey-seed-file', secretFile(root, 'seed', nkeySeed)]);
    await cliRefused(servers, []);
    await cliRefused(servers, ['--user', 'alice', '--password-file', secretFile(root, 'wrong', `${password}x`)]);
    await cliRefused(servers, ['--nkey-seed-file', secretFile(root, 'stranger', strangerSeed)]);
    // Usage mistakes: two kinds of credentials (one from the environment), access flags without --nats.
    for (const [args, env] of [
      [['--nats', servers, '--stream', 's', '--user', 'alice', '--password-file', passwordFile], { SLUICE_NATS_TOKEN: token }],
      [[root, '--token-file', passwordFile], {}],
    ] as const) {
      const result = await cli(['get', ...args, '0'], env);
      assert.equal(result.status, 2, result.stderr);
      assertNoSecret(result.stderr, 'usage error');
    }
    const missing = await cli(['get', '--nats', servers, '--stream', 's', '--token-file', join(root, 'none'), '0']);
    assert.match(missing.stderr, /^sluice: INVALID_INPUT: /);
  });

  it('takes a token from --token-file or $SLUICE_NATS_TOKEN', { skip: tokens.skip }, async () => {
    const servers = tokens.servers().urls;
    await roundTrip(servers, 'cli-token', 1, ['--token-file', secretFile(root, 'token', token)]);
    await roundTrip(servers, 'cli-token', 1, [], { SLUICE_NATS_TOKEN: token }, false);
    await cliRefused(servers, [], { SLUICE_NATS_TOKEN: `${token}x` });
  });

  it('takes --creds', { skip: operated.skip }, async () => {
    const servers = operated.servers().urls;
    await roundTrip(servers, 'cli-creds', 1, ['--creds', secretFile(root, 'user.creds', operator.creds)]);
    await cliRefused(servers, ['--creds', secretFile(root, 'stranger.creds', operator.strangerCreds)]);
  });

  it('takes --tls-ca, --tls-cert and --tls-key', {
    skip: tlsServers.skip ?? (opensslFound ? undefined : 'openssl is not installed'),
  }, async () => {
    const servers = tlsServers.servers().urls;
    await roundTrip(servers, 'cli-tls', 1, ['--tls-ca', pem('ca.pem'), '--tls-cert', pem('client.pem'), '--tls-key', pem('client.key')]);
    await cliRefused(servers, []);
  });
});
