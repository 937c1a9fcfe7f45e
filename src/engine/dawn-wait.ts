/**
 * How the host waits for Dawn without taking CPU from the device. dawn.node polls the device on
 * the JS thread (one setImmediate after another) for as long as any of its promises is pending;
 * on a CPU adapter (lavapipe) that takes a core from the threads doing the work. The pacer
 * sleeps on a timer through most of the shortest recent wait for the same kind of work, then
 * naps between Dawn's polls. Kept apart from the context: these are heuristics about Dawn's
 * event loop, not about encoding work.
 */

/** What a wait covers: a key naming the work, and the dispatch count when it began. */
export interface PendingWork {
  key: string;
  dispatches: number;
}

/** Kinds of work whose wait times are kept, and how many of each. */
const WAIT_KEYS = 256;
const WAIT_HISTORY = 3;
/** Recent waits this close together (max / min) count as steady work. */
const STEADY_RATIO = 1.3;
/** Share of the shortest recent wait slept on a timer before polling. */
const SLEEP_FRACTION = 0.8;
/** Below this a timer is too coarse to be worth it. */
const MIN_SLEEP_MS = 4;
/** Short waits spin (their latency matters more than the cycles). */
const SPIN_MS = 1;
/** Longest nap between two of Dawn's polls: the most a wait can overrun. */
const MAX_NAP_MS = 1;

let blockCell: Int32Array | null | undefined;

/**
 * A shared cell for Atomics.wait where the JS thread may block and dawn.node's polling is
 * possible (Node: setImmediate exists); null elsewhere, e.g. a browser's main thread.
 */
function napCell(): Int32Array | null {
  if (blockCell !== undefined) return blockCell;
  blockCell = null;
  if (typeof setImmediate !== 'function' || typeof SharedArrayBuffer !== 'function') return null;
  try {
    const cell = new Int32Array(new SharedArrayBuffer(4));
    Atomics.wait(cell, 0, 1, 0); // throws where the thread may not block
    blockCell = cell;
  } catch {
    // Leave the plain await.
  }
  return blockCell;
}

interface Waiter {
  /** When the wait began (ms, performance.now()). */
  t0: number;
  /** Counts a poll; true (and settles the waiter's promise) once its Dawn promise has settled. */
  poll(): boolean;
}

/** Waits in progress; one setImmediate loop polls them all and naps once per turn. */
const waiters = new Set<Waiter>();

/**
 * Settles like `p`, but once the wait (begun at `t0`) is SPIN_MS old, the thread sleeps
 * between two of dawn.node's polls (its setImmediate callbacks), for 1/8 of the time waited
 * so far (at most MAX_NAP_MS), instead of spinning. `polls` counts the checks made: 1 when
 * `p` had settled by the first.
 */
function napUntilSettled<T>(p: Promise<T>, cell: Int32Array, t0: number): Promise<{ value: T; polls: number }> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const mark = () => {
      settled = true;
    };
    p.then(mark, mark);
    let polls = 0;
    waiters.add({
      t0,
      poll: () => {
        polls++;
        if (settled) p.then((value) => resolve({ value, polls }), reject);
        return settled;
      },
    });
    if (waiters.size === 1) setImmediate(() => pollWaiters(cell));
  });
}

function pollWaiters(cell: Int32Array): void {
  let newest = -Infinity;
  for (const w of waiters) {
    if (w.poll()) waiters.delete(w);
    else newest = Math.max(newest, w.t0);
  }
  if (waiters.size === 0) return;
  // The newest wait sets the nap, so that a short wait is not held up by a long one.
  const waited = performance.now() - newest;
  if (waited >= SPIN_MS) Atomics.wait(cell, 0, 0, Math.min(MAX_NAP_MS, waited / 8));
  setImmediate(() => pollWaiters(cell));
}


/** Wait times per kind of work, and the sleep-then-nap wait built on them. */
export class WaitPacer {
  /** Recent wait times (ms) per kind of work; oldest kinds are dropped first. */
  private waitTimes = new Map<string, number[]>();
  /** Dispatches made before the last finished wait began: all done on the device. */
  dispatchesDone = 0;

  /**
   * Waits for a Dawn promise without taking CPU from the device. dawn.node polls the device
   * on the JS thread (one setImmediate after another) for as long as any of its promises is
   * pending, awaited or not; on a CPU adapter that takes a core from the threads doing the
   * work (2-3x slower on 2 cores). Where the thread may block (Node), it first sleeps on a
   * timer, with no promise pending, through most of the shortest recent wait for the same
   * work, then starts the promise and naps between Dawn's polls. Elsewhere (a browser, where
   * waiting costs nothing) it just awaits.
   */
  async wait<T>({ key, dispatches }: PendingWork, start: () => Promise<T>): Promise<T> {
    const cell = napCell();
    if (!cell) return start();
    const t0 = performance.now();
    const sleepMs = this.sleepEstimate(key);
    if (sleepMs > 0) await new Promise((r) => setTimeout(r, sleepMs));
    const { value, polls } = await napUntilSettled(start(), cell, t0);
    if (sleepMs > 0 && polls <= 1) {
      // Done before the timer fired: the work changed, so measure it afresh.
      this.waitTimes.delete(key);
    } else {
      this.recordWait(key, performance.now() - t0);
    }
    this.dispatchesDone = Math.max(this.dispatchesDone, dispatches);
    return value;
  }

  /**
   * How long to sleep before polling: most of the shortest recent wait for this work, once
   * its last few waits agree (work that alternates under one key never sleeps).
   */
  private sleepEstimate(key: string): number {
    const recent = this.waitTimes.get(key);
    if (!recent || recent.length < WAIT_HISTORY) return 0;
    const lo = Math.min(...recent);
    if (Math.max(...recent) > lo * STEADY_RATIO) return 0;
    const ms = lo * SLEEP_FRACTION;
    return ms >= MIN_SLEEP_MS ? ms : 0;
  }

  private recordWait(key: string, ms: number): void {
    let recent = this.waitTimes.get(key);
    if (!recent) {
      if (this.waitTimes.size >= WAIT_KEYS) this.waitTimes.delete(this.waitTimes.keys().next().value!);
      recent = [];
      this.waitTimes.set(key, recent);
    }
    recent.push(ms);
    if (recent.length > WAIT_HISTORY) recent.shift();
  }
}
