import { MemoryLog } from '../../src/log/memory/memory-log.js';
import { logSuite } from '../conformance/log-suite.js';

logSuite({
  name: 'MemoryLog',
  factory: {
    open: (options) => MemoryLog.open(options),
  },
});
