/**
 * A NATS operator setup for tests of creds files, made with the client's own nkeys: an operator, a system
 * account, an account with JetStream and a user of it, each as a JWT signed by its issuer (the JWT of the NATS
 * security model: a JSON header and claims, base64url, and an ed25519 signature over both by the issuer's key).
 */
import { randomBytes } from 'node:crypto';
import { nkeys } from '@nats-io/transport-node';

type KeyPair = ReturnType<typeof nkeys.createUser>;

function jwt(issuer: KeyPair, subject: KeyPair, name: string, nats: object): string {
  const encode = (value: object): string => Buffer.from(JSON.stringify(value)).toString('base64url');
  const header = encode({ typ: 'JWT', alg: 'ed25519-nkey' });
  const claims = encode({
    jti: randomBytes(16).toString('hex').toUpperCase(),
    iat: Math.floor(Date.now() / 1000),
    iss: issuer.getPublicKey(),
    sub: subject.getPublicKey(),
    name,
    nats,
  });
  const signature = Buffer.from(issuer.sign(new TextEncoder().encode(`${header}.${claims}`))).toString('base64url');
  return `${header}.${claims}.${signature}`;
}

const unlimited = { subs: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1 };

/** The text of a creds file: the user's JWT and its seed, in the blocks the NATS tools write. */
function credsOf(userJwt: string, user: KeyPair): string {
  const seed = new TextDecoder().decode(user.getSeed());
  return (
    `-----BEGIN NATS USER JWT-----\n${userJwt}\n------END NATS USER JWT------\n\n` +
    `-----BEGIN USER NKEY SEED-----\n${seed}\n------END USER NKEY SEED------\n`
  );
}

export interface OperatorSetup {
  /** Server configuration: the operator, its accounts preloaded in a memory resolver. */
  readonly config: string;
  /** A creds file's text for a user of the JetStream account. */
  readonly creds: string;
  /** A creds file's text for a user of an account the servers do not know. */
  readonly strangerCreds: string;
  /** The user seeds within the creds (secrets the tests look for in outputs). */
  readonly seeds: readonly string[];
}

export function operatorSetup(): OperatorSetup {
  const operator = nkeys.createOperator();
  const system = nkeys.createAccount();
  const account = nkeys.createAccount();
  const user = nkeys.createUser();
  const stranger = nkeys.createAccount();
  const strangerUser = nkeys.createUser();
  const accountJwt = (key: KeyPair, name: string, limits: object): string =>
    jwt(operator, key, name, { limits, type: 'account', version: 2 });
  const preload = [
    [system, accountJwt(system, 'SYS', unlimited)],
    [account, accountJwt(account, 'sluice', { ...unlimited, mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1 })],
  ] as const;
  const userClaims = { pub: {}, sub: {}, subs: -1, data: -1, payload: -1, type: 'user', version: 2 };
  const config =
    `operator: "${jwt(operator, operator, 'sluice-test', { type: 'operator', version: 2 })}"\n` +
    `system_account: ${system.getPublicKey()}\nresolver: MEMORY\n` +
    `resolver_preload: { ${preload.map(([key, token]) => `${key.getPublicKey()}: "${token}"`).join(', ')} }\n`;
  return {
    config,
    creds: credsOf(jwt(account, user, 'writer', userClaims), user),
    strangerCreds: credsOf(jwt(stranger, strangerUser, 'stranger', userClaims), strangerUser),
    seeds: [user, strangerUser].map((key) => new TextDecoder().decode(key.getSeed())),
  };
}
