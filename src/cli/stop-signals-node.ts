/**
 * Node-only: how a long CLI run is asked to stop. SIGINT, SIGTERM and SIGHUP, and the death of the
 * user-facing parent process (the CLI runs as a filtered child, see dawn-quiet-node.ts), all ask a
 * run to finish its step, save and exit. Once a stop has begun, every later signal is answered
 * until the process exits: removing the handlers would leave a window in which a late signal's
 * default action kills the process mid-save or turns a clean exit into death by signal.
 */

export const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/** Why a run was asked to stop: a signal, or the parent that launched this child is gone. */
export type StopCause = NodeJS.Signals | 'parent-exit';

const SIGNAL_NUMBERS: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 };

/** The shell's exit code for a run that stopped cleanly on `cause`: 128 + the signal number. */
export function stopExitCode(cause: StopCause): number {
  if (cause === 'parent-exit') return 129;
  return 128 + (SIGNAL_NUMBERS[cause] ?? 2);
}

/** How a stop cause reads in a message. */
export function stopName(cause: StopCause): string {
  return cause === 'parent-exit' ? 'the launching process exited' : cause;
}

export interface StopHandlers {
  /** The first request: the run should wind down. */
  first(cause: StopCause): void;
  /** Every later request, until exit: answered, never obeyed. */
  repeat(cause: StopCause): void;
}

const active = new Set<StopRequests>();
let stopBegun = false;

/**
 * Ends the process now when a stop was requested. A natural exit closes Node's signal handles
 * while it tears down, and a signal landing in that window takes its default action: death by
 * signal after a clean stop. process.exit leaves the handlers installed until the very end.
 */
export function exitIfStopped(): void {
  if (stopBegun) process.exit(process.exitCode ?? 0);
}

/** Stop requests for one run, from the moment it is constructed. */
export class StopRequests {
  private causeSeen: StopCause | null = null;
  private readonly listener = (sig: NodeJS.Signals) => this.request(sig);

  constructor(private readonly handlers: StopHandlers) {
    for (const s of STOP_SIGNALS) process.on(s, this.listener);
    active.add(this);
  }

  get requested(): boolean {
    return this.causeSeen !== null;
  }

  get cause(): StopCause | null {
    return this.causeSeen;
  }

  request(cause: StopCause): void {
    if (this.causeSeen !== null) this.handlers.repeat(cause);
    else {
      this.causeSeen = cause;
      stopBegun = true;
      this.handlers.first(cause);
    }
  }

  /**
   * The run is over. Without a stop request the signals' default actions come back; after one,
   * the handlers stay until the process exits, so a late signal cannot kill the exit.
   */
  dispose(): void {
    if (this.causeSeen !== null) return;
    for (const s of STOP_SIGNALS) process.removeListener(s, this.listener);
    active.delete(this);
  }
}

let watching = false;

/**
 * In the filtered child: when the parent's IPC channel closes (the parent was killed, even with
 * SIGKILL), a run that can stop is asked to, as if by SIGHUP; otherwise the child exits at once.
 * Either way it does not go on working for nobody, re-parented to init.
 */
export function stopWhenParentExits(): void {
  if (watching || !process.channel) return;
  watching = true;
  process.on('disconnect', () => {
    // Nobody reads our stderr any more: writes would fail with EPIPE and throw.
    process.stderr.on('error', () => {});
    process.stdout.on('error', () => {});
    if (active.size === 0) process.exit(stopExitCode('parent-exit'));
    for (const r of active) r.request('parent-exit');
  });
  // The channel exists only to notice the parent's death; it must not keep this process alive.
  process.channel.unref();
}
