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

/** Shows an error in the page (not only in the console); repeated messages are shown once. */
export function showError(where: string, err: unknown): void {
  const box = $('#errors');
  const msg = err instanceof Error ? err.message : String(err);
  const text = `${where}: ${msg}`;
  if ([...box.children].some((p) => p.textContent === text)) return;
  const p = document.createElement('p');
  p.textContent = text;
  box.append(p);
  box.hidden = false;
  console.error(text, err);
}

/** Routes uncaught errors and rejected promises to the error box. */
export function catchUncaught(): void {
  addEventListener('error', (ev) => showError('Uncaught error', ev.error ?? ev.message));
  addEventListener('unhandledrejection', (ev) => showError('Unhandled rejection', ev.reason));
}

export function ms(t: number): string {
  return t >= 1000 ? `${(t / 1000).toFixed(2)} s` : `${t.toFixed(1)} ms`;
}
