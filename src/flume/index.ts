/**
 * `sluice/flume`: flumedb's API over any Sluice log, so a flumedb application and its views (flumeview-reduce,
 * flumeview-level, flumeview-query…) move onto Sluice unchanged. README "Flume compatibility" is the guide.
 */
export { Flume, FlumeDB, type FlumeLogInput, type Mapper } from './flume.js';
export {
  fromLog,
  isFlumeLog,
  isSluiceLog,
  type FlumeItem,
  type FlumeLog,
  type FlumeMethodType,
  type FlumeStreamOptions,
  type FromLogOptions,
  type SluiceFlumeLog,
} from './flumelog.js';
// The flumelog constructors.
export {
  LegacyOffsetLog,
  MemoryLog,
  NativeLog,
  OffsetLog,
  type MemoryLogOptions,
  type NativeLogOptions,
  type OffsetLogOptions,
} from './logs.js';
export { rawFlumeCodec, toSluiceCodec, type FlumeCodec } from './codec.js';
export { FlumeDeletedError, flumeDeletedCode } from './errors.js';
export type { NodeCallback } from './errors.js';
export { type Observable, type SettableObservable } from './observable.js';
export { asyncMap, deferred, fromAsyncIterable, type PullCallback, type PullEnd, type PullSource } from './pull.js';
export type { CreateView, FlumeView, MountedViewApi, PullSink, ViewLog } from './view.js';
export { viewRestartsMax } from '../limits.js';
