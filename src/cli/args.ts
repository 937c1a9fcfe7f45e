/**
 * A small declarative flag parser shared by the CLIs: typed values, repeatable flags, defaults,
 * `--help` text generated from the same table, and errors that name the flag.
 */

import { relaunchWithoutDawnWarnings } from './dawn-quiet-node.js';
import { exitIfStopped } from './stop-signals-node.js';

export type FlagKind = 'string' | 'number' | 'int' | 'boolean';

export interface FlagSpec {
  kind: FlagKind;
  help: string;
  /** May be given several times; the value is an array. */
  repeat?: boolean;
  default?: string | number | boolean;
  /**
   * A string flag that also takes the words after its value up to the next flag, joined by
   * spaces (`--select lr=1e-3,2e-3 lambda=0.3,0.5`).
   */
  words?: boolean;
  /** Shown in --help instead of the kind, e.g. "DIR". */
  meta?: string;
  /** Bounds of a number or int flag, checked at parse time: min and max inclusive, above exclusive. */
  min?: number;
  max?: number;
  above?: number;
}

export type FlagTable = Record<string, FlagSpec>;

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Runs `fn`, turning a RangeError it throws (a bad value for a flag) into a usage error (exit 2). */
export function asUsage<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof RangeError) throw new UsageError(e.message);
    throw e;
  }
}

export type ParsedFlags = Record<string, string | number | boolean | (string | number)[] | undefined>;

function convert(flag: string, spec: FlagSpec, raw: string): string | number {
  if (spec.kind === 'string') return raw;
  const v = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(v)) throw new UsageError(`--${flag}: expected a number, got ${JSON.stringify(raw)}`);
  if (spec.kind === 'int' && !Number.isSafeInteger(v)) {
    throw new UsageError(`--${flag}: expected an integer${Number.isInteger(v) ? ` below 2^53` : ''}, got ${JSON.stringify(raw)}`);
  }
  if (spec.min !== undefined && v < spec.min) throw new UsageError(`--${flag}: must be at least ${spec.min}, got ${raw}`);
  if (spec.max !== undefined && v > spec.max) throw new UsageError(`--${flag}: must be at most ${spec.max}, got ${raw}`);
  if (spec.above !== undefined && !(v > spec.above)) throw new UsageError(`--${flag}: must be greater than ${spec.above}, got ${raw}`);
  return v;
}

/** Parses `argv` (without node and script). Unknown flags and stray words are errors. */
export function parseFlags(argv: readonly string[], table: FlagTable): ParsedFlags {
  const out: ParsedFlags = {};
  for (const [name, spec] of Object.entries(table)) {
    if (spec.repeat) out[name] = [];
    else if (spec.default !== undefined) out[name] = spec.default;
    else if (spec.kind === 'boolean') out[name] = false;
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument ${JSON.stringify(arg)} (flags start with --; see --help)`);
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const spec = table[name];
    if (!spec) throw new UsageError(`unknown flag --${name} (see --help)`);
    if (spec.kind === 'boolean') {
      if (eq >= 0) {
        const v = arg.slice(eq + 1);
        if (v !== 'true' && v !== 'false') throw new UsageError(`--${name}: expected true or false, got ${JSON.stringify(v)}`);
        out[name] = v === 'true';
      } else {
        out[name] = true;
      }
      continue;
    }
    let raw: string;
    if (eq >= 0) raw = arg.slice(eq + 1);
    else {
      if (i + 1 >= argv.length) throw new UsageError(`--${name} needs a value`);
      raw = argv[++i];
    }
    if (spec.words) while (i + 1 < argv.length && !argv[i + 1].startsWith('--')) raw += ` ${argv[++i]}`;
    const v = convert(name, spec, raw);
    if (spec.repeat) (out[name] as (string | number)[]).push(v);
    else out[name] = v;
  }
  return out;
}

/** The --help text: usage line, then one line per flag. */
export function helpText(usage: string, about: string, table: FlagTable): string {
  const rows = Object.entries(table).map(([name, s]) => {
    const meta = s.kind === 'boolean' ? '' : ` ${s.meta ?? s.kind.toUpperCase()}`;
    const extra = [s.repeat ? 'repeatable' : '', s.default !== undefined && s.kind !== 'boolean' ? `default ${s.default}` : ''].filter(Boolean).join('; ');
    return [`  --${name}${meta}`, `${s.help}${extra ? ` (${extra})` : ''}`];
  });
  const w = Math.max(...rows.map((r) => r[0].length)) + 2;
  return `${usage}\n\n${about}\n\n${rows.map(([a, b]) => a.padEnd(w) + b).join('\n')}\n`;
}

const VERBOSE: FlagSpec = { kind: 'boolean', help: "also show Dawn's own start-up warnings (hidden otherwise by running the CLI as a filtered child)" };

/**
 * Runs a CLI's main: --help prints the help; a thrown error becomes one line on stderr and exit
 * code 1 (2 for usage errors), with the stack only when DEBUG is set.
 */
export async function runCli(name: string, usage: string, about: string, table: FlagTable, main: (flags: ParsedFlags) => Promise<void>): Promise<void> {
  const argv = process.argv.slice(2);
  const flags: FlagTable = { ...table, verbose: table.verbose ?? VERBOSE };
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(helpText(usage, about, flags));
    return;
  }
  try {
    if (await relaunchWithoutDawnWarnings(argv)) return;
    await main(parseFlags(argv, flags));
    exitIfStopped();
  } catch (e) {
    const err = e as Error;
    process.stderr.write(`${name}: ${err.message ?? String(e)}\n`);
    if (process.env.DEBUG && err.stack) process.stderr.write(`${err.stack}\n`);
    process.exitCode = err instanceof UsageError ? 2 : 1;
    exitIfStopped();
  }
}
