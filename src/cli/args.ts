import { parseArgs } from 'node:util';

/** A command-line mistake: the caller prints the message and the usage, and exits with status 2. */
export class UsageError extends Error {
  readonly usage: string;

  constructor(message: string, usage: string) {
    super(message);
    this.name = 'UsageError';
    this.usage = usage;
  }
}

/** The flags of a command, in the shape `util.parseArgs` takes (no `multiple`, no defaults). */
export type FlagSpec = Readonly<Record<string, { readonly type: 'string' | 'boolean'; readonly short?: string }>>;

/** What a command accepts: its help text, its flags and the names of its required positional arguments. */
export interface CommandSpec {
  readonly usage: string;
  readonly flags: FlagSpec;
  readonly positionals: readonly string[];
}

type FlagValues = Readonly<Record<string, string | boolean | undefined>>;

/**
 * A command's parsed arguments. Every accessor validates what it returns and throws `UsageError`, so a number
 * from the command line is never used before it is known to be an integer.
 */
export class CommandLine {
  readonly help: boolean;
  readonly #spec: CommandSpec;
  readonly #flags: FlagValues;
  readonly #positionals: readonly string[];

  private constructor(spec: CommandSpec, flags: FlagValues, positionals: readonly string[]) {
    this.#spec = spec;
    this.#flags = flags;
    this.#positionals = positionals;
    this.help = flags.help === true;
  }

  /**
   * Parses `args` strictly: unknown flags, missing flag values and a wrong number of positionals throw
   * `UsageError`. With `--help` the positionals are not checked, so `sluice get --help` works on its own.
   */
  static parse(args: readonly string[], spec: CommandSpec): CommandLine {
    let parsed: { values: FlagValues; positionals: string[] };
    try {
      const result = parseArgs({
        args: [...args],
        options: { ...spec.flags, help: { type: 'boolean', short: 'h' } },
        strict: true,
        allowPositionals: true,
      });
      parsed = { values: result.values, positionals: result.positionals };
    } catch (error) {
      // parseArgs reports usage mistakes as TypeErrors with ERR_PARSE_ARGS_* codes.
      const code = (error as NodeJS.ErrnoException).code;
      if (code?.startsWith('ERR_PARSE_ARGS_') !== true) throw error;
      throw new UsageError((error as Error).message, spec.usage);
    }
    // An empty path or number is a slip on the command line (an unset shell variable), not a value to pass on.
    const empty = parsed.positionals.indexOf('');
    if (empty >= 0 && parsed.values.help !== true) {
      throw new UsageError(`<${spec.positionals[empty] ?? empty}> must not be empty`, spec.usage);
    }
    // `--nats <urls>` names a log on NATS servers in place of the <dir> argument: the command reads <dir> as ''.
    const dirIndex = spec.positionals.indexOf('dir');
    if (typeof parsed.values.nats === 'string' && dirIndex >= 0 && parsed.positionals.length < spec.positionals.length) {
      parsed.positionals.splice(dirIndex, 0, '');
    }
    const line = new CommandLine(spec, parsed.values, parsed.positionals);
    if (line.help) return line;
    const expected = spec.positionals;
    if (parsed.positionals.length < expected.length) {
      throw line.usageError(`missing argument <${expected[parsed.positionals.length] ?? ''}>`);
    }
    if (parsed.positionals.length > expected.length) {
      throw line.usageError(`unexpected argument '${parsed.positionals[expected.length] ?? ''}'`);
    }
    return line;
  }

  /** A `UsageError` carrying this command's usage. */
  usageError(message: string): UsageError {
    return new UsageError(message, this.#spec.usage);
  }

  /** The positional argument at `index` (checked to exist by `parse`). */
  positional(index: number): string {
    const value = this.#positionals[index];
    if (value === undefined) throw this.usageError(`missing argument <${this.#spec.positionals[index] ?? index}>`);
    return value;
  }

  /** The positional argument at `index` as a non-negative safe integer. */
  integerPositional(index: number): number {
    return this.#toInteger(this.positional(index), `<${this.#spec.positionals[index] ?? index}>`);
  }

  /** The value of a string flag, or `undefined` when the flag is absent. */
  string(name: string): string | undefined {
    const value = this.#flags[name];
    if (value === undefined) return undefined;
    if (typeof value !== 'string') throw this.usageError(`--${name} needs a value`);
    return value;
  }

  boolean(name: string): boolean {
    return this.#flags[name] === true;
  }

  /** The value of a string flag as a non-negative safe integer, or `undefined` when the flag is absent. */
  integer(name: string): number | undefined {
    const value = this.#flags[name];
    if (value === undefined) return undefined;
    if (typeof value !== 'string') throw this.usageError(`--${name} needs a value`);
    return this.#toInteger(value, `--${name}`);
  }

  #toInteger(text: string, what: string): number {
    const value = /^\d+$/.test(text) ? Number(text) : NaN;
    if (!Number.isSafeInteger(value)) throw this.usageError(`${what} must be a non-negative integer, got '${text}'`);
    return value;
  }
}
