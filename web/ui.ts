/** Small DOM helpers shared by the demo's panels: status lines and the page's error box. */

export function $(selector: string, root: ParentNode = document): HTMLElement {
  const el = root.querySelector<HTMLElement>(selector);
  if (!el) throw new Error(`demo page: element ${selector} is missing from index.html`);
  return el;
}

export function setStatus(el: HTMLElement, text: string, busy = false): void {
  el.textContent = text;
  el.classList.toggle('busy', busy);
}

/**
 * Shows an error in the page (not only in the console): in `panel`'s own error line, right
 * under its status, where the user is looking; errors of no panel (uncaught ones, the device)
 * go to the box at the top. Repeated messages are shown once.
 */
export function showError(where: string, err: unknown, panel?: HTMLElement): void {
  const msg = err instanceof Error ? err.message : String(err);
  const text = `${where}: ${msg}`;
  console.error(text, err);
  if (panel) {
    let line = panel.querySelector<HTMLElement>(':scope > .panel-error');
    if (!line) {
      const el = Object.assign(document.createElement('p'), { className: 'panel-error' });
      el.setAttribute('role', 'alert');
      el.dataset.testid = 'panel-error';
      const dismiss = Object.assign(document.createElement('button'), { type: 'button', className: 'dismiss secondary', textContent: 'Dismiss' });
      dismiss.dataset.testid = 'panel-error-dismiss';
      dismiss.addEventListener('click', () => { el.hidden = true; });
      el.append(document.createElement('span'), dismiss);
      const status = panel.querySelector(':scope > .status');
      if (status) status.after(el);
      else panel.append(el);
      line = el;
    }
    line.querySelector('span')!.textContent = text;
    line.hidden = false;
    return;
  }
  const box = $('#errors');
  if ([...box.querySelectorAll('p')].some((p) => p.textContent === text)) return;
  if (!box.querySelector('button.dismiss')) {
    const clear = Object.assign(document.createElement('button'), { type: 'button', className: 'dismiss secondary', textContent: 'Clear' });
    clear.addEventListener('click', () => {
      box.replaceChildren();
      box.hidden = true;
    });
    box.append(clear);
  }
  const p = document.createElement('p');
  p.textContent = text;
  box.append(p);
  box.hidden = false;
}

/** Hides a panel's error line (when its next job starts). */
export function clearPanelError(panel: HTMLElement): void {
  const line = panel.querySelector<HTMLElement>(':scope > .panel-error');
  if (line) line.hidden = true;
}

/** Offers `data` as a download named `name`. */
export function download(name: string, data: Uint8Array | string, type: string): void {
  const blob = new Blob([typeof data === 'string' ? data : data.slice().buffer as ArrayBuffer], { type });
  const url = URL.createObjectURL(blob);
  const a = Object.assign(document.createElement('a'), { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** Routes uncaught errors and rejected promises to the error box. */
export function catchUncaught(): void {
  addEventListener('error', (ev) => showError('Uncaught error', ev.error ?? ev.message));
  addEventListener('unhandledrejection', (ev) => showError('Unhandled rejection', ev.reason));
}

export function ms(t: number): string {
  return t >= 1000 ? `${(t / 1000).toFixed(2)} s` : `${t.toFixed(1)} ms`;
}

/** Shows a <progress> at done / total (indeterminate when total is 0), or hides it with null. */
export function setProgress(el: HTMLProgressElement, done: number | null, total = 0): void {
  if (done === null) {
    el.hidden = true;
    return;
  }
  el.hidden = false;
  if (total > 0) {
    el.max = total;
    el.value = Math.min(done, total);
  } else el.removeAttribute('value');
}

/** Rows of a <dl class="facts">. */
export function setFacts(dl: HTMLElement, rows: readonly (readonly [string, string])[]): void {
  dl.replaceChildren(...rows.flatMap(([k, v]) => {
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.textContent = v;
    return [dt, dd];
  }));
  dl.hidden = rows.length === 0;
}

/** A section's job state for tests and styling: idle, running, done or error. */
export function setState(section: HTMLElement, state: 'idle' | 'running' | 'done' | 'error'): void {
  section.dataset.state = state;
  // A new job starts: the last one's error no longer describes the panel.
  if (state === 'running') clearPanelError(section);
}

/**
 * Lets the browser paint (progress, partial results) between chunks of long work. A timer, not
 * requestAnimationFrame, so a job keeps going while its tab is in the background.
 */
export function yieldToPage(): Promise<void> {
  return new Promise((r) => setTimeout(r, 0));
}

/**
 * Marks a panel's results stale once the model or its adapter changes after they were made
 * (the `.result` elements dim and the status says why), so nothing shown passes for what the
 * current model computes.
 */
export class StaleMark {
  private madeAt: number | null = null;

  constructor(private readonly app: { version: number }, private readonly section: HTMLElement, private readonly status: HTMLElement, private readonly what: string) {}

  /** The results now shown belong to the current model state. */
  fresh(): void {
    this.madeAt = this.app.version;
    this.section.classList.remove('stale');
  }

  /** Call on every app change. */
  check(): void {
    if (this.madeAt === null || this.madeAt === this.app.version || this.section.classList.contains('stale')) return;
    this.section.classList.add('stale');
    setStatus(this.status, `The ${this.what} below came from the model as it was before a model or adapter change: run it again for the current one.`);
  }
}
