/** Bad input to a model call (ids, pixels, shapes), reported before any GPU work. */
export class ModelInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelInputError';
  }
}
