/**
 * Runs of the miniature (fine-tunes, evaluations), at most `n` at a time: what the default run
 * and `--select` share. Browser-safe (no Node imports).
 */

/**
 * Runs the tasks, at most `n` at a time, in order; results in task order. Each task is told
 * whether other tasks go on beside it (`shared`): every task but the last, when n > 1 (the last
 * one finishes alone once the others are done, so it may use the whole machine).
 */
export async function pool<T>(n: number, tasks: readonly ((shared: boolean) => Promise<T>)[]): Promise<T[]> {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`pool: n must be a positive integer, got ${n}`);
  const out: T[] = new Array(tasks.length);
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const i = next++;
      out[i] = await tasks[i]!(n > 1 && i < tasks.length - 1);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, tasks.length) }, worker));
  return out;
}
