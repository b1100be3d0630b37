import type { MsgHdrs } from '@nats-io/transport-node';

/**
 * How a batch of several records stays atomic in a stream that stores one message at a time (FORMAT.md J-10…J-16).
 *
 * Every message of a batch of `n ≥ 2` records carries the header `Sluice-Batch: <index>/<n>/<batch id>`; the
 * batch id is the message id of its first message (unique in the stream). A single record carries none, so a
 * single append costs what it always did and streams written before batches existed read as they did.
 *
 * The writer stores a batch's messages at consecutive sequences, each expecting its predecessor (`StreamWriter`),
 * so the message with index `n − 1` can only be stored once all the others are, right before it. Hence the rule
 * every reader applies: **a message of a batch is a record if and only if the message at sequence
 * `s − index + n − 1` (its batch's last) is stored and carries `n − 1`, `n` and the same batch id.** Until then
 * the batch is pending (its writer may still finish it) and no reader shows it; once any other message follows
 * one of its messages, it can never complete (its writer died or moved it after the other writer's message) and
 * every reader skips it, forever. `since` never points into such a batch.
 */

export const batchHeader = 'Sluice-Batch';

/** The place of one message in its batch. */
export interface BatchPart {
  readonly index: number;
  readonly count: number;
  readonly id: string;
}

/** More records than this in one batch are refused: the header's numbers stay small, a batch bounded. */
export const batchRecordsMax = 1_000_000;

const partPattern = /^(0|[1-9]\d{0,6})\/([1-9]\d{0,6})\/([A-Za-z0-9_.-]{1,64})$/;

/** The `Sluice-Batch` header's value for `part`. */
export function batchHeaderValue(part: BatchPart): string {
  return `${part.index}/${part.count}/${part.id}`;
}

/**
 * The batch part a message's headers name; `undefined` for a message without the header (a single record);
 * `null` for a header that is not a valid part (such a message is not a Sluice record: `fieldsOf` says so).
 */
export function batchPartOf(headers: MsgHdrs | undefined): BatchPart | undefined | null {
  if (headers === undefined || !headers.has(batchHeader)) return undefined;
  const match = partPattern.exec(headers.get(batchHeader));
  if (match === null) return null;
  const index = Number(match[1]);
  const count = Number(match[2]);
  if (count < 2 || index >= count || count > batchRecordsMax) return null;
  return { index, count, id: match[3] as string };
}

/** True when `part` is the last message of its batch, or no batch (so a record as soon as it is stored). */
export function completesItself(part: BatchPart | undefined | null): boolean {
  return part === undefined || part === null || part.index === part.count - 1;
}

/** The sequence of the last message of the batch of `part`, stored at `sequence`. */
export function lastSequenceOf(part: BatchPart, sequence: number): number {
  return sequence - part.index + part.count - 1;
}

/** A message as every reader sees it: its sequence and headers (a headers-only consumer's messages will do). */
export interface SequencedMessage {
  readonly seq: number;
  readonly headers?: MsgHdrs | undefined;
}

/**
 * Applies the batch rule to messages read in stream order (gaps allowed: deleted messages), from any sequence on,
 * even the middle of a batch: `push` returns the messages that are records now, in order. The messages of a batch
 * are held until its last one arrives; any other message drops them (the batch can never complete).
 */
export class BatchAssembler<M extends SequencedMessage> {
  #held: M[] = [];
  #part: BatchPart | undefined;
  /** The sequence the batch's last message must have. */
  #lastSequence = 0;

  /** True while messages of a batch whose last message has not arrived yet are held. */
  get holding(): boolean {
    return this.#held.length > 0;
  }

  /** The sequence of the first message held (meaningful while `holding`). */
  get heldFrom(): number {
    return this.#held[0]?.seq ?? 0;
  }

  push(message: M): readonly M[] {
    const part = batchPartOf(message.headers);
    if (this.#held.length > 0 && !this.#continues(part, message.seq)) this.#drop();
    if (completesItself(part)) {
      if (this.#held.length === 0) return [message];
      const records = this.#held;
      records.push(message);
      this.#drop();
      return records;
    }
    const current = part as BatchPart;
    if (this.#held.length === 0) {
      this.#part = current;
      this.#lastSequence = lastSequenceOf(current, message.seq);
    }
    this.#held.push(message);
    return [];
  }

  /**
   * No message is stored up to `sequence` beyond those pushed (an `Absence`): a held batch whose last message
   * would be there can never complete, and is dropped.
   */
  absentThrough(sequence: number): void {
    if (this.#held.length > 0 && this.#lastSequence <= sequence) this.#drop();
  }

  /** True when `part` at `sequence` belongs to the batch being held. */
  #continues(part: BatchPart | undefined | null, sequence: number): boolean {
    const held = this.#part;
    return (
      part !== undefined &&
      part !== null &&
      held !== undefined &&
      part.id === held.id &&
      part.count === held.count &&
      lastSequenceOf(part, sequence) === this.#lastSequence
    );
  }

  #drop(): void {
    this.#held = [];
    this.#part = undefined;
  }
}
