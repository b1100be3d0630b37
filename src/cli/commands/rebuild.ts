import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Sluice } from '../../db/sluice.js';
import { SluiceError } from '../../errors.js';
import type { View } from '../../views/view.js';
import type { CommandLine } from '../args.js';
import { usageText, type Command, type CommandIo } from '../command.js';
import { ProgressBar } from '../progress-bar.js';
import { exitStatus } from '../report.js';

const usage = usageText(
  'rebuild <dir> --views <module> [--view <name>]',
  'Rebuilds the views of the database in <dir> from the start of its log, showing their progress on stderr.\n' +
    'Views are code: <module> is a JavaScript module exporting them as `views` (or as its default export),\n' +
    'an object from view name to view, as passed to Sluice.open(dir, { views }).',
  [
    ['--views <module>', 'the module that exports the views'],
    ['--view <name>', 'rebuild only this view'],
  ],
);

/** `sluice rebuild`: rebuild views with a progress bar. */
export const rebuildCommand: Command = {
  name: 'rebuild',
  summary: 'rebuild the views of a database from its log, with a progress bar',
  spec: { usage, flags: { views: { type: 'string' }, view: { type: 'string' } }, positionals: ['dir'] },
  run,
};

async function run(line: CommandLine, io: CommandIo): Promise<number> {
  const dir = line.positional(0);
  const modulePath = line.string('views');
  if (modulePath === undefined) throw line.usageError('--views <module> is required');
  const views = await loadViews(modulePath);
  const only = line.string('view');
  if (only !== undefined && !(only in views)) {
    throw new SluiceError('INVALID_INPUT', `${modulePath} has no view named ${only}`);
  }
  const db = await Sluice.open(dir, { views });
  const bar = new ProgressBar(process.stderr);
  db.on('progress', (progress) => bar.update(progress));
  db.on('report', ({ view, message }) => process.stderr.write(`${view}: ${message}\n`));
  let failed: Error | undefined;
  db.on('view-error', ({ view, offset, error }) => {
    failed ??= new SluiceError('VIEW_FAILED', `view ${view} failed at offset ${offset}: ${error.message}`);
  });
  try {
    await db.rebuild(only);
    await db.ready(only);
  } finally {
    bar.done();
    await db.close();
  }
  if (failed !== undefined) throw failed;
  await io.output.writeLine(`rebuilt ${only ?? Object.keys(views).join(', ')} up to offset ${db.since}`);
  return exitStatus.ok;
}

async function loadViews(modulePath: string): Promise<Record<string, View<unknown>>> {
  let module: { views?: unknown; default?: unknown };
  try {
    module = (await import(pathToFileURL(resolve(modulePath)).href)) as { views?: unknown; default?: unknown };
  } catch (error) {
    throw new SluiceError('INVALID_INPUT', `cannot load ${modulePath}: ${(error as Error).message}`, { cause: error });
  }
  const views = module.views ?? module.default;
  if (typeof views !== 'object' || views === null || Object.keys(views).length === 0) {
    throw new SluiceError('INVALID_INPUT', `${modulePath} exports no views (export const views = { name: view })`);
  }
  return views as Record<string, View<unknown>>;
}
