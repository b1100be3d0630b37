import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { crc32c } from '../../src/checksum/crc32c.js';
import { temporaryDirectory } from '../helpers.js';
import { linesOf, runCli, startCli, waitFor } from './run-cli.js';

describe('sluice with tamper-evident and encrypted logs', () => {
  it('appends with --chain and --key-file, verifies the chain, and never prints a key', async () => {
    const root = temporaryDirectory();
    const dir = join(root, 'log');
    const keyHex = 'c3'.repeat(32);
    const keyFile = join(root, 'keys');
    writeFileSync(keyFile, `# the current key first\n9:${keyHex}\n`, { mode: 0o600 });
    const append = await runCli(['append', dir, '--chain', 'sha256', '--key-file', keyFile], '{"a":1}\n{"b":"secret"}\n');
    assert.equal(append.status, 0, append.stderr);
    const offsets = linesOf(append.stdout).map(Number);

    const stat = await runCli(['stat', dir, '--json']);
    assert.equal(stat.status, 0, stat.stderr);
    const statJson = JSON.parse(stat.stdout) as { chain: string; encrypted: boolean; records: number; segments: Array<{ keyId: number }> };
    assert.deepEqual([statJson.chain, statJson.encrypted, statJson.records], ['sha256', true, 2]);
    assert.equal(statJson.segments[0]?.keyId, 9);
    assert.match((await runCli(['stat', dir])).stdout, /encrypted +yes \(AES-256-GCM\), key ids 9/);

    const verified = await runCli(['check', dir, '--verify-chain', '--json']);
    assert.equal(verified.status, 0, verified.stdout);
    const head = (JSON.parse(verified.stdout) as { chain: { head: { offset: number; hash: string } } }).chain.head;
    assert.equal(head.offset, offsets[1]);
    assert.equal((await runCli(['check', dir, '--verify-chain', '--head', head.hash])).status, 0);

    const noKey = await runCli(['dump', dir]);
    assert.notEqual(noKey.status, 0);
    assert.match(noKey.stderr, /KEY_REQUIRED/);
    const dump = await runCli(['dump', dir, '--key-file', keyFile]);
    assert.equal(dump.status, 0, dump.stderr);
    assert.match(dump.stdout, /"secret"/);
    const wrong = join(root, 'wrong');
    writeFileSync(wrong, `9:${'d4'.repeat(32)}\n`);
    const wrongKey = await runCli(['get', dir, String(offsets[0]), '--key-file', wrong]);
    assert.notEqual(wrongKey.status, 0);
    assert.match(wrongKey.stderr, /WRONG_KEY/);
    const malformed = join(root, 'malformed');
    writeFileSync(malformed, `9:${keyHex.slice(2)}\n`);
    const bad = await runCli(['dump', dir, '--key-file', malformed]);
    assert.match(bad.stderr, /INVALID_INPUT/);
    // tail reads its start and then follows with the same key.
    const tail = startCli(['tail', dir, '-n', '1', '--key-file', keyFile]);
    await waitFor(() => linesOf(tail.stdout()).length >= 1, 'the last record');
    assert.deepEqual(JSON.parse(linesOf(tail.stdout())[0] as string), { offset: offsets[1], value: { b: 'secret' } });
    tail.child.kill('SIGINT');
    const tailed = await tail.exited;
    assert.equal(tailed.status, 0, tailed.stderr);
    for (const result of [append, stat, verified, noKey, dump, wrongKey, bad, tailed]) {
      assert.equal(`${result.stdout}${result.stderr}`.includes(keyHex.slice(0, 16)), false, 'a key is never printed');
    }

    // A changed record with its CRC recomputed: the chain check fails with the position, the plain check does not.
    const segment = join(dir, readdirSync(dir).find((name) => name.endsWith('.seg')) as string);
    const file = readFileSync(segment);
    const position = 64 + (offsets[1] as number);
    file[position + 60] = (file[position + 60] as number) ^ 0xff;
    file.writeUInt32LE(crc32c(file, position + 8, position + file.readUInt32LE(position)), position + 4);
    writeFileSync(segment, file);
    assert.equal((await runCli(['check', dir])).status, 0);
    const broken = await runCli(['check', dir, '--verify-chain']);
    assert.equal(broken.status, 1);
    assert.match(broken.stdout, new RegExp(`error  chain  ${segment}:${position} \\(offset ${offsets[1]}\\)`));
    assert.equal((await runCli(['check', dir, '--head', head.hash])).status, 2, '--head goes with --verify-chain');
  });

  it('exports an encrypted log with its keys and imports it into a chained, encrypted log under another key', async () => {
    const root = temporaryDirectory();
    const dir = join(root, 'log');
    const [oldKeys, newKeys] = [join(root, 'old-keys'), join(root, 'new-keys')];
    writeFileSync(oldKeys, `1:${'01'.repeat(32)}\n`);
    writeFileSync(newKeys, `2:${'02'.repeat(32)}\n`);
    assert.equal((await runCli(['append', dir, '--key-file', oldKeys], '{"n":1}\n{"n":2}\n')).status, 0);
    const file = join(root, 'export.log');
    assert.notEqual((await runCli(['export', dir, file, '--format', 'flumelog-offset'])).status, 0, 'no key, no export');
    const exported = await runCli(['export', dir, file, '--format', 'flumelog-offset', '--key-file', oldKeys]);
    assert.equal(exported.status, 0, exported.stderr);
    const copy = join(root, 'copy');
    const imported = await runCli(['import', file, copy, '--chain', 'sha256', '--key-file', newKeys]);
    assert.equal(imported.status, 0, imported.stderr);
    const dump = await runCli(['dump', copy, '--key-file', newKeys]);
    assert.deepEqual(linesOf(dump.stdout).map((text) => (JSON.parse(text) as { value: unknown }).value), [{ n: 1 }, { n: 2 }]);
    assert.equal((await runCli(['check', copy, '--verify-chain'])).status, 0);
    assert.match((await runCli(['dump', copy, '--key-file', oldKeys])).stderr, /KEY_REQUIRED/);
  });

  it('creates and verifies a keyed chain with --chain-key-file', async () => {
    const root = temporaryDirectory();
    const dir = join(root, 'log');
    const chainKeyFile = join(root, 'chain-key');
    writeFileSync(chainKeyFile, `${'7a'.repeat(32)}\n`, { mode: 0o600 });
    const append = await runCli(['append', dir, '--chain', 'hmac-sha256', '--chain-key-file', chainKeyFile], '1\n2\n');
    assert.equal(append.status, 0, append.stderr);
    const verified = await runCli(['check', dir, '--verify-chain', '--chain-key-file', chainKeyFile]);
    assert.equal(verified.status, 0, verified.stdout);
    assert.match(verified.stdout, /chain \(hmac-sha256\): verified: 2 links/);
    const withoutKey = await runCli(['check', dir, '--verify-chain']);
    assert.equal(withoutKey.status, 1);
    assert.match(withoutKey.stdout, /takes its chain key/);
    const appendWithoutKey = await runCli(['append', dir], '3\n');
    assert.match(appendWithoutKey.stderr, /KEY_REQUIRED/);
    // Without --verify-chain the key would check nothing: a usage mistake, as --head is.
    const keyAlone = await runCli(['check', dir, '--chain-key-file', chainKeyFile]);
    assert.equal(keyAlone.status, 2);
    assert.match(keyAlone.stderr, /--chain-key-file goes with --verify-chain/);
  });
});
