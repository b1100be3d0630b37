import { check, type CheckProblem, type CheckReport } from '../../ops/check.js';
import type { CommandLine } from '../args.js';
import { usageText, type Command, type CommandIo } from '../command.js';
import { exitStatus } from '../report.js';
import { chainKeyOf } from '../log-format.js';
import { workersMax } from '../../ops/verify-chain.js';
import { runInterruptible } from './interrupt.js';

const usage = usageText(
  'check <dir> [--json] [--verify-chain [--head <hash>] [--chain-key-file <path>] [--workers <n>]]',
  'Verifies the log in <dir> without modifying it: every segment header, every record (framing, offset and\n' +
    'checksum), that segments follow each other without a gap, how the last one ends, the LOCK file, and each\n' +
    "view's state against the log. Prints each problem (file, position, what) and a summary; a progress bar goes\n" +
    'to stderr. Works while a writer appends. Exit status 0 when healthy (warnings only: what a crash leaves and\n' +
    'the next open repairs), 1 when damage was found (see `sluice recover`) or the check failed.',
  [
    ['--json', 'print the report as one JSON object'],
    ['--verify-chain', 'also recompute the chain of a tamper-evident log and report its first broken link'],
    ['--head <hash>', 'a head published earlier (64 hex digits): an error unless some record has this link'],
    ['--chain-key-file <path>', 'the key of a keyed chain (hmac-sha256), to verify it: 64 hex digits'],
    ['--workers <n>', 'threads that check digests beside the chain walk (default: one per core but one, at most 4, for logs over 16 MiB; 0: none)'],
  ],
);

/** `sluice check`: verify a log directory. */
export const checkCommand: Command = {
  name: 'check',
  summary: 'verify every record, segment and view state of a log (exit status 1 on damage)',
  spec: {
    usage,
    flags: {
      json: { type: 'boolean' },
      'verify-chain': { type: 'boolean' },
      head: { type: 'string' },
      workers: { type: 'string' },
      'chain-key-file': { type: 'string' },
    },
    positionals: ['dir'],
  },
  run,
};

async function run(line: CommandLine, io: CommandIo): Promise<number> {
  const dir = line.positional(0);
  const verifyChain = line.boolean('verify-chain');
  const head = line.string('head');
  if (head !== undefined && !verifyChain) throw line.usageError('--head goes with --verify-chain');
  if (head !== undefined && !/^[0-9a-fA-F]{64}$/.test(head)) throw line.usageError('--head must be 64 hexadecimal digits');
  const workers = line.integer('workers');
  if (workers !== undefined && !verifyChain) throw line.usageError('--workers goes with --verify-chain');
  if (workers !== undefined && workers > workersMax) throw line.usageError(`--workers must be at most ${workersMax}`);
  if (line.string('chain-key-file') !== undefined && !verifyChain) throw line.usageError('--chain-key-file goes with --verify-chain');
  const chainKey = chainKeyOf(line);
  const report = await runInterruptible((context) =>
    check(dir, {
      ...context,
      ...(verifyChain ? { verifyChain } : {}),
      ...(head === undefined ? {} : { head }),
      ...(workers === undefined ? {} : { workers }),
      ...chainKey,
    }),
  );
  const lines = line.boolean('json') ? [JSON.stringify(report)] : describeReport(report);
  for (const text of lines) await io.output.writeLine(text);
  return report.healthy ? exitStatus.ok : exitStatus.failed;
}

/** One line per problem, then a summary. */
function describeReport(report: CheckReport): string[] {
  const lines = report.problems.map(describeProblem);
  if (report.problemsOmitted > 0) lines.push(`… and ${report.problemsOmitted} more problems`);
  const verdict = report.healthy ? 'healthy' : 'DAMAGED';
  const counts = `${report.errors} errors, ${report.warnings} warnings`;
  lines.push(
    `${report.dir}: ${verdict} (${counts}): ${report.segments} segments, ${report.records} records, ` +
      `${report.bytes} bytes, last offset ${report.lastOffset}, ${report.views.length} views` +
      (report.writer === 'running' ? ', checked while a writer runs' : ''),
  );
  const chain = report.chain;
  if (chain !== null && chain.algorithm !== null) {
    const from = chain.anchor === null ? '' : ` from offset ${chain.anchor.offset}`;
    const verdict = chain.broken === null ? 'verified' : `BROKEN at offset ${chain.broken.offset}`;
    lines.push(`chain (${chain.algorithm}): ${verdict}: ${chain.records} links${from}` + (chain.head === null ? '' : `, head ${chain.head.offset} ${chain.head.hash}`));
    if (chain.stoppedBy !== null) lines.push(`chain: stopped at damage: ${chain.stoppedBy}`);
    if (chain.publishedHeadOffset !== null) lines.push(`chain: the published head is the link of offset ${chain.publishedHeadOffset}`);
  }
  return lines;
}

function describeProblem(problem: CheckProblem): string {
  const offset = problem.offset === null ? '' : ` (offset ${problem.offset})`;
  return `${problem.severity}  ${problem.kind}  ${problem.file}:${problem.position}${offset}  ${problem.message}`;
}
