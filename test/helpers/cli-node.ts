/** Running the built CLIs from tests (Node only). */
import { spawn } from 'node:child_process';

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node script ...args` without blocking, so that independent runs overlap. */
export function runNode(script: string, args: readonly string[]): Promise<CliResult> {
  return new Promise((done, fail) => {
    const child = spawn('node', [script, ...args]);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('error', fail);
    child.on('close', (status) => done({ status, stdout, stderr }));
  });
}
