export { SluiceError, isSluiceError, type ErrorCode, type SluiceErrorOptions } from './errors.js';
export { codecs, type Codec, type JsonValue } from './codec/codec.js';
export type {
  AppendOptions,
  Log,
  LogRecord,
  LogStatus,
  LogSupports,
  SinceListener,
  StreamOptions,
} from './log/log.js';
export { AbstractLog, type EncodedEntry, type RecordCursor } from './log/abstract-log.js';
export { MemoryLog, type MemoryLogOptions } from './log/memory/memory-log.js';
export { FileLog, type FileLogOptions, type Durability } from './log/file/file-log.js';
export * as limits from './limits.js';
