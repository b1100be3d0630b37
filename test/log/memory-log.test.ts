import { MemoryLog } from '../../src/log/memory/memory-log.js';
import { deleteSuite } from '../conformance/delete-suite.js';
import { logSuite, type LogFactory } from '../conformance/log-suite.js';

const factory: LogFactory = { open: (options) => MemoryLog.open(options) };
logSuite({ name: 'MemoryLog', factory });
deleteSuite({ name: 'MemoryLog', factory });
