// Runs test-flumelog 1.0.1, the tape suite every flumelog passes, against one of our flumelog constructors, in
// a process of its own (tape reports on stdout and sets the exit code). Usage:
//   node run-test-flumelog.mjs <memory|native|offset|offset-48|legacy> <empty directory>
// Imports `sluice/flume` by the package's own name, so it runs the compiled package as an application would.
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { MemoryLog as SluiceMemoryLog } from 'sluice';
import { LegacyOffsetLog, MemoryLog, NativeLog, OffsetLog, fromLog, toSluiceCodec } from 'sluice/flume';

const require = createRequire(import.meta.url);
const testFlumelog = require('test-flumelog');

const [mode, dir] = process.argv.slice(2);
if (dir === undefined) throw new TypeError('usage: run-test-flumelog.mjs <memory|native|offset|offset-48|legacy> <directory>');

// The suite stores strings and expects them back: JSON, as flumelog-offset's own run of the suite uses.
const json = { encode: JSON.stringify, decode: JSON.parse, buffer: false };

/**
 * The suite's last step closes the log and opens the same one again, expecting its records back. A memory log
 * keeps nothing once closed, so the second open is a new memory log given the values the first one was given,
 * through the same codec: the suite then checks that the records' seqs came out the same, which they must,
 * since a Sluice offset depends only on the records before it.
 */
function memoryLogs() {
  const appended = [];
  let opened = 0;
  return () => {
    if (opened++ === 0) {
      const log = MemoryLog({ codec: json });
      const append = log.append;
      log.append = (value, cb) => {
        appended.push(...(Array.isArray(value) ? value : [value]));
        append(value, cb);
      };
      return log;
    }
    const replacement = new SluiceMemoryLog({ codec: toSluiceCodec(json) });
    return fromLog(replacement.append(appended).then(() => replacement));
  };
}

const constructors = {
  memory: memoryLogs(),
  // The suite passes a file name of its own under /tmp; the log goes to the directory we were given instead.
  native: () => NativeLog(join(dir, 'log'), { codec: json }),
  offset: () => OffsetLog(join(dir, 'log.offset'), { codec: json }),
  'offset-48': () => OffsetLog(join(dir, 'log.offset'), { codec: json, offsetCodec: 48 }),
  legacy: () => LegacyOffsetLog(join(dir, 'log.offset'), json),
};

const create = constructors[mode];
if (create === undefined) throw new TypeError(`unknown log ${mode}`);
testFlumelog(create, () => console.log(`# ${mode}: test-flumelog finished`));
