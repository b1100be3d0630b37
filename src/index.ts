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
export {
  FileLog,
  type FileLogOptions,
  type Durability,
  type RetentionPolicy,
  type TrimResult,
  type CompactionPolicy,
  type CompactionResult,
  type MaintenanceOptions,
} from './log/file/file-log.js';
export type { Progress } from './progress/meter.js';
export {
  FlumeOffsetLog,
  type FlumeOffsetLogOptions,
  type OffsetDurability,
  type OffsetWidth,
} from './log/flume-offset/flume-offset-log.js';
export {
  JetStreamLog,
  type JetStreamCredentials,
  type JetStreamLogInfo,
  type JetStreamLogOptions,
  type JetStreamTls,
} from './log/jetstream/jetstream-log.js';
export * as limits from './limits.js';
export { Sluice, type SluiceOptions, type SluiceEvents } from './db/sluice.js';
export type { View, ViewContext, ReadOptions } from './views/view.js';
export type { ViewProgress, ViewStatus } from './views/runner.js';
export { ReduceView, reduce, type ReduceOptions } from './views/reduce.js';
export { IndexView, index, type IndexKey, type IndexEntry, type IndexRange } from './views/index-view.js';
export { KeyIndexView, TimeIndexView, keyIndex, timeIndex, type KeyIndexOptions } from './views/key-time-index.js';
export * from './views/query/index.js';
export {
  ImportedOffsetsView,
  importedOffsets,
  importedOffsetKey,
  importedOffsetsViewName,
} from './views/imported-offsets.js';
export { importFlumeOffset, type ImportOptions, type ImportResult } from './ops/import.js';
export { exportFlumeOffset, type ExportOptions, type ExportResult } from './ops/export.js';
export { stat, statFlumeOffset, type LogStat, type SegmentStat, type StatOptions, type ViewStat } from './ops/stat.js';
export {
  check,
  type CheckOptions,
  type CheckProblem,
  type CheckProblemKind,
  type CheckReport,
} from './ops/check.js';
export {
  recover,
  type RecoverClearedView,
  type RecoverCut,
  type RecoverOptions,
  type RecoverRemoval,
  type RecoverReport,
} from './ops/recover.js';
export {
  backup,
  restore,
  type BackupOptions,
  type BackupReport,
  type RestoreOptions,
  type RestoreReport,
} from './ops/backup.js';
export type { ViewState, ViewStorage } from './ops/view-states.js';
