/**
 * Every limit and default of Sluice, named in one place. Units come last in each name. FORMAT.md cites the
 * limits that are part of the file format (those marked "format"); changing one of those is a format change.
 */

const KiB = 1024;
const MiB = 1024 * KiB;

/** Format: the largest encoded value of one record. A larger length read from disk is corruption. */
export const valueBytesMax = 16 * MiB;

/** Format: the largest key of one record (the key length field is 16 bits). */
export const keyBytesMax = 0xffff;

/** Format: the largest log offset; offsets are stored in 64 bits but JavaScript numbers are exact up to 2^53. */
export const offsetMax = Number.MAX_SAFE_INTEGER;

/** The default size at which a segment is sealed and the next one started. */
export const segmentBytesDefault = 64 * MiB;

/** The smallest `segmentBytesMax` a log accepts (tests use small segments to exercise rollover). */
export const segmentBytesMin = 4 * KiB;

/** The largest `segmentBytesMax` a log accepts. */
export const segmentBytesLimit = 4 * 1024 * MiB;

/** The largest encoded size of one batch; a batch is written with one write and must fit in one segment. */
export const batchBytesMax = 256 * MiB;

/** The most records in one batch. */
export const batchRecordsMax = 1_000_000;

/** Bytes read per system call while scanning. */
export const scanChunkBytes = 256 * KiB;

/** Bytes read for a `get` in the first system call: most records fit, larger ones take a second read. */
export const getReadBytes = 1 * KiB;

/** Records decoded per step of a stream before control returns to the event loop. */
export const streamBatchRecords = 256;

/** How much of the last segment's tail is verified record by record on every open. */
export const tailCheckBytes = 256 * KiB;

/** Segment files kept open for reading at once (least recently used are closed first). */
export const openSegmentsMax = 64;

/** Initial size of the in-memory buffer that collects appends before they are written. */
export const writeBufferBytesInitial = 1 * MiB;

/** Appends collected (in bytes) before a write is forced even while the event loop is still busy. */
export const writeBufferBytesFlush = 1 * MiB;

/** Buffered durability: bytes acknowledged but not yet written, past which appends wait for their write. */
export const bufferedBytesMax = 16 * MiB;

/** How often a read-only log looks for a writer's new records while a live stream waits (fs.watch does most). */
export const followIntervalMs = 250;

/** Records handed to a view's `apply` at once while it catches up, unless the view asks for another size. */
export const viewBatchRecords = 1000;

/** The index views' batch: each batch is one LMDB transaction (synced at checkpoints, F-99); a smaller batch keeps fewer records alive for the collector. */
export const indexBatchRecords = 2_000;

/** While a view catches up, its state is checkpointed after this many records… */
export const viewCheckpointRecords = 100_000;

/** …or this much time, whichever comes first, so a rebuild killed half-way resumes near where it stopped. */
export const viewCheckpointMs = 2000;

/** A caught-up view is checkpointed once it has been idle this long (and when it closes). */
export const viewCheckpointIdleMs = 1000;

/** Records per append when `sluice import` or `sluice export` copies a log: one write each, few promises. */
export const importBatchRecords = 4096;

/**
 * Value bytes per append when `sluice import` or `sluice export` copies a log, whatever the count: large records
 * would otherwise make a batch of `importBatchRecords` exceed `batchBytesMax`. A quarter of that limit, so that the
 * record that crosses the budget (at most `valueBytesMax`) and the frames' overhead still fit.
 */
export const importBatchBytes = 64 * MiB;

/**
 * In `sluice/flume`, a view's stream of records ends only when the database ends it. An unexpected end (the sink
 * finished, or the log's stream failed) restarts it, and a failed stream first rebuilds the view. This many
 * restarts in a row, without the view getting further than at the previous one, stop the view instead: a view
 * that cannot take a record would otherwise be rebuilt forever (as flumedb does).
 */
export const viewRestartsMax = 3;

/** Bytes read per system call by `check` and `recover`: reads this large keep a whole-log scan near memory speed. */
export const checkChunkBytes = 4 * MiB;

/** The most problems a `check` report lists; further ones are only counted (a log of garbage would list millions). */
export const checkProblemsMax = 1000;

/** Bytes copied per read and write by `backup` and `restore`. */
export const copyChunkBytes = 1 * MiB;

/**
 * Compaction covers dropped records with skip frames of at most this size (F-64): each pins only its first 32
 * and last 4 bytes on disk, and a scan checksums its zeros, so a megabyte keeps both costs small.
 */
export const compactionSkipBytesMax = 1 * MiB;

/**
 * The mode of every file Sluice creates (segments, journals, locks, quarantine, view state, LMDB files, backups,
 * exports): owner-only. Directories get the same bits plus search where read is allowed (0o600 → 0o700). The
 * `fileMode` option of `FileLog.open`, `FlumeOffsetLog.open` and `Sluice.open` widens it (e.g. 0o640).
 */
export const fileModeDefault = 0o600;

/** The most offsets one `delete` call takes (a `RangeError` beyond): its journal entries stay bounded (F-97). */
export const deleteRecordsMax = 1_000_000;

/**
 * Format (F-97): the largest DELETES journal read; a larger one is damage, not an allocation. Two deletions'
 * worth of entries (16 bytes each): a journal only outlives its deletion when that deletion failed.
 */
export const deletesJournalBytesMax = 2 * 16 * deleteRecordsMax;

/** Format (F-96): the largest view state file read; a larger one is discarded (the view rebuilds), never allocated. */
export const stateFileBytesMax = 512 * MiB;
