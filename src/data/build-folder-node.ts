/**
 * A data folder written as a whole (Node). `data.js build` writes into a hidden sibling of OUT
 * and moves the result into OUT only once every split is complete, so a build that fails (a full
 * disk, Ctrl-C, a bug) leaves OUT as it was: the earlier build, or nothing. A rebuild replaces
 * OUT's splits together: split folders of the earlier build that the new one does not write are
 * removed, so no stale validation/ outlives a `--split train` rebuild.
 *
 * The build id ties the parts together: dataset.json and every split's index.json carry it, and
 * the reader (dataset-node.ts) refuses a split whose id differs from its manifest's, which also
 * covers a crash halfway through the final moves.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { writeJsonAtomic } from '../io/atomic-write-node.js';
import { FileAccessError, describeFsError, describeMkdirError } from '../io/fs-errors-node.js';
import { DATASET_FILE, DATASET_FORMAT } from './dataset-node.js';
import { INDEX_FILE } from './shards.js';
import { SPLIT_NAMES } from './splits.js';

const TEMP_TAG = '.build-';

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class FolderBuild {
  private constructor(readonly out: string, readonly dir: string, readonly buildId: string) {}

  /**
   * Checks that OUT can take a build (before any work), removes temporary folders that killed
   * builds of OUT left, and makes the temporary folder with a manifest that says "incomplete".
   */
  static async start(out: string): Promise<FolderBuild> {
    const parent = dirname(out);
    const base = basename(out);
    if (existsSync(out)) {
      if (!statSync(out).isDirectory()) throw new Error(`--out ${out}: exists and is not a folder`);
      for (const s of SPLIT_NAMES) {
        const p = join(out, s);
        if (existsSync(p) && !existsSync(join(p, INDEX_FILE))) {
          throw new Error(`--out ${out}: ${s}/ is there but is not a split folder of an earlier build; move it away or choose another --out`);
        }
      }
    }
    try {
      await mkdir(parent, { recursive: true });
    } catch (e) {
      throw new Error(`--out ${out}: cannot create the folder ${parent} (${describeMkdirError(parent, e)})`);
    }
    // A build killed before its end leaves .OUT.build-PID-ID; one whose process is gone is litter.
    for (const name of readdirSync(parent)) {
      const m = name.startsWith(`.${base}${TEMP_TAG}`) ? /^(\d+)-/.exec(name.slice(base.length + 1 + TEMP_TAG.length)) : null;
      if (m && Number(m[1]) !== process.pid && !pidAlive(Number(m[1]))) await rm(join(parent, name), { recursive: true, force: true });
    }
    const buildId = randomUUID();
    const dir = join(parent, `.${base}${TEMP_TAG}${process.pid}-${buildId.slice(0, 8)}`);
    try {
      await mkdir(dir);
      await writeJsonAtomic(join(dir, DATASET_FILE), { format: DATASET_FORMAT, version: 1, buildId, complete: false, splits: {} });
    } catch (e) {
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
      throw new Error(`--out ${out}: cannot write in ${parent} (${describeFsError(e)})`);
    }
    return new FolderBuild(out, dir, buildId);
  }

  /**
   * Moves the finished build into OUT: the old split folders go first, then the new parts, and
   * dataset.json last (an atomic replace), so OUT's manifest names the new build only once all
   * of it is there.
   */
  async commit(): Promise<void> {
    try {
      await this.moveIn();
    } catch (e) {
      throw new FileAccessError(this.out, 'move the finished build in', e);
    }
  }

  private async moveIn(): Promise<void> {
    if (!existsSync(this.out)) {
      await rename(this.dir, this.out);
      return;
    }
    const trash = `${this.dir}.old`;
    await mkdir(trash);
    const parts = (await readdir(this.dir)).filter((n) => n !== DATASET_FILE);
    for (const s of SPLIT_NAMES) {
      if (existsSync(join(this.out, s))) await rename(join(this.out, s), join(trash, s));
    }
    for (const p of parts) {
      if (existsSync(join(this.out, p))) await rename(join(this.out, p), join(trash, p));
      await rename(join(this.dir, p), join(this.out, p));
    }
    await rename(join(this.dir, DATASET_FILE), join(this.out, DATASET_FILE));
    await rm(trash, { recursive: true, force: true });
    await rm(this.dir, { recursive: true, force: true });
  }

  /**
   * Removes the temporary folder after an error, which is returned naming the file under OUT
   * it was writing (OUT/train/shard-00003.nsh), not the temporary folder the user never chose.
   */
  async abandon(e: unknown): Promise<unknown> {
    await rm(this.dir, { recursive: true, force: true }).catch(() => undefined);
    if (e instanceof Error && e.message.includes(this.dir)) e.message = e.message.split(this.dir).join(this.out);
    return e;
  }
}
