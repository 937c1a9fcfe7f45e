/**
 * Node-only: keeps Dawn's two start-up lines ("maxDynamic...PerPipelineLayout artificially
 * reduced ...") off the user's terminal. Dawn writes them with fprintf from C++ while the adapter
 * is requested (on drivers reporting more dynamic buffers than Dawn's cap of 16: lavapipe, RADV),
 * so nothing in JavaScript can intercept them in-process. The CLI therefore runs itself once more
 * as a child with stderr piped through a filter that drops exactly those lines; `--verbose`
 * (or NEGCLIP_DAWN_WARNINGS=1) runs it directly instead.
 */
import { spawn } from 'node:child_process';
import { STOP_SIGNALS, stopWhenParentExits } from './stop-signals-node.js';

const CHILD_ENV = 'NEGCLIP_FILTERED_CHILD';
const TTY_ENV = 'NEGCLIP_STDERR_TTY';
const DAWN_LINE = /^Warning: maxDynamic(?:Uniform|Storage)BuffersPerPipelineLayout artificially reduced from \d+ to \d+ to fit dynamic offset allocation limit\.\r?$/;
const PREFIX = 'Warning: maxDynamic';
// Taken when this module loads, before a CLI consumes a subcommand word (data.js export).
const LAUNCH_ARGS = process.argv.slice(2);

/** Whether stderr reaches a terminal, also when this process is the filtered child. */
export function stderrIsTty(): boolean {
  return Boolean(process.stderr.isTTY) || process.env[TTY_ENV] === '1';
}

/**
 * Drops Dawn's limit lines from a stream of stderr chunks and passes everything else on at once;
 * only a partial line that could still become one of those lines is held back.
 */
export class DawnLineFilter {
  private held = '';

  constructor(private readonly write: (s: string) => void) {}

  push(chunk: string): void {
    let text = this.held + chunk;
    this.held = '';
    let out = '';
    for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n')) {
      const line = text.slice(0, nl);
      if (!DAWN_LINE.test(line)) out += `${line}\n`;
      text = text.slice(nl + 1);
    }
    const mayBecomeDawnLine = text.length > 0 && (PREFIX.startsWith(text) || text.startsWith(PREFIX));
    if (mayBecomeDawnLine) this.held = text;
    else out += text;
    if (out) this.write(out);
  }

  end(): void {
    if (this.held && !DAWN_LINE.test(this.held)) this.write(this.held);
    this.held = '';
  }
}

/**
 * In the user's process: runs this CLI as a filtered child and resolves to true once the child
 * has ended (its exit code becomes ours). Resolves to false where the CLI should just run here:
 * inside the child, with --verbose, or with NEGCLIP_DAWN_WARNINGS=1.
 */
export async function relaunchWithoutDawnWarnings(argv: readonly string[]): Promise<boolean> {
  if (process.env[CHILD_ENV] === '1') {
    stopWhenParentExits();
    return false;
  }
  if (process.env.NEGCLIP_DAWN_WARNINGS === '1' || argv.includes('--verbose')) return false;
  const script = process.argv[1];
  if (!script) return false;
  const env = { ...process.env, [CHILD_ENV]: '1', ...(process.stderr.isTTY ? { [TTY_ENV]: '1' } : {}) };
  // The IPC channel carries no messages: its closing tells the child that this process is gone.
  const child = spawn(process.execPath, [...process.execArgv, script, ...LAUNCH_ARGS], { stdio: ['inherit', 'inherit', 'pipe', 'ipc'], env });
  const filter = new DawnLineFilter((s) => process.stderr.write(s));
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (s: string) => filter.push(s));
  // At a terminal, Ctrl-C reaches the whole foreground process group, the child included;
  // forwarding it as well would deliver it twice (train.js stops on the first, answers the second).
  // Signals sent to this process alone (kill, a supervisor, a script) are passed on.
  const interactive = Boolean(process.stdin.isTTY);
  let forwarded = false;
  const forward = (sig: NodeJS.Signals) => () => {
    forwarded = true;
    if (sig === 'SIGINT' && interactive) return;
    if (child.exitCode === null && child.signalCode === null) child.kill(sig);
  };
  const handlers = STOP_SIGNALS.map((s) => [s, forward(s)] as const);
  for (const [s, h] of handlers) process.on(s, h);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((done, fail) => {
    child.on('error', fail);
    child.on('close', (c, s) => done([c, s]));
  });
  filter.end();
  if (signal) {
    // The child died by a signal: so do we, as a shell expects of the command it ran.
    for (const [s, h] of handlers) process.removeListener(s, h);
    process.kill(process.pid, signal);
  }
  process.exitCode = code ?? 1;
  // Once a signal was passed on, the handlers stay until we exit, and we exit at once: a later
  // signal must not turn the child's clean stop (exit 130/143) into our death by signal, which a
  // natural exit allows while it closes the signal handles.
  if (forwarded) process.exit(process.exitCode);
  for (const [s, h] of handlers) process.removeListener(s, h);
  return true;
}
