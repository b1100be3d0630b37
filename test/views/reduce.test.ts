import { join } from 'node:path';
import { MemoryLog } from '../../src/log/memory/memory-log.js';
import { reduce, type ReduceView } from '../../src/views/reduce.js';
import { viewSuite, type Message } from '../conformance/view-suite.js';
import { temporaryDirectory } from '../helpers.js';

type Counts = Record<string, number>;

const root = temporaryDirectory();
let count = 0;
const directory = (): string => join(root, `db-${count++}`);

const countByType = {
  create: (version: number, calls: { records: number }): ReduceView<Message, Counts, string> =>
    reduce<Message, Counts, string>(
      version,
      (counts, type) => {
        calls.records++;
        return { ...counts, [type]: (counts[type] ?? 0) + 1 };
      },
      { initial: {}, map: (value) => value.type },
    ),
  read: (view: ReduceView<Message, Counts, string>, options?: object) => view.get(options),
  expected: (records: ReadonlyArray<{ value: Message }>): Counts => {
    const counts: Counts = {};
    for (const { value } of records) counts[value.type] = (counts[value.type] ?? 0) + 1;
    return counts;
  },
  stateFile: 'state',
};

viewSuite({ name: 'reduce (count per type), native log', view: countByType, directory });
viewSuite({ name: 'reduce (count per type), memory log', view: countByType, directory, log: () => MemoryLog.open<Message>() });
